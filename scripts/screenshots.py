"""Takes the README's screenshots of a running `make run` Airflow with Playwright and Debian's Chromium.

make run            # in one terminal
.venv/bin/python scripts/screenshots.py [--url http://localhost:8080]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from baton.browser.session import CHROMIUM, LAUNCH_ARGS  # the flags Chromium needs here

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"


def login(page: Page, url: str) -> None:
    password = json.loads((ROOT / ".airflow" / "simple_auth_manager_passwords.json.generated").read_text())[
        "admin"
    ]
    page.goto(f"{url}/auth/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda address: "/auth/" not in address)
    page.wait_for_load_state("networkidle")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://localhost:8080")
    url = parser.parse_args().url
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 820})
        login(page, url)
        page.goto(f"{url}/dags")
        page.get_by_text("lead_qualification").first.wait_for()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=OUT / "dags.png")
        page.goto(f"{url}/dags/lead_qualification")
        page.get_by_role("button", name="Trigger").first.click()
        page.get_by_text("min_score").first.wait_for()
        page.wait_for_timeout(1000)  # the dialog fades in
        page.screenshot(path=OUT / "trigger.png")
        page.get_by_role("dialog").get_by_role("button", name="Trigger").click()
        run_id = wait_for_latest_run(url, "lead_qualification")
        page.goto(f"{url}/dags/lead_qualification/runs/{run_id}")
        page.get_by_role("button", name="Show Graph (Press g)").click()
        page.get_by_text("value_leads").first.wait_for()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)
        page.screenshot(path=OUT / "run.png")
        page.goto(f"{url}/dags/lead_qualification/runs/{run_id}/tasks/value_leads/xcom")
        page.get_by_text("return_value").first.wait_for()
        page.wait_for_load_state("networkidle")
        page.get_by_role("button", name="Show Grid (Press g)").click()
        page.get_by_role("button", name="Expand all extra JSON").click()
        page.wait_for_timeout(1000)
        page.screenshot(path=OUT / "output.png")
        browser.close()


def wait_for_latest_run(url: str, dag_id: str) -> str:
    """The newest run of ``dag_id``, once it has finished (over the REST API)."""
    password = json.loads((ROOT / ".airflow" / "simple_auth_manager_passwords.json.generated").read_text())[
        "admin"
    ]
    token = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": password}).json()[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(240):
        runs = httpx.get(
            f"{url}/api/v2/dags/{dag_id}/dagRuns",
            headers=headers,
            params={"order_by": "-run_after", "limit": 1},
        ).json()["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]["dag_run_id"]
        time.sleep(0.5)
    raise TimeoutError(f"no finished run of {dag_id}")


if __name__ == "__main__":
    main()
