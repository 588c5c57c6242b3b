"""Airflow's REST API as a loaded api-server answers it, on 127.0.0.1: for the code that polls it (``AirflowAPI``'s
waits, the benchmarks' loops), which must take a late answer or an error. A real Airflow cannot be made to answer
late on purpose; this answers each GET after the delay, and with the body, that its turn gives."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time

import httpx
import pytest

from devtools.standalone import AirflowAPI


class SlowAPI(http.server.BaseHTTPRequestHandler):
    """The token at once; each GET (its path kept in ``server.paths``) after the delay its turn in
    ``server.delays`` gives, with the status and body its turn in ``server.bodies`` gives (the last one for
    every turn after). One client at a time: the turns are counted without a lock."""

    def do_POST(self):  # /auth/token
        self._send(200, {"access_token": "t"})

    def do_GET(self):
        turn = self.server.gets
        self.server.gets += 1
        self.server.paths.append(self.path)
        time.sleep(self.server.delays[min(turn, len(self.server.delays) - 1)])
        status, body = self.server.bodies[min(turn, len(self.server.bodies) - 1)]
        self._send(status, body)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on this answer
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_api(tmp_path):
    """An ``AirflowAPI`` whose client waits 0.5 s for an answer, and the ``SlowAPI`` server it asks."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowAPI)
    server.gets, server.paths, server.delays, server.bodies = 0, [], [0.0], [(200, {})]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "simple_auth_manager_passwords.json.generated").write_text('{"admin": "p"}')
    api = AirflowAPI(f"http://127.0.0.1:{server.server_port}", tmp_path)
    api._client = (os.getpid(), httpx.Client(timeout=0.5))  # the client's timeout, short
    yield api, server
    api.close()
    server.shutdown()
    server.server_close()
