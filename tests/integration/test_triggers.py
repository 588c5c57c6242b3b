"""Business-event triggers on a real Airflow: the bundled sensors wait deferred in the triggerer on a
PostgreSQL business database, fire on inserted rows and start their workflows through assets; a
workflow's emitted asset starts another with its payload; a Redis message starts a run through an
AssetWatcher; an external system triggers a run with the official apache-airflow-client."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from demo.business import add as insert_rows
from demo.business import leads, payments, revenue
from demo.http_service import PartnerService

from baton.events.store import EventStore, engine_for
from devtools.standalone import Standalone

pytestmark = pytest.mark.integration

SENSORS = ["compliance_monitoring__sensor", "lead_qualification__sensor", "revenue_milestone__sensor"]
RUNS = ["lead_qualification", "lead_followup", "revenue_milestone", "compliance_monitoring", "order_events"]
NEW_LEADS = [
    {"id": "L-9001", "company": "Acme Rockets", "contact_role": "CEO", "region": "na", "employees": 1200,
     "annual_budget": 60000, "engagement": 90, "source": "webinar", "created_at": "2026-11-21"},
    {"id": "L-9002", "company": "Tiny Cafe", "contact_role": "Owner", "region": "emea", "employees": 3,
     "annual_budget": 2000, "engagement": 10, "source": "ads", "created_at": "2026-11-21"},
    {"id": "L-9003", "company": "Globex", "contact_role": "CTO", "region": "apac", "employees": 400,
     "annual_budget": 36000, "engagement": 70, "source": "referral", "created_at": "2026-11-21"},
]  # fmt: skip


# The shared Airflow (tests/integration/shared_airflow.py) and what it talks to, under this module's names.
@pytest.fixture
def business(shared_business: str) -> str:
    return shared_business


@pytest.fixture
def partner(shared_partner: PartnerService) -> PartnerService:
    return shared_partner


@pytest.fixture(scope="module")
def airflow(shared_running: Standalone) -> Standalone:
    """The shared Airflow with these tests' workflows and sensors unpaused, and their file parsed again
    since: Airflow starts an AssetWatcher (the Redis queue's) when it parses a DAG that is not paused."""
    for dag_id in [*RUNS, *SENSORS]:
        response = shared_running.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert response.status_code == 200, response.text
    token = shared_running.api("GET", "/dags/order_events").json()["file_token"]
    assert shared_running.api("PUT", f"/parseDagFile/{token}").status_code == 201
    return shared_running


def _wait(what: str, probe, timeout: float = 120, poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(poll)
    raise TimeoutError(f"{what}: not seen in {timeout} s")


def _task_states(airflow: Standalone, dag_id: str) -> list[tuple[str, str, str]]:
    runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"}).json()
    found = []
    for run in runs["dag_runs"]:
        tis = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances").json()
        found += [(run["dag_run_id"], ti["task_id"], ti["state"]) for ti in tis["task_instances"]]
    return found


def _runs(airflow: Standalone, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
    params = {"order_by": "run_after", **({"run_type": run_type} if run_type else {})}
    return airflow.api("GET", f"/dags/{dag_id}/dagRuns", params=params).json()["dag_runs"]


def _output(airflow: Standalone, dag_id: str, run_id: str, task_id: str) -> Any:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    value = airflow.api("GET", path).json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def _finished(airflow: Standalone, dag_id: str, count: int) -> list[dict[str, Any]]:
    runs = [r for r in _runs(airflow, dag_id, "asset_triggered") if r["state"] in ("success", "failed")]
    return runs if len(runs) >= count else []


def test_new_leads_fire_the_deferred_sensor_and_exactly_those_rows_are_qualified(airflow, business):
    # Waiting: the sensor task is deferred (in the triggerer), not running in a worker slot.
    waiting = _wait(
        "a deferred lead sensor",
        lambda: [s for s in _task_states(airflow, "lead_qualification__sensor") if s[2] == "deferred"],
    )
    assert waiting[0][1] == "wait_for_new_rows"
    assert _runs(airflow, "lead_qualification", "asset_triggered") == []  # the seeded rows are not new

    added = datetime.now(UTC)
    insert_rows(
        business, leads, [{**lead, "created_at": added.isoformat(timespec="seconds")} for lead in NEW_LEADS]
    )
    (run,) = _wait("a lead_qualification run", lambda: _finished(airflow, "lead_qualification", 1))
    seen = datetime.now(UTC)  # after the sensor fired
    assert run["state"] == "success"
    scores = _output(airflow, "lead_qualification", run["dag_run_id"], "score_leads")
    assert sorted(lead["id"] for lead in scores["leads"]) == ["L-9001", "L-9002", "L-9003"]
    assert {lead["id"]: lead["tier"] for lead in scores["leads"]} == {
        "L-9001": "hot",
        "L-9002": "cold",
        "L-9003": "warm",
    }
    # A new sensor run waits again, from the new mark: the same rows are never handed out twice.
    sensor_runs = _wait(
        "the next deferred lead sensor",
        lambda: (
            (states := _task_states(airflow, "lead_qualification__sensor"))[0][2] == "deferred"
            and len(states) >= 2
            and states
        ),
    )
    assert [state for _, _, state in sensor_runs[:2]] == ["deferred", "success"]
    store = EventStore(engine_for(f"sqlite:///{airflow.home / 'baton_store.db'}"))
    marks = [
        e.payload
        for run_id in store.run_ids()
        for e in store.read(run_id, types=["trigger.fired"])
        if e.workflow == "lead_qualification__sensor"
    ]
    assert [(m["count"], m["mark_from"], m["mark_to"]) for m in marks] == [(0, None, 14), (3, 14, 17)]
    # How late the sensor saw them (its time_column, created_at, is when they were added, to the second): the
    # monitor's sensor_lag, between the insert and the moment the test saw the run finished.
    assert 0 <= marks[1]["lag_s"] <= (seen - added).total_seconds() + 1, (marks[1], seen, added)

    # The finished run emitted qualified_leads: lead_followup ran with its payload.
    (followup,) = _wait("a lead_followup run", lambda: _finished(airflow, "lead_followup", 1))
    assert followup["state"] == "success"
    plan = _output(airflow, "lead_followup", followup["dag_run_id"], "plan_followups")
    values = _output(airflow, "lead_qualification", run["dag_run_id"], "value_leads")
    assert plan["source_run"] == run["dag_run_id"]
    assert plan["qualified_leads"] == values["qualified_leads"] == 2
    assert [f["lead"] for f in plan["follow_ups"]] == [lead["id"] for lead in values["top_leads"]]
    assert [f["owner"] for f in plan["follow_ups"]] == ["ana", "bo"]


def test_revenue_crossing_the_target_fires_revenue_milestone_once(airflow, business):
    ((first, _, _), *_) = _wait(
        "a deferred revenue sensor",
        lambda: [s for s in _task_states(airflow, "revenue_milestone__sensor") if s[2] == "deferred"],
    )
    assert _runs(airflow, "revenue_milestone", "asset_triggered") == []  # 2,254 of 4,167 so far
    insert_rows(
        business,
        revenue,
        [
            {"day": "2026-11-20", "product": "enterprise", "amount": 1500.0, "customer": "C-900"},
            {"day": "2026-11-21", "product": "enterprise", "amount": 500.0, "customer": "C-901"},
        ],
    )
    (run,) = _wait("a revenue_milestone run", lambda: _finished(airflow, "revenue_milestone", 1))
    assert run["state"] == "success"
    metrics = _output(airflow, "revenue_milestone", run["dag_run_id"], "compute_metrics")
    assert (metrics["month"], metrics["mtd_revenue"], metrics["milestone_reached"]) == (
        "2026-11",
        4254.0,
        True,
    )
    announcement = _output(airflow, "revenue_milestone", run["dag_run_id"], "announce_milestone")
    assert announcement["headline"] == "Revenue milestone reached for 2026-11"
    # More revenue in the same month does not fire again: once per period. Shown by a look that must come
    # after the insert: the deferred sensor run's task is set skipped (no asset event; clearing it fails in
    # Airflow 3.3 on a DAG with a deadline), and the continuous sensor DAG's next run looks in the worker
    # before it defers. That run deferred is a look that did not fire (one that fired succeeds).
    sensor = "revenue_milestone__sensor"
    ((waiting, task_id, _),) = _wait(
        "the next deferred revenue sensor",
        lambda: [s for s in _task_states(airflow, sensor)[:1] if s[2] == "deferred" and s[0] != first],
    )
    insert_rows(
        business, revenue, [{"day": "2026-11-21", "product": "pro", "amount": 99.0, "customer": "C-9"}]
    )
    path = f"/dags/{sensor}/dagRuns/{waiting}/taskInstances/{task_id}"
    skipped = airflow.api("PATCH", path, json={"new_state": "skipped"})
    assert skipped.status_code == 200, skipped.text

    def looked_again() -> bool:
        (run_id, _, state), *_ = _task_states(airflow, sensor)
        if run_id in (first, waiting):
            return False
        assert state != "success", f"the sensor fired again for 2026-11 (run {run_id})"
        return state == "deferred"

    _wait("the next sensor run deferred after its look", looked_again)
    assert len(_runs(airflow, "revenue_milestone", "asset_triggered")) == 1


def test_payments_matching_the_compliance_rule_start_a_review_of_exactly_those(airflow, business):
    _wait(
        "a deferred compliance sensor",
        lambda: [s for s in _task_states(airflow, "compliance_monitoring__sensor") if s[2] == "deferred"],
    )
    insert_rows(
        business,
        payments,
        [
            {
                "id": pid,
                "customer": c,
                "country": country,
                "amount": amount,
                "currency": "USD",
                "day": "2026-11-21",
            }
            for pid, c, country, amount in (
                ("P-9001", "C-1", "DE", 25000.0),
                ("P-9002", "C-2", "FR", 120.0),
                ("P-9003", "C-3", "KP", 300.0),
            )
        ],
    )
    (run,) = _wait("a compliance_monitoring run", lambda: _finished(airflow, "compliance_monitoring", 1))
    findings = _output(airflow, "compliance_monitoring", run["dag_run_id"], "review_payments")
    assert [(f["payment"], f["severity"]) for f in findings["findings"]] == [
        ("P-9003", "critical"),
        ("P-9001", "high"),
    ]
    assert findings["rule"] == "baton_business:payments rule large_or_sanctioned"


def test_a_redis_message_starts_a_run_through_an_asset_watcher(airflow, partner):
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    message = {"order": "O-77", "amount": 129.5}

    # Pub/sub keeps nothing: publish once the watcher listens (PUBLISH says how many subscribers got it).
    _wait("the watcher's subscription", lambda: client.publish("baton.orders", json.dumps(message)), poll=1)
    (run,) = _wait("an order_events run", lambda: _finished(airflow, "order_events", 1))
    assert run["state"] == "success"
    (posted,) = partner.posts("/orders")
    # The watcher's event carries Redis's message: its channel and the published data.
    assert (posted["body"]["channel"], json.loads(posted["body"]["data"])) == ("baton.orders", message)


def test_an_external_system_triggers_a_run_with_the_official_client(airflow):
    import airflow_client.client as client
    import httpx
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

    token = httpx.post(
        f"{airflow.url}/auth/token", json={"username": "admin", "password": airflow.password}, timeout=30
    ).json()["access_token"]
    config = client.Configuration(host=airflow.url, access_token=token)
    with client.ApiClient(config) as api:
        runs = DagRunApi(api)
        created = runs.trigger_dag_run(
            "lead_qualification",
            TriggerDAGRunPostBody(logical_date=None, conf={"region": "emea", "min_score": 40}),
        )
        assert created.conf == {"region": "emea", "min_score": 40}
        finished = airflow.wait_for_run("lead_qualification", created.dag_run_id)
        assert (finished["state"], finished["run_type"]) == ("success", "manual")
        scores = _output(airflow, "lead_qualification", created.dag_run_id, "score_leads")
        assert scores["region"] == "emea" and {lead["region"] for lead in scores["leads"]} == {"emea"}
        with pytest.raises(client.ApiException) as refused:
            runs.trigger_dag_run(
                "lead_qualification", TriggerDAGRunPostBody(logical_date=None, conf={"region": "mars"})
            )
        assert refused.value.status == 400 and "mars" in refused.value.body
