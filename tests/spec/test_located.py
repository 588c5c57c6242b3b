"""One translation of pydantic's errors for every file a user writes (spec/located.py): the same words for
the same mistake in a workflow, the roster, budgets.yaml and monitoring.yaml."""

from __future__ import annotations

import pytest

from baton.errors import TemplateError
from baton.spec.budgets import load_budgets
from baton.spec.loading import load_workflow
from baton.spec.located import Located
from baton.spec.models import Workflow
from baton.spec.monitoring import MonitoringDocument, load_monitoring

WORKFLOW = "workflow: w\nversion: 1\ndescription: d\nowner: o\nsteps:\n  - id: a\n    skill: score_leads\n"


def _issues(call) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        call()
    return [str(issue) for issue in caught.value.issues]


def test_a_key_that_belongs_elsewhere_is_told_so_not_suggested_to_itself(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(WORKFLOW + "    owner: someone\n")  # a workflow's key, written in a step
    assert _issues(lambda: load_workflow(path, None, root=tmp_path)) == [
        "w.yaml:8: steps[0].owner: unknown key 'owner' (fix: remove it: it is a key elsewhere, not here)"
    ]
    assert _issues(lambda: load_monitoring({"monitoring": {"detectors": {"tick": "1m"}}})) == [
        "dags/monitoring.yaml: monitoring.detectors.tick: unknown key 'tick' (fix: remove it: it is a key "
        "elsewhere, not here)"
    ]


def test_a_name_s_pattern_gets_the_identifier_fix_and_a_refusal_of_control_characters_none(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(WORKFLOW.replace("id: a", "id: A"))
    assert _issues(lambda: load_workflow(path, None, root=tmp_path)) == [
        "w.yaml:6: steps[0].id: String should match pattern '^[a-z][a-z0-9_]*$' (fix: use lowercase letters, "
        "digits and underscores, starting with a letter)"
    ]
    window = {"at": "01:00", "duration": "1h", "name": "two\nlines"}
    assert _issues(lambda: load_monitoring({"monitoring": {"maintenance": [window]}})) == [
        "dags/monitoring.yaml: monitoring.maintenance[0].name: String should match pattern "
        "'^[^\\x00-\\x1f\\x7f]+$'"
    ]


def test_the_same_bound_is_told_in_the_same_words_in_every_file(tmp_path):
    (tmp_path / "budgets.yaml").write_text("budgets:\n  - {name: a, per: day, cost: 0}\n")
    assert _issues(lambda: load_budgets(tmp_path / "budgets.yaml", tmp_path)) == [
        "budgets.yaml:2: budgets[0].cost: Input should be greater than 0 (fix: use a larger value)"
    ]
    rate = {"monitoring": {"detectors": {"failure_rate": {"rate": {"alpha": 0}}}}}
    assert _issues(lambda: load_monitoring(rate)) == [
        "dags/monitoring.yaml: monitoring.detectors.failure_rate.rate.alpha: Input should be greater than 0 "
        "(fix: use a larger value)"
    ]


def test_data_not_read_from_a_file_is_located_by_key_path_without_a_line():
    located = Located("given.yaml")
    with pytest.raises(TemplateError) as caught:
        located.validate(Workflow, {"workflow": "w", "version": "one"})
    assert [str(issue) for issue in caught.value.issues][:2] == [
        "given.yaml: version: Input should be a valid integer, unable to parse string as an integer (fix: use "
        "a whole number)",
        "given.yaml: description: missing required key 'description' (fix: add this key)",
    ]
    with pytest.raises(TemplateError) as caught:
        located.validate(MonitoringDocument, "monitoring")
    assert str(caught.value.issues[0]) == (
        "given.yaml: expected a mapping at the top, got str (fix: start with 'monitoring:')"
    )
