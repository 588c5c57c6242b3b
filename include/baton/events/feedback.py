"""A verdict on a step's output given from outside the run: a customer's satisfaction, a reviewer's
grade, as a score in [0, 1] (``baton feedback``, ``POST /baton/api/dags/<dag>/runs/<run>/feedback``).
Recorded as the step's ``feedback.recorded`` event; learned routing (and the variants' statistics) read
it with the try that gave the output. A person's review on the Required Actions page records one too
(approve 1, edit 0.5, reject 0)."""

from __future__ import annotations

import math
import uuid
from typing import Any

from sqlalchemy import select

from baton.errors import BatonError
from baton.events import schema
from baton.events.event import Event
from baton.events.store import EventStore

MAX_NAME = 250  # a run id, a step id, a person's name: as long as the store's columns


class FeedbackError(BatonError, ValueError):
    """Feedback that cannot be recorded: what is wrong, and the fix."""


def check_score(score: Any) -> float:
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise FeedbackError(
            f"score: must be a number from 0 to 1, got {str(score)[:40]!r} (fix: 0 bad .. 1 good)"
        )
    if not 0 <= score <= 1:
        raise FeedbackError(f"score: {score:g} is outside 0 .. 1 (fix: map the grade to 0 bad .. 1 good)")
    return float(score)


def record(
    store: EventStore,
    run_id: str,
    step: str,
    score: Any,
    by: str,
    source: str,
    workflow: str | None = None,
) -> Event:
    """Record ``score`` for ``step`` of run ``run_id`` (of ``workflow``, when the caller must not reach
    another's runs); FeedbackError when the run or the step is not known there, or the score is bad."""
    value = check_score(score)
    for what, text in (("run", run_id), ("step", step), ("by", by)):
        if not isinstance(text, str) or len(text) > MAX_NAME or any(ord(c) < 32 for c in text):
            raise FeedbackError(
                f"{what}: at most {MAX_NAME} printable characters (fix: give the {what} as Baton names it)"
            )
    e = schema.events
    with store.engine.connect() as conn:
        found = conn.execute(
            select(e.c.workflow).where(e.c.run_id == run_id, e.c.step == step).limit(1)
        ).first()
        if found is None or (workflow is not None and found[0] != workflow):
            known = conn.execute(select(e.c.workflow).where(e.c.run_id == run_id).limit(1)).first()
            if known is None or (workflow is not None and known[0] != workflow):
                raise FeedbackError(f"no run '{run_id[:80]}'" + (f" of '{workflow}'" if workflow else ""))
            raise FeedbackError(
                f"run '{run_id[:80]}' has no step '{step[:80]}' (fix: use a step id of its workflow)"
            )
    payload = {"score": value, "verdict": "score", "source": source, "by": by}
    event = Event(
        type="feedback.recorded",
        run_id=run_id,
        workflow=found[0],
        step=step,
        payload=payload,
        discriminator=uuid.uuid4().hex,  # each verdict is kept: the latest one counts
    )
    store.append([event])
    return event
