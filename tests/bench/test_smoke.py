"""Tiny runs of the benchmarks, so that none can stop working unseen: each must exit 0 and end with its
headline (no timing is asserted). Here the ones that need no running Airflow; test_smoke_airflow.py runs
the ones that attach to the Airflow the integration tests share, test_smoke_incidents.py collects the
incident campaign's, which starts an Airflow of its own (with the session: tests/bench/early.py), and
tests/integration/test_celery.py the Celery one on its topology (``load_bench``)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from types import ModuleType

import pytest

from tests.conftest import ROOT

SMOKE = {
    # each case a real dag.test() through `baton eval`: three versions of 12 cases, one worker each
    "evals": (
        ["--quick"],
        r"regressions caught \d+\.\d % at false alarms \d+\.\d % \(median cases to decide \d+\)",
    ),
    # one case and the baseline, both on the demo's skill agents (tests/spec/test_hostile.py runs more, with
    # the suite's settings)
    "hostile": (["--scale", "0.01", "--case", "reverse_chain"], r"worst case: \d+\.\d s, \d+ MB"),
    "parse": (
        ["--workflows", "3", "--rounds", "1"],
        r"ratio generated/handwritten, cold: \d+\.\d\d \(goal <= 1\.3\)",
    ),
    "events": (
        [
            "--events",
            "40",
            "--batch",
            "10",
            "--reps",
            "1",
            "--replay-events",
            "400",
            "--replay-steps",
            "20",
        ],
        r"replay/read: +read \d+\.\d\d s, ratio \d+\.\d .*",
    ),
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_a_tiny_run_ends_with_its_headline(bench, tmp_path):
    """As docs/tests.md runs them: from a shell that did not source scripts/env.sh (no BATON_EXTENSIONS;
    bench/parse.py failed so with a KeyError on the roster's skill agents, and bench/hostile.py with every
    case "unknown skill 'score_leads'", unseen by smoke runs that inherited the suite's settings)."""
    args, headline = SMOKE[bench]
    tiny_run(bench, args, headline, tmp_path, drop=("BATON_EXTENSIONS",))


def refuses(bench: str, args: list[str], message: str) -> None:
    """``bench/<bench>.py ARGS`` exits 2 (argparse's refusal) saying ``message`` on stderr."""
    done = subprocess.run(
        [sys.executable, f"bench/{bench}.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]


def tiny_run(
    bench: str, args: list[str], headline: str, tmp_path, drop: tuple[str, ...] = (), timeout: float = 600
) -> str:
    """Run ``bench/<bench>.py args`` (without the ``drop`` environment variables): it exits 0 and its last
    line matches ``headline``; that line."""
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"AIRFLOW_HOME": str(tmp_path / "airflow")}
    done = subprocess.run(
        [sys.executable, f"bench/{bench}.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(headline, last), last
    return last


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as the module ``bench_<name>``, for a test that runs its code in-process on
    services the test started. bench/ is not a package and is not put on ``sys.path``: its files import
    ``harness`` as a top-level module, and one of them is named ``celery`` (it would hide the real Celery
    from everything imported after). ``cli_types`` and ``harness``, which the benchmarks import, are loaded
    the same way first, under their own names."""
    for module_name, file in (("cli_types", "cli_types"), ("harness", "harness"), (f"bench_{name}", name)):
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "bench" / f"{file}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # before it runs: dataclasses and pickling look it up there
        spec.loader.exec_module(module)
    return sys.modules[f"bench_{name}"]
