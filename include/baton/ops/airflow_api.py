"""The runbook actions that change Airflow itself, through its public REST API (``/api/v2``).

A task may not write Airflow's metadata database in Airflow 3; the monitor's task acts as an operator
would, over REST, with the Airflow connection ``baton_airflow_api`` (type http: host = the API server's
URL, login and password of a user allowed to pause DAGs and clear task instances; a JWT is taken from
``/auth/token``). Without that connection these actions are recorded as not carried out, naming it.
Every call has a timeout; an answer other than success is an error with Airflow's status and reason.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from baton.errors import BatonError

CONN_ID = "baton_airflow_api"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_ANSWER = 5_000_000  # bytes of one answer read: a list of at most 1,000 runs is far below it
_CLIENT: tuple[int, httpx.Client] | None = None  # (pid, its client): a client builds its TLS context once
_CLIENT_LOCK = threading.Lock()


def _client() -> httpx.Client:
    """This process's HTTP client (thread-safe; its connections are kept alive between calls). A forked
    child (a task process, an api-server worker) builds its own: a parent's pooled sockets are not its."""
    global _CLIENT
    with _CLIENT_LOCK:
        if _CLIENT is None or _CLIENT[0] != os.getpid():  # none yet, or the parent's, inherited
            _CLIENT = (os.getpid(), httpx.Client(timeout=TIMEOUT))
        return _CLIENT[1]


class AirflowApiError(BatonError):
    """Airflow's REST API refused (``status``: its HTTP status) or could not be reached (None)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class AirflowApi:
    def __init__(self, url: str, username: str, password: str):
        self.url = url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    @classmethod
    def as_caller(cls, url: str, token: str) -> AirflowApi:
        """The API as the person whose JWT ``token`` is (what Baton's pages do on their behalf: Airflow
        checks their permissions, and its audit log names them)."""
        api = cls(url, "", "")
        api._token = token
        return api

    @classmethod
    def from_connection(cls) -> AirflowApi | None:
        """The API of connection ``baton_airflow_api``, or None when it is not defined."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(CONN_ID)
        except AirflowNotFoundException:
            return None
        host = conn.host or ""
        url = host if "://" in host else f"{conn.schema or 'http'}://{host}"
        if conn.port and "://" not in host:
            url += f":{conn.port}"
        return cls(url, conn.login or "", conn.password or "")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._token is None:
            token = self._send("POST", "/auth/token", json=self._credentials).get("access_token")
            if not isinstance(token, str):
                raise AirflowApiError(f"POST /auth/token at {self.url}: Airflow's answer has no access_token")
            self._token = token
        return self._send(
            method, f"/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"}, **kwargs
        )

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of Airflow's answer; an AirflowApiError naming the call for anything else."""
        what = f"{method} {path}"
        try:
            with _client().stream(method, f"{self.url}{path}", **kwargs) as answer:
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_ANSWER:
                        raise AirflowApiError(f"{what}: Airflow's answer is over {MAX_ANSWER:,} bytes")
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise AirflowApiError(
                f"{what}: Airflow's API at {self.url} could not be reached: {error}"
            ) from error
        if answer.status_code >= 400:
            text = bytes(body[:300]).decode(errors="replace")
            raise AirflowApiError(f"{what}: Airflow answered {answer.status_code} {text}", answer.status_code)
        try:
            return json.loads(body) if body else {}
        except ValueError:
            raise AirflowApiError(f"{what}: Airflow answered {answer.status_code} with no JSON") from None

    def unpaused(self, max_pages: int) -> tuple[set[str], bool]:
        """The ids of the DAGs Airflow lists as unpaused, at most ``max_pages`` pages of 100; and whether
        that was all of them."""
        ids: set[str] = set()
        for page in range(max_pages):
            params = {"paused": "false", "limit": 100, "offset": page * 100, "order_by": "dag_id"}
            answer = self._call("GET", "/dags", params=params)
            dags = answer.get("dags") if isinstance(answer, dict) else None
            if not isinstance(dags, list):
                raise AirflowApiError("GET /dags: Airflow's answer has no list of dags")
            ids |= {d["dag_id"] for d in dags if isinstance(d, dict) and isinstance(d.get("dag_id"), str)}
            if len(dags) < 100:
                return ids, True
        return ids, False

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool:
        """Start a run of ``dag_id`` named ``run_id``; False when a run of that name exists already."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        try:
            self._call("POST", f"/dags/{quote(dag_id, safe='')}/dagRuns", json=body)
        except AirflowApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    def stop(self, dag_id: str, run_id: str) -> str:
        """Mark a queued or running run failed (Airflow stops its running tasks); the state it had. A run
        that ended is not changed (an AirflowApiError, 409); one Airflow does not have is a 404 saying so
        (not Airflow's own answer about a path)."""
        path = f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        try:
            before = str(self._call("GET", path).get("state", ""))
        except AirflowApiError as error:
            if error.status != 404:
                raise
            raise AirflowApiError(
                f"no run '{run_id[:250]}' of {dag_id[:250]} in Airflow: choose a run", 404
            ) from None
        if before not in ("queued", "running"):
            raise AirflowApiError(
                f"run {run_id} of {dag_id} is {before or 'in no state'}: there is nothing to stop", 409
            )
        self._call("PATCH", path, json={"state": "failed"})
        return before

    def retry_now(self, dag_id: str, run_id: str, task_id: str) -> int:
        """Clear one task of a run so that its next try starts now (not after its retry delay); how many
        task instances Airflow cleared."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False}
        answer = self._call("POST", f"/dags/{quote(dag_id, safe='')}/clearTaskInstances", json=body)
        return len(answer.get("task_instances") or [])

    def set_paused(self, dag_id: str, paused: bool) -> bool:
        """Pause or resume ``dag_id``; whether it was paused before."""
        before = self._call("GET", f"/dags/{quote(dag_id, safe='')}")["is_paused"]
        self._call("PATCH", f"/dags/{quote(dag_id, safe='')}", json={"is_paused": paused})
        return bool(before)

    def failed_runs(self, dag_id: str, since: datetime, limit: int) -> list[str]:
        """The ids of ``dag_id``'s runs that failed and started at or after ``since``, newest first."""
        params = {
            "state": "failed",
            "start_date_gte": since.isoformat(),
            "order_by": "-start_date",
            "limit": limit,
        }
        runs = self._call("GET", f"/dags/{quote(dag_id, safe='')}/dagRuns", params=params)["dag_runs"]
        return [run["dag_run_id"] for run in runs]

    def retry(self, dag_id: str, run_id: str) -> None:
        """Clear the failed task instances of one run: the scheduler runs them (and the run) again."""
        body = {"dag_run_id": run_id, "only_failed": True, "reset_dag_runs": True, "dry_run": False}
        self._call("POST", f"/dags/{quote(dag_id, safe='')}/clearTaskInstances", json=body)
