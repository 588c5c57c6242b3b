"""Supervision of the Celery topology's components (devtools.topology), as docker-compose.yaml's
``restart: always`` and Kubernetes' ``restartPolicy: Always`` do: a component whose process exits when
nobody stopped it is started again after a bounded exponential backoff (1 s, 2 s, 4 s ... up to 30 s; back
to 1 s once it has stayed up for 60 s), and the supervisor says so: which component, its exit code or
signal, which restart this is and the delay. One that keeps crashing is retried at the cap, as Kubernetes'
CrashLoopBackOff does, never in a tight loop. A component stopped on purpose (``forget``) is not restarted.

Only the standard library: its tests run without Airflow (tests/deploy/test_supervise.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Backoff:
    """The wait before a restart: ``first`` doubling with each exit in a row, at most ``cap``; a component
    that stayed up ``reset_after`` seconds or more before it exited starts again from ``first``."""

    first: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def delay(self, in_a_row: int) -> float:
        """The wait before the ``in_a_row``-th restart in a row (1-based)."""
        return min(self.cap, self.first * 2 ** min(max(in_a_row, 1) - 1, 62))


@dataclass
class Restart:
    """One unexpected exit and the restart it scheduled (``started``/``pid`` once it ran)."""

    name: str
    exited_pid: int
    returncode: int
    number: int  # the component's restarts so far, this one included
    in_a_row: int  # exits without ``reset_after`` seconds up between them, this one included
    delay: float
    seen: float  # the supervisor's clock when it saw the exit
    started: float | None = None
    pid: int | None = None

    @property
    def cause(self) -> str:
        return describe_exit(self.returncode)


def describe_exit(returncode: int) -> str:
    """``exit code 3`` or ``signal SIGKILL`` (a Popen's returncode)."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def signal_group(pgid: int, sig: int) -> None:
    """``sig`` to the process group ``pgid``, if it still has a member."""
    if pgid > 1:  # never 0: killpg(0) is the caller's own group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start_group(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``argv`` as the leader of a new process group (signalled as one), its output appended to ``log``."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_groups(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM the process group of each of ``processes``, SIGKILL what is left after ``timeout``; reap
    the leaders."""
    for process in processes:
        signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(group_alive(p.pid) for p in processes):
        for process in processes:
            process.poll()  # reaps a leader, so that a zombie does not keep its group alive
        time.sleep(0.2)
    for process in processes:
        if group_alive(process.pid):
            signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Supervisor:
    """Restarts the processes of ``processes`` (a name -> Popen dict it shares with its owner, each process
    the leader of its own group) that exit, with ``spawn(name)`` -> a new Popen, after ``backoff``.

    ``tick()`` is one pass (what the thread of ``start()`` runs every ``poll_s``); ``clock`` is injectable
    so that a test drives time. The owner changes ``processes`` only under ``lock``, and calls ``forget``
    for a component it stops on purpose. An exception in the thread stops supervising, is said, and is
    kept in ``error``; ``check()`` raises it.
    """

    def __init__(
        self,
        processes: dict[str, subprocess.Popen],
        spawn: Callable[[str], subprocess.Popen],
        *,
        backoff: Backoff = Backoff(),
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 0.5,
        log_of: Callable[[str], str] | None = None,
    ):
        self.processes, self.spawn, self.backoff = processes, spawn, backoff
        self._say, self.clock, self.poll_s, self.log_of = say, clock, poll_s, log_of
        self.lock = threading.RLock()
        self.history: list[Restart] = []  # every restart scheduled, in order
        self.said: list[str] = []  # every message it gave ``say``, in order
        self.error: BaseException | None = None
        self._up_since: dict[str, float] = {}
        self._in_a_row: dict[str, int] = {}
        self._count: dict[str, int] = {}
        self._due: dict[str, Restart] = {}  # a restart waiting for its delay, by component
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, name: str) -> None:
        """``processes[name]`` was just started (by its owner): it is supervised from now."""
        with self.lock:
            self._up_since[name] = self.clock()
            self._due.pop(name, None)

    def forget(self, name: str) -> None:
        """``name`` is stopped on purpose: no restart of it, pending or to come (its owner removes it from
        ``processes`` under ``lock``). Its restart count stays, as Kubernetes keeps a pod's."""
        with self.lock:
            self._due.pop(name, None)
            self._up_since.pop(name, None)
            self._in_a_row.pop(name, None)

    def say(self, message: str) -> None:
        self.said.append(message)
        self._say(message)

    def release(self, name: str) -> subprocess.Popen:
        """Take ``name`` out of ``processes`` and of supervision, to stop it on purpose: the caller signals
        and reaps it; nothing restarts it."""
        with self.lock:
            self.forget(name)
            return self.processes.pop(name)

    def pending(self) -> dict[str, Restart]:
        """The restarts waiting for their delay, by component."""
        with self.lock:
            return dict(self._due)

    def next_due(self) -> float | None:
        """The clock time of the next restart, or None when none waits."""
        with self.lock:
            return min((r.seen + r.delay for r in self._due.values()), default=None)

    def tick(self) -> None:
        """One pass: note each supervised process that has exited, and start each whose delay is over."""
        with self.lock:
            now = self.clock()
            for name, process in list(self.processes.items()):
                if name in self._up_since and name not in self._due and process.poll() is not None:
                    self._exited(name, process, now)
            for name, restart in list(self._due.items()):
                if restart.seen + restart.delay <= now:
                    self._restart(name, restart)

    def _exited(self, name: str, process: subprocess.Popen, now: float) -> None:
        # what is left of its group (a pool, a server's workers) would share a port or a pid file with
        # the new process: killed, as a container's processes go with it
        signal_group(process.pid, signal.SIGKILL)
        up = now - self._up_since.pop(name)
        restart = self._schedule(name, process.pid, process.returncode, up, now)
        where = f"; its log: {self.log_of(name)}" if self.log_of else ""
        self.say(
            f"{name} (pid {process.pid}) exited unexpectedly with {restart.cause} after {up:.1f} s up: "
            f"restart {restart.number} in {_seconds(restart.delay)} (exits in a row: {restart.in_a_row}){where}"
        )

    def _schedule(self, name: str, pid: int, returncode: int, up: float, now: float) -> Restart:
        in_a_row = 1 if up >= self.backoff.reset_after else self._in_a_row.get(name, 0) + 1
        self._in_a_row[name] = in_a_row
        self._count[name] = self._count.get(name, 0) + 1
        delay = self.backoff.delay(in_a_row)
        restart = Restart(name, pid, returncode, self._count[name], in_a_row, delay, now)
        self.history.append(restart)
        self._due[name] = restart
        return restart

    def _restart(self, name: str, restart: Restart) -> None:
        del self._due[name]
        try:
            process = self.spawn(name)
        except Exception as error:  # e.g. OSError: counted as one more exit in a row, said, retried
            again = self._schedule(name, restart.exited_pid, restart.returncode, 0.0, self.clock())
            self.say(
                f"{name}: restart {restart.number} could not start it ({error!r}): "
                f"restart {again.number} in {_seconds(again.delay)} (exits in a row: {again.in_a_row})"
            )
            return
        self.processes[name] = process
        restart.started, restart.pid = self.clock(), process.pid
        self._up_since[name] = restart.started
        self.say(f"{name} started again (restart {restart.number}, pid {process.pid})")

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.tick()
                due = self.next_due()
                wait = self.poll_s if due is None else min(self.poll_s, max(due - self.clock(), 0.0))
                self._stopping.wait(wait)
        except BaseException as error:
            self.error = error
            self.say(f"supervision stopped: {error!r}; components that exit are no longer restarted")

    def start(self) -> None:
        """Supervise in a thread of its own until ``stop()``."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, name="topology-supervisor", daemon=True)
        self._thread.start()

    @property
    def supervising(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """End the thread (no restart from now on: the owner stops the processes after this) and drop
        every pending restart. What ended the thread, if something did, stays in ``error`` (``check()``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self.lock:
            self._due.clear()
            self._up_since.clear()
            self._in_a_row.clear()

    def check(self) -> None:
        """Raise what ended the supervising thread, if something did."""
        if self.error is not None:
            raise RuntimeError(f"the topology's supervisor failed: {self.error!r}") from self.error
