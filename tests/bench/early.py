"""Tiny benchmark runs that start with the test session and run beside it.

The incident campaign's tiny run is about three minutes of an Airflow of its own that mostly waits (a
minute of warm-up, a fault, a tail, all on the wall clock), with the monitor's settings and nothing else to
watch. Run as an ordinary test it held one of the suite's test processes for all that time. Here the first
test process that collected its test runs it in the background, from a minute after collection
(``DELAY_S``); the test is scheduled last (``LAST`` in tests/conftest.py) and only collects what the run
printed. Nothing is asserted differently: a run must exit 0 and end with its headline. (The fault
benchmark's tiny run was here too, on an Airflow of its own; it now runs attached to the shared one, its
faults scoped to its workflow: tests/bench/test_smoke_airflow.py.)

One start per session: the runs of a session share a directory named by xdist's run id (the same in
every test process), and the process that creates it starts the runs. That process waits for them
before it exits, so a run is never cut short by the test process that started it ending first; on an
interrupted session it is stopped (SIGTERM: the benchmark stops its Airflow and drops its databases),
and the kernel stops it too if that process dies (``PR_SET_PDEATHSIG``). A collected run's directory is
removed; a failed one's stays, to be read.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests import cpu_report

ROOT = Path(__file__).resolve().parents[2]
# bench -> (the test that collects it, the benchmark's arguments; "{dir}" is the run's own directory)
EARLY = {
    "incidents": (
        "tests/bench/test_smoke_incidents.py::test_a_tiny_campaign_ends_with_its_headline",
        ["--only", "error", "--warmup", "1", "--fault", "0.5", "--tail", "0.5", "--period", "20"],
    ),
}
TIMEOUT_S = 600
# With other tests selected, the runs start this long after collection, one after the other: started
# at once, beside the shared Airflow's and the Celery topology's start-ups, the four start-ups on two
# cores made each of them slower (the shared Airflow took 71 s to start instead of 22 s).
DELAY_S = 60
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex  # one id per session
_stop = threading.Event()
_runner: list[threading.Thread] = []
_current: list[subprocess.Popen] = []


def _where(bench: str) -> Path:
    return Path(tempfile.gettempdir()) / f"baton-early-{_RUN}" / bench


def _die_with_parent() -> None:  # in the child, before exec: SIGTERM when the starting process dies
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def start(selected: list[str]) -> None:
    """Run the early runs whose test is among the ``selected`` node ids, once per session: the process
    that claims the session's directory runs them, in a thread of its own."""
    benches = [bench for bench, (node, _) in EARLY.items() if node in selected]
    if not benches:
        return
    try:
        _where(benches[0]).parent.mkdir()  # the one process that creates it runs them
    except FileExistsError:
        return
    for bench in benches:
        _where(bench).mkdir()
    delay = DELAY_S if len(selected) > len(benches) else 0
    _runner.append(threading.Thread(target=_run_all, args=(benches, delay), daemon=True))
    _runner[0].start()


def _run_all(benches: list[str], delay: float) -> None:
    _stop.wait(delay)
    for bench in benches:
        where, code = _where(bench), 143  # not run: the session was interrupted
        if not _stop.is_set():
            code = _run(bench, where)
        (where / "rc.part").write_text(str(code))
        (where / "rc.part").rename(where / "rc")  # whole or absent for the reader


def _run(bench: str, where: Path) -> int:
    _, args = EARLY[bench]
    with (where / "stdout").open("w") as out, (where / "stderr").open("w") as err:
        process = subprocess.Popen(
            [sys.executable, f"bench/{bench}.py", *(arg.format(dir=where) for arg in args)],
            cwd=ROOT,
            env={**os.environ, "AIRFLOW_HOME": str(where / "airflow")},
            stdout=out,
            stderr=err,
            preexec_fn=_die_with_parent,  # this thread ends only after the process did
        )
    _current[:] = [process]
    # reaped here with its rusage: its CPU time is the session's, not that of the test running when it ends
    _, status, usage = os.wait4(process.pid, 0)
    cpu_report.reaped_in_background(usage.ru_utime + usage.ru_stime)
    process.returncode = os.waitstatus_to_exitcode(status)  # so that Popen never waits for it again
    return process.returncode


def collect(bench: str, headline: str) -> str:
    """The early run's last line, once it ended: it exited 0 and that line matches ``headline``."""
    where, deadline = _where(bench), time.monotonic() + TIMEOUT_S
    assert where.is_dir(), f"the early run of bench/{bench}.py was not started (tests/bench/early.py)"
    while not (where / "rc").exists():
        assert time.monotonic() < deadline, f"bench/{bench}.py did not end within {TIMEOUT_S} s"
        time.sleep(1)
    code = int((where / "rc").read_text())
    stdout, stderr = (where / "stdout").read_text(), (where / "stderr").read_text()
    assert code == 0, (stdout + stderr)[-3000:]
    last = stdout.strip().splitlines()[-1]
    assert re.fullmatch(headline, last), last
    shutil.rmtree(where, ignore_errors=True)  # a failed run's directory stays, to be read
    with contextlib.suppress(OSError):
        where.parent.rmdir()  # the session's, once its last run was collected
    return last


def finish(interrupted: bool) -> None:
    """At the end of this process's session: wait for the runs it started (a test of another process may
    still be collecting them), or stop them when the session was interrupted."""
    if not _runner:
        return
    if interrupted:
        _stop.set()
        for process in _current:
            process.terminate()
    _runner[0].join(timeout=120 if interrupted else DELAY_S + len(EARLY) * TIMEOUT_S)
    for process in _current:
        if process.poll() is None:  # the join timed out
            process.kill()
            process.wait()
    if interrupted:
        shutil.rmtree(_where("-").parent, ignore_errors=True)
