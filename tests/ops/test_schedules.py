"""runs_started (baton.ops.monitor.schedules): the runs a scheduled workflow's cron said should start, against the
scheduled runs that did, watched only while Airflow says the DAG is unpaused; on a real store (SQLite and
PostgreSQL) and a local HTTP server answering as Airflow's REST API (the real API:
tests/integration/test_airflow.py)."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from baton.events.event import Event
from baton.ops.airflow_api import AirflowApi, AirflowApiError
from baton.ops.monitor import loop, schedules, signals
from baton.spec.monitoring import Monitoring
from tests.ops.test_airflow_api import _Api

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BROKEN = "workflows/broken_schedule.yaml"


def _pages(unpaused: list[str]):
    """Answers GET /api/v2/dags?paused=false by pages of 100, as Airflow does."""

    def body(path: str) -> bytes:
        query = parse_qs(urlsplit(path).query)
        assert query["paused"] == ["false"], path
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        page = unpaused[offset : offset + limit]
        return json.dumps({"dags": [{"dag_id": d, "is_paused": False} for d in page]}).encode()

    return body


@pytest.fixture
def airflow_api(monkeypatch):
    """A local Airflow REST API listing ``api.unpaused`` as the unpaused DAGs, named by the connection."""
    unpaused: list[str] = []
    server = _Api(_pages(unpaused))
    server.unpaused = unpaused
    # A password no other test's text holds: reading the connection registers it with Airflow's secrets
    # masker for the rest of this worker process ("secret" then masked another test's message).
    conn = {"conn_type": "http", "host": server.url, "login": "admin", "password": "Qx4-schedules-api-pw"}
    monkeypatch.setenv("AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps(conn))
    yield server
    server.close()


def _started(workflow: str, at: datetime, run_type: str = "scheduled") -> Event:
    return Event(
        type="run.started",
        run_id=f"{run_type}__{at.isoformat()}",
        workflow=workflow,
        ts=at,
        payload={"run_type": run_type, "logical_date": at.isoformat()},
    )


def test_due_times_follow_the_cron_in_its_timezone_and_are_bounded():
    quarter = schedules.due("*/15 * * * *", "UTC", NOW - timedelta(hours=1), NOW)
    assert [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for t in quarter] == [
        "11:15",
        "11:30",
        "11:45",
        "12:00",
    ]
    # 09:00 in Paris is 07:00 UTC in summer and 08:00 in winter (the clocks went back on 25 October)
    paris = schedules.due("0 9 * * *", "Europe/Paris", datetime(2026, 10, 24, tzinfo=UTC), NOW)
    hours = {datetime.fromtimestamp(t, UTC).strftime("%m-%d %H") for t in paris}
    assert {"10-24 07", "10-25 08", "11-24 08"} <= hours and "10-25 07" not in hours
    # every minute for 30 days: the latest MAX_DUE of them, the last one now
    busy = schedules.due("* * * * *", "UTC", NOW - timedelta(days=30), NOW)
    assert len(busy) == schedules.MAX_DUE and busy[-1] == NOW.timestamp()
    assert busy[0] == (NOW - timedelta(minutes=schedules.MAX_DUE - 1)).timestamp()


def test_a_workflow_is_watched_from_the_first_tick_that_saw_it_unpaused_with_its_schedule(clean):
    daily, hourly = ("0 9 * * *", "UTC"), ("0 * * * *", "UTC")
    store = clean
    assert schedules.watch(store, {"a": daily, "b": daily}, {"a", "other_dag"}, NOW) == {
        "a": schedules.Watched("a", "0 9 * * *", "UTC", NOW)
    }
    later = NOW + timedelta(hours=1)
    assert schedules.watch(store, {"a": daily, "b": daily}, {"a", "b"}, later) == {
        "a": schedules.Watched("a", "0 9 * * *", "UTC", NOW),  # still since the first tick
        "b": schedules.Watched("b", "0 9 * * *", "UTC", later),
    }
    # a paused then unpaused; b's schedule changed: both watched anew from when they were seen so
    assert schedules.watch(store, {"a": daily, "b": hourly}, {"b"}, later + timedelta(hours=1)) == {
        "b": schedules.Watched("b", "0 * * * *", "UTC", later + timedelta(hours=1))
    }
    again = later + timedelta(hours=2)
    assert schedules.watch(store, {"a": daily, "b": hourly}, {"a", "b"}, again)["a"].since == again


def test_ticks_racing_each_other_agree_on_since_when_a_workflow_is_watched(clean):
    """Eight ticks at once (the monitor's run and `baton monitor tick`, each its own clock): the state is
    read and written under lock, so exactly one of them starts the watch and every other one keeps its
    'since'."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(8)

    def tick(i: int) -> datetime:
        barrier.wait()
        return schedules.watch(clean, {"a": ("0 9 * * *", "UTC")}, {"a"}, NOW + timedelta(seconds=i))[
            "a"
        ].since

    with ThreadPoolExecutor(8) as pool:
        seen = [f.result() for f in [pool.submit(tick, i) for i in range(8)]]
    assert len(set(seen)) == 1 and NOW <= seen[0] <= NOW + timedelta(seconds=7), seen
    assert (
        schedules.watch(clean, {"a": ("0 9 * * *", "UTC")}, {"a"}, NOW + timedelta(hours=1))["a"].since
        == seen[0]
    )


def test_only_the_workflows_scheduled_runs_count_as_started(clean):
    store = clean
    at = NOW - timedelta(minutes=30)
    store.append(
        [
            _started("a", at),
            _started("a", at + timedelta(minutes=1), "manual"),
            _started("a", at + timedelta(minutes=2), "asset_triggered"),
            _started("b", at + timedelta(minutes=3)),
            _started("a", NOW - timedelta(hours=5)),  # before since
        ]
    )
    signals.fold(store, NOW)  # what a tick does first: the starts become the runs_started signal
    assert schedules.started(store, "a", NOW - timedelta(hours=1)).tolist() == [at.timestamp()]
    assert schedules.started(store, "b", NOW - timedelta(hours=1)).tolist() == [
        (at + timedelta(minutes=3)).timestamp()
    ]


def test_a_missed_scheduled_run_opens_an_incident_and_the_next_start_resolves_it(
    clean, tmp_path, airflow_api
):
    """An hourly workflow, unpaused: its runs start a minute past each hour, then the 10:00 one does not
    start. Ten minutes after it was due (the grace) a runs_started incident opens for the workflow (the
    run due before it was watched, at 06:00, is nobody's miss); when runs start again it resolves. A
    paused workflow due as often opens nothing."""
    store = clean
    dags = tmp_path / "dags"
    (dags / "workflows").mkdir(parents=True)
    for name in ("hourly_report", "paused_report"):
        (dags / "workflows" / f"{name}.yaml").write_text(
            f"workflow: {name}\nversion: 1\ndescription: Reports.\nowner: ops\n"
            'schedule: {cron: "0 * * * *", timezone: UTC}\n'
            "steps:\n  - id: report\n    skill: http_post\n    instruction: Post the report.\n"
            "    with: {url: 'https://example.com/hook', payload: {}}\n"
        )
    airflow_api.unpaused[:] = ["hourly_report", "baton_monitor"]
    config = Monitoring()
    start = NOW.replace(hour=6, minute=30)
    first = loop.tick(store, config, start, dags=dags)
    assert first.anomalies == []
    store.append([_started("hourly_report", NOW.replace(hour=h, minute=1)) for h in (7, 8, 9)])
    assert loop.tick(store, config, NOW.replace(hour=10, minute=9), dags=dags).anomalies == []
    opened = loop.tick(store, config, NOW.replace(hour=10, minute=11), dags=dags)
    assert [(t.type, t.kind, t.where) for t in opened.transitions][:1] == [
        ("incident.opened", "runs_started", "workflow:hourly_report")
    ]
    assert opened.transitions[0].detail["reason"].startswith("the last 1 scheduled run(s) did not start")
    (anomaly,) = opened.anomalies
    assert anomaly.evidence["missed"] == [NOW.replace(hour=10).timestamp()]
    assert anomaly.evidence["reason"].startswith("the last 1 scheduled run(s) did not start within 10m")
    assert anomaly.evidence["due"] == 4  # 07:00 to 10:00; 06:00 was before it was watched
    store.append([_started("hourly_report", NOW.replace(hour=h, minute=2)) for h in (11, 12, 13)])
    resolved = loop.tick(store, config, NOW.replace(hour=13, minute=20), dags=dags)
    assert ("incident.resolved", "workflow:hourly_report") in [
        (t.type, t.where) for t in resolved.transitions
    ]


def test_without_the_connection_or_with_a_failing_api_nothing_is_watched_and_the_log_says_why(
    clean, tmp_path, dags_folder, monkeypatch, caplog
):
    monkeypatch.delenv("AIRFLOW_CONN_BATON_AIRFLOW_API", raising=False)
    caplog.set_level(logging.INFO, logger="baton.ops.monitor.schedules")
    with monkeypatch.context() as unread:  # nothing can be watched: the templates are not even read
        unread.setattr(schedules, "scheduled", lambda folder: pytest.fail("templates read for nothing"))
        assert schedules.watched_now(clean, dags_folder, NOW) is None
    assert "runs_started is not watched" in caplog.text and "baton_airflow_api" in caplog.text
    refusing = _Api(b"{}", status=503)
    conn = {"conn_type": "http", "host": refusing.url, "login": "a", "password": "b"}
    monkeypatch.setenv("AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps(conn))
    try:
        assert schedules.watched_now(clean, dags_folder, NOW) is None
    finally:
        refusing.close()
    assert "runs_started is not watched this tick: GET /api/v2/dags" in caplog.text
    assert "Airflow answered 503" in caplog.text


def test_the_scheduled_workflows_are_the_healthy_templates_with_a_cron(tmp_path, dags_folder):
    folder = tmp_path / "dags"
    shutil.copytree(dags_folder, folder, ignore=shutil.ignore_patterns("__pycache__"))
    expected = {
        "compliance_monitoring": ("0 7 * * *", "UTC"),
        "daily_operations": ("0 9 * * *", "UTC"),
        "revenue_milestone": ("0 18 * * *", "UTC"),
        "support_triage": ("*/2 * * * *", "UTC"),
    }
    assert schedules.scheduled(folder) == expected
    # a broken template with a schedule is not watched (the errors file names it), the others are
    (folder / BROKEN).write_text('workflow: broken_schedule\nschedule: "0 * * * *"\nsteps: nope\n')
    assert schedules.scheduled(folder) == expected


def test_unpaused_reads_every_page_and_refuses_a_malformed_answer():
    many = [f"dag_{i:04d}" for i in range(250)]
    server = _Api(_pages(many))
    api = AirflowApi(server.url, "admin", "secret")
    try:
        assert api.unpaused(max_pages=5) == (set(many), True)
        assert len(server.paths) == 1 + 3  # the token, then pages at offsets 0, 100, 200
        ids, complete = api.unpaused(max_pages=2)
        assert (len(ids), complete) == (200, False)  # bounded: the caller is told it is not all
    finally:
        server.close()
    for body in (b'{"dags": "all of them"}', b"[1, 2]", b'{"total_entries": 3}'):
        server = _Api(body)
        try:
            with pytest.raises(AirflowApiError, match=r"GET /dags: Airflow's answer has no list of dags"):
                AirflowApi(server.url, "admin", "secret").unpaused(max_pages=1)
        finally:
            server.close()
