"""The benchmarks' ``--write-dags`` and ``--attach`` (bench/harness.py, devtools.standalone.Standalone.attach)
with what can go wrong: the working path is the smoke run on the shared Airflow (test_smoke_airflow.py); and how
the API client's waits (``AirflowAPI.wait_for_run``, ``wait_for_dag``) take an api-server that answers late."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from devtools.standalone import AttachError, Standalone, free_port
from tests.conftest import ROOT


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def _describe(home, text: str) -> None:
    home.mkdir(exist_ok=True)
    (home / Standalone.DESCRIPTOR).write_text(text, encoding="utf-8")


def test_attach_names_what_it_found_instead_of_a_running_airflow(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(AttachError, match=r"baton-standalone\.json: not found; is an Airflow started by"):
        Standalone.attach(home, timeout=0)
    for text, why in (
        ("{", r"not a file Standalone.start\(\) wrote \(Expecting property name"),
        ('{"port": 1, "settings": {}}', r"not a file Standalone.start\(\) wrote \(no 'dags_folder'\)"),
        ('{"port": "8080", "dags_folder": "/d", "settings": {}}', r"\(port '8080' is not a TCP port\)"),
        ('{"port": true, "dags_folder": "/d", "settings": {}}', r"\(port True is not a TCP port\)"),
        ('{"port": 0, "dags_folder": "/d", "settings": {}}', r"\(port 0 is not a TCP port\)"),
        (
            '{"port": 8080, "dags_folder": "/d", "settings": []}',
            r"\(dags_folder or settings of the wrong type\)",
        ),
        ("[" * 100_000 + "]" * 100_000, r"not a file Standalone.start\(\) wrote"),  # deeply nested
        (" " * 1_000_001, r"not a file Standalone.start\(\) wrote \(1,000,001 bytes\)"),  # huge: not read
        ("\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), "not a file Standalone.start"),
    ):
        _describe(home, text)
        with pytest.raises(AttachError, match=why):
            Standalone.attach(home, timeout=0)
    port = free_port()  # nothing listens there
    _describe(home, json.dumps({"port": port, "dags_folder": str(tmp_path), "settings": {}}))
    with pytest.raises(
        AttachError, match=rf"no healthy Airflow at http://127.0.0.1:{port} \(from .*\) after 0 s"
    ):
        Standalone.attach(home, timeout=0)


def test_the_benchmarks_refuse_a_bad_attach_with_usage_and_exit_2(tmp_path):
    refused = _bench("bench/latency.py", "--attach", str(tmp_path / "nowhere"))
    assert refused.returncode == 2
    assert (
        "latency.py: error: --attach: " in refused.stderr
        and "baton-standalone.json: not found" in refused.stderr
    )
    refused = _bench("bench/fanout.py", "--attach", str(tmp_path), "--keep", str(tmp_path / "keep"))
    assert refused.returncode == 2
    assert "fanout.py: error: --attach measures the Airflow as it runs: no --keep with it" in refused.stderr
    # the attached Airflow's metadata database is whatever it runs on
    refused = _bench("bench/latency.py", "--attach", str(tmp_path), "--metadata", "sqlite")
    assert refused.returncode == 2
    assert (
        "latency.py: error: --attach measures the Airflow as it runs: no --no-preload, --keep or --metadata "
        "with it" in refused.stderr
    )
    refused = _bench("bench/latency.py", "--metadata", "mysql")
    assert refused.returncode == 2
    assert (
        "argument --metadata: invalid choice: 'mysql' (choose from 'postgresql', 'sqlite')" in refused.stderr
    )


def test_write_dags_adds_to_a_folder_and_replaces_or_half_writes_nothing(tmp_path):
    dags = tmp_path / "dags"
    for bench in ("latency", "fanout"):
        done = _bench(f"bench/{bench}.py", "--write-dags", str(dags))
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["BATON_EXTENSIONS"] == "devtools.bench_skills"
    assert sorted(p.name for p in (dags / "workflows").iterdir()) == [
        "fanout_c16.yaml",
        "fanout_c4.yaml",
        "latency_baton.yaml",
    ]
    roster = (dags / "agents.yaml").read_text()
    # a roster of their own (none of the demo's agents, whose skills their Airflow does not load), added to
    assert roster.startswith("# A benchmark's roster (bench/harness.py, baton_dags)"), roster
    assert [a["name"] for a in yaml.safe_load(roster)["agents"]] == ["latency_planner", "bench_worker"]
    bundled = tmp_path / "bundled"  # a dags folder with a roster (an attached Airflow's): added to
    (bundled / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "agents.yaml", bundled / "agents.yaml")
    assert _bench("bench/fanout.py", "--write-dags", str(bundled)).returncode == 0
    added = (bundled / "agents.yaml").read_text()
    assert added.startswith((ROOT / "dags" / "agents.yaml").read_text().rstrip("\n"))
    assert added.count("- name: bench_worker") == 1

    again = _bench("bench/fanout.py", "--write-dags", str(dags))  # its files are there: nothing is written
    assert again.returncode == 2
    assert "fanout_c4.yaml" in again.stderr
    assert "exist: give a dags folder without this benchmark's files" in again.stderr
    assert (dags / "agents.yaml").read_text() == roster

    for roster, why in (
        # the agents list is not last: the added agents would be another list's items
        ("agents:\n  - name: a\n    description: A.\ntools:\n  - t\n", "its agents list must come last for"),
        ("agents:\n  - name: a\n    description: A.\nlimits: {}\n", "not a roster this benchmark can add"),
        ("- just\n- a list\n", "not a roster this benchmark can add its agents to ("),
    ):
        other = tmp_path / f"other-{len(roster)}"
        (other / "workflows").mkdir(parents=True)
        (other / "agents.yaml").write_text(roster)
        refused = _bench("bench/fanout.py", "--write-dags", str(other))
        assert refused.returncode == 2 and why in refused.stderr, refused.stderr
        assert (other / "agents.yaml").read_text() == roster  # left as it was
        assert list((other / "workflows").iterdir()) == []


def test_the_benchmarks_refuse_a_server_where_no_throwaway_database_can_be_made():
    """``--server`` (bench/harness.py: server_argument and Databases, shared by the benchmarks that make
    throwaway databases): malformed, not PostgreSQL, or nothing listening there (a huge URL) is a usage
    error naming the fix, with the password hidden, before anything starts. Each benchmark once for its
    own wiring, latency for every case (each case is a process: ~2 s of imports)."""
    for server, message in (
        ("nonsense", "argument --server: not a database URL: give one like postgresql+psycopg://"),
        ("mysql://root@127.0.0.1/x", "argument --server: mysql is not PostgreSQL: give a postgresql:// URL"),
        ("postgresql://u@h:port/x", "argument --server: not a database URL"),
    ):
        refused = _bench("bench/latency.py", "--server", server)
        assert refused.returncode == 2 and f"latency.py: error: {message}" in refused.stderr, refused.stderr
    server = f"postgresql+psycopg://postgres:s3cr3t-{'x' * 10_000}@127.0.0.1:{free_port()}/x"
    for bench in ("latency", "faults", "incidents"):
        refused = _bench(f"bench/{bench}.py", "--server", server)
        assert refused.returncode == 2, refused.stderr
        (line,) = [line for line in refused.stderr.splitlines() if line.startswith(f"{bench}.py: error:")]
        assert line.startswith(f"{bench}.py: error: --server postgresql+psycopg://postgres:***@127.0.0.1:"), (
            line
        )
        assert "no throwaway database could be made there" in line and "Connection refused" in line, line
        assert "s3cr3t" not in refused.stderr and len(line) < 1000


def test_the_airflow_benchmarks_refuse_a_runs_count_they_cannot_measure_before_starting_one():
    """``--runs 0`` started an Airflow and then failed on the median of no runs (StatisticsError). One
    parser (cli_types.bounded_int): every case on latency, the other two once for their wiring."""
    for bench, runs, message in (
        ("latency", "0", "0 is not between 1 and 1000"),
        ("latency", "10" * 30, f"{'10' * 30} is not between 1 and 1000"),
        ("latency", "x" * 10_000, f"'{'x' * 50}' is not a whole number"),
        ("fanout", "-3", "-3 is not between 1 and 1000"),
        ("celery", "0", "0 is not between 1 and 1000"),
    ):
        refused = _bench(f"bench/{bench}.py", "--runs", runs)
        assert refused.returncode == 2, refused.stderr
        assert f"{bench}.py: error: argument --runs: {message}" in refused.stderr.splitlines()[-1]


def test_the_budget_benchmark_refuses_what_it_cannot_run_before_starting_an_airflow(tmp_path):
    """Each case is a process (~2 s of imports): the ones of its own arguments."""
    for args, message in (
        (["--items", "0"], "argument --items: 0 is not between 10 and 2500"),
        (["--items", "9" * 40], f"argument --items: {'9' * 40} is not between 10 and 2500"),
        (["--store", "mysql"], "argument --store: invalid choice: 'mysql' (choose from 'sqlite', 'postgresql')"),
        (["--attach", str(tmp_path), "--items", "30"],
         "--attach runs on that Airflow as it is: no --keep, --store or --items with it"),
    ):  # fmt: skip
        refused = _bench("bench/budget.py", *args)
        assert refused.returncode == 2, refused.stderr
        assert f"budget.py: error: {message}" in refused.stderr.splitlines()[-1], refused.stderr
    dags = tmp_path / "dags"
    assert _bench("bench/budget.py", "--write-dags", str(dags)).returncode == 0
    declared = json.loads((dags / "budgets.yaml").read_text())["budgets"]
    assert [b["scope"] for b in declared] == ["workflow:budget_a", "workflow:budget_b", "agent:budget_worker"]
    again = _bench("bench/budget.py", "--write-dags", str(dags))  # never over its own files
    assert again.returncode == 2 and "budget_a.yaml" in again.stderr


def test_a_start_that_fails_leaves_no_temp_folder(tmp_path):
    """Standalone's processes get a TMPDIR of their own (what one killed leaves goes with it); a start that
    fails before Airflow runs removes it at stop() too."""
    inherited = tmp_path / "inherited"  # a TMPDIR of the caller's own: stop() gives it back
    settings = {"AIRFLOW_CONN_BATON_STORE": "nonsense://x", "TMPDIR": str(inherited)}
    airflow = Standalone(tmp_path / "home", settings=settings)
    with pytest.raises(RuntimeError, match="^baton db upgrade failed: "):
        airflow.start()
    made = airflow.tmp
    assert made is not None and made.is_dir() and made.name.startswith("baton-af-")
    assert airflow.env["TMPDIR"] == str(made)
    airflow.stop()
    assert not made.exists() and airflow.tmp is None and airflow.env["TMPDIR"] == str(inherited)
    without = Standalone(tmp_path / "home2", settings={"AIRFLOW_CONN_BATON_STORE": "nonsense://x"})
    without.env.pop("TMPDIR", None)
    with pytest.raises(RuntimeError, match="^baton db upgrade failed: "):
        without.start()
    without.stop()
    assert without.tmp is None and "TMPDIR" not in without.env


def test_the_fault_benchmark_writes_its_campaign_with_faults_scoped_to_it_and_refuses_what_it_cannot_run(
    tmp_path,
):
    """``bench/faults.py --write-dags``: the campaign and its two agents in a roster of their own, and
    settings whose ``BATON_FAULTS`` is scoped to the campaign (the shared Airflow's other runs see no fault);
    rates it cannot inject, or any with ``--attach`` (that Airflow's faults are the ones it measures), are
    refused before anything is written or attached."""
    dags = tmp_path / "dags"
    done = _bench("bench/faults.py", "--write-dags", str(dags), "--seed", "3", "--error", "0.2")
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout.splitlines()[-1])
    assert json.loads(settings["BATON_FAULTS"]) == {
        "seed": 3,
        "error": 0.2,
        "timeout": 0.02,
        "invalid": 0.05,
        "fail_after": {"post": 0.1},
        "hang_s": 20.0,
        "workflows": ["fault_campaign"],
    }
    assert "devtools.faults" in settings["BATON_EXTENSIONS"].split(",")
    assert json.loads(settings["AIRFLOW_CONN_BATON_FAULTS_LLM"])["extra"] == {"model": "baton:offline"}
    assert [p.name for p in (dags / "workflows").iterdir()] == ["fault_campaign.yaml"]
    roster = (dags / "agents.yaml").read_text()
    written = yaml.safe_load(roster)
    assert [a["name"] for a in written["agents"]] == ["order_extractor", "order_confirmer"]
    assert written["skills"] == {"http_post": {"allow": ["127.0.0.1", "localhost"]}}  # the partner API's post
    again = _bench("bench/faults.py", "--write-dags", str(dags))
    assert again.returncode == 2 and "fault_campaign.yaml exists" in again.stderr, again.stderr
    assert (dags / "agents.yaml").read_text() == roster

    # each case is a process (~1 s of imports): the rates' own checks are tests/agents/test_faults.py's
    for args, message in (
        (["--write-dags", str(tmp_path / "new"), "--error", "1.5"], "BATON_FAULTS: 'error' must be a rate"),
        (
            ["--attach", str(tmp_path), "--error", "0.2", "--keep", str(tmp_path / "k")],
            "--attach runs with the faults that Airflow has: no --error, --keep with it",
        ),
    ):
        refused = _bench("bench/faults.py", *args)
        assert refused.returncode == 2 and f"faults.py: error: {message}" in refused.stderr, refused.stderr
    assert not (tmp_path / "new").exists() and not (tmp_path / "k").exists()


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (None, "injects no faults: write its dags folder with --write-dags before it starts"),
        (
            '{"seed": 7, "error": 0.1}',
            "are not this benchmark's (they are not scoped to fault_campaign alone)",
        ),
        ('{"error": 0.1, "workflows": ["lead_qualification"]}', "not scoped to fault_campaign alone"),
        ('{"error": 2, "workflows": ["fault_campaign"]}', "'error' must be a rate in [0, 1], not 2"),
        ('{"eror": 0.1, "workflows": ["fault_campaign"]}', "unexpected keyword argument 'eror'"),
        ("[" * 100_000 + "]" * 100_000, "are not this benchmark's"),  # deeply nested
        ("not json", "are not this benchmark's (Expecting value"),
    ],
    ids=["none", "unscoped", "another workflow", "a bad rate", "a misspelt key", "deeply nested", "not json"],
)
def test_an_attached_airflow_without_the_campaigns_own_faults_is_refused(tmp_path, capsys, faults, message):
    from tests.bench.test_smoke import load_bench

    bench = load_bench("faults")
    settings = {} if faults is None else {"BATON_FAULTS": faults}
    airflow = Standalone(tmp_path / "home", settings=settings)  # only its settings are read
    parser = argparse.ArgumentParser(prog="faults.py")
    with pytest.raises(SystemExit) as exited:
        bench.attached_faults(parser, airflow)
    assert exited.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("faults.py: error:")]
    assert line.startswith("faults.py: error: --attach: the ") and message in line, line
    assert len(line) < 1000, "a huge setting is cut, not echoed"


def test_an_airflows_store_url_is_its_connection_read_as_baton_reads_it_or_the_sqlite_file_in_its_home(
    tmp_path,
):
    """``Standalone.store_url`` (what an attached benchmark reads the events from) reads the store's
    connection setting with Airflow's parsers and Baton's own ``url_of``: a URI of either postgres scheme or
    JSON, sqlite, or none (the file scripts/env.sh derives)."""
    home = tmp_path / "home"

    def url(value: str) -> str:
        return Standalone(home, settings={"AIRFLOW_CONN_BATON_STORE": value}).store_url()

    assert Standalone(home).store_url() == url("") == f"sqlite:///{home / 'baton_store.db'}"
    expected = "postgresql+psycopg://u:p%40ss@127.0.0.1:5432/store"
    assert url("postgresql://u:p%40ss@127.0.0.1:5432/store") == expected  # a quoted password stays quoted
    assert url("postgres://u:p%40ss@127.0.0.1:5432/store") == expected  # Airflow's own scheme for postgres
    given = {"conn_type": "postgres", "login": "u", "password": "p@ss", "host": "127.0.0.1", "port": 5432}
    assert url(json.dumps({**given, "schema": "store"})) == expected
    assert url("sqlite:////srv/baton/baton_store.db") == "sqlite:////srv/baton/baton_store.db"
    for value, why in (
        ("mysql://u@h/s", "connection 'baton_store' has type 'mysql'; Baton reads sqlite or postgres"),
        ("postgresql+psycopg://u@h/s", "has type 'postgresql+psycopg'"),  # Baton itself refuses a driver too
        ('{"conn_type": "postgres", "port": "x"}', "Expected integer value for `port`"),
        ('{"conn_type": "postgres", "nested": {"a": [1]}}', "unexpected keyword argument 'nested'"),
        ("{" * 100_000, "Expecting property name"),
        ("x://a://b://c", "Invalid connection string"),
        ("   ", "string index out of range"),  # blank, not empty: Airflow itself fails to read it
    ):
        with pytest.raises(
            ValueError, match=r"AIRFLOW_CONN_BATON_STORE is not a store Baton can read"
        ) as caught:
            url(value)
        assert why in str(caught.value) and len(str(caught.value)) < 600, str(caught.value)


def test_an_attached_airflow_whose_store_baton_cannot_read_is_refused_before_anything_runs(tmp_path, capsys):
    from tests.bench.test_smoke import load_bench

    bench = load_bench("faults")  # its harness: budget.py and faults.py read an attached store through it
    airflow = Standalone(tmp_path / "home", settings={"AIRFLOW_CONN_BATON_STORE": "mysql://u@h/s"})
    parser = argparse.ArgumentParser(prog="faults.py")
    with pytest.raises(SystemExit) as exited:
        bench.attached_store(parser, airflow)
    assert exited.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("faults.py: error:")]
    assert "--attach: " in line and "AIRFLOW_CONN_BATON_STORE is not a store Baton can read" in line, line
    assert line.endswith("give a sqlite or postgres connection"), line


@pytest.mark.parametrize(
    "roster",
    [None, "agents: [", "agents: 5\n", "\xff\xfe not text", "x: " + "[" * 5000 + "]" * 5000, "agents: []\n"],
    ids=["missing", "malformed", "not-a-list", "not-text", "deeply-nested", "no-airflow-to-ask"],
)
def test_pools_are_not_in_place_when_the_roster_or_the_pools_cannot_be_read(tmp_path, roster):
    from tests.bench.test_smoke import load_bench

    load_bench("latency")  # and bench/harness.py with it, as the module harness
    harness = sys.modules["harness"]
    if roster is not None:
        (tmp_path / "agents.yaml").write_bytes(roster.encode("latin-1"))
    # no Airflow listens on its port: asked only when the roster could be read ("no-airflow-to-ask")
    assert (
        harness.pools_in_place(Standalone(tmp_path / "home", dags_folder=tmp_path, port=free_port())) is False
    )


def test_a_poll_that_gets_no_answer_in_time_is_asked_again_until_the_callers_deadline(slow_api):
    api, server = slow_api
    server.delays = [2.0, 0.0]  # the first answer comes after the client's 0.5 s
    server.bodies = [(200, {"state": "success"}), (200, {"state": "running"}), (200, {"state": "success"})]
    run = api.wait_for_run("d", "r", timeout=30, poll=0.01)
    assert run == {"state": "success"} and server.gets == 3  # the lost answer, then running, then success
    server.gets, server.delays, server.bodies = 0, [2.0], [(200, {"dag_id": "d"})]  # never in time
    with pytest.raises(TimeoutError, match=r"^DAG d not parsed after 1.5 s$"):
        api.wait_for_dag("d", timeout=1.5, poll=0.5)
    # asked again within the deadline: each poll gave up after the client's 0.5 s (one that waited for the
    # 2 s answer would have been the only one) and paused 0.5 s, so a third would have started after it
    assert server.gets == 2


def test_an_error_answer_fails_the_wait_at_once_not_after_its_timeout(slow_api):
    api, server = slow_api
    server.bodies = [(404, {"detail": "The DagRun with dag_id: `d` and run_id: `r` was not found"})]
    with pytest.raises(KeyError, match="state"):
        api.wait_for_run("d", "r", timeout=60)
    assert server.gets == 1  # not asked again: a wait until its timeout would have polled every second
