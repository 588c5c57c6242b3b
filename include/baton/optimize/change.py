"""Change detection per arm: has an agent's chance of delivering changed?

The test is the Bernoulli generalized likelihood ratio (GLR) test of Besson, Kaufmann, Maillard and
Seznec ("Efficient change-point detection for tackling piecewise-stationary bandits", JMLR 2022), run over
whether each of an arm's calls since its last change delivered (earned more than 0). For every split of
those ``n`` calls into an older part and a newer one it weighs how much better two delivery rates explain
them than one::

    max over s of  s * kl(older rate, overall rate) + (n - s) * kl(newer rate, overall rate)

(``kl``: the Kullback-Leibler divergence of two Bernoulli laws), and it declares a change when that
exceeds ``log(3 n^1.5 / false_alarm)``: the threshold under which, for calls that all deliver with the
same probability, the test ever fires with probability at most ``false_alarm`` (their Theorem 2; the
simulations in tests/optimize/test_change.py find it well under). The change is placed at the best split:
the bandit keeps the calls after it and forgets the older ones.

Why whether a call delivered, and not the reward: a call that fails earns 0 whatever the agent, and the
test is exact for a 0/1 outcome, while over the rewards (in [0, 1]) it would only be a bound, several
times slower to fire for rewards that spread as little as "0 when it fails, 0.77 +- 0.05 when it
delivers". Why hand-written: it is a dozen lines of numpy over the cumulative sums; ``ruptures`` (in the
lock) segments a finished series offline with a penalty to tune, and states no false-alarm rate.

A second, faster test (``drop_point``) watches for a *drop* in an arm with a long history: the same
statistic, but only over splits that leave at least ``DROP_OLDER`` older calls (a rate known well enough
to drop from) and ``DROP_NEWER`` newer ones, and only when the newer rate is the lower one, against a
fixed threshold of ``DROP_THRESHOLD`` nats instead of ``log(3 n^1.5 / false_alarm)`` (about 16 nats after
900 calls, which the incident of bench/routing.py, delivering 59 % instead of 93 %, takes about 30 calls
to pass at about 0.5 nats a call). It looks back at most 200 calls and weighs at least 10, so it judges a
rate rather than one streak of failures (the circuit breaker's business). Its false-alarm rate is not a
theorem's but measured: on calls that all deliver at one rate, it fired within 1,000 calls in 1.75 %,
0.50 %, 1.00 % and 0.75 % of 400 simulations at 55 %, 78 %, 93 % and 97 % (tests/optimize/test_change.py
checks a smaller sample); it found the 93 % -> 59 % drop after a median of 18 calls (200 simulations).
A false alarm costs the arm its older calls, as a change does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FALSE_ALARM = 0.01  # the chance that the test ever fires on an arm that does not change
MAX_RECENT = 1000  # calls per arm the test looks back on (the oldest beyond are kept in the sums only)
DROP_THRESHOLD = 10.0  # nats the drop test's statistic must exceed
DROP_OLDER = 50  # older calls the drop test needs before a split
DROP_NEWER = (10, 200)  # the fewest and the most newer calls it weighs after a split


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p, q = np.clip(p, 1e-12, 1 - 1e-12), np.clip(q, 1e-12, 1 - 1e-12)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def threshold(n: int, false_alarm: float = FALSE_ALARM) -> float:
    """What the GLR statistic over ``n`` calls must exceed to declare a change."""
    return math.log(3 * n**1.5 / false_alarm)


def _statistic(sums: np.ndarray, split: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The GLR statistic at each split of the calls whose cumulative delivered counts are ``sums``, and
    the older and the newer delivery rate at each."""
    n = len(sums) - 1
    overall = sums[n] / n
    older, newer = sums[split] / split, (sums[n] - sums[split]) / (n - split)
    return split * _kl(older, overall) + (n - split) * _kl(newer, overall), older, newer


def change_point(delivered: Sequence[bool] | np.ndarray, false_alarm: float = FALSE_ALARM) -> int:
    """Where the calls' delivery rate changed: the number of older calls to forget, 0 when it did not."""
    bits = np.asarray(delivered, dtype=float)
    n = len(bits)
    if n < 2:
        return 0
    sums = np.concatenate(([0.0], np.cumsum(bits)))
    split = np.arange(1, n)
    statistic, _, _ = _statistic(sums, split)
    best = int(np.argmax(statistic))
    return int(split[best]) if statistic[best] > threshold(n, false_alarm) else 0


def drop_point(delivered: Sequence[bool] | np.ndarray, threshold: float = DROP_THRESHOLD) -> int:
    """Where the calls' delivery rate dropped, by the fast test of the module's docstring: the number of
    older calls to forget, 0 when it did not (or the calls are too few to tell)."""
    bits = np.asarray(delivered, dtype=float)
    n = len(bits)
    split = np.arange(max(DROP_OLDER, n - DROP_NEWER[1]), n - DROP_NEWER[0] + 1)
    if len(split) == 0:
        return 0
    statistic, older, newer = _statistic(np.concatenate(([0.0], np.cumsum(bits))), split)
    statistic = np.where(newer < older, statistic, 0.0)
    best = int(np.argmax(statistic))
    return int(split[best]) if statistic[best] > threshold else 0
