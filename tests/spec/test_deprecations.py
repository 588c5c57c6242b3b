"""The template language's deprecations: every form an earlier language accepted and today's spells
differently is still read (translated, with a located warning) until the version that removes it."""

from __future__ import annotations

import json
import shutil
import tomllib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from baton.cli import main as baton
from baton.errors import TemplateError
from baton.spec import (
    DEPRECATIONS,
    LANGUAGE_VERSION,
    BatonDeprecationWarning,
    load_roster,
    load_workflow,
    read_roster,
    read_workflow,
)
from tests.conftest import ROOT

LEGACY = Path(__file__).parent / "legacy"
WORKFLOWS = LEGACY / "workflows"
ROSTER = ROOT / "dags" / "agents.yaml"

FAN_OUT = (
    "deprecated since template language 0.2, refused from Baton 0.3: a fan-out's option on the step, beside "
    "'for_each: <step>.<list>' (language 0.1); it goes under for_each"
)
EXPECTED = {
    "fan_out_options.yaml": [
        (18, "steps[1].concurrency", f"{FAN_OUT} (fix: write for_each: {{over: plan.tasks, concurrency: 2}}"),
        (19, "steps[1].batch_size", f"{FAN_OUT} (fix: write for_each: {{over: plan.tasks, batch_size: 50}}"),
        (
            20,
            "steps[1].partial_failure",
            f"{FAN_OUT} (fix: write for_each: {{over: plan.tasks, partial_failure: continue}}",
        ),
    ],
    "partial_failure_default.yaml": [
        (
            11,
            "steps[0].partial_failure",
            "deprecated since template language 0.2, refused from Baton 0.3: 'partial_failure: fail' on a step "
            "without for_each (language 0.1: the default, written out); only a fan-out has partial_failure (fix: "
            "remove it (fail is the default of a fan-out)",
        ),
    ],
    "parallel_feature_delivery.yaml": [
        (
            58,
            "steps[1].concurrency",
            f"{FAN_OUT} (fix: write for_each: {{over: decompose.subtasks, concurrency: 3}}",
        ),
        (
            59,
            "steps[1].partial_failure",
            f"{FAN_OUT} (fix: write for_each: {{over: decompose.subtasks, partial_failure: escalate}}",
        ),
    ],
}


@pytest.fixture(scope="module")
def roster():
    return load_roster(ROSTER)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_old_form_is_read_with_a_located_notice(name, roster):
    path = WORKFLOWS / name
    _, notices = read_workflow(path, roster)
    assert [(n.line, n.path) for n in notices] == [(line, key) for line, key, _ in EXPECTED[name]]
    for notice, (line, key, text) in zip(notices, EXPECTED[name], strict=True):
        assert str(notice).startswith(f"{path}:{line}: {key}: {text}; or run `baton migrate {path}`)"), notice


def test_old_forms_mean_what_todays_forms_say(roster):
    with pytest.warns(BatonDeprecationWarning):
        old = load_workflow(WORKFLOWS / "fan_out_options.yaml", roster)
    step = old.steps[1]
    assert (
        step.source,
        step.for_each.concurrency,
        step.for_each.batch_size,
        step.for_each.partial_failure,
    ) == (
        ("plan", "tasks"),
        2,
        50,
        "continue",
    )
    assert old.steps[1].model_fields_set >= {"for_each"}
    assert read_workflow(WORKFLOWS / "partial_failure_default.yaml", roster)[0].steps[0].for_each is None


def test_load_workflow_warns_with_a_baton_deprecation_warning_at_the_templates_line(roster):
    path = WORKFLOWS / "partial_failure_default.yaml"
    with pytest.warns(BatonDeprecationWarning) as caught:
        load_workflow(path, roster)
    assert [(w.filename, w.lineno) for w in caught] == [(str(path), 11)]
    assert str(caught[0].message).startswith(
        "steps[0].partial_failure: deprecated since template language 0.2"
    )
    assert issubclass(BatonDeprecationWarning, DeprecationWarning)


def test_warnings_show_although_python_hides_deprecation_warnings_by_default(roster):
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("ignore", DeprecationWarning)  # Python's default outside __main__
        load_workflow(WORKFLOWS / "partial_failure_default.yaml", roster)
    assert [w.category for w in caught] == [BatonDeprecationWarning]


def test_todays_forms_and_the_first_roster_read_without_notices():
    roster, notices = read_roster(LEGACY / "agents.yaml")  # the roster of 0.1.0 as first committed
    assert (notices, roster.issues, len(roster.agents)) == ([], [], 5)
    full, _ = read_roster(ROSTER)
    for path in sorted((ROOT / "dags" / "workflows").glob("*.yaml")):
        assert read_workflow(path, full)[1] == [], path


@pytest.mark.parametrize(
    ("step", "message"),
    [
        # Language 0.1 refused these too: they stay refused with today's message, not translated.
        (
            {"concurrency": 4},
            "steps[0].concurrency: unknown key 'concurrency' (fix: it belongs to the fan-out",
        ),
        ({"partial_failure": "continue"}, "steps[0].partial_failure: unknown key 'partial_failure'"),
        # A mapping for_each is today's form: an option beside it is today's error.
        (
            {"for_each": {"over": "plan.tasks"}, "concurrency": 2},
            "steps[0].concurrency: unknown key 'concurrency' (fix: it belongs to the fan-out",
        ),
    ],
)
def test_what_no_language_accepted_is_not_translated(tmp_path, step, message, roster):
    path = tmp_path / "t.yaml"
    body = {"id": "a", "agent": "strategy_strategic_planner", **step}
    path.write_text(
        "workflow: t\nversion: 1\ndescription: d\nowner: o\nsteps:\n  - " + json.dumps(body) + "\n"
    )
    with pytest.raises(TemplateError) as error:
        read_workflow(path, roster)
    assert message in str(error.value)


def test_validate_prints_each_notice_and_exits_0(capsys):
    path = WORKFLOWS / "fan_out_options.yaml"
    assert baton(["validate", str(path), "--agents", str(ROSTER)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{path}:18: warning: steps[1].concurrency: {FAN_OUT} (fix: write for_each: {{over: plan.tasks, "
        f"concurrency: 2}}; or run `baton migrate {path}`)"
    )
    assert out[-1] == "1 template(s) checked, 0 with errors, 0 error(s) in all, 3 warning(s)"


def test_a_template_with_old_forms_warns_in_the_dag_files_import_warnings(tmp_path, monkeypatch):
    """A real DagBag parses a dags folder whose template uses old forms: the DAG loads, and the warning is
    among the import warnings Airflow records for the DAG file (DagBag.captured_warnings), on every
    parse (such a template is not kept in the validation cache)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setenv("BATON_SPEC_CACHE", str(tmp_path / "cache"))
    dags = tmp_path / "dags"
    (dags / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "baton_workflows.py", dags)
    shutil.copy(ROOT / "dags" / "baton_template_errors.py", dags)  # checks, builds nothing: no warning
    shutil.copy(ROSTER, dags / "agents.yaml")
    shutil.copy(WORKFLOWS / "fan_out_options.yaml", dags / "workflows")
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the DagBag's re-emission of what it captured
            bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags, bundle_name="legacy")
        assert "fan_out_options" in bag.dag_ids and not bag.import_errors
        assert [Path(file).name for file in bag.captured_warnings] == ["baton_workflows.py"]
        (captured,) = bag.captured_warnings.values()
        ours = [w for w in captured if "BatonDeprecationWarning" in w]
        assert ours[0] == (
            "workflows/fan_out_options.yaml:18: baton.spec.deprecations.BatonDeprecationWarning: "
            f"steps[1].concurrency: {FAN_OUT} (fix: write for_each: {{over: plan.tasks, concurrency: 2}}; or "
            "run `baton migrate workflows/fan_out_options.yaml`)"
        )
        assert len(ours) == 3


def _version() -> tuple[int, int]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    major, minor, _ = project["version"].split(".")
    return int(major), int(minor)


def test_the_package_speaks_the_language_of_its_minor_version():
    assert "{}.{}".format(*_version()) == LANGUAGE_VERSION, (
        "pyproject.toml's version and baton.spec.LANGUAGE_VERSION disagree: the language is the package's "
        "major.minor (set LANGUAGE_VERSION in include/baton/spec/deprecations.py)"
    )


@pytest.mark.parametrize("deprecation", DEPRECATIONS, ids=lambda d: d.name)
def test_a_deprecation_is_removed_in_the_version_it_names(deprecation):
    removed = tuple(int(part) for part in deprecation.removed_in.split("."))
    assert _version() < removed, (
        f"{deprecation.name} is to be refused from Baton {deprecation.removed_in}, and this is "
        f"{'.'.join(map(str, _version()))}: remove its entry from DEPRECATIONS (and its fixture from "
        "tests/spec/legacy), and record it under ### Removed in CHANGELOG.md"
    )
    deprecated = tuple(int(part) for part in deprecation.deprecated_in.split("."))
    assert deprecated <= _version() and removed[1] - deprecated[1] == 1  # one minor version of deprecation


def test_an_error_in_a_translated_form_is_told_where_the_template_wrote_it(tmp_path, roster):
    path = tmp_path / "over.yaml"
    old = (WORKFLOWS / "fan_out_options.yaml").read_text().replace("fan_out_options", "over")
    path.write_text(old.replace("concurrency: 2", "concurrency: 999").replace("continue", "sometimes"))
    with pytest.raises(TemplateError) as error:
        read_workflow(path, roster)
    assert [str(issue) for issue in error.value.issues] == [
        f"{path}:18: steps[1].concurrency: Input should be less than or equal to 256 (fix: use a smaller value)",
        f"{path}:20: steps[1].partial_failure: Input should be 'fail', 'continue' or 'escalate' (fix: use one of "
        "the allowed values)",
    ]
    path.write_text(old.replace("concurrency: 2", "concurrency: 8"))
    with pytest.raises(
        TemplateError, match=r"over\.yaml:18: steps\[1\]\.concurrency: concurrency 8 exceeds agent"
    ):
        read_workflow(path, roster)


def test_a_filter_that_names_the_warning_decides(roster):
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("ignore", category=BatonDeprecationWarning)
        load_workflow(WORKFLOWS / "partial_failure_default.yaml", roster)
    assert caught == []
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=BatonDeprecationWarning)
        with pytest.raises(BatonDeprecationWarning, match="steps\\[0\\]\\.partial_failure: deprecated"):
            load_workflow(WORKFLOWS / "partial_failure_default.yaml", roster)


@pytest.mark.parametrize(
    ("step", "issue"),
    [
        # not a for_each of language 0.1 (a list): nothing translated, today's messages
        (
            {"for_each": ["plan"], "concurrency": 2},
            "steps[1].concurrency: unknown key 'concurrency' (fix: it belongs to the fan-out: for_each: {over: "
            "<step>.<list>, concurrency: N})",
        ),
        # translated, and refused where the template wrote it
        (
            {"for_each": "plan.tasks", "concurrency": {"a": [1, {"b": 2}]}},
            "steps[1].concurrency: Input should be a valid integer (fix: use a whole number)",
        ),
        (
            {"for_each": "plan.tasks", "concurrency": "9" * 5000},
            "steps[1].concurrency: Unable to parse input string as an integer, exceeded maximum size",
        ),
    ],
)
def test_hostile_old_forms_are_refused_where_written(tmp_path, roster, step, issue):
    path = tmp_path / "t.yaml"
    body = {"id": "a", "agent": "strategy_strategic_planner", **step}
    plan = "  - id: plan\n    agent: strategy_strategic_planner\n    output: {tasks: {type: array, items: string}}\n"
    path.write_text(
        "workflow: t\nversion: 1\ndescription: d\nowner: o\nsteps:\n" + plan + f"  - {json.dumps(body)}\n"
    )
    with pytest.raises(TemplateError) as error:
        read_workflow(path, roster)
    assert f"{path}:9: {issue}" in [str(found) for found in error.value.issues]


def test_many_threads_read_old_forms_at_once(roster):
    """Each thread translates its own copy of the data: all get today's workflow, and every warning is
    raised (a thread's exception is re-raised here by result())."""
    path = WORKFLOWS / "fan_out_options.yaml"
    with warnings.catch_warnings(record=True) as caught, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(load_workflow, path, roster) for _ in range(64)]
        loaded = [future.result() for future in futures]
    assert {step.for_each.concurrency for workflow in loaded for step in workflow.steps if step.for_each} == {
        2
    }
    assert len([w for w in caught if w.category is BatonDeprecationWarning]) == 64 * 3
