"""Fan-out: one step run once per item of an upstream list, many agent calls at once in one task.

A ``for_each`` step is an Airflow mapped task over batches of the list (``batch_size`` items each;
by default one batch). Inside a task the batch's subtasks run as coroutines: at most
``concurrency`` at once, each after the subtasks it ``depends_on``, each holding one of its agent's
slots while it calls (so the agent's ``max_concurrency`` holds across every task and run). Each
subtask is routed, recorded (``subtask.*`` events) and retried with the next-best agent on its own;
a later Airflow try of the task reruns only the subtasks that did not succeed.

Why not one Airflow task per item: each task costs a scheduling round trip, a process and about a
second of imports, so 100 calls of 200 ms at concurrency 4 took 59 s (11.9x the ideal) as mapped
tasks on this machine; as coroutines they take about the ideal (see bench/fanout.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from baton import templating
from baton.coordination.routing import Breakers, GroupCommit, NoCandidate, Router, Slots
from baton.errors import AgentError, AgentTimeout
from baton.events.store import Event
from baton.spec.roster import Agent

MAX_REASSIGN = 3  # agents one subtask may go through within a task


@dataclass(frozen=True)
class Subtask:
    id: str
    index: int
    item: Any
    depends_on: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()


def subtasks_of(items: list[Any], start: int = 0) -> list[Subtask]:
    """Subtasks from list items: a map's ``id``, ``depends_on`` (or ``dependencies``) and
    ``capabilities`` are used when present; any other item is a subtask ``item_<n>``."""
    subtasks, seen = [], set()
    for offset, item in enumerate(items):
        index = start + offset
        if isinstance(item, dict):
            sid = str(item.get("id") or f"item_{index}")
            depends = item.get("depends_on") or item.get("dependencies") or []
            capabilities = item.get("capabilities") or item.get("required_capabilities") or []
        else:
            sid, depends, capabilities = f"item_{index}", [], []
        if sid in seen:
            sid = f"{sid}_{index}"
        seen.add(sid)
        subtasks.append(Subtask(sid, index, item, tuple(map(str, depends)), tuple(map(str, capabilities))))
    return subtasks


class SubtaskError(AgentError):
    def __init__(self, message: str, agents: list[str], recorded: bool = False):
        super().__init__(message)
        self.agents = agents
        self.recorded = recorded  # whether its subtask.failed event is stored already


@dataclass
class Outcome:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {id, agent, output}
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {id, error, agents}


class FanOut:
    """Runs one batch of a ``for_each`` step inside its task (``op`` is the AgentOperator)."""

    def __init__(self, op: Any, context: Any, scope: dict[str, Any], recorder: Any):
        self.op = op
        self.context = context
        self.scope = scope
        self.recorder = recorder
        self.store = recorder.store
        roster = [Agent.model_validate(a) for a in (op.roster or ([op.agent] if op.agent else []))]
        self.router = Router(self.store, roster)
        self.slots = Slots(self.store)
        self.fixed = Agent.model_validate(op.agent) if op.agent else None
        self._models: dict[str, Any] = {}
        self.ttl = op.execution_timeout or timedelta(hours=1)
        self.concurrency = op.concurrency or (self.fixed.max_concurrency if self.fixed else 4)

    # --- what ran before -------------------------------------------------------------------------

    def done_before(self) -> dict[str, dict[str, Any]]:
        """Subtasks of this task (run, step, map index) that succeeded in any try, with their output."""
        common = self.recorder.common
        done = {}
        for event in self.store.read(
            common["run_id"], step=(common["step"], common["map_index"]), types=["subtask.succeeded"]
        ):
            if not isinstance(event, Event):  # a corrupt row: that subtask runs again
                continue
            payload = event.payload
            output = self.store.output_of(payload)
            done[payload["subtask"]] = {"id": payload["subtask"], "agent": event.agent, "output": output}
        return done

    # --- running ---------------------------------------------------------------------------------

    def run(self, subtasks: list[Subtask], outcome: Outcome) -> Outcome:
        """Run ``subtasks`` not yet in ``outcome.results``; successes and failures go into ``outcome``."""
        pending = [s for s in subtasks if s.id not in outcome.results]
        self.writes = GroupCommit(self.store)
        if pending:
            failing = Breakers(self.store).failing(a.name for a in self.router.agents)
            asyncio.run(self._run_all(pending, outcome, failing))
        return outcome

    async def _run_all(self, pending: list[Subtask], outcome: Outcome, failing: set[str]) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        finished: dict[str, asyncio.Event] = {s.id: asyncio.Event() for s in pending}

        async def one(sub: Subtask) -> None:
            try:
                for dep in sub.depends_on:
                    if dep in finished:
                        await finished[dep].wait()
                    if dep in outcome.failures:
                        raise SubtaskError(f"its dependency '{dep}' failed", [])
                async with gate:
                    agent, output = await self._attempts(sub, failing)
                outcome.results[sub.id] = {"id": sub.id, "agent": agent, "output": output}
            except Exception as error:  # every failure is the subtask's: recorded, then the join decides
                outcome.failures[sub.id] = {
                    "id": sub.id,
                    "error": f"{type(error).__name__}: {error}"[:1000],
                    "agents": getattr(error, "agents", []),
                }
                if not getattr(error, "recorded", False):  # it failed before any agent call
                    failed = {"error_class": type(error).__name__, "error": str(error)[:1000]}
                    await asyncio.to_thread(
                        self.store.append, [self._event("subtask.failed", sub, None, 0, failed)]
                    )
            finally:
                finished[sub.id].set()

        await asyncio.gather(*(one(sub) for sub in pending))

    async def _attempts(self, sub: Subtask, failing: set[str]) -> tuple[str | None, Any]:
        if self.fixed is None and not self.op.route:
            return None, await self._skill_subtask(sub)
        tried: dict[str, str] = {}
        for attempt in range(1, MAX_REASSIGN + 1):
            if self.fixed is not None:  # nothing to read: no thread
                agent, selected = self._choose(sub, tried)
            else:
                agent, selected = await asyncio.to_thread(self._choose, sub, tried)
            started = [self._event("subtask.started", sub, agent, attempt, {}), selected]
            holder = f"{self.recorder.common['run_id']}/{self.op.task_id}[{sub.id}]"
            slot = await self.slots.atake(agent, holder, self.ttl, started, self.writes)
            began = time.monotonic()
            try:
                output, model_event = await self._call(agent, sub, attempt)
            except Exception as error:
                reassign = self.fixed is None and attempt < MAX_REASSIGN
                failed = self._event(
                    "subtask.failed",
                    sub,
                    agent,
                    attempt,
                    {
                        "error_class": type(error).__name__,
                        "error": str(error)[:1000],
                        "reassigned": reassign,
                    },
                )
                await self._release(agent, slot, [failed])
                await asyncio.to_thread(self._breaker_failure, agent, error)
                failing.add(agent.name)
                tried[agent.name] = f"failed subtask {sub.id}: {type(error).__name__}"
                if not reassign:
                    raise SubtaskError(str(error), list(tried), recorded=True) from error
                continue
            stored = self.store.output_payload(output)
            succeeded = self._event(
                "subtask.succeeded",
                sub,
                agent,
                attempt,
                {"latency_s": round(time.monotonic() - began, 3), **stored},
            )
            events = [e for e in (model_event, succeeded) if e is not None]
            await self._release(agent, slot, events)
            if agent.name in failing:
                await asyncio.to_thread(self._breaker_success, agent)
                failing.discard(agent.name)
            return agent.name, output
        raise SubtaskError(f"no agent succeeded after {MAX_REASSIGN} attempts", list(tried), recorded=True)

    async def _skill_subtask(self, sub: Subtask) -> Any:
        """A subtask of a skill step: no agent to choose; recorded like an agent's (so a later try
        reuses it, and the saga can undo it)."""
        await self._append([self._event("subtask.started", sub, None, 1, {})])
        began = time.monotonic()
        try:
            with self._effects(sub, 1):
                output = await self._bounded(self._skill(self.op.skill, sub, self.prompt(sub)), sub)
        except Exception as error:
            failed = {"error_class": type(error).__name__, "error": str(error)[:1000]}
            await self._append([self._event("subtask.failed", sub, None, 1, failed)])
            raise SubtaskError(str(error), [], recorded=True) from error
        stored = self.store.output_payload(output)
        latency = {"latency_s": round(time.monotonic() - began, 3)}
        await self._append([self._event("subtask.succeeded", sub, None, 1, {**latency, **stored})])
        return output

    async def _append(self, events: list[Event]) -> None:
        await self.writes.run(lambda conn: self.store.append_in(conn, events))

    async def _release(self, agent: Agent, slot: int, events: list[Event]) -> None:
        await self.writes.run(lambda conn: self.slots.release_in(conn, agent.name, slot, events))

    def _choose(self, sub: Subtask, tried: dict[str, str]) -> tuple[Agent, Event]:
        if self.fixed is not None:
            agent = self.fixed
            payload = {"agent": agent.name, "candidates": [agent.name], "reason": "named by the template"}
        else:
            route = self.op.route
            capabilities = sorted({*route["capabilities"], *sub.capabilities})
            try:
                choice = self.router.rank(capabilities, route.get("prefer", "balanced"), tried)
            except NoCandidate as error:
                raise SubtaskError(str(error), list(tried)) from None
            agent, payload = choice.agent, choice.payload()
        payload["subtask"] = sub.id
        return agent, self._event("agent.selected", sub, agent, len(tried) + 1, payload)

    def _event(self, kind: str, sub: Subtask, agent: Agent | None, attempt: int, payload: dict) -> Event:
        if kind.startswith("subtask."):
            payload = {"subtask": sub.id, "attempt": attempt, **payload}
        return self.recorder.event(
            kind, payload, discriminator=f"{sub.id}#{attempt}", agent=agent.name if agent else None
        )

    def _breaker_failure(self, agent: Agent, error: BaseException) -> None:
        from baton.coordination.breaker import record_failure

        record_failure(self.recorder, agent, error)

    def _breaker_success(self, agent: Agent) -> None:
        from baton.coordination.breaker import record_success

        record_success(self.recorder, agent)

    # --- one call --------------------------------------------------------------------------------

    def _scope(self, sub: Subtask) -> dict[str, Any]:
        return {**self.scope, "item": sub.item, "index": sub.index}

    def prompt(self, sub: Subtask) -> str:
        return templating.render(self.op.instruction, self._scope(sub))

    async def _skill(self, name: str, sub: Subtask, prompt: str) -> Any:
        from baton.agents.skills import run_skill

        return await asyncio.to_thread(
            run_skill,
            name,
            workflow=self.op.workflow,
            step_id=f"{self.op.task_id}[{sub.id}]",
            output_spec=self.op.output_spec,
            instruction=prompt,
            scope=self._scope(sub),
            with_=self.op.skill_args if name == self.op.skill else None,  # an agent's own skill has none
        )

    async def _call(self, agent: Agent, sub: Subtask, attempt: int) -> tuple[Any, Event | None]:
        prompt = self.prompt(sub)
        with self._effects(sub, attempt):
            if agent.skill:
                return await self._bounded(self._skill(agent.skill, sub, prompt), sub), None
            return await self._bounded(self._llm(agent, sub, prompt, attempt), sub)

    def _effects(self, sub: Subtask, attempt: int) -> Any:
        """The subtask's own effects scope: its side effects are keyed by its id, whatever the try."""
        from baton import effects

        common = self.recorder.common
        return effects.scope(
            self.store,
            run_id=common["run_id"],
            workflow=self.op.workflow,
            step=self.op.task_id,
            map_index=common["map_index"],
            try_number=common["try_number"],
            subtask=sub.id,
            template_version=self.op.template_version,
        )

    async def _bounded(self, call: Any, sub: Subtask) -> Any:
        """``call`` within the step's ``agent_timeout``."""
        if not self.op.agent_timeout:
            return await call
        try:
            return await asyncio.wait_for(call, self.op.agent_timeout)
        except TimeoutError:
            raise AgentTimeout(
                f"subtask {sub.id} of step '{self.op.task_id}' did not answer within its agent_timeout "
                f"of {self.op.agent_timeout:g} s"
            ) from None

    def _model_agent(self, agent: Agent) -> Any:
        if agent.name not in self._models:
            from baton.agents.hook import BatonAIHook
            from baton.agents.outputs import output_model

            hook = BatonAIHook(llm_conn_id=agent.llm_conn_id, model_id=agent.model)
            self._models[agent.name] = hook.create_agent(
                output_model(self.op.task_id, self.op.output_spec) or str,
                instructions=agent.system_prompt or f"You are {agent.name}. {agent.description}",
                retries={"output": self.op.output_retries},
                name=agent.name,
            )
        return self._models[agent.name]

    async def _llm(self, agent: Agent, sub: Subtask, prompt: str, attempt: int) -> tuple[Any, Event]:
        from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
        from pydantic_ai.usage import UsageLimits

        from baton.agents.llm import as_output, model_called

        model_agent = self._model_agent(agent)
        limits = UsageLimits(**self.op.usage_limits) if self.op.usage_limits else None
        began = time.monotonic()
        try:
            result = await model_agent.run(prompt, usage_limits=limits)
        except UsageLimitExceeded as error:
            raise AgentError(f"agent '{agent.name}' hit the step's usage limits: {error}") from error
        except UnexpectedModelBehavior as error:
            raise AgentError(
                f"agent '{agent.name}' gave no valid output after {self.op.output_retries} re-ask(s): {error}"
            ) from error
        usage = result.usage
        model = getattr(model_agent.model, "model_name", None) or agent.model or "unknown"
        tokens = {
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        }
        payload = model_called(model, agent.cost.model_dump(), tokens, time.monotonic() - began, prompt)
        return as_output(result.output), self._event("model.called", sub, agent, attempt, payload)
