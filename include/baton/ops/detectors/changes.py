"""When did it start: where a series changed level, for the post-incident report (``ruptures``' kernel
change-point detection, its C implementation of PELT)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from baton.ops.detectors.base import MAD_TO_SIGMA, Counts, Points, json_ready, seconds


def rates(counts: Counts, bucket: float) -> Points:
    """Per-``bucket`` (seconds) shares of bad events, for :func:`change_points` (empty buckets left out)."""
    keys = np.floor(counts.start / bucket) * bucket
    starts, first = np.unique(keys, return_index=True)
    total = np.add.reduceat(counts.total, first) if len(first) else np.empty(0, np.int64)
    bad = np.add.reduceat(counts.bad, first) if len(first) else np.empty(0, np.int64)
    kept = total > 0
    return Points(starts[kept], bad[kept] / total[kept])


def change_points(
    points: Points, *, log: bool = False, min_size: int = 5, penalty: float | None = None, floor: float = 1e-9
) -> dict[str, Any]:
    """Where the level of a series changes: ruptures' kernel change-point detection with a linear kernel
    (a change in mean, PELT in C), penalised by ``penalty`` (default ``3 sigma^2 log n``, sigma the noise
    estimated from the MAD of successive differences). JSON-ready: each segment's start, end, mean, size."""
    values = np.log(np.maximum(points.value, floor)) if log else points.value
    n = len(values)
    if n < 2 * min_size:
        return {"changes": [], "segments": [], "points": n, "penalty": None}
    steps = np.diff(values)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2)
    sigma = max(sigma, 1e-3 * (float(np.std(values)) or 1.0))
    pen = penalty if penalty is not None else 3 * sigma**2 * math.log(n)
    import ruptures  # only the post-incident report needs it, and it takes a second to import

    ends = ruptures.KernelCPD(kernel="linear", min_size=min_size).fit(values.reshape(-1, 1)).predict(pen=pen)
    segments, begin = [], 0
    for stop in ends:
        mean = float(np.mean(values[begin:stop]))
        segments.append(
            {
                "start": float(points.time[begin]),
                "end": float(points.time[stop - 1]),
                "points": int(stop - begin),
            }
            | {"mean": math.exp(mean) if log else mean}
        )
        begin = stop
    return json_ready(
        {"changes": [s["start"] for s in segments[1:]], "segments": segments, "points": n, "penalty": pen}
    )


def when_started(
    points: Points,
    opened_at: float | datetime,
    *,
    direction: str = "up",
    log: bool = False,
    min_size: int = 5,
) -> dict[str, Any]:
    """For the post-incident report: the last change point at or before the incident opened where the
    level moved in ``direction`` (``started_at`` None if there is none), with the levels before and after."""
    report = change_points(points, log=log, min_size=min_size)
    opened, segments = seconds(opened_at), report["segments"]
    started = None
    for before, after in zip(segments, segments[1:], strict=False):
        rose = after["mean"] > before["mean"]
        if after["start"] <= opened and (rose if direction == "up" else not rose):
            started = {"started_at": after["start"], "before": before["mean"], "after": after["mean"]}
    return {"started_at": None, **(started or {}), "opened_at": opened, **report}
