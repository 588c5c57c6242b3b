"""An evaluation's judgement (baton.evaluate.score): each kind of check against what a step gave, with the
reason a failed one names; a fan-out's items; a step that gave nothing; one version against another on the
same cases, with the cases that regressed and the verdict against the tolerance."""

from __future__ import annotations

import pytest

from baton.evaluate.score import (
    MATCH_TIMEOUT_S,
    CaseScore,
    Result,
    compare,
    interval,
    score_case,
    sequential,
    why_not,
)
from baton.spec.evals import Case, Check


@pytest.mark.parametrize(
    ("check", "value", "reason"),
    [
        ({"equals": "high"}, "high", ""),
        ({"equals": "high"}, "low", "is 'low', expected 'high'"),
        ({"equals": 1}, True, "is True, expected 1"),  # JSON's true is not 1
        ({"equals": 1}, 1.0, ""),
        ({"one_of": ["low", "high"]}, "normal", "is 'normal', not one of the values given"),
        ({"contains": "refund"}, "a refund today", ""),
        ({"contains": "refund"}, "a return", "does not contain 'refund'"),
        ({"contains": "billing"}, ["billing", "vip"], ""),
        ({"contains": "billing"}, ["vip"], "has no item 'billing'"),
        ({"contains": "x"}, 3, "is a int, not a text or a list"),
        ({"matches": "^Dear "}, "Dear Ada", ""),
        ({"matches": "^Dear "}, "Hi Ada", "does not match '^Dear '"),
        ({"matches": "x"}, ["x"], "is a list, not a text"),
        ({"range": [1, 3]}, 3, ""),
        ({"range": [1, 3]}, 3.5, "is 3.5, outside [1, 3]"),
        ({"range": [1, 3]}, True, "is True, not a number"),
        ({"range": [1, 3]}, "2", "is '2', not a number"),
        ({"min_length": 2}, ["a"], "has 1 characters or items, fewer than 2"),
        ({"max_length": 3}, "abcd", "has 4 characters or items, more than 3"),
        ({"max_length": 3}, 12, "is a int, which has no length"),
    ],
)
def test_each_check_holds_or_names_why_not(check, value, reason):
    model = Check.model_validate(check)
    assert why_not(model.given()[0], model, value) == reason


def test_a_pattern_that_backtracks_fails_its_check_within_its_time():
    check = Check(matches="^(a|aa)+$")  # exponential in the text's length (regex spares `(a+)+`, not this)
    assert why_not("matches", check, "a" * 60 + "b").startswith(
        f"was not searched to the end within {MATCH_TIMEOUT_S:g} s"
    )


CASE = Case.model_validate(
    {
        "id": "refund",
        "expect": {
            "triage": {"priority": {"equals": "high"}, "reply": {"contains": "refund", "max_length": 50}},
            "notes": {"text": {"min_length": 1}},
        },
    }
)


def test_a_case_is_scored_check_by_check_and_a_step_without_output_fails_each_of_its_checks():
    outputs = {"triage": {"priority": "high", "reply": "We will refund the duplicate charge."}}
    score = score_case(CASE, "failed", outputs, fanned=(), error="task 'notes' failed")
    assert [(r.key, r.passed) for r in score.results] == [
        ("triage.priority equals", True),
        ("triage.reply contains", True),
        ("triage.reply max_length", True),
        ("notes.text min_length", False),
    ]
    assert score.results[-1].reason == "step 'notes' gave no output (the run failed: task 'notes' failed)"
    assert (score.passed, score.score) == (3, 0.75)
    assert score.outputs == outputs  # what the checked steps gave, for the report


def test_a_missing_field_fails_and_a_fan_out_is_checked_item_by_item():
    case = Case.model_validate({"id": "c", "expect": {"write": {"title": {"max_length": 5}}}})
    fanned = {
        "results": [
            {"id": "0", "output": {"title": "short"}},
            {"id": "1", "output": {"title": "far too long"}},
        ]
    }
    score = score_case(case, "success", {"write": fanned}, fanned={"write"})
    assert score.results == [
        Result("write", "title", "max_length", False, "item 1: has 12 characters or items, more than 5")
    ]
    score = score_case(case, "success", {"write": {"body": "x"}}, fanned=())
    assert score.results[0].reason == "the output has no field 'title'"
    score = score_case(
        case, "success", {"write": {"results": [], "failures": [{"id": "0"}]}}, fanned={"write"}
    )
    assert score.results[0].reason == "fan-out step 'write' has no item that succeeded"


def _scored(case: str, *passed: bool) -> CaseScore:
    return CaseScore(case, "success", [Result("s", f"f{i}", "equals", held) for i, held in enumerate(passed)])


def test_a_version_that_loses_checks_beyond_the_tolerance_is_a_regression_naming_its_cases():
    stable = [_scored(f"c{i}", True, True) for i in range(10)]
    new = [_scored(f"c{i}", True, i >= 2) for i in range(10)]  # a field broken in a fifth of the cases
    comparison = compare(new, stable, tolerance=0.05)
    assert comparison.regressed == {"c0": ["s.f1 equals"], "c1": ["s.f1 equals"]}
    assert comparison.improved == {}
    assert (comparison.passed_new, comparison.passed_stable, comparison.checks) == (18, 20, 20)
    assert comparison.mean_difference == pytest.approx(-0.1)
    low, high = comparison.interval
    assert low < -0.1 < high
    assert comparison.regression  # 90 % of the checks against 100 %, over a tolerance of 5 %
    assert not compare(new, stable, tolerance=0.10).regression  # within a tolerance of 10 %


def test_the_interval_of_differences_that_cannot_vary_is_their_mean():
    assert interval([]) == (0.0, 0.0)
    assert interval([-0.5]) == (-0.5, -0.5)
    assert interval([0.0, 0.0, 0.0]) == (0.0, 0.0)
    low, high = interval([0.0, -0.5, 0.0, 0.0])
    assert low < -0.125 < high


def test_the_sequential_rule_calls_a_steady_regression_and_not_noise_that_goes_both_ways():
    broken = [(_scored(f"c{i}", True, i % 5 != 0), _scored(f"c{i}", True, True)) for i in range(100)]
    rule = sequential(broken, tolerance=0.05)  # a fifth of the cases lose a check, none gains one
    assert rule.decided_after == 31 and (rule.regressed, rule.improved) == (7, 0) and rule.e_value >= 20
    # the same losses, each met by a gain elsewhere: as many cases improve as regress, never a call
    noisy = [
        (_scored(f"c{i}", True, i % 5 != 0), _scored(f"c{i}", True, i % 5 != 1 if i % 5 < 2 else True))
        for i in range(100)
    ]
    rule = sequential(noisy, tolerance=0.05)
    assert rule.decided_after is None and rule.regressed == rule.improved == 20
    # a steady loss under the tolerance is not called however sure the test is
    assert sequential(broken, tolerance=0.20).decided_after is None
