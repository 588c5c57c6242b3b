"""GET /baton/api/dashboard/...: the app in-process (FastAPI's TestClient) over the test's store (SQLite, then
PostgreSQL); Airflow's authentication replaced by a dependency override where a test says so, and real
(the simple auth manager's JWTs) where it tests the refusals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from baton.events import schema
from baton.ops.dashboard import gantt
from baton.plugin.api import app
from tests.ops.dashboard.scenario import T0, Run

BASE = "/api/dashboard"


def _runs(store, count: int = 5) -> None:
    for i in range(count):
        run = Run(store, f"run-{i}", at=T0 + timedelta(minutes=i))
        run.start("fetch", 1, agent="reader")
        run.model("fetch", 2, "reader", 0.01)
        run.succeed("fetch", 5, 4.0, agent="reader")
        if i:
            run.end(6, ok=i % 2 == 1)


def test_each_route_answers_its_documented_fields(reads, store):
    _runs(store)
    page = reads.get(f"{BASE}/runs", params={"limit": 2})
    assert page.status_code == 200
    assert set(page.json()) == {"runs", "next"} and len(page.json()["runs"]) == 2
    assert set(page.json()["runs"][0]) == {
        "run_id", "workflow", "template_version", "state", "started_at", "ended_at", "duration_s", "elapsed_s",
        "progress", "running", "running_count", "eta_s", "agents", "people_pending", "people_pending_count",
        "state_shown", "stopped", "eta_note",
    }  # fmt: skip
    following = reads.get(f"{BASE}/runs", params={"limit": 2, "before": page.json()["next"]}).json()
    assert [r["run_id"] for r in following["runs"]] == ["run-2", "run-1"]
    board = reads.get(f"{BASE}/agents").json()
    assert [a["agent"] for a in board["agents"]] == ["reader"] and "budgets_error" in board
    chart = reads.get(f"{BASE}/runs/run-1/gantt").json()
    assert [(b["step"], b["state"]) for b in chart["bars"]] == [("fetch", "success")]
    figures = reads.get(f"{BASE}/analytics", params={"hours": 24 * 366}).json()
    assert (figures["runs"], figures["success_rate"]) == (5, 0.5)
    assert {"trend", "suggestions", "parallel_speedup", "human_intervention_rate"} <= set(figures)


def test_an_unknown_run_is_404(reads, store):
    answer = reads.get(f"{BASE}/runs/nobody/gantt")
    assert (answer.status_code, answer.json()) == (404, {"detail": "no events for run 'nobody'"})


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10**9}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"state": "sleeping"}, "state"),
        ({"workflow": "w" * 5000}, "workflow"),
        ({"before": "b" * 5000}, "before"),
        ({"system": "maybe"}, "system"),
        ({"system": "1" * 5000}, "system"),
    ],
)
def test_a_runs_query_out_of_bounds_is_422_naming_the_parameter(reads, params, where):
    answer = reads.get(f"{BASE}/runs", params=params)
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", where]]


def test_a_cursor_that_is_not_ours_is_422_with_a_message(reads, store):
    _runs(store, 3)
    good = reads.get(f"{BASE}/runs", params={"limit": 1}).json()["next"]
    for cursor in ("garbage", good[:-2] + "zz", "r1.eyJ9.000000000000"):
        answer = reads.get(f"{BASE}/runs", params={"before": cursor})
        assert (answer.status_code, answer.json()) == (
            422,
            {
                "detail": "the cursor 'before' is not one this API gave: pass the 'next' of a previous page unchanged"
            },
        )


@pytest.mark.parametrize("hours", ["nan", "inf", "-inf", "0", "-1", "1e9", "8785", "a day"])
def test_a_window_that_is_not_a_finite_number_of_hours_up_to_a_year_is_422(reads, hours):
    answer = reads.get(f"{BASE}/analytics", params={"hours": hours})
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", "hours"]]


def test_a_long_workflow_or_run_id_is_422(reads):
    assert reads.get(f"{BASE}/analytics", params={"workflow": "w" * 5000}).status_code == 422
    answer = reads.get(f"{BASE}/runs/{'r' * 5000}/gantt")
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["path", "run_id"]


def test_a_run_of_100000_events_gets_a_bounded_chart(reads, store):
    run = Run(store, "huge")
    rows = []
    for i in range(50_000):
        for kind in ("subtask.started", "subtask.succeeded"):
            payload = {"subtask": str(i)} | (
                {"latency_s": 1.0, "sha256": "ab", "size": 2} if "succ" in kind else {}
            )
            event = run.event(kind, 2, "enrich", agent="a1", payload=payload, discriminator=f"{i}#1")
            rows.append(event.row())
    with store.engine.begin() as conn:  # stored in bulk, as many fan-out writers would over time
        for start in range(0, len(rows), 5000):
            conn.execute(insert(schema.events), rows[start : start + 5000])
    answer = reads.get(f"{BASE}/runs/huge/gantt")
    assert answer.status_code == 200
    chart = answer.json()
    assert chart["truncated"] is True and chart["events_read"] == gantt.MAX_EVENTS
    assert len(chart["bars"]) == gantt.MAX_BARS


def test_twenty_concurrent_readers_get_the_same_answers(reads, store):
    _runs(store, 8)
    asks = [
        (f"{BASE}/runs", {"limit": 3}),
        (f"{BASE}/runs/run-3/gantt", {}),
        (f"{BASE}/analytics", {"hours": 24 * 366, "workflow": "lead_scoring"}),
        (f"{BASE}/agents", {}),
    ]

    def ask(index: int) -> tuple[int, int, dict]:
        path, params = asks[index % len(asks)]
        answer = reads.get(path, params=params)
        body = answer.json()
        for moving in ("at", "since", "until"):  # the time of the request itself
            body.pop(moving, None)
        return index % len(asks), answer.status_code, body

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(80)))
    for which in range(len(asks)):
        got = [(status, body) for i, status, body in answers if i == which]
        assert len(got) == 20 and all(g == got[0] for g in got) and got[0][0] == 200


@pytest.fixture(scope="module")
def auth(airflow_db):
    from airflow.api_fastapi.app import create_auth_manager

    manager = create_auth_manager()
    manager.init()
    return manager


@pytest.mark.parametrize("route", ["/runs", "/agents", "/runs/r1/gantt", "/analytics?hours=nan"])
def test_without_airflows_authentication_a_request_is_refused(auth, route):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client = TestClient(app)
    answer = client.get(BASE + route)
    assert (answer.status_code, answer.json()) == (401, {"detail": "Not authenticated"})
    answer = client.get(BASE + route, headers={"Authorization": "Bearer forged"})
    assert (answer.status_code, answer.json()) == (403, {"detail": "Invalid JWT token"})
    nobody = auth.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    answer = client.get(BASE + route, headers={"Authorization": f"Bearer {nobody}"})
    assert answer.status_code == 403, "a user who may not read DAG runs"
    viewer = auth.generate_jwt(SimpleAuthManagerUser(username="vera", role="viewer"))
    answer = client.get(BASE + route, headers={"Authorization": f"Bearer {viewer}"})
    assert answer.status_code != 403 and answer.status_code != 401, "a viewer may read them"
