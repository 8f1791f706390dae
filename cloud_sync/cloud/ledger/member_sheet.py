"""Reading an operator's member spreadsheet (.xlsx or .csv): pure, no database.

Columns `phone, plates, name, opening_points` (or 手机号, 车牌, 姓名, 期初积分), in any
order, header on row 1. Every bad row is reported as `row N: reason` with N the row number
the operator sees in Excel; duplicates within the file are bad rows too. The file is taken
whole or not at all, so a report lists every fault at once.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from cloud_sync.core.identity import IdentityError, normalize_phone, normalize_plate

__all__ = [
    "MAX_BYTES",
    "MAX_NAME",
    "MAX_OPENING",
    "MAX_ROWS",
    "ParsedSheet",
    "SheetError",
    "SheetRow",
    "parse_sheet",
]

MAX_ROWS: Final = 100_000
MAX_BYTES: Final = 20 * 1024 * 1024
MAX_NAME: Final = 40
MAX_OPENING: Final = 1_000_000
MAX_PLATES: Final = 10

_HEADERS: Final = {
    "phone": "phone",
    "手机号": "phone",
    "手机": "phone",
    "plates": "plates",
    "plate": "plates",
    "车牌": "plates",
    "车牌号": "plates",
    "name": "name",
    "姓名": "name",
    "opening_points": "opening_points",
    "期初积分": "opening_points",
}
_PLATE_SPLIT: Final = re.compile(r"[,;、，；\s]+")


class SheetError(ValueError):
    """The file as a whole is unusable (format, size, header): one line says why."""


@dataclass(frozen=True, slots=True)
class SheetRow:
    row: int  # the spreadsheet's row number (header = 1)
    phone: str  # E.164
    plates: tuple[str, ...]  # canonical
    name: str | None
    opening_points: int


@dataclass
class ParsedSheet:
    rows: list[SheetRow] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (row, reason)

    @property
    def problems(self) -> list[str]:
        return [f"row {n}: {reason}" for n, reason in sorted(self.bad)]


Cell = str | int | float | None


def _xlsx_rows(data: bytes) -> Iterator[Sequence[Cell]]:
    from openpyxl import load_workbook  # noqa: PLC0415 - only .xlsx files need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SheetError(f"not a readable .xlsx file ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield [v if isinstance(v, str | int | float) or v is None else str(v) for v in values]
    finally:
        book.close()


def _csv_rows(data: bytes) -> Iterator[Sequence[Cell]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise SheetError("the CSV is neither UTF-8 nor GB18030 text")
    yield from csv.reader(io.StringIO(text, newline=""))


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return unicodedata.normalize("NFKC", str(cell)).strip()


def _header(cells: Sequence[Cell]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for number, cell in enumerate(cells):
        label = _text(cell).lower().replace(" ", "_")
        if not label:
            continue
        key = _HEADERS.get(label)
        if key is None:
            raise SheetError(f"row 1: unknown column {label[:40]!r}")
        if key in columns:
            raise SheetError(f"row 1: column {key} appears twice")
        columns[key] = number
    if "phone" not in columns:
        raise SheetError("row 1: no phone column (phone or 手机号)")
    return columns


def _points(cell: Cell) -> int:
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return 0
    if isinstance(cell, bool):
        raise ValueError("opening_points is not a whole number")
    if isinstance(cell, float):
        if not cell.is_integer():
            raise ValueError("opening_points is not a whole number")
        value = int(cell)
    elif isinstance(cell, int):
        value = cell
    else:
        text = _text(cell)
        if not re.fullmatch(r"-?[0-9]{1,9}", text):
            raise ValueError("opening_points is not a whole number")
        value = int(text)
    if not 0 <= value <= MAX_OPENING:
        raise ValueError(f"opening_points must be 0 to {MAX_OPENING:,}")
    return value


def _name(cell: Cell) -> str | None:
    text = " ".join(_text(cell).split())
    if not text:
        return None
    if len(text) > MAX_NAME:
        raise ValueError(f"name is longer than {MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise ValueError("name holds control characters")
    return text


def _plates(cell: Cell) -> tuple[str, ...]:
    found: list[str] = []
    for number, part in enumerate((p for p in _PLATE_SPLIT.split(_text(cell)) if p), start=1):
        try:
            plate = normalize_plate(part)
        except IdentityError as exc:
            raise ValueError(f"plate {number}: {exc}") from None
        if plate not in found:
            found.append(plate)
    if len(found) > MAX_PLATES:
        raise ValueError(f"more than {MAX_PLATES} plates")
    return tuple(found)


def _cell(cells: Sequence[Cell], columns: dict[str, int], key: str) -> Cell:
    index = columns.get(key)
    return None if index is None or index >= len(cells) else cells[index]


def _parse_row(number: int, cells: Sequence[Cell], columns: dict[str, int]) -> SheetRow:
    raw_phone = _text(_cell(cells, columns, "phone"))
    if not raw_phone:
        raise ValueError("phone is empty")
    try:
        phone = normalize_phone(raw_phone)
    except IdentityError as exc:
        raise ValueError(f"phone: {exc}") from None
    return SheetRow(
        row=number,
        phone=phone,
        plates=_plates(_cell(cells, columns, "plates")),
        name=_name(_cell(cells, columns, "name")),
        opening_points=_points(_cell(cells, columns, "opening_points")),
    )


def _rows_of(data: bytes, filename: str) -> Iterator[Sequence[Cell]]:
    lower = filename.lower()
    if lower.endswith(".xlsx"):
        return _xlsx_rows(data)
    if lower.endswith(".csv"):
        return _csv_rows(data)
    raise SheetError("the file must be .xlsx or .csv")


def parse_sheet(data: bytes, filename: str) -> ParsedSheet:
    """Every good row, and every bad one with its reason; SheetError for the whole file."""
    if len(data) > MAX_BYTES:
        raise SheetError(f"the file is over {MAX_BYTES // (1024 * 1024)} MiB")
    rows = _rows_of(data, filename)
    header = next(iter(rows), None)
    if header is None:
        raise SheetError("the file is empty")
    columns = _header(header)
    parsed = ParsedSheet()
    phones: dict[str, int] = {}
    plate_rows: dict[str, int] = {}
    count = 0
    for number, cells in enumerate(rows, start=2):
        if all(_text(c) == "" for c in cells):
            continue
        count += 1
        if count > MAX_ROWS:
            raise SheetError(f"the file holds more than {MAX_ROWS:,} member rows")
        try:
            row = _parse_row(number, cells, columns)
        except ValueError as exc:
            parsed.bad.append((number, str(exc)))
            continue
        fault = _duplicates(row, phones, plate_rows)
        if fault is not None:
            parsed.bad.append((number, fault))
            continue
        parsed.rows.append(row)
    return parsed


def _duplicates(row: SheetRow, phones: dict[str, int], plate_rows: dict[str, int]) -> str | None:
    first = phones.get(row.phone)
    if first is not None:
        return f"the same phone is on row {first}"
    for plate in row.plates:
        owner = plate_rows.get(plate)
        if owner is not None:
            return f"plate {plate} is on row {owner} too"
    phones[row.phone] = row.row
    plate_rows.update(dict.fromkeys(row.plates, row.row))
    return None
