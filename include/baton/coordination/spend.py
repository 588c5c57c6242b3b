"""The budgets of one try (:mod:`baton.budgets`): its guard, from the budgets declared next to its DAG
file, with its events and its Slack warning; and the freeing of what its task's earlier tries reserved."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from baton.budgets.config import Budget, budgets_of, dags_folder_of
from baton.budgets.guard import Guard
from baton.budgets.ledger import Ledger, Spend


def try_key(recorder: Any) -> str:
    """``<run>/<task>[<map index>]#<try>``: a try's reservations are held under it."""
    c = recorder.common
    return f"{c['run_id']}/{c['step']}[{c['map_index']}]#{c['try_number']}"


def guard_for(recorder: Any, context: Any, ttl: timedelta, budgets: Sequence[Budget] | None = None) -> Guard:
    """The guard of this try's model calls; ``budgets``: these instead of the DAG folder's."""
    if budgets is None:
        budgets = budgets_of(dags_folder_of(context))
    common = recorder.common

    def record(kind: str, payload: dict[str, Any], discriminator: str) -> None:
        recorder.record(recorder.event(kind, payload, discriminator, agent=payload.get("agent")))

    def warn(budget: Budget, window: str, spent: Spend) -> None:
        from baton.alerts import Alert, send

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
        record,
        warn,
    )


async def within(guard: Guard, agent: Any, prompt: str, limits: Any, tag: str, call: Any) -> tuple[Any, dict]:
    """Await ``call()`` (a model call: (output, its ``model.called`` payload)) within the budgets: its
    estimate reserved before, its actual use settled after, also when it fails (with the tokens a failed
    call used, where its error carries them as ``spent``)."""
    reservation = await guard.areserve(agent, prompt, limits, tag)
    payload = None
    try:
        output, payload = await call()
    except BaseException as error:
        payload = getattr(error, "spent", None)
        raise
    finally:
        await asyncio.to_thread(guard.settle, agent, reservation, payload, tag)
    return output, payload


def free_earlier_tries(recorder: Any) -> int:
    """Free what this task's earlier tries reserved and never settled (a try killed mid-call): how many
    reservations went. This try has reserved nothing yet."""
    c = recorder.common
    if c["try_number"] <= 1:
        return 0
    return Ledger(recorder.store).release_holder(f"{c['run_id']}/{c['step']}[{c['map_index']}]#")
