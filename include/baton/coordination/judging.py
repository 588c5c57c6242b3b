"""The checks that run code or ask a model (``evaluator`` and ``rubric``), beside those a value answers by
itself (:func:`baton.spec.expect.why_not`): one meaning for an evaluation's cases (:mod:`baton.evaluate`) and a
step's live outputs (:mod:`baton.coordination.live`).

- An **evaluator** is a Python function registered with ``@evaluator`` (:mod:`baton.registry`, as skills are).
  It runs in a thread of its own for at most ``EVALUATOR_TIMEOUT_S``. One that raises fails its check, naming
  the error. One that does not answer in time fails it too, and is not asked again in the process, so at most
  one thread per evaluator is ever left behind.
- A **rubric** is read by a judge: an LLM agent of the roster, called through the same path as a step's
  agent (common-ai's hook, the connection's model, Baton's offline model where it is chosen). Its answer
  must be a :class:`RubricVerdict`. A call that fails, times out, or answers outside that schema after one
  re-ask gives no verdict (:class:`NoVerdict`). An evaluation counts that as a failed check and names why; a
  live output's score leaves the check out, because the step is not to blame for its judge. Where a try's
  budgets apply, each call reserves its estimate first and settles what it used after, and a call that does
  not fit gives no verdict.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from baton.agents.model import call_model, made
from baton.errors import BudgetExceeded, SkillError
from baton.registry import EvaluatorRequest, Verdict, get_evaluator
from baton.spec.expect import PURE, VERDICT_TITLE, Check, judge_prompt, why_not
from baton.spec.roster import Agent

#: What one evaluator call may take.
EVALUATOR_TIMEOUT_S = 5.0
#: What one judge's call may take, its re-ask included.
JUDGE_TIMEOUT_S = 120.0
#: The most characters of a reason quoted from an evaluator or a judge.
REASON = 300


class RubricVerdict(BaseModel):
    """A judge's answer: whether the field meets the rubric, and in a sentence why."""

    model_config = {"title": VERDICT_TITLE}

    passed: bool = Field(description="true when the field meets the rubric")
    reason: str = Field(default="", max_length=1_000, description="one sentence: why, or what is missing")


class NoVerdict(Exception):
    """The judge gave no verdict: its call failed, ran out of time or budget, or its answer broke the schema."""


_hung: set[str] = set()  # evaluators that did not answer in time in this process
_hung_lock = threading.Lock()


def evaluated(check: Check, name: str, value: Any, output: Any) -> str:
    """Why the evaluator ``check`` names fails the field ``name`` (``value``, of ``output``); empty when it
    passes. Never raises, and returns within ``EVALUATOR_TIMEOUT_S``."""
    evaluator = check.evaluator or ""
    with _hung_lock:
        if evaluator in _hung:
            return (
                f"evaluator '{evaluator}' did not answer within {EVALUATOR_TIMEOUT_S:g} s earlier and is not "
                "asked again"
            )
    try:
        func = get_evaluator(evaluator).func
    except SkillError as error:
        return str(error)
    request = EvaluatorRequest(name, value, output, dict(check.args or {}))
    box: dict[str, Any] = {}

    def answer() -> None:
        try:
            box["answer"] = func(request)
        except BaseException as error:  # the evaluator's own failure, reported as its check's
            box["error"] = error

    thread = threading.Thread(target=answer, name=f"baton-evaluator-{evaluator}", daemon=True)
    thread.start()
    thread.join(EVALUATOR_TIMEOUT_S)
    if thread.is_alive():
        with _hung_lock:
            _hung.add(evaluator)
        return (
            f"evaluator '{evaluator}' did not answer within {EVALUATOR_TIMEOUT_S:g} s (fix: an evaluator checks the "
            "value it is given, without waiting on anything)"
        )
    if "error" in box:
        error = box["error"]
        return f"evaluator '{evaluator}' raised {type(error).__name__}: {str(error)[:REASON]}"
    return _answered(evaluator, box.get("answer"))


def _answered(evaluator: str, answer: Any) -> str:
    if isinstance(answer, bool):
        return "" if answer else f"evaluator '{evaluator}' says no"
    if isinstance(answer, Verdict):
        reason = str(answer.reason)[:REASON] or f"evaluator '{evaluator}' says no"
        return "" if answer.passed is True else reason
    return (
        f"evaluator '{evaluator}' answered a {type(answer).__name__}, not True, False or a Verdict (fix: return "
        "one of them)"
    )


@dataclass
class Judge:
    """The agent that reads rubrics, the budgets its calls spend within (a try's
    :class:`~baton.budgets.guard.Guard`, or None) and where its calls' ``model.called`` payloads go."""

    agent: Agent
    guard: Any = None
    record: Callable[[dict[str, Any], str], None] | None = None  # (model.called payload, discriminator)
    max_calls: int | None = None  # the most calls it makes (a live try's bound); None: as many as asked
    calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def why_not(self, rubric: str, name: str, value: Any) -> str:
        """Why the judge finds the field ``name`` (``value``) fails ``rubric``; empty when it meets it.
        :class:`NoVerdict` when the judge gives none."""
        prompt = judge_prompt(rubric, name, value)
        with self._lock:
            if self.max_calls is not None and self.calls >= self.max_calls:
                raise NoVerdict(f"judge '{self.agent.name}' was asked its most calls here, {self.max_calls}")
            self.calls += 1
            where = f":judge-{self.calls}"  # the call's reservation, settlement and model.called, by number
        reservation = None
        if self.guard is not None:
            try:
                reservation = self.guard.reserve(self.agent, prompt, None, where)
            except BudgetExceeded as error:
                raise NoVerdict(f"the judge's call does not fit its budget: {error}") from None
        payload = None
        try:
            answer = asyncio.run(asyncio.wait_for(self._call(prompt), JUDGE_TIMEOUT_S))
            payload = answer.payload
        except Exception as error:
            payload = getattr(error, "spent", None)
            why = (
                "it did not answer in time" if isinstance(error, TimeoutError) else f"{type(error).__name__}"
            )
            raise NoVerdict(
                f"judge '{self.agent.name}' gave no verdict: {why}: {str(error)[:REASON]}"
            ) from None
        finally:
            self._spent(payload, where)
            if self.guard is not None:
                self.guard.settle(self.agent, reservation, payload, where)
        verdict = answer.output
        return "" if verdict.passed else f"judge '{self.agent.name}': {verdict.reason[:REASON] or 'not met'}"

    async def _call(self, prompt: str) -> Any:
        return await call_model(self.agent, prompt, lambda: made(self.agent, RubricVerdict, retries=1))

    def _spent(self, payload: dict[str, Any] | None, where: str) -> None:
        if not payload:
            return
        with self._lock:
            self.tokens += int(payload.get("input_tokens") or 0) + int(payload.get("output_tokens") or 0)
            self.cost += float(payload.get("cost") or 0.0)
        if self.record is not None:
            self.record(payload, where.lstrip(":"))

    def spend(self) -> dict[str, Any]:
        """What the judge's calls used: calls, tokens and cost at the roster's prices."""
        return {
            "agent": self.agent.name,
            "calls": self.calls,
            "tokens": self.tokens,
            "cost": round(self.cost, 8),
        }


def check_why_not(kind: str, check: Check, name: str, value: Any, output: Any, judge: Judge | None) -> str:
    """Why the field ``name`` (``value`` of ``output``) fails the ``kind`` of ``check``; empty when it holds.
    :class:`NoVerdict` for a rubric the judge gave no verdict on, or that no judge reads."""
    if kind in PURE:
        return why_not(kind, check, value)
    if kind == "evaluator":
        return evaluated(check, name, value, output)
    if judge is None:
        raise NoVerdict("no judge reads this rubric (fix: name one with 'judge: <an LLM agent>')")
    return judge.why_not(check.rubric or "", name, value)


__all__ = [
    "EVALUATOR_TIMEOUT_S",
    "JUDGE_TIMEOUT_S",
    "Judge",
    "NoVerdict",
    "RubricVerdict",
    "check_why_not",
    "evaluated",
]
