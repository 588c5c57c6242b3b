"""Lead qualification skills (the lead_qualification workflow, triggered by new leads)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from baton.errors import FinalSkillError
from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data

CONVERSION = {"hot": 0.35, "warm": 0.15, "cold": 0.03}
MONTHLY_TARGET = 4167.0


class ScoredLead(BaseModel):
    id: str
    company: str
    region: str
    score: int
    tier: Literal["hot", "warm", "cold"]
    annual_budget: float
    reasons: list[str]


class LeadScores(BaseModel):
    region: str
    total: int
    qualified: int
    leads: list[ScoredLead]


class LeadValue(BaseModel):
    qualified_leads: int
    pipeline_value: float
    expected_revenue: float
    expected_monthly_revenue: float
    share_of_monthly_target: float
    by_tier: dict[str, float]
    top_leads: list[dict[str, str | float]]


def _score(lead: dict) -> tuple[int, list[str]]:
    """Firmographic fit (size, budget) plus engagement, 0-100, with the reasons that earned points."""
    reasons = []
    size = (
        30
        if lead["employees"] >= 1000
        else 20
        if lead["employees"] >= 100
        else 10
        if lead["employees"] >= 40
        else 0
    )
    if size:
        reasons.append(f"{lead['employees']} employees (+{size})")
    budget = min(40, round(lead["annual_budget"] / 48000 * 40))
    reasons.append(f"budget {lead['annual_budget']:,} (+{budget})")
    engagement = round(lead["engagement"] * 0.3)
    reasons.append(f"engagement {lead['engagement']} (+{engagement})")
    return size + budget + engagement, reasons


@skill("score_leads", output=LeadScores, pure=True)
def score_leads(request: SkillRequest) -> dict:
    """Score the leads of a region on fit and engagement; tier them hot, warm or cold. A run started by
    the leads sensor scores exactly the new rows it found; any other run, the demo leads."""
    region = request.inputs.get("region", "all")
    min_score = int(request.inputs.get("min_score", 50))
    scored = []
    rows = request.trigger.get("rows")
    for lead in rows if rows is not None else demo_data("leads")["leads"]:
        if region != "all" and lead["region"] != region:
            continue
        score, reasons = _score(lead)
        tier = "hot" if score >= max(75, min_score) else "warm" if score >= min_score else "cold"
        scored.append(
            ScoredLead(
                id=lead["id"],
                company=lead["company"],
                region=lead["region"],
                score=score,
                tier=tier,
                annual_budget=lead["annual_budget"],
                reasons=reasons,
            )
        )
    scored.sort(key=lambda lead: (-lead.score, lead.id))
    qualified = sum(lead.tier != "cold" for lead in scored)
    return LeadScores(region=region, total=len(scored), qualified=qualified, leads=scored).model_dump()


@skill("lead_value", output=LeadValue, pure=True)
def lead_value(request: SkillRequest) -> dict:
    """Expected revenue of the scored leads: budget times the conversion rate of their tier."""
    scores = LeadScores.model_validate(request.steps["score_leads"])
    qualified = [lead for lead in scores.leads if lead.tier != "cold"]
    by_tier: dict[str, float] = {}
    values = []
    for lead in qualified:
        expected = round(lead.annual_budget * CONVERSION[lead.tier], 2)
        by_tier[lead.tier] = round(by_tier.get(lead.tier, 0.0) + expected, 2)
        values.append({"id": lead.id, "company": lead.company, "expected_value": expected})
    expected_revenue = round(sum(v["expected_value"] for v in values), 2)
    monthly = round(expected_revenue / 12, 2)
    values.sort(key=lambda v: (-v["expected_value"], v["id"]))
    return LeadValue(
        qualified_leads=len(qualified),
        pipeline_value=round(sum(lead.annual_budget for lead in qualified), 2),
        expected_revenue=expected_revenue,
        expected_monthly_revenue=monthly,
        share_of_monthly_target=round(monthly / MONTHLY_TARGET, 4),
        by_tier=by_tier,
        top_leads=values[:3],
    ).model_dump()


class FollowUp(BaseModel):
    lead: str
    company: str
    owner: str
    due_in_days: int


class FollowUps(BaseModel):
    source_run: str
    qualified_leads: int
    expected_monthly_revenue: float
    follow_ups: list[FollowUp]


REPS = ("ana", "bo", "chen")


@skill("plan_followups", output=FollowUps, pure=True)
def plan_followups(request: SkillRequest) -> dict:
    """Sales follow-ups for the leads a lead_qualification run valued (its asset message): the most
    valuable first, spread over the reps, the hottest due soonest."""
    message = request.trigger.get("payload") or {}
    if "top_leads" not in message:
        raise FinalSkillError(
            "plan_followups needs the qualified_leads message of a lead_qualification run "
            f"(trigger.payload with top_leads); this run got {sorted(message) or 'none'}"
        )
    follow_ups = [
        FollowUp(lead=lead["id"], company=lead["company"], owner=REPS[i % len(REPS)], due_in_days=1 + i)
        for i, lead in enumerate(message["top_leads"])
    ]
    events = request.trigger.get("events") or [{}]
    return FollowUps(
        source_run=events[-1].get("source_run_id") or "",
        qualified_leads=int(message.get("qualified_leads", 0)),
        expected_monthly_revenue=float(message.get("expected_monthly_revenue", 0.0)),
        follow_ups=follow_ups,
    ).model_dump()
