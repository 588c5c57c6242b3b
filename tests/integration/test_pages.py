"""Baton's Coordination and Management pages inside a running Airflow, in Debian's Chromium (Playwright):
a person logs in to Airflow and opens both from its nav; a running fan-out updates live; a routed step's next
try is reassigned to a chosen agent and runs there; a run is stopped and compensated; the editor shows a
template's error before anything is saved; a viewer sees the pages but cannot act; and nothing of Baton's
answers without Airflow's authentication."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from baton.events.event import Event
from baton.events.store import EventStore, engine_for
from devtools.standalone import Standalone
from tests.conftest import until
from tests.integration.shared_airflow import unpause

pytestmark = pytest.mark.integration

ACTIVE = ["baton_compensate", "pages_fanout", "pages_reassign", "pages_stop"]
GANTT = "echarts.getInstanceByDom(document.getElementById('gantt'))?.getOption().series[0].data"  # its bars


@pytest.fixture(scope="module")
def running(shared_running: Standalone) -> Standalone:
    return unpause(shared_running, ACTIVE)


def _password(running: Standalone, user: str) -> str:
    return json.loads((running.home / "simple_auth_manager_passwords.json.generated").read_text())[user]


def _login(browser: Any, running: Standalone, user: str) -> Any:
    """A page logged in to Airflow as ``user`` through its own login form."""
    page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
    page.baton_failures = []  # what Baton's pages asked for and did not get: none, in every test
    page.on("response", lambda r: "/baton/" in r.url and r.status >= 400 and page.baton_failures.append(
        f"{r.status} {r.url}"))  # fmt: skip
    page.on("pageerror", lambda error: page.baton_failures.append(f"script error: {error}"))
    page.goto(f"{running.url}/auth/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", _password(running, user))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(dags|home)?$|.*/$"), timeout=30_000)
    return page


@pytest.fixture(scope="module")
def admin(browser, running) -> Any:
    return _login(browser, running, "admin")


def _open(page: Any, running: Standalone, name: str, nav: bool = False) -> Any:
    """Baton's page ``name`` in Airflow's UI (``nav``: reached by its item in Airflow's nav, else by its
    address there): its frame, once its script has drawn."""
    if nav:
        page.goto(f"{running.url}/")
        page.get_by_role("link", name=name.capitalize()).first.click()
        # Airflow 3.3 then copies the frame's own path into the address (/plugin/baton-x/baton/ui/x): the
        # address may already be that one by the time this looks, so both are the page reached
        page.wait_for_url(re.compile(rf".*/plugin/baton-{name}(/baton/ui/{name})?$"), timeout=60_000)
    else:
        page.goto(f"{running.url}/plugin/baton-{name}")
    frame = page.frame_locator(f"iframe[src*='baton/ui/{name}']")  # the view's href, relative
    frame.locator("h1").wait_for()
    assert frame.locator("h1").inner_text() == f"Baton · {name.capitalize()}"
    ready = "() => typeof echarts === 'object'"
    frames = lambda: [f for f in page.frames if f"/baton/ui/{name}" in f.url and not f.is_detached()]  # noqa: E731
    until(lambda: [f for f in frames() if f.evaluate(ready)], f"ECharts in the {name} page", 15)
    assert page.baton_failures == [], page.baton_failures
    return frame


def _frame(page: Any, name: str) -> Any:
    """The page's frame as a Frame (to run a script in it): the one whose page has drawn."""
    found = [f for f in page.frames if f"/baton/ui/{name}" in f.url and not f.is_detached()]
    drawn = [
        f
        for f in found
        if f.evaluate("() => typeof echarts === 'object' && !!document.querySelector('section')")
    ]
    assert drawn, (
        f"no drawn frame of {name} among {[(f.url, f.evaluate('() => typeof echarts')) for f in found]}"
    )
    return drawn[-1]


def _store(running: Standalone) -> EventStore:
    return EventStore(engine_for(f"sqlite:///{running.home / 'baton_store.db'}"))


def _confirm(frame: Any) -> None:
    frame.locator("#confirm-yes").click()


def test_nothing_of_batons_answers_without_airflows_authentication(running):
    # every route of the app, in-process: tests/plugin/test_auth.py; here the running server, one of each kind
    for path in ["/baton/ui/coordination", "/baton/ui/management", "/baton/ui/static/common.js",
                 "/baton/ui/vendor/echarts.min.js", "/baton/api/templates", "/baton/api/dashboard/runs",
                 "/baton/api/rollouts", "/baton/api/runs"]:  # fmt: skip
        assert httpx.get(f"{running.url}{path}", timeout=30).status_code == 401, path
    action = httpx.post(f"{running.url}/baton/api/actions/dags/pages_fanout/trigger", json={"conf": {}},
                        headers={"X-Baton-Action": "1"}, timeout=30)  # fmt: skip
    assert action.status_code == 401


def test_a_person_logs_in_and_opens_both_pages_from_airflows_nav(admin, running):
    coordination = _open(admin, running, "coordination", nav=True)
    coordination.locator("#runs-table").wait_for()
    until(
        lambda: coordination.locator("#agents tr[data-agent='relay_c']").count(),
        "relay_c in the agents table",
    )
    # many failures of one kind, as the listener records them, naming a person: the most frequent pattern (of a
    # workflow named for this run, so that a second run in the same Airflow home counts its own)
    probe = f"pages_errors_{uuid.uuid4().hex[:8]}"
    _store(running).append([
        Event(type="step.failed", run_id=f"{probe}-{i}", workflow=probe, step="post",
              try_number=1, agent="poster",
              payload={"error_class": "AgentError", "error": f"HTTP {500 + i % 4} for ann.lee@example.com"})
        for i in range(200)
    ])  # fmt: skip
    management = _open(admin, running, "management", nav=True)
    management.locator("#library table").wait_for()
    row = management.locator(f"#errors tr[data-where='{probe}.post']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[:5] == [
        "200",
        "200",
        "new",
        f"{probe}.post (poster)",
        "AgentError HTTP <n> for <email>",
    ]
    assert "ann.lee" not in management.locator("#errors").inner_text()
    assert row.locator("a").first.get_attribute("href") == f"coordination?dag_id={probe}&run_id={probe}-199"
    windows = _frame(admin, "management").evaluate(
        "() => ['hours', 'error-hours'].map((id) => { const s = document.getElementById(id);"
        " return [s.value, [...s.options].map((o) => o.textContent)]; })"
    )  # the analytics' window and the error patterns', 24 h at first
    assert windows == [["24", ["1 h", "24 h", "7 days", "30 days"]], ["24", ["24 h", "7 days", "30 days"]]]
    management.locator("#trend canvas").wait_for()  # the analytics' trend chart drew
    assert "success rate" in management.locator("#figures").inner_text()
    until(lambda: management.locator("#suggestions li").count(), "the analytics' suggestions")
    statuses = _frame(admin, "management").evaluate(
        "() => [...document.querySelectorAll('.status')].map(s => s.textContent)"
    )
    assert statuses == [""] * len(statuses), statuses  # no section failed to load
    broken = management.locator("tr[data-workflow='unknown_agent']")
    assert "unknown agent 'sales_bot'" in broken.inner_text()
    assert "valid" in management.locator("tr[data-workflow='pages_fanout']").inner_text()


def test_a_running_fan_out_updates_live_without_a_reload(admin, running):
    run_id = running.trigger("pages_fanout").json()["dag_run_id"]
    frame = _open(admin, running, "coordination")
    row = frame.locator(f"tr[data-run='{run_id}']")
    until(lambda: row.count(), "the run in the runs table", 30)
    row.click()
    page = _frame(admin, "coordination")
    page.evaluate("window.__notReloaded = true")
    bars = f"() => {GANTT}?.length || 0"
    seen = set()
    deadline = time.monotonic() + 90
    while running.api("GET", f"/dags/pages_fanout/dagRuns/{run_id}").json()["state"] == "running":
        assert time.monotonic() < deadline, "the fan-out did not end within 90 s"
        seen.add(page.evaluate(bars))
        time.sleep(0.5)
    final = until(lambda: page.evaluate(bars) >= 15 and page.evaluate(bars), "every item's bar", 15)
    assert len(seen) >= 3, f"the timeline changed only {len(seen)} time(s) while the run went: {sorted(seen)}"
    assert final >= 15  # the leads step and its 14 items
    assert page.evaluate("window.__notReloaded === true")
    # paced_scorer's connection names Baton's offline model: its try is marked, and the run's 14 answers counted
    marks = page.evaluate(f"() => {GANTT}.map((p) => p.value[7])")
    assert sorted(marks) == [""] * (len(marks) - 1) + ["offline model"], marks
    offline = "14 model answer(s) of this run came from Baton's offline model (made-up data)"
    until(lambda: offline in frame.locator("#markers").inner_text(), "the offline answers' note", 15)
    until(
        lambda: "success" in frame.locator(f"tr[data-run='{run_id}']").inner_text(),
        "success in the table",
        15,
    )


def test_the_agent_chosen_to_reassign_to_is_kept_across_the_agents_refreshes(admin, running):
    """The agents table (and the reassign control's list) is refreshed every 5 s; a choice made before two
    refreshes is still the choice after them (it used to reset to the first agent)."""
    frame = _open(admin, running, "coordination")
    choice = frame.locator("#re-agent")
    until(lambda: choice.locator("option").count() > 2, "the agents to choose from", 30)
    last = choice.locator("option").last.inner_text()
    choice.select_option(last)
    for _ in range(2):  # two refreshes seen, not a sleep: each is the agents' API answering the page
        with admin.expect_response(lambda r: "/baton/api/dashboard/agents" in r.url, timeout=30_000):
            pass
    until(lambda: _drawn_agents(frame), "the agents table drawn after the refresh", 15)
    assert choice.input_value() == last


def _drawn_agents(frame: Any) -> bool:
    return frame.locator("#agents tr[data-agent]").count() > 0


def test_a_person_reassigns_a_routed_steps_next_try_and_it_runs_on_that_agent(admin, running):
    frame = _open(admin, running, "coordination")
    agent = frame.locator("#agents tr[data-agent='relay_c']")
    until(lambda: agent.count(), "relay_c in the agents table")
    agent.get_by_role("button", name="Open circuit…").click()
    _confirm(frame)
    until(lambda: "open" in agent.inner_text() or "held" in agent.inner_text(), "relay_c's circuit open", 15)
    store = _store(running)
    run_id = running.trigger("pages_reassign").json()["dag_run_id"]
    failed = until(
        lambda: [e for e in store.read(run_id, types=["step.failed"])], "the first try's failure", 90
    )
    assert failed[0].agent in ("relay_a", "relay_b") and failed[0].payload["will_retry"] is True
    agent.get_by_role("button", name="Close circuit…").click()
    _confirm(frame)
    frame.locator(f"tr[data-run='{run_id}']").click()
    until(lambda: frame.locator("#re-step option").count(), "the routed steps to reassign", 20)
    frame.locator("#re-step").select_option("answer")
    frame.locator("#re-agent").select_option("relay_c")
    frame.get_by_role("button", name="Reassign…").click()
    _confirm(frame)
    assert running.wait_for_run("pages_reassign", run_id, timeout=120)["state"] == "success"
    selected = [
        (e.try_number, e.agent, e.payload["reason"]) for e in store.read(run_id, types=["agent.selected"])
    ]
    assert selected[-1][1:] == ("relay_c", "chosen by a person"), selected
    (reassigned,) = store.read(run_id, types=["step.reassigned"])
    assert (reassigned.payload["agent"], reassigned.payload["by"]) == ("relay_c", "admin")
    page = _frame(admin, "coordination")
    agents = f"() => ({GANTT} || []).map(d => d.value[3])"
    until(lambda: "relay_c" in page.evaluate(agents), "the try on relay_c in the timeline", 15)


def test_a_person_stops_a_run_and_its_completed_steps_are_compensated(admin, running, shared_partner):
    store = _store(running)
    run_id = running.trigger("pages_stop").json()["dag_run_id"]
    until(
        lambda: any(e.step == "wait" for e in store.read(run_id, types=["step.started"])), "the long step", 90
    )
    frame = _open(admin, running, "coordination")
    frame.locator(f"tr[data-run='{run_id}']").click()
    frame.locator("#stop-reason").fill("the customer cancelled")
    frame.get_by_role("button", name="Stop and compensate…").click()
    _confirm(frame)
    assert running.wait_for_run("pages_stop", run_id, timeout=60)["state"] == "failed"
    posts = lambda: [p["path"] for p in shared_partner.posts() if p["path"].startswith("/pages/")]  # noqa: E731
    until(lambda: "/pages/plan/cancel" in posts(), "the plan's compensation at the partner", 90)
    taken = [e.payload for e in store.read(types=["action.taken"]) if run_id in e.payload["target"]]
    assert [(t["verb"], t["ok"], t["by"]) for t in taken][:1] == [("stop", True, "admin")]
    page = _frame(admin, "coordination")
    until(
        lambda: "compens" in page.locator("#markers").inner_text().lower(), "the compensation on the page", 30
    )
    headers = {"Authorization": f"Bearer {running.token()}", "X-Baton-Action": "1"}
    again = httpx.post(f"{running.url}/baton/api/actions/dags/pages_stop/runs/{run_id}/stop",
                       json={"reason": "twice"}, headers=headers, timeout=30)  # fmt: skip
    assert again.status_code == 409, again.text
    assert f"run {run_id} of pages_stop is failed: there is nothing to stop" in again.text


def test_the_editor_shows_a_templates_error_before_anything_is_saved(admin, running):
    frame = _open(admin, running, "management")
    frame.locator("a[data-open='pages_fanout']").click()
    editor = frame.locator("#editor")
    until(lambda: "workflow: pages_fanout" in editor.input_value(), "the template in the editor", 15)
    before = (running.dags_folder / "workflows" / "pages_fanout.yaml").read_text()
    editor.fill(editor.input_value().replace("agent: paced_scorer", "agent: paced_scorr"))
    issue = frame.locator("#issues li").first
    issue.wait_for(timeout=10_000)
    assert "steps[1].agent: unknown agent 'paced_scorr'" in issue.inner_text()
    assert frame.locator("#verdict").inner_text() == "1 error(s)"
    assert (running.dags_folder / "workflows" / "pages_fanout.yaml").read_text() == before  # nothing saved


def test_a_viewer_sees_the_pages_but_cannot_act(browser, running):
    viewer = _login(browser, running, "viewer")
    frame = _open(viewer, running, "coordination")
    assert "viewer: read only" in frame.locator("header").inner_text()
    frame.locator("#agents table").wait_for()
    assert (
        frame.locator("#agents button").count() >= 1
        and not frame.locator("#agents button").first.is_visible()
    )
    assert not frame.locator("#run-actions").is_visible()
    page = _frame(viewer, "coordination")
    status = page.evaluate("""() => fetch('/baton/api/actions/agents/relay_c/circuit', {method: 'POST',
        credentials: 'same-origin', headers: {'Content-Type': 'application/json', 'X-Baton-Action': '1'},
        body: JSON.stringify({open: true})}).then(r => r.status)""")
    assert status == 403
