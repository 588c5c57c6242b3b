"""Run a command and print what it cost: the CPU-seconds of every process it started, beside the wall time.

    python3 scripts/cost.py bash scripts/test.sh     # what `make test` runs

The wall clock on a shared machine drifts (the same commit's suite took 482 s and 545 s an hour apart);
CPU-seconds are the suite's cost, and the figure to compare before and after a change.

Every process counts, not only the ones their parents waited for: this process makes itself the
*child subreaper* of everything below it (Linux's ``PR_SET_CHILD_SUBREAPER``), so a daemon a test
started and left, or a worker orphaned when its parent was killed, is reparented here. Once the command
has ended, each such process that has exited is reaped and its time counted; one still alive after a
grace period is named (a leak the suite should not have) and left running, and its time is not counted.

The line before it says which of those orphans cost the most, by the name the kernel keeps for each
process (``/proc/PID/comm``, 15 characters: ``airflow api_ser`` for an api-server, ``airflow worker`` for a
LocalExecutor worker, ``airflow`` for a scheduler, dag processor or triggerer): their time is in no test's own
figure (tests/cpu_report.py), since no test process waited for them.

The last line, read by scripts:
``cost: N.N CPU-seconds (user N.N + system N.N) in N.N s wall; exit N``
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter

PR_SET_CHILD_SUBREAPER = 36
#: How long the processes left behind by the command get to exit before they are named as leaks.
GRACE_SECONDS = 10.0
#: The orphans' names shown, costliest first.
SHOWN = 8
#: CPU-seconds of the orphans reaped here, by name.
ORPHANS: Counter[str] = Counter()


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; ``False`` where the kernel has no such call."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def own_children() -> list[tuple[int, str]]:
    """The live processes whose parent is this one (pid, command line), read from /proc; zombies passed over."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                # The command name sits in parentheses and may hold spaces: the fields after the last ')'.
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != me or fields[0] == "Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue  # it exited while being read
        found.append((int(entry), command[:200]))
    return found


def name_of(pid: int) -> str:
    """The kernel's name of a process (kept while it is a zombie), or ``?``."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read().strip() or "?"
    except OSError:
        return "?"


def reap(block: bool, command: int = 0) -> tuple[int, int] | None:
    """Reap one child that has exited (waiting for one when ``block``): (pid, status), or None when none has
    (or there is no child). An orphan's CPU time, its own waited-for children's included, goes to ORPHANS
    under its name, read before it is reaped."""
    try:
        found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG))
    except ChildProcessError:
        return None
    if found is None:
        return None
    name = name_of(found.si_pid)
    pid, status, usage = os.wait4(found.si_pid, 0)
    if pid != command:
        ORPHANS[name] += usage.ru_utime + usage.ru_stime
    return pid, status


def reap_exited() -> set[int]:
    """Reap every child that has exited, so that its CPU time joins RUSAGE_CHILDREN; their pids."""
    reaped = set()
    while (found := reap(block=False)) is not None:
        reaped.add(found[0])
    return reaped


def wait_reaping(pid: int) -> int:
    """Wait for the command ``pid`` to end, reaping every other process reparented here meanwhile (a zombie
    left unreaped would look alive to a test that checks a pid); its exit code, or ``-signal``."""
    while True:
        try:
            reaped = reap(block=True, command=pid)
        except InterruptedError:
            continue
        if reaped is None:  # pragma: no cover - the command is a child until it has been reaped
            return -1
        if reaped[0] == pid:
            return os.waitstatus_to_exitcode(reaped[1])


def orphans_line() -> str:
    """What the orphans reaped here cost, by name, costliest first."""
    shown = ", ".join(f"{name} {cpu:.1f}" for name, cpu in ORPHANS.most_common(SHOWN))
    more = len(ORPHANS) - SHOWN
    return f"cost: of which orphans reaped here {sum(ORPHANS.values()):.1f}: {shown}" + (
        f" (and {more} more)" if more > 0 else ""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, with its arguments")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("name the command to run, e.g. `python3 scripts/cost.py bash scripts/test.sh`")
    subreaper = become_subreaper()
    started = time.monotonic()
    try:
        process = subprocess.Popen(args.command)
    except OSError as error:  # not found, not executable
        print(f"cost: cannot run {args.command[0]!r}: {error.strerror}", file=sys.stderr)
        return 127
    # Ctrl-C reaches the whole foreground group; this process waits for the command to end.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        status = wait_reaping(process.pid)
    finally:
        signal.signal(signal.SIGINT, previous)
    wall = time.monotonic() - started
    left: list[tuple[int, str]] = []
    if subreaper:
        deadline = time.monotonic() + GRACE_SECONDS
        while True:
            # Listed first, reaped next: a child that exits between the two is reaped, not missed (listed the
            # other way round, one that exited in between was a zombie the listing passes over, never reaped).
            left = own_children()
            reaped = reap_exited()
            left = [(pid, command) for pid, command in left if pid not in reaped]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    for pid, command in left:
        print(f"cost: pid {pid} outlived the command and is not counted: {command}", file=sys.stderr)
    if not subreaper:
        print(
            "cost: no child subreaper here: processes orphaned by the command are not counted",
            file=sys.stderr,
        )
    cpu = used.ru_utime + used.ru_stime
    if ORPHANS:
        print(orphans_line(), flush=True)
    print(
        f"cost: {cpu:.1f} CPU-seconds (user {used.ru_utime:.1f} + system {used.ru_stime:.1f}) "
        f"in {wall:.1f} s wall; exit {status}",
        flush=True,
    )
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
