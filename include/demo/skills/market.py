"""Market research skills (dags/workflows/market_research.yaml): the sources a browser agent found on
the market pages, the competitors' prices as structured data, their validation, a price watch that
alerts on big changes, and a competitive-analysis report (Markdown, HTML and a matplotlib chart).

The browser steps do the reading (``discover``: the index's links; ``collect``: each competitor's
``table.prices`` and the news); these skills only compute over what the steps extracted.
"""

# long: the market_research workflow end to end (sources, prices, checks, report, chart): one demo business area

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel

from baton.errors import FinalSkillError
from baton.registry import SkillRequest, skill

log = logging.getLogger(__name__)

PAGES = 3  # the competitor pages the template's collect step visits (link_1 .. link_3)
REQUIRED_COLUMNS = ("plan", "price_usd")
PRICE = re.compile(r"^\$?\s*(\d[\d,]*(?:\.\d+)?)$")
STATED_PRICE = re.compile(r"\b(?P<plan>[A-Z][a-z]+) plan to \$(?P<price>\d[\d,]*(?:\.\d+)?)")
STATED_CHANGE = re.compile(r"\b(?P<verb>raises|cuts) (?P<plan>[A-Z][a-z]+) prices by (?P<pct>\d+(?:\.\d+)?)%")
STATE_FILE = ("market_research", "state", "last_prices.json")


# --- sources --------------------------------------------------------------------------------------


class Source(BaseModel):
    slug: str
    name: str
    url: str


class MarketSources(BaseModel):
    index_url: str
    competitors: list[Source]
    news_url: str
    not_followed: list[str]
    findings: list[str]


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


@skill("market_sources", output=MarketSources, pure=True)
def market_sources(request: SkillRequest) -> dict:
    """The pages to read: the competitor and news links the market index gives, on the site's host."""
    found = request.steps["discover"]
    index_url = found["url"]
    site = _host(index_url)
    names = list(found["names"])
    links = [urljoin(index_url, found[f"link_{n}"]) for n in range(1, PAGES + 1)]
    findings = []
    if len(names) != PAGES:
        findings.append(f"the index lists {len(names)} competitors; this workflow reads the first {PAGES}")
    competitors = []
    for name, url in zip(names, links, strict=False):
        path = urlsplit(url).path
        if _host(url) != site or not path.startswith("/market/competitors/"):
            raise FinalSkillError(
                f"the market index links '{name}' to {url}, not to a competitor page on {site}; "
                "this workflow follows links inside its allowlist only"
            )
        competitors.append(Source(slug=path.rsplit("/", 1)[-1], name=name, url=url))
    linked = [c.slug for c in competitors]
    expected = [str(slug) for slug in request.inputs.get("competitors") or []]
    missing = [slug for slug in expected if slug not in linked]
    if missing:
        raise FinalSkillError(
            f"the market index at {index_url} links no page for competitor(s) {', '.join(missing)} "
            f"(it links: {', '.join(linked)}); fix inputs.competitors or the site"
        )
    others = [urljoin(index_url, found[key]) for key in ("news_link", "report_link")]
    news_url = others[0]
    if _host(news_url) != site:
        raise FinalSkillError(f"the market index links its news to {news_url}, outside {site}")
    return MarketSources(
        index_url=index_url,
        competitors=competitors,
        news_url=news_url,
        not_followed=[url for url in others if _host(url) != site],
        findings=findings,
    ).model_dump()


# --- prices ---------------------------------------------------------------------------------------


class Plan(BaseModel):
    plan: str
    price_usd: float | None  # None: the cell was not a number (a schema finding)
    raw_price: str
    seats: int | None = None
    storage_gb: int | None = None
    support: str = ""


class Competitor(BaseModel):
    slug: str
    name: str
    index_name: str
    url: str
    columns: list[str]
    plans: list[Plan]


class MarketPrices(BaseModel):
    competitors: list[Competitor]


def parse_price(text: str) -> float | None:
    """``"49"``, ``"$1,299.50"`` -> a number; anything else (``"call us"``, ``""``) -> None."""
    match = PRICE.match(str(text).strip())
    return float(match.group(1).replace(",", "")) if match else None


def _int(text: Any) -> int | None:
    return int(text) if str(text).strip().isdigit() else None


def structure_prices(sources: dict[str, Any], collected: dict[str, Any]) -> dict[str, Any]:
    """The collect step's price tables as competitors with typed plans (``market_prices``)."""
    competitors = []
    for n, source in enumerate(sources["competitors"], start=1):
        rows = collected[f"prices_{n}"]
        columns = list(rows[0]) if rows else []
        plans = [
            Plan(
                plan=str(row.get("plan", "")).strip(),
                price_usd=parse_price(row.get("price_usd", "")),
                raw_price=str(row.get("price_usd", "")),
                seats=_int(row.get("seats", "")),
                storage_gb=_int(row.get("storage_gb", "")),
                support=str(row.get("support", "")),
            )
            for row in rows
        ]
        competitors.append(
            Competitor(
                slug=source["slug"],
                name=str(collected[f"name_{n}"]).strip(),
                index_name=source["name"],
                url=source["url"],
                columns=columns,
                plans=plans,
            )
        )
    return MarketPrices(competitors=competitors).model_dump()


@skill("market_prices", output=MarketPrices, pure=True)
def market_prices(request: SkillRequest) -> dict:
    """Each competitor's price table as structured plans (numeric prices where the cell is a number)."""
    return structure_prices(request.steps["sources"], request.steps["collect"])


# --- validation -----------------------------------------------------------------------------------


class Finding(BaseModel):
    check: str  # schema | consistency
    competitor: str
    message: str


class MarketValidation(BaseModel):
    checks: int
    ok: bool
    findings: list[Finding]


def _baseline(value: Any) -> dict[str, dict[str, float]]:
    return {
        str(slug): {str(plan): float(price) for plan, price in (plans or {}).items()}
        for slug, plans in (value or {}).items()
    }


def validate_market(prices: dict[str, Any], news: list[str], baseline: dict[str, Any] | None = None) -> dict:
    """Schema (required columns, numeric prices) and cross-source consistency (the index's names vs the
    pages', the news' stated prices and price changes vs the tables) of ``market_prices``' output."""
    # long: each check of the market data names its own finding
    findings: list[Finding] = []
    checks = 0
    competitors = [Competitor.model_validate(c) for c in prices["competitors"]]
    before = _baseline(baseline)
    for c in competitors:
        for column in REQUIRED_COLUMNS:
            checks += 1
            if column not in c.columns:
                findings.append(
                    Finding(check="schema", competitor=c.slug, message=f"column '{column}' is missing")
                )
        if not c.plans:
            findings.append(Finding(check="schema", competitor=c.slug, message="the price table has no rows"))
        for plan in c.plans:
            checks += 1
            if "price_usd" in c.columns and plan.price_usd is None:
                findings.append(
                    Finding(
                        check="schema",
                        competitor=c.slug,
                        message=f"plan '{plan.plan}': price '{plan.raw_price}' is not a number",
                    )
                )
        checks += 1
        if c.index_name != c.name:
            findings.append(
                Finding(
                    check="consistency",
                    competitor=c.slug,
                    message=f"the index calls it '{c.index_name}' but its page '{c.name}'",
                )
            )
    for item in news:
        about = next((c for c in competitors if c.name in item), None)
        if about is None:
            continue
        table = {p.plan: p.price_usd for p in about.plans}
        if match := STATED_PRICE.search(item):
            checks += 1
            stated, plan = float(match["price"].replace(",", "")), match["plan"]
            if table.get(plan) != stated:
                findings.append(
                    Finding(
                        check="consistency",
                        competitor=about.slug,
                        message=f"the news says {plan} is ${stated:g} but the price table says "
                        f"{_money(table.get(plan))}: {item}",
                    )
                )
        if (match := STATED_CHANGE.search(item)) and match["plan"] in before.get(about.slug, {}):
            checks += 1
            plan, stated = match["plan"], float(match["pct"]) * (1 if match["verb"] == "raises" else -1)
            old, new = before[about.slug][plan], table.get(plan)
            actual = None if new is None or not old else (new - old) / old * 100
            if actual is None or abs(actual - stated) > 1:
                findings.append(
                    Finding(
                        check="consistency",
                        competitor=about.slug,
                        message=f"the news says {plan} prices changed by {stated:+g}% but the baseline's "
                        f"{_money(old)} became {_money(new)} ({_pct(actual)}): {item}",
                    )
                )
    return MarketValidation(checks=checks, ok=not findings, findings=findings).model_dump()


def _money(value: float | None) -> str:
    return "no number" if value is None else f"${value:,.0f}" if value == int(value) else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


@skill("market_validate", output=MarketValidation, pure=True)
def market_validate(request: SkillRequest) -> dict:
    """Check the prices' schema and their consistency across the index, the pages and the news."""
    return validate_market(
        request.steps["prices"], list(request.steps["collect"]["news"]), request.inputs.get("baseline")
    )


# --- the price watch ------------------------------------------------------------------------------


class PriceChange(BaseModel):
    competitor: str
    plan: str
    before: float
    after: float
    change_pct: float


class PriceWatch(BaseModel):
    baseline: str  # inputs | previous run | none
    threshold_pct: float
    changes: list[PriceChange]
    over_threshold: list[PriceChange]
    alert: str  # the alert's text, "" when none was raised
    alert_delivered: bool
    state_file: str


def state_path() -> Path:
    """Where the last run's prices are kept (``<artifacts root>/market_research/state/``)."""
    from baton.browser.artifacts import artifacts_root

    return artifacts_root().joinpath(*STATE_FILE)


def current_prices(prices: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        c["slug"]: {p["plan"]: p["price_usd"] for p in c["plans"] if p["price_usd"] is not None}
        for c in prices["competitors"]
    }


def price_changes(
    before: dict[str, dict[str, float]], now: dict[str, dict[str, float]], names: dict[str, str]
) -> list[PriceChange]:
    changes = []
    for slug, plans in now.items():
        for plan, after in plans.items():
            old = before.get(slug, {}).get(plan)
            if old is None or old == after or not old:
                continue
            pct = round((after - old) / old * 100, 1)
            changes.append(
                PriceChange(
                    competitor=names.get(slug, slug), plan=plan, before=old, after=after, change_pct=pct
                )
            )
    return changes


def alert_text(over: list[PriceChange], threshold: float, source: str) -> str:
    parts = [
        f"{c.competitor} {c.plan} {_money(c.before)} -> {_money(c.after)} ({c.change_pct:+.1f}%)"
        for c in over
    ]
    return f"{len(over)} price change(s) over {threshold:g}% vs the {source}: " + "; ".join(parts)


def _task_context() -> Any:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # outside a task (unit tests): no context
        return None


@skill("market_price_watch", output=PriceWatch)
def market_price_watch(request: SkillRequest) -> dict:
    """Compare the prices with inputs.baseline (or the previous run's); alert on changes over the
    threshold; keep this run's prices for the next run."""
    from baton.alerts import Alert, send

    prices = request.steps["prices"]
    now = current_prices(prices)
    names = {c["slug"]: c["name"] for c in prices["competitors"]}
    threshold = float(request.inputs.get("threshold_pct", 10))
    state = state_path()
    given = _baseline(request.inputs.get("baseline"))
    if given:
        before, source = given, "inputs"
    elif state.exists():
        before, source = _baseline(json.loads(state.read_text()).get("prices")), "previous run"
    else:
        before, source = {}, "none"
    changes = price_changes(before, now, names)
    over = [c for c in changes if abs(c.change_pct) > threshold]
    text, delivered = "", False
    if over:
        text = alert_text(over, threshold, "baseline in inputs" if source == "inputs" else source)
        context = _task_context()
        attempt = getattr(context["ti"], "try_number", None) if context else None
        delivered = send(
            Alert(
                kind="price_change",
                workflow=request.workflow,
                run_id=request.run_id,
                step=request.step,
                message=text,
                attempt=attempt,
            )
        )
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"run_id": request.run_id, "prices": now}, indent=2, sort_keys=True))
    return PriceWatch(
        baseline=source,
        threshold_pct=threshold,
        changes=changes,
        over_threshold=over,
        alert=text,
        alert_delivered=delivered,
        state_file=str(state),
    ).model_dump()


# --- the report -----------------------------------------------------------------------------------


class Cheapest(BaseModel):
    slug: str
    name: str
    total_usd: float
    prices: dict[str, float]


class MarketReport(BaseModel):
    cheapest: Cheapest
    cheapest_by_plan: dict[str, str]
    markdown: str  # absolute paths of the files
    html: str
    chart: str
    artifacts: dict[str, str]  # name -> path relative to the artifacts root
    findings: int
    alerts: int


def _report_folder(request: SkillRequest):
    from baton.browser.artifacts import Artifacts, artifacts_root, task_folder

    context = _task_context()
    if context is not None:
        return Artifacts.for_task(context)
    return Artifacts(artifacts_root(), task_folder(request.workflow, request.run_id, request.step))


def draw_chart(prices: dict[str, Any], plans: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    competitors = prices["competitors"]
    width = 0.8 / max(len(competitors), 1)
    for i, c in enumerate(competitors):
        table = {p["plan"]: p["price_usd"] for p in c["plans"]}
        values = [table.get(plan) or 0 for plan in plans]
        xs = [x + (i - (len(competitors) - 1) / 2) * width for x in range(len(plans))]
        bars = ax.bar(xs, values, width, label=c["name"])
        ax.bar_label(bars, labels=[f"${v:,.0f}" for v in values], fontsize=7)
    ax.set_xticks(range(len(plans)), plans)
    ax.set_ylabel("USD per month")
    ax.set_title("Competitor prices by plan")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def build_report(
    sources: dict[str, Any], prices: dict[str, Any], validation: dict[str, Any], watch: dict[str, Any]
) -> dict[str, Any]:
    """The analysis (without files): cheapest competitor over the plans every one offers, per plan."""
    now = current_prices(prices)
    names = {c["slug"]: c["name"] for c in prices["competitors"]}
    common = [
        p["plan"] for p in prices["competitors"][0]["plans"] if all(p["plan"] in t for t in now.values())
    ]
    totals = {slug: sum(now[slug][plan] for plan in common) for slug in now}
    best = min(totals, key=lambda slug: (totals[slug], slug))
    by_plan = {plan: names[min(now, key=lambda s: (now[s][plan], s))] for plan in common}
    return {
        "plans": common,
        "names": names,
        "now": now,
        "cheapest": Cheapest(slug=best, name=names[best], total_usd=totals[best], prices=now[best]),
        "by_plan": by_plan,
    }


def markdown_report(analysis: dict, sources: dict, validation: dict, watch: dict, chart: str) -> str:
    plans, names, now, cheapest = analysis["plans"], analysis["names"], analysis["now"], analysis["cheapest"]
    listed = ", ".join(f"{plan} {_money(price)}" for plan, price in cheapest.prices.items())
    lines = [
        "# Competitive analysis: product analytics prices",
        "",
        f"**Cheapest competitor: {cheapest.name}** ({listed}; {_money(cheapest.total_usd)} for one of each plan).",
        "",
        "| Competitor | " + " | ".join(plans) + " |",
        "|---|" + "---|" * len(plans),
    ]
    for slug, table in now.items():
        lines.append(f"| {names[slug]} | " + " | ".join(_money(table.get(p)) for p in plans) + " |")
    lines += [
        "",
        "Cheapest per plan: " + "; ".join(f"{p}: {n}" for p, n in analysis["by_plan"].items()) + ".",
        "",
    ]
    lines += [f"![Competitor prices by plan]({chart})", "", "## Price changes", ""]
    if watch["changes"]:
        lines += [
            f"- {c['competitor']} {c['plan']}: {_money(c['before'])} -> {_money(c['after'])} ({c['change_pct']:+.1f}%)"
            + (" **over the threshold**" if c in watch["over_threshold"] else "")
            for c in watch["changes"]
        ]
    else:
        lines.append(f"No change against the baseline ({watch['baseline']}).")
    lines += ["", "## Data validation", ""]
    lines += [f"- {f['check']}: {f['competitor']}: {f['message']}" for f in validation["findings"]] or [
        f"All {validation['checks']} checks passed."
    ]
    lines += ["", "## Sources", ""]
    lines += [f"- {c['name']}: {c['url']}" for c in sources["competitors"]]
    lines.append(f"- News: {sources['news_url']}")
    lines += [f"- Not followed (outside the allowlist): {url}" for url in sources["not_followed"]]
    return "\n".join(lines) + "\n"


def html_report(analysis: dict, sources: dict, validation: dict, watch: dict, chart: str) -> str:
    e = html.escape
    plans, names, now, cheapest = analysis["plans"], analysis["names"], analysis["now"], analysis["cheapest"]
    head = "".join(f"<th>{e(p)}</th>" for p in plans)
    rows = "".join(
        f"<tr><td>{e(names[slug])}</td>" + "".join(f"<td>{e(_money(t.get(p)))}</td>" for p in plans) + "</tr>"
        for slug, t in now.items()
    )
    changes = "".join(
        f"<li>{e(c['competitor'])} {e(c['plan'])}: {e(_money(c['before']))} &rarr; {e(_money(c['after']))} "
        f"({c['change_pct']:+.1f}%)</li>"
        for c in watch["changes"]
    )
    findings = "".join(
        f"<li>{e(f['check'])}: {e(f['competitor'])}: {e(f['message'])}</li>" for f in validation["findings"]
    )
    links = "".join(f'<li><a href="{e(c["url"])}">{e(c["name"])}</a></li>' for c in sources["competitors"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Competitive analysis</title></head>
<body>
<h1>Competitive analysis: product analytics prices</h1>
<p id="cheapest">Cheapest competitor: <strong>{e(cheapest.name)}</strong>
({e(_money(cheapest.total_usd))} for one of each plan)</p>
<table id="prices"><thead><tr><th>Competitor</th>{head}</tr></thead><tbody>{rows}</tbody></table>
<p><img id="chart" src="{e(chart)}" alt="Competitor prices by plan"></p>
<h2>Price changes</h2><ul id="changes">{changes}</ul>
<h2>Data validation</h2><ul id="findings">{findings}</ul>
<h2>Sources</h2><ul id="sources">{links}</ul>
</body></html>
"""


@skill("market_report", output=MarketReport)
def market_report(request: SkillRequest) -> dict:
    """The competitive-analysis report: Markdown and HTML with a price chart, under the artifacts folder."""
    sources, prices = request.steps["sources"], request.steps["prices"]
    validation, watch = request.steps["validate"], request.steps["watch"]
    analysis = build_report(sources, prices, validation, watch)
    folder = _report_folder(request)
    chart = folder.path("prices", "png")
    draw_chart(prices, analysis["plans"], chart)
    markdown = folder.path("report", "md")
    markdown.write_text(markdown_report(analysis, sources, validation, watch, chart.name))
    page = folder.path("report", "html")
    page.write_text(html_report(analysis, sources, validation, watch, chart.name))
    return MarketReport(
        cheapest=analysis["cheapest"],
        cheapest_by_plan=analysis["by_plan"],
        markdown=str(markdown),
        html=str(page),
        chart=str(chart),
        artifacts={path.name: folder.relative(path) for path in (markdown, page, chart)},
        findings=len(validation["findings"]),
        alerts=1 if watch["alert"] else 0,
    ).model_dump()
