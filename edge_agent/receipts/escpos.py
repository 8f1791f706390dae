"""ESC/POS bytes for a Chinese thermal printer: GB18030 text, 80 mm paper (48 columns of
the 12×24 font), then feed and cut.

Widths: a character that GB18030 encodes in one byte takes one column; any other takes two
(Chinese printers print every double-byte code full width, `×` and `：` included). Text a
line cannot hold wraps at a character boundary, never inside a character's bytes.

Commands used (Epson ESC/POS, as Chinese printers implement them): ESC @ initialise,
FS & Chinese character mode, ESC a n alignment, GS ! n character size, ESC E n bold,
ESC d n feed n lines, GS V 1 partial cut.
"""

from __future__ import annotations

from collections.abc import Iterable

from .layout import Row, layout
from .model import Receipt

__all__ = ["COLUMNS", "encode_receipt", "encode_rows", "text_width", "wrap"]

COLUMNS = 48
_INIT = b"\x1b@"
_CHINESE = b"\x1c&"
_LEFT, _CENTER = b"\x1ba\x00", b"\x1ba\x01"
_NORMAL, _TALL, _LARGE = b"\x1d!\x00", b"\x1d!\x01", b"\x1d!\x11"
_BOLD_ON, _BOLD_OFF = b"\x1bE\x01", b"\x1bE\x00"
_FEED_AND_CUT = b"\x1bd\x04\x1dV\x01"


def _width(char: str) -> int:
    return 1 if len(char.encode("gb18030")) == 1 else 2


def text_width(text: str) -> int:
    """Columns the text takes on the printer."""
    return sum(_width(char) for char in text)


def _printable(text: str) -> str:
    """Control characters (a newline in a header, an ESC in a name) never reach the printer."""
    return "".join(char if char.isprintable() else " " for char in text)


def wrap(text: str, columns: int) -> list[str]:
    """The text cut into lines of at most `columns` columns (at least one line)."""
    lines, line, used = [], "", 0
    for char in text:
        width = _width(char)
        if used + width > columns:
            lines.append(line)
            line, used = "", 0
        line += char
        used += width
    lines.append(line)
    return lines


def _pair(left: str, right: str, columns: int) -> list[str]:
    """Label left, value right on one line; on two when they do not fit together."""
    gap = columns - text_width(left) - text_width(right)
    if gap >= 1:
        return [left + " " * gap + right]
    lines = wrap(left, columns)
    for part in wrap(right, columns):
        lines.append(" " * (columns - text_width(part)) + part)
    return lines


def _encode(lines: Iterable[str]) -> bytes:
    return b"".join(line.encode("gb18030") + b"\n" for line in lines)


def encode_rows(rows: Iterable[Row], columns: int = COLUMNS) -> bytes:
    """The rows as one print job: initialise, print, feed, cut."""
    out = bytearray(_INIT + _CHINESE)
    for row in rows:
        left, right = _printable(row.left), _printable(row.right)
        if row.kind == "title":  # double width and height: half the columns
            out += _CENTER + _LARGE + _BOLD_ON + _encode(wrap(left, columns // 2))
            out += _BOLD_OFF + _NORMAL + _LEFT
        elif row.kind == "center":
            out += _CENTER + _encode(wrap(left, columns)) + _LEFT
        elif row.kind == "pair":
            out += _encode(_pair(left, right, columns))
        elif row.kind == "big":  # double height, bold: the amount to collect
            out += _TALL + _BOLD_ON + _encode(_pair(left, right, columns)) + _BOLD_OFF + _NORMAL
        elif row.kind == "text":
            out += _encode(wrap(left, columns))
        else:  # rule
            out += _encode(["-" * columns])
    out += _FEED_AND_CUT
    return bytes(out)


def encode_receipt(receipt: Receipt, columns: int = COLUMNS) -> bytes:
    return encode_rows(layout(receipt), columns)
