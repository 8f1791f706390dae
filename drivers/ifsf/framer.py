"""Bytes in, XML messages and typed errors out: the IFSF POS-FDC framer, with no I/O.

A TCP stream with a length prefix has no sync marker, so a damaged length would normally
force a reconnect. Two facts make in-band resynchronisation safe here instead:

- every genuine header starts with a 00 byte (lengths are capped below 16 MiB), and
- UTF-8 XML never contains a 00 byte (NUL is not an XML character).

So after anything that does not frame (garbage, an absurd length, a truncated message, a
bad MD5) the framer skips to the next 00 byte and tries again there; it can never lock onto
the inside of an XML message, and a 00 byte inside a claimed body proves the body is cut
short (the next header has begun), so one lost byte never swallows the messages behind it.
We chose this over dropping the connection on an absurd length because a reconnect costs a
log-on and a catch-up, while the skip costs nothing and loses nothing that was intact.
"""

from __future__ import annotations

import hmac

from ..errors import CrcError, FramingError, OversizedFrame, TruncatedFrame
from .header import (
    MAX_LENGTH_LIMIT,
    HeaderKind,
    build_header,
    check_header_kind,
    digest,
    header_size,
    parse_header,
)

__all__ = ["DigestMismatch", "IfsfFramer"]

# A body may open with "<", a UTF-8 byte-order mark or XML white space.
_BODY_START = frozenset(b"<\xef \t\r\n")


class DigestMismatch(CrcError):
    """MD5(xml ‖ passphrase) did not match: a damaged message or the wrong passphrase."""


class IfsfFramer:
    """Split a byte stream into XML messages framed by `header` (plain, md5 or md5-noid).

    `feed` never raises on any input: it returns the complete messages (bytes, not yet
    decoded) and one `FramingError` per stretch of bytes it had to skip.
    """

    def __init__(
        self,
        header: HeaderKind = "plain",
        passphrase: str = "",
        max_message_bytes: int = 1_000_000,
    ) -> None:
        self.header: HeaderKind = check_header_kind(header)
        if not 0 < max_message_bytes <= MAX_LENGTH_LIMIT:
            raise ValueError(f"max_message_bytes must be 1..{MAX_LENGTH_LIMIT}")
        self._passphrase = passphrase
        self._max = max_message_bytes
        self._size = header_size(self.header)
        self._buf = bytearray()
        self._clean = 0  # body bytes of the pending frame already known to hold no 00 byte
        self._quiet = 0  # bytes still inside a frame already reported as damaged

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a message."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget partial input (a new connection starts a new stream)."""
        self._buf.clear()
        self._clean = 0
        self._quiet = 0

    def encode(self, xml: bytes) -> bytes:
        """Header + XML, refusing bodies a peer's framer could not deliver intact."""
        if not xml or len(xml) > self._max:
            raise ValueError(f"an XML message must be 1..{self._max} bytes, got {len(xml)}")
        if xml[0] not in _BODY_START or 0 in xml:
            raise ValueError("an XML message must start like XML and contain no 00 byte")
        return build_header(self.header, xml, self._passphrase) + xml

    def feed(self, data: bytes) -> list[bytes | FramingError]:
        out: list[bytes | FramingError] = []
        buf = self._buf
        buf += data
        while len(buf) >= self._size:
            head = parse_header(self.header, buf)
            if buf[0] != 0:  # no genuine length reaches 16 MiB (md5-noid: garbage looks alike)
                if head is not None:
                    self._skip(out, OversizedFrame, f"a length of {head.length} bytes", start=0)
                else:
                    self._skip(out, FramingError, "bytes that are not a header", start=0)
                continue
            if head is None:
                self._skip(out, FramingError, "a header with unknown id bytes")
                continue
            if head.length > self._max:
                self._skip(out, OversizedFrame, f"a length of {head.length} bytes")
                continue
            if head.length == 0:
                self._skip(out, FramingError, "an empty message")
                continue
            end = self._size + head.length
            if len(buf) > self._size and buf[self._size] not in _BODY_START:
                self._skip(out, FramingError, "a body that does not start like XML")
                continue
            scan_from = self._size + self._clean
            scan_to = min(end, len(buf))
            if buf.find(0, scan_from, scan_to) >= 0:
                self._skip(out, TruncatedFrame, f"a message cut short of {head.length} bytes")
                continue
            self._clean = scan_to - self._size
            if len(buf) < end:
                if head.digest is not None and self._overlapping_frame(out):
                    continue
                break
            body = bytes(buf[self._size : end])
            if head.digest is not None and not hmac.compare_digest(
                head.digest, digest(body, self._passphrase)
            ):
                # Rescan from the next 00 byte rather than skipping the whole frame: a fake
                # header that began in garbage may overlap a real one. Rejects inside this
                # already reported frame stay quiet.
                out.append(DigestMismatch(f"MD5 mismatch on a {len(body)}-byte message"))
                self._quiet = end
                self._skip(out, FramingError, "inside a message with a bad MD5")
                continue
            self._drop(end)
            self._quiet = 0
            out.append(body)
        return out

    def _overlapping_frame(self, out: list[bytes | FramingError]) -> bool:
        """While a candidate waits for its body, a complete frame with a valid MD5 may
        already start inside the candidate's header (the candidate then began in garbage
        just before a real frame): prefer that frame instead of stalling behind it."""
        buf = self._buf
        for at in range(1, min(self._size, len(buf) - self._size + 1)):
            if buf[at] != 0:
                continue
            head = parse_header(self.header, buf[at : at + self._size])
            start = at + self._size
            if head is None or head.digest is None or not 0 < head.length <= self._max:
                continue
            end = start + head.length
            if len(buf) < end or buf[start] not in _BODY_START or buf.find(0, start, end) >= 0:
                continue
            if hmac.compare_digest(head.digest, digest(bytes(buf[start:end]), self._passphrase)):
                self._drop(at)
                out.append(FramingError(f"skipped {at} byte(s): a header begun in garbage"))
                return True
        return False

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self._clean = 0

    def _skip(
        self,
        out: list[bytes | FramingError],
        error: type[FramingError],
        what: str,
        start: int = 1,
    ) -> None:
        """Drop bytes up to the next 00 byte (a possible header) and report one error."""
        nxt = self._buf.find(0, start)
        count = len(self._buf) if nxt < 0 else nxt
        self._drop(count)
        if self._quiet > 0:
            self._quiet = max(0, self._quiet - count)
        else:
            out.append(error(f"skipped {count} byte(s): {what}"))
