"""The process `test_crash.py` kills: it records sales in a loop until SIGKILL arrives.

Usage: python crash_child.py DATA_DIR MEMBER_ID, then one line on stdin: RUN [RETRY_KEY ...]

The store, its rule set and the member already exist (the test sets them up once, so this
program imports only what recording a sale needs). It imports, then waits for its stdin line
before touching the store: the test starts the next child while the current one runs, so
interpreter start-up overlaps the previous run instead of adding to it. The child then opens
the store, re-sends each RETRY_KEY (a driver retrying the sale it was busy with when the
station died) and records `crash:RUN:0`, `crash:RUN:1`, ... for ever. It prints

    READY
    COMMITTED <sale_id> <source_key> <1 if created, 0 if already recorded>

and flushes stdout only after `record_sale` has returned, i.e. after the commit: a line on
stdout is an acknowledgement, exactly like the driver's ACK to the dispenser.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from edge_agent.services.sales import SaleInput, record_sale
from edge_agent.services.station import open_station
from edge_agent.settings import StationSettings

_PRICE = Decimal("7.50")
_CENT = Decimal("0.01")


def sale_for(source_key: str, member_id: str) -> SaleInput:
    """The same key always describes the same sale (a retry sends identical facts)."""
    index = int(source_key.rsplit(":", 1)[1])
    litres = Decimal(5 + index % 40) + Decimal(index % 7) / 10
    return SaleInput(
        source="crash",
        pump=1 + index % 8,
        nozzle=1,
        grade="92",
        litres=litres,
        amount=(litres * _PRICE).quantize(_CENT),
        unit_price=_PRICE,
        ended_at=datetime.now(UTC),
        source_key=source_key,
        member_id=member_id,
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write(__doc__ or "")
        return 2
    data_dir, member_id = Path(argv[1]), argv[2]
    command = sys.stdin.readline().split()
    if not command:
        return 0  # the test ended without needing this child
    run, retries = command[0], command[1:]
    settings = StationSettings.model_validate({"station": {"id": "S001", "data_dir": data_dir}})
    station = open_station(settings)
    out = sys.stdout
    out.write("READY\n")
    out.flush()

    def send(source_key: str) -> None:
        outcome = record_sale(station, sale_for(source_key, member_id))
        out.write(f"COMMITTED {outcome.sale.sale_id} {source_key} {int(outcome.created)}\n")
        out.flush()

    for source_key in retries:
        send(source_key)
    index = 0
    while True:
        send(f"crash:{run}:{index}")
        index += 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
