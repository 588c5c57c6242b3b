"""Alerts for people: a step that failed, a deadline overrun, a saga that could not undo a step.

Every alert is recorded in the event store (``alert.raised``) and posted through the Slack provider's
webhook notifier on the connection ``baton_slack``. Nothing is lost:

- with no ``baton_slack`` connection the alert goes to the log (channel ``log``) and is recorded;
- when Slack cannot be reached after a few quick retries, the event says ``delivered: false`` with the
  error, ``baton alerts`` lists it and ``baton alerts --resend`` posts it later (``alert.delivered``);
- a callback never raises because Slack or the store is down: that is logged.

Cheap to import (the DAG loader imports it at parse time): Airflow, the store and the Slack provider
(slack_sdk, aiohttp) are imported when an alert is sent or a deadline is built, never at module level."""

from baton.alerts.callbacks import deadline_alerts, deadline_missed, on_task_failure
from baton.alerts.delivery import cli, pending, resend, send
from baton.alerts.message import (
    DEADLINE_CALLBACK,
    DEFAULT_BASE_URL,
    NOTICES,
    RETRY_DELAYS_S,
    SLACK_CONN_ID,
    TIMEOUT_S,
    Alert,
    run_url,
    slack_text,
)

__all__ = [
    "Alert",
    "DEADLINE_CALLBACK",
    "DEFAULT_BASE_URL",
    "NOTICES",
    "RETRY_DELAYS_S",
    "SLACK_CONN_ID",
    "TIMEOUT_S",
    "cli",
    "deadline_alerts",
    "deadline_missed",
    "on_task_failure",
    "pending",
    "resend",
    "run_url",
    "send",
    "slack_text",
]
