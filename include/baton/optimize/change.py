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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FALSE_ALARM = 0.01  # the chance that the test ever fires on an arm that does not change
MAX_RECENT = 1000  # calls per arm the test looks back on (the oldest beyond are kept in the sums only)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p, q = np.clip(p, 1e-12, 1 - 1e-12), np.clip(q, 1e-12, 1 - 1e-12)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def threshold(n: int, false_alarm: float = FALSE_ALARM) -> float:
    """What the GLR statistic over ``n`` calls must exceed to declare a change."""
    return math.log(3 * n**1.5 / false_alarm)


def change_point(delivered: Sequence[bool] | np.ndarray, false_alarm: float = FALSE_ALARM) -> int:
    """Where the calls' delivery rate changed: the number of older calls to forget, 0 when it did not."""
    bits = np.asarray(delivered, dtype=float)
    n = len(bits)
    if n < 2:
        return 0
    sums = np.concatenate(([0.0], np.cumsum(bits)))
    split = np.arange(1, n)
    overall = sums[n] / n
    statistic = split * _kl(sums[split] / split, overall) + (n - split) * _kl(
        (sums[n] - sums[split]) / (n - split), overall
    )
    best = int(np.argmax(statistic))
    return int(split[best]) if statistic[best] > threshold(n, false_alarm) else 0
