"""``for_each.items_per_call``: a fan-out's small items answered N to one model call.

Each group is one request, one load slot, one budget reservation (its estimate from the group's prompt
and the step's usage limits times N), one ``model.called`` (with ``items``); each item still has its own
``subtask.started`` and ``subtask.succeeded`` (with ``group``: the first item, whose events hold the
call), its own output and its own requirements. Items with their own capabilities or ``depends_on``, and
items whose requirements fail before the call, run one by one; so does every item of a group whose call
fails (a model that cannot keep N answers apart, a budget the group does not fit in, a timeout).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from baton.agents.model import group_prompt, scaled_limits
from baton.agents.timeout import bounded
from baton.coordination.requirements import check_requirements
from baton.coordination.spend import within
from baton.coordination.subtasks import Subtask
from baton.errors import BudgetExceeded


def groups_of(fan: Any, pending: list[Subtask]) -> list[list[Subtask]]:
    """The groups of ``pending`` one call each answers (each of two items or more), in list order."""
    n = fan.step.fan_out.items_per_call
    if not n:
        return []
    eligible = []
    for sub in pending:
        if sub.depends_on or sub.capabilities:
            continue
        try:
            check_requirements(fan.step, fan.item_scope(sub), after=False, where=fan.where(sub))
            fan.prompt(sub)
        except Exception:
            continue  # refused, or its instruction does not render: it fails on its own, recorded as such
        eligible.append(sub)
    groups = [eligible[i : i + n] for i in range(0, len(eligible), n)]
    return [group for group in groups if len(group) > 1]


async def run_group(
    fan: Any, members: list[Subtask], gate: Any, failing: set[str], result: Any, alone: Any
) -> None:
    """One group of a batch: its call (holding one of the batch's places), each item's result or failure
    in ``result``; the items of a call that failed go through ``alone`` (the one-item path)."""
    async with gate:
        answers = await call_group(fan, members, failing) or {}
    singles = []
    for sub in members:
        answer = answers.get(sub.id)
        if answer is None:
            singles.append(alone(sub))
        elif isinstance(answer, Exception):
            error = f"{type(answer).__name__}: {answer}"[:1000]
            result.failures[sub.id] = {"id": sub.id, "error": error, "agents": answer.agents}
        else:
            result.results[sub.id] = {"id": sub.id, "agent": answer[0], "output": answer[1]}
    await asyncio.gather(*singles)


async def call_group(fan: Any, members: list[Subtask], failing: set[str]) -> dict[str, Any] | None:
    """One model call for ``members`` (a :class:`~baton.coordination.fanout.FanOut`'s items): item id ->
    (agent, output), or the exception of an item whose output broke the step's requirements; None when
    the call failed (its items then run one by one)."""
    first, n = members[0], len(members)
    taken = await _take(fan, members)
    if taken is None:
        return None
    agent, slot = taken
    prompts = [fan.prompt(s) for s in members]
    began = time.monotonic()
    try:
        outputs, payload = await within(
            fan.guard,
            agent,
            group_prompt(prompts),
            scaled_limits(fan.step.spec.usage_limits, n),
            f"[{first.id}+{n - 1}]#1",
            lambda: bounded(
                fan.models.call_group(agent, prompts),
                fan.step.agent_timeout,
                f"the call for {n} items of step '{fan.step.task_id}'",
                items=n,
            ),
            fan.writes,
        )
    except Exception as error:
        fan.log.warning(
            "Step %s: the call for items %s..%s failed (%s: %s); they run one by one",
            fan.step.task_id, first.id, members[-1].id, type(error).__name__, str(error)[:300],
        )  # fmt: skip
        # what the failed call spent, as attempt 0 of its first item: each item's own call is its attempt 1
        await fan.release(agent, slot, fan.spent_events(first, agent, 0, error))
        if not isinstance(error, BudgetExceeded):
            await asyncio.to_thread(fan.breaker_failure, agent, error)
            failing.add(agent.name)
        return None
    answers, events = _answers(fan, members, agent, outputs, round(time.monotonic() - began, 3))
    await fan.release(agent, slot, [fan.event("model.called", first, agent, 1, payload), *events])
    if agent.name in failing:
        await asyncio.to_thread(fan.breaker_success, agent)
        failing.discard(agent.name)
    return answers


async def _take(fan: Any, members: list[Subtask]) -> tuple[Any, int] | None:
    """The group's agent (the template's, or routed for its first item) and one of its slots, with each
    item's ``subtask.started``; None when no agent can take it, or the agent is a skill."""
    first, common = members[0], fan.recorder.common
    holder = f"{common['run_id']}/{fan.step.task_id}[{first.id}+{len(members) - 1}]"
    try:
        if fan.fixed is not None:
            agent, selected = fan.choose(first, {})
            started = [fan.event("subtask.started", s, agent, 1, {}) for s in members]
            slot = await fan.slots.atake(agent, holder, fan.ttl, [*started, selected], fan.writes)
        else:
            agent, slot = await fan.route(first, {}, 1, holder)
            await fan.append([fan.event("subtask.started", s, agent, 1, {}) for s in members[1:]])
    except Exception:  # no agent for the group (e.g. every candidate out): each item finds out on its own
        return None
    if agent.skill:  # a skill agent makes no model call to group
        await fan.release(agent, slot, [])
        return None
    return agent, slot


def _answers(
    fan: Any, members: list[Subtask], agent: Any, outputs: list[Any], latency: float
) -> tuple[dict, list]:
    """Each item's answer (or the error of its requirements) and its event."""
    answers: dict[str, Any] = {}
    events = []
    for sub, output in zip(members, outputs, strict=True):
        try:
            fan.require(sub, output)
        except Exception as error:
            error.agents = [agent.name]  # type: ignore[attr-defined]
            answers[sub.id] = error
            detail = {"error_class": type(error).__name__, "error": str(error)[:1000], "reassigned": False}
            events.append(fan.event("subtask.failed", sub, agent, 1, detail))
            continue
        answers[sub.id] = (agent.name, output)
        stored = {"latency_s": latency, "group": members[0].id, **fan.store.output_payload(output)}
        events.append(fan.event("subtask.succeeded", sub, agent, 1, stored))
    return answers, events
