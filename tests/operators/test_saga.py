"""The saga and idempotent effects in real ``dag.test()`` runs of ``order_saga`` against the demo
partner API on 127.0.0.1, with the failure alert going to a Slack recorder.

Run 1: ``charge`` fails for good (the partner answers 500) -> the parts reserved (a for_each, item by
item) and the plan are undone, newest first; the run ends failed; Slack gets the failure alert. The
``_compensate`` task's first try dies right after its first release was posted, before that was recorded
(an injected fault, as a worker killed there): its retry posts that release no second time.
Run 2: everything succeeds, but ``ship`` fails right after its post on try 1 (an injected fault) ->
try 2 reuses the post instead of shipping twice; ``baton replay --rerun`` posts nothing either;
``baton compensate`` then undoes the whole run on purpose, and a second time finds nothing to do.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from demo.http_service import PartnerService

from baton.cli import main as baton
from baton.events import EventStore
from devtools import faults
from tests.conftest import FIXTURE_DAGS, run_dag_test_in_subprocess

PARTS = ["backend_api", "frontend_ui", "integration_tests"]  # decompose_feature's default components


@pytest.fixture(scope="module")
def partner():
    with PartnerService(fail={"/r1/charge": -1}) as service:
        yield service


@pytest.fixture(scope="module")
def runs(partner, slack, airflow_db):
    env = {
        "AIRFLOW_CONN_BATON_SLACK": slack.connection,
        **faults.environment(fail_after={"ship": [1], "_compensate": [1]}),
    }
    failed = run_dag_test_in_subprocess(
        FIXTURE_DAGS, "baton-test-fixtures", "order_saga", {"service": partner.url("/r1")}, env=env
    )
    succeeded = run_dag_test_in_subprocess(
        FIXTURE_DAGS, "baton-test-fixtures", "order_saga", {"service": partner.url("/r2")}, env=env
    )
    return failed, succeeded


@pytest.fixture
def dags_env(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(FIXTURE_DAGS))


def _events(run_id: str, *types: str) -> list:
    return list(EventStore.from_airflow().read(run_id, types=list(types) or None))


def _paths(partner: PartnerService, prefix: str) -> list[str]:
    """The paths the partner accepted (2xx) under ``prefix``, in order."""
    posts = partner.posts()
    return [
        p["path"].removeprefix(prefix)
        for p in posts
        if p["path"].startswith(prefix + "/") and p["status"] < 300
    ]


def test_a_step_failing_for_good_undoes_the_completed_steps_newest_first(runs, partner):
    (run, _, output) = runs[0]
    assert run.state == "failed", output[-3000:]
    assert run.task_states == {
        "plan": "success",
        "reserve": "success",
        "charge": "failed",
        "ship": "upstream_failed",
        "_compensate": "failed",
    }
    # The partner saw: three reservations, two charges refused (try 1 and its retry), then the undo.
    reserved = [p["body"]["part"] for p in partner.posts("/r1/reserve")]
    assert sorted(reserved) == PARTS
    assert [p["status"] for p in partner.posts("/r1/charge")] == [500, 500]
    released = [p["body"]["part"] for p in partner.posts("/r1/release")]
    assert released == list(reversed(reserved)), "items are undone newest first"
    paths = _paths(partner, "/r1")
    assert paths[-4:] == ["/release", "/release", "/release", "/plan/cancel"], paths
    assert partner.posts("/r1/plan/cancel")[0]["body"] == {"task": "checkout"}
    # Each release names the reservation it undoes (the item's own output).
    # (the partner numbers the posts it accepts: a reservation's number is what its reserve got back)
    accepted = [p for p in partner.posts() if p["status"] < 300]
    numbers = {p["body"]["part"]: n for n, p in enumerate(accepted, 1) if p["path"] == "/r1/reserve"}
    assert {p["body"]["part"]: p["body"]["reservation"] for p in partner.posts("/r1/release")} == numbers

    # The events prove the order and the outcome: the saga's first try died after posting the first
    # release, before recording it; its second did that one again, the post reused by its key.
    done = [e.payload["target"] for e in _events(run.run_id, "compensation.succeeded")]
    assert done == [f"reserve[{part}]" for part in reversed(reserved)] + ["plan"]
    assert f"injected failure of the saga after undoing {done[0]} (try 1" in output
    first, second = _events(run.run_id, "saga.started")
    assert first.payload["trigger"] == second.payload["trigger"] == "run_failed"
    assert first.payload["failed_steps"] == second.payload["failed_steps"] == ["charge"]
    assert first.payload["plan"] == second.payload["plan"] == done and second.payload["already"] == []
    (reused,) = [e for e in _events(run.run_id, "effect.reused") if e.step.endswith("/compensate")]
    assert (reused.step, reused.payload["action"]) == ("reserve/compensate", "http.post")
    (completed,) = _events(run.run_id, "saga.completed")
    assert completed.payload["outcome"] == "compensated"
    assert completed.payload["compensated"] == done and completed.payload["failed"] == []
    assert "compensated 4 completed step(s) newest first" in output


def test_the_failure_alert_reaches_slack_with_its_fields(runs, slack):
    (run, _, _) = runs[0]
    alerts = [post for post in slack.posts if run.run_id in json.dumps(post)]
    assert len(alerts) == 1, slack.posts  # charge failed for good once; its retry did not alert
    text = alerts[0]["text"]
    for field in ("*Workflow:* `order_saga`", f"*Run:* `{run.run_id}`", "*Step:* `charge`"):
        assert field in text, text
    assert "*Error class:* `SkillError`" in text and "*Attempt:* 2" in text, text
    assert f"/dags/order_saga/runs/{quote(run.run_id, safe='')}|open the run in Airflow>" in text
    (raised,) = _events(run.run_id, "alert.raised")
    assert raised.payload["delivered"] is True and raised.payload["channel"] == "slack"
    assert raised.payload["step"] == "charge" and raised.payload["error_class"] == "SkillError"


def test_a_retried_step_reuses_its_effect_instead_of_repeating_it(runs, partner):
    (run, results, output) = runs[1]
    assert run.state == "success", output[-3000:]
    assert run.task_states["_compensate"] == "skipped"
    assert "injected failure of step 'ship' after its call (try 1" in output
    assert partner.count("/r2/ship") == 1, partner.posts("/r2/ship")
    (done,) = _events(run.run_id, "effect.done")[-1:]
    assert done.step == "ship" and done.payload["action"] == "http.post"
    reused = [e for e in _events(run.run_id, "effect.reused") if e.step == "ship"]
    assert [e.try_number for e in reused] == [2]
    assert reused[0].payload["effect_key"] == done.payload["effect_key"]
    assert results["ship"][1]["status"] == 201
    # The key the partner received is the one recorded.
    assert partner.posts("/r2/ship")[0]["idempotency_key"] == done.payload["effect_key"]


def test_replay_rerun_reuses_the_effects_and_posts_nothing(runs, partner, dags_env, capsys):
    (run, _, _) = runs[1]
    before = len(partner.posts())
    status = baton(["replay", run.run_id, "--rerun"])
    printed = capsys.readouterr().out
    assert len(partner.posts()) == before, "a rerun must not post again"
    assert "effect reused" in printed, printed
    assert status == 0, printed


def test_baton_compensate_undoes_a_past_run_on_purpose_once(
    runs, partner, slack, dags_env, monkeypatch, capsys
):
    (run, _, _) = runs[1]
    monkeypatch.setenv("AIRFLOW_CONN_BATON_SLACK", slack.connection)
    # The partner refuses to cancel the shipment: the saga stops there, alerts, and undoes nothing older.
    partner.fail("/r2/ship/cancel", -1)
    assert baton(["compensate", run.run_id]) == 1
    printed = capsys.readouterr().out
    assert (
        "ship                             FAILED: the compensation of ship (skill http_post) failed 3 time(s)"
        in printed
    )
    assert "charge                           not attempted (older than the one that failed)" in printed
    assert [p["status"] for p in partner.posts("/r2/ship/cancel")] == [500, 500, 500]
    assert partner.posts("/r2/refund") == []
    stuck = [p["text"] for p in slack.posts if run.run_id in p["text"] and "CompensationFailed" in p["text"]]
    assert len(stuck) == 1 and "*Step:* `ship`" in stuck[0], stuck
    assert "baton compensate stopped: the compensation of ship (skill http_post) failed 3 time(s)" in stuck[0]
    (partial,) = _events(run.run_id, "saga.completed")
    assert partial.payload["outcome"] == "partial" and partial.payload["failed"][0] == "ship"

    # Once the partner is fixed, the same command goes on where it stopped.
    partner.fail("/r2/ship/cancel", 0)
    assert baton(["compensate", run.run_id]) == 0
    printed = capsys.readouterr().out
    undo = [p for p in _paths(partner, "/r2") if p in ("/ship/cancel", "/refund", "/release", "/plan/cancel")]
    assert undo == ["/ship/cancel", "/refund", "/release", "/release", "/release", "/plan/cancel"]
    assert f"run {run.run_id} (order_saga): compensated" in printed
    first, second = _events(run.run_id, "saga.started")
    assert first.payload["trigger"] == second.payload["trigger"] == "manual"
    assert second.payload["plan"][:2] == ["ship", "charge"] and second.payload["plan"][-1] == "plan"

    before = len(partner.posts())
    assert baton(["compensate", run.run_id]) == 0
    printed = capsys.readouterr().out
    assert len(partner.posts()) == before, "what is undone is never undone twice"
    assert printed.count("already compensated") == 6, printed

    # The automatic saga of run 1 left nothing for an operator to redo either.
    before = len(partner.posts())
    assert baton(["compensate", runs[0][0].run_id]) == 0
    assert len(partner.posts()) == before


def test_compensating_an_unknown_run_says_so(airflow_db, dags_env, capsys):
    assert baton(["compensate", "manual__no_such_run"]) == 1
    assert "No events for run 'manual__no_such_run' in Baton's store" in capsys.readouterr().err
