"""``baton replay`` and ``baton runs`` on a store with a recorded run, a corrupt row and no such run."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from baton.cli import main as baton
from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for


@pytest.fixture
def recorded(tmp_path, monkeypatch) -> EventStore:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url)
    store = EventStore(engine_for(url))
    upgrade(store.engine)
    common = {"run_id": "manual__1", "workflow": "lead_qualification", "template_version": 2}
    step = {**common, "try_number": 1}
    store.append(
        [
            Event(type="run.started", payload={"conf_keys": ["region"], "conf_sha256": "0" * 64}, **common),
            Event(
                type="step.started",
                step="score_leads",
                agent="marketing_lead_generator",
                payload={"pid": 41, "hostname": "vm", "worker": "worker-2", "pool": "baton_agent_scorer"},
                **step,
            ),
            Event(
                type="agent.selected",
                step="score_leads",
                agent="marketing_lead_generator",
                payload={"agent": "marketing_lead_generator", "reason": "named by the template"},
                **step,
            ),
            Event(
                type="output.recorded",
                step="score_leads",
                payload={"sha256": "1" * 64, "size": 13, "output": {"total": 4}},
                **step,
            ),
            Event(type="step.succeeded", step="score_leads", payload={"duration_s": 0.5}, **step),
            Event(
                type="step.started",
                step="value_leads",
                payload={"pid": 42, "hostname": "vm", "pool": "baton_agent_valuer"},
                **step,
            ),
            Event(
                type="step.failed",
                step="value_leads",
                payload={"error_class": "SkillError", "error": "no leads", "will_retry": False},
                **step,
            ),
            Event(type="run.failed", payload={"reason": "task_failure"}, **common),
        ]
    )
    return store


def test_replay_prints_the_timeline_and_the_rebuilt_state(recorded, capsys):
    assert baton(["replay", "manual__1"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"score_leads #1\s+agent\.selected\s+marketing_lead_generator — named by the template", out
    )
    # which Celery worker ran a try, when it ran on one (scripts/celery.sh names them)
    assert re.search(
        r"score_leads #1\s+step\.started\s+pid 41 on vm, worker-2, pool baton_agent_scorer\n", out
    )
    assert re.search(r"value_leads #1\s+step\.started\s+pid 42 on vm, pool baton_agent_valuer\n", out)
    assert re.search(
        r"value_leads #1\s+step\.failed\s+SkillError: no leads \(retry: False, by operator\)", out
    )
    assert "run manual__1 (lead_qualification v2): failed" in out
    assert re.search(r"\n  score_leads\s+success\s+try 1 agent marketing_lead_generator\n", out)
    assert re.search(r"\n  value_leads\s+failed\s+try 1, error SkillError: no leads\n", out)


def test_replay_until_a_sequence_number_shows_the_state_then(recorded, capsys):
    seq = [e.seq for e in recorded.read("manual__1") if e.type == "step.started"][1]
    assert baton(["replay", "manual__1", "--until", str(seq)]) == 0
    out = capsys.readouterr().out
    assert f"run manual__1 (lead_qualification v2) at event {seq}: running" in out
    assert re.search(r"\n  value_leads\s+running\s+try 1\n", out)
    assert "run.failed" not in out


def test_replay_of_an_unknown_run_says_so_and_exits_1(recorded, capsys):
    assert baton(["replay", "manual__nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("no events for run 'manual__nope' in sqlite:///")
    assert err.rstrip().endswith("list runs with `baton runs`")


def test_a_corrupt_row_is_reported_with_its_sequence_number_not_a_traceback(recorded, capsys):
    seq = [e.seq for e in recorded.read("manual__1") if e.type == "step.succeeded"][0]
    with recorded.engine.begin() as conn:
        conn.execute(
            text("UPDATE baton_events SET payload = '{\"duration_s\": ' WHERE seq = :seq"), {"seq": seq}
        )
    assert baton(["replay", "manual__1"]) == 1
    out = capsys.readouterr().out
    assert f"  !! event {seq} (step.succeeded): payload is not JSON: Expecting value" in out
    assert "Traceback" not in out


def test_runs_lists_workflow_executions(recorded, capsys):
    assert baton(["runs"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"lead_qualification\s+failed\s+manual__1  agents: marketing_lead_generator", out)


def test_replay_full_shows_each_output_whole_and_context_every_version(recorded, capsys):
    from baton.context import ContextStore, Writer

    long_error = "the partner answered 500: " + "x" * 300
    recorded.append(
        [
            Event(
                type="output.recorded",
                step="value_leads",
                run_id="manual__1",
                workflow="lead_qualification",
                try_number=2,
                payload={
                    "sha256": "2" * 64,
                    "size": 400,
                    "output": {"notes": "n" * 200, "qualified": [1, 2]},
                },
            ),
            Event(
                type="alert.raised",
                step="value_leads",
                run_id="manual__1",
                workflow="lead_qualification",
                try_number=2,
                payload={"kind": "step_failed", "message": long_error, "delivered": False, "channel": "log"},
            ),
        ]
    )
    writer = Writer(run_id="manual__1", workflow="lead_qualification", name="score_leads", step="score_leads")
    contexts = ContextStore(recorded)
    contexts.write(writer, "plan", {"owner": "ada"}, base_version=0, strategy="reject")
    contexts.write(writer, "plan", {"owner": "grace"}, base_version=1, strategy="reject")
    assert baton(["replay", "manual__1"]) == 0
    short = capsys.readouterr().out
    assert long_error not in short and ("n" * 200) not in short  # cut by default
    assert baton(["replay", "manual__1", "--full", "--context"]) == 0
    out = capsys.readouterr().out
    assert long_error in out  # the alert's message, whole
    assert '"notes": "' + "n" * 200 + '"' in out  # the output, whole
    assert '\noutputs:\n  score_leads:\n    {\n      "total": 4\n    }\n' in out
    assert (
        '\ncontext:\n  plan v1 by score_leads: {"owner": "ada"}\n  plan v2 by score_leads: {"owner": "grace"}\n'
        in out
    )


def test_replay_context_of_a_run_that_wrote_none_says_so(recorded, capsys):
    assert baton(["replay", "manual__1", "--context"]) == 0
    assert "\ncontext: (no key written)\n" in capsys.readouterr().out
