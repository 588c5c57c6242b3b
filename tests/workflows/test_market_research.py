"""market_research (dags/workflows/market_research.yaml): the bundled template in ``dag.test()``,
with Debian's Chromium against the demo market pages (a DemoWeb on a free port) and a Slack recorder.

One successful run (a baseline in inputs that
two prices moved away from by more than the threshold) and one failing run (a competitor the index
does not link) are shared by the tests that read them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from demo.skills.market import parse_price, structure_prices, validate_market
from demo.web import DemoWeb, market

from baton.events import EventStore
from tests.conftest import DAGS, run_dag_test_in_subprocess
from tests.slack_recorder import SlackRecorder

MARKET = market()
NAMES = {c["slug"]: c["name"] for c in MARKET["competitors"]}
BASELINE = {"acme": {"Starter": 49, "Team": 149, "Enterprise": 500}, "cobalt": {"Starter": 29}}


def _run(tmp_path_factory, name: str, conf_of):
    artifacts = tmp_path_factory.mktemp(f"{name}-artifacts")
    with DemoWeb() as web, SlackRecorder() as slack:
        env = {"BATON_ARTIFACTS": str(artifacts), "AIRFLOW_CONN_BATON_SLACK": slack.connection}
        conf = conf_of(web)
        run, results, output = run_dag_test_in_subprocess(
            DAGS, "dags-folder", "market_research", conf, env=env
        )
        posts = list(slack.posts)
        url = web.url
    events = list(EventStore.from_airflow().read(run.run_id))
    return {"run": run, "results": results, "output": output, "posts": posts, "events": events,
            "artifacts": artifacts, "url": url}  # fmt: skip


@pytest.fixture(scope="module")
def researched(airflow_db, tmp_path_factory):
    return _run(
        tmp_path_factory,
        "market",
        lambda web: {"base": web.url, "baseline": BASELINE, "threshold_pct": 10},
    )


@pytest.fixture(scope="module")
def unknown_competitor(airflow_db, tmp_path_factory):
    return _run(
        tmp_path_factory,
        "market-fail",
        lambda web: {"base": web.url, "competitors": ["acme", "zenith"]},
    )


@pytest.mark.integration
def test_the_agent_follows_the_index_links_inside_its_allowlist(researched):
    run, results, url = researched["run"], researched["results"], researched["url"]
    assert run.state == "success", researched["output"][-3000:]
    assert run.task_states == dict.fromkeys(
        ["discover", "sources", "collect", "prices", "validate", "watch", "report"], "success"
    )
    sources = results["sources"][1]
    assert sources == {
        "index_url": f"{url}/market/",
        "competitors": [
            {"slug": c["slug"], "name": c["name"], "url": f"{url}/market/competitors/{c['slug']}"}
            for c in MARKET["competitors"]
        ],
        "news_url": f"{url}/market/news",
        "not_followed": [MARKET["report"]["url"]],
        "findings": [],
    }
    actions = [e for e in researched["events"] if e.type == "browser.action"]
    assert [
        (e.step, e.payload["action"], e.payload["ok"]) for e in actions if e.payload["action"] == "goto"
    ] == [
        ("discover", "goto", True),
        *[("collect", "goto", True)] * 4,  # the three competitor pages and the news, as linked
    ]
    # the news page's tracking pixel: a request to a host no allowlist names, refused
    (blocked,) = [e for e in researched["events"] if e.type == "browser.blocked"]
    assert (blocked.step, blocked.payload["host"], blocked.payload["kind"]) == (
        "collect",
        "tracker.localhost.invalid",
        "request",
    )


@pytest.mark.integration
def test_the_extracted_prices_are_the_market_pages_prices(researched):
    prices = researched["results"]["prices"][1]
    assert [(c["slug"], c["name"], c["index_name"]) for c in prices["competitors"]] == [
        (c["slug"], c["name"], c["name"]) for c in MARKET["competitors"]
    ]
    for extracted, expected in zip(prices["competitors"], MARKET["competitors"], strict=True):
        assert extracted["columns"] == ["plan", "price_usd", "seats", "storage_gb", "support"]
        assert [
            {k: p[k] for k in ("plan", "price_usd", "seats", "storage_gb", "support")}
            for p in extracted["plans"]
        ] == [{**plan, "price_usd": float(plan["price_usd"])} for plan in expected["plans"]]


@pytest.mark.integration
def test_validation_reports_exactly_the_news_claim_the_tables_contradict(researched):
    validation = researched["results"]["validate"][1]
    # 3 x (2 columns + 3 prices + 1 name) + Cobalt's stated Starter price + Acme's stated 9% rise
    assert validation["checks"] == 20
    assert validation["ok"] is False
    assert validation["findings"] == [
        {
            "check": "consistency",
            "competitor": "acme",
            "message": "the news says Enterprise prices changed by +9% but the baseline's $500 became $599 "
            "(+19.8%): 2026-10-15 Acme Analytics raises Enterprise prices by 9% (Acme Analytics)",
        }
    ]


BLOCKED = (
    "Step 'discover', browser[0] (goto 'https://market.example.com/market/'): blocked: market.example.com "
    "is not an allowed host for this agent (allowed: 127.0.0.1, localhost); add it to the agent's "
    "browser.allow in the roster, or go to a page on an allowed host"
)
ALERT = (
    "2 price change(s) over 10% vs the baseline in inputs: Acme Analytics Enterprise $500 -> $599 "
    "(+19.8%); Cobalt Insights Starter $29 -> $19 (-34.5%)"
)


@pytest.mark.integration
def test_a_price_change_over_the_threshold_alerts_in_the_events_and_on_slack(researched):
    watch = researched["results"]["watch"][1]
    assert (watch["baseline"], watch["threshold_pct"], watch["alert"], watch["alert_delivered"]) == (
        "inputs",
        10.0,
        ALERT,
        True,
    )
    assert [
        (c["competitor"], c["plan"], c["before"], c["after"], c["change_pct"]) for c in watch["changes"]
    ] == [
        ("Acme Analytics", "Enterprise", 500.0, 599.0, 19.8),
        ("Cobalt Insights", "Starter", 29.0, 19.0, -34.5),
    ]
    (raised,) = [e for e in researched["events"] if e.type == "alert.raised"]
    assert (raised.step, raised.payload["kind"], raised.payload["message"]) == (
        "watch",
        "price_change",
        ALERT,
    )
    assert (raised.payload["channel"], raised.payload["delivered"]) == ("slack", True)
    (post,) = researched["posts"]
    lines = post["text"].splitlines()
    assert lines[:4] == [
        ":rotating_light: *Baton: price change*",
        "*Workflow:* `market_research`",
        f"*Run:* `{researched['run'].run_id}`",
        "*Step:* `watch`",
    ]
    assert f"> {ALERT.replace('>', '&gt;')}" in lines
    state = json.loads(Path(watch["state_file"]).read_text())
    assert state["prices"] == {
        c["slug"]: {p["plan"]: float(p["price_usd"]) for p in c["plans"]} for c in MARKET["competitors"]
    }


@pytest.mark.integration
def test_the_report_names_the_cheapest_competitor_with_a_chart(researched):
    report = researched["results"]["report"][1]
    assert report["cheapest"] == {
        "slug": "cobalt",
        "name": "Cobalt Insights",
        "total_usd": 507.0,
        "prices": {"Starter": 19.0, "Team": 89.0, "Enterprise": 399.0},
    }
    assert report["cheapest_by_plan"] == dict.fromkeys(["Starter", "Team", "Enterprise"], "Cobalt Insights")
    artifacts = researched["artifacts"]
    folder = f"market_research/{report['artifacts']['prices.png'].split('/')[1]}/report/try-1"
    assert report["artifacts"] == {
        "report.md": f"{folder}/report.md",
        "report.html": f"{folder}/report.html",
        "prices.png": f"{folder}/prices.png",
    }
    assert report["chart"] == str(artifacts / folder / "prices.png")
    chart = Path(report["chart"]).read_bytes()
    assert chart[:8] == b"\x89PNG\r\n\x1a\n" and len(chart) > 10_000
    markdown = Path(report["markdown"]).read_text()
    assert (
        "**Cheapest competitor: Cobalt Insights** (Starter $19, Team $89, Enterprise $399; $507 for one of each plan)."
        in markdown
    )
    assert "| Acme Analytics | $49 | $149 | $599 |" in markdown
    assert "![Competitor prices by plan](prices.png)" in markdown
    assert "- Acme Analytics Enterprise: $500 -> $599 (+19.8%) **over the threshold**" in markdown
    page = Path(report["html"]).read_text()
    assert '<img id="chart" src="prices.png" alt="Competitor prices by plan">' in page
    assert "Cheapest competitor: <strong>Cobalt Insights</strong>" in page
    assert (report["findings"], report["alerts"]) == (1, 1)


@pytest.mark.integration
def test_a_competitor_the_index_does_not_link_fails_the_run_with_the_reason(unknown_competitor):
    run, url = unknown_competitor["run"], unknown_competitor["url"]
    assert run.state == "failed"
    assert run.task_states == {
        "discover": "success",
        "sources": "failed",
        "collect": "upstream_failed",
        "prices": "upstream_failed",
        "validate": "upstream_failed",
        "watch": "upstream_failed",
        "report": "upstream_failed",
    }
    message = (
        f"the market index at {url}/market/ links no page for competitor(s) zenith "
        "(it links: acme, brightlytics, cobalt); fix inputs.competitors or the site"
    )
    (failed,) = [e for e in unknown_competitor["events"] if e.type == "step.failed"]
    assert (failed.step, failed.payload["error"]) == ("sources", message)
    assert failed.payload["will_retry"] is False  # bad data: no retry can mend it
    (post,) = unknown_competitor["posts"]
    assert "*Step:* `sources`" in post["text"].splitlines()
    assert f"> FinalSkillError: {message}" in post["text"].splitlines()


@pytest.fixture(scope="module")
def outside_allowlist(airflow_db, tmp_path_factory):
    return _run(tmp_path_factory, "market-blocked", lambda web: {"base": "https://market.example.com"})


@pytest.mark.integration
def test_market_pages_outside_the_allowlist_are_refused_before_the_browser_starts(outside_allowlist):
    run, events = outside_allowlist["run"], outside_allowlist["events"]
    assert (run.state, run.task_states["discover"], run.task_states["report"]) == (
        "failed",
        "failed",
        "upstream_failed",
    )
    blocked = [e for e in events if e.type == "browser.blocked"]
    assert [(e.step, e.try_number, e.payload["host"], e.payload["kind"]) for e in blocked] == [
        ("discover", n, "market.example.com", "navigation") for n in (1, 2, 3)
    ]
    failures = [(e.type, e.step, e.try_number) for e in events if e.type in ("step.failed", "step.retried")]
    assert sorted(failures) == sorted(
        [("step.failed", "discover", n) for n in (1, 2, 3)]
        + [("step.retried", "discover", n) for n in (1, 2)]
    )
    assert {e.payload["error"] for e in events if e.type == "step.failed"} == {BLOCKED}
    (post,) = outside_allowlist["posts"]  # the last try's failure, once
    assert f"> NavigationBlocked: {BLOCKED}" in post["text"].splitlines()


# --- the skills on their own (no browser) ----------------------------------------------------------


def test_prices_parse_only_numbers():
    assert [parse_price(t) for t in ("49", "$1,299.50", " 19 ", "call us", "", "49 USD")] == [
        49.0, 1299.5, 19.0, None, None, None
    ]  # fmt: skip


def test_schema_and_consistency_findings_name_the_competitor_and_the_cell():
    sources = {
        "competitors": [
            {"slug": "acme", "name": "Acme Analytics", "url": "http://127.0.0.1/market/competitors/acme"},
            {
                "slug": "cobalt",
                "name": "Cobalt Insights",
                "url": "http://127.0.0.1/market/competitors/cobalt",
            },
        ]
    }
    collected = {
        "name_1": "Acme Analytics Inc.",
        "prices_1": [{"plan": "Starter", "cost": "49"}],
        "name_2": "Cobalt Insights",
        "prices_2": [{"plan": "Starter", "price_usd": "29"}, {"plan": "Team", "price_usd": "call us"}],
    }
    prices = structure_prices(sources, collected)
    news = ["2026-11-18 Cobalt Insights cuts its Starter plan to $19 a month (Cobalt Insights)"]
    result = validate_market(prices, news)
    assert [(f["check"], f["competitor"], f["message"]) for f in result["findings"]] == [
        ("schema", "acme", "column 'price_usd' is missing"),
        ("consistency", "acme", "the index calls it 'Acme Analytics' but its page 'Acme Analytics Inc.'"),
        ("schema", "cobalt", "plan 'Team': price 'call us' is not a number"),
        ("consistency", "cobalt", "the news says Starter is $19 but the price table says $29: " + news[0]),
    ]
    assert (result["checks"], result["ok"]) == (10, False)


def test_with_no_baseline_the_previous_runs_prices_are_the_baseline(airflow_db, tmp_path, monkeypatch):
    from demo.skills.market import market_price_watch

    from baton.registry import SkillRequest

    monkeypatch.setenv("BATON_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_BATON_SLACK", raising=False)
    prices = structure_prices(
        {"competitors": [{"slug": "cobalt", "name": "Cobalt Insights", "url": "http://127.0.0.1/c"}]},
        {"name_1": "Cobalt Insights", "prices_1": [{"plan": "Starter", "price_usd": "19"}]},
    )

    def watch(run_id: str, starter: str) -> dict:
        prices["competitors"][0]["plans"][0]["price_usd"] = parse_price(starter)
        request = SkillRequest(
            workflow="market_research",
            step="watch",
            instruction="",
            inputs={"threshold_pct": 20},
            steps={"prices": prices},
            run_id=run_id,
        )
        return market_price_watch(request)

    first = watch(f"unit-first-{tmp_path.name}", "19")
    assert (first["baseline"], first["changes"], first["alert"]) == ("none", [], "")
    second = watch(f"unit-second-{tmp_path.name}", "25")
    alert = "1 price change(s) over 20% vs the previous run: Cobalt Insights Starter $19 -> $25 (+31.6%)"
    assert (second["baseline"], second["alert"], second["alert_delivered"]) == ("previous run", alert, False)
    (raised,) = EventStore.from_airflow().read(f"unit-second-{tmp_path.name}", types=["alert.raised"])
    assert (raised.payload["kind"], raised.payload["channel"], raised.payload["message"]) == (
        "price_change",
        "log",
        alert,
    )
    state = json.loads((tmp_path / "market_research" / "state" / "last_prices.json").read_text())
    assert state == {"run_id": f"unit-second-{tmp_path.name}", "prices": {"cobalt": {"Starter": 25.0}}}
