"""An evaluation's judgement: each check of a case against the outputs its run gave
(:func:`score_case`), and one version's cases against another's on the same cases (:func:`compare`).

A case's score is the share of its checks that held. Two versions are compared case by case (paired: the
same inputs): the mean of the differences with its 95 % confidence interval (Student's t, from scipy), the
cases in which a check that held on the stable version fails on the new one, and the verdict: a regression
when the new version's share of checks held is below the stable one's by more than the dataset's
``tolerance``.

Scoring is pure but for a check's ``evaluator`` (a registered function, bounded in time) and ``rubric`` (a
judge's model call): :mod:`baton.coordination.judging`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from scipy import stats

from baton.coordination.judging import Judge, NoVerdict, check_why_not
from baton.coordination.live import outputs_of
from baton.optimize.sequential import log_e_one_sided
from baton.spec.evals import Case
from baton.spec.expect import MATCH_TIMEOUT_S, Check, why_not


@dataclass(frozen=True)
class Result:
    """One check of one field of one step's output in one case."""

    step: str
    field: str
    check: str
    passed: bool
    reason: str = ""  # why it failed

    @property
    def key(self) -> str:
        return f"{self.step}.{self.field} {self.check}"


@dataclass(frozen=True)
class CaseScore:
    """A case's run (its state, each step's) and its checks."""

    case: str
    state: str
    results: list[Result] = field(default_factory=list)
    error: str = ""  # why the run did not even start or finish, when it did not
    outputs: dict[str, Any] = field(default_factory=dict)  # what the checked steps gave, by step

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def score(self) -> float:
        return self.passed / len(self.results) if self.results else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "checks": len(self.results), "score": self.score}


def _check_outputs(
    step: str, name: str, check: Check, outputs: list[Any], judge: Judge | None
) -> list[Result]:
    """The results of one field's checks over a step's outputs (one, or a fan-out's items'); a rubric the
    judge gave no verdict on fails, saying so."""
    results = []
    for kind in check.given():
        reason = ""
        for index, output in enumerate(outputs):
            where = f"item {index}: " if len(outputs) > 1 else ""
            if not isinstance(output, Mapping) or name not in output:
                reason = f"{where}the output has no field '{name}'"
            else:
                try:
                    reason = check_why_not(kind, check, name, output[name], output, judge)
                except NoVerdict as none:
                    reason = str(none)
                reason = f"{where}{reason}" if reason else ""
            if reason:
                break
        results.append(Result(step, name, kind, not reason, reason))
    return results


def _all_failed(step: str, fields: Mapping[str, Check], why: str) -> list[Result]:
    return [Result(step, name, kind, False, why) for name, check in fields.items() for kind in check.given()]


def score_case(
    case: Case,
    state: str,
    outputs: Mapping[str, Any],
    fanned: Iterable[str],
    error: str = "",
    judge: Judge | None = None,
) -> CaseScore:
    """Every check of ``case`` against its run's outputs (step id -> XCom value of a step that succeeded);
    a step with no output fails each of its checks, naming the run's state. ``judge`` reads the rubrics."""
    fan_outs = set(fanned)
    results: list[Result] = []
    for step, fields in case.expect.items():
        if step not in outputs:
            why = f"step '{step}' gave no output (the run {state}{': ' + error[:300] if error else ''})"
            results += _all_failed(step, fields, why)
            continue
        items = outputs_of(outputs[step], step in fan_outs)
        if not items:
            results += _all_failed(step, fields, f"fan-out step '{step}' has no item that succeeded")
            continue
        for name, check in fields.items():
            results += _check_outputs(step, name, check, items, judge)
    checked = {step: outputs[step] for step in case.expect if step in outputs}
    return CaseScore(case.id, state, results, error, checked)


#: The sequential rule's chance of ever calling a harmless change a regression, however many cases it looks at.
ALPHA = 0.05
#: The mixture's pseudo-cases over how often a regressed case outnumbers an improved one (Beta(1, 1), truncated
#: above 1/2): about seven regressed cases in a row decide at 5 %, a fifth of the cases broken ~35 cases.
CONCENTRATION = 1.0


@dataclass(frozen=True)
class Sequential:
    """The sequential rule over paired cases in their order: the case after which it called a regression
    (None: not within the cases), the cases that regressed and improved, and the e-value after the last."""

    decided_after: int | None
    regressed: int
    improved: int
    e_value: float


def sequential(
    pairs: list[tuple[CaseScore, CaseScore]], tolerance: float, alpha: float = ALPHA
) -> Sequential:
    """Walk (new, stable) case pairs in order. A case *regressed* when it lost a check the stable version
    held and gained none, *improved* the other way round. After each case, the e-value that the new version
    loses more cases than it gains (``log_e_one_sided`` of baton.optimize.sequential, against 1/2: a
    nonnegative martingale, so looking after every case keeps the chance of a false call at ``alpha``);
    a regression is called at the first case where it reaches 1/alpha and the checks lost so far outnumber
    those gained by more than ``tolerance`` of the checks so far."""
    regressed = improved = lost = gained = checks = 0
    log_e, threshold = 0.0, math.log(1 / alpha)
    for index, (after, before) in enumerate(pairs, start=1):
        held = {r.key for r in before.results if r.passed}
        holds = {r.key for r in after.results if r.passed}
        case_lost, case_gained = len(held - holds), len(holds - held)
        regressed += bool(case_lost and not case_gained)
        improved += bool(case_gained and not case_lost)
        lost, gained, checks = lost + case_lost, gained + case_gained, checks + len(before.results)
        log_e = log_e_one_sided(regressed, improved, 0.5, CONCENTRATION)
        if log_e >= threshold and lost - gained > tolerance * checks:
            return Sequential(index, regressed, improved, math.exp(min(log_e, 700.0)))
    return Sequential(None, regressed, improved, math.exp(min(log_e, 700.0)))


@dataclass(frozen=True)
class Comparison:
    """A version's cases against the stable version's on the same cases."""

    checks: int  # in all, on each side
    passed_new: int
    passed_stable: int
    mean_difference: float  # of the cases' scores, new - stable
    interval: tuple[float, float]  # 95 % confidence interval of the mean difference
    regressed: dict[str, list[str]]  # case -> its checks that held on stable and fail on the new version
    improved: dict[str, list[str]]
    tolerance: float
    rule: Sequential | None = None  # the sequential rule over the cases in the order they ran

    @property
    def share_new(self) -> float:
        return self.passed_new / self.checks if self.checks else 0.0

    @property
    def share_stable(self) -> float:
        return self.passed_stable / self.checks if self.checks else 0.0

    @property
    def regression(self) -> bool:
        """The new version holds fewer checks than the stable one by more than the tolerance."""
        return self.share_new < self.share_stable - self.tolerance - 1e-12

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "interval": list(self.interval),
            "share_new": self.share_new,
            "share_stable": self.share_stable,
            "regression": self.regression,
        }


def interval(differences: list[float]) -> tuple[float, float]:
    """The 95 % confidence interval of the mean of paired differences (Student's t); the mean itself when
    the differences cannot vary (one case, or all alike)."""
    if not differences:
        return (0.0, 0.0)
    mean = sum(differences) / len(differences)
    if len(differences) < 2 or max(differences) == min(differences):
        return (mean, mean)
    low, high = stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    return (float(low), float(high)) if math.isfinite(low) and math.isfinite(high) else (mean, mean)


def compare(new: list[CaseScore], stable: list[CaseScore], tolerance: float) -> Comparison:
    """``new`` against ``stable``, case by case (the cases both have)."""
    by_id = {score.case: score for score in stable}
    pairs = [(score, by_id[score.case]) for score in new if score.case in by_id]
    regressed: dict[str, list[str]] = {}
    improved: dict[str, list[str]] = {}
    for after, before in pairs:
        held = {r.key for r in before.results if r.passed}
        holds = {r.key for r in after.results if r.passed}
        every = [r.key for r in before.results]
        if lost := [key for key in every if key in held and key not in holds]:
            regressed[after.case] = lost
        if gained := [key for key in every if key in holds and key not in held]:
            improved[after.case] = gained
    differences = [after.score - before.score for after, before in pairs]
    return Comparison(
        checks=sum(len(before.results) for _, before in pairs),
        passed_new=sum(after.passed for after, _ in pairs),
        passed_stable=sum(before.passed for _, before in pairs),
        mean_difference=sum(differences) / len(differences) if differences else 0.0,
        interval=interval(differences),
        regressed=regressed,
        improved=improved,
        tolerance=tolerance,
        rule=sequential(pairs, tolerance),
    )


__all__ = [
    "ALPHA",
    "MATCH_TIMEOUT_S",
    "CaseScore",
    "Comparison",
    "Result",
    "Sequential",
    "compare",
    "interval",
    "score_case",
    "sequential",
    "why_not",
]
