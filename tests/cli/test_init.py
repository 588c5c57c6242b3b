"""``baton init``: the one DAG file, a roster and an example workflow in an Airflow dags folder; what that
DAG file gives Airflow (``baton.dagfile``); and what init refuses (an existing file, a file for a folder, a
link, a folder it cannot make, two at once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from baton.cli import init as init_cli
from baton.cli import main
from baton.cli.init import DAG_FILE, EXAMPLE_FILE, FILES, ROSTER_FILE, InitError, init
from baton.dagfile import ERRORS_DAG_ID, MAX_ERRORS_TEXT, load
from tests.compile.test_loader import BROKEN
from tests.conftest import ROOT

OWN = ["baton_compensate", "baton_incident_escalation", "baton_monitor"]


def _bag(folder: Path) -> DagBag:
    return DagBag(str(folder), bundle_path=folder)


def test_init_fills_an_empty_dags_folder_whose_dags_load_without_errors(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "dags"  # made, with its parents
    assert main(["init", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {folder / DAG_FILE}" in out and f"wrote {folder / EXAMPLE_FILE}" in out
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(FILES)
    assert all((folder / name).read_text() == text for name, text in FILES.items())

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    assert main(["validate"]) == 0
    assert "1 template(s) checked, 0 with errors" in capsys.readouterr().out

    bag = _bag(folder)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted([*OWN, "hello_baton"])
    assert [t.task_id for t in bag.dags["hello_baton"].tasks] == ["summarise", "headline"]
    assert bag.dags["baton_monitor"].schedule == timedelta(minutes=1)  # no monitoring.yaml: every minute


def test_init_defaults_to_airflows_dags_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "configured"))
    assert main(["init"]) == 0
    assert (tmp_path / "configured" / DAG_FILE).is_file()


@pytest.mark.parametrize("existing", [DAG_FILE, ROSTER_FILE, EXAMPLE_FILE])
def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path, capsys, existing):
    (tmp_path / "workflows").mkdir()
    (tmp_path / existing).write_text("# the team's own file\n")
    assert main(["init", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"baton init: {tmp_path} already has {existing}: baton init writes nothing over an existing file "
        "(fix: remove or rename them, or run it on an empty dags folder)\n"
    )
    assert (tmp_path / existing).read_text() == "# the team's own file\n"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [Path(existing).name]


def test_init_refuses_a_folder_that_loads_batons_dags_already(tmp_path):
    """A folder set up by 0.1's instructions (its DAG files copied in) would get every DAG twice."""
    shutil.copy(ROOT / "dags" / "baton_workflows.py", tmp_path / "baton_workflows.py")
    shutil.copy(ROOT / "dags" / "baton_monitor.py", tmp_path / "baton_monitor.py")
    with pytest.raises(InitError) as refused:
        init(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path} already loads Baton's DAGs from baton_monitor.py, baton_workflows.py: a second DAG file "
        "would define the same DAGs again (fix: keep it, or replace it by removing it and running baton init "
        "again)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baton_monitor.py", "baton_workflows.py"]


def test_init_refuses_a_link_even_a_dangling_one(tmp_path):
    outside = tmp_path / "outside.py"
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / DAG_FILE).symlink_to(outside)  # dangling: init must not create the target
    with pytest.raises(InitError, match=rf"already has {DAG_FILE}: baton init writes nothing"):
        init(tmp_path / "dags")
    assert not outside.exists()


def test_init_refuses_a_workflows_link_out_of_the_folder(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "workflows").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(
        InitError, match=r"workflows is not a folder of this dags folder \(fix: remove or rename it\)"
    ):
        init(tmp_path / "dags")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert not (tmp_path / "dags" / DAG_FILE).exists()


def test_init_refuses_a_file_for_a_folder(tmp_path):
    (tmp_path / "dags").write_text("not a folder")
    with pytest.raises(InitError, match=r"dags is not a folder \(fix: name an Airflow dags folder\)"):
        init(tmp_path / "dags")


def test_init_says_why_it_cannot_make_the_folder():
    # /proc takes no new folders, even from root (which file permissions would not stop)
    with pytest.raises(
        InitError, match=r"^cannot create /proc/baton-dags/workflows: .* \(fix: check its permissions\)$"
    ):
        init(Path("/proc/baton-dags"))


def test_two_inits_at_once_write_each_file_once(tmp_path):
    """Eight threads start init on one empty folder together: one writes all three files, the others
    refuse; what is there is exactly the files' text (nothing half-written, nothing removed)."""
    start, results, failures = threading.Barrier(8), [], []

    def one() -> None:
        try:
            start.wait(timeout=30)
            results.append(init(tmp_path))
        except InitError as error:
            results.append(error)
        except BaseException as error:  # anything else fails the test below
            failures.append(error)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    written = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, InitError)]
    assert len(written) == 1 and len(refused) == 7, results
    reasons = (
        "writes nothing over an existing file",
        "another baton init wrote it first",
        "already loads Baton's DAGs from baton_dags.py",
    )
    assert all(any(reason in str(e) for reason in reasons) for e in refused), refused
    assert all((tmp_path / name).read_text() == text for name, text in FILES.items())


def test_a_broken_template_is_a_dag_of_its_own_not_an_import_error(tmp_path):
    init(tmp_path)
    shutil.copy(BROKEN / "unknown_agent.yaml", tmp_path / "workflows" / "unknown_agent.yaml")
    bag = _bag(tmp_path)
    assert bag.import_errors == {}  # so hello_baton stays healthy and can be triggered
    assert sorted(bag.dag_ids) == sorted([*OWN, "hello_baton", ERRORS_DAG_ID])
    errors = bag.dags[ERRORS_DAG_ID]
    assert errors.description == "1 broken template(s), 1 loaded: workflows/unknown_agent.yaml"
    assert "workflows/unknown_agent.yaml:" in errors.doc_md and "(fix: " in errors.doc_md
    assert [t.task_id for t in errors.tasks] == ["report"]


def test_the_errors_dag_carries_a_bounded_text_however_many_templates_are_broken(tmp_path):
    init(tmp_path)
    broken = (BROKEN / "unknown_agent.yaml").read_text()
    for n in range(400):
        (tmp_path / "workflows" / f"broken_{n:03}.yaml").write_text(broken.replace("unknown_agent", f"b{n}"))
    errors = load(tmp_path / DAG_FILE)[ERRORS_DAG_ID]
    assert errors.description.startswith("400 broken template(s), 1 loaded: workflows/broken_000.yaml, ")
    assert len(errors.doc_md) < MAX_ERRORS_TEXT + 500
    assert "more characters: run `baton validate` for all of them" in errors.doc_md


def test_a_task_process_builds_only_its_own_dag(tmp_path, monkeypatch):
    init(tmp_path)
    shutil.copy(BROKEN / "unknown_agent.yaml", tmp_path / "workflows" / "unknown_agent.yaml")
    dag_file = tmp_path / DAG_FILE
    for wanted, built in [
        ("baton_monitor", ["baton_monitor"]),
        ("baton_incident_escalation", ["baton_incident_escalation"]),
        ("baton_compensate", ["baton_compensate"]),
        ("hello_baton", ["hello_baton"]),  # the broken template is not even read
        (ERRORS_DAG_ID, [ERRORS_DAG_ID]),
    ]:
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", wanted)
        assert sorted(load(dag_file)) == sorted(built), wanted


def test_the_cli_module_is_reached_by_the_console_script():
    """`baton init --help` from the installed console script names the default folder."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("baton")), "init", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    ).stdout
    assert "default: Airflow's dags folder ([core] dags_folder)" in out
    assert init_cli.__name__ == "baton.cli.init"
