"""One item of a fan-out, attempt by attempt, inside its batch's task.

:class:`ItemAttempts` is the part of :class:`~baton.coordination.fanout.FanOut` that runs one item: its
agent (the template's, waiting for one of its load slots; or routed, the choice and its slot taken in one
group transaction), its call (a skill, or the model within the budgets) within the step's
``agent_timeout``, its requirements on the output, its ``subtask.*`` events, and after a failure the next
agent (at most ``MAX_REASSIGN``), the agent's circuit breaker told either way. A call for a group of
items (:mod:`baton.coordination.grouped`) takes its agent, slot, events and requirements from here too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from baton import effects, templating, tracing
from baton.agents.model import ModelCalls
from baton.agents.skills import run_skill
from baton.agents.timeout import bounded
from baton.coordination.breaker import record_failure, record_success
from baton.coordination.requirements import check_requirements
from baton.coordination.routing import Choice, GroupCommit, NoCandidate, Router, Slots
from baton.coordination.spend import within
from baton.coordination.subtasks import Subtask, SubtaskError
from baton.errors import BudgetExceeded, RequirementFailed
from baton.events.event import Event
from baton.plan import CompiledStep
from baton.spec.roster import Agent

MAX_REASSIGN = 3  # agents one subtask may go through within a task


class ItemAttempts:
    """The attempts of a fan-out's items. What they read is the batch's, set up by
    :class:`~baton.coordination.fanout.FanOut`: the step, its scope, the recorder and store, the router
    and the load slots, the template's agent (``fixed``; None when routed), the model calls, the budgets'
    guard, how long a slot is held (``ttl``), the batch's group transactions (``writes``), the items a
    budget sent to the cheapest agent (``cheap``) and the items' rendered instructions."""

    step: CompiledStep
    scope: dict[str, Any]
    recorder: Any
    store: Any
    router: Router
    slots: Slots
    fixed: Agent | None
    models: ModelCalls
    guard: Any
    ttl: timedelta
    writes: GroupCommit
    cheap: set[str]
    _prompts: dict[str, str]

    async def attempts(self, sub: Subtask, failing: set[str]) -> tuple[str | None, Any]:
        """``sub``'s attempts (a skill step's item: its one call): each agent's, holding one of its slots,
        until one succeeds; the next agent after a failure (at most ``MAX_REASSIGN``), unless the
        template names the agent or no other can mend it. Its ``agent`` name and output."""
        if self.fixed is None and not self.step.routed:
            return None, await self.skill_item(sub)
        tried: dict[str, str] = {}
        holder = f"{self.recorder.common['run_id']}/{self.step.task_id}[{sub.id}]"
        for attempt in range(1, MAX_REASSIGN + 1):
            if self.fixed is not None:  # the template's agent: wait for one of its slots
                agent, selected = self.choose(sub, tried)
                started = [self.event("subtask.started", sub, agent, attempt, {}), selected]
                slot = await self.slots.atake(agent, holder, self.ttl, started, self.writes)
            else:  # routed: the choice and its slot in one transaction
                agent, slot = await self.route(sub, tried, attempt, holder)
            began = time.monotonic()
            try:
                output, model_event = await self._call(agent, sub, attempt)
            except Exception as error:
                await self._attempt_failed(sub, agent, attempt, slot, error, failing, tried)
                continue
            stored = self.store.output_payload(output)
            succeeded = self.event(
                "subtask.succeeded",
                sub,
                agent,
                attempt,
                {"latency_s": round(time.monotonic() - began, 3), **stored},
            )
            events = [e for e in (model_event, succeeded) if e is not None]
            await self.release(agent, slot, events)
            if agent.name in failing:
                await asyncio.to_thread(self.breaker_success, agent)
                failing.discard(agent.name)
            return agent.name, output
        raise SubtaskError(f"no agent succeeded after {MAX_REASSIGN} attempts", list(tried), recorded=True)

    async def _attempt_failed(self, sub, agent, attempt, slot, error, failing, tried) -> None:
        """Records a failed attempt and frees its slot; raises when no other agent may try."""
        refused = isinstance(error, (RequirementFailed, BudgetExceeded))  # no other agent mends it ...
        if isinstance(error, BudgetExceeded) and error.budget.at_limit == "fallback":  # ... unless cheaper
            refused = False
            self.cheap.add(sub.id)
        reassign = self.fixed is None and attempt < MAX_REASSIGN and not refused
        detail = {"error_class": type(error).__name__, "error": str(error)[:1000], "reassigned": reassign}
        failed = self.event("subtask.failed", sub, agent, attempt, detail)
        await self.release(agent, slot, [*self.spent_events(sub, agent, attempt, error), failed])
        if not refused and not isinstance(error, BudgetExceeded):  # the agent did not fail: no count
            await asyncio.to_thread(self.breaker_failure, agent, error)
            failing.add(agent.name)
        tried[agent.name] = f"failed subtask {sub.id}: {type(error).__name__}"
        if not reassign:
            raise SubtaskError(str(error), list(tried), recorded=True) from error

    def spent_events(self, sub: Subtask, agent: Agent, attempt: int, error: BaseException) -> list[Event]:
        """The ``model.called`` of a model call that failed after its model answered (answers that broke the
        schema, re-asks past the usage limits): its tokens were spent, the budgets settled them, and the run's
        events hold them as a step's failed call does. None when the model was never reached."""
        payload = getattr(error, "spent", None)
        return [self.event("model.called", sub, agent, attempt, payload)] if payload else []

    async def skill_item(self, sub: Subtask) -> Any:
        """A subtask of a skill step: no agent to choose; recorded like an agent's (so a later try
        reuses it, and the saga can undo it)."""
        await self.append([self.event("subtask.started", sub, None, 1, {})])
        began = time.monotonic()
        try:
            with self._effects(sub, 1):
                output = await self._bounded(self._skill(self.step.skill, sub, self.prompt(sub)), sub)
            self.require(sub, output)
        except Exception as error:
            failed = {"error_class": type(error).__name__, "error": str(error)[:1000]}
            await self.append([self.event("subtask.failed", sub, None, 1, failed)])
            raise SubtaskError(str(error), [], recorded=True) from error
        stored = self.store.output_payload(output)
        latency = {"latency_s": round(time.monotonic() - began, 3)}
        await self.append([self.event("subtask.succeeded", sub, None, 1, {**latency, **stored})])
        return output

    async def append(self, events: list[Event]) -> None:
        """``events`` written in the batch's next group transaction."""
        await self.writes.run(lambda conn: self.store.append_in(conn, events))

    async def release(self, agent: Agent, slot: int, events: list[Event]) -> None:
        """``agent``'s ``slot`` let go, with ``events``, in the batch's next group transaction."""
        await self.writes.run(lambda conn: self.slots.release_in(conn, agent.name, slot, events))

    def choose(self, sub: Subtask, tried: dict[str, str]) -> tuple[Agent, Event]:
        """The template's agent for ``sub``, and its ``agent.selected``."""
        agent = self.fixed
        payload = {"agent": agent.name, "candidates": [agent.name], "reason": "named by the template"}
        payload["subtask"] = sub.id
        return agent, self.event("agent.selected", sub, agent, len(tried) + 1, payload)

    async def route(
        self, sub: Subtask, tried: dict[str, str], attempt: int, holder: str
    ) -> tuple[Agent, int]:
        """The routed agent of this attempt and the slot it holds, chosen and taken in one group
        transaction (the items asking at the same time see each other's slots); waits while every
        candidate is full."""
        route = self.step.spec.route
        capabilities = sorted({*route.capabilities, *sub.capabilities})

        def events(choice: Choice) -> list[Event]:
            payload = {**choice.payload(), "subtask": sub.id}
            selected = self.event("agent.selected", sub, choice.agent, len(tried) + 1, payload)
            return [self.event("subtask.started", sub, choice.agent, attempt, {}), selected]

        def take(conn: Any) -> tuple[Choice, int] | None:
            prefer = "cheap" if sub.id in self.cheap else route.prefer
            return self.router.take_best(conn, capabilities, prefer, tried, holder, self.ttl, events, since)

        delay, since = 0.01, time.monotonic()
        while True:
            try:
                taken = await self.writes.run(take)
            except NoCandidate as error:
                raise SubtaskError(str(error), list(tried)) from None
            if taken is not None:
                return taken[0].agent, taken[1]
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def event(self, kind: str, sub: Subtask, agent: Agent | None, attempt: int, payload: dict) -> Event:
        """An event of ``sub``'s ``attempt`` (a ``subtask.*`` one names the item and the attempt)."""
        if kind.startswith("subtask."):
            payload = {"subtask": sub.id, "attempt": attempt, **payload}
        return self.recorder.event(
            kind, payload, discriminator=f"{sub.id}#{attempt}", agent=agent.name if agent else None
        )

    def breaker_failure(self, agent: Agent, error: BaseException) -> None:
        """``agent``'s circuit breaker counts ``error``."""
        record_failure(self.recorder, agent, error)

    def breaker_success(self, agent: Agent) -> None:
        """``agent``'s circuit breaker, failing until now, is told it answered."""
        record_success(self.recorder, agent)

    # --- one call --------------------------------------------------------------------------------

    def item_scope(self, sub: Subtask) -> dict[str, Any]:
        """The item's Jinja scope: the step's, with ``item`` and ``index``."""
        return {**self.scope, "item": sub.item, "index": sub.index}

    def prompt(self, sub: Subtask) -> str:
        """The item's instruction, rendered once per batch (grouping and dedupe read it before the call)."""
        if sub.id not in self._prompts:
            self._prompts[sub.id] = templating.render(self.step.spec.instruction, self.item_scope(sub))
        return self._prompts[sub.id]

    async def _skill(self, name: str, sub: Subtask, prompt: str) -> Any:
        return await asyncio.to_thread(
            run_skill,
            name,
            workflow=self.step.workflow,
            step_id=f"{self.step.task_id}[{sub.id}]",
            output_spec=self.step.output_spec,
            instruction=prompt,
            scope=self.item_scope(sub),
            with_=self.step.spec.arguments
            if name == self.step.spec.skill_name
            else None,  # an agent's has none
        )

    async def _call(self, agent: Agent, sub: Subtask, attempt: int) -> tuple[Any, Event | None]:
        prompt, where = self.prompt(sub), {"step": self.step.task_id, "item": sub.id, "attempt": attempt}
        with tracing.span("baton.subtask", agent=agent.name, **where), self._effects(sub, attempt):
            if agent.skill:
                output, event = await self._bounded(self._skill(agent.skill, sub, prompt), sub), None
            else:
                output, payload = await self._spend(agent, sub, attempt, prompt)
                event = self.event("model.called", sub, agent, attempt, payload)
        self.require(sub, output)
        return output, event

    async def _spend(self, agent: Agent, sub: Subtask, attempt: int, prompt: str) -> tuple[Any, dict]:
        def call() -> Any:  # made once the budgets let it start
            return self._bounded(self.models.call(agent, prompt), sub)

        tag = f"[{sub.id}]#{attempt}"
        return await within(self.guard, agent, prompt, self.step.spec.usage_limits, tag, call, self.writes)

    def where(self, sub: Subtask) -> str:
        """The item as an error names it."""
        return f"item {sub.id} of step '{self.step.task_id}'"

    def require(self, sub: Subtask, output: Any) -> None:
        """The step's requirements that read ``output``, on this item's output."""
        check_requirements(
            self.step, {**self.item_scope(sub), "output": output}, after=True, where=self.where(sub)
        )

    def _effects(self, sub: Subtask, attempt: int) -> Any:
        """The subtask's own effects scope: its side effects are keyed by its id, whatever the try."""
        common = self.recorder.common
        return effects.scope(
            self.store,
            run_id=common["run_id"],
            workflow=self.step.workflow,
            step=self.step.task_id,
            map_index=common["map_index"],
            try_number=common["try_number"],
            subtask=sub.id,
            template_version=self.step.template_version,
        )

    async def _bounded(self, call: Any, sub: Subtask) -> Any:
        """``call`` within the step's ``agent_timeout``."""
        return await bounded(call, self.step.agent_timeout, f"subtask {sub.id} of step '{self.step.task_id}'")
