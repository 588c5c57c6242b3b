"""The production topology of docker-compose.yaml without Docker, on one machine: Airflow's api-server,
scheduler, dag-processor, triggerer and N Celery workers (``CeleryExecutor``), each in its own process
group, on PostgreSQL (Airflow's metadata and Baton's store) and Redis (the Celery broker).

``bash scripts/celery.sh`` runs it in the foreground (Ctrl-C stops all of it); the integration tests
and ``bench/celery.py`` use :class:`CeleryTopology` directly. Once started, its components are supervised
as compose's ``restart: always`` does (devtools.supervise): one that exits unexpectedly (PostgreSQL
restarting under the dag processor, a SIGKILL) is started again after a bounded backoff, and the topology's
output says so. Every worker has a name (``BATON_WORKER_NAME``, and ``worker-1@<host>`` for Celery):
Baton's ``step.started`` event records which worker ran each try.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from devtools.standalone import ENV_SH, START_TIMEOUT_S, Standalone, free_port
from devtools.supervise import Backoff, Supervisor, signal_group, start_group, stop_groups

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def _say(message: str) -> None:
    print(f"topology: {message}", flush=True)


class TopologyError(RuntimeError):
    """A service the topology needs is missing, or a component did not come up; the message says
    which and what to do."""


def with_driver(url: str, drivername: str) -> str:
    """``url`` (a PostgreSQL URL of any driver) with ``drivername`` ("postgresql+psycopg2", ...)."""
    from sqlalchemy import make_url

    return make_url(url).set(drivername=drivername).render_as_string(hide_password=False)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def check_services(database_url: str, broker_url: str) -> None:
    """PostgreSQL and Redis answer, or a TopologyError that says how to start them."""
    missing = []
    if not _reachable(database_url, 5432):
        missing.append(
            f"PostgreSQL ({urlsplit(database_url).netloc.split('@')[-1]}) does not answer: start it, e.g. "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    if not _reachable(broker_url, 6379):
        missing.append(
            f"Redis ({urlsplit(broker_url).netloc.split('@')[-1]}) does not answer: start it, e.g. "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`"
        )
    if missing:
        raise TopologyError("the Celery topology needs:\n  " + "\n  ".join(missing))


class CeleryTopology(Standalone):
    """The components of docker-compose.yaml as local processes, each in its own process group.

    :param home: AIRFLOW_HOME (logs, the generated admin password).
    :param database_url: Airflow's metadata database on PostgreSQL (a URL of any driver: Airflow gets
        it with psycopg2, and so does Celery's result backend).
    :param store_url: Baton's event store on PostgreSQL (``AIRFLOW_CONN_BATON_STORE``; ``store_url``
        keeps it, as a plain postgresql:// URL).
    :param broker_url: the Celery broker (Redis).
    :param workers: how many Celery worker processes; each runs ``concurrency`` tasks at once.
    :param queue: the Celery queue of this topology (one of its own by default, so that two topologies,
        or a test and a developer's, never take each other's tasks from a shared Redis).
    :param backoff: the waits before restarting a component that exited (``supervisor``: from the end of
        start() to stop()).
    """

    def __init__(
        self,
        home: Path,
        database_url: str,
        store_url: str,
        broker_url: str = "redis://127.0.0.1:6379/0",
        *,
        workers: int = 2,
        concurrency: int = 2,
        dags_folder: Path | None = None,
        queue: str | None = None,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        backoff: Backoff = Backoff(),  # noqa: B008 (frozen)
    ):
        self.database_url = with_driver(database_url, "postgresql+psycopg2")
        self.store_url = with_driver(store_url, "postgresql")
        self.broker_url = broker_url
        self.workers, self.concurrency = workers, concurrency
        self.queue = queue or f"baton-{secrets.token_hex(4)}"
        self._own_queue = queue is None  # made up for this topology: stop() removes it from the broker
        super().__init__(
            home,
            dags_folder,
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + with_driver(database_url, "postgresql"),
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
                # a worker takes a task only when it has a free slot: the others get the rest
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                # each worker loads the task runtime once, before it forks its pool (baton.celery_config)
                "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "baton.celery_config.CELERY_CONFIG",
                "AIRFLOW_CONN_BATON_STORE": self.store_url,
                # every component signs and checks the task tokens with the same secret
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__LOGGING__TRIGGERER_LOG_SERVER_PORT": str(free_port()),
                **(settings or {}),
            },
        )
        if port is not None:  # a fixed port instead of a free one
            self.port, self.url = port, f"http://127.0.0.1:{port}"
            self.env["AIRFLOW__API__PORT"] = str(port)
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}  # how each component starts
        self.supervisor = Supervisor({}, self._popen, backoff=backoff, say=_say, log_of=self._log_of)
        self.processes: dict[str, subprocess.Popen] = self.supervisor.processes  # the one dict: see its lock

    def _log_of(self, name: str) -> str:
        return str(self.home / f"{name}.log")

    def _popen(self, name: str) -> subprocess.Popen:
        args, env = self._commands[name]
        argv = ["bash", "-c", 'source "$0" && exec "$@"', str(ENV_SH), *args]
        return start_group(argv, {**self.env, **env}, Path(self._log_of(name)))

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        with self.supervisor.lock:
            self._commands[name] = (args, env or {})
            self.processes[name] = self._popen(name)
            self.supervisor.watch(name)

    def worker_name(self, index: int) -> str:
        return f"worker-{index}"

    def start_worker(self, index: int) -> None:
        name = self.worker_name(index)
        self._spawn(
            name,
            [
                "airflow", "celery", "worker",
                "--concurrency", str(self.concurrency),
                "--queues", self.queue,
                "--celery-hostname", f"{name}@%h",
                "--pid", str(self.home / f"{name}.pid"),
            ],
            {"BATON_WORKER_NAME": name, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
        )  # fmt: skip

    def start(self, timeout: float = START_TIMEOUT_S) -> CeleryTopology:
        """Check PostgreSQL and Redis, migrate Airflow's and Baton's databases, seed the demo business
        database, start every component and wait until the api-server is healthy, the pools exist and
        every worker answers a Celery ping."""
        check_services(self.database_url, self.broker_url)
        self.home.mkdir(parents=True, exist_ok=True)
        self._make_tmp()  # kill() leaves what the worker's clean-up would have removed: stop() removes it
        for step in (
            ("airflow", "db", "migrate"),
            ("baton", "db", "upgrade"),
            ("python", "-m", "demo.business"),
        ):
            done = self.command(*step, timeout=600)
            if done.returncode != 0:
                raise TopologyError(f"{' '.join(step)} failed: {(done.stdout + done.stderr)[-3000:]}")
        try:
            for component in COMPONENTS:
                args = ["airflow", component] + (
                    ["--port", str(self.port)] if component == "api-server" else []
                )
                self._spawn(component, args)
            for index in range(1, self.workers + 1):
                self.start_worker(index)
            self._wait_healthy(timeout)
            pools = self.command("baton", "pools", "sync")
            if pools.returncode != 0:
                raise TopologyError(f"baton pools sync failed: {pools.stderr[-2000:]}")
            self.wait_for_workers(timeout)
        except BaseException:
            self.stop()
            raise
        self.supervisor.start()
        return self

    @property
    def running(self) -> bool:
        """Whether start() started it and every component it started still runs, or, once supervised, will
        run again (one that exited waits for its restart)."""
        return bool(self.processes) and (self.supervisor.supervising or self.exited() is None)

    def exited(self) -> str | None:
        """Which component has exited (and where its log is), or None while all of them run."""
        with self.supervisor.lock:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    return f"{name} exited with {process.returncode}; see {self._log_of(name)}"
        return None

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.supervisor.supervising and (exited := self.exited()) is not None:
                raise TopologyError(exited)  # once supervised, one that exited comes back
            try:
                health = self.http.get(f"{self.url}/api/v2/monitor/health", timeout=2)
                if health.status_code == 200 and health.json()["scheduler"]["status"] == "healthy":
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise TopologyError(
            f"the api-server and scheduler were not healthy after {timeout} s; see {self.home}"
        )

    def ping(self) -> set[str]:
        """The Celery names of the workers that answer a ping (``worker-1@host`` ...) within 2 s: a
        broadcast on the broker, as ``celery inspect ping`` sends it, from a bare Celery client. (That
        command, run with Airflow's Celery app, cost 2 CPU-s and 5 s each, importing Airflow to send
        one message; ``wait_for_workers`` sends one a second.) None answers when the broker is down."""
        from celery import Celery
        from kombu.exceptions import OperationalError

        client = Celery(broker=self.broker_url)
        try:
            answers = client.control.ping(timeout=2.0)
        except (OperationalError, OSError):
            return set()
        finally:
            client.close()
        return {name for answer in answers for name in answer}

    def wait_for_workers(self, timeout: float) -> None:
        """Until every worker of the topology answers a Celery ping (a TopologyError after ``timeout``)."""
        wanted = {self.worker_name(i) for i in range(1, self.workers + 1)}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.supervisor.supervising and (exited := self.exited()) is not None:
                raise TopologyError(exited)  # once supervised, one that exited comes back
            if wanted <= {name.split("@")[0] for name in self.ping()}:
                return
            time.sleep(1)
        raise TopologyError(f"Celery workers {sorted(wanted)} did not all answer a ping after {timeout} s")

    def kill(self, name: str) -> None:
        """SIGKILL one component's whole process group (a crashed machine, a pod evicted): no clean-up, and
        no restart (``start_worker`` starts a worker again). A component killed by anyone else is restarted."""
        process = self.supervisor.release(name)
        signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, timeout: float = 60, names: list[str] | None = None) -> None:
        """SIGTERM the process groups of ``names`` (default: all; workers first, the api-server last),
        SIGKILL what is left after ``timeout``; reap the leaders. None is restarted; once all are stopped,
        so is the supervision, and what ended it, if an error did, is raised."""
        if names is None:
            self.supervisor.stop()  # first: what exits from here on was stopped on purpose
        with self.supervisor.lock:
            names = sorted(
                self.processes if names is None else names,
                key=lambda n: (not n.startswith("worker-"), n == "api-server"),
            )
            stopping = {name: self.supervisor.release(name) for name in names}
        stop_groups(list(stopping.values()), timeout)
        if not self.processes:
            self.supervisor.stop()
            if self._own_queue:
                self.forget_queue()
            self._remove_tmp()
            self.supervisor.check()

    def queue_keys(self) -> list[str]:
        """The broker's keys of this topology's queue (the queue and Kombu's bindings of it)."""
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            return sorted(key.decode() for key in client.keys(f"*{self.queue}"))
        finally:
            client.close()

    def forget_queue(self) -> None:
        """Delete this topology's queue from the broker, so that a shared Redis keeps nothing of it."""
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            if keys := client.keys(f"*{self.queue}"):
                client.delete(*keys)
        finally:
            client.close()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _arguments():
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/celery.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--database", default=os.environ.get("BATON_CELERY_DATABASE", "baton_airflow"))
    parser.add_argument("--store-database", default=os.environ.get("BATON_CELERY_STORE", "baton_store"))
    parser.add_argument("--server", default=os.environ.get("BATON_PG_SERVER", "postgres@127.0.0.1:5432"))
    parser.add_argument("--broker", default=os.environ.get("BATON_CELERY_BROKER", "redis://127.0.0.1:6379/0"))
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("BATON_CELERY_HOME", ".airflow-celery"))
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW__API__PORT", "8080")))
    parser.add_argument("--queue", default="default", help="the Celery queue the workers take tasks from")
    return parser.parse_args()


def main() -> None:
    """``scripts/celery.sh``: the topology in the foreground until Ctrl-C (or SIGTERM); it restarts a
    component that exits (devtools.supervise), and exits itself only if its supervision fails."""
    args = _arguments()
    try:
        check_services(f"postgresql://{args.server}/postgres", args.broker)
    except TopologyError as error:
        raise SystemExit(str(error)) from None
    for database in (args.database, args.store_database):
        create_database(f"postgresql+psycopg://{args.server}/postgres", database)
    topology = CeleryTopology(
        args.home.resolve(),
        f"postgresql://{args.server}/{args.database}",
        f"postgresql://{args.server}/{args.store_database}",
        args.broker,
        workers=args.workers,
        concurrency=args.concurrency,
        queue=args.queue,
        port=args.port,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or `kill`, even where SIGINT came in ignored
        signal.signal(sig, _interrupt)
    print(f"Starting the Celery topology (logs: {topology.home}/*.log) ...", flush=True)
    try:
        topology.start()
        print(
            f"\n  Baton on Celery: {topology.url}\n  user: admin   password: {topology.password}\n"
            f"  workers: {', '.join(sorted(topology.ping()))} (concurrency {args.concurrency} each), "
            f"queue {topology.queue}\n  Ctrl-C stops all of it.\n",
            flush=True,
        )
        while topology.supervisor.error is None:  # it restarts what exits
            time.sleep(1)
        topology.supervisor.check()
    except (TopologyError, RuntimeError) as error:
        print(error, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
    finally:
        topology.stop()


def create_database(admin_url: str, name: str) -> None:
    """``CREATE DATABASE name`` unless it exists."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if (
                conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                is None
            ):
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
