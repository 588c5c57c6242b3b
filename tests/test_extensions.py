"""A team's own skills from its own package (issue 17): found through the ``baton.extensions`` entry point
of an installed distribution, or named by BATON_EXTENSIONS; registered explicitly; a template uses its
skill and output model; ``baton skills`` and ``baton validate`` show them; a broken one hides nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from baton import extensions
from baton.cli import main as baton
from baton.errors import TemplateError

PACKAGE = Path(__file__).parent / "fixtures" / "extensions" / "acme-skills"
TEMPLATE = """\
workflow: acme_order
version: 1
description: An order priced by Acme's own skill.
owner: purchasing
inputs:
  quantity: {type: integer, default: 3}
steps:
  - id: quote
    skill: acme_quote
    output: AcmeQuote
    with: {sku: ACME-0002, quantity: "{{ inputs.quantity }}"}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """acme-skills installed as a package is (uv pip install --target): a dist-info with its entry point."""
    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "acme-skills"
    shutil.copytree(PACKAGE, source)  # a build writes into its source tree: keep the fixture's clean
    uv = Path(sys.executable).parent / "uv"
    done = subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (target / "acme_skills" / "__init__.py").exists()
    return target


@pytest.fixture
def on_path(monkeypatch):
    """Put a folder on sys.path (as an installed package's site dir is) and forget what was loaded."""

    def put(folder: Path) -> None:
        monkeypatch.syspath_prepend(str(folder))
        extensions.reset()

    yield put
    extensions.reset()


def _template(tmp_path: Path) -> Path:
    (tmp_path / "wf").mkdir()
    path = tmp_path / "wf" / "acme_order.yaml"
    path.write_text(TEMPLATE)
    return path


def test_an_installed_package_registers_its_skill_and_output_model_through_its_entry_point(
    installed, on_path, tmp_path, capsys, dags_folder
):
    on_path(installed)
    assert ("acme_skills", "entry point acme of acme-skills") in extensions.named()
    path = _template(tmp_path)
    assert baton(["validate", str(path.parent), "--agents", str(dags_folder / "agents.yaml")]) == 0
    assert capsys.readouterr().out.strip().endswith("1 template(s) checked, 0 with errors, 0 error(s) in all")
    assert baton(["skills"]) == 0
    out = capsys.readouterr().out
    assert "acme_quote" in out and "acme_skills" in out
    assert "  AcmeQuote" in out.split("output models")[1]
    evaluators = out.split("\nevaluators (")[1]  # the demo's, registered as its skills are
    assert "no_contact_details" in evaluators and "demo.skills.evaluators" in evaluators
    from baton.agents.skills import run_skill

    scope = {"inputs": {"quantity": 3}, "steps": {}, "run": {"id": "manual__1"}}
    output = run_skill(
        "acme_quote",
        workflow="acme_order",
        step_id="quote",
        output_spec="AcmeQuote",
        instruction="",
        scope=scope,
        with_={"sku": "ACME-0002", "quantity": "{{ inputs.quantity }}"},
    )
    assert output == {"sku": "ACME-0002", "quantity": 3, "total": 120.0}


def test_a_module_named_by_baton_extensions_registers_without_installing(on_path, monkeypatch, tmp_path):
    on_path(PACKAGE)
    monkeypatch.setenv("BATON_EXTENSIONS", "demo.skills, acme_skills")
    assert ("acme_skills", "BATON_EXTENSIONS") in extensions.named()
    from baton.spec.loading import load_workflow

    workflow = load_workflow(_template(tmp_path), None)
    assert workflow.steps[0].skill == "acme_quote"


def test_a_name_nobody_registered_still_fails_with_the_known_list(on_path, monkeypatch, tmp_path):
    on_path(PACKAGE)
    monkeypatch.setenv("BATON_EXTENSIONS", "acme_skills")
    path = _template(tmp_path)
    path.write_text(TEMPLATE.replace("skill: acme_quote", "skill: acme_quotes"))
    from baton.registry import skill_names
    from baton.spec.loading import load_workflow

    with pytest.raises(TemplateError) as caught:
        load_workflow(path, None)
    (issue,) = caught.value.issues
    assert str(issue).endswith(
        "steps[0].skill: unknown skill 'acme_quotes' (fix: register it with @skill in an extension module "
        f"(BATON_EXTENSIONS); did you mean 'acme_quote'? known: {', '.join(skill_names())})"
    )


def test_an_extension_that_fails_to_import_is_reported_and_hides_nothing(
    on_path, monkeypatch, tmp_path, capsys, dags_folder
):
    broken = tmp_path / "broken_skills.py"
    broken.write_text("raise RuntimeError('the team broke it')\n")
    on_path(tmp_path)
    monkeypatch.setenv("BATON_EXTENSIONS", "demo.skills,broken_skills,no_such_module")
    status = baton(["validate", str(dags_folder / "workflows"), "--agents", str(dags_folder / "agents.yaml")])
    out = capsys.readouterr().out
    assert status == 1
    assert (
        "BATON_EXTENSIONS: extension module 'broken_skills' (BATON_EXTENSIONS) failed to import: RuntimeError: "
        "the team broke it (fix: make it importable in every Airflow process, or remove it from BATON_EXTENSIONS)"
    ) in out
    assert "extension module 'no_such_module' (BATON_EXTENSIONS) failed to import: ModuleNotFoundError" in out
    assert "13 template(s) checked, 0 with errors, 2 error(s) in all" in out  # the demo's skills still load


def test_two_modules_cannot_register_the_same_output_model_name():
    from pydantic import BaseModel

    from baton.errors import SkillError
    from baton.registry import output_model

    class Subtasks(BaseModel):  # the demo's engineering skills register a Subtasks already
        items: list[str]

    from baton.registry import get_output_model

    assert get_output_model("Subtasks") is not None
    with pytest.raises(
        SkillError, match=r"output model 'Subtasks' is registered twice \(demo\.skills\.engineering"
    ):
        output_model(Subtasks)


PRELOAD = """
import json, os, signal, sys, threading
from baton import extensions
from baton.registry import skill_names

how = sys.argv[1]
if how == "thread":  # what the thread returned or raised; it must end (a raise or a hang fails the test)
    found, raised = [], []

    def preload():
        try:
            found.extend(extensions.preload(0.5))
        except BaseException as error:
            raised.append(error)

    worker = threading.Thread(target=preload)
    worker.start()
    worker.join(30)
    if worker.is_alive() or raised:
        sys.exit(f"the preloading thread {'hangs' if worker.is_alive() else 'raised'}: {raised}")
    errors = found
elif how == "timer":
    signal.setitimer(signal.ITIMER_REAL, 100)
    errors = extensions.preload(0.5)
    print("timer left", round(signal.getitimer(signal.ITIMER_REAL)[0]), file=sys.stderr)
    signal.setitimer(signal.ITIMER_REAL, 0)
else:
    errors = extensions.preload(0.5)
loaded = extensions._loaded
forked = None
if how == "fork":  # a process forked after the preload, as a task is: it finds the extensions loaded
    child = os.fork()
    if child == 0:
        extensions.load()
        os._exit(0 if "good_skill" in skill_names() else 1)
    forked = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
print(json.dumps({
    "errors": [str(e) for e in errors],
    "loaded": None if loaded is None else {k: v is None for k, v in loaded.items()},
    "imported": sorted(m for m in ("good_ext", "hanging_ext", "exiting_ext") if m in sys.modules),
    # after a preload that succeeded, the registry has the skill without a load of its own; after one that
    # failed, nothing is counted as loaded, and a load here would import the hanging module again
    "good_skill": "good_skill" in skill_names() if loaded else None,
    "alarm": [signal.getsignal(signal.SIGALRM) is signal.SIG_DFL, signal.getitimer(signal.ITIMER_REAL)[0]],
    "forked": forked,
    "pid": os.getpid(),
}))
"""


def _preload(tmp_path: Path, names: str, how: str = "main") -> tuple[dict, str]:
    """extensions.preload() in a fresh interpreter (its own signals and registry), with extension modules
    that import fine, hang forever or exit; what it returned and left behind."""
    (tmp_path / "good_ext.py").write_text(
        "import os\n\nfrom baton.registry import SkillRequest, skill\n\n"
        f"with open({str(tmp_path / 'imports.log')!r}, 'a') as log:\n    log.write(f'{{os.getpid()}}\\n')\n\n\n"
        "@skill('good_skill')\ndef good_skill(request: SkillRequest) -> dict:\n    return {}\n"
    )
    (tmp_path / "hanging_ext.py").write_text("while True:\n    pass\n")
    (tmp_path / "exiting_ext.py").write_text("raise SystemExit(3)\n")
    env = {
        **os.environ,
        "BATON_EXTENSIONS": names,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    # a bound that did not hold would hang here: the timeout fails the test instead
    done = subprocess.run(
        [sys.executable, "-c", PRELOAD, how], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_preloading_imports_the_extensions_once_for_the_processes_forked_after(tmp_path):
    result, _ = _preload(tmp_path, "good_ext", how="fork")
    # one import, by the preloading process: the forked one had good_skill without importing it again
    assert (tmp_path / "imports.log").read_text().splitlines() == [str(result.pop("pid"))]
    assert result == {
        "errors": [],
        "loaded": {"good_ext": True},  # a forked task finds it loaded: no import, no entry point scan
        "imported": ["good_ext"],
        "good_skill": True,
        "alarm": [True, 0.0],  # the handler it replaced is back, and no timer is left armed
        "forked": 0,  # the forked process found good_skill registered
    }


def test_an_extension_that_hangs_or_exits_while_preloaded_is_cut_off_and_left_to_each_task(tmp_path):
    result, stderr = _preload(tmp_path, "hanging_ext,good_ext,exiting_ext")
    fix = "(fix: make it importable in every Airflow process, or remove it from BATON_EXTENSIONS)"
    assert result["errors"] == [
        f"extension module 'hanging_ext' (BATON_EXTENSIONS) failed to import: TimeoutError: importing it took "
        f"over 0.5 s {fix}",
        f"extension module 'exiting_ext' (BATON_EXTENSIONS) failed to import: SystemExit: 3 {fix}",
    ]
    assert result["loaded"] is None  # nothing counted as loaded: each forked process tries again itself
    assert result["imported"] == ["good_ext"]  # the healthy one stays imported (free for them)
    assert result["alarm"] == [True, 0.0]
    assert "extension module 'hanging_ext'" in stderr  # logged where the scheduler logs


def test_preloading_off_the_main_thread_or_under_another_timer_imports_nothing(tmp_path):
    result, _ = _preload(tmp_path, "good_ext", how="thread")
    assert (result["errors"], result["loaded"], result["imported"]) == ([], None, [])
    result, stderr = _preload(tmp_path, "good_ext", how="timer")
    assert (result["errors"], result["loaded"], result["imported"]) == ([], None, [])
    assert "timer left 100" in stderr  # the other timer was not cancelled
