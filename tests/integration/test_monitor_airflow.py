"""The monitor on an Airflow of its own (issue 18): a failing agent opens one incident, its runbook opens the
agent's circuit and routing moves the work, and it resolves once the agent recovered, with Slack told twice.

Most of this test is waiting: on the monitor's ticks, the failures leaving the detector's window, the
circuit's trial after ``probe_after`` and the incident's quiet time. MONITORING makes them short (a tick of
15 s, a window of 1 minute, the shortest, as signals are counted per minute, 20 s of quiet and of probe): 117 s
on an idle machine, against 221 s with only the tick shortened and 170 to 283 s in suite runs with a minute's
tick, a 2-minute window and a minute's quiet and probe. On an Airflow of its own (the probe workflow, its
agents and monitoring.yaml, nothing else) it waits on another test process than the one that runs the shared
Airflow's tests (tests/conftest.py's SLOW_FIRST starts it early)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from devtools.standalone import Standalone
from tests.integration.shared_airflow import (
    MONITORING,
    PROBE_AGENTS,
    PROBE_WORKFLOW,
    _pg_database,
    llm_connection,
)
from tests.integration.test_airflow import _eventually, _incident, _probe, _store

pytestmark = pytest.mark.integration  # it starts a service (an Airflow)

ROOT = Path(__file__).resolve().parents[2]
OWN_DAG_FILES = (
    "baton_workflows.py",
    "baton_template_errors.py",
    "baton_monitor.py",
    "baton_incident_escalation.py",
)


@pytest.fixture(scope="module")
def running(tmp_path_factory, shared_llm_server, shared_slack) -> Iterator[Standalone]:
    """An Airflow whose dags folder holds Baton's DAG files, the bundled roster with the two probe agents,
    the probe workflow and the monitor's settings of minutes; its metadata on PostgreSQL (the monitor's
    ticks and the probes' runs write at once)."""
    root = tmp_path_factory.mktemp("monitor-airflow")
    dags = root / "dags"
    (dags / "workflows").mkdir(parents=True)
    for name in OWN_DAG_FILES:
        shutil.copy(ROOT / "dags" / name, dags / name)
    (dags / "agents.yaml").write_text((ROOT / "dags" / "agents.yaml").read_text() + PROBE_AGENTS)
    (dags / "workflows" / "monitor_probe.yaml").write_text(PROBE_WORKFLOW)
    (dags / "monitoring.yaml").write_text(MONITORING)
    flaky_llm = llm_connection(shared_llm_server, "flaky", "gpt-flaky")
    with _pg_database("baton_monitor_meta") as url:
        metadata = make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        airflow = Standalone(
            root / "home",
            dags_folder=dags,
            settings={
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
                "AIRFLOW_CONN_FLAKY_LLM": json.dumps(flaky_llm),
                "AIRFLOW_CONN_BATON_SLACK": shared_slack.connection,
            },
        )
        airflow.env["AIRFLOW__API__BASE_URL"] = airflow.url
        try:
            airflow.start()
            pools = airflow.command("baton", "pools", "sync")
            assert pools.returncode == 0, pools.stderr[-2000:]
            for dag_id in ("monitor_probe", "baton_monitor"):
                airflow.wait_for_dag(dag_id)
            response = airflow.api("PATCH", "/dags/monitor_probe", json={"is_paused": False})
            assert response.status_code == 200, response.text
            yield airflow
        finally:
            airflow.stop()
            assert airflow.leftover_pids() == [], "an Airflow process outlived the test"


def test_a_failing_agent_opens_one_incident_its_runbook_moves_the_work_and_it_resolves_on_recovery(
    running, shared_llm_server, shared_slack
):
    from baton.coordination.breaker import trials
    from baton.coordination.load import Breakers
    from baton.ops.airflow_api import AirflowApi
    from baton.ops.monitor import record

    store, flaky, where = _store(running), "flaky_prober", "agent:flaky_prober"
    posts = len(shared_slack.posts)
    shared_llm_server.down.add("/flaky/")
    failed = []
    # flaky's items (those steady_prober has no slot for) fail and go to steady_prober; the runs succeed
    for _ in range(5):
        _, events = _probe(running)
        failed += [e for e in events if e.type == "subtask.failed"]
        if len(failed) >= 4:
            break
    assert len(failed) >= 4, f"{len(failed)} failed call(s) of flaky_prober in 5 runs, not 4: {failed}"
    assert {e.agent for e in failed} == {flaky}
    assert Breakers(store).open_until([flaky]) == {}  # its own breaker did not trip

    # The monitor DAG, every tick from now on: one incident opens, its runbook opens flaky's circuit.
    response = running.api("PATCH", "/dags/baton_monitor", json={"is_paused": False})
    assert response.status_code == 200, response.text
    # What runs_started asks Airflow's API each tick (baton.ops.monitor.schedules): the unpaused DAGs, not the others
    live, complete = AirflowApi(running.url, "admin", running.password).unpaused(max_pages=5)
    assert complete and set(live) == {"baton_monitor", "baton_incident_escalation", "monitor_probe"}, live
    opened = _incident(store, where, {"opened", "updated"}, timeout=240)
    # the tick carries out the runbook right after it recorded the incident: a moment later
    _eventually(lambda: flaky in Breakers(store).open_until([flaky]), "the runbook opened flaky's circuit")
    # the tick posts after it recorded the incident
    shared_slack.wait_for(lambda body: f"failure_rate at {where}: opened" in body["text"], timeout=60)
    mine = [p["text"] for p in shared_slack.posts[posts:] if where in p["text"]]
    assert len(mine) == 1, mine

    # Routing moves flaky's work to the other capable agent while its circuit is open.
    _, events = _probe(running)
    selected = [e for e in events if e.type == "agent.selected"]
    assert selected and {e.agent for e in selected} == {"steady_prober"}
    assert all(e.payload["excluded"][flaky].startswith("circuit breaker open until ") for e in selected)

    # flaky recovers. Quiet alone proves nothing while its circuit keeps its work away: a minute after
    # the opening the circuit goes half-open, the next run's item is flaky's trial call, it succeeds and
    # closes the circuit; with no failure for resolve_after the incident resolves. Slack is told once.
    shared_llm_server.down.discard("/flaky/")
    deadline = time.monotonic() + 420
    while not [r for r in record.incidents(store) if r["id"] == opened["id"] and r["status"] == "resolved"]:
        assert time.monotonic() < deadline, f"not resolved within 420 s: {record.incidents(store)}"
        if trials(store, [flaky])[flaky] == "pending":
            _probe(running)  # the traffic the half-opened circuit's trial needs
        else:
            time.sleep(2)  # a run now would only be routed away from flaky, or find its circuit closed
    assert Breakers(store).open_until([flaky]) == {} and Breakers(store).failing([flaky]) == set()
    timeline = record.timeline(store, opened["id"])
    kinds = [e.type for e in timeline]
    assert kinds.count("incident.opened") == 1 and kinds.count("incident.resolved") == 1, kinds
    actions = [e.payload["detail"]["do"] for e in timeline if e.type == "incident.action"]
    done = list(dict.fromkeys(actions))  # an action is both its transition's event and the tick's record
    assert done[:2] == ["open_circuit", "probe_circuit"] and "close_circuit" not in done, actions
    (resolution,) = [e for e in timeline if e.type == "incident.resolved"]
    assert resolution.payload["detail"]["circuit"] == "closed by a trial call that succeeded"
    closed = [e for e in store.read(types=["agent.breaker_closed"]) if e.agent == flaky]
    assert closed, "the trial's success closed flaky's circuit (agent.breaker_closed)"
    shared_slack.wait_for(
        lambda body: where in body["text"] and "incident resolved" in body["text"], timeout=60
    )
    mine = [p["text"] for p in shared_slack.posts[posts:] if where in p["text"]]
    assert len(mine) == 2 and "incident resolved" in mine[1], mine
    response = running.api("PATCH", "/dags/baton_monitor", json={"is_paused": True})
    assert response.status_code == 200, response.text
