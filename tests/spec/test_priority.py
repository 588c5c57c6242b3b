"""A template's ``priority``: its forms, its bounds, and the located message a bad one gets from the loader."""

from __future__ import annotations

from datetime import timedelta

import pytest

from baton.errors import TemplateError
from baton.spec import load_roster, load_workflow
from baton.spec.priority import LEVELS, PARAM, Priority, default_max_wait, level_of, wait_at

TEMPLATE = """\
workflow: ranked
version: 1
description: d
owner: o
steps:
  - id: a
    skill: score_leads
"""


@pytest.fixture(scope="module")
def roster(dags_folder):
    return load_roster(dags_folder / "agents.yaml")


def _load(tmp_path, roster, priority: str):
    path = tmp_path / "ranked.yaml"
    path.write_text(TEMPLATE + priority)
    return load_workflow(path, roster, root=tmp_path)


@pytest.mark.parametrize(
    ("text", "level", "wait", "allow"),
    [
        ("priority: high\n", 75, default_max_wait(75), None),
        ("priority: 80\n", 80, default_max_wait(80), None),
        ("priority: {level: low, max_wait: 10m}\n", 25, timedelta(minutes=10), None),
        ("priority: {level: normal, allow: [low, 90]}\n", 50, default_max_wait(50), (25, 90)),
        ("priority:\n  level: URGENT\n", 100, timedelta(minutes=1), None),
    ],
)
def test_a_level_is_a_name_or_a_number_and_the_age_bound_follows_it(
    tmp_path, roster, text, level, wait, allow
):
    workflow = _load(tmp_path, roster, text)
    assert (workflow.priority.level, workflow.priority.wait, workflow.priority.allow) == (level, wait, allow)


def test_without_priority_a_template_is_unchanged(tmp_path, roster):
    assert _load(tmp_path, roster, "").priority is None


def test_the_age_bound_runs_from_eight_hours_to_a_minute_and_a_templates_own_scales_the_others():
    assert [default_max_wait(level) for level in (0, 100)] == [timedelta(hours=8), timedelta(minutes=1)]
    waits = [default_max_wait(level) for level in range(101)]
    assert waits == sorted(waits, reverse=True)
    assert wait_at(75, 75, 600.0) == pytest.approx(600.0)
    assert wait_at(100, 75, 600.0) == pytest.approx(600.0 * 60 / default_max_wait(75).total_seconds())
    assert wait_at(0, 100, 7 * 86400.0) == 7 * 86400.0  # scaled past a week: the longest allowed
    assert level_of(" High ") == LEVELS["high"] and level_of("40") == 40 and level_of(40.0) == 40


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "priority: 101\n",
            "ranked.yaml:8: priority.level: priority 101 is out of range: use a whole number from 0 to 100",
        ),
        ("priority: -5\n", "priority.level: priority -5 is out of range"),
        ("priority: 1e400\n", "priority.level: priority '1e400' is not a whole number"),
        ("priority: 50.5\n", "priority.level: priority 50.5 is not a whole number: use one from 0 to 100"),
        ("priority: highest\n", "priority.level: 'highest' is not a priority: use low, normal, high, urgent"),
        ("priority: true\n", "priority.level: True is not a priority"),
        ("priority: [high]\n", "priority: Input should be a valid dictionary"),
        (
            "priority: {level: {level: {level: high}}}\n",
            "priority.level: {'level': {'level': 'high'}} is not a priority",
        ),
        (
            "priority: {level: high, max_wait: 1s}\n",
            "priority.max_wait: 1s is out of range: use a duration from 10s to 7d",
        ),
        ("priority: {level: high, max_wait: 30d}\n", "priority.max_wait: 30d is out of range"),
        (
            "priority: {level: high, allow: [urgent, low]}\n",
            "allow: [100, 25] has its lowest above its highest",
        ),
        (
            "priority: {level: low, allow: [normal, urgent]}\n",
            "level 25 is outside allow [50, 100]: widen allow",
        ),
        ("priority: {level: low, allow: [1, 2, 3]}\n", "priority.allow: Tuple should have at most 2 items"),
        ("priority: {level: low, weight: 9}\n", "priority.weight: unknown key 'weight'"),
        (f"priority: {'x' * 100_000}\n", "is not a priority"),
        (f"inputs:\n  {PARAM}: {{type: integer}}\n", f"inputs.{PARAM}: the name is Baton's"),
    ],
)
def test_a_bad_priority_is_refused_with_its_file_line_field_and_fix(tmp_path, roster, text, message):
    with pytest.raises(TemplateError) as caught:
        _load(tmp_path, roster, text)
    issues = [str(issue) for issue in caught.value.issues]
    assert any(message in issue for issue in issues), issues


def test_a_long_value_is_cut_in_the_message():
    with pytest.raises(ValueError, match="is not a priority") as caught:
        Priority.model_validate({"level": "y" * 100_000})
    assert len(str(caught.value)) < 1_000
