"""``baton validate`` checks the evaluation datasets (``evals/<workflow>.yaml``) against their workflows'
templates: a case that could never run or a check that could never pass is told at its file, line and key,
with its fix, before anything runs; a hostile dataset is refused within the reader's bounds, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton.cli import main
from baton.cli.init import init
from baton.limits import limits
from baton.spec.evals import MAX_CASES

TEMPLATE = """\
workflow: triage
version: 1
description: Triage a ticket.
owner: support
category: examples
inputs:
  ticket: {type: string, required: true}
  limit: {type: integer, default: 3, minimum: 1, maximum: 12}
steps:
  - id: load
    skill: support_tickets
  - id: classify
    agent: assistant
    needs: [load]
    instruction: "Classify {{ inputs.ticket }}"
    output:
      priority: {type: string, enum: [low, normal, high]}
      score: {type: number, minimum: 0, maximum: 1}
      tags: {type: array, items: string}
      note: {type: string, required: false}
"""

GOOD = """\
dataset: triage
description: Tickets whose triage we know.
tolerance: 0.05
cases:
  - id: refund
    inputs: {ticket: "Charged twice", limit: 2}
    recorded:
      load: {count: 1, tickets: [{id: T-1, subject: Charged twice}]}
    expect:
      classify:
        priority: {one_of: [normal, high]}
        score: {range: [0.5, 1]}
        tags: {contains: billing, max_length: 5}
        note: {equals: null}
  - id: outage
    inputs: {ticket: "Site down"}
    recorded:
      load: {count: 1, tickets: [{id: T-2, subject: Site down}]}
    expect:
      classify:
        priority: {equals: high}
        score: {range: [0.8, 1.0]}
        tags: {min_length: 1}
        note: {matches: "^[A-Z]", max_length: 200}
"""


@pytest.fixture
def dags(tmp_path, monkeypatch):
    init(tmp_path / "dags")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(tmp_path / "plugins"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_BATON_LLM", '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
    )
    (tmp_path / "dags" / "workflows" / "triage.yaml").write_text(TEMPLATE)
    (tmp_path / "dags" / "evals").mkdir()
    return tmp_path / "dags"


def _run(capsys, *args: str) -> tuple[int, list[str]]:
    status = main(["validate", *args])
    return status, capsys.readouterr().out.splitlines()


def _dataset(dags, text: str, name: str = "triage.yaml") -> str:
    (dags / "evals" / name).write_text(text)
    return f"{dags}/evals/{name}"


def _unrecorded(path: str, missing: int, cases: int) -> str:
    """The warning of a dataset whose cases leave the template's skill step ``load`` to run for real."""
    return (
        f"{path}: cases: warning: step 'load' runs skill 'support_tickets' and {missing} of the {cases} cases do "
        "not record its output: an evaluation runs it for real in them (fix: if it reaches a business system "
        "or a person, record the output it gives in each case, `recorded: {load: ...}`)"
    )


def test_a_dataset_that_fits_its_workflow_passes(dags, capsys):
    _dataset(dags, GOOD)
    assert _run(capsys) == (0, ["2 template(s) checked, 0 with errors, 0 error(s) in all"])


def test_cases_that_could_never_run_are_located_with_their_fix(dags, capsys):
    path = _dataset(
        dags,
        """\
dataset: triage
cases:
  - id: one
    inputs: {ticket: 42, limit: 50, colour: red}
    recorded: {fetch: {}}
    expect:
      missing_step: {x: {equals: 1}}
  - id: two
    recorded: {classify: {priority: low}}
    expect:
      classify: {priority: {equals: low}}
""",
    )
    status, out = _run(capsys)
    assert status == 1
    assert out == [
        f"{path}:4: cases[0].inputs.ticket: input 'ticket': 42 is not of type 'string' (fix: give a value the "
        "template's input takes)",
        f"{path}:4: cases[0].inputs.limit: input 'limit': 50 is greater than the maximum of 12.0 (fix: give a "
        "value the template's input takes)",
        f"{path}:4: cases[0].inputs.colour: the workflow takes no input 'colour' (fix: use its inputs: ticket, "
        "limit)",
        f"{path}:5: cases[0].recorded.fetch: the workflow has no step 'fetch' (fix: use one of: load, classify)",
        f"{path}:7: cases[0].expect.missing_step: the workflow has no step 'missing_step' (fix: use one of: "
        "load, classify)",
        f"{path}:8: cases[1].inputs: the workflow requires input 'ticket' (fix: give 'ticket' a value in this case's "
        "inputs)",
        f"{path}:11: cases[1].expect.classify: step 'classify' is recorded in this case, not run (fix: check a "
        "step the case runs)",
        _unrecorded(path, 2, 2),
        "2 template(s) checked, 0 with errors, 7 error(s) in all, 1 warning(s); evals/triage.yaml has errors",
    ]


def test_checks_that_could_never_pass_are_located_with_their_fix(dags, capsys):
    path = _dataset(
        dags,
        """\
dataset: triage
cases:
  - id: one
    inputs: {ticket: t}
    expect:
      classify:
        priority: {range: [1, 3], equals: urgent}
        score: {equals: "0.9", matches: "^0"}
        tags: {one_of: [a, b]}
        note: {contains: 7}
        colour: {equals: red}
""",
    )
    status, out = _run(capsys)
    assert status == 1
    assert out == [
        f"{path}:7: cases[0].expect.classify.priority.range: 'range' never passes on a string field (fix: use a "
        "check a string field can pass: equals, one_of, contains, matches, min_length, max_length)",
        f"{path}:7: cases[0].expect.classify.priority.equals: the field can never be 'urgent' (fix: use one of "
        "its values: 'low', 'normal', 'high')",
        f"{path}:8: cases[0].expect.classify.score.matches: 'matches' never passes on a number field (fix: use "
        "a check a number field can pass: equals, one_of, range)",
        f"{path}:8: cases[0].expect.classify.score.equals: the field can never be '0.9' (fix: give a number)",
        f"{path}:9: cases[0].expect.classify.tags.one_of: the field can be none of these values (fix: give an "
        "array)",
        f"{path}:10: cases[0].expect.classify.note.contains: a text field contains text only (fix: give "
        "'contains' a text)",
        f"{path}:11: cases[0].expect.classify.colour: the step's output has no field 'colour' (fix: use one of: "
        "priority, score, tags, note)",
        _unrecorded(path, 1, 1),
        "2 template(s) checked, 0 with errors, 7 error(s) in all, 1 warning(s); evals/triage.yaml has errors",
    ]


def test_the_dataset_file_itself_is_checked_by_the_spec_reader(dags, capsys):
    path = _dataset(
        dags,
        """\
dataset: triage
tolerance: 2
cases:
  - id: one
    inputs: {ticket: t}
    expect:
      classify:
        priority: {}
        score: {range: [1, .inf]}
        tags: {min_length: 3, max_length: 1}
        note: {matches: "(unclosed", equal: x}
  - id: one
    expect: {classify: {priority: {equals: low}}}
""",
    )
    status, out = _run(capsys)
    assert status == 1
    text = "\n".join(out)
    for expected in (
        f"{path}:2: tolerance: Input should be less than or equal to 1",
        f"{path}:8: cases[0].expect.classify.priority: a check needs at least one of: equals, one_of, contains, "
        "matches, range, min_length, max_length",
        f"{path}:9: cases[0].expect.classify.score.range: range [1.0, inf] is not [lowest, highest] with finite "
        "numbers",
        f"{path}:10: cases[0].expect.classify.tags: min_length 3 is over max_length 1",
        f"{path}:11: cases[0].expect.classify.note.matches: '(unclosed' is not a regular expression: missing ) "
        "at position 9",
        f"{path}:11: cases[0].expect.classify.note.equal: unknown key 'equal' (fix: did you mean 'equals'?)",
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert out[-1].endswith("; evals/triage.yaml has errors")


def test_a_skill_step_some_cases_leave_unrecorded_is_a_warning_naming_how_many(dags, capsys):
    # An evaluation runs an unrecorded skill step for real (a read of the demo queue here; a post elsewhere).
    path = _dataset(
        dags,
        GOOD.replace("    recorded:\n      load: {count: 1, tickets: [{id: T-2, subject: Site down}]}\n", ""),
    )
    assert _run(capsys) == (
        0,
        [_unrecorded(path, 1, 2), "2 template(s) checked, 0 with errors, 0 error(s) in all, 1 warning(s)"],
    )


def test_a_pure_skill_left_unrecorded_is_no_warning(dags, capsys):
    # lead_value only computes (@skill(..., pure=True)): an evaluation may run it; support_tickets reads a queue
    template = dags / "workflows" / "triage.yaml"
    template.write_text(template.read_text().replace("skill: support_tickets", "skill: lead_value"))
    unrecorded = GOOD.replace(
        "    recorded:\n      load: {count: 1, tickets: [{id: T-2, subject: Site down}]}\n", ""
    )
    _dataset(dags, unrecorded)
    assert _run(capsys) == (0, ["2 template(s) checked, 0 with errors, 0 error(s) in all"])


def test_two_cases_of_one_name_are_refused(dags, capsys):
    path = _dataset(dags, GOOD.replace("id: outage", "id: refund"))
    status, out = _run(capsys)
    assert status == 1
    assert out[0] == f"{path}:4: cases: two cases are named 'refund': give each case its own id"


def test_a_dataset_of_another_workflow_or_of_none_is_named(dags, capsys):
    wrong = _dataset(dags, GOOD.replace("dataset: triage", "dataset: hello_baton"))
    orphan = _dataset(dags, GOOD.replace("dataset: triage", "dataset: gone"), "gone.yaml")
    status, out = _run(capsys)
    assert status == 1
    assert out[:2] == [
        f"{orphan}:1: dataset: there is no workflow 'gone' here (fix: name one of the workflows: hello_baton, "
        "triage)",
        f"{wrong}:1: dataset: the file is triage.yaml, the dataset 'hello_baton' (fix: rename the file "
        "hello_baton.yaml, or write 'dataset: triage')",
    ]
    assert f"{wrong}:1: dataset: the dataset names" not in "\n".join(out)  # checked against hello_baton


def test_a_dataset_named_yml_or_in_capitals_is_checked_as_a_template_would_be(dags, capsys):
    path = _dataset(dags, GOOD.replace("equals: high", "equals: urgent"), "triage.YML")
    status, out = _run(capsys)
    assert status == 1
    assert out[0] == (
        f"{path}:21: cases[1].expect.classify.priority.equals: the field can never be 'urgent' (fix: use one of "
        "its values: 'low', 'normal', 'high')"
    )


def test_the_json_format_reports_a_dataset_as_a_file(dags, capsys):
    _dataset(dags, GOOD.replace("equals: high", "equals: urgent"))
    status, out = _run(capsys, "--format", "json")
    assert status == 1
    (report,) = [json.loads(line) for line in out if '"file"' in line and "evals" in line]
    assert report["ok"] is False
    assert [issue["path"] for issue in report["issues"]] == ["cases[1].expect.classify.priority.equals"]


# --- hostile ---------------------------------------------------------------------------------------


def test_more_cases_than_a_dataset_may_hold_are_refused_in_bounds(dags, capsys):
    case = "  - {id: c%d, inputs: {ticket: t}, expect: {classify: {priority: {equals: low}}}}\n"
    path = _dataset(dags, "dataset: triage\ncases:\n" + "".join(case % i for i in range(MAX_CASES + 1)))
    status, out = _run(capsys)
    assert status == 1
    assert out[0] == (
        f"{path}:2: cases: List should have at most {MAX_CASES} items after validation, not {MAX_CASES + 1} "
        "(fix: use fewer entries)"
    )


@pytest.mark.parametrize(
    ("cases", "big"), [(100_000, ""), (1, "x" * 10_000_000)], ids=["100k cases", "10 MB value"]
)
def test_a_dataset_over_the_file_bound_is_refused_before_it_is_read(dags, capsys, cases, big):
    case = "  - {id: c%d, inputs: {ticket: t}, expect: {classify: {priority: {equals: low%s}}}}\n"
    path = _dataset(dags, "dataset: triage\ncases:\n" + "".join(case % (i, big) for i in range(cases)))
    size = (dags / "evals" / "triage.yaml").stat().st_size
    status, out = _run(capsys)
    assert status == 1
    bound = limits().max_template_bytes
    assert out[0] == (
        f"{path}: the dataset is {size:,} bytes, over the limit of {bound:,} bytes for one file (fix: keep a "
        f"dataset's cases small (at most {MAX_CASES:,}; a recorded output holds what the step needs, not a whole "
        f"export), or raise the limit: BATON_MAX_TEMPLATE_BYTES={2 * bound})"
    )


def test_deeply_nested_inputs_are_refused_by_the_reader(dags, capsys):
    nested = "[" * 5_000 + "]" * 5_000
    path = _dataset(dags, GOOD.replace('{ticket: "Site down"}', f"{{ticket: {nested}}}"))
    status, out = _run(capsys)
    assert status == 1
    depth = limits().max_yaml_depth
    assert out[0].startswith(f"{path}:16: cases[1].inputs.ticket[0][0]"), out[0][:300]
    assert out[0].endswith(
        f": nesting deeper than {depth} levels of mappings and lists (fix: flatten this part of the file, or "
        f"raise the limit: BATON_MAX_YAML_DEPTH={2 * depth})"
    ), out[0][-300:]


def test_a_dataset_that_is_not_a_mapping_or_not_yaml_is_one_located_error(dags, capsys):
    listed = _dataset(dags, "- just\n- a list\n")
    status, out = _run(capsys)
    assert status == 1
    assert out[0] == (
        f"{listed}: expected a mapping at the top, got list (fix: start the file with 'dataset: <workflow>' "
        "and 'cases:')"
    )
    broken = _dataset(dags, "dataset: [unclosed\n")
    status, out = _run(capsys)
    assert status == 1 and out[0].startswith(f"{broken}:"), out[0]


def test_an_unknown_evaluator_and_a_judge_the_roster_lacks_are_located_with_their_fix(dags, capsys):
    path = _dataset(
        dags,
        """\
dataset: triage
judge: oracle
cases:
  - id: one
    inputs: {ticket: t}
    recorded: {load: {count: 0, tickets: []}}
    expect:
      classify:
        tags: {evaluator: no_such_check, args: {limit: 3}}
        note: {rubric: 'Says "refund"', evaluator: word_count, args: {max: 40}}
""",
    )
    status, out = _run(capsys)
    assert status == 1
    known = "no_contact_details, word_count"  # the demo's (BATON_EXTENSIONS)
    assert out == [
        f"{path}:2: judge: the roster has no agent 'oracle' to judge the rubrics (fix: name one of its LLM agents: "
        "analyst, assistant)",
        f"{path}:9: cases[0].expect.classify.tags.evaluator: unknown evaluator 'no_such_check' (fix: register it "
        f"with @evaluator in an extension module (BATON_EXTENSIONS); known: {known})",
        "2 template(s) checked, 0 with errors, 2 error(s) in all; evals/triage.yaml has errors",
    ]


def test_a_rubric_with_no_judge_and_args_with_no_evaluator_are_refused(dags, capsys):
    path = _dataset(
        dags,
        """\
dataset: triage
cases:
  - id: one
    inputs: {ticket: t}
    recorded: {load: {count: 0, tickets: []}}
    expect:
      classify:
        note: {rubric: Is polite., args: {max: 40}}
""",
    )
    status, out = _run(capsys)
    assert status == 1
    assert out[0].startswith(f"{path}:8: cases[0].expect.classify.note: ")
    assert "'args' are an evaluator's: name it with 'evaluator: <name>', or remove 'args'" in out[0]
    _dataset(dags, (Path(path).read_text()).replace(", args: {max: 40}", ""))
    status, out = _run(capsys)
    assert status == 1
    assert (
        "case 'one' checks classify.note with a rubric and nothing judges it: add 'judge: <an LLM agent of the "
        "roster>' to the dataset" in out[0]
    )


def test_a_trigger_for_a_workflow_that_has_none_is_located(dags, capsys):
    path = _dataset(dags, GOOD.replace("  - id: outage\n", "  - id: outage\n    trigger: {rows: []}\n"))
    status, out = _run(capsys)
    assert (status, out[0]) == (
        1,
        f"{path}:16: cases[1].trigger: the workflow has no trigger: nothing gives its runs a payload (fix: remove "
        "'trigger')",
    )


def test_every_bundled_workflow_has_a_dataset_of_ten_cases_or_more_that_fits_it(dags_folder):
    # Each passes with the offline model too: baton eval runs daily_operations' and support_triage's in the suite
    # (tests/cli/test_eval.py); every one of them was run so before it was committed.
    import baton.skills  # noqa: F401  (Baton's own skills, which two bundled templates name, as validate imports them)
    from baton.spec.evals import load_dataset
    from baton.spec.evals_checks import dataset_issues
    from baton.spec.loading import load_roster, load_workflow

    roster = load_roster(dags_folder / "agents.yaml")
    workflows = sorted((dags_folder / "workflows").glob("*.yaml"))
    assert len(workflows) == 13
    for path in workflows:
        dataset, source = load_dataset(dags_folder / "evals" / path.name)
        assert len(dataset.cases) >= 10, path.name
        assert dataset_issues(dataset, source, load_workflow(path, roster)) == [], path.name


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            "{evaluator: word_count, args: {" + ", ".join(f"k{i}: {i}" for i in range(51)) + "}}",
            "cases[0].expect.classify.note.args: Dictionary should have at most 50 items after validation, not more "
            "(fix: use fewer entries)",
        ),
        (
            "{rubric: '" + "r" * 2001 + "'}",
            "cases[0].expect.classify.note.rubric: String should have at most 2000",
        ),
        ("{rubric: ''}", "cases[0].expect.classify.note.rubric: String should have at least 1 character"),
        (
            "{evaluator: '../../os.system'}",
            "cases[0].expect.classify.note.evaluator: String should match pattern",
        ),
        (
            "{evaluator: [word_count]}",
            "cases[0].expect.classify.note.evaluator: Input should be a valid string",
        ),
        (
            "{rubric: {nested: {deeper: x}}}",
            "cases[0].expect.classify.note.rubric: Input should be a valid string",
        ),
    ],
    ids=["51-args", "long-rubric", "empty-rubric", "path-evaluator", "list-evaluator", "nested-rubric"],
)
def test_an_evaluator_or_rubric_out_of_bounds_is_one_located_error(dags, capsys, check, message):
    text = (
        "dataset: triage\njudge: assistant\ncases:\n  - id: one\n    inputs: {ticket: t}\n"
        f"    recorded: {{load: {{count: 0, tickets: []}}}}\n    expect:\n      classify:\n        note: {check}\n"
    )
    path = _dataset(dags, text)
    status, out = _run(capsys)
    assert status == 1
    assert out[0].startswith(f"{path}:9: {message}"), out[0][:400]
    assert out[-1].endswith("1 error(s) in all; evals/triage.yaml has errors")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('judge: "robert\'); drop table agents;--"', "judge: String should match pattern"),
        ("judge: [assistant]", "judge: Input should be a valid string"),
    ],
    ids=["sql-judge", "list-judge"],
)
def test_a_judge_name_that_is_no_agent_name_is_refused_where_it_is_written(dags, capsys, line, message):
    path = _dataset(dags, GOOD.replace("tolerance: 0.05\n", f"tolerance: 0.05\n{line}\n"))
    status, out = _run(capsys)
    assert (status, out[0].startswith(f"{path}:4: {message}")) == (1, True), out[0][:400]


@pytest.mark.parametrize("trigger", ["text", "[1, 2]", "42"], ids=["text", "list", "number"])
def test_a_trigger_that_is_no_mapping_is_one_located_error(dags, capsys, trigger):
    path = _dataset(dags, GOOD.replace("  - id: outage\n", f"  - id: outage\n    trigger: {trigger}\n"))
    status, out = _run(capsys)
    assert (
        status,
        out[0].startswith(f"{path}:16: cases[1].trigger: Input should be a valid dictionary"),
    ) == (
        1,
        True,
    ), out[0][:400]
