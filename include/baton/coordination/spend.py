"""The budgets of one try (:mod:`baton.budgets`): its guard, from the budgets declared next to its DAG
file, with its events and its Slack warning; and the freeing of what its task's earlier tries reserved.

At a budget's limit (``at_limit: ask`` or ``defer``) the call is held back: the ``budget`` kind of
:mod:`~baton.coordination.questions` asks a person to raise the budget once in its window, and
``budget_window`` resumes a step deferred to the budget's next window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

from airflow.sdk import Param

from baton.alerts import Alert, send
from baton.budgets.config import budgets_of, dags_folder_of
from baton.budgets.guard import Guard
from baton.budgets.ledger import Ledger, Spend
from baton.coordination.questions import (
    FAIL,
    Answer,
    Handler,
    Question,
    StepHandler,
    body,
    register,
    timeout_of,
)
from baton.errors import BudgetExceeded
from baton.spec.budgets import Budget


def try_key(recorder: Any) -> str:
    """``<run>/<task>[<map index>]#<try>``: a try's reservations are held under it."""
    c = recorder.common
    return f"{c['run_id']}/{c['step']}[{c['map_index']}]#{c['try_number']}"


def guard_for(recorder: Any, context: Any, ttl: timedelta, budgets: Sequence[Budget] | None = None) -> Guard:
    """The guard of this try's model calls; ``budgets``: these instead of the DAG folder's."""
    if budgets is None:
        budgets = budgets_of(dags_folder_of(context))
    common = recorder.common

    def event(kind: str, payload: dict[str, Any], discriminator: str) -> Any:
        return recorder.event(kind, payload, discriminator, agent=payload.get("agent"))

    def warn(budget: Budget, window: str, spent: Spend) -> None:
        limits = [f"{spent.cost:.6g} of {budget.cost:.6g}"] if budget.cost else []
        limits += [f"{spent.tokens:,} of {budget.tokens:,} tokens"] if budget.tokens else []
        alert = Alert(
            kind="budget_warning",
            workflow=common["workflow"],
            run_id=common["run_id"],
            message=f"budget '{budget.name}' ({budget.scope}, per {budget.per}, window {window}) is at "
            f"{' and '.join(limits)}: past {budget.warn_at:.0%} of its limit",
            step=common["step"],
        )
        send(alert, recorder.store)

    return Guard(
        recorder.store,
        tuple(budgets),
        common["workflow"],
        common["run_id"],
        try_key(recorder),
        ttl,
        event,
        warn,
    )


async def within(
    guard: Guard, agent: Any, prompt: str, limits: Any, tag: str, call: Any, writes: Any
) -> tuple[Any, dict]:
    """Await ``call()`` (a model call: (output, its ``model.called`` payload)) within the budgets: its
    estimate reserved before, its actual use settled after, also when it fails (with the tokens a failed
    call used, where its error carries them as ``spent``); each in ``writes``' next group transaction
    (a fan-out's :class:`~baton.coordination.commits.GroupCommit`), with its event."""
    reservation = await guard.areserve(agent, prompt, limits, tag, writes)
    payload = None
    try:
        output, payload = await call()
    except BaseException as error:
        payload = getattr(error, "spent", None)
        raise
    finally:
        await guard.asettle(agent, reservation, payload, tag, writes)
    return output, payload


def free_earlier_tries(recorder: Any) -> int:
    """Free what this task's earlier tries reserved and never settled (a try killed mid-call): how many
    reservations went. This try has reserved nothing yet."""
    c = recorder.common
    if c["try_number"] <= 1:
        return 0
    return Ledger(recorder.store).release_holder(f"{c['run_id']}/{c['step']}[{c['map_index']}]#")


# --- at the limit: ask a person to raise it once, or defer to the next window ------------------------

RAISE = "Raise the budget once and go on"
MAX_PERCENT = 1000


def held(error: BaseException) -> Any:
    """The ``BudgetExceeded`` behind ``error`` when its budget holds the call back until a person raises
    it or its next window (``at_limit: ask`` or ``defer``); None for any other failure (and for a refusal
    made final: an ``ask`` budget already raised once)."""
    cause = error if isinstance(error, BudgetExceeded) else error.__cause__
    budget = getattr(cause, "budget", None)
    if not isinstance(cause, BudgetExceeded) or budget is None or budget.at_limit not in ("ask", "defer"):
        return None
    return cause


def hold_of(error: BaseException) -> dict[str, str] | None:
    """:func:`held` as JSON (name, window, at_limit), for a fan-out item's failure."""
    cause = held(error)
    if cause is None:
        return None
    return {"name": cause.budget.name, "window": cause.window, "at_limit": cause.budget.at_limit}


def at_limit(
    hold: dict[str, str], budgets: Sequence[Budget], step: Any, context: Any, recorder: Any, items: list[str]
) -> Any:
    """What parks a fan-out whose ``items`` a budget held back (``hold``: :func:`hold_of`): a deferral to
    the budget's next window, or a person's question; None when the budget was already raised once in
    this window (the items' failures stand)."""
    budget = next((b for b in budgets if b.name == hold["name"]), None)
    if budget is None:  # the file changed under the run: nothing to wait for
        return None
    if budget.at_limit == "defer":
        return deferral(budget, hold["window"], recorder, items)
    if Ledger(recorder.store).raised(budget, hold["window"]) != Spend():
        return None
    return question(budget, hold["window"], step, context, items)


def deferral(budget: Budget, window: str, recorder: Any, items: list[str]) -> BaseException:
    """``TaskDeferred`` until ``budget``'s next window (its ``budget.deferred`` recorded): the triggerer
    holds the wait, no worker slot does; the step resumes there (``resume_escalation``, ``budget_window``)."""
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    from airflow.sdk.exceptions import TaskDeferred

    until = budget.window_end(window) + timedelta(seconds=1)  # type: ignore[operator]  # not per run
    payload = {"budget": budget.name, "window": window, "until": until.isoformat(), "items": items[:10_000]}
    recorder.record(recorder.event("budget.deferred", payload, f"{budget.name}|{window}"))
    return TaskDeferred(
        trigger=DateTimeTrigger(moment=until),
        method_name="resume_escalation",
        kwargs={"kind": BudgetWindow.kind, "state": {"budget": budget.name, "window": window}},
    )


def question(budget: Budget, window: str, step: Any, context: Any, items: list[str]) -> Question:
    """The Required Action that asks a person to raise ``budget`` once in ``window``."""
    limits = [f"{budget.cost:g} (money)"] if budget.cost else []
    limits += [f"{budget.tokens:,} tokens"] if budget.tokens else []
    what = f"{len(items)} item(s) of the fan-out" if items else "the step's model call"
    reason = f"budget '{budget.name}' ({budget.scope}, per {budget.per}, window {window}) is spent"
    return Question(
        kind=BudgetAsk.kind,
        subject=f"{step.workflow}.{step.task_id}: {reason}"[:250],
        body=body(
            step,
            context,
            f"The {' and '.join(limits)} of budget **{budget.name}** in window {window} is spent, so "
            f"{what} did not run.\n\nRaise its limit once in this window by the percentage below and go "
            "on, or fail the step. A budget can be raised once per window.",
        ),
        options=[RAISE, FAIL],
        params={
            "raise_by_percent": Param(
                50, type="integer", minimum=1, maximum=MAX_PERCENT, description="added to the limit, once"
            )
        },
        timeout=timeout_of(step),
        state={"budget": budget.name, "window": window, "reason": reason},
        reason=reason,
    )


def raise_once(answer: Answer, budgets: Sequence[Budget], recorder: Any) -> None:
    """A person chose to raise the budget: add the percentage to its limit in the window, once (a second
    person's raise in the same window adds nothing), and record ``budget.raised``."""
    state = answer.state
    budget = next((b for b in budgets if b.name == state["budget"]), None)
    if budget is None:
        raise BudgetExceeded(f"budget '{state['budget']}' is no longer in budgets.yaml: nothing to raise")
    percent = answer.params.get("raise_by_percent", 50)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= MAX_PERCENT:
        raise BudgetExceeded(
            f"raise_by_percent {str(percent)[:40]!r} is not a whole number from 1 to {MAX_PERCENT}: "
            f"budget '{budget.name}' was not raised"
        )
    extra = Spend(round((budget.cost or 0) * percent / 100, 10), int((budget.tokens or 0) * percent // 100))
    first = Ledger(recorder.store).raise_once(budget, state["window"], extra, answer.by or "a person")
    payload = {"budget": budget.name, "window": state["window"], "percent": percent, "cost": extra.cost,
               "tokens": extra.tokens, "by": answer.by or "a person", "first": first}  # fmt: skip
    recorder.record(recorder.event("budget.raised", payload, f"{budget.name}|{state['window']}"))


class BudgetAsk(StepHandler):
    """A step's call (or a fan-out's items) held back at a budget's limit: deferred to its next window
    (``at_limit: defer``) or a person asked to raise it once (``ask``); raised, the held calls go on."""

    kind: ClassVar[str] = "budget"

    def on_failure(self, error: BaseException, run: Any) -> Question | BaseException | None:
        cause = held(error)
        if cause is None:
            return None
        if cause.budget.at_limit == "defer":
            return deferral(cause.budget, cause.window, run.recorder, [])
        return question(cause.budget, cause.window, run.step, run.context, [])

    def apply(self, answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
        raise_once(answer, budgets_of(dags_folder_of(run.context)), run.recorder)
        return run.fan_out(scope, versions) if run.step.fan_out else run.call(scope)


class BudgetWindow(Handler):
    """A step deferred to a budget's next window resumes there: its try starts over."""

    kind: ClassVar[str] = "budget_window"

    def resume(self, host: Any, event: Any, state: dict[str, Any]) -> Any:
        host.log.info("Step %s: budget '%s' has a new window", host.step.task_id, state.get("budget"))
        return host.start()


register(BudgetAsk())
register(BudgetWindow())
