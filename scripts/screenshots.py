"""Takes the README's screenshots of a running `make run` Airflow with Playwright and Debian's Chromium.

make run            # in one terminal
.venv/bin/python scripts/screenshots.py [--url http://localhost:8080] [--only tour|gallery|pages|evaluations|queue]
    [WORKFLOW ...]

The tour (docs/img/*.png): the DAG list, the trigger form, a run's graph, a step's output.
The pages (docs/img/coordination.png, coordination-dark.png, management.png, editor.png): Baton's two pages
in Airflow's nav while a fan-out runs (parallel_feature_delivery), once in Airflow's dark theme and another
timezone, with every panel of Management holding data (it waits, up to 20 minutes, for make run's traffic to
fill them: an incident opens about five minutes after the first support ticket), and the editor showing a
template's error before it is saved.
The evaluations (docs/img/evaluations.png): the Management page's Evaluations panel, once make run recorded
support_triage's evaluations and this script a planted regression of it (`baton eval --record`).
The queue (docs/img/queue.png): the Coordination page's queue while fan-outs take make run's slots and
lead_qualification runs of two levels wait.
The gallery (docs/img/gallery/<workflow>*.png): each bundled workflow triggered over the REST API with
the demo inputs below, a person's approval answered the way the Required Actions page answers it,
then the run's graph and a sample of its output: one step's output (its XCom), or the report it wrote.
"""

from __future__ import annotations

import argparse
import html
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from baton.browser.session import CHROMIUM, LAUNCH_ARGS  # the flags Chromium needs here
from devtools.standalone import AirflowAPI

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
PARTNER = "http://127.0.0.1:8766"  # make run's demo partner API: the job board and the CMS


@dataclass
class Entry:
    """One workflow of the gallery: how it is started, which step's output is its sample."""

    dag_id: str
    output: str  # the step whose XCom is the sample (or, with ``page``, whose output names the page)
    conf: dict[str, Any] = field(default_factory=dict)
    started_by: str | None = None  # not triggered: the run another workflow's asset starts
    page: str | None = None  # a key of the step's output holding the path of an HTML page to show
    text: str | None = None  # a key of the step's output holding a text (Markdown) to show as it is
    approval: str | None = None  # the step whose Required Actions form is photographed, then approved


GALLERY = [
    Entry("lead_qualification", "value_leads", {"region": "emea", "min_score": 60}),
    Entry("lead_followup", "plan_followups", started_by="lead_qualification"),
    Entry("revenue_milestone", "compute_metrics"),
    Entry("daily_operations", "coordinate"),
    Entry("compliance_monitoring", "review_payments"),
    Entry("parallel_feature_delivery", "review"),
    Entry("customer_onboarding", "welcome_pack", text="markdown"),
    Entry("invoice_processing", "post_lines", {"invoice": "contoso_CT-2026-0457.txt"}, approval="approve"),
    Entry("hr_recruiting", "shortlist", {"board_url": f"{PARTNER}/board"}, approval="review"),
    Entry("content_marketing", "track_performance", {"cms_url": f"{PARTNER}/cms"}),
    Entry("supply_chain", "decide_orders"),
    Entry("market_research", "report", page="html"),
]


def login(page: Page, api: AirflowAPI) -> None:
    page.goto(f"{api.url}/auth/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(api.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda address: "/auth/" not in address)
    page.wait_for_load_state("networkidle")


def settle(page: Page, text: str) -> None:
    page.get_by_text(text).first.wait_for()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)  # panels fade in


def graph(page: Page, api: AirflowAPI, dag_id: str, run_id: str, task_id: str, path: Path) -> None:
    page.goto(f"{api.url}/dags/{dag_id}/runs/{run_id}")
    page.get_by_role("button", name="Show Graph (Press g)").click()
    settle(page, task_id)
    page.get_by_role("button", name="Collapse Details Panel").click()
    page.wait_for_timeout(500)
    page.get_by_role("button", name="fit view").click()
    page.wait_for_timeout(1000)
    page.screenshot(path=path)


def xcom(page: Page, api: AirflowAPI, dag_id: str, run_id: str, task_id: str, path: Path) -> None:
    """The step's XCom tab in the UI (its JSON viewer shows the first ~15 lines)."""
    page.goto(f"{api.url}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/xcom")
    page.get_by_text("return_value").first.wait_for()
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Show Grid (Press g)").click()
    page.get_by_role("button", name="Expand all extra JSON").click()
    page.wait_for_timeout(1000)
    page.screenshot(path=path)


SAMPLE_LINES = 60


def sample(page: Page, dag_id: str, task_id: str, output: Any, path: Path) -> None:
    """A step's whole output (read over the REST API), pretty-printed, or one text of it: the UI's JSON
    viewer shows only its first lines. Longer outputs are cut after SAMPLE_LINES lines."""
    shown = output if isinstance(output, str) else json.dumps(output, indent=2, ensure_ascii=False)
    lines = shown.splitlines()
    if len(lines) > SAMPLE_LINES:
        lines = [*lines[:SAMPLE_LINES], f"... {len(lines) - SAMPLE_LINES} more lines"]
    page.set_content(
        "<style>body{margin:0;font:14px/1.45 ui-monospace,monospace;background:#f6f8fa}"
        "h1{font:600 15px sans-serif;margin:0;padding:10px 16px;background:#017cee;color:#fff}"
        "pre{margin:0;padding:12px 16px}</style>"
        f"<h1>{html.escape(dag_id)} · output of {html.escape(task_id)}</h1>"
        f"<pre>{html.escape(chr(10).join(lines))}</pre>"
    )
    page.locator("body").screenshot(path=path)


def tour(page: Page, api: AirflowAPI) -> None:
    page.goto(f"{api.url}/dags")
    settle(page, "lead_qualification")
    page.screenshot(path=OUT / "dags.png")
    page.goto(f"{api.url}/dags/lead_qualification")
    page.get_by_role("button", name="Trigger").first.click()
    settle(page, "min_score")
    page.screenshot(path=OUT / "trigger.png")
    page.get_by_role("dialog").get_by_role("button", name="Trigger").click()
    run_id = latest_run(api, "lead_qualification")
    finished(api, "lead_qualification", run_id)
    graph(page, api, "lead_qualification", run_id, "value_leads", OUT / "run.png")
    xcom(page, api, "lead_qualification", run_id, "value_leads", OUT / "output.png")


def gallery(page: Page, paper: Page, api: AirflowAPI, entries: list[Entry]) -> None:
    """``page`` is signed in to Airflow; ``paper`` (narrower) shows the outputs."""
    folder = OUT / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    since = time.time()
    runs: dict[str, str] = {}
    conf = {entry.dag_id: entry.conf for entry in GALLERY}
    for entry in entries:  # all at once: Airflow runs them side by side
        dag_id = entry.started_by or entry.dag_id
        if dag_id not in runs:
            for _ in range(5):  # on SQLite, a busy scheduler can lock the database for a moment (500)
                response = api.trigger(dag_id, conf[dag_id])
                if response.status_code != 500:
                    break
                time.sleep(2)
            if response.status_code != 200:
                raise SystemExit(f"{dag_id}: trigger refused ({response.status_code}): {response.text}")
            runs[dag_id] = response.json()["dag_run_id"]
    for entry in entries:
        run_id = latest_run(api, entry.dag_id, after=since) if entry.started_by else runs[entry.dag_id]
        if entry.approval:
            hitl = awaiting_person(api, entry.dag_id, run_id, entry.approval)
            page.goto(f"{api.url}/dags/{entry.dag_id}/runs/{run_id}/tasks/{entry.approval}/required_actions")
            settle(page, "Approve")
            page.screenshot(path=folder / f"{entry.dag_id}-approval.png")
            answer = api.api("PATCH", hitl, json={"chosen_options": ["Approve"], "params_input": {}})
            answer.raise_for_status()
        run = finished(api, entry.dag_id, run_id)
        if run["state"] != "success":
            raise SystemExit(f"{entry.dag_id} run {run_id} ended {run['state']}: see its task logs in the UI")
        graph(page, api, entry.dag_id, run_id, entry.output, folder / f"{entry.dag_id}.png")
        shot = folder / f"{entry.dag_id}-output.png"
        output = step_output(api, entry.dag_id, run_id, entry.output)
        if entry.page:
            paper.goto(Path(output[entry.page]).as_uri())
            paper.wait_for_load_state("networkidle")
            paper.screenshot(path=shot, full_page=True)
        else:
            sample(paper, entry.dag_id, entry.output, output[entry.text] if entry.text else output, shot)
        print(f"{entry.dag_id}: {run_id} -> {shot.relative_to(ROOT)}", flush=True)


def latest_run(api: AirflowAPI, dag_id: str, after: float = 0.0, timeout: float = 180) -> str:
    """The id of ``dag_id``'s newest run, once there is one queued after ``after`` (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.api(
            "GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 1}
        ).json()["dag_runs"]
        if runs and _epoch(runs[0]["queued_at"] or runs[0]["run_after"]) >= after:
            return runs[0]["dag_run_id"]
        time.sleep(0.5)
    raise TimeoutError(f"no run of {dag_id} after {after}")


def finished(api: AirflowAPI, dag_id: str, run_id: str) -> dict[str, Any]:
    return api.wait_for_run(dag_id, run_id, timeout=600, poll=0.5)


def awaiting_person(api: AirflowAPI, dag_id: str, run_id: str, task_id: str, timeout: float = 300) -> str:
    """The hitlDetails path of ``task_id``, once it waits for a person."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    deadline = time.monotonic() + timeout
    while (state := api.api("GET", path).json().get("state")) != "awaiting_input":
        if state in ("success", "failed", "upstream_failed", "skipped") or time.monotonic() > deadline:
            raise SystemExit(f"{dag_id}.{task_id} did not ask a person (state {state})")
        time.sleep(0.5)
    return f"{path}/-1/hitlDetails"


def step_output(api: AirflowAPI, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    value = api.api("GET", path, params={"deserialize": True}).json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# What shows that each panel of the Management page holds data (make run's traffic fills them: support_triage
# every two minutes, with its experiment, rollout and budgets; the helpdesk's outage opens an incident about
# five minutes after its first ticket), and how long a fresh make run may take to get there.
FILLED = {
    "#rollouts table": "the rollout's runs",
    "#experiments table": "the experiment's arms",
    "#spend tbody td:not(.muted)": "a budget's spend",
    "#incident-reports tbody tr": "an incident",
    "#error-patterns tbody tr": "an error pattern",
    "#trend canvas": "the analytics' trend",
    "#evaluations tbody tr": "a recorded evaluation",
}
FILL_TIMEOUT_MS = 20 * 60 * 1000


def pages(page: Page, api: AirflowAPI) -> None:
    """Coordination while parallel_feature_delivery's fan-out runs, with that run's timeline and map (and once
    more in Airflow's dark theme and another timezone); Management with every panel holding data; the editor
    with a mistake in a template."""
    page.set_viewport_size({"width": 1400, "height": 1500})  # the pages are long: their frame is the window
    page.goto(f"{api.url}/plugin/baton-management")
    frame = page.frame_locator("iframe[src*='baton/ui/management']")
    for selector, what in FILLED.items():
        print(f"waiting for {what} on the Management page", flush=True)
        frame.locator(selector).first.wait_for(timeout=FILL_TIMEOUT_MS)
    run_id = api.trigger("parallel_feature_delivery").json()["dag_run_id"]
    page.goto(f"{api.url}/plugin/baton-coordination")
    frame = page.frame_locator("iframe[src*='baton/ui/coordination']")
    row = frame.locator(f"tr[data-run='{run_id}']")
    row.wait_for(timeout=60_000)
    row.locator("td").nth(1).click()  # its run id: the row's other cells hold links to Airflow's pages
    frame.locator("#gantt canvas").wait_for()
    page.wait_for_timeout(6000)  # a few polls: the fan-out's items appear
    page.screenshot(path=OUT / "coordination.png", full_page=True)
    # the same run in Airflow's dark theme and another timezone (its user menu's and clock menu's choices)
    page.evaluate(
        "localStorage.setItem('theme', 'dark'); localStorage.setItem('timezone', '\"Asia/Kolkata\"')"
    )
    page.reload()
    frame.locator("#gantt canvas").wait_for()
    page.wait_for_timeout(3000)
    page.screenshot(path=OUT / "coordination-dark.png", clip={"x": 0, "y": 0, "width": 1400, "height": 900})
    page.evaluate("localStorage.setItem('theme', 'light'); localStorage.removeItem('timezone')")
    finished(api, "parallel_feature_delivery", run_id)
    page.goto(f"{api.url}/plugin/baton-management")
    frame = page.frame_locator("iframe[src*='baton/ui/management']")
    for selector in FILLED:
        frame.locator(selector).first.wait_for(timeout=60_000)
    page.set_viewport_size({"width": 1400, "height": 3400})  # the frame as tall as every panel of the page
    page.wait_for_timeout(3000)
    page.screenshot(path=OUT / "management.png", full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1500})
    frame.locator("a[data-open='customer_onboarding']").click()
    editor = frame.locator("#editor")
    editor.wait_for()
    page.wait_for_timeout(1000)
    editor.fill(
        editor.input_value().replace("agent: onboarding_specialist", "agent: onboarding_specalist", 1)
    )
    frame.locator("#issues li").first.wait_for()
    frame.locator("#edit").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    frame.locator("#edit").screenshot(path=OUT / "editor.png")


def evaluations(page: Page, api: AirflowAPI) -> None:
    """The Management page's Evaluations panel: make run's two evaluations of support_triage (its version 2 and
    its "brief" arm, recorded in the background as it starts), and a planted regression recorded here, as a
    team's CI would record a prompt edit: version 3, whose instruction no longer names the tickets' customers."""
    with tempfile.TemporaryDirectory() as folder:
        planted = Path(folder) / "versions" / "support_triage.v3.yaml"
        planted.parent.mkdir()
        text = (ROOT / "dags" / "versions" / "support_triage.v2.yaml").read_text()
        planted.write_text(
            text.replace(
                "{{ t.id }} from {{ t.customer }} ({{ t.channel }}): {{ t.subject }}", "{{ t.subject }}"
            ).replace("version: 2", "version: 3", 1)
        )
        # with make run's settings (scripts/env.sh): its store, its model connection
        command = f"source scripts/env.sh && baton eval support_triage --file {planted} --record --workers 2"
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True)
        print(
            (done.stdout + done.stderr).strip().splitlines()[-1], flush=True
        )  # recorded: ... of support_triage v3
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.goto(f"{api.url}/plugin/baton-management")
    frame = page.frame_locator("iframe[src*='baton/ui/management']")
    panel = frame.locator("#evaluations")
    print("waiting for make run's evaluations on the Management page", flush=True)
    panel.locator("tbody tr").nth(2).wait_for(timeout=FILL_TIMEOUT_MS)
    panel.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    panel.screenshot(path=OUT / "evaluations.png")


def queue(page: Page, api: AirflowAPI) -> None:
    """The Coordination page's queue while make run's slots are busy: fan-outs of parallel_feature_delivery
    take them, then lead_qualification runs at two levels wait, the urgent ones first."""
    page.set_viewport_size({"width": 1400, "height": 1500})
    for _ in range(3):
        api.trigger("parallel_feature_delivery")
    for level in ("urgent", "normal", "urgent", "normal"):
        api.trigger("lead_qualification", {"baton_priority": level})
    page.goto(f"{api.url}/plugin/baton-coordination")
    frame = page.frame_locator("iframe[src*='baton/ui/coordination']")
    frame.locator("#queue-table tbody tr").nth(3).wait_for(timeout=120_000)
    page.wait_for_timeout(1500)
    frame.locator("#queue").screenshot(path=OUT / "queue.png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://localhost:8080")
    parser.add_argument("--only", choices=["tour", "gallery", "pages", "evaluations", "queue"])
    parser.add_argument("workflows", nargs="*", help="gallery entries to take (default: all)")
    args = parser.parse_args()
    api = AirflowAPI(args.url, ROOT / ".airflow")
    entries = [entry for entry in GALLERY if not args.workflows or entry.dag_id in args.workflows]
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 820})
        page.set_default_timeout(120_000)  # a loaded two-core machine answers a page in more than 30 s
        login(page, api)
        if args.only in (None, "tour"):
            tour(page, api)
        if args.only in (None, "gallery"):
            gallery(page, browser.new_page(viewport={"width": 900, "height": 300}), api, entries)
        if args.only in (None, "pages"):
            pages(page, api)
        if args.only in (None, "evaluations"):
            evaluations(page, api)
        if args.only in (None, "queue"):
            queue(page, api)
        browser.close()


if __name__ == "__main__":
    main()
