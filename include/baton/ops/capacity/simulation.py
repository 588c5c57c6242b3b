"""A first-come-first-served queue with c slots: the check of a recommendation."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from baton.ops.capacity.common import CapacityError
from baton.ops.capacity.demand import _show
from baton.ops.capacity.forecast import _whole

# --- simulation ---------------------------------------------------------------------------------------


def simulate(
    arrivals: Sequence[float] | np.ndarray, service_times: Sequence[float] | np.ndarray, c: int
) -> np.ndarray:
    """Each call's wait (s) in a first-come-first-served queue with ``c`` slots.

    ``arrivals[i]`` is when call i arrives (seconds, any order) and ``service_times[i]`` how long it holds a
    slot; the waits come back in the same order. A discrete-event simulation: each call, in arrival
    order, takes the slot that frees first (a heap of the slots' free times), O(n log c).
    """
    at = np.asarray(arrivals, dtype=float)
    hold = np.asarray(service_times, dtype=float)
    if at.ndim != 1 or hold.shape != at.shape:
        raise CapacityError(
            f"arrivals {at.shape} and service_times {hold.shape} differ (fix: give one service time per arrival)"
        )
    for name, values in (("arrivals", at), ("service_times", hold)):
        bad = np.flatnonzero(~np.isfinite(values) | ((values < 0) if name == "service_times" else False))
        if bad.size:
            raise CapacityError(
                f"{name}[{int(bad[0])}] is {_show(values[bad[0]])} (fix: give finite seconds"
                + (", >= 0)" if name == "service_times" else ")")
            )
    slots = _whole(c, "c", 1, 10**9)
    order = np.argsort(at, kind="stable")
    waits = np.zeros(at.size)
    free = [-math.inf] * min(slots, max(at.size, 1))  # more slots than calls are never all used
    for i, arrival, duration in zip(order.tolist(), at[order].tolist(), hold[order].tolist(), strict=True):
        start = max(arrival, free[0])
        heapq.heapreplace(free, start + duration)
        waits[i] = start - arrival
    return waits
