"""Alerts for people: a step that failed, a deadline overrun, a saga that could not undo a step.

Every alert is recorded in the event store (``alert.raised``) and posted through the Slack provider's
webhook notifier on the connection ``baton_slack``. Nothing is lost:

- with no ``baton_slack`` connection the alert goes to the log (channel ``log``) and is recorded;
- when Slack cannot be reached after a few quick retries, the event says ``delivered: false`` with the
  error, ``baton alerts`` lists it and ``baton alerts --resend`` posts it later (``alert.delivered``);
- a callback never raises because Slack or the store is down: that is logged.

Cheap to import (the DAG loader imports it at parse time): Airflow, the store and the Slack provider
(slack_sdk, aiohttp) are imported when an alert is sent or a deadline is built, never at module level.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow.sdk import DeadlineAlert

    from baton.events.store import Event, EventStore
    from baton.spec.models import Workflow

log = logging.getLogger(__name__)

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
        from baton.events.recorder import redact

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


def _slack_configured() -> tuple[bool, str]:
    """(whether ``baton_slack`` exists, the error when that cannot be known)."""
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except Exception as error:  # pragma: no cover - Airflow is always installed with Baton
        return False, f"{type(error).__name__}: {error}"
    try:
        BaseHook.get_connection(SLACK_CONN_ID)
    except AirflowNotFoundException:
        return False, ""
    except Exception as error:  # a secrets backend or the supervisor failing: try to post anyway
        return True, f"{type(error).__name__}: {_clean(error)}"
    return True, ""


def _post(alert: Alert) -> tuple[bool, int, str]:
    """Post to Slack with a few quick retries: (delivered, attempts made, the last error)."""
    error = ""
    attempts = 0
    for attempts, delay in enumerate((0.0, *RETRY_DELAYS_S), start=1):
        time.sleep(delay)
        try:
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

            notifier = SlackWebhookNotifier(
                slack_webhook_conn_id=SLACK_CONN_ID,
                text=slack_text(alert),
                timeout=TIMEOUT_S,
                retry_handlers=[],  # the retries are these, with their own budget
            )
            # notify(), not __call__: the text is final, not a Jinja template to render.
            notifier.notify({"alert": alert.kind, "run_id": alert.run_id})
            return True, attempts, ""
        except Exception as exc:
            error = f"{type(exc).__name__}: {_clean(exc)}"
            log.info("Slack post %d of %s failed: %s", attempts, _describe(alert), error)
    return False, attempts, error


def _describe(alert: Alert) -> str:
    return f"{alert.kind} alert for {alert.workflow} run {alert.run_id} step {alert.where}"


def _event(alert: Alert, payload: dict[str, Any]) -> Event:
    from baton.events.store import Event

    return Event(
        type="alert.raised",
        run_id=alert.run_id,
        workflow=alert.workflow,
        step=alert.step,
        map_index=alert.map_index,
        try_number=alert.attempt or 0,
        discriminator=alert.kind,
        payload=payload,
    )


def send(alert: Alert, store: EventStore | None = None) -> bool:
    """Record and post one alert; whether it reached Slack. Never raises.

    Posted through ``SlackWebhookNotifier`` on ``baton_slack`` (a few quick retries), then recorded as
    ``alert.raised`` with the outcome. With no ``baton_slack`` connection it is logged at WARNING and
    recorded with channel ``log``. An alert already recorded (same run, kind, step, map index,
    attempt) is not posted again.
    """
    try:
        return _send(alert, store)
    except Exception:  # a bug here must not fail the task or the triggerer that raised the alert
        log.exception("could not raise the alert %s", alert)
        return False


def _send(alert: Alert, store: EventStore | None) -> bool:
    if not alert.url:
        alert = replace(alert, url=run_url(alert.workflow, alert.run_id))
    try:
        store = store or _default_store()
    except Exception:
        log.exception("Baton's event store is unavailable; the alert is only logged and posted")
        store = None
    if store is not None:
        try:
            key = _event(alert, {"kind": alert.kind, "message": ""}).key
            if (earlier := store.get(key)) is not None:
                log.info("%s was raised before (event %s); not raised again", _describe(alert), earlier.seq)
                return (
                    bool(getattr(earlier, "payload", {}).get("delivered"))
                    or store.get(f"{key}|delivered") is not None
                )
        except Exception:
            log.exception("could not read Baton's event store; raising the %s anyway", _describe(alert))

    configured, lookup_error = _slack_configured()
    if configured:
        delivered, attempts, error = _post(alert)
        error = error or ("" if delivered else lookup_error)
        channel = "slack"
        if delivered:
            log.info("posted the %s to Slack (%d attempt(s))", _describe(alert), attempts)
        else:
            log.error(
                "could not post the %s to Slack after %d attempt(s): %s; kept for `baton alerts --resend`",
                _describe(alert),
                attempts,
                error,
            )
    else:
        delivered, attempts, error, channel = False, 0, lookup_error, "log"
        log.warning(
            "ALERT (no '%s' connection, so not posted): %s",
            SLACK_CONN_ID,
            slack_text(alert).replace("\n", " | "),
        )

    if store is not None:
        payload = {
            "kind": alert.kind,
            "message": _clean(alert.message, 500),
            "channel": channel,
            "delivered": delivered,
            "step": alert.step,
            "error_class": alert.error_class,
            "attempt": alert.attempt,
            "url": alert.url,
            "attempts": attempts,
            "delivery_error": error,
        }
        try:
            store.append([_event(alert, payload)])
        except Exception:
            log.exception(
                "could not record the %s (delivered=%s): %s", _describe(alert), delivered, slack_text(alert)
            )
    return delivered


def _default_store() -> EventStore:
    from baton.events.store import EventStore

    return EventStore.from_airflow()


def pending(store: EventStore) -> list[Event]:
    """Alerts meant for Slack that have not reached it yet (oldest first)."""
    from baton.events.store import Event

    raised: list[Event] = []
    delivered: set[str] = set()
    for event in store.read(types=["alert.raised", "alert.delivered"]):
        if not isinstance(event, Event):
            continue
        if event.type == "alert.delivered":
            delivered.add(event.payload.get("alert_key", ""))
        elif event.payload.get("channel") == "slack" and not event.payload.get("delivered"):
            raised.append(event)
    return [e for e in raised if e.key not in delivered]


def _alert_of(event: Event) -> Alert:
    p = event.payload
    return Alert(
        kind=p["kind"],
        workflow=event.workflow,
        run_id=event.run_id,
        message=p.get("message", ""),
        step=event.step,
        error_class=p.get("error_class", ""),
        attempt=p.get("attempt"),
        url=p.get("url", ""),
        map_index=event.map_index,
    )


def resend(store: EventStore) -> tuple[int, int]:
    """Post every pending alert again; (delivered now, still pending). Records ``alert.delivered``."""
    from baton.events.store import Event

    waiting = pending(store)
    if not waiting:
        return 0, 0
    configured, _ = _slack_configured()
    if not configured:
        log.warning("%d alert(s) pending, but there is no '%s' connection", len(waiting), SLACK_CONN_ID)
        return 0, len(waiting)
    done = 0
    for event in waiting:
        ok, attempts, error = _post(_alert_of(event))
        if not ok:
            log.error("alert %s still not delivered: %s", event.key, error)
            continue
        store.append(
            [
                Event(
                    type="alert.delivered",
                    run_id=event.run_id,
                    workflow=event.workflow,
                    step=event.step,
                    map_index=event.map_index,
                    try_number=event.try_number,
                    key=f"{event.key}|delivered",
                    payload={"alert_key": event.key, "channel": "slack", "attempts": attempts},
                )
            ]
        )
        done += 1
    return done, len(waiting) - done


def cli(resend_now: bool) -> int:
    """``baton alerts [--resend]``: list the alerts that did not reach Slack; post them again with
    ``resend_now``. 0 when none is left pending, 1 otherwise."""
    store = _default_store()
    waiting = pending(store)
    print(f"{len(waiting)} alert(s) not delivered to Slack (connection '{SLACK_CONN_ID}')")
    for event in waiting:
        p = event.payload
        print(
            f"  {event.ts:%Y-%m-%d %H:%M:%S}  {p['kind']:<20} {event.workflow}  run {event.run_id}  "
            f"step {_alert_of(event).where}  attempts {p.get('attempts', 0)}: {p.get('delivery_error') or '-'}"
        )
    if not resend_now or not waiting:
        return 0 if not waiting else 1
    delivered, left = resend(store)
    print(f"resent: {delivered} delivered, {left} still pending")
    return 0 if left == 0 else 1


# --- Airflow callbacks ----------------------------------------------------------------------------


def on_task_failure(context: Any) -> None:
    """A task's ``on_failure_callback`` (its last try failed): a ``step_failed`` alert. Never raises."""
    try:
        ti = context["ti"]
        exception = context.get("exception")
        if isinstance(exception, BaseException):
            error_class, detail = type(exception).__name__, str(exception)
        else:  # the dag processor's callback for a lost task passes a message, not an exception
            error_class, detail = "", str(exception or "")
        map_index = getattr(ti, "map_index", None)
        alert = Alert(
            kind="step_failed",
            workflow=ti.dag_id,
            run_id=ti.run_id,
            step=ti.task_id,
            map_index=map_index if map_index is not None else -1,
            error_class=error_class,
            attempt=getattr(ti, "try_number", None),
            message=f"{error_class}: {detail}" if error_class and detail else detail or "the step failed",
        )
    except Exception:
        log.exception("could not build a failure alert from the task's context")
        return
    send(alert)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _step_done_by(store: EventStore, run_id: str, step: str, deadline: datetime | None) -> bool:
    """Whether every started instance of the step finished (succeeded or skipped) by the deadline."""
    from baton.events.store import Event

    started: set[int] = set()
    finished: dict[int, datetime] = {}
    types = ["step.started", "step.succeeded", "step.skipped"]
    for event in store.read(run_id, types=types):
        if not isinstance(event, Event) or event.step != step:
            continue
        if event.type == "step.started":
            started.add(event.map_index)
        else:
            finished.setdefault(event.map_index, event.ts)
    if not finished or not started <= set(finished):
        return False
    if deadline is None:
        return True
    return all(_when(ts) is None or _when(ts) <= deadline for ts in finished.values())


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


async def deadline_missed(
    workflow: str, deadline_s: float, step: str | None = None, context: dict | None = None
) -> None:
    """The Deadline Alert callback (run by Airflow's triggerer): a ``deadline_missed`` alert, unless
    the step it watches finished in time. Never raises."""
    import asyncio

    try:
        dag_run = (context or {}).get("dag_run") or {}
        deadline = (context or {}).get("deadline") or {}
        run_id = dag_run.get("dag_run_id") or dag_run.get("run_id") or "unknown run"
        deadline_time = _when(deadline.get("deadline_time"))
        ended = _when(dag_run.get("end_date"))
        if ended is not None and deadline_time is not None and ended <= deadline_time:
            log.info(
                "%s run %s ended %s at %s, before its deadline %s: no alert",
                workflow,
                run_id,
                dag_run.get("state"),
                ended,
                deadline_time,
            )
            return
        if step is not None:
            try:
                store = await asyncio.to_thread(_default_store)
                done = await asyncio.to_thread(_step_done_by, store, run_id, step, deadline_time)
            except Exception:  # the store cannot say the step made it: better an alert too many than none
                log.exception(
                    "could not check step %s of %s run %s in the store; alerting", step, workflow, run_id
                )
                done = False
            if done:
                log.info("%s run %s: step %s was done before its deadline; no alert", workflow, run_id, step)
                return
        limit = _duration(deadline_s)
        what = f"step {step} was not done" if step else "the run had not finished"
        at = f" (deadline {deadline_time:%Y-%m-%d %H:%M:%S} UTC)" if deadline_time else ""
        alert = Alert(
            kind="deadline_missed",
            workflow=workflow,
            run_id=run_id,
            step=step,
            message=f"{what} {limit} after the run was queued{at}; the run is {dag_run.get('state', '?')}",
        )
        await asyncio.to_thread(send, alert)
    except Exception:
        log.exception("the deadline callback of %s (step %s) failed", workflow, step)


def deadline_alerts(workflow: Workflow) -> list[DeadlineAlert]:
    """Airflow Deadline Alerts for a template: ``deadline`` (the run) and each step's ``deadline``.

    Airflow's deadlines belong to the DagRun, so a step's deadline is one on the run, measured from
    the time the run was queued; its callback checks the event store for the step.
    """
    watched = [(None, workflow.deadline)] + [(s.id, s.deadline) for s in workflow.steps]
    watched = [(step, interval) for step, interval in watched if interval is not None]
    if not watched:
        return []
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    alerts = []
    for step, interval in watched:
        kwargs: dict[str, Any] = {"workflow": workflow.workflow, "deadline_s": interval.total_seconds()}
        if step is not None:
            kwargs["step"] = step
        name = (
            f"{workflow.workflow}: "
            + (f"step {step}" if step else "run")
            + f" within {_duration(interval.total_seconds())}"
        )
        alerts.append(
            DeadlineAlert(
                reference=DeadlineReference.DAGRUN_QUEUED_AT,
                interval=interval,
                callback=AsyncCallback(DEADLINE_CALLBACK, kwargs=kwargs),
                name=name[:250],
            )
        )
    return alerts
