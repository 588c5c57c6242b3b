"""An alert and its Slack message: workflow, run, step, error class, attempt and a link to the run; nothing a
secret or a person could be read from."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

log = logging.getLogger("baton.alerts")  # one logger for every alert, whichever module raised it

SLACK_CONN_ID = "baton_slack"
DEFAULT_BASE_URL = "http://localhost:8080"
DEADLINE_CALLBACK = "baton.alerts.deadline_missed"
# One post waits at most TIMEOUT_S; the retries wait RETRY_DELAYS_S between posts: at most
# 3 x 2 s + 1 s = 7 s when Slack hangs, about 0.75 s when it refuses or answers an error.
TIMEOUT_S = 2
RETRY_DELAYS_S = (0.25, 0.75)


@dataclass(frozen=True)
class Alert:
    """One alert about one run. ``(run_id, kind, step, map_index, attempt)`` identifies it: raising it
    twice (a callback invoked twice) records and posts it once."""

    kind: str
    workflow: str
    run_id: str
    message: str
    step: str | None = None
    error_class: str = ""
    attempt: int | None = None
    url: str = ""
    map_index: int = -1
    # when what it reports happened (its event's time); None: when it is sent. The monitor's tick gives
    # its own time, so that a tick run for an earlier minute records its alerts at that minute.
    at: datetime | None = None

    @property
    def where(self) -> str:
        """The step (with its map index when mapped), or '-' for the run as a whole."""
        if self.step is None:
            return "-"
        return self.step if self.map_index < 0 else f"{self.step}[{self.map_index}]"


def run_url(dag_id: str, run_id: str) -> str:
    """The run in the Airflow 3 UI (its route ``dags/:dagId/runs/:runId``), on ``[api] base_url``."""
    base = DEFAULT_BASE_URL
    try:
        from airflow.sdk.configuration import conf

        base = conf.get("api", "base_url", fallback=DEFAULT_BASE_URL) or DEFAULT_BASE_URL
    except Exception:  # no Airflow configuration at all: the default
        log.debug("no [api] base_url; using %s", DEFAULT_BASE_URL, exc_info=True)
    return f"{base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _clean(text: Any, limit: int = 300) -> str:
    """Redacted (secrets masked), its first line, at most ``limit`` characters."""
    text = str(text)
    try:
        from baton.events.recorder import redact  # deferred: baton.alerts loads no SQLAlchemy, no Airflow

        text = redact(text)
    except Exception:  # the masker is Airflow's: without it, still never fail an alert
        log.debug("could not redact an alert's text", exc_info=True)
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _mrkdwn(text: Any, limit: int = 300) -> str:
    """``_clean`` text, escaped for Slack mrkdwn (``&``, ``<``, ``>``)."""
    return _clean(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


NOTICES = ("notice", "customer_onboarded")  # good news, sent by the notify skill


def slack_text(alert: Alert) -> str:
    """The Slack message (mrkdwn): what, where, which attempt, and a link to the run."""
    title = alert.kind.replace("_", " ")  # step failed, deadline missed, compensation failed
    icon = ":white_check_mark:" if alert.kind in NOTICES else ":rotating_light:"
    lines = [
        f"{icon} *Baton: {title}*",
        f"*Workflow:* `{_mrkdwn(alert.workflow)}`",
        f"*Run:* `{_mrkdwn(alert.run_id)}`",
    ]
    if alert.step is not None:
        lines.append(f"*Step:* `{_mrkdwn(alert.where)}`")
    if alert.error_class:
        lines.append(f"*Error class:* `{_mrkdwn(alert.error_class)}`")
    if alert.attempt is not None:
        lines.append(f"*Attempt:* {alert.attempt}")
    if alert.message:
        lines.append(f"> {_mrkdwn(alert.message, 500)}")
    url = alert.url or run_url(alert.workflow, alert.run_id)
    lines.append(f"<{url}|open the run in Airflow>")
    return "\n".join(lines)


# --- delivery -----------------------------------------------------------------------------------
