"""``baton diff OLD NEW``: the change impact between two versions of a template, breaking changes named
(exit 1), compatible ones said (exit 0), unreadable templates refused (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton.cli import main as baton

ROOT = Path(__file__).resolve().parents[2]
LEADS = (ROOT / "dags" / "workflows" / "lead_qualification.yaml").read_text()


@pytest.fixture
def pair(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    (tmp_path / "budgets.yaml").write_text(
        "budgets:\n  - {name: leads-day, scope: workflow:lead_qualification, per: day, cost: 5}\n"
        "  - {name: gpt-month, scope: 'agent:strategy_strategic_planner', per: month, tokens: 100000}\n"
    )
    old = tmp_path / "old.yaml"
    old.write_text(LEADS)

    def changed(*edits: tuple[str, str]) -> list[str]:
        text = LEADS
        for before, after in edits:
            assert before in text, before
            text = text.replace(before, after, 1)
        (tmp_path / "new.yaml").write_text(text)
        return [str(old), str(tmp_path / "new.yaml")]

    return changed


def test_an_input_made_required_and_a_narrowed_enum_break_callers(pair, capsys):
    argv = pair(
        ("version: 1", "version: 2"),
        ("enum: [all, emea, na, apac]", "enum: [emea, na, apac]"),
        ("    minimum: 0\n", "    minimum: 10\n"),
        (
            "inputs:\n",
            "inputs:\n  account:\n    type: string\n    required: true\n    description: The account to score.\n",
        ),
    )
    assert baton(["diff", *argv]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[:5] == [
        "lead_qualification: 4 change(s), 3 breaking",
        "  version: 1 -> 2",
        "  BREAKING inputs.account: added, required: a caller that does not pass it is refused",
        "  BREAKING inputs.min_score: minimum 0.0 -> 10.0: values the old one took are refused",
        "  BREAKING inputs.region: enum values removed: ['all']: a caller passing one is refused",
    ]
    assert out.splitlines()[5:] == ["  budget leads-day (day) applies to this workflow"]


def test_removing_a_step_a_later_one_needs_and_reads_breaks_it(pair, capsys):
    argv = pair(("version: 1", "version: 2"))
    new = Path(argv[1])
    text = new.read_text()
    first = text.index("  - id: score_leads")
    new.write_text(text[:first] + text[text.index("  - id: value_leads") :])
    assert baton(["diff", *argv]) == 1
    out = capsys.readouterr().out
    assert "  BREAKING steps.score_leads: removed, but value_leads still read or need it\n" in out


def test_a_step_given_to_another_agent_and_a_new_instruction_are_said_not_breaking(pair, capsys):
    argv = pair(
        ("version: 1", "version: 2"),
        ("    agent: finance_revenue_tracker\n", "    agent: strategy_strategic_planner\n"),
        ("Value the {{ steps.score_leads.qualified }}", "Price the {{ steps.score_leads.qualified }}"),
    )
    assert baton(["diff", *argv]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "lead_qualification: 3 change(s), 0 breaking",
        "  version: 1 -> 2",
        "  steps.value_leads: agent finance_revenue_tracker -> agent strategy_strategic_planner",
        "  steps.value_leads.instruction: changed",
        "  agents: +strategy_strategic_planner; -finance_revenue_tracker",
        "  budget leads-day (day) applies to this workflow",
        "  budget gpt-month (month) applies to agent strategy_strategic_planner, new here",
    ]


def test_adding_an_optional_input_does_not_break(pair, capsys):
    argv = pair(
        ("version: 1", "version: 2"),
        ("inputs:\n", "inputs:\n  note:\n    type: string\n    default: ''\n"),
    )
    assert baton(["diff", *argv]) == 0
    assert "inputs.note: added, optional (default '')" in capsys.readouterr().out


def test_a_version_that_does_not_go_up_is_said_and_json_has_every_change(pair, capsys):
    argv = pair(("    default: all\n", "    default: emea\n"))
    assert baton(["diff", *argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["version"] == [1, 1] and document["breaking"] == 0
    assert {
        "where": "version",
        "what": "1 -> 1: raise it for a changed template",
        "breaking": False,
    } in document["changes"]
    assert {"where": "inputs.region", "what": "default 'all' -> 'emea'", "breaking": False} in document[
        "changes"
    ]
    assert document["budgets"] == ["leads-day (day) applies to this workflow"]


@pytest.mark.parametrize(
    ("new_text", "said"),
    [
        ("workflow: [", "YAML syntax error"),
        ("a: &a [*a, *a, *a]\n" * 3, "new.yaml"),
        ("- 1\n" * 10, "expected a mapping at the top, got list"),
        ("", "expected a mapping at the top, got NoneType"),
    ],
)
def test_a_template_that_cannot_be_read_is_refused_with_its_errors(pair, capsys, new_text, said):
    argv = pair()
    Path(argv[1]).write_text(new_text)
    assert baton(["diff", *argv]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"baton diff: {argv[1]} cannot be read:\n") and said in out


def test_a_missing_file_is_refused(pair, capsys, tmp_path):
    argv = pair()
    assert baton(["diff", argv[0], str(tmp_path / "nowhere.yaml")]) == 2
    assert "nowhere.yaml cannot be read" in capsys.readouterr().out


def test_an_output_field_a_later_step_reads_is_breaking_to_remove_and_one_nobody_reads_is_not(tmp_path):
    from baton.spec.diff import diff
    from baton.spec.models import Workflow

    def workflow(fields: str) -> Workflow:
        return Workflow.model_validate({
            "workflow": "w", "version": 1, "description": "d", "owner": "o",
            "steps": [
                {"id": "a", "agent": "x", "instruction": "Count.", "output": dict.fromkeys(fields.split(), "integer")},
                {"id": "b", "agent": "y", "needs": ["a"], "instruction": "Use {{ steps.a.qualified }}."},
            ],
        })  # fmt: skip

    changes = diff(workflow("total qualified spare"), workflow("total")).changes
    assert [(c.where, c.what, c.breaking) for c in changes if c.where.startswith("steps.")] == [
        ("steps.a.output.qualified", "removed, but b read it", True),
        ("steps.a.output.spare", "removed", False),
    ]


def test_a_removed_step_names_every_step_that_needs_or_reads_it():
    from baton.spec.diff import diff
    from baton.spec.models import Workflow

    def workflow(*ids: str) -> Workflow:
        steps = [{"id": "a", "agent": "x", "instruction": "A."}] if "a" in ids else []
        steps += [
            {"id": "b", "agent": "x", "needs": ["a"], "instruction": "B."},  # still, in the new one
            {"id": "c", "agent": "x", "needs": ["a"], "instruction": "C."},
            {"id": "d", "agent": "x", "instruction": "Read {{ steps.a.total }}."},
        ]
        return Workflow.model_validate(
            {"workflow": "w", "version": 1, "description": "d", "owner": "o", "steps": steps}
        )

    (removed,) = [c for c in diff(workflow("a"), workflow()).changes if c.where == "steps.a"]
    assert (removed.what, removed.breaking) == ("removed, but b, c, d still read or need it", True)
