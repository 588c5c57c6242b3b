"""A tiny run of bench/peers.py exactly as its docstring runs it (``.venv/bin/python bench/peers.py``), only
smaller (``--quick``: 3 templates of each kind parsed once, its own Airflow for one run of each DAG of (b)
and (c), 10 calls fanned out), from a shell that did not source scripts/env.sh. It installs the peers into a
throwaway venv from the package index and starts an Airflow of its own (a few minutes). No timing is
asserted: it exits 0 and its last line is the headline, in the issue's words."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration  # it starts a service (an Airflow)

HEADLINE = (
    r"parse 3 templates: Baton \d+\.\d\d x hand-written \(dag-factory \d+\.\d\d x, blueprint \d+\.\d\d x\); "
    r"trigger-to-success Baton \d+\.\d\d x plain \(common-ai \d+\.\d\d x\); "
    r"fan-out Baton \d+\.\d\d x gather \(mapped \d+\.\d\d x\)"
)


@pytest.mark.timeout(1800)  # the peers' venv, their parses and an Airflow of its own: 5-18 min by the load
def test_a_quick_run_ends_with_its_headline(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "BATON_EXTENSIONS"} | {"AIRFLOW_HOME": str(tmp_path)}
    done = (
        subprocess.run(  # tests/bench/test_smoke.py's tiny_run, with the time an install and an Airflow take
            [sys.executable, "bench/peers.py", "--quick"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(HEADLINE, lines[-1]), lines[-1]
    assert any(
        re.fullmatch(r"peers installed in .*: dag-factory 1\.1\.0, airflow-blueprint 0\.5\.0", line)
        for line in lines
    )
