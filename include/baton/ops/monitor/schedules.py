"""The ``runs_started`` signal: the runs each scheduled workflow's schedule said should start, and those
that did.

A workflow's cron (in its timezone) says when its runs are due: Baton compiles it to Airflow's
``CronTriggerTimetable``, which starts a run at each of those times. Whether Airflow should start them
depends on the DAG being unpaused, which only Airflow knows: each tick asks Airflow's REST API
(connection ``baton_airflow_api``) which DAGs are unpaused, and a scheduled workflow is watched from the
first tick that saw it unpaused with its current schedule. The runs due before that (while it was
paused, or under another schedule) are nobody's miss. A workflow seen paused is not watched until it is
unpaused again; without the connection nothing is watched, and the tick's log says why.

What is compared, per watched workflow (scope ``workflow:<id>``): the due times from the later of
``since`` and the detector's lookback up to now (at most ``MAX_DUE``), and the times its scheduled runs
started (``run.started`` of ``run_type`` scheduled, recorded by Baton's listener in the scheduler and
folded by :mod:`baton.ops.monitor.signals` into the ``runs_started`` buckets, so a tick reads minutes, not events).
:func:`baton.ops.detectors.schedule` then finds the due runs that did not start within ``grace``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from croniter import croniter

from baton.compile.loader import healthy_workflows
from baton.events.store import EventStore
from baton.ops.airflow_api import CONN_ID, AirflowApi, AirflowApiError
from baton.ops.detectors import Schedule
from baton.ops.monitor import signals
from baton.ops.monitor.state import load_state, save_state

log = logging.getLogger(__name__)

STATE = "schedules"  # the monitor's state: workflow -> {cron, timezone, since}
MAX_DUE = 2_000  # due times per workflow and tick (a cron of every minute: the last 33 hours)
MAX_PAGES = 20  # of 100 unpaused DAGs each, read from Airflow per tick


@dataclass(frozen=True)
class Watched:
    """A scheduled workflow the monitor watches: its schedule, and since when it has been unpaused."""

    workflow: str
    cron: str
    timezone: str
    since: datetime


def scheduled(dags_folder: Path) -> dict[str, tuple[str, str]]:
    """workflow -> (cron, timezone) of the healthy templates of ``dags_folder`` with a cron schedule (read
    through the validation cache, as the DAG files read them)."""
    found = {}
    for workflow in healthy_workflows(dags_folder):
        cron = workflow.schedule.cron
        if cron is not None and croniter.is_valid(cron):  # not @once / @continuous
            found[workflow.workflow] = (cron, workflow.schedule.timezone)
    return found


def watch(
    store: EventStore, schedules: dict[str, tuple[str, str]], live: set[str], now: datetime
) -> dict[str, Watched]:
    """The watched workflows, after this tick: each scheduled one in ``live`` (unpaused), since the tick
    that first saw it so with its current schedule (saved in the monitor's state, in one transaction)."""
    with store.engine.begin() as conn:
        before = load_state(conn, STATE, lock=True) or {}
        after = {}
        for workflow, (cron, timezone) in sorted(schedules.items()):
            if workflow not in live:
                continue
            seen = before.get(workflow) or {}
            same = (seen.get("cron"), seen.get("timezone")) == (cron, timezone)
            since = seen["since"] if same and isinstance(seen.get("since"), str) else now.isoformat()
            after[workflow] = {"cron": cron, "timezone": timezone, "since": since}
        if after != before:
            save_state(conn, STATE, after, now)
    return {
        w: Watched(w, v["cron"], v["timezone"], datetime.fromisoformat(v["since"])) for w, v in after.items()
    }


def due(cron: str, timezone: str, start: datetime, end: datetime) -> np.ndarray:
    """The times (epoch seconds, in order) ``cron`` fires in ``timezone`` after ``start`` up to ``end``:
    the latest ``MAX_DUE`` of them, found walking back from ``end`` (so a cron of every minute over a
    month's lookback costs no more than ``MAX_DUE`` steps)."""
    times = croniter(cron, (end + timedelta(seconds=1)).astimezone(ZoneInfo(timezone)), ret_type=datetime)
    found: list[float] = []
    while len(found) < MAX_DUE:
        at = times.get_prev()
        if at <= start:
            break
        if at <= end:
            found.append(at.timestamp())
    return np.asarray(found[::-1], float)


def started(store: EventStore, workflow: str, since: datetime) -> np.ndarray:
    """When the workflow's scheduled runs started (epoch seconds), since ``since``: read from the
    ``runs_started`` signal the monitor folds (no scan of the events)."""
    return signals.points(store, "runs_started", f"workflow:{workflow}", since).value


def series(
    store: EventStore, watched: Watched, lookback: timedelta, grace: timedelta, now: datetime
) -> Schedule:
    """What the schedule detector reads for one watched workflow now."""
    start = max(watched.since, now - lookback)
    expected = due(watched.cron, watched.timezone, start, now)
    # a run due just before ``start`` may start after it: read the starts from a grace earlier
    return Schedule(expected=expected, started=started(store, watched.workflow, start - grace))


def watched_now(store: EventStore, dags_folder: Path, now: datetime) -> dict[str, Watched] | None:
    """This tick's watched workflows, or None when Airflow cannot say which DAGs are unpaused (no
    connection ``baton_airflow_api``, or its API failed: logged, and nothing is watched this tick)."""
    api = AirflowApi.from_connection()  # first: the templates are not read when nothing can be watched
    if api is None:
        log.info(
            "runs_started is not watched: telling a paused workflow from a missed run needs the Airflow "
            "connection %s (Airflow's REST API)",
            CONN_ID,
        )
        return None
    try:
        live, complete = api.unpaused(MAX_PAGES)
    except AirflowApiError as error:
        log.warning("runs_started is not watched this tick: %s", error)
        return None
    if not complete:
        log.warning("over %d unpaused DAGs: some schedules are not watched this tick", MAX_PAGES * 100)
    return watch(store, scheduled(dags_folder), live, now.astimezone(UTC))
