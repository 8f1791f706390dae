"""Log lines for the journal: one JSON object per line, with secrets and phones masked.

On a station PC the journal is read by whoever services the machine and is often shipped
off-site, so a log line must never carry a bearer token, a `token=` value or a member's full
mobile number. `RedactFilter` rewrites each record once (message, extras, traceback) before
any handler formats it; `JsonFormatter` then writes `ts`, `level`, `logger`, `message` and
the record's extras, which the journal and `jq` both read.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = [
    "JsonFormatter",
    "RedactFilter",
    "configure_logging",
    "redact",
]

_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]+")
# The names of fields whose values are masked (`token=…`, `"password": …`); not a secret.
_SECRET_NAMES = r"[\w-]*(?:token|password|passphrase|secret)[\w-]*|pin"  # noqa: S105
_SECRET = re.compile(
    rf"""(?ix)
    (\b(?:{_SECRET_NAMES})["']?\s*[=:]\s*)      # the key and its separator
    (?:
      (["'])(?:\\.|(?!\2)[^\\\n])*\2?         # a quoted value, spaces and escapes included,
                                                # to its closing quote (or the line's end)
    | (?!\*\*\*)[^\s&"',;}}\]]+                 # or an unquoted value, up to a delimiter
    )
    """
)

_PHONE = re.compile(
    r"""(?x)
    (?<![\d+])
    ((?:\+|00)?86[\s-]?)?          # country code, spelled +86, 0086 or 86
    (1[3-9]\d)[\s-]?\d{4}[\s-]?(\d{4})
    (?!\d)
    """
)


def _mask_secret(match: re.Match[str]) -> str:
    quote = match.group(2) or ""
    return f"{match.group(1)}{quote}***{quote}"


def _mask_phone(match: re.Match[str]) -> str:
    return f"{match.group(1) or ''}{match.group(2)}****{match.group(3)}"


def redact(text: str) -> str:
    """Mask bearer tokens, `token=`-style secrets and mainland mobile numbers in `text`."""
    text = _BEARER.sub(r"\1\2***", text)
    text = _SECRET.sub(_mask_secret, text)
    return _PHONE.sub(_mask_phone, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


_STANDARD = frozenset(
    logging.LogRecord("x", logging.INFO, __file__, 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


class RedactFilter(logging.Filter):
    """Rewrites a record's message, string extras and traceback with `redact` (keeps all)."""

    _plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in _extras(record).items():
            setattr(record, key, _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._redacted = True  # several handlers share one record: rewrite it once
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ms), level, logger, message, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            if not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: str | int = "INFO",
    fmt: Literal["json", "text", "auto"] = "auto",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Replace the root handlers with one redacting handler on `stream` (stdout by default).

    `auto` writes JSON unless the stream is a terminal. Python warnings are routed through
    logging too, so nothing reaches the journal unformatted or unredacted.
    """
    out = stream if stream is not None else sys.stdout
    if fmt == "auto":
        fmt = "text" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
