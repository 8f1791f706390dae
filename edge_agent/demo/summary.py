"""The demo's summary: the station's sales and books against the cloud's, in one document.

`summarize` is pure: it judges what the run left behind (the station's final status and
ledger check, the cloud's report, which parts stopped in time) and says whether all was well.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..daemon import StationRuntime
from ..services.reads import SaleRow
from .cashier import CashierStats
from .parts import DartBus, DemoCloud, FdcBus
from .seed import STATION_ID

__all__ = ["Drive", "summarize"]

_SOURCES = ("dart", "ifsf")


@dataclass
class Drive:
    """The outcome of the running phase."""

    reason: str = "error"
    runtime: StationRuntime | None = None
    station_stopped: bool = False
    station_error: str | None = None
    cashier: CashierStats = field(default_factory=CashierStats)


def summarize(
    drive: Drive,
    final: dict[str, Any],
    cloud_report: dict[str, Any],
    stopped: dict[str, bool],
    threads: list[str],
    *,
    parts: tuple[DartBus, FdcBus, DemoCloud],
    run_s: float,
    cashier_url: str,
) -> dict[str, Any]:
    """The demo's summary: what was sold, earned and synced, and every problem seen."""
    dart, fdc, cloud = parts
    rows: list[SaleRow] = final.get("rows", [])
    status: dict[str, Any] = final.get("status") or {}
    by_source = _by_source(rows)
    totals = cloud_report["totals"]
    mark: dict[str, Any] = next(
        (s for s in cloud_report["stations"] if s["station_id"] == STATION_ID), {}
    )
    high_water = int(mark.get("high_water") or 0)
    backlog = status.get("sync", {}).get("backlog")
    quarantined = 0 if drive.runtime is None else drive.runtime.sales_quarantined
    problems: list[str] = []
    if drive.reason == "station stopped":
        problems.append("the station stopped by itself; see the log")
    if drive.station_error is not None:
        problems.append(f"the station failed: {drive.station_error}")
    elif not stopped.get("station", True):
        problems.append("the station did not stop")
    problems += [
        f"the {part} did not stop in time"
        for part, ok in stopped.items()
        if not ok and part != "station"
    ]
    if threads:
        problems.append(f"threads still running: {', '.join(threads)}")
    if backlog != 0:
        problems.append(
            f"station backlog is {backlog} after the last sync ({final.get('error') or 'no error'})"
        )
    problems += [f"station ledger: {p}" for p in final.get("problems", [])]
    problems += [f"cloud ledger: {p}" for p in cloud_report["problems"]]
    if totals["events_applied"] != high_water or totals["events_rejected"]:
        problems.append(
            f"cloud applied {totals['events_applied']} events and rejected "
            f"{totals['events_rejected']} of the {high_water} the station sent"
        )
    if quarantined:
        problems.append(f"{quarantined} sale(s) refused by the store (quarantine.jsonl)")
    return {
        "ok": not problems,
        "problems": problems,
        "stop_reason": drive.reason,
        "run_s": round(run_s, 1),
        "station_id": STATION_ID,
        "urls": {
            "cashier": cashier_url,
            "cloud": cloud.url,
            "cloud_docs": f"{cloud.url}/docs",
        },
        "sales": {
            "total": len(rows),
            "litres": _text(sum((Decimal(r.litres_ml) for r in rows), Decimal(0)) / 1000),
            "amount": _text(sum((Decimal(r.amount_fen) for r in rows), Decimal(0)) / 100),
            "with_member": sum(1 for r in rows if r.member_id is not None),
            "by_source": by_source,
        },
        "simulated": {"dart": dart.dispensed, "ifsf": fdc.dispensed},
        "points": {
            "earned": sum(r.points for r in rows),
            "redeemed": drive.cashier.points_redeemed,
            "redemptions": drive.cashier.redemptions,
        },
        "members": (status.get("store") or {}).get("members", 0),
        "cashier": {
            "attached": drive.cashier.attached,
            "refused": dict(drive.cashier.refused),
        },
        "station": {
            "backlog": backlog,
            "events_pushed": high_water,
            "final_sync_cycles": final.get("cycles", 0),
            "last_contact": status.get("sync", {}).get("last_contact"),
            "rules_version": (status.get("rules") or {}).get("version"),
            "ledger_problems": final.get("problems", []),
            "quarantined": quarantined,
        },
        "cloud": {
            "events_applied": totals["events_applied"],
            "events_rejected": totals["events_rejected"],
            "events_duplicate": totals["events_duplicate"],
            "members": totals["members"],
            "journals": totals["journals"],
            "ledger_problems": cloud_report["problems"],
        },
        "shutdown": {"clean": all(stopped.values()) and not threads, "threads_left": threads},
    }


def _by_source(rows: list[SaleRow]) -> dict[str, dict[str, Any]]:
    tally: dict[str, Counter[str]] = {source: Counter() for source in _SOURCES}
    for row in rows:
        counts = tally.setdefault(row.source, Counter())
        counts["sales"] += 1
        counts["ml"] += row.litres_ml
        counts["fen"] += row.amount_fen
        counts["with_member"] += row.member_id is not None
        counts["points"] += row.points
    return {
        source: {
            "sales": counts["sales"],
            "litres": _text(Decimal(counts["ml"]) / 1000),
            "amount": _text(Decimal(counts["fen"]) / 100),
            "with_member": counts["with_member"],
            "points": counts["points"],
        }
        for source, counts in tally.items()
    }


def _text(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))
