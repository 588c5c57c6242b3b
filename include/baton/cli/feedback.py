"""``baton feedback``: a verdict on a step's output from outside the run (a customer's satisfaction, a
reviewer's grade), as a score from 0 (bad) to 1 (good); learned routing learns it with the try that gave
the output."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from baton.cli.common import add_command
from baton.events.feedback import FeedbackError, record
from baton.events.store import EventStore


def _score(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number from 0 to 1") from None


def add(commands: Any) -> None:
    feedback = add_command(commands, "feedback")
    feedback.add_argument("run_id", help="the run (its Airflow run id)")
    feedback.add_argument("step", help="the step's id")
    feedback.add_argument("--score", type=_score, required=True, help="from 0 (bad) to 1 (good)")
    feedback.add_argument("--by", default=None, help="who gives it (default: this user)")
    feedback.set_defaults(run=lambda args: give(args.run_id, args.step, args.score, args.by))


def give(run_id: str, step: str, score: float, by: str | None) -> int:
    try:
        event = record(EventStore.from_airflow(), run_id, step, score, by or getpass.getuser(), "cli")
    except FeedbackError as error:
        print(f"baton feedback: {error}")
        return 1
    print(f"recorded: {event.payload['score']:g} for {event.workflow}.{step} of run {run_id}")
    return 0


__all__ = ["add", "give"]
