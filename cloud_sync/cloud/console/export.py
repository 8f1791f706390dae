"""Any console table as CSV or XLSX, safe to open in a spreadsheet.

A cell a person typed (a member's name, a rule set's name) could start with `=`, `+`, `-`,
`@` or a control character and run as a formula when HQ opens the file: such text cells get
a leading apostrophe (OWASP's advice), numbers stay numbers. CSV is UTF-8 with a BOM so
Excel on a Chinese Windows reads it as UTF-8.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from fastapi.responses import Response
from openpyxl import Workbook

__all__ = ["FORMATS", "Column", "ExportFormat", "download", "safe_cell", "to_csv", "to_xlsx"]

ExportFormat = Literal["csv", "xlsx"]
FORMATS: Final[tuple[ExportFormat, ...]] = ("csv", "xlsx")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r", "\n")
_MEDIA: Final = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

Cell = str | int | None


@dataclass(frozen=True)
class Column:
    """One column of an export: the row's key and the heading people read."""

    key: str
    heading: str


def safe_cell(value: object) -> Cell:
    """A value as a spreadsheet cell: integers as numbers, text never a formula."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _rows(columns: Sequence[Column], rows: Iterable[dict[str, object]]) -> Iterable[list[Cell]]:
    for row in rows:
        yield [safe_cell(row.get(column.key)) for column in columns]


def to_csv(columns: Sequence[Column], rows: Iterable[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(column.heading) for column in columns])
    writer.writerows(_rows(columns, rows))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(columns: Sequence[Column], rows: Iterable[dict[str, object]], *, sheet: str) -> bytes:
    book = Workbook(write_only=True)
    worksheet = book.create_sheet(title=sheet[:31] or "sheet")
    worksheet.append([safe_cell(column.heading) for column in columns])
    for cells in _rows(columns, rows):
        worksheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def download(
    fmt: ExportFormat,
    columns: Sequence[Column],
    rows: Iterable[dict[str, object]],
    *,
    filename: str,
) -> Response:
    """The table as an attachment named `filename` plus the format's extension."""
    body = to_csv(columns, rows) if fmt == "csv" else to_xlsx(columns, rows, sheet=filename)
    name = f"{filename}.{fmt}"
    disposition = f"attachment; filename=\"export.{fmt}\"; filename*=UTF-8''{quote(name)}"
    return Response(body, media_type=_MEDIA[fmt], headers={"Content-Disposition": disposition})
