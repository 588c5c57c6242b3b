"""Erlang C (M/M/c) with the Allen-Cunneen correction: the expected queue wait of c slots, and the smallest c
under a target."""

from __future__ import annotations

import math

from baton.ops.capacity.common import HOUR_S, MAX_CONCURRENCY, CapacityError

# --- queueing -----------------------------------------------------------------------------------------


def erlang_c(servers: int, load: float) -> float:
    """The probability that a call waits in an M/M/c queue with ``servers`` slots and an offered ``load``
    in erlangs (arrival rate x mean service time): Erlang's C formula, by the stable Erlang B recursion.
    1.0 when ``servers <= load`` (the queue grows without end), 0.0 with no load."""
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


def _variability(cv: float) -> float:
    """Allen-Cunneen's ``(1 + cv^2) / 2``; ``cv * cv`` is inf for a huge cv, where ``cv**2`` raises
    OverflowError."""
    return (1 + cv * cv) / 2


def mean_wait(servers: int, rate_per_s: float, mean_s: float, cv: float = 1.0) -> float:
    """Expected queue wait (s) with ``servers`` slots, Poisson arrivals at ``rate_per_s`` and service times
    of mean ``mean_s`` and coefficient of variation ``cv``: M/M/c's wait (Erlang C x mean / (c - load))
    times Allen-Cunneen's ``(1 + cv^2) / 2`` (exact for cv = 1). ``inf`` when the slots cannot keep up."""
    load = rate_per_s * mean_s
    if load <= 0:
        return 0.0
    if servers <= load:
        return math.inf
    return erlang_c(servers, load) * mean_s / (servers - load) * _variability(cv)


def smallest_concurrency(
    rate_per_s: float, mean_s: float, cv: float, target_wait_s: float, *, limit: int = MAX_CONCURRENCY
) -> int:
    """The fewest slots whose :func:`mean_wait` is at most ``target_wait_s`` (at least 1). One pass of the
    Erlang B recursion over c = 1, 2, ...; :class:`CapacityError` past ``limit``."""
    load = rate_per_s * mean_s
    if load <= 0:
        return 1
    blocking = 1.0
    for servers in range(1, limit + 1):
        blocking = load * blocking / (servers + load * blocking)
        if servers <= load:
            continue
        waiting = servers * blocking / (servers - load * (1 - blocking))
        if waiting * mean_s / (servers - load) * _variability(cv) <= target_wait_s:
            return servers
    raise CapacityError(
        f"more than {limit:,} slots are needed: the offered load is {load:,.1f} erlangs "
        f"({rate_per_s * HOUR_S:,.0f} calls/h x {mean_s:,.1f} s, service times' cv {cv:.3g}) (fix: check that "
        "durations are in seconds, or split the agent across several roster entries)"
    )
