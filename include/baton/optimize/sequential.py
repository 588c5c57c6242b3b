"""The statistics of the sequential rule: e-values of paired comparisons (a Beta mixture over the win
probability), valid however often the counts are looked at."""

from __future__ import annotations

import functools
import math

from scipy import special, stats

LOG_TINY = -745.0  # log of the smallest positive double


def log_e_two_sided(wins: float, losses: float, concentration: float) -> float:
    """log E for theta = 1/2 against a Beta(a, a) mixture over theta, after ``wins`` + ``losses`` pairs."""
    a = concentration
    return float(special.betaln(a + wins, a + losses) - special.betaln(a, a) + (wins + losses) * math.log(2))


def log_e_one_sided(wins: float, losses: float, theta0: float, concentration: float) -> float:
    """log E for theta <= theta0 against a mixture over theta > theta0 (a Beta with mean theta0 and
    ``2 * concentration`` pseudo-pairs, truncated to above theta0). Where the data lie so far under
    theta0 that the mixture's tail underflows, E is 0 in double precision: log E is then -745."""
    alpha, beta = 2 * concentration * theta0, 2 * concentration * (1 - theta0)
    mixed = special.betaln(alpha + wins, beta + losses) + _log_upper(theta0, alpha + wins, beta + losses)
    log_e = mixed - _log_prior(theta0, alpha, beta) - wins * math.log(theta0) - losses * math.log1p(-theta0)
    return max(float(log_e), LOG_TINY)


def _log_upper(x: float, a: float, b: float) -> float:
    """log P(Beta(a, b) > x): the regularised incomplete beta, or scipy's log-space form where it underflows."""
    upper = float(special.betaincc(a, b, x))
    return math.log(upper) if upper > 1e-290 else float(stats.beta.logsf(x, a, b))


@functools.lru_cache(maxsize=64)
def _log_prior(theta0: float, alpha: float, beta: float) -> float:
    return float(special.betaln(alpha, beta)) + _log_upper(theta0, alpha, beta)
