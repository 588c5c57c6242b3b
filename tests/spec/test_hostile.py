"""The hostile corpus (issue 15): costly, crashing, silently accepted and mislocated templates, each refused
at once with its own located message; one bad file never hides the others."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from baton.cli import main as baton
from baton.errors import TemplateError
from baton.spec import load_roster, load_workflow
from bench import hostile
from tests.counting import python_lines

HOSTILE = Path(__file__).parent / "hostile"
PRIVATE_FIX = "(fix: templates read values; they never reach Python internals or change data)"

# file -> every issue it must produce, exactly.
EXPECTED = {
    "duplicate_steps.yaml": [
        "duplicate_steps.yaml:8: steps: duplicate key 'steps' (first at line 5): YAML would keep only the last "
        "one (fix: remove one of the two, or merge them into one)",
        "duplicate_steps.yaml:11: steps[0].with.region: duplicate key 'region' (first at line 11): YAML would "
        "keep only the last one (fix: remove one of the two, or merge them into one)",
    ],
    "unclosed_quote.yaml": [
        "unclosed_quote.yaml:3: YAML syntax error: found unexpected end of stream while scanning a quoted scalar "
        "that starts here (noticed at line 11) (fix: close or fix what opens at this line)"
    ],
    "unclosed_mapping.yaml": [
        "unclosed_mapping.yaml:6: YAML syntax error: did not find expected ',' or '}' while parsing a flow "
        "mapping that starts here (noticed at line 7) (fix: close or fix what opens at this line)"
    ],
    "sandbox_escape.yaml": [
        f"sandbox_escape.yaml:10: steps[0].instruction: unsafe Jinja: it reads the private attribute '__mro__' "
        f"{PRIVATE_FIX}",
        f"sandbox_escape.yaml:10: steps[0].instruction: unsafe Jinja: it reads the private attribute "
        f"'__class__' {PRIVATE_FIX}",
        f"sandbox_escape.yaml:14: steps[1].instruction: unsafe Jinja: it reads the private attribute "
        f"'__globals__' {PRIVATE_FIX}",
        f"sandbox_escape.yaml:18: steps[2].instruction: unsafe Jinja: it names the private attribute "
        f"'__init__' in the filter attr {PRIVATE_FIX}",
        f"sandbox_escape.yaml:22: steps[3].with.x: unsafe Jinja: it reads the private item '_private' "
        f"{PRIVATE_FIX}",
    ],
    "mutating.yaml": [
        f"mutating.yaml:10: steps[0].instruction: unsafe Jinja: it calls 'append()', which would change the "
        f"value it is called on {PRIVATE_FIX}",
        f"mutating.yaml:14: steps[1].when: unsafe Jinja: it calls 'update()', which would change the value it "
        f"is called on {PRIVATE_FIX}",
    ],
    "sensor_jinja.yaml": [
        "sensor_jinja.yaml:13: trigger.sensor.sql_threshold.threshold: Jinja syntax error: unexpected '}', "
        "expected ')' (fix: fix the {{ ... }} expression)",
        "sensor_jinja.yaml:12: trigger.sensor.sql_threshold.params.month: references unknown input 'mnth' "
        "(fix: known: target)",
    ],
}


@pytest.fixture(scope="module")
def roster(dags_folder):
    return load_roster(dags_folder / "agents.yaml")


def _issues(path: Path, roster, root: Path) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        load_workflow(path, roster, root=root)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_hostile_template_gets_its_exact_located_messages(name, roster):
    assert _issues(HOSTILE / name, roster, HOSTILE) == EXPECTED[name]


def test_a_file_ending_in_capital_yaml_is_a_template_and_hidden_files_are_not(tmp_path, roster):
    shutil.copy(HOSTILE / "upper_extension.YAML", tmp_path / "upper_extension.YAML")
    (tmp_path / ".#upper_extension.yaml").write_text("an editor's lock file")
    from baton.spec.loading import template_files

    assert [p.name for p in template_files(tmp_path)] == ["upper_extension.YAML"]
    assert load_workflow(tmp_path / "upper_extension.YAML", roster).workflow == "upper_extension"


def test_a_byte_that_is_not_utf8_is_located_and_the_file_alone_fails(
    tmp_path, roster, capsys, dags_folder, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_BATON_BUSINESS", f"sqlite:///{tmp_path / 'business.db'}")  # no warning
    text = (HOSTILE / "upper_extension.YAML").read_bytes().replace(b"upper_extension", b"latin")
    (tmp_path / "latin.yaml").write_bytes(text.replace(b"A template", b"A caf\xe9 template"))
    shutil.copy(dags_folder / "workflows" / "lead_qualification.yaml", tmp_path)
    assert _issues(tmp_path / "latin.yaml", roster, tmp_path) == [
        "latin.yaml:3: the file is not UTF-8 text: byte 0xe9 at column 19 cannot be decoded "
        "(fix: save the file as UTF-8)"
    ]
    assert baton(["validate", str(tmp_path), "--agents", str(dags_folder / "agents.yaml")]) == 1
    out = capsys.readouterr().out
    assert out.strip().endswith("2 template(s) checked, 1 with errors, 1 error(s) in all")


# --- class 1: cost. The bench's worst cases, at full size, each with its exact answer -----------------


def _built(case: hostile.Case, folder: Path, scale: float = 1.0) -> Path:
    path = folder / f"{case.name}.yaml"
    path.write_text(case.build(scale), encoding="utf-8")
    return path


COST = {case.name: case for case in hostile.CASES if case.klass == "1 cost"}


def test_a_template_with_errors_in_every_step_lists_them_all_at_a_cost_linear_in_the_steps(tmp_path, roster):
    """A bound on runaway cost, counted instead of timed: the Python lines validation runs (Baton's and the
    YAML parser's) for 1,000 broken steps are about twice those for 500 (a file this size takes the full
    reading path instead of the quick one, which costs a few percent more), not four times."""
    path = _built(COST["errors_everywhere"], tmp_path)
    issues = _issues(path, roster, tmp_path)
    (tmp_path / "half").mkdir()
    half = _built(COST["errors_everywhere"], tmp_path / "half", scale=0.5)
    work = [python_lines(lambda p=p: _issues(p, roster, p.parent)) for p in (half, path)]
    assert work[1] < 2.5 * work[0], work
    assert len(issues) == 1000
    assert (
        issues[0]
        == "errors_everywhere.yaml:7: steps[0].skil: unknown key 'skil' (fix: did you mean 'skill'?)"
    )
    assert issues[-1] == (
        "errors_everywhere.yaml:3004: steps[999].skil: unknown key 'skil' (fix: did you mean 'skill'?)"
    )


def test_more_steps_than_the_limit_are_refused_before_anything_walks_them(tmp_path, roster):
    assert _issues(_built(COST["too_many_steps"], tmp_path), roster, tmp_path) == [
        "too_many_steps.yaml:5: steps: 5,000 steps, over the limit of 1,000 for one workflow (fix: split it into "
        "workflows that trigger each other (emits / trigger.asset), or raise the limit: BATON_MAX_STEPS=2000)"
    ]


def test_the_step_limit_is_raised_by_its_environment_variable(tmp_path, roster, monkeypatch):
    monkeypatch.setenv("BATON_MAX_STEPS", "6000")
    workflow = load_workflow(_built(COST["too_many_steps"], tmp_path), roster)
    assert len(workflow.steps) == 5000


def test_a_long_chain_listed_last_first_validates_plans_and_builds(tmp_path, roster):
    from baton.compile.build import build_dag
    from baton.plan import plan_workflow

    workflow = load_workflow(_built(COST["reverse_chain"], tmp_path), roster)
    dag = build_dag(plan_workflow(workflow, roster))
    assert len(dag.task_ids) == 1000
    assert dag.get_task("s0").upstream_task_ids == {"s1"}
    assert dag.get_task("s999").upstream_task_ids == set()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "alias_bomb_with",
            "alias_bomb_with.yaml:15: more than 200,000 values once its aliases (*name) are expanded (fix: write "
            "the data out instead of repeating aliases of aliases, or raise the limit: BATON_MAX_YAML_NODES=400000)",
        ),
        (
            "alias_bomb_default",
            "alias_bomb_default.yaml:14: more than 200,000 values once its aliases (*name) are expanded (fix: "
            "write the data out instead of repeating aliases of aliases, or raise the limit: "
            "BATON_MAX_YAML_NODES=400000)",
        ),
        (
            "deep_nesting",
            "deep_nesting.yaml:9: steps[0].with.json"
            + "[0]" * 46
            + ": nesting deeper than 50 levels of mappings and lists (fix: flatten this part of the file, or raise "
            "the limit: BATON_MAX_YAML_DEPTH=100)",
        ),
        (
            "deep_jinja",
            "deep_jinja.yaml:8: steps[0].instruction: Jinja nested deeper than 40 levels (parentheses, filters, "
            "blocks) (fix: split the expression with {% set %}, or raise the limit: BATON_MAX_JINJA_DEPTH=80)",
        ),
        (
            "huge_file",
            "huge_file.yaml: the file is 5,000,137 bytes, over the limit of 1,000,000 bytes for one template (fix: "
            "split it into smaller workflows, or raise the limit: BATON_MAX_TEMPLATE_BYTES=2000000)",
        ),
    ],
)
def test_each_costly_template_is_refused_with_its_limit(name, expected, tmp_path, roster):
    assert _issues(_built(COST[name], tmp_path), roster, tmp_path) == [expected]


def test_a_long_jinja_attribute_chain_is_refused_by_depth(tmp_path, roster):
    text = (HOSTILE / "upper_extension.YAML").read_text().replace("upper_extension", "chain")
    text += "    instruction: '{{ inputs" + ".a" * 3000 + " }}'\n"
    (tmp_path / "chain.yaml").write_text(text)
    assert _issues(tmp_path / "chain.yaml", roster, tmp_path) == [
        "chain.yaml:8: steps[0].instruction: Jinja nested deeper than 40 levels (parentheses, filters, blocks) "
        "(fix: split the expression with {% set %}, or raise the limit: BATON_MAX_JINJA_DEPTH=80)"
    ]


# --- class 2: one file never hides the rest ------------------------------------------------------------


def test_baton_validate_reports_each_file_as_it_goes_and_a_crash_is_that_files_error(
    tmp_path, capsys, dags_folder, monkeypatch
):
    for case in COST.values():
        _built(case, tmp_path)
    for path in HOSTILE.iterdir():
        shutil.copy(path, tmp_path)
    shutil.copy(dags_folder / "workflows" / "lead_qualification.yaml", tmp_path)
    import baton.spec.checks as checks

    real = checks._check_schedule

    def crash(workflow):  # a Baton bug while checking one file: planted, as a bug would be
        if workflow.workflow == "upper_extension":
            raise RuntimeError("planted")
        return real(workflow)

    monkeypatch.setattr(checks, "_check_schedule", crash)
    assert (
        baton(["validate", str(tmp_path), "--format", "json", "--agents", str(dags_folder / "agents.yaml")])
        == 1
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    files = {Path(line["file"]).name: line for line in lines if line.get("file", "(").endswith(("l", "L"))}
    assert files["lead_qualification.yaml"]["ok"] is True
    assert files["reverse_chain.yaml"]["ok"] is True
    assert files["upper_extension.YAML"]["issues"][0]["text"].endswith(
        "upper_extension.YAML: RuntimeError: planted (fix: this is a Baton bug; please report it with the file)"
    )
    broken = {name for name, line in files.items() if not line["ok"]}
    assert broken == {
        *EXPECTED,
        *(f"{name}.yaml" for name in COST if name != "reverse_chain"),
        "upper_extension.YAML",
    }
    assert lines[-1]["summary"]["checked"] == len(files)


def test_a_roster_with_a_duplicated_agent_fails_only_the_workflows_naming_it(tmp_path, dags_folder, capsys):
    roster = tmp_path / "agents.yaml"
    roster.write_text(
        "agents:\n  - {name: twin, skill: score_leads}\n  - {name: twin, skill: score_leads}\n"
        "  - {name: solo, skill: score_leads}\n"
    )
    (tmp_path / "wf").mkdir()
    for name, agent in (("uses_twin", "twin"), ("uses_solo", "solo")):
        (tmp_path / "wf" / f"{name}.yaml").write_text(
            f"workflow: {name}\nversion: 1\ndescription: d\nowner: o\nsteps:\n  - id: a\n    agent: {agent}\n"
        )
    assert baton(["validate", str(tmp_path / "wf"), "--agents", str(roster)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{roster}:2: agents[0].name: duplicate agent name 'twin' (also at agents[1]) (fix: give every agent its "
        "own name; the workflows naming it fail until then)",
        f"{roster}:3: agents[1].name: duplicate agent name 'twin' (also at agents[0]) (fix: give every agent its "
        "own name; the workflows naming it fail until then)",
        f"{tmp_path / 'wf' / 'uses_twin.yaml'}:7: steps[0].agent: agent 'twin' is broken in the roster "
        "(agents[0].name: duplicate agent name 'twin' (also at agents[1])) (fix: fix its entry in "
        "dags/agents.yaml (baton validate lists its errors))",
        "2 template(s) checked, 1 with errors, 3 error(s) in all; the roster has errors",
    ]


# --- class 4: rendering at run time is bounded and read-only ------------------------------------------


RENDERING = [case for case in hostile.CASES if case.render]


@pytest.mark.parametrize("case", RENDERING, ids=[case.name for case in RENDERING])
def test_each_costly_rendering_stops_at_its_limit(case):
    from baton import templating

    with pytest.raises(templating.RenderLimit, match=case.expect):
        templating.render(case.build(1.0), {"inputs": {}, "steps": {}, "run": {}, "context": {}})


class _Clock:
    """The rendering's clock, of the test's own: each reading is 1/16 s after the one before, counted."""

    def __init__(self) -> None:
        self.readings = 0

    def monotonic(self) -> float:
        self.readings += 1
        return 1000.0 + self.readings / 16


def test_the_render_time_limit_stops_a_slow_rendering(monkeypatch):
    """On a clock of the test's own (not the wall clock of a loaded machine), the loops' looks at it stop
    the rendering at the first reading past its start plus the limit: read at the start (1000.0625), then
    as the loops go, it stops at the fourth look (1000.3125, past 1000.2625)."""
    from baton import templating

    clock = _Clock()
    for module in ("baton.templating.render", "baton.templating.sandbox"):
        monkeypatch.setattr(sys.modules[module], "time", clock)
    monkeypatch.setenv("BATON_MAX_RENDER_SECONDS", "0.2")
    monkeypatch.setenv("BATON_MAX_RENDER_ITERATIONS", "100000000")
    with pytest.raises(templating.RenderLimit) as caught:
        templating.render(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", {}
        )
    assert str(caught.value) == (
        "rendering took longer than 0.2 s; simplify the template, or raise the limit: BATON_MAX_RENDER_SECONDS=0.4"
    )
    assert clock.readings == 5


@pytest.mark.parametrize(
    "source",
    [
        "{{ inputs.tags.append('x') }}",
        "{{ inputs.flags.update({'admin': true}) }}",
        "{{ steps.a.rows.clear() }}",
        "{% set _ = inputs.tags.pop() %}",
        "{{ steps.a.pop('qualified') }}",
    ],
)
def test_rendering_cannot_change_the_inputs_or_an_upstream_output(source):
    from jinja2.exceptions import SecurityError

    from baton import templating

    scope = {"inputs": {"tags": ["a"], "flags": {}}, "steps": {"a": {"qualified": 3, "rows": [1]}}}
    before = json.dumps(scope, sort_keys=True)
    with pytest.raises(SecurityError, match=r"access to attribute '\w+' of '(list|dict)' object is unsafe"):
        templating.render(source, scope)
    assert json.dumps(scope, sort_keys=True) == before


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'x' * 10**9 }}", r"a repetition \(\*\) would be 1,000,000,000 characters"),
        ("{{ 'a' | center(1000000000) }}", r"the filter center with the argument 1,000,000,000"),
        ("{{ '%999999999d' % 1 }}", r"a % format with the argument 999,999,999"),
        ("{{ '{:>999999999}'.format(1) }}", r"str\.format\(\) with the argument 999,999,999"),
        ("{{ ('a' * 1000).replace('a', 'b' * 10000) }}", r"str\.replace\(\) would be 10,000,000"),
        ("{{ (range(1000) | list) * 100000 }}", r"a repetition \(\*\) would be 100,000,000"),
        ("{{ lipsum(100000000) }}", r"generate_lorem_ipsum\(\) with the argument 100,000,000"),
    ],
)
def test_an_operation_that_would_make_a_huge_value_is_refused_before_it_runs(source, message):
    from baton import templating

    with pytest.raises(templating.RenderLimit, match=message):
        templating.render(source, {})


# One case of each path of the bench's child (a valid template whose DAG is built, a refused one, a
# rendering), tiny: each child imports Baton and Airflow (about 4.5 s of CPU here), and every case's answer at its
# full size is asserted in this process above.
SMOKE_CASES = ["reverse_chain", "errors_everywhere", "render_output"]


def _bench_hostile(*args: str, env: dict[str, str] | None = None):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "bench/hostile.py", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_bench_hostile_smoke_run_answers_its_cases_and_prints_its_headline(tmp_path):
    import os

    cases = (arg for name in SMOKE_CASES for arg in ("--case", name))
    done = _bench_hostile("--scale", "0.01", *cases, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # each child's template folder is removed (two were left per run)
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("baseline (lead_qualification)") and "valid, DAG built" in lines[0], (
        done.stdout
    )
    ran = [line.split()[0] for line in lines[1:-1]]
    assert ran == [case.name for case in hostile.CASES if case.name in SMOKE_CASES], done.stdout
    assert all(" ok" in line for line in lines[1:-1]), done.stdout
    assert re.fullmatch(r"worst case: \d+\.\d s, \d+ MB", lines[-1]), done.stdout


def test_bench_hostile_refuses_a_case_it_does_not_have():
    done = _bench_hostile("--case", "reverse_chain", "--case", "no_such_case")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--case: no case named no_such_case (the cases: errors_everywhere, " in done.stderr
