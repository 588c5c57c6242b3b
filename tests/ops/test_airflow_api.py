"""baton.ops.airflow_api against a local HTTP server that answers as told: what Airflow's REST API client
does with answers it must refuse (the running Airflow is in tests/integration/test_airflow.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from baton.ops.airflow_api import AirflowApi, AirflowApiError
from devtools.standalone import free_port


class _Api:
    """Answers POST /auth/token with a token (unless told otherwise) and everything else with ``body``
    (or what ``body(path)`` gives); keeps each request's path and body."""

    def __init__(
        self, body: bytes | Callable[[str], bytes], token: bytes = b'{"access_token": "t"}', status: int = 200
    ):
        self.body, self.token, self.status, self.paths, self.requests = body, token, status, [], []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                api.paths.append(self.path)
                api.requests.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                body = api.token if self.path == "/auth/token" else api.body
                body = body(self.path) if callable(body) else body
                self.send_response(200 if self.path == "/auth/token" else api.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def answering():
    made = []

    def make(*args, **kwargs) -> tuple[_Api, AirflowApi]:
        server = _Api(*args, **kwargs)
        made.append(server)
        return server, AirflowApi(server.url, "admin", "secret")

    yield make
    for server in made:
        server.close()


def test_a_dag_id_is_one_path_segment_however_it_is_written(answering):
    server, api = answering(json.dumps({"is_paused": False}).encode())
    assert api.set_paused("../variables/x?y=1#z", True) is False
    assert server.paths[1:] == ["/api/v2/dags/..%2Fvariables%2Fx%3Fy%3D1%23z"] * 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"body": b"<html>maintenance</html>"}, r"GET /api/v2/dags/d: Airflow answered 200 with no JSON"),
        ({"body": b"x" * 6_000_000}, r"GET /api/v2/dags/d: Airflow's answer is over 5,000,000 bytes"),
        (
            {"body": b"{}", "token": b'{"token": "t"}'},
            r"POST /auth/token at .*: Airflow's answer has no access_token",
        ),
        (
            {"body": b'{"detail": "Not Found"}', "status": 404},
            r'GET /api/v2/dags/d: Airflow answered 404 \{"detail"',
        ),
    ],
    ids=["not-json", "huge", "no-token", "not-found"],
)
def test_an_answer_it_cannot_use_is_an_error_naming_the_call(answering, kwargs, message):
    _, api = answering(**kwargs)
    with pytest.raises(AirflowApiError, match=message):
        api.set_paused("d", True)


def test_stopping_a_run_airflow_does_not_have_says_so(answering):
    """A page with no run chosen asked to stop run 'null': the answer names the run, not Airflow's path."""
    server, api = answering(
        b'{"detail": "The DagRun with dag_id: `d` and run_id: `null` was not found"}', status=404
    )
    with pytest.raises(AirflowApiError) as raised:
        api.stop("d", "null")
    assert (str(raised.value), raised.value.status) == ("no run 'null' of d in Airflow: choose a run", 404)
    assert server.paths[1:] == ["/api/v2/dags/d/dagRuns/null"]  # asked, and nothing patched


def test_stopping_a_run_that_ended_is_refused(answering):
    server, api = answering(json.dumps({"state": "success"}).encode())
    with pytest.raises(AirflowApiError, match=r"^run r of d is success: there is nothing to stop$") as raised:
        api.stop("d", "r")
    assert raised.value.status == 409 and server.paths[1:] == ["/api/v2/dags/d/dagRuns/r"]


def test_an_api_it_cannot_reach_is_an_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        AirflowApiError, match=rf"POST /auth/token: Airflow's API at {url} could not be reached"
    ):
        AirflowApi(url, "admin", "secret").set_paused("d", True)
    with pytest.raises(AirflowApiError, match=r"could not be reached"):
        AirflowApi("http://[::1", "admin", "secret").set_paused("d", True)


def test_the_connection_gives_the_url_or_nothing(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BATON_AIRFLOW_API", raising=False)
    assert AirflowApi.from_connection() is None
    conn = {"conn_type": "http", "host": "airflow.internal", "port": 8080, "login": "ops", "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps(conn))
    assert AirflowApi.from_connection().url == "http://airflow.internal:8080"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps({**conn, "host": "https://a.example/", "port": None})
    )
    assert AirflowApi.from_connection().url == "https://a.example"


def test_calls_share_the_process_client_and_a_forked_child_builds_its_own(answering):
    import os

    from baton.ops import airflow_api

    server, api = answering(b'{"dags": []}')
    assert api.unpaused(max_pages=1) == (set(), True)
    parent = airflow_api._client()
    assert api.unpaused(max_pages=1) == (set(), True) and airflow_api._client() is parent  # kept, not rebuilt
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: a call works, on a client of its own (the parent's sockets are not its)
        try:
            ok = api.unpaused(max_pages=1) == (set(), True) and airflow_api._client() is not parent
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(child, 0)
    assert airflow_api._client() is parent  # the parent's is still its own
    assert server.paths.count("/api/v2/dags?paused=false&limit=100&offset=0&order_by=dag_id") == 3
