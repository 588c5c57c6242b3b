"""Runs ``airflow standalone`` for a checkout in its own process group, and talks to it over REST
(``AirflowAPI``, which also talks to an Airflow started otherwise, e.g. by ``make run``).

Used by the integration tests and the benchmarks. Airflow is started through ``scripts/env.sh``,
so it has exactly the settings of ``make run``; only the home, the port and the dags folder differ, and,
when asked, ``[api] base_url``'s path (``http://localhost:PORT/airflow``) and the auth manager (FAB's, with
an admin and a viewer whose passwords it writes in the home).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

from devtools.supervise import group_alive  # (the process-group helpers the topology supervises with)

ROOT = Path(__file__).resolve().parents[1]
ENV_SH = ROOT / "scripts" / "env.sh"
# How long start() waits for a new Airflow to answer its health check. Alone on this machine one takes 20-60 s; in
# the test suite's first minutes four start at once on two cores (the shared one, the monitor's, the Celery
# topology's and the incident benchmark's) beside three test processes collecting, and on CI's slowest run the
# shared one was not up after 180 s (its 36 tests errored) and the benchmark's took 171 s. Tests that start one
# have pytest's timeout raised to fit it (tests/conftest.py, AIRFLOW_STARTING_FIXTURES).
START_TIMEOUT_S = 480
# How long wait_for_dag() waits for a DAG's first parse (see there).
FIRST_PARSE_TIMEOUT_S = 300

# Test-only settings that must not leak into the Airflow under test.
_DROPPED = ("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", "AIRFLOW_CONN_BATON_STORE")

Auth = Literal["simple", "fab"]
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
SIMPLE_PASSWORDS = "simple_auth_manager_passwords.json.generated"  # the simple auth manager writes it
FAB_PASSWORDS = "baton-fab-users.json"  # Standalone writes it: the FAB users it created, by name
# A FAB role of one permission: Airflow's UI lists a plugin's views (Baton's pages) only to a user who may read
# its plugins (GET /api/v2/plugins), which FAB's Op and Admin may and its Viewer and User may not.
PLUGIN_READER = "Plugin reader"
# FAB's users Standalone creates: name -> their FAB roles (a viewer sees Baton's pages, cannot act)
FAB_USERS = {"admin": ["Admin"], "viewer": ["Viewer", PLUGIN_READER]}
_BASE_PATH = re.compile(r"^(/(?!\.\.?(/|$))[A-Za-z0-9._~-]{1,100}){1,10}$")  # no '.' or '..' segment


def _group_members(pgid: int) -> list[str]:
    """``pid command`` of each process of the group (for the log when SIGTERM was not enough)."""
    members = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            if proc.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                command = (proc / "cmdline").read_bytes()[:200].replace(b"\0", b" ")
                members.append(f"{proc.name} {command.decode(errors='replace')}")
        except (OSError, ValueError, IndexError):
            continue
    return members


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL database ``<prefix>_<pid>_<random>`` on the server of ``admin_url`` (a URL of any
    database there, any driver): its URL in the same form, and the database dropped on exit."""
    from sqlalchemy import create_engine, make_url, text

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    # pre-pinged: the server may have restarted meanwhile (the platform campaign restarts it), and the drop
    # must not fail on the connection the create left in the pool
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


class AirflowAPI:
    """The REST API of a running Airflow as its ``admin``: with the simple auth manager, the password Airflow
    generated in ``home``; with FAB's (``auth="fab"``), the one Standalone gave it. ``url`` is Airflow's
    address with base_url's path, if any (``http://localhost:8080/airflow``); e.g. the Airflow of ``make run``:
    ``AirflowAPI(url, ROOT / ".airflow")``."""

    def __init__(self, url: str, home: Path, auth: Auth = "simple"):
        self.url = url
        self.home = home
        self.auth = auth
        self._token: str | None = None
        self._client: tuple[int, httpx.Client] | None = None

    @property
    def http(self) -> httpx.Client:
        """One HTTP client per process, its connections kept alive. Not ``httpx.get`` and the like: each
        call of those builds a client, and with it an SSL context (about 23 ms of CPU here, even for
        http://); the tests poll runs every 0.2 s, so that was a tenth of a core per waiting test, and
        with it a new TCP connection to the api-server each time. A forked child builds its own."""
        if self._client is None or self._client[0] != os.getpid():
            self._client = (os.getpid(), httpx.Client(timeout=30))
        return self._client[1]

    def close(self) -> None:
        """Close the HTTP client's connections (the next request opens new ones)."""
        if self._client is not None and self._client[0] == os.getpid():
            self._client[1].close()
        self._client = None

    @property
    def password(self) -> str:
        return self.password_of("admin")

    def password_of(self, user: str) -> str:
        """``user``'s password: the simple auth manager's generated one, or the one Standalone gave FAB's."""
        return json.loads(
            (self.home / (FAB_PASSWORDS if self.auth == "fab" else SIMPLE_PASSWORDS)).read_text()
        )[user]

    def token(self) -> str:
        """A JWT from ``POST /auth/token``, as an external system would get one."""
        if self._token is None:
            response = self.http.post(
                f"{self.url}/auth/token", json={"username": "admin", "password": self.password}
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"{self.url}/api/v2{path}", headers=headers, **kwargs)

    def wait_for_dag(
        self, dag_id: str, timeout: float = FIRST_PARSE_TIMEOUT_S, poll: float = 1.0
    ) -> dict[str, Any]:
        """The DAG as the API gives it, once the DAG processor has parsed it. A bundle's first parse waits
        its turn with everything else that starts: in a suite run on a slow day (three Airflows starting and
        three test processes collecting, on two cores) 120 s were not enough."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self._poll(f"/dags/{dag_id}")
            if response is not None and response.status_code == 200:
                return response.json()
            time.sleep(poll)  # once a second, as wait_for_run: a request costs the api-server ~11 ms of CPU
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout} s")

    def _poll(self, path: str) -> httpx.Response | None:
        """``GET path``, or None when the API did not answer within the client's timeout: a loaded api-server
        (on a slow day, one answer of a poll took over 30 s) is asked again, until the caller's deadline."""
        try:
            return self.api("GET", path)
        except httpx.TimeoutException:
            return None

    def write(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A write through the API, asked again (up to 3 times) when SQLite's single writer made it answer 500
        "Database error" (the scheduler was writing): a caller would retry it too."""
        for _ in range(3):
            response = self.api(method, path, **kwargs)
            if response.status_code != 500 or "Database error" not in response.text:
                break
            time.sleep(2)
        return response

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> httpx.Response:
        """A new run (``write``: asked again while SQLite is busy)."""
        return self.write("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 180, poll: float = 1.0
    ) -> dict[str, Any]:
        """The run once it ended. Asked once a second: each answer costs the api-server an authenticated
        request and a query, ~11 ms of CPU (and this process ~2 ms), and the suite waits on runs for many
        minutes: at the 0.2 s it polled before, 4.1 CPU-s a minute of waiting, at 1 s 1.0 (measured side by side
        on one Airflow, 60 s each). No test measures a run's speed by it; the benchmarks poll with their own
        clients."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self._poll(f"/dags/{dag_id}/dagRuns/{run_id}")
            run = response.json() if response is not None else None  # None: no answer in time, ask again
            # an error's body (a run that does not exist) has no state: KeyError at once, as before the retry
            if run is not None and run["state"] in ("success", "failed"):
                return run
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} of {dag_id} not finished after {timeout} s")


# What airflow standalone runs (airflow/cli/commands/standalone_command.py), one process each; when one ends,
# the shell ends (start() then stops the rest: they share its process group).
_COMPONENTS = "airflow scheduler & airflow dag-processor & airflow triggerer & airflow api-server & wait -n"


class AttachError(Exception):
    """No running Standalone to attach to (the message says what was found instead)."""


class Standalone(AirflowAPI):
    """One ``airflow standalone`` with its own home (SQLite) and dags folder.

    :param home: the AIRFLOW_HOME to use (created if missing).
    :param dags_folder: the folder of DAG files (default: the checkout's ``dags/``).
    :param settings: extra environment settings, e.g. ``{"AIRFLOW__CORE__PARALLELISM": "8"}``.
    :param base_path: ``[api] base_url``'s path, e.g. ``/airflow``: Airflow then answers at
        ``http://localhost:PORT/airflow`` and only there (default: none, at ``http://127.0.0.1:PORT``).
    :param auth: ``"simple"`` (``airflow standalone``'s own) or ``"fab"``: FAB's auth manager, with the users
        of ``FAB_USERS`` and passwords it writes in the home. ``airflow standalone`` forces the simple auth
        manager, so with FAB this runs what it runs (the database's migration, then the scheduler, the dag
        processor, the triggerer and the api-server) itself.
    :param python_bin: the Python of another environment (e.g. a fresh venv with Baton's wheel installed): its
        ``airflow``, ``baton`` and ``python`` run, first on the PATH after scripts/env.sh's settings (default:
        the checkout's ``.venv``).
    :param seed_demo: fill the demo business database before Airflow starts, as ``make run`` does (an
        environment without the demo, ``baton-demo``, has none to fill).
    """

    DESCRIPTOR = "baton-standalone.json"  # in the home: how another process attaches (see attach())

    def __init__(
        self,
        home: Path,
        dags_folder: Path | None = None,
        settings: dict[str, str] | None = None,
        port: int | None = None,
        *,
        base_path: str = "",
        auth: Auth = "simple",
        python_bin: Path | None = None,
        seed_demo: bool = True,
    ):
        if base_path and not _BASE_PATH.match(base_path):
            raise ValueError(f"base_path {base_path[:200]!r}: give a path like '/airflow' (no trailing '/')")
        if auth not in ("simple", "fab"):
            raise ValueError(f"auth {auth!r}: give 'simple' or 'fab'")
        self.port = port or free_port()
        # behind a path, base_url's host is the one a browser uses (FAB's login redirects to it; its cookies)
        host = "localhost" if base_path else "127.0.0.1"
        super().__init__(f"http://{host}:{self.port}{base_path}", home, auth)
        self.base_path = base_path
        self.seed_demo = seed_demo
        self.dags_folder = Path(dags_folder or ROOT / "dags")
        self.settings = dict(settings or {})
        self.env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        self.env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
        )
        # set after scripts/env.sh, which sets these whatever the environment says (see _shell)
        self.after_env: dict[str, str] = {}
        if python_bin is not None:
            self.after_env["PATH"] = f"{Path(python_bin).parent}:{os.environ.get('PATH', '')}"
        if base_path:
            self.env["AIRFLOW__API__BASE_URL"] = self.url
            self.after_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = (
                f"http://127.0.0.1:{self.port}{base_path}/execution/"  # the execution API is under the path too
            )
        if auth == "fab":
            # the components are separate processes that must share these (airflow standalone's share one
            # config file); env.sh keeps values it did not derive
            self.env.update(
                AIRFLOW__CORE__AUTH_MANAGER=FAB_AUTH_MANAGER,
                AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
                AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
            )
        self.env.update(self.settings)
        self.process: subprocess.Popen | None = None
        self.attached = False  # True: another process started it and stops it; stop() leaves it running
        self.tmp: Path | None = None  # its processes' TMPDIR while they run (see _make_tmp)
        self._tmpdir_before: str | None = None

    @classmethod
    def attach(cls, home: Path, timeout: float = 10) -> Standalone:
        """The Standalone another process started with ``home`` and still runs (e.g. the test suite's
        shared Airflow): its port, dags folder and settings from the file start() wrote there. It must
        answer its health check; ``stop()`` leaves it running.

        :raises AttachError: no such file, a file that is not start()'s, or no healthy Airflow behind it.
        """
        descriptor = Path(home) / cls.DESCRIPTOR
        try:
            if descriptor.stat().st_size > 1_000_000:  # start() writes a few hundred bytes
                raise ValueError(f"{descriptor.stat().st_size:,} bytes")
            saved = json.loads(descriptor.read_text(encoding="utf-8"))
            port, dags, settings = saved["port"], saved["dags_folder"], saved["settings"]
            if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
                raise TypeError(f"port {port!r} is not a TCP port")
            if not (isinstance(dags, str) and isinstance(settings, dict)):
                raise TypeError("dags_folder or settings of the wrong type")
        except FileNotFoundError:
            raise AttachError(f"{descriptor}: not found; is an Airflow started by devtools.standalone running "
                              "with this AIRFLOW_HOME?") from None  # fmt: skip
        except KeyError as error:
            raise AttachError(f"{descriptor}: not a file Standalone.start() wrote (no {error})") from None
        except (OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError) as error:
            raise AttachError(f"{descriptor}: not a file Standalone.start() wrote ({error})") from None
        base_path = saved.get("base_path", "")  # absent from a file written before base_path and auth were
        auth = saved.get("auth", "simple")
        try:
            airflow = cls(Path(home), Path(dags), {str(k): str(v) for k, v in settings.items()}, port=port,
                          base_path=base_path, auth=auth)  # fmt: skip
        except (ValueError, TypeError) as error:
            raise AttachError(f"{descriptor}: not a file Standalone.start() wrote ({error})") from None
        airflow.attached = True
        if not airflow.healthy(timeout):
            raise AttachError(f"no healthy Airflow at {airflow.url} (from {descriptor}) after {timeout} s")
        return airflow

    def store_url(self) -> str:
        """Baton's store of this Airflow as a SQLAlchemy URL, read as Baton reads it there
        (``baton.events.store.url_of``): its ``AIRFLOW_CONN_BATON_STORE`` setting, an Airflow connection as
        a URI or as JSON, else the SQLite file that scripts/env.sh derives in its home.

        :raises ValueError: the setting is not a connection Baton can read its store from.
        """
        from airflow.sdk.bases.secrets_backend import BaseSecretsBackend

        from baton.events.store import STORE_CONN_ID, url_of

        value = self.settings.get(f"AIRFLOW_CONN_{STORE_CONN_ID.upper()}")
        if not value:
            return f"sqlite:///{self.home / 'baton_store.db'}"
        try:  # JSON or a URI, read as Airflow reads an AIRFLOW_CONN_ variable
            conn = BaseSecretsBackend().deserialize_connection(STORE_CONN_ID, value)
            return url_of(conn, STORE_CONN_ID)
        except Exception as error:  # Airflow's parsers raise AirflowException, ValueError or TypeError
            raise ValueError(
                f"{self.home}: AIRFLOW_CONN_{STORE_CONN_ID.upper()} is not a store Baton can read "
                f"({str(error)[:300]}): give a sqlite or postgres connection"
            ) from None

    def healthy(self, timeout: float) -> bool:
        """Whether the API answers its health check within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.http.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)

    def _shell(self, *args: str) -> list[str]:
        """``args`` run with this Airflow's settings: scripts/env.sh's, then ``after_env``'s."""
        after = [f"{key}={value}" for key, value in self.after_env.items()]
        return [
            "bash",
            "-c",
            'source "$0" && exec "$@"',
            str(ENV_SH),
            *(["env", *after] if after else []),
            *args,
        ]

    def command(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a command (``airflow ...``, ``baton ...``) with this Airflow's settings."""
        return subprocess.run(
            self._shell(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _make_tmp(self) -> None:
        """A TMPDIR of its own for the processes it starts, which stop() removes with what they left there: one
        stopped without its clean-up (SIGKILL) would otherwise leave e.g. multiprocessing's pymp-* folder in
        /tmp. Short, as the Unix sockets made there (Chromium's, the forkserver's) must fit in 107 bytes."""
        if self.tmp is None:
            self._tmpdir_before = self.env.get("TMPDIR")  # what a command() after stop() runs with again
            self.tmp = Path(tempfile.mkdtemp(prefix="baton-af-"))
            self.env["TMPDIR"] = str(self.tmp)

    def _remove_tmp(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
            if self._tmpdir_before is None:
                self.env.pop("TMPDIR", None)
            else:
                self.env["TMPDIR"] = self._tmpdir_before

    def start(self, timeout: float = START_TIMEOUT_S) -> Standalone:
        """Migrate Baton's store, seed the demo business database, start Airflow, wait until it is
        healthy (as ``make run`` does); then write how another process may attach to it. An attached
        Standalone is only checked."""
        if self.attached:
            if not self.healthy(timeout=10):
                raise AttachError(f"the attached Airflow at {self.url} is not healthy")
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        self._make_tmp()
        steps = [("baton", "db", "upgrade"), *([("python", "-m", "demo.business")] if self.seed_demo else [])]
        for step in steps:
            done = self.command(*step)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step)} failed: {done.stderr[-2000:]}")
        if self.auth == "fab":
            self._create_fab_users()
        log = (self.home / "standalone.log").open("ab")
        self.process = subprocess.Popen(
            self._shell(*(("bash", "-c", _COMPONENTS) if self.auth == "fab" else ("airflow", "standalone"))),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals all of it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()  # with FAB, the components still running
                raise RuntimeError(f"airflow standalone exited with {code}; see {log.name}")
            if self.healthy(timeout=0):
                self._describe()
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"airflow standalone not healthy after {timeout} s; see {log.name}")

    def _create_fab_users(self) -> None:
        """Airflow's database migrated (FAB's tables with it), and FAB_USERS created with new passwords, written
        to FAB_PASSWORDS in the home (private to its user, as simple's generated passwords are)."""
        done = self.command("airflow", "db", "migrate")
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {done.stderr[-2000:]}")
        passwords = {user: secrets.token_urlsafe(16) for user in FAB_USERS}
        saved = self.home / FAB_PASSWORDS
        saved.touch(mode=0o600)
        saved.write_text(json.dumps(passwords), encoding="utf-8")
        steps = [
            ("roles", "create", PLUGIN_READER),
            ("roles", "add-perms", PLUGIN_READER, "-r", "Plugins", "-a", "can_read"),
        ]
        for user, (role, *more) in FAB_USERS.items():
            # --password=...: a token_urlsafe password may start with '-', which argparse takes for an option
            steps.append(("users", "create", "--username", user, f"--password={passwords[user]}", "--role", role,
                          "--firstname", user, "--lastname", "baton", "--email", f"{user}@example.com"))  # fmt: skip
            steps += [("users", "add-role", "--username", user, "--role", extra) for extra in more]
        for step in steps:
            done = self.command("airflow", *step)
            if done.returncode != 0:
                shown = " ".join(step[:3])  # not the password
                raise RuntimeError(f"airflow {shown} failed: {done.stderr[-2000:]}")

    def _describe(self) -> None:
        """The file attach() reads (the home is private to the user: it also holds the admin password)."""
        saved = {"port": self.port, "dags_folder": str(self.dags_folder), "settings": self.settings,
                 "base_path": self.base_path, "auth": self.auth}  # fmt: skip
        (self.home / self.DESCRIPTOR).write_text(json.dumps(saved, indent=1), encoding="utf-8")

    def leftover_pids(self) -> list[int]:
        """Processes still alive whose environment names this Airflow's home."""
        marker = f"AIRFLOW_HOME={self.home}".encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
        return pids

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after ``timeout`` (named in the log:
        Airflow's parts stop in a few seconds, a wait of a minute was a test's teardown); reap the leader."""
        if self.process is None:
            self._remove_tmp()  # start() failed before it started Airflow
            return
        pgid = self.process.pid
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while group_alive(pgid) and time.monotonic() < deadline:
                self.process.poll()  # reaps the leader, so that a zombie does not keep the group alive
                time.sleep(0.2)
            if not group_alive(pgid):
                break
            if sig == signal.SIGTERM:
                with (self.home / "standalone.log").open("a") as log:
                    log.write(f"still running {timeout} s after SIGTERM, killed: {_group_members(pgid)}\n")
        self.process.wait(timeout=10)
        self.process = None
        self._remove_tmp()
        self.close()

    def __enter__(self) -> Standalone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
