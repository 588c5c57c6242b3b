"""Revenue milestone skills (the revenue_milestone workflow: the $4,167 monthly target)."""

from __future__ import annotations

import calendar
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel

from baton.errors import FinalSkillError
from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data


class RevenueMetrics(BaseModel):
    month: str
    days_with_data: int
    days_in_month: int
    mtd_revenue: float
    target: float
    attainment_pct: float
    milestone_reached: bool
    projected_month_end: float
    gap_to_target: float
    top_products: list[str]


class Announcement(BaseModel):
    headline: str
    body: str


def _month_of(request: SkillRequest) -> str:
    if request.trigger.get("period"):  # started by the revenue sensor: the month that crossed
        return str(request.trigger["period"])
    month = request.inputs.get("month") or "latest"
    if month == "latest":
        return max(t["date"][:7] for t in demo_data("revenue")["transactions"])
    return month


@skill("revenue_metrics", output=RevenueMetrics)
def revenue_metrics(request: SkillRequest) -> dict:
    """Month-to-date revenue against the monthly target, with a straight-line month-end projection."""
    month = _month_of(request)
    target = float(request.inputs.get("target", 4167))
    rows = [t for t in demo_data("revenue")["transactions"] if t["date"].startswith(month)]
    mtd = float(sum(t["amount"] for t in rows))
    if request.trigger.get("value") is not None:  # the business database's own month-to-date figure
        mtd = float(request.trigger["value"])
    year, mon = (int(part) for part in month.split("-"))
    days_in_month = calendar.monthrange(year, mon)[1]
    days = max((int(t["date"][8:10]) for t in rows), default=0)
    projected = round(mtd / days * days_in_month, 2) if days else 0.0
    by_product = Counter()
    for t in rows:
        by_product[t["product"]] += t["amount"]
    return RevenueMetrics(
        month=month,
        days_with_data=days,
        days_in_month=days_in_month,
        mtd_revenue=mtd,
        target=target,
        attainment_pct=round(mtd / target * 100, 1),
        milestone_reached=mtd >= target,
        projected_month_end=projected,
        gap_to_target=round(max(0.0, target - mtd), 2),
        top_products=[name for name, _ in by_product.most_common(3)],
    ).model_dump()


@skill("milestone_announcement", output=Announcement)
def milestone_announcement(request: SkillRequest) -> dict:
    """A short internal announcement of a reached revenue milestone."""
    metrics = RevenueMetrics.model_validate(request.steps["compute_metrics"])
    return Announcement(
        headline=f"Revenue milestone reached for {metrics.month}",
        body=(
            f"Month-to-date revenue is ${metrics.mtd_revenue:,.0f}, {metrics.attainment_pct}% of the "
            f"${metrics.target:,.0f} target. Leading products: {', '.join(metrics.top_products)}."
        ),
    ).model_dump()


class Finding(BaseModel):
    payment: str
    customer: str
    amount: float
    country: str
    severity: Literal["high", "critical"]
    reasons: list[str]


class Findings(BaseModel):
    rule: str
    count: int
    total_amount: float
    findings: list[Finding]


BUSINESS_CONN = "baton_business"


class SweepImpossible(FinalSkillError):
    """The compliance sweep cannot read its table: no retry would help."""


class ComplianceRule(BaseModel):
    """What the skill reads of the template's ``rule_match`` rule (``with.rule``, the sensor's own by a
    YAML anchor): the amount threshold, and the sanctioned countries, of its ``any`` conditions."""

    large_usd: float
    sanctioned: list[str]
    spec: dict[str, Any]

    @classmethod
    def of(cls, request: SkillRequest) -> ComplianceRule:
        rule = request.args.get("rule")
        conditions = rule.get("any") if isinstance(rule, dict) else None
        found = {
            (c.get("column"), c.get("op")): c.get("value") for c in conditions or [] if isinstance(c, dict)
        }
        if ("amount", ">=") not in found or ("country", "in") not in found:
            raise FinalSkillError(
                f"step '{request.step}': with.rule must be the payments rule: a rule_match spec whose `any` "
                "has {column: amount, op: '>=', value: <USD>} and {column: country, op: in, value: [<codes>]} "
                "(fix: `rule: *rule`, the anchor of trigger.sensor.rule_match)"
            )
        return cls(large_usd=found["amount", ">="], sanctioned=found["country", "in"], spec=rule)


def _breaking_payments(rule: ComplianceRule) -> list[dict]:
    """Every payment of the business database that breaks ``rule`` (the sensor's own query, with bound
    values, a page of ``batch_size`` rows at a time)."""
    from sqlalchemy.exc import SQLAlchemyError

    from baton.errors import ConnectionNotDefined
    from baton.events.engine import engine_for
    from baton.hooks.business import database_url
    from baton.hooks.sql import new_rows

    conn_id = rule.spec.get("conn_id") or BUSINESS_CONN
    try:
        url = database_url(conn_id, "the business database")
    except (ConnectionNotDefined, ValueError) as error:
        raise SweepImpossible(f"compliance sweep: {error}") from None
    rows: list[dict] = []
    try:
        with engine_for(url).connect() as conn:
            while page := new_rows(conn, rule.spec, rows[-1][rule.spec["key"]] if rows else None):
                rows += page
    except SQLAlchemyError as error:  # a missing table or database: a retry would not help
        raise SweepImpossible(
            f"compliance sweep: cannot read the {rule.spec['table']} of connection '{conn_id}' "
            f"({type(error.orig or error).__name__}: {str(error.orig or error).splitlines()[0]}). Point the "
            "connection at the business database, or create the demo one with `python -m demo.business`."
        ) from None
    return rows


@skill("compliance_findings", output=Findings)
def compliance_findings(request: SkillRequest) -> dict:
    """A finding per payment that breaks the rule (the sensor's rows, or in the scheduled sweep every
    payment that does): a payment to a sanctioned country is critical, a large one high."""
    rule = ComplianceRule.of(request)
    rows = request.trigger.get("rows")
    if rows is None:  # the scheduled sweep: every payment in the business database
        rows = _breaking_payments(rule)
    findings = []
    for row in rows:
        reasons = []
        if row["amount"] >= rule.large_usd:
            reasons.append(f"amount {row['amount']:,.0f} {row['currency']} >= {rule.large_usd:,.0f}")
        if row["country"] in rule.sanctioned:
            reasons.append(f"sanctioned country {row['country']}")
        findings.append(
            Finding(
                payment=row["id"],
                customer=row["customer"],
                amount=row["amount"],
                country=row["country"],
                severity="critical" if row["country"] in rule.sanctioned else "high",
                reasons=reasons,
            )
        )
    findings.sort(key=lambda f: (f.severity != "critical", -f.amount, f.payment))
    source = request.trigger.get("source") or (
        f"{rule.spec.get('conn_id') or BUSINESS_CONN}:{rule.spec['table']} sweep {rule.spec.get('rule', 'rule')}"
    )
    return Findings(
        rule=source,
        count=len(findings),
        total_amount=round(sum(f.amount for f in findings), 2),
        findings=findings,
    ).model_dump()
