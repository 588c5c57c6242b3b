"""Alerts: a real Slack webhook notifier posting to a recorder on 127.0.0.1, the real event store
(SQLite and PostgreSQL), Airflow's Deadline Alert definitions and the context its triggerer sends."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from baton import alerts
from baton.alerts import (
    SLACK_CONN_ID,
    Alert,
    deadline_alerts,
    deadline_missed,
    on_task_failure,
    run_url,
    send,
)
from baton.events.event import Event
from tests.slack_recorder import SlackRecorder

RUN_ID = "manual__2026-11-21T07:15:07.195898+00:00"
RUN_LINK = (
    "http://localhost:8080/dags/lead_qualification/runs/manual__2026-11-21T07%3A15%3A07.195898%2B00%3A00"
)


@pytest.fixture
def slack(monkeypatch):
    monkeypatch.setattr(alerts.delivery, "RETRY_DELAYS_S", (0.0, 0.0))  # the retries, without their waits
    with SlackRecorder() as recorder:
        monkeypatch.setenv("AIRFLOW_CONN_BATON_SLACK", recorder.connection)
        yield recorder


@pytest.fixture
def no_slack(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BATON_SLACK", raising=False)


def _failure(**changes) -> Alert:
    fields = dict(
        kind="step_failed",
        workflow="lead_qualification",
        run_id=RUN_ID,
        step="score_leads",
        error_class="UnexpectedModelBehavior",
        attempt=3,
        message="UnexpectedModelBehavior: Exceeded maximum retries (2) for output validation",
    )
    return Alert(**{**fields, **changes})


def _alerts(store, run_id=RUN_ID) -> list[Event]:
    return list(store.read(run_id, types=["alert.raised", "alert.delivered"]))


def test_run_url_is_the_runs_page_of_the_airflow_ui(monkeypatch):
    assert run_url("lead_qualification", RUN_ID) == RUN_LINK
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert run_url("a", "scheduled__2026-01-01T09:00:00+00:00") == (
        "https://airflow.example.com/dags/a/runs/scheduled__2026-01-01T09%3A00%3A00%2B00%3A00"
    )


def test_a_failure_reaches_slack_with_workflow_run_step_error_class_attempt_and_link(slack, store):
    assert send(_failure(), store) is True

    (post,) = slack.posts
    text = post["text"]
    assert text.splitlines() == [
        ":rotating_light: *Baton: step failed*",
        "*Workflow:* `lead_qualification`",
        f"*Run:* `{RUN_ID}`",
        "*Step:* `score_leads`",
        "*Error class:* `UnexpectedModelBehavior`",
        "*Attempt:* 3",
        "> UnexpectedModelBehavior: Exceeded maximum retries (2) for output validation",
        f"<{RUN_LINK}|open the run in Airflow>",
    ]
    (event,) = _alerts(store)
    assert (event.type, event.workflow, event.step, event.try_number) == (
        "alert.raised",
        "lead_qualification",
        "score_leads",
        3,
    )
    assert event.payload == {
        "kind": "step_failed",
        "message": "UnexpectedModelBehavior: Exceeded maximum retries (2) for output validation",
        "channel": "slack",
        "delivered": True,
        "step": "score_leads",
        "error_class": "UnexpectedModelBehavior",
        "attempt": 3,
        "url": RUN_LINK,
        "attempts": 1,
        "delivery_error": "",
    }
    assert alerts.pending(store) == []


def test_the_same_alert_raised_twice_is_recorded_and_posted_once(slack, store):
    assert send(_failure(), store) and send(_failure(), store)
    assert len(slack.posts) == 1
    assert len(_alerts(store)) == 1
    send(_failure(attempt=4), store)  # another attempt is another alert
    send(_failure(kind="compensation_failed"), store)  # and so is another kind
    assert len(slack.posts) == 3 and len(_alerts(store)) == 3


def test_mapped_instances_of_a_step_alert_separately(slack, store):
    send(_failure(map_index=0), store)
    send(_failure(map_index=1), store)
    assert [e.map_index for e in _alerts(store)] == [0, 1]
    assert "*Step:* `score_leads[1]`" in slack.posts[1]["text"]


def test_a_secret_in_the_error_never_reaches_slack_or_the_store(slack, store):
    from airflow.sdk.log import mask_secret

    mask_secret("sk-live-5f3a9c1e7b2d")
    send(_failure(message="401 from the model: key sk-live-5f3a9c1e7b2d refused\nTraceback ..."), store)
    (post,) = slack.posts
    assert "sk-live-5f3a9c1e7b2d" not in post["text"]
    assert "> 401 from the model: key *** refused" in post["text"]
    assert "Traceback" not in post["text"]  # one line, not the stack
    (event,) = _alerts(store)
    assert event.payload["message"] == "401 from the model: key *** refused"


def test_text_is_escaped_for_slack_mrkdwn(slack, store):
    send(_failure(message="expected <object> & got <list>"), store)
    assert "> expected &lt;object&gt; &amp; got &lt;list&gt;" in slack.posts[0]["text"]


def test_slack_answering_errors_does_not_crash_and_the_alert_stays_pending(slack, store):
    slack.fail()
    assert send(_failure(), store) is False
    assert slack.failures == 3  # quick retries, then give up
    (event,) = _alerts(store)
    assert event.payload["channel"] == "slack"
    assert event.payload["delivered"] is False
    assert event.payload["attempts"] == 3
    assert "Status Code: 500" in event.payload["delivery_error"]
    assert [e.key for e in alerts.pending(store)] == [event.key]


def test_a_callback_waits_on_slack_at_most_a_few_seconds():
    # Three posts of at most TIMEOUT_S each, and the waits between them: what a hung Slack costs a task.
    assert len(alerts.RETRY_DELAYS_S) == 2
    assert 3 * alerts.TIMEOUT_S + sum(alerts.RETRY_DELAYS_S) <= 10


def test_a_retry_gets_through_a_brief_outage(slack, store):
    slack.fail(2)
    assert send(_failure(), store) is True
    assert slack.failures == 2 and len(slack.posts) == 1
    (event,) = _alerts(store)
    assert (event.payload["delivered"], event.payload["attempts"]) == (True, 3)


def test_slack_not_listening_does_not_crash(monkeypatch, store):
    with SlackRecorder() as gone:
        connection = gone.connection  # a port that nobody listens on after this block
    monkeypatch.setenv("AIRFLOW_CONN_BATON_SLACK", connection)
    monkeypatch.setattr(alerts.delivery, "RETRY_DELAYS_S", (0.0, 0.0))
    assert send(_failure(), store) is False
    (event,) = _alerts(store)
    assert event.payload["delivered"] is False
    assert "Connection refused" in event.payload["delivery_error"]


def test_resend_after_recovery_delivers_and_records_alert_delivered(slack, store, capsys):
    slack.fail()
    send(_failure(), store)
    send(_failure(kind="deadline_missed", step=None, error_class="", attempt=None, message="late"), store)
    assert len(alerts.pending(store)) == 2
    assert alerts.resend(store) == (0, 2)  # still down
    assert slack.posts == []

    slack.recover()
    assert alerts.resend(store) == (2, 0)
    assert alerts.pending(store) == []
    texts = [post["text"] for post in slack.posts]
    assert "*Error class:* `UnexpectedModelBehavior`" in texts[0] and "*Attempt:* 3" in texts[0]
    assert texts[1].startswith(":rotating_light: *Baton: deadline missed*") and "> late" in texts[1]
    delivered = [e for e in _alerts(store) if e.type == "alert.delivered"]
    raised = [e for e in _alerts(store) if e.type == "alert.raised"]
    assert [e.payload["alert_key"] for e in delivered] == [e.key for e in raised]
    assert {e.payload["attempts"] for e in delivered} == {1}

    assert alerts.resend(store) == (0, 0)  # nothing twice
    assert len(slack.posts) == 2
    # a later send of the same alert knows it was delivered
    assert send(_failure(), store) is True and len(slack.posts) == 2


def test_cli_lists_what_is_pending_and_resends_it(slack, store, monkeypatch, capsys):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    assert alerts.cli(resend_now=False) == 0
    assert "0 alert(s) not delivered" in capsys.readouterr().out
    slack.fail()
    send(_failure(), store)
    assert alerts.cli(resend_now=False) == 1
    out = capsys.readouterr().out
    assert "1 alert(s) not delivered to Slack (connection 'baton_slack')" in out
    (line,) = [line for line in out.splitlines() if "step_failed" in line]
    assert line.split()[2:10] == [
        "step_failed",
        "lead_qualification",
        "run",
        RUN_ID,
        "step",
        "score_leads",
        "attempts",
        "3:",
    ]
    assert line.endswith("Status Code: 500. See: https://api.slack.com/messaging/webhooks#handling_errors")
    slack.recover()
    assert alerts.cli(resend_now=True) == 0
    assert "resent: 1 delivered, 0 still pending" in capsys.readouterr().out
    assert len(slack.posts) == 1


def test_without_a_slack_connection_the_alert_is_logged_and_recorded_not_pending(no_slack, store, caplog):
    with caplog.at_level(logging.WARNING, logger="baton.alerts"):
        assert send(_failure(), store) is False
    (record,) = [r for r in caplog.records if r.name == "baton.alerts"]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert f"no '{SLACK_CONN_ID}' connection" in text
    assert "`lead_qualification`" in text and RUN_ID in text and "`score_leads`" in text
    assert "`UnexpectedModelBehavior`" in text and "*Attempt:* 3" in text and RUN_LINK in text
    (event,) = _alerts(store)
    assert (event.payload["channel"], event.payload["delivered"], event.payload["attempts"]) == (
        "log",
        False,
        0,
    )
    assert alerts.pending(store) == []
    assert alerts.resend(store) == (0, 0)


class _BrokenStore:
    """A store whose database is gone."""

    def read(self, *args, **kwargs):
        raise ConnectionError("the store's database is unreachable")

    def get(self, key):
        raise ConnectionError("the store's database is unreachable")

    def append(self, events):
        raise ConnectionError("the store's database is unreachable")


def test_a_broken_store_is_logged_and_slack_still_gets_the_alert(slack, caplog):
    with caplog.at_level(logging.ERROR, logger="baton.alerts"):
        assert send(_failure(), _BrokenStore()) is True
    assert len(slack.posts) == 1
    assert any("could not record" in r.getMessage() for r in caplog.records)


# --- the Airflow callbacks ------------------------------------------------------------------------


@dataclass
class _TaskInstance:
    """The attributes of a RuntimeTaskInstance that a failure callback reads."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int = -1


def test_on_task_failure_posts_the_failed_step(slack, monkeypatch, store):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    ti = _TaskInstance("lead_qualification", RUN_ID, "value_leads", try_number=2)
    context = {"ti": ti, "task_instance": ti, "exception": TimeoutError("agent call took over 300 s")}
    assert on_task_failure(context) is None
    text = slack.posts[0]["text"]
    assert "*Step:* `value_leads`" in text and "*Error class:* `TimeoutError`" in text
    assert "*Attempt:* 2" in text and "> TimeoutError: agent call took over 300 s" in text
    (event,) = _alerts(store)
    assert (event.payload["kind"], event.payload["error_class"], event.try_number) == (
        "step_failed",
        "TimeoutError",
        2,
    )


def test_on_task_failure_never_raises(slack, monkeypatch, store, caplog):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    on_task_failure({})  # no ti at all
    ti = _TaskInstance("lead_qualification", RUN_ID, "value_leads", try_number=1)
    on_task_failure({"ti": ti, "exception": "Task was killed (heartbeat timeout)"})  # a string, not an error
    assert "> Task was killed (heartbeat timeout)" in slack.posts[0]["text"]
    assert "Error class" not in slack.posts[0]["text"]


def _deadline_context(run_id: str, queued_at: datetime, deadline_s: float, state: str = "running") -> dict:
    """What Airflow's scheduler hands the callback (airflow/models/deadline.py, ``handle_miss``)."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse

    dag_run = DAGRunResponse.model_validate(
        {
            "dag_run_id": run_id,
            "dag_id": "lead_qualification",
            "logical_date": None,
            "queued_at": queued_at,
            "start_date": queued_at + timedelta(seconds=1),
            "end_date": None,
            "duration": None,
            "data_interval_start": None,
            "data_interval_end": None,
            "run_after": queued_at,
            "last_scheduling_decision": queued_at + timedelta(seconds=2),
            "run_type": "manual",
            "state": state,
            "triggered_by": "rest_api",
            "triggering_user_name": "admin",
            "conf": {"region": "emea"},
            "note": None,
            "dag_versions": [],
            "bundle_version": None,
            "dag_display_name": "lead_qualification",
            "partition_key": None,
            "partition_date": None,
        }
    ).model_dump(mode="json")
    return {
        "dag_run": dag_run,
        "deadline": {"id": str(uuid.uuid4()), "deadline_time": queued_at + timedelta(seconds=deadline_s)},
    }


def test_a_missed_run_deadline_posts_naming_the_workflow_and_run(slack, monkeypatch, store):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    queued = datetime(2026, 11, 21, 7, 15, 7, tzinfo=UTC)
    context = _deadline_context(RUN_ID, queued, 300)
    asyncio.run(deadline_missed(workflow="lead_qualification", deadline_s=300.0, context=context))
    text = slack.posts[0]["text"]
    assert text.startswith(":rotating_light: *Baton: deadline missed*")
    assert "*Workflow:* `lead_qualification`" in text and f"*Run:* `{RUN_ID}`" in text
    assert "*Step:*" not in text
    assert (
        "> the run had not finished 0:05:00 after the run was queued (deadline 2026-11-21 07:20:07 UTC)"
        in text
    )
    assert f"<{RUN_LINK}|open the run in Airflow>" in text
    (event,) = _alerts(store)
    assert (event.payload["kind"], event.step, event.payload["delivered"]) == ("deadline_missed", None, True)


def test_a_step_deadline_alerts_when_the_step_is_not_done(slack, monkeypatch, store):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    queued = datetime.now(UTC) - timedelta(seconds=60)
    store.append([Event("step.started", RUN_ID, "lead_qualification", step="value_leads", try_number=1)])
    context = _deadline_context(RUN_ID, queued, 30)
    asyncio.run(deadline_missed("lead_qualification", 30.0, step="value_leads", context=context))
    assert "*Step:* `value_leads`" in slack.posts[0]["text"]
    assert "> step value_leads was not done 0:00:30 after the run was queued" in slack.posts[0]["text"]
    (event,) = _alerts(store)
    assert (event.step, event.payload["kind"]) == ("value_leads", "deadline_missed")


def test_a_step_deadline_whose_step_already_succeeded_does_not_alert(slack, monkeypatch, store, caplog):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    queued = datetime.now(UTC) - timedelta(seconds=60)
    common = dict(run_id=RUN_ID, workflow="lead_qualification", step="score_leads", try_number=1)
    store.append([Event("step.started", **common), Event("step.succeeded", **common)])
    context = _deadline_context(RUN_ID, queued, 120)  # the callback runs before the deadline passed
    with caplog.at_level(logging.INFO, logger="baton.alerts"):
        asyncio.run(deadline_missed("lead_qualification", 120.0, step="score_leads", context=context))
    assert slack.posts == [] and _alerts(store) == []
    assert any("step score_leads was done before its deadline" in r.getMessage() for r in caplog.records)


def test_a_step_that_finished_after_its_deadline_still_alerts(slack, monkeypatch, store):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    queued = datetime.now(UTC) - timedelta(seconds=60)
    common = dict(run_id=RUN_ID, workflow="lead_qualification", step="score_leads", try_number=1)
    store.append([Event("step.started", **common), Event("step.succeeded", **common)])
    context = _deadline_context(RUN_ID, queued, 10)  # done now, 50 s after the deadline
    asyncio.run(deadline_missed("lead_qualification", 10.0, step="score_leads", context=context))
    assert len(slack.posts) == 1


def test_a_run_that_ended_before_its_deadline_does_not_alert(slack, monkeypatch, store):
    monkeypatch.setattr(alerts.delivery, "_default_store", lambda: store)
    queued = datetime(2026, 11, 21, 7, 15, 7, tzinfo=UTC)
    context = _deadline_context(RUN_ID, queued, 300, state="failed")
    context["dag_run"]["end_date"] = (queued + timedelta(seconds=20)).isoformat()
    asyncio.run(deadline_missed("lead_qualification", 300.0, context=context))
    assert slack.posts == [] and _alerts(store) == []


def test_the_deadline_callback_never_raises(slack, monkeypatch):
    def broken():
        raise ConnectionError("the store's database is unreachable")

    monkeypatch.setattr(alerts.delivery, "_default_store", broken)
    context = _deadline_context(RUN_ID, datetime.now(UTC), 5)
    asyncio.run(deadline_missed("lead_qualification", 5.0, step="score_leads", context=context))
    asyncio.run(deadline_missed("lead_qualification", 5.0, context=None))
    # The store is down: the step cannot be checked, so its deadline alerts too; the run's reaches Slack.
    assert len(slack.posts) == 2
    assert (
        f"*Run:* `{RUN_ID}`" in slack.posts[0]["text"] and "*Step:* `score_leads`" in slack.posts[0]["text"]
    )
    assert "*Run:* `unknown run`" in slack.posts[1]["text"]


# --- Deadline Alerts from a template --------------------------------------------------------------

TEMPLATE = """
workflow: launch
version: 1
description: A launch with deadlines.
owner: tests
deadline: 1h
steps:
  - id: draft
    skill: echo
    deadline: 5m
  - id: review
    needs: [draft]
    skill: echo
  - id: publish
    needs: [review]
    skill: echo
    deadline: 90s
"""


def _workflow(text: str = TEMPLATE):
    from baton.spec.models import Workflow

    return Workflow.model_validate(yaml.safe_load(text))


def test_deadline_alerts_one_for_the_run_and_one_per_step_deadline():
    from airflow.sdk import AsyncCallback, DeadlineReference

    made = deadline_alerts(_workflow())
    assert [(a.name, a.interval) for a in made] == [
        ("launch: run within 1:00:00", timedelta(hours=1)),
        ("launch: step draft within 0:05:00", timedelta(minutes=5)),
        ("launch: step publish within 0:01:30", timedelta(seconds=90)),
    ]
    assert all(a.reference == DeadlineReference.DAGRUN_QUEUED_AT for a in made)
    assert all(isinstance(a.callback, AsyncCallback) for a in made)
    assert [(a.callback.path, a.callback.kwargs) for a in made] == [
        ("baton.alerts.deadline_missed", {"workflow": "launch", "deadline_s": 3600.0}),
        ("baton.alerts.deadline_missed", {"workflow": "launch", "deadline_s": 300.0, "step": "draft"}),
        ("baton.alerts.deadline_missed", {"workflow": "launch", "deadline_s": 90.0, "step": "publish"}),
    ]


def test_no_deadline_no_alerts():
    text = (
        TEMPLATE.replace("deadline: 1h\n", "")
        .replace("    deadline: 5m\n", "")
        .replace("    deadline: 90s\n", "")
    )
    assert deadline_alerts(_workflow(text)) == []


def test_a_dag_with_the_deadline_alerts_serializes_for_the_scheduler():
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DAG("launch", schedule=None, deadline=deadline_alerts(_workflow()))
    serialized = DagSerialization.to_dict(dag)["dag"]["deadline"]
    assert len(serialized) == 3
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert [(alert["name"], alert["callback"]["__data__"]["path"]) for alert in restored.deadline] == [
        ("launch: run within 1:00:00", "baton.alerts.deadline_missed"),
        ("launch: step draft within 0:05:00", "baton.alerts.deadline_missed"),
        ("launch: step publish within 0:01:30", "baton.alerts.deadline_missed"),
    ]


def test_importing_the_module_stays_cheap():
    import subprocess
    import sys

    code = (
        "import sys, baton.alerts; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('slack_sdk', 'aiohttp', 'sqlalchemy', 'airflow')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
