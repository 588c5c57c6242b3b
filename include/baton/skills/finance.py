"""Revenue milestone skills (seed 002's revenue_milestone trigger: the $4,167 monthly target)."""

from __future__ import annotations

import calendar
from collections import Counter
from typing import Literal

from pydantic import BaseModel

from baton.errors import FinalSkillError
from baton.skills.demo_data import demo_data
from baton.skills.registry import SkillRequest, skill


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


SANCTIONED = ("IR", "KP", "SY", "CU")
LARGE_USD = 10000
BUSINESS_CONN = "baton_business"


class SweepImpossible(FinalSkillError):
    """The compliance sweep cannot read its table: no retry would help."""


def _breaking_payments() -> list[dict]:
    """Every payment of the business database that is large or goes to a sanctioned country (the
    same rule as the template's sensor), read with bound values."""
    from sqlalchemy import column, or_, select, table

    from baton.errors import ConnectionNotDefined
    from baton.events.store import database_url, engine_for
    from baton.sensors.sql import json_safe

    names = ("seq", "id", "customer", "country", "amount", "currency", "day")
    payments = table("payments", *(column(n) for n in names))
    query = (
        select(payments)
        .where(or_(payments.c.amount >= LARGE_USD, payments.c.country.in_(SANCTIONED)))
        .order_by(payments.c.seq)
    )
    from sqlalchemy.exc import SQLAlchemyError

    try:
        url = database_url(BUSINESS_CONN, "the business database")
    except (ConnectionNotDefined, ValueError) as error:
        raise SweepImpossible(f"compliance sweep: {error}") from None
    try:
        with engine_for(url).connect() as conn:
            return [{k: json_safe(v) for k, v in row._mapping.items()} for row in conn.execute(query)]
    except SQLAlchemyError as error:  # a missing table or database: a retry would not help
        raise SweepImpossible(
            f"compliance sweep: cannot read the payments of connection '{BUSINESS_CONN}' "
            f"({type(error.orig or error).__name__}: {str(error.orig or error).splitlines()[0]}). Point the "
            "connection at the business database, or create the demo one with `baton demo db`."
        ) from None


@skill("compliance_findings", output=Findings)
def compliance_findings(request: SkillRequest) -> dict:
    """A finding per payment the compliance sensor matched: sanctioned countries are critical."""
    rows = request.trigger.get("rows")
    if rows is None:  # the scheduled sweep: every payment in the business database
        rows = _breaking_payments()
    findings = []
    for row in rows:
        reasons = []
        if row["amount"] >= LARGE_USD:
            reasons.append(f"amount {row['amount']:,.0f} {row['currency']} >= 10,000")
        if row["country"] in SANCTIONED:
            reasons.append(f"sanctioned country {row['country']}")
        findings.append(
            Finding(
                payment=row["id"],
                customer=row["customer"],
                amount=row["amount"],
                country=row["country"],
                severity="critical" if row["country"] in SANCTIONED else "high",
                reasons=reasons,
            )
        )
    findings.sort(key=lambda f: (f.severity != "critical", -f.amount, f.payment))
    source = request.trigger.get("source") or f"{BUSINESS_CONN}:payments sweep large_or_sanctioned"
    return Findings(
        rule=source,
        count=len(findings),
        total_amount=round(sum(f.amount for f in findings), 2),
        findings=findings,
    ).model_dump()
