"""``baton shard N``: writes the N loader files (and only its own), reports what each holds, goes back with
``baton shard 1``; refuses, changing nothing, what it cannot do safely. ``baton validate`` reports the shard
files that cannot load and warns of a loader file that holds more templates than fit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from baton.cli import main, parser
from baton.cli.shard import SHARD_TEXT, ShardError, shard
from baton.cli.shard_checks import parse_time_warnings, seconds_each
from baton.cli.validate import validate
from baton.compile.shards import LOADER_FILE, shard_file, shard_of
from tests.compile.test_shards import NAMES, loaded, make_folder, templates_of
from tests.conftest import ROOT


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    return make_folder(tmp_path, len(NAMES))


def files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name != "workflows")


def test_shard_writes_the_set_reports_each_files_templates_and_goes_back(folder, capsys):
    assert main(["shard", "3", "--dags", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    counts = [sum(shard_of(name, 3) == k for name in NAMES) for k in (1, 2, 3)]
    assert out == [
        *(f"wrote {folder / shard_file(k, 3)}: {counts[k - 1]} template(s)" for k in (1, 2, 3)),
        f"50 template(s) over 3 files; {LOADER_FILE} loads none of them while they are there",
    ]
    assert files(folder) == ["agents.yaml", LOADER_FILE, *(shard_file(k, 3) for k in (1, 2, 3))]
    assert all((folder / shard_file(k, 3)).read_text() == SHARD_TEXT for k in (1, 2, 3))
    assert templates_of(loaded(folder)) == NAMES and loaded(folder)[LOADER_FILE] == []
    # another count: the new set, the old one gone
    assert main(["shard", "2", "--dags", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2:5] == [f"removed {folder / shard_file(k, 3)}" for k in (1, 2, 3)]
    assert files(folder) == ["agents.yaml", LOADER_FILE, shard_file(1, 2), shard_file(2, 2)]
    # back to the one file; what it did not write stays
    (folder / "baton_workflows_01_of_2.py").write_text(SHARD_TEXT)  # not a name it writes
    (folder / "my_dag.py").write_text("# mine\n")
    assert main(["shard", "1", "--dags", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"removed {folder / shard_file(1, 2)}",
        f"removed {folder / shard_file(2, 2)}",
        f"{LOADER_FILE} loads all 50 template(s)",
    ]
    assert files(folder) == ["agents.yaml", LOADER_FILE, "baton_workflows_01_of_2.py", "my_dag.py"]
    assert sorted(loaded(folder)[LOADER_FILE]) == sorted([*NAMES, "baton_compensate"])


def test_the_shard_file_is_the_dag_files_loader_line():
    dag_file = (ROOT / "dags" / LOADER_FILE).read_text()
    line = "globals().update(load_dags(Path(__file__)))\n"
    assert dag_file.endswith("\n\nfrom baton.compile.loader import load_dags\n\n" + line)
    assert SHARD_TEXT.endswith("\n\nfrom baton.compile.loader import load_dags\n\n" + line)
    assert b"airflow" in SHARD_TEXT.lower().encode() and b"dag" in SHARD_TEXT.lower().encode()  # safe mode


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ("0", "argument N: 0 is out of range (fix: 1 to 64; 1 goes back to baton_workflows.py alone)"),
        ("-1", "argument N: -1 is out of range (fix: 1 to 64; 1 goes back to baton_workflows.py alone)"),
        ("65", "argument N: 65 is out of range (fix: 1 to 64; 1 goes back to baton_workflows.py alone)"),
        ("abc", "argument N: 'abc' is not a whole number (fix: 1 to 64)"),
        ("1e3", "argument N: '1e3' is not a whole number (fix: 1 to 64)"),
        ("9" * 5000, "argument N: '" + "9" * 40 + "' is not a whole number (fix: 1 to 64)"),
    ],
)
def test_a_count_out_of_range_is_refused(argv, error, capsys, folder):
    with pytest.raises(SystemExit) as done:
        parser(["shard", argv]).parse_args(["shard", argv, "--dags", str(folder)])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"baton shard: error: {error}"
    assert files(folder) == ["agents.yaml", LOADER_FILE]


def test_a_foreign_file_of_a_shards_name_stops_it_before_any_change(folder, capsys):
    (folder / shard_file(2, 3)).write_text(SHARD_TEXT.replace("Leave it as it is.", "Edited."))
    assert main(["shard", "3", "--dags", str(folder)]) == 1
    assert capsys.readouterr().err == (
        f"baton shard: {folder / shard_file(2, 3)} is not a shard file written by baton shard (edited, or not a "
        "plain file): baton shard writes and removes only its own (fix: move it out of the dags folder, or "
        "remove it)\n"
    )
    assert files(folder) == ["agents.yaml", LOADER_FILE, shard_file(2, 3)]
    assert main(["shard", "1", "--dags", str(folder)]) == 1  # nor removes it
    assert (folder / shard_file(2, 3)).exists()
    # a link to Baton's own text is no plain file either; nor a folder of that name
    (folder / shard_file(2, 3)).unlink()
    (folder / "elsewhere.txt").write_text(SHARD_TEXT)
    (folder / shard_file(1, 2)).symlink_to(folder / "elsewhere.txt")
    with pytest.raises(
        ShardError, match="baton_workflows_1_of_2.py is not a shard file written by baton shard"
    ):
        shard(folder, 4)
    (folder / shard_file(1, 2)).unlink()
    (folder / shard_file(1, 2)).mkdir()
    with pytest.raises(ShardError, match="baton_workflows_1_of_2.py is not a shard file"):
        shard(folder, 1)


def test_a_folder_it_cannot_change_is_refused(folder, tmp_path):
    with pytest.raises(
        ShardError, match=r"is not a folder \(fix: name the Airflow dags folder, with --dags\)"
    ):
        shard(tmp_path / "nowhere", 2)
    if os.geteuid() != 0:  # root writes to any mode
        folder.chmod(0o555)
        try:
            with pytest.raises(ShardError, match=r"is not writable \(fix: check its permissions"):
                shard(folder, 2)
        finally:
            folder.chmod(0o755)
        assert files(folder) == ["agents.yaml", LOADER_FILE]
    # a folder no one can write to, root included: procfs
    with pytest.raises(ShardError, match=r"^/proc/self is not writable \(fix: check its permissions"):
        shard(Path("/proc/self"), 2)
    # a write that fails half way (here: its temporary name is taken by a folder): what was written loads
    blocked = folder / f".{shard_file(2, 2)}.{os.getpid()}.tmp"
    blocked.mkdir()
    with pytest.raises(ShardError) as refused:
        shard(folder, 2)
    assert str(refused.value) == (
        f"cannot write {blocked}: Is a directory (fix: check the folder's permissions and space; the loader "
        f"still gives each template one file: {shard_file(1, 2)} written so far)"
    )
    blocked.rmdir()
    assert files(folder) == ["agents.yaml", LOADER_FILE, shard_file(1, 2)]
    assert templates_of(loaded(folder)) == NAMES  # baton_workflows.py loads shard 2's templates meanwhile
    # without baton_workflows.py, going back would leave no file loading the templates
    shard(folder, 2)
    (folder / LOADER_FILE).unlink()
    with pytest.raises(ShardError, match=f"has no {LOADER_FILE}: without the shard files no file would load"):
        shard(folder, 1)
    assert files(folder) == ["agents.yaml", shard_file(1, 2), shard_file(2, 2)]


def test_a_folder_of_baton_init_is_not_split(tmp_path, capsys):
    from baton.cli.init import init  # deferred: only this test writes baton init's folder

    init(tmp_path / "dags")
    assert main(["shard", "2", "--dags", str(tmp_path / "dags")]) == 1
    assert capsys.readouterr().err.startswith(
        f"baton shard: {tmp_path / 'dags' / 'baton_dags.py'} loads every DAG of the folder (baton init's file): "
        "shard files beside it would define each DAG twice"
    )
    assert sorted(os.listdir(tmp_path / "dags")) == ["agents.yaml", "baton_dags.py", "workflows"]


CONCURRENT = """
import sys
from pathlib import Path
from baton.cli.shard import shard
shard(Path(sys.argv[1]), int(sys.argv[2]))
"""


def test_two_concurrent_runs_leave_one_consistent_set(folder):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'include'}:{ROOT}"}
    for counts in [(2, 5), (7, 3), (4, 4)]:
        runs = [
            subprocess.Popen([sys.executable, "-c", CONCURRENT, str(folder), str(n)], env=env) for n in counts
        ]
        assert [run.wait(timeout=120) for run in runs] == [0, 0]
        shards = [name for name in files(folder) if name.startswith("baton_workflows_")]
        assert len(shards) in counts  # one run's set, whole, and nothing of the other's
        assert shards == sorted(shard_file(k, len(shards)) for k in range(1, len(shards) + 1))
        assert all((folder / name).read_text() == SHARD_TEXT for name in shards)
        assert not [name for name in os.listdir(folder) if name.endswith(".tmp")]
    assert templates_of(loaded(folder)) == NAMES


def test_validate_reports_shard_files_that_cannot_load(folder, capsys):
    (folder / "baton_workflows_3_of_2.py").write_text(SHARD_TEXT)
    shard(folder, 2)
    (folder / shard_file(1, 4)).write_text(SHARD_TEXT)
    assert validate([str(folder / "workflows")], folder / "agents.yaml") == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        "baton_workflows_3_of_2.py: named like a shard file but cannot be one (shard 3 of 2: a shard is from 1 to "
        "2): the loader loads no template from it (fix: remove it, or name it baton_workflows_<k>_of_<n>.py with "
        "1 <= k <= n <= 64; `baton shard N` writes a whole set)"
    ) in out
    assert (
        "baton_workflows_1_of_4.py: a shard file of another count than the folder's baton_workflows_1_of_2.py .. "
        "baton_workflows_2_of_2.py: it loads no template (of several counts, the largest whole set loads, else "
        "the largest count) (fix: run `baton shard 2` (or the count you want): it writes one set and removes "
        "the others)"
    ) in out
    assert out[-1] == "50 template(s) checked, 0 with errors, 2 error(s) in all"
    # a shard deleted, and no baton_workflows.py to load its templates in its place
    (folder / "baton_workflows_3_of_2.py").unlink()
    (folder / shard_file(1, 4)).unlink()
    (folder / shard_file(2, 2)).unlink()
    (folder / LOADER_FILE).unlink()
    assert validate([str(folder / "workflows")], folder / "agents.yaml") == 1
    lost = sum(shard_of(name, 2) == 2 for name in NAMES)
    assert (
        f"{folder}: baton_workflows_2_of_2.py missing and no {LOADER_FILE}: {lost} template(s) load from no file "
        "(fix: run `baton shard 2` to write the set whole)"
    ) in capsys.readouterr().out.splitlines()


def test_validate_warns_of_a_loader_file_that_holds_more_than_fits(folder, monkeypatch, capsys):
    # at 30 s, 50 templates fit easily; at a timeout of 0.4 s they do not: 0.25 s > 30 % of it
    assert parse_time_warnings(folder, 0.005) == []
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "0.4")
    assert parse_time_warnings(folder, 0.005) == [
        f"{folder}: warning: {LOADER_FILE} holds 50 template(s), about 0.2 s to compile at 5.0 ms each (as "
        "measured by this run, with a cold cache), more than the 30% of [core] dagbag_import_timeout (0.4 s) "
        "that leaves room to spare; a parse stops at 60% of it and leaves the rest of its templates out (fix: "
        "`baton shard 3`)"
    ]
    shard(folder, 3)  # what it says: then each file holds what fits (13, 17 and 20 templates: 0.1 s at most)
    assert parse_time_warnings(folder, 0.005) == []
    shard(folder, 2)  # too few: the fuller file (26 templates, 0.13 s) is named
    fuller = shard_file(max((1, 2), key=lambda k: sum(shard_of(n, 2) == k for n in NAMES)), 2)
    found = parse_time_warnings(folder, 0.005)
    assert found[0].startswith(f"{folder}: warning: {fuller} holds 26 template(s), about 0.1 s to compile")
    assert found[-1].endswith("(fix: `baton shard 3`)")
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "0")  # no timeout: nothing to fit in
    assert parse_time_warnings(folder, 5.0) == []
    # validate measures the time itself, and prints the warning among its warnings (not an error)
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "0.001")
    assert validate([str(folder / "workflows")], folder / "agents.yaml") == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" holds ")[0] for line in out[:-1]] == [
        f"{folder}: warning: {shard_file(k, 2)}" for k in (1, 2)
    ]
    assert out[-1] == "50 template(s) checked, 0 with errors, 0 error(s) in all, 2 warning(s)"
    assert seconds_each([], {}, None) is None
