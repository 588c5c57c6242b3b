"""Runs a workflow's schedule expected that did not start."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from baton.ops.detectors.base import Schedule, Verdict, seconds, span_s
from baton.spec.common import show
from baton.spec.detectors import ScheduleDetector

EARLY = 60.0  # seconds a run may seem to start before its scheduled time (clocks differ)


def schedule(runs: Schedule, now: float | datetime, cfg: ScheduleDetector) -> Verdict:
    """Whether the latest runs the schedule expected did not start. Each expected time more than ``grace``
    ago (and within ``lookback``) needs a start from ``EARLY`` seconds before it (clocks differ; Airflow
    never starts a scheduled run early) to ``grace`` after it; a start counts for the latest expected time
    it can belong to (so a start for a later slot never covers an earlier missed one). It
    fires when the latest ``min_missed`` due runs in a row were missed, and stops once runs start again
    (the missed ones stay in the evidence)."""
    at, grace = seconds(now), span_s(cfg.grace)
    due = runs.expected[(runs.expected <= at - grace) & (runs.expected >= at - span_s(cfg.lookback))]
    early = min(EARLY, grace)
    slot = np.searchsorted(due, runs.started + early, "right") - 1  # each start's latest expected time
    fits = (slot >= 0) & (runs.started <= due[np.maximum(slot, 0)] + grace) if len(due) else slot < -1
    kept = np.zeros(len(due), bool)
    kept[slot[fits]] = True
    late = np.flatnonzero(kept)
    in_a_row = len(due) - (int(late[-1]) + 1 if len(late) else 0)
    missed = due[~kept]
    anomalous = in_a_row >= cfg.min_missed
    evidence = {
        "due": len(due),
        "started": int(kept.sum()),
        "missed_in_a_row": in_a_row,
        "missed": missed[-20:].tolist(),
        "missed_count": len(missed),
        "threshold": {"grace_s": grace, "min_missed": cfg.min_missed},
    }
    if anomalous:
        reason = (
            f"the last {in_a_row} scheduled run(s) did not start within {show(cfg.grace)} "
            f"(since {datetime.fromtimestamp(due[-in_a_row], UTC).isoformat()})"
        )
    elif len(missed):
        reason = f"runs start again; {len(missed)} of {len(due)} scheduled in the last {show(cfg.lookback)} did not"
    else:
        reason = f"all {len(due)} scheduled runs started within {show(cfg.grace)}"
    return Verdict("schedule", anomalous, reason, evidence)
