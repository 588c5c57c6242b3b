"""The statistics of the sequential rule: e-values of paired comparisons (a Beta mixture over the win
probability), valid however often the counts are looked at.

The runs of each treatment are paired with the runs of the control in the order their outcomes are
recorded (the k-th finished run of one with the k-th of the other; a run waits until one of the other
variant comes). In a pair where exactly one run succeeded (a *discordant* pair), the chance that it is the
treatment's is ``theta = OR / (1 + OR)``, where OR is the odds ratio of the two success rates: 1/2 exactly
when the variants do equally well, whatever their rate is, and whatever drifts both rates share over time
(the pairs are close in time). The test's statistic is the e-value of a beta-binomial mixture over the
discordant pairs, ``E = B(a + w, a + l) / B(a, a) * 2 ** (w + l)`` (w the pairs won by the treatment, l by
the control, ``a`` the mixture's ``concentration``): a likelihood ratio averaged over the alternatives,
which is a nonnegative martingale with mean 1 when theta = 1/2. By Ville's inequality, the chance that E
*ever* reaches 1/alpha under no difference is at most alpha: the rule "decide when E >= 1/alpha" keeps its
false-positive rate at or under alpha when people look every day, every run, or whenever they like, and
stop when they like. It is exact (no normal approximation), and as efficient as a two-proportion z-test
(the discordant count has the same variance per pair).
"""

from __future__ import annotations

import functools
import math
from typing import Any

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


_LABELS = {
    "success": ("treatment_only", "control_only"),
    "failures": ("treatment_only", "control_only"),
    "latency": ("treatment_slower", "treatment_not_slower"),
}


def e_test(
    metric: str, counts: list[int], theta0: float | None, threshold: float, concentration: float
) -> dict[str, Any]:
    """One test of a comparison, JSON-ready: its e-value over the discordant ``counts`` (wins, losses),
    two-sided (``theta0`` None) or against the null theta <= ``theta0``, and whether it reaches
    ``threshold``."""
    wins, losses = counts
    if theta0 is None:
        log_e = log_e_two_sided(wins, losses, concentration)
    else:
        log_e = log_e_one_sided(wins, losses, theta0, concentration)
    labels = _LABELS[metric]
    return {
        "statistic": "beta-binomial mixture e-value over discordant pairs"
        + ("" if theta0 is None else f" (one-sided, null theta <= {theta0:.4g})"),
        "e_value": round(math.exp(min(log_e, 690.0)), 6),
        "log_e_value": round(log_e, 6),
        "threshold": threshold,
        "p_value": round(math.exp(-max(log_e, 0.0)), 6),  # min(1, 1 / E), which cannot overflow
        labels[0]: wins,
        labels[1]: losses,
        "odds_ratio": round((wins + 0.5) / (losses + 0.5), 4),
        "decides": log_e >= math.log(threshold),
    }


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
