"""Delivering an alert: to Slack through the provider's webhook notifier (retried, never raising), recorded
as an alert.raised event; what Slack did not take is kept and sent again later."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from baton.alerts.message import RETRY_DELAYS_S, SLACK_CONN_ID, TIMEOUT_S, Alert, _clean, run_url, slack_text

if TYPE_CHECKING:
    from baton.events.event import Event
    from baton.events.store import EventStore

log = logging.getLogger("baton.alerts")  # one logger for every alert, whichever module raised it


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
    from baton.events.event import Event  # deferred: DAG files load the alerts: no event catalogue at parse

    return Event(
        type="alert.raised",
        run_id=alert.run_id,
        workflow=alert.workflow,
        step=alert.step,
        map_index=alert.map_index,
        try_number=alert.attempt or 0,
        discriminator=alert.kind,
        payload=payload,
        **({"ts": alert.at} if alert.at else {}),
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
    # long: record, deduplicate, post and log one alert: each step guards its own failure
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
    from baton.events.store import EventStore  # deferred: baton.alerts loads no SQLAlchemy, no Airflow

    return EventStore.from_airflow()


def pending(store: EventStore) -> list[Event]:
    """Alerts meant for Slack that have not reached it yet (oldest first)."""
    from baton.events.event import Event  # deferred: DAG files load the alerts: no event catalogue at parse

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
    from baton.events.event import Event  # deferred: DAG files load the alerts: no event catalogue at parse

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
                Event.like(
                    event,
                    "alert.delivered",
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
