"""bench/priorities.py without an Airflow: what its ``--write-dags`` writes (Baton's arm and the default arm built
from the same templates, the default arm on Airflow's own weight rule), its arrivals, its refusals, and the check
of its headline that its tiny run on the shared Airflow passes (tests/bench/test_smoke_airflow.py: with an Airflow of
its own, its start, about a CPU-minute here, and the 40 task processes of --quick would cost more than the two
CPU-minutes a smoke run may take). No timing is asserted."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_smoke import load_bench, refuses
from tests.conftest import ROOT

HEADLINE = (
    r"deadline misses: Baton (?P<baton>\d+) of (?P<m>\d+) \((?P<baton_pct>\d+\.\d) %\), default (?P<default>\d+) "
    r"of (?P<n>\d+) \((?P<default_pct>\d+\.\d) %\); bulk throughput Baton/default (?P<ratio>\d+\.\d\d); "
    r"longest bulk wait (?P<wait>\d+) s"
)


def check_headline(line: str, urgent: int | None = None) -> dict[str, float]:
    """The headline's figures, checked for consistency: N <= M, each percentage N/M, the same M in both arms
    (``urgent`` runs an arm, when known); a positive throughput ratio."""
    match = re.fullmatch(HEADLINE, line)
    assert match, line
    got = {key: float(value) for key, value in match.groupdict().items()}
    assert got["m"] == got["n"] and (urgent is None or got["m"] == urgent), line
    for arm in ("baton", "default"):
        assert 0 <= got[arm] <= got["m"], line
        assert got[f"{arm}_pct"] == round(100 * got[arm] / got["m"], 1), line
    assert got["ratio"] > 0, line
    return got


def test_the_headline_check_refuses_inconsistent_figures():
    good = "deadline misses: Baton 1 of 24 (4.2 %), default 14 of 24 (58.3 %); bulk throughput Baton/default 0.98; "
    assert check_headline(good + "longest bulk wait 212 s")["wait"] == 212
    for bad in (
        "deadline misses: Baton 25 of 24 (104.2 %), default 14 of 24 (58.3 %); bulk throughput Baton/default 0.98; ",
        "deadline misses: Baton 1 of 24 (4.0 %), default 14 of 24 (58.3 %); bulk throughput Baton/default 0.98; ",
        "deadline misses: Baton 1 of 24 (4.2 %), default 14 of 20 (70.0 %); bulk throughput Baton/default 0.98; ",
    ):
        with pytest.raises(AssertionError):
            check_headline(bad + "longest bulk wait 212 s")


def _write(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/priorities.py", "--write-dags", str(folder), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_write_dags_gives_both_arms_the_same_templates_under_their_own_weight_rules(tmp_path, monkeypatch):
    from baton.compile.loader import load_dags
    from baton.queue import is_baton_rule, run_deadline_s, template_priority

    dags = tmp_path / "dags"
    done = _write(dags, "--step-seconds", "2", "--slots", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    settings = json.loads(done.stdout.strip().splitlines()[-1])
    connection = json.loads(settings["AIRFLOW_CONN_BATON_BENCH_PRIORITIES"])
    assert connection["extra"] == {"model": "baton:offline", "offline_delay_s": 2.0}
    again = _write(dags)  # nothing of a dags folder is replaced
    assert again.returncode == 2 and "prio_urgent.yaml" in again.stderr, again.stderr[-2000:]

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    baton = load_dags(dags / "baton_workflows.py")
    default = runpy.run_path(str(dags / "priorities_default.py"))
    for name, level in (("prio_urgent", 75), ("prio_bulk", 25)):
        ours, theirs = baton[name], default[f"{name}_default"]
        assert [t.task_id for t in ours.tasks] == [t.task_id for t in theirs.tasks] == ["first", "second"]
        assert {t.pool for t in [*ours.tasks, *theirs.tasks]} == {"baton_agent_prio_worker"}
        assert ours.max_active_runs == theirs.max_active_runs == 200
        assert run_deadline_s(ours) == run_deadline_s(theirs)
        for task in ours.tasks:
            assert is_baton_rule(task.weight_rule) and task.priority_weight == level
        for task in theirs.tasks:
            assert (task.weight_rule, task.priority_weight) == ("downstream", 1)
    # deadline 9 tasks of 2 s + 2 s; the bulk's bound 2/3 of the 3 slots' time for an arm's 36 runs of 2 tasks
    # of 4 s (96 s)
    assert run_deadline_s(baton["prio_urgent"]) == 36.0 and run_deadline_s(baton["prio_bulk"]) is None
    assert template_priority(baton["prio_bulk"], baton["prio_bulk"].tasks[0])[1] == 64.0


def test_the_arrivals_are_seeded_bursts_of_bulk_then_urgent():
    bench = load_bench("priorities")
    setup = bench.Setup(urgent=12, bulk=24, step_s=3.0, slots=2)
    schedule = bench.arrivals(setup, 57)
    assert schedule == bench.arrivals(setup, 57) and schedule != bench.arrivals(setup, 58)
    kinds = [kind for _, kind in schedule]
    assert kinds.count(bench.URGENT) == 12 and kinds.count(bench.BULK) == 24
    assert [at for at, kind in schedule if kind == bench.BULK].count(0.0) == 14  # the first burst
    assert min(at for at, kind in schedule if kind == bench.URGENT) > 0
    assert [at for at, _ in schedule] == sorted(at for at, _ in schedule)
    assert max(at for at, _ in schedule) <= bench.SPAN * setup.work_s


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--urgent", "0"], "argument --urgent: 0 is not between 1 and 200"),
        (["--slots", "9"], "argument --slots: 9 is not between 1 and 8"),
        (["--step-seconds", "nan"], "argument --step-seconds: nan is not between 0.1 and 60 s"),
        (["--warmup", "-1"], "argument --warmup: -1 is not between 0 and 50"),
        (
            ["--attach", "/nonexistent", "--slots", "3"],
            "--attach measures the DAGs as --write-dags wrote them",
        ),
    ],
)
def test_what_the_priorities_benchmark_refuses(args, message):
    refuses("priorities", args, message)
