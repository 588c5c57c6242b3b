"""A PostgreSQL cluster and a Redis server of one's own, for the platform-fault benchmark (bench/faults_platform.py)
and its tests: they restart, stop for a while and start again without touching the machine's servers, on
which the rest of the test suite runs.

:class:`PrivatePostgres` makes a cluster with PostgreSQL's own ``initdb`` and runs it with ``pg_ctl`` on a
free port of 127.0.0.1 (as the ``postgres`` user when this process is root, since PostgreSQL refuses to run
as root); :class:`PrivateRedis` runs ``redis-server`` on a free port, keeping nothing on disk, as the
machine's does. Both are context managers: leaving the block stops the server and removes its files; a
server left by a process that died without that (SIGKILLed) is stopped and removed when the next is made.

Only the standard library and the servers' own programs (found on ``PATH``, else in ``pg_config --bindir``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from devtools.standalone import free_port

START_TIMEOUT_S = 60


class ServerError(RuntimeError):
    """A private server could not be made, started or stopped: the command and the end of its output."""


def _program(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10).stdout
        candidate = Path(bindir.strip()) / name
        if candidate.is_file():
            return str(candidate)
    raise ServerError(f"{name} is not installed (looked on PATH and in pg_config --bindir)")


def _run(argv: list[str], timeout: float = START_TIMEOUT_S) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise ServerError(f"{' '.join(argv[:4])} ... took more than {timeout} s") from error
    if done.returncode != 0:
        raise ServerError(
            f"{' '.join(argv[:4])} ... exited {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"
        )
    return done.stdout


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


OWNER = "owner.pid"  # the pid of the process that made a server, in the server's root
SERVER = "server.pid"  # a Redis's own pid, in its root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` has exited (gone, or a zombie that no longer holds its sockets), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (OSError, IndexError):
            return
        time.sleep(0.05)


def reap_orphans(tmp: Path) -> list[Path]:
    """Stop and remove the servers in ``tmp`` whose maker died without removing them (a benchmark SIGKILLed by
    its caller's timeout cannot clean up, and neither server is its child for long: ``pg_ctl`` daemonizes
    PostgreSQL, Redis is in a session of its own); the roots removed."""
    reaped = []
    for owner in sorted(tmp.glob(f"baton-pg-*/{OWNER}")) + sorted(tmp.glob(f"baton-redis-*/{OWNER}")):
        root = owner.parent
        try:
            if _alive(int(owner.read_text())):
                continue
        except (OSError, ValueError):
            continue
        if root.name.startswith("baton-pg-"):
            server = PrivatePostgres.__new__(PrivatePostgres)
            server.root, server.data, server._as_postgres = root, root / "data", os.geteuid() == 0
            server.destroy()
        else:
            with contextlib.suppress(OSError, ValueError):
                pid = int((root / SERVER).read_text())
                os.killpg(pid, signal.SIGKILL)
                _wait_gone(pid)
            shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1:``port`` with trust auth.

    ``url`` is its admin URL (the ``postgres`` role and database). :meth:`restart` is a fast restart
    (``pg_ctl restart -m fast``: every connection cut, as a minor upgrade does); :meth:`stop` and
    :meth:`start` leave it down in between for as long as the caller waits."""

    def __init__(self, max_connections: int = 300):
        self.port = free_port()
        self.max_connections = max_connections
        self.root = Path(tempfile.mkdtemp(prefix="baton-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _argv(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)

    def create(self) -> PrivatePostgres:
        reap_orphans(Path(tempfile.gettempdir()))
        (self.root / OWNER).write_text(str(os.getpid()))
        self.root.chmod(0o755)  # the postgres user reads its data directory through this one
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        _run(self._argv(_program("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync"))  # fmt: skip
        return self.start()

    def _ctl(self, *argv: str) -> None:
        _run(self._argv(_program("pg_ctl"), "-D", str(self.data), *argv))

    def start(self) -> PrivatePostgres:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            f"-c max_connections={self.max_connections}"
        )
        self._ctl("-l", str(self.log), "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "-t", str(START_TIMEOUT_S), "stop")

    def restart(self) -> None:
        self.stop("fast")
        self.start()

    @property
    def running(self) -> bool:
        return _listening(self.port)

    def destroy(self) -> None:
        with contextlib.suppress(ServerError):
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc: object) -> None:
        self.destroy()


class PrivateRedis:
    """``redis-server`` on 127.0.0.1:``port``, nothing kept on disk (a restart empties it, as the machine's
    and a default container's do), in its own process group. ``url`` is its database 0."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="baton-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        if self.process is None and not (self.root / OWNER).exists():  # the first start
            reap_orphans(self.root.parent)
            (self.root / OWNER).write_text(str(os.getpid()))
        argv = [_program("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.root)]  # fmt: skip
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (self.root / SERVER).write_text(str(self.process.pid))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = (self.root / "redis.log").read_text(errors="replace")[-1500:]
                raise ServerError(f"redis-server did not listen on port {self.port}: {log_text}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None and _listening(self.port)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
