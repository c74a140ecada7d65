"""The lifecycle shared by the local HTTP servers that answer as a vendor API does (OKX, Wise).

A subclass implements ``handle(handler)``; the server binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LocalHttpFake:
    """Start with ``with Fake() as fake:`` and point the client at ``fake.url``."""

    thread_name = "local-http-fake"

    def __init__(self) -> None:
        self._stopping = threading.Event()  # set on stop(): a slow fault stops waiting
        self._httpd: ThreadingHTTPServer | None = None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=self._httpd.serve_forever, name=self.thread_name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms delayed ACKs

    def do_GET(self) -> None:
        self.server.fake.handle(self)  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.fake.handle(self)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return None
