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
    ``2 * concentration`` pseudo-pairs, truncated to above theta0). Computed in log space throughout: where
    the data lie far under theta0 the mixture's mass above theta0 is far under the smallest double (1,500
    losses and no win against theta0 = 0.5: about e^-892), while E itself is not (about e^-5); log E is
    floored at -745 only where E itself underflows."""
    alpha, beta = 2 * concentration * theta0, 2 * concentration * (1 - theta0)
    mixed = special.betaln(alpha + wins, beta + losses) + _log_upper(theta0, alpha + wins, beta + losses)
    log_e = mixed - _log_prior(theta0, alpha, beta) - wins * math.log(theta0) - losses * math.log1p(-theta0)
    return max(float(log_e), LOG_TINY)


def _log_upper(x: float, a: float, b: float) -> float:
    """log P(Beta(a, b) > x): the regularised incomplete beta where it is a double; deeper in the upper
    tail, where it underflows (and so does scipy's ``beta.logsf``, to -inf), the log of the same tail by
    its continued fraction. scipy has no log-space incomplete beta."""
    upper = float(special.betaincc(a, b, x))
    if upper > 1e-290:
        return math.log(upper)
    if 1 - x < (b + 1) / (a + b + 2):  # P(X > x) = I_{1-x}(b, a), where its continued fraction converges
        return _log_betainc(1 - x, b, a)
    return float(stats.beta.logsf(x, a, b))


def _log_betainc(y: float, p: float, q: float) -> float:
    """log I_y(p, q), the regularised incomplete beta, for y < (p + 1) / (p + q + 2): its prefactor
    y^p (1 - y)^q / (p B(p, q)) in log space times its continued fraction (modified Lentz; Numerical
    Recipes' betacf), which is of order one there."""
    tiny, total = 1e-300, p + q
    c, d = 1.0, 1.0 - total * y / (p + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 1000):
        for numerator in (
            m * (q - m) * y / ((p + 2 * m - 1) * (p + 2 * m)),
            -(p + m) * (total + m) * y / ((p + 2 * m) * (p + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    front = p * math.log(y) + q * math.log1p(-y) - math.log(p) - float(special.betaln(p, q))
    return front + math.log(fraction)


@functools.lru_cache(maxsize=64)
def _log_prior(theta0: float, alpha: float, beta: float) -> float:
    return float(special.betaln(alpha, beta)) + _log_upper(theta0, alpha, beta)
