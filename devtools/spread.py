"""Routing under concurrency (issue 17): one fan-out of N simultaneous items over equally capable agents,
in-process on a real store, as bench/routing_spread.py and tests/coordination/test_spread.py run it.

``spread_sleep`` is a skill that sleeps ``SLEEP_S`` (a call that takes time, so the items overlap); the
agents ``spread_0`` .. ``spread_<k-1>`` have it, the capability ``spread`` and ``max_concurrency`` 2.
``run(store, atomic=False)`` runs the fan-out with the router of before (rank, then take a slot in a second
transaction), the baseline; ``atomic=True`` with today's (the choice and its slot in one transaction).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, TypeAdapter

from baton.coordination.fanout import BatchResult, FanOut, subtasks_of
from baton.events.recorder import StepRecorder
from baton.plan import CompiledStep, FanOutPlan
from baton.registry import SkillRequest, skill
from baton.spec.roster import Agent
from baton.spec.step import Step

SLEEP_S = 0.05


class SpreadDone(BaseModel):
    item: str


@skill("spread_sleep", output=SpreadDone)
def spread_sleep(request: SkillRequest) -> dict:
    """Sleeps SLEEP_S, then names the item it did (a call that takes time)."""
    time.sleep(SLEEP_S)
    return {"item": request.instruction}


def agents(count: int = 3, max_concurrency: int = 2) -> tuple[Agent, ...]:
    return tuple(
        Agent(
            name=f"spread_{i}", capabilities=["spread"], skill="spread_sleep", max_concurrency=max_concurrency
        )
        for i in range(count)
    )


class _TwoStepFanOut(FanOut):
    """The router of before: rank (reading the load), then take the winner's slot in another transaction."""

    async def route(self, sub, tried, attempt, holder):
        import asyncio

        route = self.step.spec.route
        choice = await asyncio.to_thread(
            self.router.rank, sorted({*route.capabilities, *sub.capabilities}), route.prefer, tried
        )
        payload = {**choice.payload(), "subtask": sub.id}
        selected = self.event("agent.selected", sub, choice.agent, len(tried) + 1, payload)
        started = [self.event("subtask.started", sub, choice.agent, attempt, {}), selected]
        slot = await self.slots.atake(choice.agent, holder, self.ttl, started, self.writes)
        return choice.agent, slot


def run(
    store: Any, run_id: str, *, atomic: bool, items: int = 20, candidates: tuple[Agent, ...] = ()
) -> Counter:
    """One fan-out of ``items`` items, all at once; how many items each agent did."""
    spec = {
        "id": "spread",
        "route": {"capabilities": ["spread"]},
        "for_each": {"over": "src.items", "concurrency": items},
    }
    step = CompiledStep(
        workflow="spread",
        template_version=1,
        spec=TypeAdapter(Step).validate_python({**spec, "instruction": "Do {{ item.id }}"}),
        candidates=candidates or agents(),
        fan_out=FanOutPlan(
            source="src", field="items", concurrency=items, batch_size=None, partial_failure="fail"
        ),
    )
    ti = SimpleNamespace(run_id=run_id, task_id="spread", map_index=-1, try_number=1, max_tries=1)
    context = {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}), "logical_date": None}
    recorder = StepRecorder(store, context, workflow="spread", template_version=1)
    scope = {"inputs": {}, "steps": {}, "context": {}, "run": {"id": run_id}}
    kind = FanOut if atomic else _TwoStepFanOut
    fan = kind(step, context, scope, recorder, timedelta(hours=1), logging.getLogger("spread"))
    outcome = fan.run(subtasks_of([{"id": f"item_{i}"} for i in range(items)]), BatchResult())
    if outcome.failures:
        raise RuntimeError(f"items failed: {dict(list(outcome.failures.items())[:3])}")
    return Counter(result["agent"] for result in outcome.results.values())


def first_wave(store: Any, run_id: str, size: int = 6) -> Counter:
    """The agents of the run's first ``size`` choices, in the order they were stored."""
    chosen = [e.agent for e in store.read(run_id, types=["agent.selected"])][:size]
    return Counter(chosen)
