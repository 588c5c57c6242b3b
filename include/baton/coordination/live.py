"""A step's checks of its live outputs (``evaluate:`` in the template): after a try succeeded, a sampled share
of the step's outputs is scored against the checks (the datasets' meaning, :func:`baton.spec.expect.why_not`;
each item of a fan-out's), and the share of checks that held is the try's ``feedback.recorded`` (``source:
evaluation``, ``verdict: score``), which learned routing and the variants' statistics learn beside success and
a person's verdict. Whether an output is sampled is a hash of the run, the step and the map index: the same
answer on a retry and in every process. No evaluation case is scored (its checks are the dataset's).

The checks run after Airflow was told of the try's success (:func:`score_after`, the task's
``on_success_callback``), so that no downstream step waits for them, and never fail it (a bug is logged).
Most are pure and bounded: a pattern searched for at most ``MATCH_TIMEOUT_S``, a few microseconds a field. An
``evaluator`` runs for at most ``EVALUATOR_TIMEOUT_S``. A ``rubric`` is a call of the step's ``judge`` within
the try's budgets (:mod:`baton.coordination.judging`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from baton.coordination import evaluation, spend
from baton.coordination.judging import Judge, NoVerdict, check_why_not
from baton.events.event import Event

log = logging.getLogger(__name__)

#: The most calls a try's judge makes (a fan-out's items times its rubrics could be many): the rest of its
#: rubrics are left out of the score, as a rubric with no verdict is. With a judge's call bounded at
#: ``JUDGE_TIMEOUT_S``, a try's worker slot is held at most that many times as long after its success.
MAX_JUDGED = 20


def sampled(key: str, share: float) -> bool:
    """Whether the output named ``key`` is in ``share`` of them: a hash, the same in every process."""
    draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return draw < share


def outputs_of(output: Any, fan_out: bool) -> list[Any]:
    """What the checks apply to: the step's output, or each item's output of a fan-out's batch."""
    if not fan_out:
        return [output]
    results = output.get("results") if isinstance(output, Mapping) else None
    return [item.get("output") for item in results or [] if isinstance(item, Mapping)]


def held(checks: Mapping[str, Any], outputs: list[Any], judge: Judge | None = None) -> tuple[int, int]:
    """(checks that held, checks) of ``checks`` (field -> Check) over ``outputs``; a rubric ``judge`` gives no
    verdict on is left out (the judge's failure is not the step's)."""
    passed = total = 0
    for output in outputs:
        for name, check in checks.items():
            for kind in check.given():
                if not isinstance(output, Mapping) or name not in output:
                    total += 1
                    continue
                try:
                    reason = check_why_not(kind, check, name, output[name], output, judge)
                except NoVerdict as none:
                    log.warning("The live check of %s's rubric is left out: %s", name, none)
                    continue
                total += 1
                passed += not reason
    return passed, total


def scored(step: Any, output: Any, recorder: Any, judge: Judge | None = None) -> Event | None:
    """The try's ``feedback.recorded`` from the step's live checks, when its output is sampled; else None."""
    spec = step.spec.evaluate
    if spec is None or evaluation.current() is not None:
        return None
    common = recorder.common
    if not sampled(f"{common['run_id']}/{step.spec.id}/{common['map_index']}", spec.sample):
        return None
    try:
        passed, total = held(spec.checks, outputs_of(output, bool(step.fan_out)), judge)
    except Exception:  # a Baton bug: the step's work stands, the score is not recorded
        log.exception("Step %s: its live checks could not be scored", step.task_id)
        return None
    if not total:  # a fan-out with no item that succeeded: nothing was scored
        return None
    payload = {
        "score": round(passed / total, 4),
        "verdict": "score",
        "source": "evaluation",
        "by": "evaluate",
    }
    return recorder.event("feedback.recorded", payload, discriminator="evaluation")


def score_after(step: Any, output: Any, recorder: Any, context: Any, ttl: timedelta) -> None:
    """Score the output a try succeeded with against the step's live checks and record the score, once
    Airflow was told of the success (the task's ``on_success_callback``): the downstream steps do not wait for
    an evaluator or a judge. The judge's calls spend within the try's budgets and are recorded as its
    ``model.called`` events (by the judge)."""
    if step.spec.evaluate is None:
        return
    judge = None
    if step.judge is not None:

        def record(payload: dict[str, Any], discriminator: str) -> None:
            recorder.record(recorder.event("model.called", payload, discriminator, agent=step.judge.name))

        judge = Judge(step.judge, spend.guard_for(recorder, context, ttl), record, MAX_JUDGED)
    judged = scored(step, output, recorder, judge)
    if judged is not None:
        recorder.record(judged)


__all__ = ["MAX_JUDGED", "held", "outputs_of", "sampled", "score_after", "scored"]
