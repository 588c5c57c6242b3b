"""A template that rolls out its next version: both versions in one DAG (the new one in its task group, a
``baton_version`` task before both), a run on exactly one of them in a real ``dag.test()``; and every way a
rollout can be wrong named in the errors file while the current version's DAG still loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import BundleDagBag

from baton.cli.validate import validate
from baton.compile.loader import compile_folder
from baton.events import EventStore
from tests.conftest import FIXTURE_DAGS, FIXTURES, run_dag_test_in_subprocess

STABLE = ["draft", "review"]
CANARY = ["v2.draft", "v2.polish"]


@pytest.fixture
def folder(tmp_path) -> Path:
    """The rollout fixture (and the roster) in a folder a test may break."""
    dags = tmp_path / "dags"
    (dags / "workflows").mkdir(parents=True)
    shutil.copy(FIXTURES / "agent_paths" / "agents.yaml", dags / "agents.yaml")
    shutil.copytree(FIXTURES / "rollout", dags, dirs_exist_ok=True)
    shutil.copy(FIXTURE_DAGS / "baton_workflows.py", dags)
    return dags


def _compiled(folder: Path) -> tuple[dict, str]:
    dags, errors = compile_folder(folder)
    return dags, "\n".join(str(error) for error in errors)


def test_both_versions_are_one_dag_with_the_new_one_in_its_task_group(folder):
    dags, errors = _compiled(folder)
    assert errors == ""
    dag = dags["release_notes"]
    assert sorted(dag.task_dict) == sorted(["baton_version", *STABLE, *CANARY])
    assert sorted(dag.get_task("baton_version").downstream_task_ids) == ["draft", "v2.draft"]
    assert dag.get_task("v2.polish").upstream_task_ids == {"v2.draft"}
    assert {"v1", "v2", "rollout"} <= set(dag.tags)
    assert "audience" not in dag.params  # the DAG's inputs are the current version's
    step = dag.get_task("v2.polish").step
    assert (step.task_id, step.template_version, step.task_of("draft")) == ("v2.polish", 2, "v2.draft")


def test_a_run_takes_one_version_and_the_others_tasks_are_skipped(airflow_db):
    run, results, _ = run_dag_test_in_subprocess(FIXTURE_DAGS, "baton-test-fixtures", "release_notes")
    assert run.state == "success"
    (assigned,) = EventStore.from_airflow().read(run.run_id, types=["version.assigned"])
    taken, other = (CANARY, STABLE) if assigned.payload["arm"] == "canary" else (STABLE, CANARY)
    assert assigned.payload["version"] == (2 if taken is CANARY else 1)
    assert assigned.payload["how"] == "by the run's hash at 50 %"
    assert {task: results[task][0] for task in taken} == dict.fromkeys(taken, "success")
    assert {task: results[task][0] for task in other} == dict.fromkeys(other, "skipped")
    started = {e.step for e in EventStore.from_airflow().read(run.run_id, types=["step.started"])}
    assert set(taken) <= started and not set(other) & started


def _broken(folder: Path, new_text: str | None = None, current: dict | None = None) -> str:
    """The errors of the folder once the new version's file is ``new_text`` (None: removed) and the
    current template's text has ``current``'s replacements; the current version's DAG must still load."""
    version = folder / "versions" / "release_notes.v2.yaml"
    if new_text is None:
        version.unlink()
    else:
        version.write_text(new_text)
    template = folder / "workflows" / "release_notes.yaml"
    text = template.read_text()
    for old, new in (current or {}).items():
        text = text.replace(old, new)
    template.write_text(text)
    dags, errors = _compiled(folder)
    loaded = sorted(dags["release_notes"].task_dict)
    assert "draft" in loaded and not [t for t in loaded if t.startswith("v2.")], (
        "the current version loads alone"
    )
    return errors


NEW = (FIXTURES / "rollout" / "versions" / "release_notes.v2.yaml").read_text()


@pytest.mark.parametrize(
    ("new_text", "current", "said"),
    [
        (None, {}, "workflows/release_notes.yaml: rollout.to: there is no file versions/release_notes.v2.yaml "
         "(fix: put the new version's template at dags/versions/release_notes.v2.yaml, or remove 'rollout')"),
        (NEW.replace("agent: offline_analyst", "agent: nobody", 1), {},
         "versions/release_notes.v2.yaml:11: steps[0].agent: unknown agent 'nobody'"),
        (NEW.replace("workflow: release_notes", "workflow: other_notes"), {},
         "versions/release_notes.v2.yaml:1: workflow: a version's file is named after its workflow and version"),
        (NEW + "rollout: {to: release_notes.v3.yaml}\n", {},
         "versions/release_notes.v2.yaml: rollout: a version being rolled out cannot roll out another one"),
        (NEW.replace("audience: {type: string, default: customers}", "audience: {type: string, required: true}"), {},
         "versions/release_notes.v2.yaml: inputs.audience: breaks the runs of v1 (workflows/release_notes.yaml), "
         "whose inputs it must take: added, required: a caller that does not pass it is refused"),
        (NEW.replace("product: {type: string, default: baton}", "product: {type: integer, default: 1}"), {},
         "versions/release_notes.v2.yaml: inputs.product: breaks the runs of v1"),
        (NEW, {"  - id: review\n": "  - id: baton_version\n"},
         "workflows/release_notes.yaml: steps: a step named 'baton_version': that is the task that picks"),
        ("a: [" * 10_000, {}, "versions/release_notes.v2.yaml"),
        ("{}", {}, "versions/release_notes.v2.yaml"),
    ],
    ids=["missing", "broken", "other workflow", "chained", "required input", "input type",
         "step clash", "deeply nested", "empty"],
)  # fmt: skip
def test_a_wrong_rollout_is_named_and_the_current_version_still_loads(folder, new_text, current, said):
    errors = _broken(folder, new_text, current)
    assert said in errors, errors


@pytest.mark.parametrize(
    "to", ["../workflows/release_notes.yaml", "/etc/passwd", "x" * 5000 + ".yaml", "[1, 2]"]
)
def test_a_rollout_that_names_no_file_of_versions_breaks_its_own_template(folder, to):
    template = folder / "workflows" / "release_notes.yaml"
    template.write_text(template.read_text().replace("to: release_notes.v2.yaml", f"to: {to}"))
    dags, errors = _compiled(folder)
    assert "release_notes" not in dags
    assert "workflows/release_notes.yaml:19: rollout.to: " in errors, errors


def test_a_version_no_higher_than_the_current_one_is_refused(folder):
    (folder / "versions" / "release_notes.v1.yaml").write_text(NEW.replace("version: 2", "version: 1"))
    errors = _broken(folder, NEW, {"to: release_notes.v2.yaml": "to: release_notes.v1.yaml"})
    assert "versions/release_notes.v1.yaml: version: 1 is not above the current version 1" in errors
    assert "(fix: make it 2)" in errors


def test_the_errors_file_names_a_broken_new_version_from_the_cache_too(folder):
    (folder / "versions" / "release_notes.v2.yaml").write_text(
        NEW.replace("agent: offline_analyst", "agent: x", 1)
    )
    for _ in range(2):  # the second parse finds the current template healthy in the validation cache
        bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="test")
        assert "release_notes" in bag.dag_ids
        assert sorted(bag.dags["release_notes"].task_dict) == STABLE
    # the errors file is the bundled one's; here the loader's own entry point says the same
    from baton.compile.loader import load_template_errors

    error = str(load_template_errors(folder)["baton_template_errors"].template_error)
    assert "versions/release_notes.v2.yaml:11: steps[0].agent: unknown agent 'x'" in error


def test_baton_validate_checks_the_version_a_template_rolls_out_to(folder, capsys):
    assert validate([str(folder / "workflows")], folder / "agents.yaml") == 0
    required = NEW.replace(
        "audience: {type: string, default: customers}", "audience: {type: string, required: true}"
    )
    (folder / "versions" / "release_notes.v2.yaml").write_text(required)
    assert validate([str(folder / "workflows")], folder / "agents.yaml") == 1
    out = capsys.readouterr().out
    assert "inputs.audience: breaks the runs of v1" in out and "1 with errors" in out
