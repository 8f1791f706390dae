"""Where 数电发票 requests go: the tax platform, behind an interface HQ connects later.

Only the `file` adapter exists: each request becomes one JSON file in
`<data_dir>/invoices/outbox/<request_id>.json`, written atomically (a temporary file, fsync,
rename, fsync of the folder), so a tool that watches the folder never reads half a request
and a crash leaves either the whole file or none. Filing the same request again rewrites the
same file with the same content, so a step interrupted after the write is safely repeated.
A real platform's client implements `TaxPlatform` the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

__all__ = ["FileTaxPlatform", "TaxPlatform", "outbox_of"]

_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


class TaxPlatform(Protocol):
    """Hands one invoice request to the tax platform; raises OSError when it cannot."""

    name: str

    def file(self, request: Mapping[str, Any]) -> None: ...


def outbox_of(data_dir: Path) -> Path:
    return data_dir / "invoices" / "outbox"


class FileTaxPlatform:
    """Writes each request as `<request_id>.json` into a folder."""

    name = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def file(self, request: Mapping[str, Any]) -> None:
        request_id = str(request["request_id"])
        if not _REQUEST_ID.fullmatch(request_id):  # our own ids only: never a path
            raise ValueError(f"not a request id: {request_id!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{request_id}.json"
        temporary = self.folder / f".{request_id}.json.tmp"
        data = orjson.dumps(dict(request), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
