"""The error-catalogue scan shared by the station's and the cloud's catalogue tests.

Each side declares its codes once (edge_agent/error_codes.py, cloud_sync/cloud/server/errors.py);
the tests scan the source for literal codes raised and check each against that catalogue.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

# (where, line, code, status or None)
Hit = tuple[str, int, str, int | None]


class Declared(Protocol):
    @property
    def status(self) -> int: ...


def raised_codes(
    source: str, raisers: Mapping[str, tuple[int, int | None]], name: str = "<source>"
) -> Iterator[Hit]:
    """(where, line, code, status or None) for every literal code raised in `source`.

    `raisers` maps an exception name to the index of its code argument and the index of its
    status argument (or None).
    """
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if not isinstance(called, str) or called not in raisers:
            continue
        code_at, status_at = raisers[called]
        if len(node.args) <= code_at:
            continue
        code = node.args[code_at]
        if not (isinstance(code, ast.Constant) and isinstance(code.value, str)):
            continue  # passed on from another exception (exc.code) or built (f"sale.{what}")
        status: int | None = None
        if status_at is not None and isinstance(node.args[status_at], ast.Constant):
            value = node.args[status_at].value  # type: ignore[attr-defined]
            status = value if isinstance(value, int) else None
        yield name, node.lineno, code.value, status


def raised_in_files(
    paths: Iterable[Path], root: Path, raisers: Mapping[str, tuple[int, int | None]]
) -> list[Hit]:
    """Every literal code raised in the files `paths`, each named relative to `root`."""
    return [
        hit
        for path in paths
        for hit in raised_codes(
            path.read_text(encoding="utf-8"), raisers, str(path.relative_to(root))
        )
    ]


def undeclared(found: Iterator[Hit], catalogue: Mapping[str, Declared], home: str) -> list[str]:
    """A problem for each code missing from `catalogue` (in `home`) or raised at another status."""
    problems = []
    for where, line, code, status in found:
        entry = catalogue.get(code)
        if entry is None:
            problems.append(f"{where}:{line}: {code!r} is not declared in {home}")
        elif status is not None and status != entry.status:
            problems.append(f"{where}:{line}: {code!r} raised {status}, declared {entry.status}")
    return problems
