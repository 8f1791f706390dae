"""Member import from an operator's sheet: every bad row reported with its row number,
nothing half-imported; a clean sheet imports every row (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from cloud_sync.cloud.ledger.member_import import apply_import
from cloud_sync.cloud.ledger.member_sheet import ParsedSheet, SheetError, parse_sheet
from cloud_sync.cloud.ledger.schema import members, plates

from .members_seed import NOW, PHONE, PLATE, Seeded, chain_keys, ledger, seeded

__all__ = ["chain_keys", "ledger", "seeded"]

LATER = NOW + timedelta(hours=3)
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


def phone_of(n: int) -> str:
    return f"13{8 + n % 2}{n:08d}"  # 138… and 139…: mobile ranges


def plate_of(n: int) -> str:
    return f"{_PROVINCES[n % len(_PROVINCES)]}{'ABCDEFGH'[n % 8]}{n % 100000:05d}"


def good_rows(count: int) -> list[list[object]]:
    return [[phone_of(n), plate_of(n), f"会员{n}", n % 5000] for n in range(count)]


# (sheet row to break, the broken row, what the report must say)
def _breakages() -> list[tuple[list[object], str]]:
    kinds: list[tuple[list[object], str]] = [
        (["12345", "", "x", 0], "phone"),
        (["", "", "x", 0], "phone is empty"),
        (["1380013800a", "", "x", 0], "phone"),
        (["+1 415 555 0100", "", "x", 0], "phone"),
        (["13800000000", "京AI2345", "x", 0], "plate 1"),
        (["13800000000", "XA12345", "x", 0], "plate 1"),
        (["13800000000", "京A12345、京A1", "x", 0], "plate 2"),
        (["13800000000", "", "名" * 41, 0], "name is longer"),
        (["13800000000", "", "x", -1], "opening_points"),
        (["13800000000", "", "x", 1_000_001], "opening_points"),
        (["13800000000", "", "x", "12.5"], "opening_points"),
        (["13800000000", "", "x", "lots"], "opening_points"),
    ]
    return kinds


def sheet_with_faults(count: int) -> tuple[list[list[object]], dict[int, str]]:
    rows = good_rows(count)
    expected: dict[int, str] = {}
    kinds = _breakages()
    for k in range(33):
        index = 100 + k * 290  # data index; sheet row = index + 2
        broken, why = kinds[k % len(kinds)]
        rows[index] = list(broken)
        if why.startswith(("plate", "name", "opening")):
            rows[index][0] = phone_of(900_000 + k)  # a fine phone, the fault is elsewhere
        expected[index + 2] = why
    # duplicates within the file: a phone twice, a plate twice (the later row is bad)
    rows[9000][0] = rows[10][0]
    expected[9002] = "the same phone is on row 12"
    rows[9001][1] = rows[11][1]
    expected[9003] = "is on row 13 too"
    # members that exist already: the seeded phone and plate
    rows[9500][0] = PHONE
    expected[9502] = "belongs to a member already"
    rows[9600][1] = PLATE
    expected[9602] = "belongs to a member already"
    return rows, expected


def xlsx(header: list[str], rows: list[list[object]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("members")
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_ten_thousand_rows_with_37_bad_ones_reports_exactly_those_and_imports_nothing(
    seeded: Seeded,
) -> None:
    rows, expected = sheet_with_faults(10_000)
    data = xlsx(["手机号", "车牌", "姓名", "期初积分"], rows)
    ledger = seeded.ledger
    parsed = parse_sheet(data, "members.xlsx")
    for dry_run in (True, False):
        sheet = ParsedSheet(rows=list(parsed.rows), bad=list(parsed.bad))  # apply moves rows
        result = apply_import(
            ledger.db, seeded.keys, ledger.rules, sheet,
            actor="alice", filename="members.xlsx", now=LATER, dry_run=dry_run,
        )  # fmt: skip
        assert len(result.problems) == 37
        reported = {int(p.split(":")[0][4:]): p for p in result.problems}
        assert sorted(reported) == sorted(expected)
        for row, why in expected.items():
            assert why in reported[row], (row, reported[row])
        assert result.imported == 0
    count = ledger.db.read(lambda c: c.execute(select(func.count()).select_from(members)).scalar())
    assert count == 2  # the seeded two, nothing more
    assert ledger.ledger_problems() == []


def test_a_clean_sheet_imports_every_row_and_stations_hear_of_them(seeded: Seeded) -> None:
    ledger = seeded.ledger
    rows = [
        [phone_of(n), f"{plate_of(n)}；{plate_of(n + 50_000)}", f"会员{n}", 100] for n in range(300)
    ]
    csv_text = "phone,plates,name,opening_points\r\n" + "".join(
        f'{r[0]},"{r[1]}",{r[2]},{r[3]}\r\n' for r in rows
    )
    cursor = ledger.changes("S001", 0, 1000, LATER).next_cursor
    before = ledger.totals()
    dry = apply_import(
        ledger.db, seeded.keys, ledger.rules, parse_sheet(csv_text.encode("gb18030"), "m.csv"),
        actor="alice", filename="m.csv", now=LATER, dry_run=True,
    )  # fmt: skip
    assert dry.problems == [] and dry.imported == 0 and dry.rows == 300
    assert ledger.totals() == before
    done = apply_import(
        ledger.db, seeded.keys, ledger.rules, parse_sheet(csv_text.encode("utf-8-sig"), "m.csv"),
        actor="alice", filename="m.csv", now=LATER, dry_run=False,
    )  # fmt: skip
    assert done.imported == 300 and done.opening_points == 30_000
    assert ledger.ledger_problems() == []
    found = ledger.find_member(plate=plate_of(50_007), now=LATER)
    assert found is not None and found["name"] == "会员7" and found["points"] == 100
    assert found["registered_station"] is None
    assert (
        ledger.db.read(lambda c: c.execute(select(func.count()).select_from(plates)).scalar())
        == 602
    )
    page = ledger.changes("S002", cursor, 1000, LATER)
    assert len(page.members) == 300
    assert all(m.status == "active" and m.phone_index for m in page.members)


@pytest.mark.parametrize(
    ("data", "name", "why"),
    [
        (b"phone,colour\r\n138\r\n", "a.csv", "unknown column"),
        (b"name\r\nx\r\n", "a.csv", "no phone column"),
        (b"not a zip", "a.xlsx", "not a readable .xlsx"),
        (b"phone\n", "a.txt", ".xlsx or .csv"),
        (b"", "a.csv", "empty"),
    ],
)
def test_unusable_files_are_refused_whole(data: bytes, name: str, why: str) -> None:
    with pytest.raises(SheetError, match=why):
        parse_sheet(data, name)


def test_limits() -> None:
    with pytest.raises(SheetError, match="20 MiB"):
        parse_sheet(b"phone\r\n" + b"x" * (20 * 1024 * 1024), "big.csv")
    many = "phone\r\n" + "x\r\n" * 100_001  # cheap bad rows: the count alone refuses it
    with pytest.raises(SheetError, match="100,000"):
        parse_sheet(many.encode(), "many.csv")
