"""What the benchmarks that run a real ``airflow standalone`` share: trigger and time a run, read
where its time went, find competing Airflow processes, and always stop Airflow afterwards."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

from devtools.standalone import AttachError, Standalone, scratch_database

ROOT = Path(__file__).resolve().parents[1]

# A benchmark run as a script (`python bench/X.py`) has bench/ first on sys.path, where bench/celery.py would
# shadow the celery package for everything imported after (the topology's ping: `from celery import
# Celery`): bench/ goes last, still found for the benchmarks' own modules, which no package shares a name with.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

POLL = 0.05  # seconds between two polls of a run's state
# The settings that decide a benchmark's figures, reported with them as the scheduler really has them.
SHOWN_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL",
    "AIRFLOW__SCHEDULER__MP_START_METHOD",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD",
)
RUN_TIMEOUT = 180.0


class BenchError(Exception):
    """A run failed or timed out; the message says which, with its task states."""


def workdir(stack: ExitStack, keep: Path | None, prefix: str) -> Path:
    """``keep`` (which must be new or empty), or a temp directory removed when ``stack`` closes."""
    if keep is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    base = keep.resolve()
    if base.exists() and any(base.iterdir()):
        sys.exit(f"{base} exists and is not empty; give --keep a new or empty directory")
    base.mkdir(parents=True, exist_ok=True)
    return base


def attach_arguments(parser: argparse.ArgumentParser) -> None:
    """``--write-dags`` and ``--attach``: measure on an Airflow that runs anyway (the test suite's shared
    one) instead of starting one; the figures are then those of that Airflow's settings and load."""
    parser.add_argument(
        "--write-dags",
        type=Path,
        metavar="DIR",
        help="write this benchmark's DAG files into DIR (a dags folder: new, or holding Baton's loader "
        "and a roster, to which its agents are added), print the settings its Airflow needs, and exit",
    )
    parser.add_argument(
        "--attach",
        type=Path,
        metavar="AIRFLOW_HOME",
        help="measure on the running Airflow that devtools.standalone started with this home (its dags "
        "folder holding this benchmark's DAGs: --write-dags); it is left running",
    )


def write_dags_only(parser: argparse.ArgumentParser, write_dags: Callable[[Path], dict], folder: Path) -> int:
    """``--write-dags``: the benchmark's DAGs into ``folder`` and the settings they need printed as JSON
    (exit 0), or the parser's error (exit 2) naming what is in the way."""
    try:
        print(json.dumps(write_dags(folder)))
    except (FileExistsError, ValueError) as error:
        parser.error(f"--write-dags: {error}")
    return 0


def attached(parser: argparse.ArgumentParser, home: Path) -> Standalone:
    """The running Airflow of ``--attach``, or the parser's error (exit 2) saying why there is none."""
    try:
        return Standalone.attach(home)
    except AttachError as error:
        parser.error(f"--attach: {error}")


def attached_store(parser: argparse.ArgumentParser, airflow: Standalone) -> str:
    """The SQLAlchemy URL of the attached Airflow's Baton store, or the parser's error (exit 2) saying why
    it cannot be read."""
    try:
        return airflow.store_url()
    except ValueError as error:
        parser.error(f"--attach: {error}")


def pools_in_place(airflow: Standalone) -> bool:
    """Whether every healthy agent of the Airflow's roster has its pool with its slots (not counting
    deferred tasks), as ``baton pools sync`` makes them; read over the REST API. False when the roster or
    the pools cannot be read (then the command runs, and says what is wrong)."""
    from baton.errors import BatonError
    from baton.spec.loading import load_roster

    try:
        agents = load_roster(airflow.dags_folder / "agents.yaml").agents
    except (BatonError, OSError):
        return False
    pools: dict[str, tuple[int, bool]] = {}
    try:
        for _ in range(100):  # the API's pages hold at most 100 pools; 10,000 are plenty
            response = airflow.api("GET", "/pools", params={"limit": 100, "offset": len(pools)})
            response.raise_for_status()
            page = response.json()
            pools |= {pool["name"]: (pool["slots"], pool["include_deferred"]) for pool in page["pools"]}
            if not page["pools"] or len(pools) >= page["total_entries"]:
                break
        else:
            return False
    except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError):  # no answer, or not Airflow's
        return False
    return all(pools.get(agent.pool) == (agent.max_concurrency, False) for agent in agents)


def sync_pools(airflow: Standalone) -> bool:
    """``baton pools sync``; on an attached Airflow only if an agent's pool is missing or differs (its
    starter synced them, and the command costs about 3 CPU-s of imports). False, saying why on stderr,
    when it fails."""
    if airflow.attached and pools_in_place(airflow):
        return True
    pools = airflow.command("baton", "pools", "sync")
    if pools.returncode != 0:
        print(f"baton pools sync failed:\n{pools.stderr[-2000:]}", file=sys.stderr)
        return False
    return True


def none_exists(*paths: Path) -> None:
    """Checked before a benchmark writes into a dags folder: it may be a person's, and nothing of it is
    replaced, nor written half.

    :raises FileExistsError: one of ``paths`` exists (the message names it).
    """
    if existing := [str(path) for path in paths if path.exists()]:
        verb = "exists" if len(existing) == 1 else "exist"
        raise FileExistsError(
            f"{', '.join(existing)} {verb}: give a dags folder without this benchmark's files"
        )


def write_new(path: Path, text: str) -> None:
    """``text`` as a new file (``none_exists`` checked it first; "x" in case of a race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as file:
        file.write(text)


# The roster a benchmark writes into a new dags folder: its own agents only, none of the demo's (the bundled
# roster's agents name the demo's skills, which an Airflow loading only the benchmark's extensions lacks:
# bench/fanout.py failed so on `agents[9].skill: unknown skill 'review_integration'`). Its skills' egress is
# the bundled one's: http_post to the demo partner API on this machine (bench/faults.py posts there).
OWN_ROSTER = """\
# A benchmark's roster (bench/harness.py, baton_dags): the benchmark's own agents, none of the demo's.
skills:
  http_post: {allow: ["127.0.0.1", "localhost"]}

agents:
"""


def baton_dags(dags: Path, agents: str, names: tuple[str, ...]) -> None:
    """Baton's loader in ``dags`` where it is missing, and ``agents`` (YAML list items of a roster, named
    ``names``) added to its roster: the roster there (an attached Airflow's), or a new one of the
    benchmark's own (``OWN_ROSTER``), so that no benchmark depends on what the demo's roster holds. The
    roster is written only once the result is checked to list them.

    :raises ValueError: the roster would not list ``names`` (its ``agents:`` is not last, or it is not
        YAML); it is left as it was.
    """
    import yaml

    (dags / "workflows").mkdir(parents=True, exist_ok=True)
    if not (dags / "baton_workflows.py").exists():  # not baton_template_errors.py: not needed
        shutil.copyfile(ROOT / "dags" / "baton_workflows.py", dags / "baton_workflows.py")
    roster = dags / "agents.yaml"
    before = roster.read_text(encoding="utf-8").rstrip("\n") + "\n\n" if roster.exists() else OWN_ROSTER
    text = before + agents
    try:
        listed = {agent.get("name") for agent in (yaml.safe_load(text) or {}).get("agents") or []}
    except (yaml.YAMLError, AttributeError) as error:
        raise ValueError(f"{roster}: not a roster this benchmark can add its agents to ({error})") from None
    if missing := set(names) - listed:
        raise ValueError(f"{roster}: its agents list must come last for {sorted(missing)} to be added to it")
    roster.write_text(text, encoding="utf-8")


def exit_on_sigterm() -> None:
    """A SIGTERM (a ``kill`` or ``timeout`` of the benchmark) unwinds like an error, exit status 143: the
    ``finally`` blocks and exit stacks still run, so Airflow's process groups are stopped and the throwaway
    databases dropped (bench/retention.py, killed, had left its 7 GB store behind). In the main thread only,
    where Python takes signals; a handler the benchmark set itself is kept."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        _exit_143,
    ):
        signal.signal(signal.SIGTERM, _exit_143)


def _exit_143(*_: Any) -> None:
    sys.exit(143)


def run_bench(airflow: Standalone, bench: Callable[[], int]) -> int:
    """``bench()``'s exit status; 1 on a BenchError or when an Airflow process outlives it. A SIGTERM
    unwinds like an error (``exit_on_sigterm``), so Airflow's process group is still stopped."""
    exit_on_sigterm()
    status = 1
    try:
        status = bench()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        status = 1
    finally:
        airflow.stop()  # an attached Airflow is left running, and its processes are not leftovers
        leftover = [] if airflow.attached else airflow.leftover_pids()
        if leftover:
            print(f"warning: Airflow processes outlived the benchmark: {leftover}", file=sys.stderr)
            status = 1
    return status


def scheduler_env(airflow: Standalone) -> dict[str, str]:
    """The environment of the running ``airflow scheduler`` process: the settings it really has."""
    for pid in airflow.leftover_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"scheduler" in argv:
                raw = Path(f"/proc/{pid}/environ").read_bytes()
                return dict(i.decode().split("=", 1) for i in raw.split(b"\0") if b"=" in i)
        except OSError:
            continue
    return {}


def effective_settings(airflow: Standalone) -> dict[str, str]:
    """``SHOWN_SETTINGS`` as the running scheduler has them: short name (``parallelism``) -> value."""
    env = scheduler_env(airflow)
    return {key.split("__")[-1].lower(): env.get(key, "(unset)") for key in SHOWN_SETTINGS}


def print_environment(settings: dict[str, str], others: list[int], notes: list[str] = ()) -> None:
    """The settings, the machine's CPUs and load, and a warning when other Airflows competed."""
    print("settings: " + ", ".join(f"{key}={value}" for key, value in settings.items()))
    for note in notes:
        print(f"  {note}")
    print(
        f"  {os.cpu_count()} CPUs; load average at the end: "
        + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    )
    if others:
        print(
            f"  warning: other Airflow processes ran during the benchmark (pids {sorted(set(others))}): noisy"
        )


def other_airflows(airflow: Standalone) -> list[int]:
    """Airflow processes on this machine that are not this benchmark's: they compete for the CPUs."""
    ours = set(airflow.leftover_pids())
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) not in ours:
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.endswith(b"/airflow") or arg == b"airflow" for arg in argv[:2]):
                pids.append(int(proc.name))
    return pids


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def task_instances(client: httpx.Client, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    response.raise_for_status()
    return response.json()["task_instances"]


def states_text(client: httpx.Client, dag_id: str, run_id: str) -> str:
    tis = sorted(task_instances(client, dag_id, run_id), key=lambda ti: ti["task_id"])
    return ", ".join(f"{ti['task_id']}={ti['state']} (try {ti['try_number']})" for ti in tis)


def run_once(client: httpx.Client, dag_id: str) -> tuple[float, float, dict[str, Any]]:
    """Trigger ``dag_id`` and poll until it succeeds: wall seconds, server seconds, the run JSON."""
    start = time.perf_counter()
    response = client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {}})
    if response.status_code != 200:
        raise BenchError(f"triggering {dag_id} gave {response.status_code}: {response.text}")
    run_id = response.json()["dag_run_id"]
    deadline = start + RUN_TIMEOUT
    while True:
        try:
            run = client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
        except httpx.TimeoutException:  # an api-server busy past the client's timeout (a loaded machine, the
            run = {"state": None}  # SQLite writer held by the scheduler): only this poll is lost
        if run["state"] == "success":
            wall = time.perf_counter() - start
            break
        if run["state"] == "failed":
            raise BenchError(f"run {run_id} of {dag_id} failed: {states_text(client, dag_id, run_id)}")
        if time.perf_counter() > deadline:
            raise BenchError(
                f"run {run_id} of {dag_id} not finished after {RUN_TIMEOUT:.0f} s: "
                f"{states_text(client, dag_id, run_id)}"
            )
        time.sleep(POLL)
    server = (ts(run["end_date"]) - ts(run["queued_at"])).total_seconds()
    return wall, server, run


PG_SERVER = os.environ.get("BATON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_url(value: str) -> str:
    """``--server``: a SQLAlchemy URL of a PostgreSQL database (any one on the server)."""
    try:
        url = make_url(value)
    except Exception:  # sqlalchemy's ArgumentError, or a ValueError from a port that is not a number
        raise argparse.ArgumentTypeError(
            "not a database URL: give one like postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ) from None
    if not url.drivername.startswith("postgresql"):
        raise argparse.ArgumentTypeError(f"{url.drivername} is not PostgreSQL: give a postgresql:// URL")
    return value


def server_argument(parser: argparse.ArgumentParser) -> None:
    """``--server``, the PostgreSQL server of a benchmark's throwaway databases (``Databases``)."""
    parser.add_argument(
        "--server",
        type=_pg_url,
        default=PG_SERVER,
        help="PostgreSQL server for the throwaway databases (default: $BATON_TEST_PG or 127.0.0.1:5432)",
    )


class Databases:
    """Throwaway PostgreSQL databases on ``server``, one for each of ``which`` (Airflow's metadata, Baton's
    store, a business database), made by ``devtools.standalone.scratch_database`` and dropped when
    ``stack`` closes, on a SIGTERM too (``exit_on_sigterm``). A server where they cannot be made is the
    ``parser``'s usage error (exit 2)."""

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        stack: ExitStack,
        server: str,
        prefix: str,
        which: tuple[str, ...],
    ):
        exit_on_sigterm()
        try:
            self.urls = {
                name: stack.enter_context(scratch_database(server, f"{prefix}_{name}")) for name in which
            }
        except Exception as error:  # the driver's error: refused, unknown host, no such role, ...
            shown = make_url(server).render_as_string(hide_password=True)[:200]
            reason = str(error).splitlines()[0][:300]
            parser.error(
                f"--server {shown}: no throwaway database could be made there ({reason}); start PostgreSQL "
                "(scripts/test.sh does) or give another --server"
            )
        self.names = {name: make_url(url).database for name, url in self.urls.items()}

    def url(self, which: str, driver: str = "postgresql+psycopg") -> str:
        return make_url(self.urls[which]).set(drivername=driver).render_as_string(hide_password=False)
