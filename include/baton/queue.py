"""Airflow's queue in the order of what the work is worth: Baton's ``PriorityWeightStrategy``.

Airflow's scheduler queues task instances by ``priority_weight``, highest first (then by the run's logical date),
and computes that weight once, when it creates a run's task instances, with the task's ``weight_rule``. Baton's
rule gives each task instance a *start-by time* and turns it into the weight: the earlier a task must start, the
heavier it is. A task must start by the earlier of

* its age bound: when the run was queued, plus the ``max_wait`` of its level (:mod:`baton.spec.priority`), and
* its deadline's slack: the run's deadline less the predicted 90th percentile of the time from this task's start
  to the run's end (:mod:`baton.coordination.prediction`, from the store's history of the workflow).

Airflow hands the rule a task instance without its run, and the scheduler's DAG keeps its Deadline Alerts as
rows of its own database (the DAG holds their ids), which the rule must not read inside the scheduler's
transaction: as it creates a run, a task instance gets the weight of its level's age bound. Baton's listener
weighs the run's task instances again as the scheduler starts the run, before any of them is scheduled,
through the scheduler's own session: with the run's deadline (those rows, read in that session) and its own
level, if it was triggered with one (``baton_priority``, within the template's ``allow``).

Ordering by start-by time is ordering by slack (least slack first), and it never needs a weight to change while
runs wait: every waiting run's slack shrinks at the same pace, so a run whose risk rises because it waits stays
ahead of every run with more slack, and one with less slack that arrives later goes ahead of it. Low-priority work
is never starved: once a run has waited its age bound, work that arrives after it has a later start-by time
unless its own deadline or bound is earlier still. A deadline already past no longer counts (the run keeps its
level's bound), so a hopeless run does not take the queue from runs that can still make theirs.

The weight is ``2**30 - seconds from 2026-01-01 to the start-by time``: a second's resolution, positive until
2060, above the small weights of other DAGs' default rules. Runs that must start in the same second tie, and
Airflow orders those by their logical date, as it always does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow.task.priority_strategy import PriorityWeightStrategy

from baton.events.types import PriorityAssigned
from baton.spec.priority import LEVELS, PARAM, SCHEMA_KEY, level_of, wait_at

if TYPE_CHECKING:
    from baton.coordination.prediction import Remaining, RemainingModel
    from baton.events.store import EventStore

log = logging.getLogger(__name__)

REFERENCE = datetime(2026, 1, 1, tzinfo=UTC)
TOP = 2**30
WEIGHT_RANGE = (1, 2**31 - 1)  # Airflow's column is a 32-bit integer
#: How long a workflow's prediction is reused before the store is read again: one bounded read (~0.1 s) per
#: workflow every ten minutes at most, in the scheduler; history moves slower than that. A read that found too
#: little history (a new workflow) or failed is tried again after a minute.
MODEL_TTL_S, THIN_TTL_S = 600.0, 60.0


def weight_of(start_by: datetime) -> int:
    """The weight of a start-by time: earlier, heavier; a second's resolution, within Airflow's integer."""
    return min(
        WEIGHT_RANGE[1], max(WEIGHT_RANGE[0], TOP - math.floor((start_by - REFERENCE).total_seconds()))
    )


def start_by_of(weight: int | None) -> str | None:
    """The start-by time a weight of this rule stands for (None for a weight outside its range: another rule's)."""
    if weight is None or not TOP - 20 * 365 * 86400 < weight <= TOP + 5 * 365 * 86400:  # 2021 to 2046
        return None
    return _iso(REFERENCE + timedelta(seconds=TOP - weight))


#: A task's place in the queue and why: the payload ``priority.assigned`` records and the pages show.
Standing = PriorityAssigned


def standing(
    *,
    level: int,
    level_from: str,
    wait_s: float,
    queued_at: datetime,
    deadline_s: float | None,
    remaining: Remaining | None,
    now: datetime,
) -> Standing:
    """Where a task stands: its start-by time from its age bound and its deadline's slack (see the module)."""
    aged = queued_at + timedelta(seconds=wait_s)
    start_by, reason = aged, f"level {level}: waits at most {_span(wait_s)} behind more urgent work"
    deadline_at = queued_at + timedelta(seconds=deadline_s) if deadline_s is not None else None
    extra: dict[str, Any] = {}
    if remaining is not None:
        extra = {
            "predicted_p50_s": round(remaining.p50, 1),
            "predicted_p90_s": round(remaining.p90, 1),
            "predicted_finish": _iso(now + timedelta(seconds=remaining.p50)),
            "history_runs": remaining.runs,
        }
    if deadline_at is not None and deadline_at <= now:
        reason += "; its deadline has passed, so only its level orders it"
    elif deadline_at is not None:
        need = deadline_at - timedelta(seconds=remaining.p90 if remaining is not None else 0.0)
        if remaining is not None:
            extra["miss_risk"] = round(remaining.miss_risk((deadline_at - now).total_seconds()), 3)
        if need < aged:
            start_by = need
            reason = (
                f"deadline {_iso(deadline_at)}: must start by {_iso(need)} to finish in time at the predicted p90 "
                f"({_span(remaining.p90)})"
                if remaining is not None
                else f"deadline {_iso(deadline_at)}: no history to predict from yet, so ordered by the deadline"
            )
    return Standing(
        level=level,
        level_from=level_from,
        max_wait_s=wait_s,
        queued_at=_iso(queued_at),
        start_by=_iso(start_by),
        weight=weight_of(start_by),
        reason=reason,
        deadline_at=_iso(deadline_at) if deadline_at else None,
        **extra,
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _span(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


# --- what the scheduler knows of a task: its DAG (serialized), its run -----------------------------------


def template_priority(dag: Any, task: Any) -> tuple[int, float | None, tuple[int, int] | None]:
    """The template's level (the task's ``priority_weight``), its age bound and the levels a run may set (the
    param ``baton_priority``'s schema, which the DAG carries through serialization)."""
    level = min(100, max(0, int(getattr(task, "priority_weight", LEVELS["normal"]) or 0)))
    params = getattr(dag, "params", None)
    schema = {}
    if params is not None and PARAM in params:
        param = params.get_param(PARAM) if hasattr(params, "get_param") else params[PARAM]
        schema = getattr(param, "schema", None) or {}
    declared = schema.get(SCHEMA_KEY) or {}
    if not declared:
        return level, None, None
    bounds = schema["anyOf"][0]
    return (
        int(declared["level"]),
        float(declared["max_wait_s"]),
        (int(bounds["minimum"]), int(bounds["maximum"])),
    )


def run_deadline_s(dag: Any, stored: Mapping[str, Any] | None = None) -> float | None:
    """The run's deadline (seconds after it was queued): Baton's run-wide Deadline Alert on the DAG, as
    written (``DeadlineAlert``), as a serialized DAG holds it (a dict), or as the scheduler's DAG holds it:
    the id of a row of Airflow's ``deadline_alert`` table, whose ``callback_def`` the caller read (``stored``,
    by id; without it, such a DAG's deadline is unknown here: see ``baton.plugin.listener``)."""
    for alert in getattr(dag, "deadline", None) or []:
        kwargs = _callback_kwargs((stored or {}).get(str(alert)) if isinstance(alert, str) else alert)
        if kwargs.get("step") is None and isinstance(kwargs.get("deadline_s"), int | float):
            return float(kwargs["deadline_s"])
    return None


def _callback_kwargs(alert: Any) -> dict[str, Any]:
    """The keyword arguments of Baton's deadline callback, from any of the forms an alert takes."""
    if alert is None:
        return {}
    if not isinstance(alert, dict):  # a DeadlineAlert, as the DAG file wrote it
        return getattr(getattr(alert, "callback", None), "kwargs", None) or {}
    callback = alert.get("callback", alert)  # a serialized alert, or a stored row's callback_def
    data = callback.get("__data__") if isinstance(callback, dict) else None
    kwargs = data.get("kwargs") if isinstance(data, dict) else None
    return kwargs if isinstance(kwargs, dict) else {}


def run_level(conf: Any, template_level: int, allow: tuple[int, int] | None) -> tuple[int, str]:
    """A run's level: its ``baton_priority`` within the template's ``allow`` (Airflow validated it against the
    param's schema when the run was triggered; a value that did not pass keeps the template's level)."""
    value = conf.get(PARAM) if isinstance(conf, dict) else None
    if value is None or allow is None:
        return template_level, "template"
    try:
        level = level_of(value)
    except ValueError:
        shown = repr(value)[:40]  # bounded: a conf is the caller's
        log.warning("a run's %s=%s is not a priority: the template's level %d", PARAM, shown, template_level)
        return template_level, "template"
    if not allow[0] <= level <= allow[1]:
        log.warning(
            "a run's %s=%d is outside allow %s: the template's level %d", PARAM, level, allow, template_level
        )
        return template_level, "template"
    return level, "run"


_models: dict[str, tuple[float, RemainingModel | None, dict[str | None, Remaining | None]]] = {}


def remaining_of(workflow: str, step: str | None) -> Remaining | None:
    """The predicted time from ``step``'s start to the run's end (the run's whole, without history of the step),
    from a prediction read from the store at most every ``MODEL_TTL_S`` a workflow; None if the store cannot be
    read (the weight then rests on the deadline and the level alone: the scheduler never fails on the store)."""
    cached = _models.get(workflow)
    if cached is None or cached[0] <= time.monotonic():
        from baton.coordination.prediction import RemainingModel  # deferred: no numpy, no reads at parsing

        try:
            model = RemainingModel.from_store(_store(), workflow)
        except Exception as error:  # any failure of the store: the weight goes on without a prediction
            log.warning(
                "no prediction for %s: the store could not be read (%s)", workflow, type(error).__name__
            )
            model = None
        ttl = MODEL_TTL_S if model is not None and model.remaining(None) is not None else THIN_TTL_S
        cached = _models[workflow] = (time.monotonic() + ttl, model, {})
    model, known = cached[1], cached[2]
    if model is None:
        return None
    if step not in known:
        known[step] = model.remaining(step) or (model.remaining(None) if step is not None else None)
    return known[step]


@cache
def _store() -> EventStore:
    from baton.events.store import EventStore  # deferred: a light plugin load in every process

    return EventStore.from_airflow()


def task_standing(
    task: Any,
    dag_run: Any | None = None,
    now: datetime | None = None,
    whole_run: bool = False,
    deadlines: Mapping[str, Any] | None = None,
) -> Standing:
    """The standing of a task instance of ``task`` (in ``dag_run`` if known: its conf and when it was queued);
    ``whole_run``: of the run as it starts (the prediction from its start, not from this task's);
    ``deadlines``: the stored Deadline Alerts of the scheduler's DAG, by id (see :func:`run_deadline_s`)."""
    now = now or datetime.now(UTC)
    dag = getattr(task, "dag", None)
    template_level, template_wait_s, allow = template_priority(dag, task)
    level, level_from = run_level(getattr(dag_run, "conf", None), template_level, allow)
    queued_at = getattr(dag_run, "queued_at", None) or now
    deadline_s = run_deadline_s(dag, deadlines)
    # A task's weight needs the prediction only against a deadline; the run's standing shows it always.
    wanted = dag is not None and (whole_run or deadline_s is not None)
    remaining = remaining_of(task.dag_id, None if whole_run else task.task_id) if wanted else None
    return standing(
        level=level,
        level_from=level_from,
        wait_s=wait_at(level, template_level, template_wait_s),
        queued_at=queued_at,
        deadline_s=deadline_s,
        remaining=remaining,
        now=now,
    )


class BatonPriority(PriorityWeightStrategy):
    """The weight rule of every task of a Baton DAG (registered by Baton's plugin; see the module). DAGs name it
    by :data:`RULE`: Airflow serializes a mapped task's ``partial_kwargs`` and a DAG's ``default_args`` value by
    value, which would turn an instance into its repr, while a name is looked up among the registered rules."""

    def __repr__(self) -> str:  # stateless (Airflow serializes it by name): every instance reads the same
        return "BatonPriority()"

    def get_weight(self, ti: Any) -> int:
        # Airflow gives the task instance alone (its run is not loaded, and the scheduler's session must not be
        # used here) as it creates the run: the weight of a run queued now at the template's level (in the
        # scheduler, without its deadline: see the module). The listener weighs it again as the run starts.
        # (Airflow's task instance mutation hook would see the run, but Airflow 3.3 calls a policy plugin's
        # hook at creation only when an airflow_local_settings module exists.)
        try:
            return task_standing(ti.task).weight
        except Exception:  # a weight rule must not stop the scheduler: the template's level alone then
            log.exception("Baton's priority of %s.%s failed: its template level alone", ti.dag_id, ti.task_id)
            return int(getattr(ti.task, "priority_weight", 1) or 1)


#: The name a DAG gives its tasks' ``weight_rule`` (see :class:`BatonPriority`).
RULE = f"{BatonPriority.__module__}.{BatonPriority.__qualname__}"


def is_baton_rule(rule: Any) -> bool:
    """Whether a task's ``weight_rule`` is Baton's: the rule, or its name (a mapped task's, in the scheduler)."""
    return isinstance(rule, BatonPriority) or rule == RULE
