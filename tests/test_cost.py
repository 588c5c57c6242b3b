"""scripts/cost.py, the suite's cost line: every process the command started is counted, the ones orphaned
on the way included; one left running is named, not waited for; the command's exit code is its own."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys

from tests.conftest import ROOT

COST = ROOT / "scripts" / "cost.py"
LINE = re.compile(
    r"cost: (\d+\.\d) CPU-seconds \(user (\d+\.\d) \+ system (\d+\.\d)\) in (\d+\.\d) s wall; exit (-?\d+)"
)
BURN = "import time; end = time.process_time() + {s}\nwhile time.process_time() < end: pass"


def cost(*command: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, re.Match]:
    done = subprocess.run(
        [sys.executable, str(COST), *command], capture_output=True, text=True, timeout=timeout
    )
    last = done.stdout.strip().splitlines()[-1]
    found = LINE.fullmatch(last)
    assert found, done.stdout + done.stderr
    return done, found


def test_a_grandchild_orphaned_before_it_ends_is_counted():
    # The shell starts a burner in a subshell and exits: the burner is orphaned, reparented to cost.py, and
    # reaped there; its 1.5 CPU-seconds are in the line (a `time bash ...` would not see them).
    script = f'({sys.executable} -c "{BURN.format(s=1.5)}" &); exit 0'
    done, found = cost("bash", "-c", script)
    assert done.returncode == 0
    assert float(found[1]) >= 1.5, found[0]
    assert found[5] == "0"
    # ... and named on the line before, by the kernel's name of the process, as reaped here (orphaned)
    orphans = done.stdout.strip().splitlines()[-2]
    named = re.fullmatch(r"cost: of which orphans reaped here (\d+\.\d): (python[\w.]*) (\d+\.\d)", orphans)
    assert named and float(named[1]) >= 1.5 and named[1] == named[3], orphans


# cost.py's main with its listing of children held back until each has exited: the interleaving where the
# orphan ends between the reaping and the listing, which a loaded machine makes now and then.
LATE_LISTING = """
import os, runpy, sys, time
cost = runpy.run_path(sys.argv[1], run_name="cost")
listed = cost["own_children"]

def exited(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True

def _child(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except OSError:
        return False

def own_children_once_exited():
    deadline = time.monotonic() + 60
    while not all(exited(pid) for pid in os.listdir("/proc") if pid.isdigit() and _child(pid)):
        assert time.monotonic() < deadline, "the orphan did not end in 60 s"
        time.sleep(0.05)
    return listed()

cost["main"].__globals__["own_children"] = own_children_once_exited
sys.exit(cost["main"](sys.argv[2:]))
"""


def test_an_orphan_that_ends_while_the_children_are_listed_is_counted():
    script = f'({sys.executable} -c "{BURN.format(s=0.5)}" &); exit 0'
    done = subprocess.run(
        [sys.executable, "-c", LATE_LISTING, str(COST), "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = LINE.fullmatch(done.stdout.strip().splitlines()[-1])
    assert found and done.returncode == 0, done.stdout + done.stderr
    assert float(found[1]) >= 0.5, done.stdout + done.stderr


def test_the_exit_code_is_the_commands_and_a_process_left_running_is_named():
    # (its output elsewhere: holding the command's pipe, it would keep subprocess.run waiting its minute)
    script = "(exec -a cost-test-leak-sleeper sleep 60 >/dev/null 2>&1 &); exit 3"
    done, found = cost("bash", "-c", script)
    assert done.returncode == 3 and found[5] == "3"
    leaked = re.search(
        r"cost: pid (\d+) outlived the command and is not counted: cost-test-leak-sleeper 60", done.stderr
    )
    assert leaked, done.stderr
    with contextlib.suppress(ProcessLookupError):  # (it may have been stopped already: nothing to clean up)
        os.kill(int(leaked[1]), signal.SIGTERM)


def test_a_command_that_cannot_run_says_so_and_exits_127():
    done = subprocess.run(
        [sys.executable, str(COST), "no-such-command-baton"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 127
    assert "cost: cannot run 'no-such-command-baton': No such file or directory" in done.stderr


def test_no_command_is_a_usage_error():
    done = subprocess.run([sys.executable, str(COST)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "name the command to run" in done.stderr


def test_each_tests_cost_names_the_test_whose_processes_burnt_it(tmp_path):
    # tests/cpu_report.py: a test that starts a 1.5 CPU-second burner and waits for it is the costliest, with
    # at least that much; one that does nothing costs next to nothing; --cpu-costs=0 (the default) prints none
    (tmp_path / "test_two.py").write_text(
        "import subprocess, sys\n"
        f"def test_burns():\n    subprocess.run([sys.executable, '-c', {BURN.format(s=1.5)!r}], check=True)\n"
        "def test_idles():\n    pass\n"
        "def test_burns_in_a_thread_that_says_so():\n"  # a background thread's reaped child: the session's
        "    import os, threading\n    from tests import cpu_report\n"
        f"    child = subprocess.Popen([sys.executable, '-c', {BURN.format(s=1.5)!r}])\n"
        "    def reap():\n        usage = os.wait4(child.pid, 0)[2]\n"
        "        cpu_report.reaped_in_background(usage.ru_utime + usage.ru_stime)\n"
        "    thread = threading.Thread(target=reap)\n    thread.start()\n    thread.join()\n",
        encoding="utf-8",
    )

    def run(*flags: str) -> str:
        command = [sys.executable, "-m", "pytest", "-p", "tests.cpu_report", "-q", "-p", "no:cacheprovider"]
        env = os.environ | {"PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        done = subprocess.run(
            [*command, *flags, str(tmp_path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    shown = run("--cpu-costs=1")
    lines = shown.splitlines()
    heading = next(i for i, text in enumerate(lines) if "costliest 1 tests in CPU-seconds" in text)
    line, total = lines[heading + 1 : heading + 3]
    burnt, nodeid = line.split()
    assert (nodeid, float(burnt) >= 1.5) == ("test_two.py::test_burns", True), shown
    assert re.fullmatch(r"\s*\d+\.\d  in all 3 tests \(the processes nobody waited for aside\)", total), shown
    assert float(total.split()[0]) - float(burnt) < 0.5, shown  # the idle test's and the thread's
    assert "costliest" not in run()
