"""Baton installed as a user installs it, in an Airflow behind ``[api] base_url``
``http://localhost:PORT/airflow`` with FAB's auth manager, as many company deployments (and the Helm chart's
default) run Airflow. The module builds Baton's wheel, installs it into a fresh virtual environment with
Airflow from the lock and nothing of this repository on its path (tests/integration/installed.py), fills an
empty dags folder with ``baton init``, and starts one real Airflow from that environment, whose plugin comes
from the package's entry point. That Airflow parses every DAG of the folder; both pages load in Debian's
Chromium with everything they ask for answered under the path; a FAB Viewer sees them, has no action and is
refused one; an admin reassigns the example's routed step from the page; and the example workflow runs to
success over REST, under the path, answered by the offline model its connection names.

``start_behind_path`` and ``assert_every_dag_parses`` take the dags folder and the settings. The same pages
under the simple auth manager behind a path, in-process: tests/plugin/test_behind_path.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from baton.cli.init import FILES
from baton.events.store import EventStore, engine_for
from devtools.standalone import AttachError, Auth, Standalone
from tests.conftest import ROOT, until
from tests.integration.installed import build_wheel, clean_env, fresh_venv, import_paths, wheel_names
from tests.integration.shared_airflow import unpause

pytestmark = pytest.mark.integration
NAV = {"coordination": "Coordinate", "management": "Manage"}  # the pages' labels in Airflow's nav

BASE_PATH = "/airflow"
EXAMPLE = "hello_baton"  # baton init's example workflow
ROUTED = ("hello_baton", "summarise")  # its routed step (assistant or analyst, by capability)
# Baton's own DAG files of a dags folder and the DAGs each makes (the templates' are their `workflow:` names)
OWN_DAGS = {"baton_dags.py": ["baton_compensate", "baton_monitor", "baton_incident_escalation"],
            "baton_workflows.py": ["baton_compensate"], "baton_monitor.py": ["baton_monitor"],
            "baton_incident_escalation.py": ["baton_incident_escalation"]}  # fmt: skip


def start_behind_path(
    home: Path,
    dags: Path,
    settings: dict[str, str] | None = None,
    base_path: str = BASE_PATH,
    auth: Auth = "fab",
    python_bin: Path | None = None,
    after_env: dict[str, str] | None = None,
) -> Standalone:
    """An Airflow for ``dags`` at ``http://localhost:PORT{base_path}`` with ``auth``'s auth manager (FAB's: an
    ``admin`` and a ``viewer``, their passwords from ``password_of``), started and its pools made; run by
    ``python_bin``'s environment if given (a fresh venv with Baton's wheel: then without the demo, whose
    business database it does not seed), with ``after_env`` set after scripts/env.sh's settings."""
    airflow = Standalone(home, dags, settings, base_path=base_path, auth=auth, python_bin=python_bin,
                         seed_demo=python_bin is None)  # fmt: skip
    airflow.after_env.update(after_env or {})
    airflow.start()
    pools = airflow.command("baton", "pools", "sync")
    if pools.returncode != 0:
        airflow.stop()
        raise RuntimeError(f"baton pools sync failed: {pools.stderr[-2000:]}")
    return airflow


def expected_dags(dags: Path) -> set[str]:
    """The DAG ids a dags folder makes: each template's workflow, and Baton's own DAGs whose files are there."""
    workflows = {yaml.safe_load(f.read_text())["workflow"] for f in (dags / "workflows").glob("*.yaml")}
    return workflows | {dag for name, made in OWN_DAGS.items() if (dags / name).is_file() for dag in made}


def assert_every_dag_parses(airflow: Standalone, dags: Path, timeout: float = 300) -> list[str]:
    """Every DAG of ``dags`` listed by Airflow's REST API (under its path), and no import error."""
    expected, listed = expected_dags(dags), set()
    deadline = time.monotonic() + timeout
    while not expected <= listed:
        assert time.monotonic() < deadline, f"not parsed within {timeout} s: {sorted(expected - listed)}"
        answer = airflow.api("GET", "/dags", params={"limit": 1000})
        assert answer.status_code == 200, answer.text[:500]
        listed = {dag["dag_id"] for dag in answer.json()["dags"]}
        errors = airflow.api("GET", "/importErrors").json()
        assert errors["total_entries"] == 0, [
            (e["filename"], e["stack_trace"][:2000]) for e in errors["import_errors"]
        ]
        time.sleep(1)
    return sorted(listed)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """Baton's wheel, a fresh venv with the lock and the wheel (its python), and a dags folder baton init
    filled, with that environment's `baton`."""
    work = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(work)
    python = fresh_venv(work / "venv", wheel)
    dags = work / "dags"
    done = subprocess.run([str(python.with_name("baton")), "init", str(dags)], capture_output=True, text=True,
                          env=clean_env(python), cwd=work, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {"work": work, "wheel": wheel, "python": python, "dags": dags}


@pytest.fixture(scope="module")
def running(installed) -> Iterator[Standalone]:
    """One Airflow for the module, from the fresh venv: baton init's dags folder behind /airflow with FAB's
    auth manager; no demo extension (the venv has none); Python may cache the bytecode it compiles."""
    airflow = start_behind_path(
        installed["work"] / "home", installed["dags"], {"PYTHONDONTWRITEBYTECODE": ""},
        python_bin=installed["python"], after_env={"BATON_EXTENSIONS": ""},
    )  # fmt: skip
    try:
        yield airflow
    finally:
        airflow.stop()


def _login(browser: Any, airflow: Standalone, user: str) -> Any:
    """A page logged in to Airflow as ``user`` through FAB's login form, which Airflow's UI sends one to; every
    response it gets is recorded (``page.answers``: status and URL)."""
    page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
    page.answers = []
    page.on("response", lambda r: page.answers.append((r.status, r.url)))
    page.on("pageerror", lambda error: page.answers.append((0, f"script error: {error}")))
    page.goto(f"{airflow.url}/")
    page.wait_for_url(re.compile(rf".*{BASE_PATH}/auth/login.*"), timeout=60_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", airflow.password_of(user))
    page.get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.wait_for_url(re.compile(rf".*:{airflow.port}{BASE_PATH}/?$"), timeout=60_000)
    page.answers.clear()  # before the login, Airflow's UI was refused its config (401) and sent to the form
    return page


def _open(page: Any, airflow: Standalone, name: str) -> Any:
    """Baton's page ``name``, reached by its item in Airflow's nav: its frame, once its script has drawn."""
    page.goto(f"{airflow.url}/")
    page.get_by_role("link", name=NAV[name], exact=True).first.click()
    page.wait_for_url(
        re.compile(rf".*{BASE_PATH}/plugin/baton-{name}({BASE_PATH}/baton/ui/{name})?$"), timeout=60_000
    )
    frame = page.frame_locator(f"iframe[src*='baton/ui/{name}']")
    frame.locator("h1").wait_for()
    assert frame.locator("h1").inner_text() == f"Baton · {name.capitalize()}"
    until(lambda: _drawn(page, name), f"the {name} page drawn", 30)
    return frame


def _drawn(page: Any, name: str) -> Any:
    """The page's frame as a Frame (to run a script in it), once its script has drawn; else None."""
    drawn = "() => typeof echarts === 'object' && !!document.querySelector('section')"
    for frame in page.frames:
        if f"{BASE_PATH}/baton/ui/{name}" in frame.url and not frame.is_detached() and frame.evaluate(drawn):
            return frame
    return None


def _store(airflow: Standalone) -> EventStore:
    return EventStore(engine_for(airflow.store_url()))


def _outside_or_failed(page: Any, airflow: Standalone) -> list[tuple[int, str]]:
    """What the page was answered outside Airflow's path on its origin, or with an error (or a script error)."""
    origin = f"http://localhost:{airflow.port}"
    return [(status, url) for status, url in page.answers
            if status == 0 or status >= 400
            or (url.startswith(origin) and not urlsplit(url).path.startswith(f"{BASE_PATH}/"))]  # fmt: skip


@pytest.fixture(scope="module")
def admin(browser, running) -> Any:
    return _login(browser, running, "admin")


def test_the_wheel_is_the_whole_product(installed):
    names = set(wheel_names(installed["wheel"]))
    schemas = {f"baton/spec/schemas/{n}.schema.json" for n in ("workflow", "agents")}
    static = {
        f"baton/plugin/ui/static/{n}" for n in ("baton.css", "common.js", "coordination.js", "management.js")
    }
    vendor = {
        f"baton/plugin/ui/vendor/{n}"
        for n in ("echarts.min.js", "echarts.json", "LICENSE.echarts", "NOTICE.echarts", "LICENSE.zrender",
                  "LICENSE.tslib")
    }  # fmt: skip
    modules = {"baton/dagfile.py", "baton/plugin/entry.py", "baton/cli/init.py", "baton/ops/monitor/loop.py"}
    assert schemas | static | vendor | modules <= names, sorted((schemas | static | vendor | modules) - names)
    assert not [n for n in names if n.startswith(("demo/", "tests/", "devtools/", "dags/", "bench/"))]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(installed["wheel"]) as archive:
        text = archive.read(entry_points).decode()
        record = json.loads(archive.read("baton/plugin/ui/vendor/echarts.json"))
    assert "[airflow.plugins]\nbaton = baton.plugin.entry:BatonPlugin" in text
    pinned = json.loads((ROOT / "include/baton/plugin/ui/package-lock.json").read_text())["packages"]
    assert record["echarts"]["integrity"] == pinned["node_modules/echarts"]["integrity"]


def test_nothing_of_the_repository_is_on_the_fresh_environments_path(installed):
    found = import_paths(installed["python"], cwd=installed["work"])
    site = str(installed["python"].parents[1])
    assert found["baton"].startswith(site) and found["airflow"].startswith(site), found
    assert not [p for p in found["path"] if p.startswith(str(ROOT))], found["path"]
    # neither the demo, nor the tests, nor the devtools: only baton init's dags folder, in the working folder
    assert found["repo_modules"] == {"dags": [str(installed["dags"])]}, found["repo_modules"]


def test_baton_init_filled_the_empty_dags_folder(installed):
    dags = installed["dags"]
    assert sorted(str(p.relative_to(dags)) for p in dags.rglob("*") if p.is_file()) == sorted(FILES)
    python = installed["python"]
    offline = '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
    env = clean_env(python, AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW_HOME=str(installed["work"] / "cli"),
                    AIRFLOW_CONN_BATON_LLM=offline)  # fmt: skip
    done = subprocess.run([str(python.with_name("baton")), "validate"], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "1 template(s) checked, 0 with errors, 0 error(s) in all",
    )
    again = subprocess.run([str(python.with_name("baton")), "init", str(dags)], capture_output=True, text=True,
                           env=env, timeout=300)  # fmt: skip
    assert again.returncode == 1 and "baton init writes nothing over an existing file" in again.stderr


def test_the_plugin_comes_from_the_packages_entry_point(running):
    plugins = {p["name"]: p for p in running.api("GET", "/plugins").json()["plugins"]}
    assert plugins["baton"]["source"].startswith("baton==0.2.0: EntryPoint(name='baton'"), plugins["baton"]


@pytest.mark.parametrize(
    "base_path",
    ["airflow", "/airflow/", "/", "/a b", "/../etc", "/a/./b", "/x?y=1", "/x#y", "/%2e%2e", "/é", "/a" * 11,
     "/" + "a" * 101, "//airflow", '/a"><script>'],
)  # fmt: skip
def test_standalone_refuses_a_base_path_it_cannot_serve(tmp_path, base_path):
    with pytest.raises(ValueError, match=r"^base_path .*: give a path like '/airflow' \(no trailing '/'\)$"):
        Standalone(tmp_path, base_path=base_path)


def test_standalone_refuses_an_auth_manager_it_does_not_know(tmp_path):
    with pytest.raises(ValueError, match="^auth 'ldap': give 'simple' or 'fab'$"):
        Standalone(tmp_path, auth="ldap")


def test_another_process_attaches_with_the_path_and_the_auth_manager_start_wrote(tmp_path):
    """The descriptor start() writes carries base_path and auth; one written before them means neither; one
    with a base_path Standalone refuses is not start()'s."""
    airflow = Standalone(tmp_path, base_path="/airflow", auth="fab")
    assert airflow.url == f"http://localhost:{airflow.port}/airflow"
    assert airflow.env["AIRFLOW__API__BASE_URL"] == airflow.url
    assert airflow.env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
    assert airflow._shell("airflow", "version")[4:7] == [
        "env", f"AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:{airflow.port}/airflow/execution/",
        "airflow"]  # fmt: skip
    airflow._describe()
    with pytest.raises(
        AttachError, match=rf"^no healthy Airflow at http://localhost:{airflow.port}/airflow "
    ):
        Standalone.attach(tmp_path, timeout=0)
    plain = Standalone(tmp_path / "plain")
    assert plain.url == f"http://127.0.0.1:{plain.port}" and plain.auth == "simple"
    assert plain._shell("airflow", "version")[4:] == ["airflow", "version"]  # as before: nothing after env.sh
    descriptor = tmp_path / Standalone.DESCRIPTOR
    descriptor.write_text(json.dumps({"port": 1, "dags_folder": "d", "settings": {}, "base_path": "/a b"}))
    with pytest.raises(
        AttachError, match=r"not a file Standalone.start\(\) wrote \(base_path '/a b': give a path"
    ):
        Standalone.attach(tmp_path, timeout=0)


def test_another_environments_python_runs_the_commands(tmp_path):
    """``python_bin``: the commands run that environment's programs, first on the PATH after env.sh's."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    airflow = Standalone(tmp_path / "home", python_bin=venv / "bin" / "python")
    done = airflow.command("python", "-c", "import sys; print(sys.prefix)")
    assert (done.returncode, done.stdout.strip()) == (0, str(venv)), done.stderr


def test_every_dag_of_the_dags_folder_parses_behind_the_path(running):
    listed = assert_every_dag_parses(running, running.dags_folder)
    assert EXAMPLE in listed and ROUTED[0] in listed


def test_both_pages_load_from_airflows_nav_and_all_they_ask_for_is_answered_under_the_path(admin, running):
    coordination = _open(admin, running, "coordination")
    coordination.locator("#agents table").wait_for()
    management = _open(admin, running, "management")
    management.locator("#library table").wait_for()
    statuses = _drawn(admin, "management").evaluate(
        "() => [...document.querySelectorAll('.status')].map(s => s.textContent)"
    )
    assert statuses == [""] * len(statuses), statuses  # no section failed to load
    baton = [url for status, url in admin.answers if "/baton/" in url]
    assert any(url.endswith(f"{BASE_PATH}/baton/ui/static/common.js") for url in baton), baton
    assert any(f"{BASE_PATH}/baton/api/templates" in url for url in baton), baton
    assert any(f"{BASE_PATH}/baton/api/dashboard/runs" in url for url in baton), baton
    assert _outside_or_failed(admin, running) == []
    assert _drawn(admin, "management").evaluate("() => document.body.dataset.base") == f"{BASE_PATH}/baton"


def test_a_fab_viewer_sees_the_pages_but_has_no_action_and_is_refused_one(browser, running):
    viewer = _login(browser, running, "viewer")
    frame = _open(viewer, running, "coordination")
    assert "viewer (viewer: read only)" in frame.locator("header").inner_text()
    frame.locator("#agents table").wait_for()
    buttons = frame.locator("#agents button")
    assert buttons.count() >= 1 and not buttons.first.is_visible()
    assert not frame.locator("#run-actions").is_visible()
    page = _drawn(viewer, "coordination")
    assert page.evaluate("() => document.body.dataset.mayAct") == "false"
    assert _outside_or_failed(viewer, running) == []
    answer = page.evaluate("""() => fetch(document.body.dataset.base + '/api/actions/agents/assistant/circuit',
        {method: 'POST', credentials: 'same-origin', body: JSON.stringify({open: true}),
         headers: {'Content-Type': 'application/json', 'X-Baton-Action': '1'}})
        .then(async r => [r.status, await r.text(), r.url])""")
    assert answer[:2] == [403, '{"detail":"Forbidden"}'] and answer[2].startswith(
        f"{running.url}/baton/api/actions/"
    )
    viewer.answers.clear()  # that refusal was asked for
    _open(viewer, running, "management").locator("#library table").wait_for()
    assert _outside_or_failed(viewer, running) == []
    # over REST with the viewer's own token from FAB's /auth/token: a trigger refused by Baton and by Airflow
    login = {"username": "viewer", "password": running.password_of("viewer")}
    token = httpx.post(f"{running.url}/auth/token", json=login, timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "X-Baton-Action": "1"}
    refused = httpx.post(f"{running.url}/baton/api/actions/dags/{EXAMPLE}/trigger", json={"conf": {}},
                         headers=headers, timeout=30)  # fmt: skip
    assert (refused.status_code, refused.json()) == (403, {"detail": "Forbidden"})
    by_airflow = httpx.post(f"{running.url}/api/v2/dags/{EXAMPLE}/dagRuns", json={"logical_date": None},
                            headers=headers, timeout=30)  # fmt: skip
    assert by_airflow.status_code == 403, by_airflow.text
    assert httpx.get(f"{running.url}/baton/api/runs", headers=headers, timeout=30).status_code == 200


def test_an_admin_reassigns_a_routed_steps_next_try_from_the_page(admin, running):
    from baton.compile.loader import steps_of  # the workflow's compiled step: its candidate agents

    dag_id, step = ROUTED
    compiled = steps_of(running.dags_folder, dag_id)[step]
    candidates = [agent.name for agent in compiled.candidates]
    pool = f"/pools/{compiled.pool}"
    slots = running.api("GET", pool).json()["slots"]

    def hold(count: int) -> None:
        # a write: asked again while SQLite's one writer is busy (a pool left at 0 would starve the next tests)
        answer = running.write("PATCH", pool, params={"update_mask": "slots"}, json={"slots": count})
        assert answer.status_code == 200, answer.text

    # the step's pool holds no slot while the person decides: the run is running and the reassigned try is
    # still to come (on a run that has ended, the server refuses a reassignment: no try is to come)
    hold(0)
    try:
        unpause(running, [dag_id])
        run_id = running.trigger(dag_id, {"topic": f"behind-path-{uuid.uuid4().hex[:6]}"}).json()[
            "dag_run_id"
        ]
        store = _store(running)
        until(
            lambda: list(store.read(run_id, types=["run.started"])), "the run's start in Baton's events", 120
        )
        frame = _open(admin, running, "coordination")
        row = frame.locator(f"tr[data-run='{run_id}']")
        until(lambda: row.count(), "the run in the runs table", 60)
        row.locator("td").nth(1).click()  # its run id: the row's other cells hold links to Airflow's pages
        until(lambda: frame.locator("#re-step option").count(), "the routed steps to reassign", 30)
        frame.locator("#re-step").select_option(step)
        frame.locator("#re-agent").select_option(candidates[-1])
        frame.get_by_role("button", name="Reassign…").click()
        frame.locator("#confirm-yes").click()
        (reassigned,) = until(
            lambda: list(store.read(run_id, types=["step.reassigned"])), "the reassignment", 30
        )
    finally:
        hold(slots)
    assert (reassigned.step, reassigned.payload["agent"], reassigned.payload["by"]) == (
        step,
        candidates[-1],
        "admin",
    )
    assert _outside_or_failed(admin, running) == []
    assert running.wait_for_run(dag_id, run_id, timeout=600)["state"] == "success"
    chosen = [e.agent for e in store.read(run_id, types=["agent.selected"]) if e.step == step]
    assert chosen[-1] == candidates[-1], chosen  # the try ran on the agent the person chose


def test_the_example_workflow_runs_to_success_over_rest_under_the_path(running):
    unpause(running, [EXAMPLE])
    response = running.trigger(EXAMPLE, {"topic": "Baton behind a path"})
    assert response.status_code == 200, response.text
    assert response.url.path == f"{BASE_PATH}/api/v2/dags/{EXAMPLE}/dagRuns"
    run_id = response.json()["dag_run_id"]
    assert running.wait_for_run(EXAMPLE, run_id, timeout=300)["state"] == "success"
    path = f"/dags/{EXAMPLE}/dagRuns/{run_id}/taskInstances"
    states = {ti["task_id"]: ti["state"] for ti in running.api("GET", path).json()["task_instances"]}
    assert states == {"summarise": "success", "headline": "success"}
    # answered by the offline model the connection names (make run's settings), and marked so in the replay
    replay = running.command("baton", "replay", run_id)
    assert replay.returncode == 0, replay.stderr
    assert "OFFLINE MODEL" in replay.stdout and "summarise" in replay.stdout, replay.stdout[-3000:]
    # Baton's app, like every app Airflow mounts (the execution API, the auth manager's), answers only under
    # the path (Airflow's own routes answer outside it too: Starlette's fallback for an app's own routes)
    outside = f"http://localhost:{running.port}"
    assert httpx.get(f"{outside}/baton/ui/coordination", timeout=30).status_code == 404
    assert httpx.get(f"{running.url}/baton/ui/coordination", timeout=30).status_code == 401
