"""What changes in a step when its run is a case of an evaluation (``baton eval``), and nothing else.

An evaluation runs the workflow's compiled steps, in ``dag.test()`` in a process of its own with a throwaway
Airflow database and store (:mod:`baton.evaluate`). Five things differ there, and only while that process
has set the case (:func:`case`): never from a run's conf, a template or the environment, so that nothing a
trigger or a file says can make a production step skip its work.

- A step whose output the case records (``recorded: {step: output}``: a step that reads or writes a business
  system) returns that output without running.
- A step with ``variants`` runs as written (its control), or the arm the evaluation names for it.
- A workflow started by a trigger (an asset, a sensor, a queue) finds in ``trigger`` what the case says
  started it (``trigger:``, its payload), as no asset event or sensor starts an evaluation's run.
- No person is there to answer: a step that would ask one (a review, an approval, an escalation) fails
  with what it would have asked, so that the case's report says so. A ``reviewed`` step's output is what the
  evaluation judges, and it goes on unreviewed.
- A failed case compensates nothing: the steps it would undo either did nothing (recorded) or only
  answered a model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from baton.coordination.tasks import EVAL_STEP


@dataclass(frozen=True)
class Case:
    """The case whose run this process is making: its id and the recorded outputs, by step id."""

    id: str
    recorded: Mapping[str, Any]
    arms: Mapping[str, str] = field(default_factory=dict)  # step id -> the arm of its variants evaluated
    # what started the run: an asset event's extra, a sensor's finding, a queue's message
    trigger: Mapping[str, Any] | None = None


_current: list[Case] = []


@contextmanager
def case(
    case_id: str,
    recorded: Mapping[str, Any],
    arms: Mapping[str, str] | None = None,
    trigger: Mapping[str, Any] | None = None,
) -> Iterator[Case]:
    """The runs made inside are the evaluation case ``case_id``'s (one at a time in a process); ``arms``: the
    arm each step with variants runs (the others run as written); ``trigger``: what started the run."""
    if _current:
        raise RuntimeError(f"evaluation case '{_current[0].id}' is still running in this process")
    _current.append(Case(case_id, dict(recorded), dict(arms or {}), trigger))
    try:
        yield _current[0]
    finally:
        _current.clear()


def current() -> Case | None:
    """The evaluation case this process is running, or None (every production run)."""
    return _current[0] if _current else None


def recorded_output(step_id: str) -> Any | None:
    """The output the running case records for ``step_id`` (a copy: the step may change it), or None."""
    running = current()
    if running is None or step_id not in running.recorded:
        return None
    return copy.deepcopy(running.recorded[step_id])


class NoPersonInEvaluation(RuntimeError):
    """A step of an evaluation case asked a person: nobody answers there, so the step fails."""


def refuse_question(step_id: str, kind: str, subject: str) -> NoPersonInEvaluation:
    """The error a step of an evaluation case fails with instead of asking a person."""
    running = current()
    return NoPersonInEvaluation(
        f"step '{step_id}' asked a person ({kind}: {subject[:200]}) in evaluation case "
        f"'{running.id if running else '?'}', where nobody answers (fix: record the step's output in the case, "
        f"`recorded: {{{step_id}: ...}}`, or expect the case to fail there)"
    )


#: The latest evaluations of a workflow a gate reads.
MAX_EVALUATIONS = 200


def passed_evaluations(store: Any, workflow: str, digest: str | None) -> list[dict[str, Any]]:
    """The payloads of ``workflow``'s recorded evaluations (``baton eval --record``) that passed against the
    stable version for the template whose digest is ``digest``: what a gated rollout and a gated variant read."""
    rows = store.step_history(workflow, EVAL_STEP, ["evaluation.completed"], MAX_EVALUATIONS)
    return [
        payload
        for *_, payload in rows
        if payload.get("digest") == digest and payload.get("passed") and payload.get("against") == "stable"
    ]


__all__ = [
    "MAX_EVALUATIONS",
    "Case",
    "NoPersonInEvaluation",
    "case",
    "current",
    "passed_evaluations",
    "recorded_output",
    "refuse_question",
]
