"""A network receipt printer on loopback: accepts raw TCP print jobs (as port 9100 does) and
keeps each connection's bytes as one job."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class FakeTcpPrinter:
    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.jobs: list[bytes] = []
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5)
                chunks = []
                while chunk := conn.recv(4096):
                    chunks.append(chunk)
            with self._done:
                self.jobs.append(b"".join(chunks))
                self._done.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        with self._done:
            self._done.wait_for(lambda: len(self.jobs) >= count, timeout)
            return list(self.jobs)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self._server.close()
        self._thread.join(5)

    def __enter__(self) -> FakeTcpPrinter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
