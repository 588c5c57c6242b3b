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
from urllib.parse import quote

import httpx
import pytest

from baton.events.event import Event
from baton.events.store import EventStore, engine_for
from devtools.standalone import Standalone
from tests.conftest import until
from tests.integration.shared_airflow import unpause

pytestmark = pytest.mark.integration
NAV = {"coordination": "Coordinate", "management": "Manage"}  # the pages' labels in Airflow's nav

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
    page.baton_refusals = set()  # but the refusals a test asked for on purpose (_from_the_page's paths)
    page.on("response", lambda r: "/baton/" in r.url and r.status >= 400
            and not any(path in r.url for path in page.baton_refusals)
            and page.baton_failures.append(f"{r.status} {r.url}"))  # fmt: skip
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
        page.get_by_role("link", name=NAV[name], exact=True).first.click()
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
    # a step running now links to its task in Airflow (its tries and logs), opened in Airflow's window
    task = row.locator("a[href*='/tasks/assess']").first
    until(lambda: task.count(), "the running step's link to its task in Airflow", 30)
    assert task.get_attribute("target") == "_top" and f"/runs/{quote(run_id, safe='')}/tasks/assess" in (
        task.get_attribute("href")
    )
    row.locator("td").nth(1).click()  # its run id: the row's other cells hold links to Airflow's pages
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


def _drawn_agents(frame: Any) -> bool:
    return frame.locator("#agents tr[data-agent]").count() > 0


def _refreshes(page: Any, route: str, count: int = 2) -> None:
    """``count`` answers of the page's poll of ``route`` seen (not a sleep: each is a refresh that happened)."""
    for _ in range(count):
        with page.expect_response(lambda r: route in r.url, timeout=30_000):
            pass


def _from_the_page(page: Any, path: str, body: dict) -> tuple[int, str]:
    """An action POSTed as the page posts it (its cookie, its header): what the server answers (a refusal
    asked for on purpose, not one of the page's failures)."""
    page.baton_refusals.add(path)
    return tuple(
        _frame(page, "coordination").evaluate(
            """([path, body]) => fetch(path, {method: 'POST', credentials: 'same-origin', headers:
            {'Content-Type': 'application/json', 'X-Baton-Action': '1'}, body: JSON.stringify(body)})
            .then(async (r) => [r.status, await r.text()])""",
            [path, body],
        )
    )


def test_a_person_reassigns_a_routed_steps_next_try_and_it_runs_on_that_agent(admin, running):
    """The reassign control offers the step's candidates only, keeps the person's choice across the page's
    refreshes (it used to reset to the first agent every 5 s), and the try runs on the agent chosen; once
    the run has ended, nothing is offered and the server refuses, saying why."""
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
    until(lambda: frame.locator(f"tr[data-run='{run_id}']").count(), "the run in the runs table", 30)
    frame.locator(f"tr[data-run='{run_id}'] td").nth(1).click()  # its run id (the other cells hold links)
    choice = frame.locator("#re-agent")
    until(lambda: choice.locator("option").count(), "the step's agents to choose from", 20)
    # the step's candidates (capability relaying), not the roster's every agent
    assert frame.locator("#re-step option").all_inner_texts() == ["answer"]
    assert choice.locator("option").all_inner_texts() == ["relay_a", "relay_b", "relay_c"]
    choice.select_option("relay_c")
    _refreshes(admin, f"/runs/{quote(run_id, safe='')}/gantt")  # the run's part redrawn twice
    _refreshes(admin, "/baton/api/dashboard/agents", 1)  # and the agents'
    assert choice.input_value() == "relay_c", "the choice survives the refreshes"
    frame.get_by_role("button", name="Reassign…").click()
    assert "to relay_c, starting now" in frame.locator("#confirm-text").inner_text()
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
    until(lambda: "Reassigned the next try of answer to relay_c by admin" in frame.locator("#markers").inner_text(),
          "who reassigned it, on the timeline")  # fmt: skip
    # ended: no action is offered, the page says why, and the server refuses what the page no longer offers
    until(lambda: not frame.locator("#run-actions").is_visible(), "the actions gone once the run ended", 15)
    assert "This run has ended (success)" in frame.locator("#run-ended").inner_text()
    refused = _from_the_page(admin, f"/baton/api/actions/dags/pages_reassign/runs/{run_id}/steps/answer/reassign",
                             {"agent": "relay_b", "retry_now": True})  # fmt: skip
    assert (
        refused[0] == 409 and f"run {run_id} has ended (success): no try of 'answer' is to come" in refused[1]
    )
    reassign = f"/baton/api/actions/dags/pages_reassign/runs/{run_id}/steps/answer/reassign"
    not_a_candidate = _from_the_page(admin, reassign, {"agent": "paced_scorer"})
    assert not_a_candidate[0] == 409
    assert (
        "agent 'paced_scorer' may not do answer: its candidates are relay_a, relay_b, relay_c"
        in not_a_candidate[1]
    )


def test_a_person_stops_a_run_and_the_timeline_says_who_and_why(admin, running, shared_partner):
    """The stop: Airflow fails the run, its completed steps are compensated, the question it still had open
    on Required Actions is closed (a late answer is refused), and the page tells who stopped it and why."""
    store = _store(running)
    run_id = running.trigger("pages_stop").json()["dag_run_id"]
    until(
        lambda: any(e.step == "wait" for e in store.read(run_id, types=["step.started"])), "the long step", 90
    )
    until(lambda: list(store.read(run_id, types=["approval.requested"])), "the question to a person", 90)
    until(
        lambda: list(store.read(run_id, step=("score", -1), types=["step.succeeded"])),
        "the routed step done",
        60,
    )
    frame = _open(admin, running, "coordination")
    frame.locator(f"tr[data-run='{run_id}'] td").nth(1).click()  # its run id (the other cells hold links)
    until(lambda: frame.locator("#run-actions").is_visible(), "the running run's actions", 20)
    # its routed step has succeeded: no next try of it can come, so none is offered, and the server refuses
    # to start one (a new call, with what followed it left as it was)
    assert not frame.locator("#reassign-controls").is_visible()
    rerun = f"/baton/api/actions/dags/pages_stop/runs/{run_id}/steps/score/reassign"
    status, text = _from_the_page(admin, rerun, {"agent": "paced_scorer", "retry_now": True})
    assert status == 409 and "'score' succeeded in try 1: starting it now would call an agent again" in text
    answer = frame.locator("#markers a", has_text="answer it in Airflow")
    until(lambda: answer.count(), "the open question's link to answer it", 20)
    assert (
        answer.get_attribute("href")
        == f"/dags/pages_stop/runs/{quote(run_id, safe='')}/tasks/approve/required_actions"
    )
    assert answer.get_attribute("target") == "_top"
    frame.locator("#stop-reason").fill("the customer cancelled")
    frame.get_by_role("button", name="Stop and compensate…").click()
    assert "Why: “the customer cancelled”" in frame.locator("#confirm-text").inner_text()
    _confirm(frame)
    assert running.wait_for_run("pages_stop", run_id, timeout=60)["state"] == "failed"
    posts = lambda: [p["path"] for p in shared_partner.posts() if p["path"].startswith("/pages/")]  # noqa: E731
    until(lambda: "/pages/plan/cancel" in posts(), "the plan's compensation at the partner", 90)
    taken = [e.payload for e in store.read(types=["action.taken"]) if run_id in e.payload["target"]]
    assert [(t["verb"], t["ok"], t["by"]) for t in taken][:1] == [("stop", True, "admin")]
    markers = frame.locator("#markers")
    until(
        lambda: "Stopped by admin: “the customer cancelled”" in markers.inner_text(),
        "who stopped it and why",
        30,
    )
    text = markers.inner_text()
    assert "closed the question(s) still open: approve" in text
    assert "Question (review) at approve: closed, run stopped by admin" in text  # escalate: always: a review
    until(lambda: "compens" in markers.inner_text().lower(), "the compensation on the page", 30)
    row = frame.locator(f"tr[data-run='{run_id}']")
    until(lambda: "stopped" in row.inner_text(), "the run listed as stopped, not failed", 15)
    assert re.search(r"\b2 of \d+ succeeded", row.inner_text())  # plan and score; the others were stopped
    # Airflow's Required Actions: the question is answered (closed) and a late answer refused
    path = f"/dags/pages_stop/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
    detail = running.api("GET", path).json()
    assert (detail["response_received"], detail["responded_by_user"]["name"], detail["chosen_options"]) == (
        True, "run stopped by admin", []
    )  # fmt: skip
    late = running.api("PATCH", path, json={"chosen_options": ["Approve"]})
    assert late.status_code == 409 and "not allowed to write again" in late.text
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
