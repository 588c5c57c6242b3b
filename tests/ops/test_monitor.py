"""The monitor's minute (issue 18) on a real store, SQLite and PostgreSQL: an agent that starts failing
opens one incident (not an alert per failure), its runbook opens the agent's circuit, one Slack message
goes out; trials of the circuit fail while the agent does, and once one passes and the agent is healthy
again the incident resolves, Slack hears it.
Signals are folded incrementally: each event counted once, however often the monitor runs."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from baton.cli import main as baton
from baton.coordination.load import Breakers
from baton.errors import TemplateError
from baton.events import schema
from baton.events.event import Event
from baton.ops.incidents import Book
from baton.ops.monitor import loop, record, signals
from baton.ops.monitor.actions import _failed_runs_of_agent
from baton.ops.monitor.postmortem import postmortem
from baton.ops.monitor.record import BOOK
from baton.ops.monitor.state import load_state
from baton.spec.monitoring import Monitoring, load_config
from baton.spec.roster import Agent

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def _calls(
    agent: str, start: datetime, minutes: int, per_minute: int, failing: float, seed: int
) -> list[Event]:
    rng = random.Random(seed)
    events = []
    for m in range(minutes):
        for i in range(per_minute):
            ts = start + timedelta(minutes=m, seconds=i)
            failed = rng.random() < failing
            events.append(
                Event(
                    type="step.failed" if failed else "step.succeeded",
                    run_id=f"r-{agent}-{start:%H%M}-{m}-{i}",
                    workflow="w",
                    step="s",
                    agent=agent,
                    try_number=1,
                    ts=ts,
                    payload={"error_class": "AgentError"}
                    if failed
                    else {"duration_s": 0.2 + rng.random() / 10},
                )
            )
    return events


def _history(store) -> None:
    """Two quiet days of alpha and beta at about 1 % failures, one call every two minutes each."""
    start = NOW - timedelta(days=2)
    for agent, seed in (("alpha", 1), ("beta", 2)):
        events = [
            e for i, e in enumerate(_calls(agent, start, 2 * 24 * 60 - 30, 1, 0.01, seed)) if i % 2 == 0
        ]
        store.append(events)


def test_a_failing_agent_opens_one_incident_its_circuit_opens_and_it_resolves_when_healthy(
    clean, slack, monkeypatch, capsys
):
    store = clean
    monkeypatch.setenv("AIRFLOW_CONN_BATON_SLACK", slack.connection)
    config = Monitoring()
    before = len(slack.posts)  # the recorder is the module's: count this test's posts
    _history(store)
    assert loop.tick(store, config, NOW - timedelta(minutes=20)).transitions == []  # quiet: nothing

    # alpha starts failing: 40 % of 6 calls a minute for 10 minutes (24-ish failures), beta stays healthy.
    store.append(_calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.4, 3))
    store.append(_calls("beta", NOW - timedelta(minutes=10), 10, 2, 0.0, 4))
    report = loop.tick(store, config, NOW)
    assert [(t.type, t.where) for t in report.transitions] == [
        ("incident.opened", "agent:alpha"),
        ("incident.action", "agent:alpha"),  # the runbook's first step, issued at once
    ]
    (incident_id,) = {t.incident_id for t in report.transitions}
    assert report.transitions[0].count == 1  # one firing so far
    assert [(a.do, outcome) for a, outcome in report.actions] == [
        (
            "open_circuit",
            "opened the circuit of alpha: routing sends its work to agents with its capabilities",
        )
    ]
    assert set(Breakers(store).open_until(["alpha", "beta"])) == {"alpha"}
    posts = slack.posts[before:]
    assert len(posts) == 1 and "failure_rate at agent:alpha: opened" in posts[0]["text"]

    # The storm goes on: the same incident counts it, the circuit is not opened twice, Slack hears nothing new.
    store.append(_calls("alpha", NOW, 2, 6, 0.5, 5))
    again = loop.tick(store, config, NOW + timedelta(minutes=2))
    assert {t.incident_id for t in again.transitions} <= {incident_id}
    assert [a.do for a, _ in again.actions] == []
    assert len(slack.posts[before:]) == 1

    # probe_after (5 minutes) the opening, the circuit goes half-open: routing takes alpha again, and its
    # next call is a trial. Here it fails: the breaker opens at once (one failure, not alpha's three).
    alpha = Agent(name="alpha", capabilities=["x"])
    probing = loop.tick(store, config, NOW + timedelta(minutes=6))
    assert [(a.do, outcome) for a, outcome in probing.actions] == [
        (
            "probe_circuit",
            "half-opened the circuit of alpha: its next call is a trial (a failure opens it again)",
        )
    ]
    assert Breakers(store).open_until(["alpha"]) == {}
    failures, until = Breakers(store).failure(alpha, "AgentError: still down")
    assert failures == alpha.circuit_breaker.failures and until is not None
    held = loop.tick(store, config, NOW + timedelta(minutes=7))
    assert [(t.type, t.detail.get("trial_outcome", "")[:6]) for t in held.transitions][-2:] == [
        ("incident.updated", "failed"),
        ("incident.action", ""),
    ]
    assert [(a.do, outcome.split(":")[0]) for a, outcome in held.actions] == [
        ("open_circuit", "opened the circuit of alpha")
    ]
    assert "alpha" in Breakers(store).open_until(["alpha"])  # held by the incident again, not for 5 minutes
    # The next trial, 5 minutes later, passes: alpha's success closes the circuit (as a closing).
    assert [a.do for a, _ in loop.tick(store, config, NOW + timedelta(minutes=12)).actions] == [
        "probe_circuit"
    ]
    assert Breakers(store).success("alpha") is True
    assert len(slack.posts[before:]) == 1  # trials are the incident's events, not messages

    # alpha's calls succeed again: resolved after incidents.resolve_after without an anomaly, with the
    # circuit its trial closed (nothing to close again), Slack is told once.
    store.append(_calls("alpha", NOW + timedelta(minutes=40), 30, 6, 0.0, 6))
    later = NOW + timedelta(minutes=75)
    resolved = loop.tick(store, config, later)
    assert ("incident.resolved", "agent:alpha") in [(t.type, t.where) for t in resolved.transitions]
    (resolution,) = [t for t in resolved.transitions if t.type == "incident.resolved"]
    assert resolution.detail["circuit"] == "closed by a trial call that succeeded"
    assert "close_circuit" not in [a.do for a, _ in resolved.actions]
    assert Breakers(store).open_until(["alpha"]) == {} and Breakers(store).failing(["alpha"]) == set()
    posts = slack.posts[before:]
    assert len(posts) == 2 and "incident resolved" in posts[1]["text"]

    # Every transition is an event of the incident; `incidents` lists it resolved.
    kinds = [e.type for e in record.timeline(store, incident_id)]
    transitions = [k for k in kinds if k.startswith("incident.")]
    assert transitions[0] == "incident.opened" and "incident.resolved" in transitions, kinds
    assert transitions.index("incident.resolved") > transitions.index("incident.updated")
    assert kinds.count("alert.raised") == 2  # the Slack messages, recorded with the incident
    (row,) = [r for r in record.incidents(store) if r["id"] == incident_id]
    assert (row["status"], row["where"]) == ("resolved", "agent:alpha")

    # The same from the command line, on this store.
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    assert baton(["incidents"]) == 0
    listed = capsys.readouterr().out
    assert f"{incident_id}  resolved     critical  failure_rate         agent:alpha" in listed
    assert baton(["incident", "show", incident_id]) == 0
    shown = capsys.readouterr().out
    for fact in ("incident.opened", "open_circuit", "probe_circuit", "incident.resolved", "alert.raised"):
        assert fact in shown


def test_each_event_is_folded_once_however_often_the_monitor_runs(clean):
    store = clean
    store.append(_calls("gamma", NOW - timedelta(minutes=30), 20, 5, 0.2, 7))
    assert signals.fold(store, NOW, batch=7) == 7  # a bounded batch
    while signals.fold(store, NOW, batch=7):
        pass
    assert signals.fold(store, NOW) == 0  # nothing new: nothing read
    counts = signals.counts(store, "failure_rate", "agent:gamma", NOW - timedelta(hours=1))
    assert int(counts.total.sum()) == 100
    failed = sum(
        1 for e in _calls("gamma", NOW - timedelta(minutes=30), 20, 5, 0.2, 7) if e.type == "step.failed"
    )
    assert int(counts.bad.sum()) == failed
    latency = signals.points(store, "latency", "agent:gamma", NOW - timedelta(hours=1))
    assert len(latency.time) == 20 and 0.2 <= float(latency.value.min()) <= float(latency.value.max()) < 0.31


def test_a_budgets_refusals_are_not_the_agents_failures(clean):
    """A budget refuses a fan-out's calls before they start (BudgetExceeded): the agent made no call, so
    its failure_rate counts none of them (its breaker does not either), and no incident opens on it."""
    store = clean
    calls = _calls("delta", NOW - timedelta(minutes=30), 10, 3, 0.0, 5)
    refused = [
        Event(type="subtask.failed", run_id=f"r-refused-{i}", workflow="w", step="s", agent="delta",
              try_number=1, ts=NOW - timedelta(minutes=20, seconds=i),
              payload={"subtask": f"item-{i}", "error_class": "BudgetExceeded", "error": "budget 'day' refused"})
        for i in range(40)
    ]  # fmt: skip
    store.append(calls + refused)
    signals.fold(store, NOW + timedelta(minutes=1))
    counts = signals.counts(store, "failure_rate", "agent:delta", NOW - timedelta(hours=1))
    assert (int(counts.total.sum()), int(counts.bad.sum())) == (30, 0)
    assert not signals.bad_payload("failure_rate", refused[0].payload)
    assert signals.bad_payload("failure_rate", {"error_class": "AgentError"})


def test_first_folds_racing_each_other_count_each_event_once(clean):
    """Four folds at once on a store that has never been folded (no cursor row yet to lock): each of the
    100 events is counted once, not once per fold."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    store = clean
    store.append(_calls("delta", NOW - timedelta(minutes=30), 20, 5, 0.2, 9))
    barrier = threading.Barrier(4)

    def fold() -> int:
        barrier.wait()
        return signals.fold(store, NOW)

    with ThreadPoolExecutor(4) as pool:
        folded = sorted(f.result() for f in [pool.submit(fold) for _ in range(4)])
    assert folded == [0, 0, 0, 100]
    counts = signals.counts(store, "failure_rate", "agent:delta", NOW - timedelta(hours=1))
    assert int(counts.total.sum()) == 100


def test_an_event_younger_than_the_settle_time_waits_for_the_next_tick(clean):
    store = clean
    store.append(_calls("delta", NOW, 1, 3, 0.0, 8))
    assert signals.fold(store, NOW) == 0  # written this second: a writer with a lower seq may commit yet
    assert signals.fold(store, NOW + timedelta(minutes=1)) == 3


def test_a_young_event_holds_back_the_ones_after_it_so_none_is_skipped(clean):
    store = clean
    young = _calls("zeta", NOW, 1, 1, 0.0, 11)  # stamped now: not settled at NOW
    older = _calls("zeta", NOW - timedelta(minutes=5), 1, 2, 0.0, 12)  # stamped earlier, stored after
    store.append(young)
    store.append(older)
    assert signals.fold(store, NOW) == 0  # the first in sequence is young: it and what follows wait
    assert signals.fold(store, NOW + timedelta(minutes=1)) == 3
    counts = signals.counts(store, "failure_rate", "agent:zeta", NOW - timedelta(hours=1))
    assert int(counts.total.sum()) == 3


def test_old_buckets_are_purged(clean):
    store = clean
    store.append(_calls("eps", NOW - timedelta(days=40), 3, 1, 0.0, 9))
    signals.fold(store, NOW)
    # 3 minutes of the agent's failure_rate, schema_failure_rate and latency, and of workflow w's escalation_rate
    assert signals.purge(store, NOW) == 12
    with store.engine.connect() as conn:
        assert (
            conn.scalar(
                select(schema.signal_buckets.c.scope).where(schema.signal_buckets.c.scope == "agent:eps")
            )
            is None
        )


def test_a_broken_monitoring_file_is_refused_with_its_path_and_fix(tmp_path):
    (tmp_path / "monitoring.yaml").write_text("monitoring:\n  detectors:\n    failure_rat: {}\n")
    with pytest.raises(
        TemplateError,
        match=r"monitoring.detectors.failure_rat: unknown key 'failure_rat' \(fix: did you mean 'failure_rate'\?\)",
    ):
        load_config(tmp_path)

    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )  # nine levels of ten aliases each: 10^9 values once expanded
    for text, message in (
        (bomb, "monitoring.yaml:6: more than 200,000 values once its aliases (*name) are expanded"),
        ("monitoring:\n  x: " + "[" * 100 + "]" * 100 + "\n", "monitoring.yaml:2: monitoring.x"),
        ("monitoring: {}\nmonitoring: {}\n", "monitoring.yaml:2: monitoring: duplicate key 'monitoring'"),
    ):
        (tmp_path / "monitoring.yaml").write_text(text)
        with pytest.raises(TemplateError) as caught:
            load_config(tmp_path)
        assert str(caught.value.issues[0]).startswith(message), str(caught.value)
    assert load_config(tmp_path / "absent") == Monitoring()


def test_the_monitor_dag_runs_every_tick_of_its_folders_monitoring_file_and_loads_when_it_is_broken(tmp_path):
    """dags/baton_monitor.py, parsed the way the dag processor parses it, from a folder of its own."""
    import shutil

    from airflow.dag_processing.dagbag import BundleDagBag

    from tests.conftest import DAGS

    shutil.copy(DAGS / "baton_monitor.py", tmp_path / "baton_monitor.py")

    def schedule() -> timedelta:
        bag = BundleDagBag(dag_folder=str(tmp_path), bundle_path=tmp_path, bundle_name="monitor-tick")
        assert bag.import_errors == {} and list(bag.dags) == ["baton_monitor"], bag.import_errors
        return bag.dags["baton_monitor"].timetable.delta

    assert schedule() == timedelta(minutes=1)  # no monitoring.yaml: the minute
    (tmp_path / "monitoring.yaml").write_text("monitoring:\n  tick: 15s\n")
    assert schedule() == timedelta(seconds=15)
    for broken in ("monitoring:\n  tick: 5s\n", "monitoring: [\n", "\xff\xfe", "a: &a [*a]\n"):
        (tmp_path / "monitoring.yaml").write_bytes(broken.encode("latin-1"))
        assert schedule() == timedelta(minutes=1), broken  # still loads; its runs say what is wrong
        with pytest.raises(TemplateError):
            load_config(tmp_path)


def test_the_monitor_dag_runs_a_tick_in_airflow(airflow_db):
    """The bundled baton_monitor DAG, in a real dag.test(): one tick over the session's store."""
    from baton.events import EventStore
    from tests.conftest import DAGS, run_dag_test_in_subprocess

    store = EventStore.from_airflow()
    probe = f"monitor_probe_{random.randrange(10**9)}"  # its own agent: the session's store may hold others
    store.append(_calls(probe, NOW - timedelta(minutes=10), 1, 2, 0.5, 10))
    run, results, output = run_dag_test_in_subprocess(DAGS, "dags-folder", "baton_monitor")
    assert run.state == "success", output[-3000:]
    state, summary = results["tick"]
    assert state == "success"
    assert set(summary) == {"events_folded", "anomalies", "transitions", "actions", "notified"}
    assert summary["events_folded"] >= 2  # at least the probe's two calls, counted once
    counted = signals.counts(store, "failure_rate", f"agent:{probe}", NOW - timedelta(hours=1))
    assert int(counted.total.sum()) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["incident", "show", "../../etc/passwd"], "'../../etc/passwd' is not an incident id"),
        (["incident", "show", "inc-" + "a" * 5000], "is not an incident id: they look like inc-1cd07b4561be"),
        (["incidents", "--limit", "100000"], "invalid choice"),
    ],
)
def test_bad_incident_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        baton(argv)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_retry_failed_runs_on_an_agent_picks_the_runs_that_failed_after_its_steps_failed(clean):
    store, since = clean, NOW - timedelta(minutes=30)
    store.append(
        [
            # failed at alpha's step, then the run failed: retried
            Event(type="step.failed", run_id="r1", workflow="w", step="s", agent="alpha", ts=NOW),
            Event(type="run.failed", run_id="r1", workflow="w", ts=NOW),
            # alpha's item failed, the run still succeeded (reassigned): not retried
            Event(
                type="subtask.failed",
                run_id="r2",
                workflow="w",
                step="s",
                agent="alpha",
                ts=NOW,
                payload={"subtask": "i1"},
            ),
            Event(type="run.succeeded", run_id="r2", workflow="w", ts=NOW),
            # failed at another agent's step: not alpha's
            Event(type="step.failed", run_id="r3", workflow="w", step="s", agent="beta", ts=NOW),
            Event(type="run.failed", run_id="r3", workflow="w", ts=NOW),
            # before the incident: not retried
            Event(
                type="step.failed",
                run_id="r0",
                workflow="v",
                step="s",
                agent="alpha",
                ts=since - timedelta(hours=1),
            ),
            Event(type="run.failed", run_id="r0", workflow="v", ts=since - timedelta(hours=1)),
        ]
    )
    assert _failed_runs_of_agent(store, "alpha", since) == [("w", "r1")]


def test_a_lower_concurrency_runbook_caps_the_agents_slots_and_the_resolution_gives_back_its_cap(clean):
    """A runbook that lowers a failing agent's concurrency to 1; another incident had capped it to 3
    before: at resolution the agent gets 3 back, not its max_concurrency."""
    from baton.coordination import load
    from baton.coordination.load import Slots
    from baton.spec.monitoring import load_monitoring
    from baton.spec.roster import Agent

    store = clean
    load.cap(store, "alpha", 3)
    config = load_monitoring(
        {"monitoring": {"runbooks": {"failure_rate": [{"do": "lower_concurrency", "to": 1}]}}}
    )
    _history(store)
    store.append(_calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.4, 3))
    report = loop.tick(store, config, NOW)
    assert [(a.do, outcome) for a, outcome in report.actions] == [
        ("lower_concurrency", "lowered the concurrency of alpha to 1 slot(s)")
    ]
    alpha = Agent(name="alpha", capabilities=["x"], max_concurrency=5)
    assert Slots(store).limits([alpha]) == {"alpha": 1}
    assert Slots(store).acquire(alpha, "a", timedelta(minutes=1)) == 0
    assert Slots(store).acquire(alpha, "b", timedelta(minutes=1)) is None
    assert Breakers(store).open_until(["alpha"]) == {}  # this runbook does not open the circuit

    store.append(_calls("alpha", NOW + timedelta(minutes=40), 30, 6, 0.0, 6))
    resolved = loop.tick(store, config, NOW + timedelta(minutes=75))
    assert [(a.do, o) for a, o in resolved.actions] == [
        ("restore_concurrency", "gave alpha back the cap of 3 slot(s) it had before the incident")
    ]
    assert Slots(store).limits([alpha]) == {"alpha": 3}
    again = loop.tick(store, config, NOW + timedelta(minutes=76))
    assert again.actions == []  # never twice


def _fired(workflow: str, start: datetime, minutes: int, every_s: int) -> list[Event]:
    return [
        Event(
            type="trigger.fired",
            run_id=f"sensor-{workflow}-{start:%d%H%M}-{i}",
            workflow=f"{workflow}__sensor",
            step="wait_for_rows",
            try_number=1,
            ts=start + timedelta(seconds=i * every_s),
            payload={"kind": "new_rows", "source": "baton_business:orders", "count": 1},
        )
        for i in range(minutes * 60 // every_s)
    ]


def test_a_sensor_that_stops_finding_rows_opens_a_silence_incident_even_past_the_detectors_reach(clean):
    """orders' sensor fires twice a minute for two hours, then stops: no incident at 10 minutes of
    silence (under min_silence), one at 20; with a 30-minute lookback and no seasonality the reach is
    45 minutes, yet after 3 hours of silence the incident is still open (read before the last event);
    when the sensor fires again it resolves. A sensor that keeps firing (invoices') opens nothing."""
    from baton.spec.monitoring import load_monitoring

    store = clean
    config = load_monitoring(
        {"monitoring": {"detectors": {"sensor_silence": {"silence": {"lookback": "30m", "seasonal": False}}}}}
    )
    start = NOW - timedelta(hours=2)
    store.append(_fired("orders", start, 120, 30) + _fired("invoices", start, 120 + 180, 30))
    assert loop.tick(store, config, NOW + timedelta(minutes=10)).transitions == []
    opened = loop.tick(store, config, NOW + timedelta(minutes=20))
    assert [(t.type, t.kind, t.where) for t in opened.transitions][:1] == [
        ("incident.opened", "sensor_silence", "sensor:orders")
    ]
    (anomaly,) = opened.anomalies
    assert anomaly.evidence["detector"] == "silence"
    assert anomaly.evidence["expected"] == pytest.approx(40.0, abs=2.5), anomaly.evidence  # 2 a minute x 20
    later = loop.tick(store, config, NOW + timedelta(hours=3))
    assert [a.where for a in later.anomalies] == ["sensor:orders"]  # invoices' sensor kept firing
    assert [r["status"] for r in record.incidents(store) if r["where"] == "sensor:orders"] == ["updated"]
    store.append(_fired("orders", NOW + timedelta(hours=3, minutes=1), 59, 30))
    resolved = loop.tick(store, config, NOW + timedelta(hours=4))
    assert ("incident.resolved", "sensor:orders") in [(t.type, t.where) for t in resolved.transitions]


# The detectors of bench/incidents.py's campaign: windows of minutes, baselines of a few minutes' warm-up.
CAMPAIGN = {
    "failure_rate": {"rate": {"windows": ["2m"], "baseline": "1h", "min_calls": 5, "min_bad": 3}},
    "sensor_silence": {"silence": {"min_silence": "1m", "lookback": "5m", "seasonal": False, "alpha": 0.001}},
}


def test_a_sensor_firing_every_few_seconds_is_not_silent_just_after_a_minute_begins(clean):
    """A campaign's false alarm: a sensor firing every 5 s, judged 7 s into a minute whose firings are not
    folded yet (younger than the settle time), looked 67 s silent when its minute's events were placed at
    the minute's start. Measured from its last firing, it is silent 9 s; once it really stops, the silence
    is found a minute after its last firing, not later."""
    from baton.spec.monitoring import load_monitoring

    store = clean
    config = load_monitoring({"monitoring": {"detectors": CAMPAIGN}})
    start = NOW - timedelta(minutes=10) + timedelta(seconds=3)  # firings at :03, :08, ... :58 of each minute
    store.append(_fired("orders", start, 10, 5))  # the last at NOW - 2 s
    quiet = loop.tick(store, config, NOW + timedelta(seconds=7))
    assert [a.kind for a in quiet.anomalies] == []
    b = schema.signal_buckets.c
    with store.engine.connect() as conn:
        latest = conn.scalar(
            select(b.value_sum).where(b.kind == "sensor_silence", b.bucket == NOW - timedelta(minutes=1))
        )
    assert latest == 58.0  # the minute's latest firing, at its 58th second (kept as the largest)
    assert loop.tick(store, config, NOW + timedelta(seconds=50)).anomalies == []  # 52 s: under min_silence
    late = loop.tick(store, config, NOW + timedelta(seconds=63))
    (anomaly,) = late.anomalies
    assert (anomaly.kind, anomaly.where) == ("sensor_silence", "sensor:orders")
    assert anomaly.evidence["silence_s"] == pytest.approx(65.0)  # from the last firing, to the second


def test_a_two_minute_window_judged_seconds_into_a_minute_holds_two_minutes_of_calls(clean):
    """A campaign's miss: 41 % of an agent's calls failing for minutes, against a 5-minute warm-up without
    a failure, was never judged on more than about one minute of calls: a 2-minute window judged at :07
    took the buckets that began in it (the last minute and 2 s of the current one). Buckets are now
    stamped at their end, so the window takes every minute it overlaps, and the failures fire."""
    from baton.spec.monitoring import load_monitoring

    store = clean
    config = load_monitoring({"monitoring": {"detectors": CAMPAIGN}})
    store.append(
        _calls("writer", NOW - timedelta(minutes=7), 5, 11, 0.0, 1)
    )  # the warm-up: 55 calls, all good
    failing = [
        Event(type="step.failed" if i % 5 < 2 else "step.succeeded", run_id=f"f-{i}", workflow="w", step="s",
              agent="writer", try_number=1, ts=NOW - timedelta(minutes=2) + timedelta(seconds=6 * i),
              payload={"error_class": "AgentError"} if i % 5 < 2 else {"duration_s": 0.2})
        for i in range(20)
    ]  # fmt: skip  # two of every five fail, one call each 6 s for the last two minutes
    store.append(failing)
    judged = loop.tick(store, config, NOW + timedelta(seconds=7))
    (anomaly,) = [a for a in judged.anomalies if a.kind == "failure_rate"]
    assert anomaly.where == "agent:writer"
    (window,) = anomaly.evidence["windows"]
    assert (window["calls"], window["bad"]) == (20, 8), window


def _model_calls(agent: str, start: datetime, minutes: int, per_minute: int, reasked: float, seed: int):
    rng = random.Random(seed)
    return [
        Event(
            type="model.called",
            run_id=f"m-{agent}-{start:%H%M}-{m}-{i}",
            workflow="w",
            step="s",
            agent=agent,
            try_number=1,
            ts=start + timedelta(minutes=m, seconds=i),
            payload={
                "model": "baton:offline",
                "requests": 2 if rng.random() < reasked else 1,
                "input_tokens": 50,
                "output_tokens": 10,
                "cost": 0.001,
                "latency_s": 0.2,
                "prompt_sha256": "0" * 16,
                "prompt_chars": 40,
            },
        )
        for m in range(minutes)
        for i in range(per_minute)
    ]


def test_an_agent_whose_answers_keep_breaking_the_schema_opens_a_reask_incident(clean):
    """Each model call is counted once in reask_rate, a bad one when it needed more than one request:
    an agent re-asked on half its calls opens a reask_rate incident; one at its usual 2 % does not."""
    store = clean
    store.append(_model_calls("alpha", NOW - timedelta(hours=3), 170, 2, 0.02, 1))
    store.append(_model_calls("beta", NOW - timedelta(hours=3), 180, 2, 0.02, 2))
    store.append(_model_calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.5, 3))
    report = loop.tick(store, Monitoring(), NOW)
    assert [(a.kind, a.where) for a in report.anomalies] == [("reask_rate", "agent:alpha")]
    counts = signals.counts(store, "reask_rate", "agent:beta", NOW - timedelta(hours=4))
    assert int(counts.total.sum()) == 360 and int(counts.bad.sum()) < 20


def _schema_broken(events: list[Event], share: float, seed: int) -> list[Event]:
    """The failed ones among ``events`` made schema failures (``OutputInvalid``), ``share`` of them."""
    rng = random.Random(seed)
    broken = {"error_class": "OutputInvalid", "error": "gave no valid output"}
    return [
        replace(e, payload=broken) if e.type == "step.failed" and rng.random() < share else e for e in events
    ]


def test_an_agent_whose_answers_break_the_schema_for_good_opens_a_schema_failure_incident(clean):
    """schema_failure_rate counts an agent's step ends, bad when the schema broke on every ask: alpha's
    schema failures open it (and failure_rate), beta failing as often for other reasons opens only
    failure_rate; the post-incident report's runs are those of alpha's schema failures."""
    store = clean
    _history(store)
    broken = _schema_broken(_calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.4, 3), 1.0, 7)
    store.append(broken)
    store.append(_calls("beta", NOW - timedelta(minutes=10), 10, 6, 0.4, 4))  # AgentError, not the schema
    report = loop.tick(store, Monitoring(), NOW)
    found = sorted((a.kind, a.where) for a in report.anomalies)
    assert found == [
        ("failure_rate", "agent:alpha"),
        ("failure_rate", "agent:beta"),
        ("schema_failure_rate", "agent:alpha"),
    ]
    counts = signals.counts(store, "schema_failure_rate", "agent:beta", NOW - timedelta(minutes=10))
    assert int(counts.total.sum()) == 60 and int(counts.bad.sum()) == 0
    (incident,) = [i for i in record.incidents(store) if i["kind"] == "schema_failure_rate"]
    runs = postmortem(store, incident["id"]).affected_runs
    assert runs == sorted(e.run_id for e in broken if e.type == "step.failed")[: len(runs)] and runs


def _escalations(start: datetime, minutes: int, share: float, seed: int) -> list[Event]:
    """Four steps a minute of workflow w; ``share`` of them handed to a person first (an escalation),
    and as many approvals of other kinds, which are no escalation."""
    rng = random.Random(seed)
    events = []
    for m in range(minutes):
        for i in range(4):
            ts, run = start + timedelta(minutes=m, seconds=10 * i), f"e-{start:%H%M}-{m}-{i}"
            common = {"run_id": run, "workflow": "w", "step": "s", "try_number": 1}
            for kind in ("escalation", "approval") if rng.random() < share else ():
                payload = {"subject": "Sign off", "kind": kind}
                events.append(Event(type="approval.requested", ts=ts, payload=payload, **common))
            events.append(Event(type="step.succeeded", ts=ts + timedelta(seconds=5), payload={}, **common))
    return events


def test_steps_handed_to_a_person_more_often_than_usual_open_an_escalation_incident(clean):
    store = clean
    store.append(_escalations(NOW - timedelta(hours=3), 170, 0.02, 1))
    quiet = loop.tick(store, Monitoring(), NOW - timedelta(minutes=10))
    assert [a for a in quiet.anomalies if a.kind == "escalation_rate"] == []
    store.append(_escalations(NOW - timedelta(minutes=10), 10, 0.5, 2))
    report = loop.tick(store, Monitoring(), NOW)
    assert [(a.kind, a.where) for a in report.anomalies] == [("escalation_rate", "workflow:w")]
    counts = signals.counts(store, "escalation_rate", "workflow:w", NOW - timedelta(hours=4))
    escalated = sum(e.payload["kind"] == "escalation" for e in store.read(types=["approval.requested"]))
    assert int(counts.bad.sum()) == escalated > 0  # an approval of another kind is no escalation
    assert int(counts.total.sum()) == 180 * 4 + escalated


def _selections(agent: str, start: datetime, minutes: int, wait: float) -> list[Event]:
    """Two calls a minute of ``agent``, each after waiting ``wait`` seconds for a load slot."""
    return [
        Event(
            type="agent.selected",
            run_id=f"q-{agent}-{start:%H%M}-{m}-{i}",
            workflow="w",
            step="s",
            agent=agent,
            try_number=1,
            ts=start + timedelta(minutes=m, seconds=20 * i),
            payload={"agent": agent, "queue_wait_s": wait + 0.01 * (m % 5)},
        )
        for m in range(minutes)
        for i in range(2)
    ]


def test_calls_waiting_long_for_an_agents_slots_open_a_queue_wait_incident(clean):
    store = clean
    store.append(_selections("alpha", NOW - timedelta(hours=3), 170, 0.0))
    store.append(_selections("beta", NOW - timedelta(hours=3), 180, 0.0))
    store.append(_selections("alpha", NOW - timedelta(minutes=10), 10, 20.0))  # its slots stay full
    report = loop.tick(store, Monitoring(), NOW)
    assert sorted({(a.kind, a.where) for a in report.anomalies}) == [("queue_wait", "agent:alpha")]
    waits = signals.points(store, "queue_wait", "agent:alpha", NOW - timedelta(minutes=10))
    assert len(waits.value) == 10 and min(waits.value) >= 20.0


def test_a_wait_or_duration_that_is_not_a_finite_number_of_seconds_is_left_out_of_its_bucket(clean):
    store = clean
    base = {"workflow": "w", "step": "s", "agent": "alpha", "try_number": 1, "ts": NOW}
    odd = [-1.0]
    if store.engine.dialect.name == "sqlite":  # PostgreSQL's json refuses them: such an append fails there
        odd += [float("inf"), float("nan")]
    events = []
    for i, (wait, took) in enumerate(zip([*odd, 2.0], [*odd, 0.5], strict=True)):
        run = {"run_id": f"odd-{i}", **base}  # one run each: a step's events are kept once per run
        events.append(Event(type="agent.selected", payload={"agent": "alpha", "queue_wait_s": wait}, **run))
        events.append(Event(type="step.succeeded", payload={"duration_s": took}, **run))
    store.append(events)
    signals.fold(store, NOW + timedelta(minutes=1))
    assert list(signals.points(store, "queue_wait", "agent:alpha", NOW).value) == [2.0]
    assert list(signals.points(store, "latency", "agent:alpha", NOW).value) == [0.5]


def test_a_sensor_that_sees_its_rows_later_and_later_opens_a_sensor_lag_incident(clean):
    """orders' sensor (its template declares a time_column) fired twice a minute for two days, each time
    2-4 s after the oldest new row was added; then for 20 minutes 2 minutes after: one sensor_lag incident,
    on its scope. A sensor whose firings carry no lag (no time_column) has no sensor_lag signal at all."""
    store = clean
    rng = random.Random(11)
    start = NOW - timedelta(days=2)

    def fired(workflow: str, begin: datetime, minutes: int, lag: float | None) -> list[Event]:
        events = _fired(workflow, begin, minutes, 30)
        if lag is None:
            return events
        return [replace(e, payload={**e.payload, "lag_s": lag + rng.random() * 2}) for e in events]

    store.append(fired("orders", start, 2 * 24 * 60 - 30, 2.0) + fired("invoices", start, 2 * 24 * 60, None))
    assert loop.tick(store, Monitoring(), NOW - timedelta(minutes=20)).transitions == []
    store.append(fired("orders", NOW - timedelta(minutes=20), 20, 120.0))
    report = loop.tick(store, Monitoring(), NOW)
    opened = [(t.type, t.kind, t.where) for t in report.transitions if t.type == "incident.opened"]
    assert opened == [("incident.opened", "sensor_lag", "sensor:orders")]
    lagging = [a for a in report.anomalies if a.kind == "sensor_lag"]
    assert {a.where for a in lagging} == {"sensor:orders"} and lagging[0].evidence["detector"] == "robust"
    assert signals.scopes(store, "sensor_lag", start) == ["sensor:orders"]


def test_a_person_acknowledges_an_incident_and_stops_its_runbook_from_the_command_line(
    clean, monkeypatch, capsys
):
    """ack: recorded, once; its escalation is then skipped. stop: the runbook does nothing more, not even
    close the circuit at resolution (the person took over). Unknown ids and odd names are refused."""
    store = clean
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    _history(store)
    store.append(_calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.4, 3))
    opened = loop.tick(store, Monitoring(), NOW)
    (incident_id,) = {t.incident_id for t in opened.transitions}

    assert baton(["incident", "ack", incident_id, "--by", "alice"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{incident_id}: acknowledged by alice"
    assert baton(["incident", "ack", incident_id, "--by", "bob"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{incident_id}: already acknowledged; nothing changed"
    kinds = [e.type for e in record.timeline(store, incident_id)]
    assert kinds.count("incident.acknowledged") == 1
    # the escalation step (15 minutes on) is skipped: someone is on it; the circuit's trial still comes
    later = loop.tick(store, Monitoring(), NOW + timedelta(minutes=16))
    assert [a.do for a, _ in later.actions] == ["probe_circuit"]

    assert baton(["incident", "stop", incident_id, "--by", "alice"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{incident_id}: runbook stopped by alice"
    store.append(_calls("alpha", NOW + timedelta(minutes=40), 30, 6, 0.0, 6))
    resolved = loop.tick(store, Monitoring(), NOW + timedelta(minutes=75))
    assert ("incident.resolved", "agent:alpha") in [(t.type, t.where) for t in resolved.transitions]
    assert resolved.actions == []  # no close_circuit, no retry: the person took over
    # the circuit stays as the runbook left it: half-open (its next failure opens it, a success closes it)
    assert Breakers(store).open_until(["alpha"]) == {} and Breakers(store).failing(["alpha"]) == {"alpha"}

    assert baton(["incident", "ack", "inc-000000000000", "--by", "alice"]) == 1
    assert "no open incident 'inc-000000000000': it may have resolved" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("by", "message"),
    [
        ("al\x1bice", "'by' must name a person (1 to 200 printable characters)"),
        ("x" * 5000, "'by' must name a person (1 to 200 printable characters)"),
        ("", "'by' must name a person (1 to 200 printable characters)"),
    ],
)
def test_an_acknowledgement_by_no_one_sensible_is_refused(clean, monkeypatch, capsys, by, message):
    store = clean
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    _history(store)
    store.append(_calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.4, 3))
    (incident_id,) = {t.incident_id for t in loop.tick(store, Monitoring(), NOW).transitions}
    assert baton(["incident", "ack", incident_id, "--by", by]) == 1
    assert message in capsys.readouterr().err
    assert "incident.acknowledged" not in [e.type for e in record.timeline(store, incident_id)]


def test_the_post_incident_report_gives_the_first_anomalous_event_mttd_mttr_and_the_affected_runs(
    clean, monkeypatch, capsys
):
    """alpha's burst of failures starts at NOW - 10 min (its rare failures of the days before are no
    part of it); the tick at NOW opens the incident, the one at NOW + 6 min half-opens its circuit, whose
    trial passes, and the one at NOW + 75 min resolves it."""
    store = clean
    _history(store)
    burst = _calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.4, 3)
    store.append(burst)
    failed = [e for e in burst if e.type == "step.failed"]
    (incident_id,) = {t.incident_id for t in loop.tick(store, Monitoring(), NOW).transitions}
    loop.tick(store, Monitoring(), NOW + timedelta(minutes=6))
    assert Breakers(store).success("alpha")  # the trial call
    store.append(_calls("alpha", NOW + timedelta(minutes=40), 30, 6, 0.0, 6))
    loop.tick(store, Monitoring(), NOW + timedelta(minutes=75))

    report = postmortem(store, incident_id)
    assert (report.kind, report.where) == ("failure_rate", "agent:alpha")
    assert report.first_anomalous.replace(tzinfo=UTC) == failed[0].ts
    assert report.mttd_s == (NOW - failed[0].ts).total_seconds()
    assert report.mttr_s == (NOW + timedelta(minutes=75) - failed[0].ts).total_seconds()
    assert report.affected_runs == sorted({e.run_id for e in failed})
    assert report.affected_agents == ["alpha"]
    assert [a.split(" ", 1)[1] for a in report.actions] == [
        "open_circuit",
        "probe_circuit",
        "retry_failed_runs",
    ]
    assert postmortem(store, "inc-000000000000") is None

    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    assert baton(["incident", "show", incident_id]) == 0
    shown = capsys.readouterr().out
    assert f"  time to detect {report.mttd_s:.0f} s, time to recover {report.mttr_s:.0f} s\n" in shown
    assert f"  affected: {len(report.affected_runs)} run(s) (" in shown and "; agents alpha\n" in shown


def test_acknowledgements_racing_each_other_and_a_tick_are_recorded_once_and_never_lost(clean):
    """Eight people acknowledge the same incident at once while the monitor ticks: one acknowledgement
    is recorded, the others change nothing, and the tick's book write does not undo it."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    store = clean
    _history(store)
    store.append(_calls("alpha", NOW - timedelta(minutes=10), 10, 6, 0.4, 3))
    (incident_id,) = {t.incident_id for t in loop.tick(store, Monitoring(), NOW).transitions}
    barrier = threading.Barrier(9)

    def ack(i: int) -> int:
        barrier.wait()
        return record.person_acts(store, incident_id, "ack", f"person{i}", NOW + timedelta(minutes=1))

    def tick() -> int:
        barrier.wait()
        return len(loop.tick(store, Monitoring(), NOW + timedelta(minutes=1)).transitions)

    with ThreadPoolExecutor(9) as pool:
        acks = [pool.submit(ack, i) for i in range(8)]
        ticked = pool.submit(tick)
        changed = sorted(f.result() for f in acks)
        ticked.result()
    assert changed == [0] * 7 + [1]
    kinds = [e.type for e in record.timeline(store, incident_id)]
    assert kinds.count("incident.acknowledged") == 1
    with store.engine.connect() as conn:
        book = Book.model_validate(load_state(conn, BOOK))
    assert book.by_id(incident_id).status == "acknowledged"
