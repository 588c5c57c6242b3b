"""Shared fixtures: the repo's dags folder, a migrated Airflow metadata DB, one session DagBag."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.standalone import FIRST_PARSE_TIMEOUT_S, START_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Fixture workflows live in a second dag bundle (dag.test() runs only DAGs of a configured bundle):
# a temporary folder holding the fixture templates and a copy of the real loader file.
FIXTURE_DAGS = Path(tempfile.mkdtemp(prefix="baton-test-dags-"))
atexit.register(shutil.rmtree, FIXTURE_DAGS, ignore_errors=True)  # each test process removes its own
for fixture in sorted(FIXTURES.iterdir()):
    if fixture.is_dir() and (fixture / "workflows").is_dir():
        shutil.copytree(fixture, FIXTURE_DAGS, dirs_exist_ok=True)
shutil.copy(DAGS / "baton_workflows.py", FIXTURE_DAGS)

# Tests run against their own Airflow home unless `make test` already chose one.
if "AIRFLOW_HOME" not in os.environ:  # (setdefault would make the folder even when it is not used)
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="baton-test-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
# Under pytest-xdist (`make test` runs three workers) each worker has an Airflow home of its own: its SQLite
# metadata DB, event store and business DB. Every setting that names the session's home moves with it.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    _session_home = os.environ["AIRFLOW_HOME"].rstrip("/")
    _worker_home = f"{_session_home}/{worker}"
    os.makedirs(_worker_home, exist_ok=True)
    for _key, _value in list(os.environ.items()):
        if _key.startswith(("AIRFLOW", "BATON", "_BATON")) and _session_home in _value:
            os.environ[_key] = _value.replace(_session_home, _worker_home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# The Airflows the tests start (and the benchmarks' smoke runs) check for work every second when idle, not
# every 0.1 s as `make run` does for latency: an idle scheduler at 0.1 s used about half a core of this
# two-core machine (at 0.5 s, 0.07 of a core: with four or five Airflows up at once while the suite starts,
# a third of a core), and the suite is bound by CPU. The price, up to a second more per step of a run that a
# test waits for, is waiting that the other test processes fill.
os.environ["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] = "1.0"
# ... and leave every DAG paused until a test unpauses the ones it runs (the bundled ones otherwise run on
# their schedules, the monitor every minute: 0.48 of a core for an idle Airflow, 0.2 paused), and parse a
# DAG file again only when it is new (no test changes one under a running Airflow; every 30 s was another
# 5 s of CPU a minute, and at 600 s the shared Airflow, up for about ten minutes, parsed them all twice).
os.environ["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
os.environ["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] = "3600"
# ... so a first parse that Airflow stops is not tried again for an hour, and its DAGs never come. On the slowest
# day yet, sharing two cores with two more Airflows starting and three test processes collecting, the shared
# Airflow's import of baton_workflows.py passed core.dagbag_import_timeout (30 s; its log: "DagBag import timeout
# ... after 30.0s", while loading sqlglot) in three suite runs of four, and its 36 tests errored. An import may
# take 240 s here, and the file's processor (killed after dag_file_processor_timeout) 300.
os.environ["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "240"
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT"] = "300"
os.environ.setdefault("BATON_EXTENSIONS", "demo.skills")  # the bundled workflows' skills (scripts/env.sh)
# The model of the agents the tests run: Baton's offline model, chosen by name as `make run` does (scripts/env.sh),
# and never a real model a developer's shell exports. A connection that is not defined fails its step
# (include/baton/hooks/llm.py); baton_test_offline is the fixtures' own name for the offline model.
for _conn_id in ("BATON_LLM", "BATON_TEST_OFFLINE"):
    os.environ[f"AIRFLOW_CONN_{_conn_id}"] = json.dumps(
        {"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}
    )
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ.setdefault(
    "AIRFLOW_CONN_BATON_STORE", f"sqlite:///{Path(os.environ['AIRFLOW_HOME']).resolve() / 'baton_store.db'}"
)
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(DAGS)},
        },
        {
            "name": "baton-test-fixtures",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(FIXTURE_DAGS)},
        },
    ]
)


# The shared Airflow's fixtures and the slow API stub (tests/api_stub.py), for every test module.
pytest_plugins = ("tests.integration.shared_airflow", "tests.api_stub", "tests.ci_skips", "tests.cpu_report")


def _terminated(*_: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


# The longest test files, started first, longest first: the xdist workers then end together instead of one
# waiting through the last long file alone. The seconds are each file's wall time in one suite run of three
# workers at 732393e (docs/architecture.md, "The test suite: what was measured"); they only order the files.
SLOW_FIRST = (
    # ~430 s: the shared Airflow's files, in this order (one unit of work: SHARED_AIRFLOW_FILES below;
    # test_airflow.py ~230 s of them, the Airflow's start-up included)
    "tests/integration/test_airflow.py",
    "tests/integration/test_triggers.py",
    "tests/bench/test_smoke_airflow.py",
    "tests/integration/test_pages.py",  # the pages in Chromium
    "tests/integration/test_pages_frame.py",  # the pages in Airflow's frame (theme, timezone, links, filters)
    "tests/bench/test_peers.py",  # 5-18 min by the machine's load: the peers' venv and an Airflow of its own
    "tests/bench/test_smoke_documented.py",  # fan-out and latency as documented: an Airflow each
    "tests/integration/test_monitor_airflow.py",  # ~215 s, most of it waiting on the monitor's ticks
    "tests/integration/test_celery.py",  # ~170 s, with the Celery benchmark's tiny run
    "tests/integration/test_pages_behind_path.py",  # ~95 s alone: its own Airflow behind /airflow with FAB
    "tests/workflows/test_market_research.py",  # ~65 s
    "tests/workflows/test_invoice_processing.py",  # ~55 s
    "tests/workflows/test_customer_onboarding.py",  # ~50 s
)


# The file whose test only collects a benchmark's tiny run that started with the session (tests/bench/
# early.py: ~160 s, mostly waiting on an Airflow of its own), last: by then the run ended.
LAST = ("tests/bench/test_smoke_incidents.py",)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the early benchmark runs whose test was selected (once per session, in the background); none
    when the session only collects (``--collect-only`` would otherwise wait minutes for a campaign)."""
    from tests.bench import early

    if session.config.option.collectonly:
        return
    early.start([item.nodeid for item in session.items])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.bench import early

    early.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


# The files whose tests use the shared Airflow (tests/integration/shared_airflow.py): xdist runs them in
# the one test process that started it, one file after the other (see pytest_xdist_make_scheduler).
SHARED_AIRFLOW_FILES = (
    "tests/integration/test_airflow.py",
    "tests/integration/test_triggers.py",
    "tests/bench/test_smoke_airflow.py",
    "tests/integration/test_pages.py",
    "tests/integration/test_pages_frame.py",
)
SHARED_AIRFLOW_FIXTURES = {"shared_airflow", "shared_running"}
# The fixtures that start an Airflow (or the Celery topology).
AIRFLOW_STARTING_FIXTURES = SHARED_AIRFLOW_FIXTURES | {"running", "topology"}
# ... and those of the tests that start a browser (the pages' Chromium; the Playwright MCP server's). The
# in-process stand-ins a test starts (the model server, the Slack recorder, the OTLP receiver: threads of the
# test's own process) are not services: a test that uses them alone is a unit test.
SERVICE_FIXTURES = AIRFLOW_STARTING_FIXTURES | {"browser", "chromium"}


def airflow_starting_timeout(config: pytest.Config) -> float:
    """pytest's timeout for a test whose fixtures start an Airflow: its setup may be that start (up to
    START_TIMEOUT_S on a loaded machine) and the first parse of its DAGs (up to FIRST_PARSE_TIMEOUT_S), and
    then the test itself has the timeout every other test has (pyproject.toml's)."""
    return START_TIMEOUT_S + FIRST_PARSE_TIMEOUT_S + float(config.getini("timeout"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of SLOW_FIRST first, in that order, those of LAST last; the rest as collected (a stable
    sort). A test that uses the shared Airflow from a file not in SHARED_AIRFLOW_FILES is refused: xdist
    would run it in another process, which would start a second one. A test whose fixtures start an Airflow
    gets airflow_starting_timeout (unless it sets its own); it, and a test that starts a browser, must be
    marked ``integration``."""
    rank = {path: i for i, path in enumerate(SLOW_FIRST)} | {path: len(SLOW_FIRST) + 1 for path in LAST}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOW_FIRST)))
    starting = pytest.mark.timeout(airflow_starting_timeout(config))
    for item in items:
        path, fixtures = item.nodeid.split("::")[0], set(getattr(item, "fixturenames", ()))
        if AIRFLOW_STARTING_FIXTURES & fixtures and item.get_closest_marker("timeout") is None:
            item.add_marker(starting)
        if SERVICE_FIXTURES & fixtures and item.get_closest_marker("integration") is None:
            what = "an Airflow" if AIRFLOW_STARTING_FIXTURES & fixtures else "a browser"
            raise pytest.UsageError(
                f"{item.nodeid} starts {what}: mark it `integration` (pytestmark = pytest.mark.integration), "
                "so that `-m 'not integration'` starts none"
            )
        if SHARED_AIRFLOW_FIXTURES & fixtures and path not in SHARED_AIRFLOW_FILES:
            raise pytest.UsageError(
                f"{item.nodeid} uses the shared Airflow: add {path} to SHARED_AIRFLOW_FILES in tests/conftest.py"
            )


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared Airflow once the last test of SHARED_AIRFLOW_FILES ran in this process, instead of at
    the session's end: its files are one unit of work, run first, and an idle Airflow (scheduler, api-server,
    dag processor, triggerer) used about a tenth of a core for the minutes the process went on with others."""
    if item.nodeid.split("::")[0] in SHARED_AIRFLOW_FILES and (
        nextitem is None or nextitem.nodeid.split("::")[0] not in SHARED_AIRFLOW_FILES
    ):
        from tests.integration import shared_airflow

        shared_airflow.stop_started()


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` with one change: the files of SHARED_AIRFLOW_FILES are one unit of work, so
    that their tests run in the process that started the shared Airflow. (xdist's own ``loadgroup``
    reads ``xdist_group`` marks by rewriting node ids, which pytest 9 no longer lets it do.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndTheSharedAirflow(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return "shared-airflow" if path in SHARED_AIRFLOW_FILES else path

    return FilesAndTheSharedAirflow(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (CI's timeout, a ``kill``) stops the session as Ctrl-C does: the fixtures' teardowns
    still run, so no Airflow, Celery worker or scratch database outlives the tests."""
    signal.signal(signal.SIGTERM, _terminated)


@pytest.fixture(scope="session", autouse=True)
def _stop_the_dag_test_server():
    yield
    if DagTestServer._running is not None:
        DagTestServer._running.stop()


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return DAGS


@pytest.fixture(scope="session")
def fixture_dagbag():
    """The fixture workflows (tests/fixtures/*/workflows), parsed from their own bundle."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(
        dag_folder=str(FIXTURE_DAGS), bundle_path=FIXTURE_DAGS, bundle_name="baton-test-fixtures"
    )


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database (SQLite in AIRFLOW_HOME), migrated once per session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "airflow.db").exists():  # what `airflow db migrate` does to a new database, in this
        from airflow.utils.db import initdb  # process: the command spent 3 CPU-s importing Airflow again

        initdb()
    from baton.events.migrations import upgrade
    from baton.events.store import EventStore

    upgrade(EventStore.from_airflow().engine)
    return home / "airflow.db"


@pytest.fixture(scope="session")
def dagbag(dags_folder):
    """The bundled DAGs, parsed once per session the way the dag processor parses them."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(dags_folder), bundle_path=dags_folder, bundle_name="dags-folder")


DAG_TEST_SERVER = Path(__file__).with_name("dag_test_server.py")  # dag.test() runs: see DagTestServer


def processes_naming(marker: str) -> list[int]:
    """The processes whose command line holds ``marker`` (what a test must not leave running)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return pids


def own_bundle(fixture: Path, folder: Path, name: str) -> dict[str, str]:
    """A fixture folder (its workflows and its own roster) as a dag bundle of its own: copied to
    ``folder`` with the real loader file; the settings that add it to the configured bundles."""
    shutil.copytree(fixture, folder)
    shutil.copy(DAGS / "baton_workflows.py", folder)
    bundles = json.loads(os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    bundles.append(
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder)},
        }
    )
    return {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)}


def _dag_test_in_fresh_process(request: dict, env: dict[str, str], person) -> str:
    """``dag.test()`` in a new interpreter; all it printed."""
    process = subprocess.Popen(
        [sys.executable, str(DAG_TEST_SERVER), "--once", json.dumps(request)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + DAG_TEST_TIMEOUT
    while True:
        try:  # communicate() keeps what it read when it times out: the pipes never fill up
            stdout, stderr = process.communicate(timeout=0.5)
            return stdout + stderr
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                process.kill()
                raise
            if person is not None and person():
                person = None


DAG_TEST_TIMEOUT = 600
# Settings read when Airflow is imported (its home, database, dags folder, executor, logging): a forked
# dag.test() child keeps the server's, so a test that changes one of them gets a fresh process instead.
IMPORT_TIME = (
    "AIRFLOW_HOME",
    "AIRFLOW_CONFIG",
    "AIRFLOW__DATABASE__",
    "AIRFLOW__CORE__",
    "AIRFLOW__LOGGING__",
)


class DagTestServer:
    """One ``tests/dag_test_server.py`` per test process (an xdist worker): it has imported Airflow and
    Baton's operator once and forks a child per ``dag.test()`` (each run otherwise spends seconds of
    imports before its first task)."""

    _running: DagTestServer | None = None

    def __init__(self, fingerprint: dict[str, str]):
        self.fingerprint = fingerprint
        self.process = subprocess.Popen(
            [sys.executable, str(DAG_TEST_SERVER)],
            env={**os.environ},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._answer(timeout=120)
        assert "ready" in ready, ready

    @staticmethod
    def _fingerprint(env: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME)}

    @classmethod
    def for_env(cls, env: dict[str, str]) -> DagTestServer | None:
        """The running server if ``env`` has its import-time settings; a new one when none runs; None
        (a fresh process) when the test changed one of them."""
        fingerprint = cls._fingerprint(env)
        server = cls._running
        if server is not None and server.process.poll() is not None:
            server = cls._running = None
        if server is None:
            if fingerprint != cls._fingerprint(dict(os.environ)):
                return None
            server = cls._running = DagTestServer(fingerprint)
        return server if server.fingerprint == fingerprint else None

    def _answer(self, timeout: float, person: Callable[[], bool] | None = None) -> dict:
        import selectors

        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=0.5):
                    line = self.process.stdout.readline()
                    if not line:
                        raise RuntimeError("the dag.test() server ended")
                    return json.loads(line)
                if person is not None and person():
                    person = None
        self.stop()
        raise TimeoutError(f"no answer from the dag.test() server in {timeout} s")

    def run(self, request: dict, env: dict[str, str], person) -> str:
        """One ``dag.test()`` in a forked child; all it printed."""
        with tempfile.NamedTemporaryFile(prefix="baton-dag-test-", suffix=".log", delete=False) as out:
            path = Path(out.name)
        try:
            self.process.stdin.write(json.dumps({**request, "env": env, "out": str(path)}) + "\n")
            self.process.stdin.flush()
            child = self._answer(timeout=30)["pid"]
            try:
                self._answer(timeout=DAG_TEST_TIMEOUT, person=person)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
                raise
            return path.read_text(errors="replace")
        finally:
            path.unlink(missing_ok=True)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait(timeout=10)
        DagTestServer._running = None


def run_dag_test_in_subprocess(
    folder: Path,
    bundle: str,
    dag_id: str,
    conf: dict | None = None,
    env: dict[str, str] | None = None,
    person: Callable[[], bool] | None = None,
):
    """``dag.test()`` in a fresh process; (the run, its task id -> (state, output) map, all it printed).

    Everything the run logs (its task logs included) is in the printed text, for tests to grep.

    :param person: called about every half second while the run goes on, until it returns True:
        a person who answers what the run asks (``tests.hitl.Person``).
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    request = {"folder": str(folder), "bundle": bundle, "dag_id": dag_id, "conf": conf or {}}
    full_env = {**os.environ, **(env or {})}
    server = DagTestServer.for_env(full_env)
    if server is not None:
        output = server.run(request, full_env, person)
    else:
        output = _dag_test_in_fresh_process(request, full_env, person)
    run_id = next(
        (line.split("=", 1)[1] for line in output.splitlines() if line.startswith("BATON_TEST_RUN_ID=")),
        None,
    )
    assert run_id, f"dag.test() of {dag_id} did not finish:\n{output[-3000:]}"
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
        results = {}
        for ti in run.get_task_instances(session=session):
            state = str(ti.state.value if hasattr(ti.state, "value") else ti.state)
            results[ti.task_id] = (state, ti.xcom_pull(task_ids=ti.task_id) if state == "success" else None)
        recorded = RecordedRun(
            dag_id,
            run_id,
            str(getattr(run.state, "value", run.state)),
            {task: state for task, (state, _) in results.items()},
        )
    return recorded, results, output


@dataclass(frozen=True)
class RecordedRun:
    """What Airflow's metadata DB says of a finished run."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str]

    def xcom(self, task_id: str, key: str = "return_value"):
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        x = XComModel
        with create_session() as session:
            query = select(x.value).where(
                x.dag_id == self.dag_id, x.run_id == self.run_id, x.task_id == task_id, x.key == key
            )
            return session.scalar(query)


def without_deadlines(dag):
    """The DAG without its Deadline Alerts, for ``dag.test()``.

    Airflow 3.3.2's ``dag.test()`` builds its scheduler DAG by serialising the DAG in memory, so the
    run's ``dag.deadline`` holds encoded alerts where the scheduler's holds the ids the dag processor
    stored; a run that succeeds then fails in ``DagRun.update_state`` (``DeadlineAlertModel.get_by_id``
    of a dict). Deadlines are tested on a running ``airflow standalone`` instead
    (tests/integration/test_airflow.py).
    """
    dag.deadline = None
    return dag


CHROMIUM = (
    "/usr/bin/chromium"  # Debian's (scripts/install.sh installs it); Playwright's own download fails here
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, for a module's browser tests of the pages."""
    from playwright.sync_api import sync_playwright  # only the modules that drive a browser load it

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """``check()``'s first true answer, asked every half second; fails naming ``what`` after ``timeout`` s
    (a wait for something to happen, never a proof that something does not)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.5)
    return found


def run_dag_test(dag, **kwargs):
    """``dag.test()`` and a task id -> (state, output) map of the run (the DAG keeps its deadlines)."""
    deadline = dag.deadline
    try:
        run = without_deadlines(dag).test(**kwargs)
    finally:
        dag.deadline = deadline
    results = {}
    for ti in run.get_task_instances():
        output = ti.xcom_pull(task_ids=ti.task_id) if ti.state == "success" else None
        results[ti.task_id] = (ti.state, output)
    return run, results


@pytest.fixture(scope="module")
def slack():
    """A Slack incoming-webhook recorder on 127.0.0.1 for the module's runs: give Airflow
    ``AIRFLOW_CONN_BATON_SLACK=slack.connection``, read what was posted in ``slack.posts``."""
    from tests.slack_recorder import SlackRecorder

    with SlackRecorder() as recorder:
        yield recorder


# --- Baton's store on SQLite and on the PostgreSQL at 127.0.0.1:5432 -----------------------------

PG_SERVER = os.environ.get("BATON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def pg_database(prefix: str):
    """A throwaway PostgreSQL database (its SQLAlchemy URL), dropped on exit."""
    from devtools.standalone import scratch_database

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(PG_SERVER, prefix))
        except Exception as error:  # say what is missing instead of skipping: these tests must run
            pytest.fail(f"PostgreSQL at {PG_SERVER} is needed (scripts/test.sh starts it): {error}")
        yield url


@pytest.fixture(scope="module")
def business_db():
    """A throwaway PostgreSQL database seeded with the demo business tables (include/demo)."""
    from demo.business import create

    with pg_database("baton_business") as url:
        create(url)
        yield url


@pytest.fixture(scope="session")
def pg_url():
    """A throwaway PostgreSQL database for this test session, migrated for Baton's store."""
    from sqlalchemy import create_engine

    from baton.events.migrations import upgrade

    with pg_database("baton_test") as url:
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty, migrated store (an EventStore) on each backend."""
    from sqlalchemy import delete

    from baton.events import schema, summaries
    from baton.events.migrations import upgrade
    from baton.events.store import EventStore, engine_for

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        upgrade(engine_for(url))
        return EventStore(engine_for(url))
    url = request.getfixturevalue("pg_url")
    engine = engine_for(url)
    with engine.begin() as conn:
        for table in (
            schema.events,
            *summaries.TABLES,  # the projections of the events
            schema.blobs,
            schema.context_versions,
            schema.agent_slots,
            schema.slot_waiters,
            schema.agent_health,
            schema.budget_ledger,
        ):
            conn.execute(delete(table))
    return EventStore(engine)
