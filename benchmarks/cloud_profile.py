"""Run the `loyalpump` CLI (for cloud_ingest: `cloud run`) under pyinstrument, every thread.

The cloud's push route runs in the server's worker threads, which a profiler started on
the main thread does not see; so each thread started here gets its own profiler, and the
sessions of all threads are combined when the service stops.

    python benchmarks/cloud_profile.py OUT cloud run --config cloud.toml

writes the call tree to OUT and the functions with the most time of their own (waits for
work, locks and sockets left out) to OUT.top, one line each.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame
from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

__all__ = ["main", "top_self_time"]

INTERVAL_S = 0.001
TOP = 30
# A thread waiting (for work, a lock, a socket, the database's answer) is not spending CPU.
_IDLE = re.compile(r"acquire|wait|select|poll|sleep|recv|accept|\[await\]|<idle>")


def _walk(frame: Frame, totals: dict[tuple[str, str], float]) -> None:
    own = frame.total_self_time
    if own > 0:
        named = frame
        while named.function.startswith("[") and named.parent is not None:
            named = named.parent  # "[self]" and the like: the time of the function above
        key = (named.function, f"{named.file_path_short}:{named.line_no}")
        totals[key] = totals.get(key, 0.0) + own
    for child in frame.children:
        _walk(child, totals)


def top_self_time(session: Session, count: int = TOP) -> list[str]:
    """The functions with the most time of their own, idle waits left out, as lines
    `percent  seconds  function  file:line` (percent of the time not idle)."""
    root = session.root_frame()
    if root is None:
        return []
    totals: dict[tuple[str, str], float] = {}
    _walk(root, totals)
    busy = {key: t for key, t in totals.items() if not _IDLE.search(key[0])}
    whole = sum(busy.values()) or 1.0
    ranked = sorted(busy.items(), key=lambda item: item[1], reverse=True)[:count]
    return [f"{100 * t / whole:5.1f}%  {t:8.2f} s  {fn}  {where}" for (fn, where), t in ranked]


def main(argv: Sequence[str]) -> int:
    out, cli_args = Path(argv[0]), list(argv[1:])
    sessions: list[Session] = []
    profiled: list[threading.Thread] = []
    lock = threading.Lock()
    # Not `run`: the server's worker threads are a subclass with a `run` of their own.
    original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def profiled_bootstrap(self: threading.Thread) -> None:
        profiler = Profiler(interval=INTERVAL_S)
        profiler.start()
        with lock:
            profiled.append(self)
        try:
            original(self)
        finally:
            session = profiler.stop()
            with lock:
                sessions.append(session)

    threading.Thread._bootstrap_inner = profiled_bootstrap  # type: ignore[attr-defined]
    profiler = Profiler(interval=INTERVAL_S)
    profiler.start()
    code: Any = 0
    try:
        from edge_agent.cli import main as cli_main  # noqa: PLC0415 - profiled from here

        cli_main(cli_args)
    except SystemExit as exc:
        code = exc.code
    finally:
        session = profiler.stop()
        for thread in list(profiled):
            thread.join(10)  # the worker threads end with the server's event loop
        threading.Thread._bootstrap_inner = original  # type: ignore[attr-defined]
        with lock:
            combined = functools.reduce(Session.combine, sessions, session)
        tree = ConsoleRenderer(show_all=False, time="percent_of_total").render(combined)
        out.write_text(tree, encoding="utf-8")
        top = top_self_time(combined)
        out.with_name(out.name + ".top").write_text("\n".join(top) + "\n", encoding="utf-8")
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
