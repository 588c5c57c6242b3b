"""An HTTP server on 127.0.0.1 (or another local address, IPv6 too) in a daemon thread: the lifecycle the
demo services share."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class ThreadedServer:
    """``start()`` / ``stop()`` (or a ``with`` block) around a ``ThreadingHTTPServer`` on a port (0: any
    free one)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, host: str = "127.0.0.1"):
        server = _ThreadingHTTPServer6 if ":" in host else ThreadingHTTPServer  # an IPv6 address: ::1
        self.server = server((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server.server_close()

    def serve(self, banner: str) -> None:
        """Serve in the foreground until Ctrl-C, after printing ``banner`` (``python -m demo.web``,
        ``python -m demo.http_service``)."""
        print(banner, flush=True)
        try:
            self.server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6
