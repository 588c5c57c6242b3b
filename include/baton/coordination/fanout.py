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
from dataclasses import replace
from datetime import timedelta
from typing import Any

from baton.agents.model import ModelCalls
from baton.context.step import merge_items
from baton.context.store import ContextEscalation
from baton.coordination.attempts import MAX_REASSIGN, ItemAttempts
from baton.coordination.grouped import groups_of, run_group
from baton.coordination.partial_failure import partial_failure_question
from baton.coordination.requirements import check_requirements
from baton.coordination.routing import Breakers, GroupCommit, Router
from baton.coordination.spend import at_limit, guard_for, hold_of
from baton.coordination.subtasks import BatchResult, Subtask, SubtaskError, join_batches, subtasks_of
from baton.coordination.waiters import place_of
from baton.errors import AgentError
from baton.events.event import Event
from baton.plan import CompiledStep

__all__ = ["MAX_REASSIGN", "BatchResult", "FanOut", "Subtask", "SubtaskError", "join_batches", "subtasks_of"]


class FanOut(ItemAttempts):
    """Runs one batch of a ``for_each`` step inside its task: its items as coroutines (each one's attempts:
    :class:`~baton.coordination.attempts.ItemAttempts`), then the join.

    :param step: the compiled step (its fan-out, its agent or candidates, its instruction).
    :param ttl: how long one item may hold a load slot (the task's execution_timeout).
    """

    def __init__(
        self,
        step: CompiledStep,
        context: Any,
        scope: dict,
        recorder: Any,
        ttl: timedelta,
        log: Any,
        budgets: Any = None,
    ):
        """``budgets``: the budgets its model calls spend in (None: those next to its DAG file)."""
        self.step = step
        self.context = context
        self.scope = scope
        self.recorder = recorder
        self.log = log
        self.store = recorder.store
        agents = list(step.candidates or ([step.agent] if step.agent else []))
        self.router = Router(self.store, agents, place=place_of(recorder))
        self.slots = self.router.slots  # one book of the task's waits, whether its items are routed or not
        self.fixed = step.agent
        self.models = ModelCalls(step)
        self.ttl = ttl
        self.concurrency = step.fan_out.concurrency
        self.guard = guard_for(recorder, context, ttl, budgets)
        self.router.budgets = self.guard.budgets  # an agent's own budget's headroom weighs in its ranking
        self.cheap: set[str] = set()  # items a budget sent to the cheapest agent that fits (fallback)
        # for_each.dedupe: an instruction -> the answer of the first item that has it
        self._answers: dict[str, asyncio.Future] = {}
        self._prompts: dict[str, str] = {}  # subtask id -> its rendered instruction

    # --- one batch, from the list to the join ---------------------------------------------------

    def run_batch(self, batch: list[int] | None, versions: dict[str, int], ask: Any) -> dict[str, Any]:
        """Plan the batch (``fanout.planned``), run the items not done by an earlier try, then join.

        :param ask: puts a question to a person and returns the exception that parks the task.
        """
        step = self.step
        source, field_name = step.fan_out.source, step.fan_out.field
        items = (self.scope["steps"].get(source) or {}).get(field_name) or []
        if not isinstance(items, list):
            raise AgentError(
                f"for_each of step '{step.task_id}': '{source}.{field_name}' is a {type(items).__name__}, "
                "not a list"
            )
        start, end = batch if batch else (0, len(items))
        subtasks = subtasks_of(items[start:end], start)
        ids = {s.id for s in subtasks}
        result = BatchResult(results={k: v for k, v in self.done_before().items() if k in ids})
        planned = {
            "source": f"{source}.{field_name}",
            "total": len(items),
            "batch": [start, end],
            "subtasks": [s.id for s in subtasks],
            "concurrency": self.concurrency,
            "reused": sorted(result.results),
        }
        self.recorder.start(self.recorder.event("fanout.planned", planned))
        self.log.info(
            "Step %s: %d subtask(s) of %d (%s), %d at once, %d done by an earlier try",
            step.task_id,
            len(subtasks),
            len(items),
            planned["source"],
            self.concurrency,
            len(result.results),
        )
        self.run(subtasks, result)
        return self.join(subtasks, result, versions, batch, ask)

    def join(
        self, subtasks: list[Subtask], result: BatchResult, versions: dict[str, int], batch: Any, ask: Any
    ) -> dict[str, Any]:
        """The sync point of a batch: merge the items' context writes, apply the partial-failure policy."""
        step = self.step
        self._held_back(result, ask)
        done = [s for s in subtasks if s.id in result.results]
        output = {
            "results": [result.results[s.id] for s in done],
            "failures": [result.failures[s.id] for s in subtasks if s.id in result.failures],
            "total": len(subtasks),
        }
        try:
            merge_items(
                self.store,
                step,
                self.context,
                self.scope,
                [(s, result.results[s.id]["output"]) for s in done],
                versions,
                self.log,
            )
        except ContextEscalation as conflict:
            conflict.output = output  # what the step returns once the person has decided
            raise
        failures = output["failures"]
        if not failures:
            return output
        summary = "; ".join(f"{f['id']}: {f['error']}" for f in failures[:5])
        policy = step.fan_out.partial_failure
        if policy == "continue":
            self.log.warning(
                "Step %s: %d subtask(s) failed, continuing: %s", step.task_id, len(failures), summary
            )
            return output
        if policy == "escalate":
            raise ask(partial_failure_question(step, self.context, failures, len(subtasks), batch))
        raise AgentError(
            f"Step '{step.task_id}': {len(failures)} of {len(subtasks)} subtasks failed ({summary}). "
            "The next try reruns only these; set for_each.partial_failure: continue or escalate to go on "
            "without them."
        )

    def _held_back(self, result: BatchResult, ask: Any) -> None:
        """Items a budget held back (``at_limit: defer | ask``): wait, deferred, for its next window (the
        first), or ask a person to raise it once; an ``ask`` budget raised already lets them fail."""
        held = [f for f in result.failures.values() if f.get("budget")]
        if not held:
            return
        hold = max((f["budget"] for f in held), key=lambda h: h["at_limit"] == "defer")
        items = [f["id"] for f in held if f["budget"] == hold]
        stop = at_limit(hold, self.guard.budgets, self.step, self.context, self.recorder, items)
        if stop is not None:
            raise stop if hold["at_limit"] == "defer" else ask(stop)

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

    def run(self, subtasks: list[Subtask], result: BatchResult) -> BatchResult:
        """Run ``subtasks`` not yet in ``result.results``; successes and failures go into ``result``."""
        pending = [s for s in subtasks if s.id not in result.results]
        self.writes = GroupCommit(self.store)
        if pending:
            failing = Breakers(self.store).failing(a.name for a in self.router.agents)
            if self.step.routed:
                self.router.stats()  # the agents' track records: read once, outside the group transactions
            asyncio.run(self._run_all(pending, result, failing))
        return result

    async def _run_all(self, pending: list[Subtask], result: BatchResult, failing: set[str]) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        finished: dict[str, asyncio.Event] = {s.id: asyncio.Event() for s in pending}

        async def one(sub: Subtask) -> None:
            try:
                for dep in sub.depends_on:
                    if dep in finished:
                        await finished[dep].wait()
                    if dep in result.failures:
                        raise SubtaskError(f"its dependency '{dep}' failed", [])
                check_requirements(self.step, self.item_scope(sub), after=False, where=self.where(sub))
                agent, output = await self._once(sub, gate, failing)
                result.results[sub.id] = {"id": sub.id, "agent": agent, "output": output}
            except Exception as error:  # every failure is the subtask's: recorded, then the join decides
                result.failures[sub.id] = {
                    "id": sub.id,
                    "error": f"{type(error).__name__}: {error}"[:1000],
                    "agents": getattr(error, "agents", []),
                }
                if (hold := hold_of(error)) is not None:  # a budget that defers or asks holds it back
                    result.failures[sub.id]["budget"] = hold
                if not getattr(error, "recorded", False):  # it failed before any agent call
                    failed = {"error_class": type(error).__name__, "error": str(error)[:1000]}
                    await asyncio.to_thread(
                        self.store.append, [self.event("subtask.failed", sub, None, 0, failed)]
                    )
            finally:
                finished[sub.id].set()

        async def grouped_items(members: list[Subtask]) -> None:  # for_each.items_per_call
            try:
                await run_group(self, members, gate, failing, result, one)
            finally:
                for sub in members:
                    finished[sub.id].set()

        groups = groups_of(self, pending)
        grouped = {sub.id for members in groups for sub in members}
        await asyncio.gather(
            *(one(sub) for sub in pending if sub.id not in grouped),
            *(grouped_items(members) for members in groups),
        )

    async def _once(self, sub: Subtask, gate: asyncio.Semaphore, failing: set[str]) -> tuple[str | None, Any]:
        """The item's attempts, holding one of the batch's places; with ``for_each.dedupe``, an item whose
        instruction renders the same as an earlier item's waits for that one's answer (no place held, no
        model call, no spend) and takes it, recorded with ``same_as`` (it runs itself if that one fails)."""
        if not self.step.fan_out.dedupe:
            async with gate:
                return await self.attempts(sub, failing)
        prompt = self.prompt(sub)
        first = self._answers.get(prompt)
        if first is not None and (answer := await first) is not None:
            same_as, agent, output = answer
            stored = self.store.output_payload(output)
            taken = self.event("subtask.succeeded", sub, None, 1, {"same_as": same_as, **stored})
            await self.append([replace(taken, agent=agent)])
            return agent, output
        mine = self._answers[prompt] = asyncio.get_running_loop().create_future()
        try:
            async with gate:
                agent, output = await self.attempts(sub, failing)
        except BaseException:
            mine.set_result(None)  # those waiting on it run themselves
            raise
        mine.set_result((sub.id, agent, output))
        return agent, output
