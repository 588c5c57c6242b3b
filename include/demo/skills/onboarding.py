"""Customer onboarding skills (the customer_onboarding workflow): materials per segment, the welcome
pack and its rules, and the notification that the customer is set up."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from baton.errors import SkillError
from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data


class Materials(BaseModel):
    company: str
    segment: str
    plan: str
    tone: str
    kickoff_minutes: int
    sections: list[str]
    checklist: list[str]
    plan_terms: list[str]


class WelcomePack(BaseModel):
    title: str
    sections: list[str]
    markdown: str
    words: int


class PackCheck(BaseModel):
    valid: bool
    rules_checked: int
    sections: list[str]


class Notified(BaseModel):
    delivered: bool
    message: str


def _playbook() -> dict[str, Any]:
    return demo_data("onboarding")


@skill("onboarding_materials", output=Materials, pure=True)
def onboarding_materials(request: SkillRequest) -> dict:
    """The customer's segment playbook: the welcome pack's sections, the checklist, the tone, and the
    terms of their plan."""
    segment, plan = request.inputs["segment"], request.inputs["plan"]
    playbook = _playbook()
    kit = playbook["segments"][segment]
    return Materials(
        company=request.inputs["company"],
        segment=segment,
        plan=plan,
        tone=kit["tone"],
        kickoff_minutes=kit["kickoff_minutes"],
        sections=kit["sections"],
        checklist=kit["checklist"],
        plan_terms=playbook["plans"][plan]["terms"],
    ).model_dump()


def _section(name: str, materials: Materials, accounts: dict[str, str]) -> list[str]:
    if name == "Getting started":
        body = [f"{i}. {item}" for i, item in enumerate(materials.checklist, start=1)]
        body.append(
            f"Your {materials.kickoff_minutes}-minute kickoff call is booked with your onboarding lead."
        )
    elif name == "Your accounts":
        body = [f"- {platform}: `{account}`" for platform, account in accounts.items()]
    elif name == "Your plan":
        body = [f"You are on the **{materials.plan}** plan: " + ", ".join(materials.plan_terms) + "."]
    elif name == "Rolling out to teams":
        body = ["Start with one team, measure, then widen: your lead will help you plan each wave."]
    elif name == "Security and compliance":
        body = ["Your security pack (SSO, audit logs, data residency) is in the admin console."]
    else:  # Getting help
        help_line = "your dedicated success manager" if materials.plan == "enterprise" else "our support desk"
        body = [f"Write to {help_line}; your support-desk account is `{accounts.get('support', '-')}`."]
    return [f"## {name}", "", *body, ""]


@skill("welcome_pack", output=WelcomePack, pure=True)
def welcome_pack(request: SkillRequest) -> dict:
    """The welcome pack in Markdown: the segment's sections, with the accounts opened on each platform
    (``with: accounts``) and the plan's terms."""
    materials = Materials.model_validate(request.steps["materials"])
    accounts = {k: str(v) for k, v in (request.args.get("accounts") or {}).items()}
    title = f"Welcome to Baton, {materials.company}"
    lines = [f"# {title}", ""]
    for name in materials.sections:
        lines += _section(name, materials, accounts)
    markdown = "\n".join(lines).rstrip() + "\n"
    return WelcomePack(
        title=title, sections=materials.sections, markdown=markdown, words=len(markdown.split())
    ).model_dump()


@skill("check_welcome_pack", output=PackCheck, pure=True)
def check_welcome_pack(request: SkillRequest) -> dict:
    """The rules a welcome pack must meet: the required sections, the segment's sections, and every term
    of the customer's plan; any miss fails the step naming each one."""
    pack = WelcomePack.model_validate(request.steps["welcome_pack"])
    materials = Materials.model_validate(request.steps["materials"])
    playbook = _playbook()
    found = [line[3:].strip() for line in pack.markdown.splitlines() if line.startswith("## ")]
    problems = [
        f"section '{name}' is missing"
        for name in dict.fromkeys([*playbook["required_sections"], *materials.sections])
        if name not in found
    ]
    problems += [
        f"the {materials.plan} plan's term '{term}' is missing"
        for term in playbook["plans"][materials.plan]["terms"]
        if term not in pack.markdown
    ]
    for platform, account in (request.args.get("accounts") or {}).items():
        if str(account) not in pack.markdown:
            problems.append(f"the {platform} account '{account}' is missing")
    if problems:
        raise SkillError(
            f"The welcome pack for {materials.company} breaks {len(problems)} rule(s): "
            + "; ".join(problems)
            + ". Fix the pack's template (skill welcome_pack) or the playbook (include/demo/onboarding.json)."
        )
    rules = len(set(playbook["required_sections"]) | set(materials.sections)) + len(materials.plan_terms)
    return PackCheck(valid=True, rules_checked=rules, sections=found).model_dump()


@skill("notify", output=Notified)
def notify(request: SkillRequest) -> dict:
    """Tell people on Slack (connection ``baton_slack``; without it, the logs) that something is done:
    ``with: {message, kind}``. Recorded as ``alert.raised``; posted once per run and step."""
    from baton.alerts import Alert, send

    message = str(request.args.get("message") or request.instruction)
    alert = Alert(
        kind=str(request.args.get("kind") or "notice"),
        workflow=request.workflow,
        run_id=request.run_id,
        message=message,
        step=request.step,
    )
    return Notified(delivered=send(alert), message=message).model_dump()
