"""Baton's pages at home in Airflow's frame, in Debian's Chromium against the shared running Airflow: they
follow Airflow's theme (dark or light, its own colours and font, switched live) and its chosen timezone and
time format; their nav labels fit and carry icons; a link to a run survives a reload and can be shared; a DAG
run's Baton tab shows that run alone; the runs are filtered by workflow and state, Baton's own hidden unless
asked for, and paged; and what cannot be acted on is neither offered nor accepted (no run chosen, an agent
that is not in the roster)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from baton.events.event import Event
from devtools.standalone import Standalone
from tests.conftest import until
from tests.integration.shared_airflow import unpause
from tests.integration.test_pages import NAV, _frame, _from_the_page, _login, _open, _store

pytestmark = pytest.mark.integration

ZONE = "Asia/Kolkata"  # UTC+05:30: no browser's default here, and no whole-hour offset to hide a mistake


@pytest.fixture(scope="module")
def running(shared_running: Standalone) -> Standalone:
    return unpause(shared_running, ["pages_fanout"])


@pytest.fixture
def person(browser, running) -> Any:
    """An admin in a browser context of their own (their theme and timezone stay theirs)."""
    page = _login(browser, running, "admin")
    yield page
    page.context.close()


def _colour(page: Any, css: str) -> str:
    """What Airflow's document computes for a background of ``css`` (e.g. its token var(--chakra-colors-bg))."""
    return page.evaluate(
        """(css) => { const probe = document.createElement('div'); probe.style.background = css;
        document.body.append(probe); const found = getComputedStyle(probe).backgroundColor; probe.remove();
        return found; }""",
        css,
    )


def _frame_colours(page: Any) -> dict[str, str]:
    return _frame(page, "coordination").evaluate(
        """() => { const body = getComputedStyle(document.body);
        return {bg: body.backgroundColor, font: body.fontFamily, theme: document.documentElement.dataset.theme}; }"""
    )


def test_the_pages_follow_airflows_theme_and_timezone(person, running):
    person.evaluate(
        f"localStorage.setItem('theme', 'dark'); localStorage.setItem('timezone', JSON.stringify('{ZONE}'))"
    )
    store = _store(running)
    started = datetime(2026, 11, 3, 20, 45, 7, tzinfo=UTC)  # 02:15:07 the next day in Kolkata
    probe = f"frame_tz_{uuid.uuid4().hex[:8]}"
    store.append([Event(type="run.started", run_id=f"{probe}-1", workflow=probe, ts=started, payload={})])
    frame = _open(person, running, "coordination")
    assert person.evaluate("document.documentElement.className") == "dark"
    dark = _frame_colours(person)
    assert dark["theme"] == "dark"
    assert dark["bg"] == _colour(person, "var(--chakra-colors-bg)"), "Airflow's own dark background"
    assert dark["font"] == person.evaluate("getComputedStyle(document.body).fontFamily"), "Airflow's font"
    frame.locator("#run-workflow").fill(probe)
    frame.locator("#run-workflow").press("Enter")
    row = frame.locator(f"tr[data-run='{probe}-1']")
    until(lambda: row.count(), "the probe's run in the runs table", 20)
    assert "2026-11-04 02:15:07" in row.inner_text(), row.inner_text()  # Airflow's format, in its chosen zone
    assert started.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S") == "2026-11-04 02:15:07"
    # Airflow switches to light (what its theme menu does: next-themes' class and stored choice): the page follows
    person.evaluate(
        "localStorage.setItem('theme', 'light'); document.documentElement.classList.replace('dark', 'light')"
    )
    light = until(
        lambda: (c := _frame_colours(person))["theme"] == "light" and c, "the page in light mode", 10
    )
    assert light["bg"] == _colour(person, "var(--chakra-colors-bg)") != dark["bg"]
    # and another timezone, chosen in Airflow's clock menu (stored, which every frame of the origin hears)
    person.evaluate("localStorage.setItem('timezone', JSON.stringify('America/New_York'))")
    _frame(person, "coordination").evaluate(
        "window.dispatchEvent(new StorageEvent('storage', {key: 'timezone'}))"
    )  # the event Chromium gives the frame when Airflow's window stores its choice
    until(lambda: "2026-11-03 15:45:07" in row.inner_text(), "the time in New York's zone", 10)


def test_the_nav_labels_fit_whole_and_carry_icons(person, running):
    person.goto(f"{running.url}/")
    for name, label in NAV.items():
        link = person.get_by_role("link", name=label).first
        link.wait_for()
        fits = link.evaluate(
            """(a) => [...a.querySelectorAll('*')].filter((x) => x.children.length === 0 && x.textContent.trim())
            .every((x) => x.scrollWidth <= x.clientWidth)"""
        )
        assert fits, f"the label {label!r} is cut"
        icon = link.locator("img")
        assert icon.get_attribute("src").endswith(f"baton/ui/static/{name}.svg")
        until(
            lambda icon=icon: icon.evaluate("(img) => img.complete && img.naturalWidth > 0"),
            f"{name}'s icon loaded",
            10,
        )


def test_a_link_to_a_run_survives_a_reload_and_can_be_shared(person, browser, running):
    run_id = running.trigger("pages_fanout").json()["dag_run_id"]
    frame = _open(person, running, "coordination")
    row = frame.locator(f"tr[data-run='{run_id}']")
    until(lambda: row.count(), "the run in the runs table", 30)
    row.locator("td").nth(1).click()  # its run id: the row's other cells hold links to Airflow's pages
    until(lambda: run_id in frame.locator("#run-hint").inner_text(), "the run shown", 10)
    address = until(lambda: "run_id=" in person.url and person.url, "the run in Airflow's address", 10)
    assert "/plugin/baton-coordination/" in address and "dag_id=pages_fanout" in address
    person.reload()
    again = person.frame_locator("iframe[src*='baton/ui/coordination']")
    until(lambda: run_id in again.locator("#run-hint").inner_text(), "the run shown after the reload", 30)
    until(lambda: "selected" in (again.locator(f"tr[data-run='{run_id}']").get_attribute("class") or ""),
          "its row selected", 20)  # fmt: skip
    viewer = _login(browser, running, "viewer")  # the link, shared
    try:
        viewer.goto(address)
        shared = viewer.frame_locator("iframe[src*='baton/ui/coordination']")
        until(
            lambda: run_id in shared.locator("#run-hint").inner_text(),
            "the run shown to whoever opens the link",
            30,
        )
        href = shared.locator("#run-hint a").get_attribute("href")  # to Airflow's own page of the run
        assert href == f"/dags/pages_fanout/runs/{quote(run_id, safe='')}"
    finally:
        viewer.context.close()


def test_a_dag_runs_baton_tab_shows_that_run_alone(person, running):
    run_id = running.trigger("pages_fanout").json()["dag_run_id"]
    person.goto(f"{running.url}/dags/pages_fanout/runs/{run_id}")
    tab = person.locator("a[href$='/plugin/baton-run']", has_text="Baton")  # the run page's tab
    tab.wait_for(timeout=30_000)
    tab.click()
    frame = person.frame_locator("iframe[src*='only=run']")
    until(lambda: run_id in frame.locator("#run-hint").inner_text(), "the run in its tab", 30)
    assert frame.locator("section").evaluate_all("(s) => s.map((x) => x.id)") == ["run"], "that run alone"


def test_the_runs_are_filtered_paged_and_batons_own_hidden_unless_asked_for(person, running):
    store = _store(running)
    probe, now = f"frame_page_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    runs = [Event(type="run.started", run_id=f"{probe}-{i:02d}", workflow=probe, ts=now - timedelta(minutes=i),
                  payload={}) for i in range(30)]  # fmt: skip
    system = f"scheduled__{probe}"
    runs.append(Event(type="run.started", run_id=system, workflow="baton_monitor", ts=now, payload={}))
    store.append(runs)
    frame = _open(person, running, "coordination")
    until(lambda: frame.locator(f"tr[data-run='{probe}-00']").count(), "the newest probe run", 20)
    assert frame.locator(f"tr[data-run='{system}']").count() == 0, "the monitor's run hidden by default"
    frame.locator("#run-system").check()
    until(lambda: frame.locator(f"tr[data-run='{system}']").count(), "Baton's own runs, asked for", 20)
    frame.locator("#run-workflow").fill(probe)
    frame.locator("#run-workflow").press("Enter")
    until(lambda: frame.locator("#run-page").inner_text() == "page 1"
          and set(frame.locator("tr[data-run]").evaluate_all("(r) => r.map((x) => x.dataset.dag)")) == {probe},
          "only the probe's runs", 20)  # fmt: skip
    assert frame.locator("tr[data-run]").count() == 25
    frame.get_by_role("button", name="Older ›").click()
    until(lambda: frame.locator("#run-page").inner_text() == "page 2", "the second page", 20)
    until(lambda: frame.locator("tr[data-run]").count() == 5, "the five oldest", 20)
    assert frame.locator(f"tr[data-run='{probe}-29']").count() == 1
    assert frame.get_by_role("button", name="Older ›").is_disabled()
    frame.locator("#run-state").select_option("finished")
    until(lambda: "No run of this workflow in this view" in frame.locator("#runs-table").inner_text(),
          "none of them finished", 20)  # fmt: skip
    assert (
        re.search(rf"workflow={probe}", person.url) and "state=finished" in person.url
    )  # the view is in the link


def test_what_cannot_be_acted_on_is_neither_offered_nor_accepted(person, running):
    frame = _open(person, running, "coordination")
    frame.locator("#runs-table").wait_for()
    assert not frame.locator("#run-actions").is_visible(), "no run chosen: nothing to stop or reassign"
    status, text = _from_the_page(
        person, "/baton/api/actions/dags/pages_fanout/runs/null/stop", {"reason": "x"}
    )
    assert status == 404 and "no run 'null' of pages_fanout in Airflow: choose a run" in text
    ghost = f"ghost_{uuid.uuid4().hex[:6]}"
    status, text = _from_the_page(person, f"/baton/api/actions/agents/{ghost}/circuit", {"open": True})
    assert status == 404 and f"no agent '{ghost}' in the roster (agents.yaml)" in text
    with person.expect_response(lambda r: "/baton/api/dashboard/agents" in r.url, timeout=30_000):
        pass  # the agents redrawn after the refusal: no row for it
    until(lambda: frame.locator("#agents tr[data-agent]").count(), "the agents table", 15)
    assert frame.locator(f"#agents tr[data-agent='{ghost}']").count() == 0
    # a refusal reads as a sentence, and messages stack three at most
    page = _frame(person, "coordination")
    page.evaluate("() => { for (let i = 0; i < 5; i++) Baton.toast('message ' + i); }")
    assert frame.locator("#toasts .toast").all_inner_texts() == ["message 2", "message 3", "message 4"]
