"""The soak's one-screen report: what ran, what was done to it, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .verdict import Check

__all__ = ["SoakReport", "render"]


@dataclass
class SoakReport:
    stations: int
    minutes: float
    backend: str
    seed: int
    sales: dict[str, int] = field(default_factory=dict)  # by source, from the ground truth
    litres: str = "0"
    amount: str = "0"
    cashier: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    black_hole_s: float = 0.0
    longest_black_hole_s: float = 0.0
    station_restarts: int = 0
    cloud_restarts: int = 0
    max_backlog: int = 0
    max_backlog_station: str = ""
    converged_s: float | None = None  # after the last fault was lifted
    closed_s: float | None = None  # when every pump had finished its last sale
    events: int = 0
    checks: list[Check] = field(default_factory=list)
    stops: dict[str, Any] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    work_dir: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["checks"] = [check.__dict__ for check in self.checks]
        data["passed"] = self.passed
        return data


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render(report: SoakReport) -> str:
    r = report
    sales = sum(r.sales.values())
    by_source = ", ".join(f"{source} {count}" for source, count in sorted(r.sales.items()))
    c = r.cashier
    faults = ", ".join(f"{kind} {count}" for kind, count in sorted(r.faults.items()))
    converged = "never" if r.converged_s is None else _seconds(r.converged_s)
    lines = [
        f"loyalpump soak: {r.stations} stations, {r.minutes:g} min of faults, cloud on "
        f"{r.backend}, seed {r.seed}",
        f"  sales       {sales} ({by_source}); {r.litres} L, {r.amount} yuan; "
        f"{r.events} station events",
        f"  cashiers    {c.get('attached', 0)} members attached, {c.get('signed_up', 0)} signed "
        f"up (+{c.get('signed_up_again', 0)} again elsewhere), {c.get('redemptions', 0)} "
        f"redemptions ({c.get('redemptions_offline', 0)} offline, "
        f"{c.get('points_redeemed', 0)} points), refused {c.get('refused', {})}",
        f"  faults      {sum(r.faults.values())}: {faults}",
        f"              black holes {r.black_hole_s:.0f} s in all, longest "
        f"{r.longest_black_hole_s:.0f} s; restarts: stations {r.station_restarts}, "
        f"cloud {r.cloud_restarts}",
        f"  backlog     max {r.max_backlog} events ({r.max_backlog_station or '-'})",
        f"  converged   {converged} after the last fault was lifted (the last pump "
        f"finished its last sale at {_seconds(r.closed_s)})",
        "  verdict",
    ]
    for check in r.checks:
        mark = "PASS" if check.ok else "FAIL"
        lines.append(f"    {mark}  {check.name}: {check.detail}")
    lines.append(f"  result      {'PASS' if r.passed else 'FAIL'}")
    if not r.passed and r.work_dir:
        lines.append(f"  logs        {r.work_dir}")
    return "\n".join(lines)
