"""A demo "partner API" on 127.0.0.1 that records every POST, for tests, benchmarks and the demo.

It answers ``POST <any path>`` with ``201 {"received": n, "path": ..., "duplicate": bool}`` and keeps
the path, the JSON body, the ``Idempotency-Key`` header, the status and the time of each;
``fail(path, n)`` makes the next n posts to a path answer 500. In a test or a benchmark::

    with PartnerService() as partner:          # a free port
        ...post to partner.url("/orders")...
        assert partner.count("/orders") == 1

``make run`` serves one at http://127.0.0.1:8766 (``python -m demo.http_service``): the job board of
``hr_recruiting`` (``board_url``: http://127.0.0.1:8766/board) and the CMS of ``content_marketing``
(``cms_url``: http://127.0.0.1:8766/cms), and the helpdesk of ``support_triage``
(``helpdesk_url``: http://127.0.0.1:8766/helpdesk). ``GET <path>`` lists what was posted to it.

An outage (``Outage``; ``--outage /helpdesk/tickets:300:240`` on the command line) makes a path answer 503
for ``lasting`` seconds, ``after`` seconds after its first post: ``make run`` gives the helpdesk one, so
that within the demo's first minutes the monitor sees an agent fail, opens an incident and resolves it
once the partner is back. It counts from the first post, not from the service's start, so a slow start of
Airflow moves it along.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from demo.serving import ThreadedServer

MAX_OUTAGE_S = 24 * 3600  # an outage starts and lasts at most a day: a demo's, not a way to switch a path off


@dataclass(frozen=True)
class Outage:
    """``path`` answers 503 from ``after`` seconds after its first post, for ``lasting`` seconds."""

    path: str
    after: float
    lasting: float

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or len(self.path) > 200:
            raise ValueError(
                f"an outage's path starts with '/' and is at most 200 characters: {self.path[:60]!r}"
            )
        for name, value in (("after", self.after), ("lasting", self.lasting)):
            if not 0 <= value <= MAX_OUTAGE_S:  # NaN fails this too
                raise ValueError(f"an outage's {name} is 0 to {MAX_OUTAGE_S} seconds, not {value}")

    @classmethod
    def parse(cls, text: str) -> Outage:
        """``PATH:AFTER:LASTING`` (seconds), e.g. ``/helpdesk/tickets:300:240``."""
        form = "the form is PATH:AFTER:LASTING in seconds, e.g. /helpdesk/tickets:300:240"
        parts = text.rsplit(":", 2)
        try:
            after, lasting = float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise argparse.ArgumentTypeError(f"{text[:80]!r}: {form}") from None
        try:
            return cls(parts[0], after, lasting)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{error} ({form})") from None


class PartnerService(ThreadedServer):
    """The service: a ThreadingHTTPServer in a daemon thread; also a context manager.

    :param fail: path -> how many of the next posts to it answer 500 (-1: every one).
    :param outages: paths that go down for a while once they have been posted to (503 meanwhile).
    :param clock: seconds, for the outages (a test's own clock; ``time.monotonic`` by default).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        fail: dict[str, int] | None = None,
        outages: list[Outage] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._lock = threading.Lock()
        self._posts: list[dict[str, Any]] = []
        self._fail: dict[str, int] = dict(fail or {})
        self._outages = {outage.path: outage for outage in outages or ()}
        self._first: dict[str, float] = {}  # an outage's path -> when its first post came
        self._clock = clock
        super().__init__(_handler(self), port, host)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + "/" + path.lstrip("/")

    # --- what tests read and set -------------------------------------------------------------

    def posts(self, path: str | None = None) -> list[dict[str, Any]]:
        """The recorded posts (path, body, idempotency_key, status, at), oldest first."""
        with self._lock:
            return [dict(p) for p in self._posts if path is None or p["path"] == path]

    def count(self, path: str | None = None) -> int:
        """Posts answered 2xx (to ``path``, or to any)."""
        return sum(1 for p in self.posts(path) if p["status"] < 300)

    def by_key(self, path: str | None = None) -> dict[str, int]:
        """Idempotency-Key -> how many 2xx posts carried it (above 1: a duplicate); keyless posts aside."""
        posts = self.posts(path)
        return dict(
            Counter(p["idempotency_key"] for p in posts if p["status"] < 300 and p["idempotency_key"])
        )

    def fail(self, path: str, times: int = 1) -> None:
        """The next ``times`` posts to ``path`` answer 500 (-1: all of them; 0: none any more)."""
        with self._lock:
            if times:
                self._fail[path] = times
            else:
                self._fail.pop(path, None)

    def down(self, path: str) -> bool:
        """Whether ``path`` is in its outage now."""
        with self._lock:
            return self._down(path)

    # --- the handler's side ------------------------------------------------------------------

    def _down(self, path: str) -> bool:
        outage = self._outages.get(path)
        if outage is None or path not in self._first:
            return False
        since = self._clock() - self._first[path]
        return outage.after <= since < outage.after + outage.lasting

    def _receive(self, path: str, body: Any, key: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if path in self._outages:
                self._first.setdefault(path, self._clock())
            if self._down(path):
                self._posts.append(
                    {"path": path, "body": body, "idempotency_key": key, "status": 503, "at": time.time()}
                )
                return 503, {
                    "error": "the demo partner is down for a while (its planned outage)",
                    "path": path,
                }
            left = self._fail.get(path, 0)
            failing = left != 0
            if left > 0:
                self._fail[path] = left - 1
                if left == 1:
                    del self._fail[path]
            duplicate = key is not None and any(
                p["idempotency_key"] == key and p["status"] < 300 for p in self._posts
            )
            status = 500 if failing else 201
            self._posts.append(
                {"path": path, "body": body, "idempotency_key": key, "status": status, "at": time.time()}
            )
            received = sum(1 for p in self._posts if p["status"] < 300)
        if failing:
            return status, {"error": "the demo partner was told to fail", "path": path}
        return status, {"received": received, "path": path, "duplicate": duplicate}


def _handler(service: PartnerService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the records
            pass

        def _answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _json(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode(errors="replace")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            status, payload = service._receive(path, self._json(), self.headers.get("Idempotency-Key"))
            self._answer(status, payload)

        def do_GET(self) -> None:  # what was posted to a path, for a person trying the demo
            path = urlsplit(self.path).path
            self._answer(
                200, {"path": path, "posts": [p["body"] for p in service.posts(path) if p["status"] < 300]}
            )

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.http_service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--outage",
        type=Outage.parse,
        action="append",
        default=[],
        metavar="PATH:AFTER:LASTING",
        help="PATH answers 503 for LASTING seconds, AFTER seconds after its first post (repeatable)",
    )
    args = parser.parse_args(argv)
    service = PartnerService(args.port, host=args.host, outages=args.outage)
    service.serve(f"Demo partner API on http://{args.host}:{service.port} (Ctrl-C stops it)")


if __name__ == "__main__":
    main()
