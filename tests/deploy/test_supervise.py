"""devtools.supervise: the Celery topology's components restarted as compose's ``restart: always`` does, on
tiny real children (``python -c``) instead of Airflow: one that exits or is SIGKILLed comes back with a new
pid after a backoff that doubles up to its cap, and the supervisor says which, why, which restart and the
delay; one stopped on purpose is not restarted and leaves no process; one that exits at once, again and
again, is retried at the cap, never in a tight loop (counted on an injected clock, not timed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.supervise import Backoff, Supervisor, describe_exit, group_alive, start_group, stop_groups

SLEEPER = "import time; time.sleep(600)"
WAIT_S = 60  # the bound of every wait for a real process below (none is expected to take a second)
FAST = Backoff(first=0.05, cap=0.2, reset_after=60)


class Children:
    """Real ``python -c`` children, each the leader of its own group, marked so that none outlives the test."""

    def __init__(self, tmp_path: Path):
        self.tmp_path, self.marker = tmp_path, f"supervise-test-{uuid.uuid4().hex}"
        self.codes: list[str] = []  # the code of each next child; then SLEEPER

    def spawn(self, name: str) -> subprocess.Popen:
        code = self.codes.pop(0) if self.codes else SLEEPER
        argv = [sys.executable, "-c", code, self.marker]
        return start_group(argv, dict(os.environ), self.tmp_path / f"{name}.log")

    def alive(self) -> list[int]:
        """The pids of the test's children still running (zombies excluded)."""
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                mine = proc.name.isdigit() and self.marker.encode() in (proc / "cmdline").read_bytes()
                if mine and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(proc.name))
            except (OSError, IndexError):
                continue
        return pids


class FakeClock:
    """The supervisor's clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingClock:
    """The real clock, counting the supervisor's readings of it (each pass of its thread reads it)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return time.monotonic()


@pytest.fixture
def children(tmp_path):
    made = Children(tmp_path)
    yield made
    leftover = made.alive()
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert leftover == [], "a child of the test outlived it"


@pytest.fixture
def supervise(children):
    """A Supervisor over ``children``'s processes; at the end: stopped, its processes stopped, and a
    failure of its thread fails the test."""
    made: list[Supervisor] = []

    def make(*names: str, **options) -> tuple[Supervisor, list[str]]:
        said: list[str] = []
        processes: dict[str, subprocess.Popen] = {}
        sup = Supervisor(
            processes, children.spawn, say=said.append, **{"backoff": FAST, "poll_s": 0.01, **options}
        )
        for name in names:
            processes[name] = children.spawn(name)
            sup.watch(name)
        made.append(sup)
        return sup, said

    yield make
    for sup in made:
        sup.stop()
        stop_groups(list(sup.processes.values()), timeout=10)
        sup.check()


def until(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` until it holds (a bound, not a timed assertion: AssertionError names ``what``)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not after {WAIT_S} s: {what}"
        time.sleep(0.01)


def test_the_backoff_doubles_from_its_first_wait_up_to_its_cap():
    assert [Backoff().delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert Backoff().delay(10_000) == 30  # no overflow after days of crashing
    assert [describe_exit(3), describe_exit(-9), describe_exit(-15)] == [
        "exit code 3",
        "signal SIGKILL",
        "signal SIGTERM",
    ]


def test_a_component_that_exits_with_a_code_is_started_again_with_a_new_pid_and_said(supervise, children):
    children.codes = ["import sys; sys.exit(3)"]
    sup, said = supervise("scheduler")
    first = sup.processes["scheduler"]
    sup.start()
    until(lambda: sup.processes["scheduler"] is not first, "the scheduler restarted")
    again = sup.processes["scheduler"]
    assert again.pid != first.pid and again.poll() is None
    [restart] = sup.history
    assert (restart.name, restart.returncode, restart.number, restart.in_a_row, restart.delay) == (
        "scheduler", 3, 1, 1, 0.05,
    )  # fmt: skip
    assert restart.pid == again.pid and restart.started - restart.seen >= restart.delay
    assert said[0].startswith(f"scheduler (pid {first.pid}) exited unexpectedly with exit code 3 after ")
    assert said[0].endswith("restart 1 in 0.05 s (exits in a row: 1)")
    assert said[1] == f"scheduler started again (restart 1, pid {again.pid})"


def test_a_sigkilled_component_comes_back_and_twice_in_a_row_waits_twice_as_long(supervise):
    sup, said = supervise("dag-processor", "triggerer")
    sup.start()
    for kill in (1, 2):  # hostile: the same component again as soon as it is back
        before = sup.processes["dag-processor"]
        os.killpg(before.pid, signal.SIGKILL)
        until(
            lambda b=before: sup.processes["dag-processor"] is not b, f"the dag processor restarted ({kill})"
        )
    assert [(r.returncode, r.number, r.in_a_row, r.delay) for r in sup.history] == [
        (-9, 1, 1, 0.05),
        (-9, 2, 2, 0.1),
    ]
    assert "exited unexpectedly with signal SIGKILL" in said[0] and said[0].endswith(
        "restart 1 in 0.05 s (exits in a row: 1)"
    )
    assert said[2].endswith("restart 2 in 0.1 s (exits in a row: 2)")
    assert sup.processes["dag-processor"].poll() is None
    assert {r.name for r in sup.history} == {"dag-processor"}  # the triggerer was left alone


def test_a_component_stopped_on_purpose_is_not_restarted_and_leaves_no_process(supervise, children):
    sup, said = supervise("worker-1", "worker-2")
    clock = sup.clock = CountingClock()
    sup.start()
    released = sup.release("worker-1")
    stop_groups([released], timeout=10)
    passes = clock.calls
    until(lambda: clock.calls > passes + 20, "the supervisor's thread ran its passes")  # it had its chances
    assert sup.history == [] and said == [] and list(sup.processes) == ["worker-2"]
    assert released.returncode == -signal.SIGTERM and not group_alive(released.pid)

    sup.stop()  # all of it, as Ctrl-C does: the supervision first, then the processes
    stop_groups([sup.processes.pop("worker-2")], timeout=10)
    sup.tick()  # a pass after stop() restarts nothing either
    assert sup.history == [] and sup.processes == {} and children.alive() == []


def test_a_component_that_keeps_exiting_at_once_is_retried_at_the_cap_not_in_a_tight_loop(
    supervise, children
):
    children.codes = ["raise SystemExit(1)"] * 100
    clock = FakeClock()
    sup, said = supervise("triggerer", backoff=Backoff(), clock=clock)  # 1 s doubling to 30 s
    window = 300.0  # five minutes of the supervisor's clock, driven by the test
    while True:
        sup.processes["triggerer"].wait(timeout=WAIT_S)  # the real child has exited
        sup.tick()  # sees it: a restart is due
        due = sup.next_due()
        assert due is not None and due > clock.now, "an exit not followed by a wait"
        if due > window:
            break
        clock.now = due
        sup.tick()  # starts it again
        assert sup.pending() == {}
    started = [r.started for r in sup.history if r.started is not None]
    assert [r.delay for r in sup.history] == [1, 2, 4, 8, 16, *[30] * 9]
    assert started == [1, 3, 7, 15, 31, 61, 91, 121, 151, 181, 211, 241, 271]  # 13 in five minutes
    assert [r.in_a_row for r in sup.history] == list(range(1, 15))
    assert said[-1].endswith("restart 14 in 30 s (exits in a row: 14)")


def test_a_component_up_for_the_reset_time_starts_again_from_the_first_wait(supervise):
    clock = FakeClock()
    sup, _ = supervise("scheduler", backoff=Backoff(), clock=clock)

    def crash_after(up: float) -> None:
        clock.now += up
        process = sup.processes["scheduler"]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=WAIT_S)
        sup.tick()
        clock.now = sup.next_due()
        sup.tick()

    for up in (0, 5, 59.5, 60, 1):  # 60: up for reset_after
        crash_after(up)
    assert [(r.in_a_row, r.delay) for r in sup.history] == [(1, 1), (2, 2), (3, 4), (1, 1), (2, 2)]


def test_a_restart_that_cannot_start_is_said_and_retried_with_the_next_wait(supervise, children):
    failures = ["no such file"]

    def spawn(name: str) -> subprocess.Popen:
        if failures:
            raise OSError(failures.pop())
        return children.spawn(name)

    clock = FakeClock()
    children.codes = ["raise SystemExit(2)"]
    sup, said = supervise("api-server", clock=clock, backoff=Backoff())
    sup.spawn = spawn
    sup.processes["api-server"].wait(timeout=WAIT_S)
    for _ in range(2):
        sup.tick()
        clock.now = sup.next_due()
        sup.tick()
    assert said[1] == "api-server: restart 1 could not start it (OSError('no such file')): restart 2 in 2 s " \
        "(exits in a row: 2)"  # fmt: skip
    assert (
        sup.processes["api-server"].poll() is None and sup.history[-1].pid == sup.processes["api-server"].pid
    )


def test_a_failure_of_the_supervising_thread_is_kept_said_and_raised(supervise):
    sup, said = supervise("scheduler")
    broken = threading.Event()

    def clock() -> float:
        broken.set()
        raise ValueError("the clock broke")

    sup.clock = clock
    sup.start()
    until(lambda: not sup.supervising, "the thread ended")
    assert broken.is_set() and said == [
        "supervision stopped: ValueError('the clock broke'); components that exit are no longer restarted"
    ]
    with pytest.raises(
        RuntimeError, match=r"the topology's supervisor failed: ValueError\('the clock broke'\)"
    ):
        sup.check()
    sup.error = None  # shown above; the fixture's check is for failures nobody expected
