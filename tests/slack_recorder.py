"""A Slack incoming-webhook stand-in on 127.0.0.1: records each POST's JSON body; can be told to fail.

    with SlackRecorder() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_BATON_SLACK", slack.connection)
        ...
        assert slack.posts[0]["text"] ...

``fail(n)`` answers the next ``n`` posts with HTTP 500 (``fail()`` every post until ``recover()``);
a failed post is counted in ``failures`` and not recorded in ``posts``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/hook"


class SlackRecorder:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.failures = 0
        self._fail_next: int | None = 0  # None: fail every post
        self._lock = threading.Lock()
        self._posted = threading.Condition(self._lock)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder._lock:
                    failing = recorder._fail_next is None or recorder._fail_next > 0
                    if failing:
                        recorder.failures += 1
                        if recorder._fail_next:
                            recorder._fail_next -= 1
                    elif self.path == PATH:
                        recorder.posts.append(json.loads(raw))
                        recorder._posted.notify_all()
                if failing:
                    self._answer(500, b"internal_error")
                elif self.path != PATH:
                    self._answer(404, b"no_service")
                else:
                    self._answer(200, b"ok")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{PATH}"

    @property
    def connection(self) -> str:
        """An Airflow connection (JSON, for ``AIRFLOW_CONN_...``) of type slackwebhook posting here."""
        return json.dumps({"conn_type": "slackwebhook", "password": self.url})

    def fail(self, times: int | None = None) -> None:
        """Answer the next ``times`` posts with HTTP 500; every post when ``times`` is None."""
        with self._lock:
            self._fail_next = times

    def recover(self) -> None:
        self.fail(0)

    def wait_for(self, predicate, timeout: float = 60) -> dict[str, Any]:
        """The first recorded post for which ``predicate(body)`` holds, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._posted:
            while True:
                found = next((body for body in self.posts if predicate(body)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching Slack post in {timeout} s; got {self.posts}")
                self._posted.wait(left)

    def start(self) -> SlackRecorder:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> SlackRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
