"""Recruiting skills (dags/workflows/hr_recruiting.yaml): a job posting from a role's requirements,
each candidate screened against them (0-100 with the reasons), a shortlist ordered by score, the
interview invitations a person reviews, and the plan that follows from the person's answer.

Demo data: ``include/demo/recruiting/roles.json`` and ``candidates.json`` (fictional people).

Scoring (deterministic): 10 points per must-have skill (50 with 5), 5 per nice-to-have (20 with 4),
experience 20 at ``min_years`` or more (4 per year below), location 10 if it is one of the role's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from baton.errors import FinalSkillError, SkillError
from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data, demo_pick

MUST_HAVE_POINTS = 10
NICE_TO_HAVE_POINTS = 5
EXPERIENCE_POINTS = 20
EXPERIENCE_POINTS_PER_YEAR = 4
LOCATION_POINTS = 10


class Role(BaseModel):
    id: str
    title: str
    team: str
    locations: list[str]
    summary: str
    min_years: int
    must_have: list[str]
    nice_to_have: list[str]


class Candidate(BaseModel):
    id: str
    name: str
    applied_for: str
    years: int
    location: str
    skills: list[str]


class CandidatePool(BaseModel):
    role_id: str
    total: int
    candidates: list[Candidate]


class JobPosting(BaseModel):
    reference: str
    title: str
    team: str
    locations: list[str]
    requirements: list[str]
    nice_to_have: list[str]
    text: str


class Screening(BaseModel):
    id: str
    name: str
    score: int
    must_have_missing: list[str]
    reasons: list[str]


class ShortlistEntry(BaseModel):
    rank: int
    id: str
    name: str
    score: int


class Shortlist(BaseModel):
    role_id: str
    min_score: int
    screened: int
    shortlisted: list[ShortlistEntry]
    below_minimum: list[str]


class Interview(BaseModel):
    id: str
    name: str
    score: int


class InterviewPlan(BaseModel):
    role_id: str
    title: str
    interviews: list[Interview]
    not_invited: list[str]
    notes: str


@skill("recruiting_role", output=Role)
def recruiting_role(request: SkillRequest) -> dict:
    """The role's requirements (inputs.role_id) from the demo roles."""
    role_id = str(request.inputs.get("role_id") or "")
    roles = {role["id"]: role for role in demo_data("recruiting/roles")["roles"]}
    return Role.model_validate(demo_pick(roles, "role", role_id)).model_dump()


@skill("recruiting_candidates", output=CandidatePool)
def recruiting_candidates(request: SkillRequest) -> dict:
    """The candidates who applied for the role; none is an error, never an empty success."""
    role = Role.model_validate(request.steps["load_role"])
    pool = [
        Candidate.model_validate(c)
        for c in demo_data("recruiting/candidates")["candidates"]
        if c["applied_for"] == role.id
    ]
    if not pool:
        raise FinalSkillError(
            f"no candidates for role '{role.id}' ({role.title}): there is nobody to screen, "
            "so no posting is published and no shortlist is made"
        )
    return CandidatePool(role_id=role.id, total=len(pool), candidates=pool).model_dump()


@skill("job_posting", output=JobPosting, pure=True)
def job_posting(request: SkillRequest) -> dict:
    """A job-board posting written from the role's requirements."""
    role = Role.model_validate(request.steps["load_role"])
    requirements = [f"{role.min_years}+ years of professional experience", *role.must_have]
    text = "\n".join(
        [
            f"# {role.title}",
            f"{role.team} team · {' or '.join(role.locations)}",
            "",
            role.summary,
            "",
            "## What you bring",
            *(f"- {r}" for r in requirements),
            "",
            "## Nice to have",
            *(f"- {n}" for n in role.nice_to_have),
        ]
    )
    return JobPosting(
        reference=role.id,
        title=role.title,
        team=role.team,
        locations=role.locations,
        requirements=requirements,
        nice_to_have=role.nice_to_have,
        text=text,
    ).model_dump()


def screen(candidate: Candidate, role: Role) -> tuple[int, list[str], list[str]]:
    """(score 0-100, the reasons for it, the must-haves the candidate lacks)."""
    skills = {s.casefold() for s in candidate.skills}
    must = [s for s in role.must_have if s.casefold() in skills]
    missing = [s for s in role.must_have if s.casefold() not in skills]
    nice = [s for s in role.nice_to_have if s.casefold() in skills]
    reasons = [
        f"must-have {len(must)}/{len(role.must_have)}: {', '.join(must) or 'none'} "
        f"(+{len(must) * MUST_HAVE_POINTS})"
    ]
    if missing:
        reasons.append(f"missing must-have: {', '.join(missing)}")
    reasons.append(
        f"nice-to-have {len(nice)}/{len(role.nice_to_have)}: {', '.join(nice) or 'none'} "
        f"(+{len(nice) * NICE_TO_HAVE_POINTS})"
    )
    experience = min(EXPERIENCE_POINTS, candidate.years * EXPERIENCE_POINTS_PER_YEAR)
    reasons.append(f"{candidate.years} years of experience, {role.min_years} required (+{experience})")
    where = LOCATION_POINTS if candidate.location in role.locations else 0
    reasons.append(
        f"location {candidate.location} "
        + ("accepted" if where else f"not in {', '.join(role.locations)}")
        + f" (+{where})"
    )
    score = len(must) * MUST_HAVE_POINTS + len(nice) * NICE_TO_HAVE_POINTS + experience + where
    return min(100, score), reasons, missing


@skill("screen_candidate", output=Screening, pure=True)
def screen_candidate(request: SkillRequest) -> dict:
    """One candidate (with.candidate) against the role's requirements (with.role): score and reasons."""
    for name in ("candidate", "role"):
        if not isinstance(request.args.get(name), dict):
            raise SkillError(f"step '{request.step}': 'with.{name}' must be a mapping (the {name})")
    candidate = Candidate.model_validate(request.args["candidate"])
    score, reasons, missing = screen(candidate, Role.model_validate(request.args["role"]))
    return Screening(
        id=candidate.id, name=candidate.name, score=score, must_have_missing=missing, reasons=reasons
    ).model_dump()


def _screenings(request: SkillRequest) -> list[Screening]:
    joined = request.steps.get("screen") or {}
    if joined.get("failures"):
        ids = ", ".join(f["id"] for f in joined["failures"])
        raise SkillError(f"step '{request.step}': candidates {ids} were not screened")
    return [Screening.model_validate(r["output"]) for r in joined.get("results") or []]


def ranked(screenings: list[Screening]) -> list[Screening]:
    """Best first: score, then fewer missing must-haves, then candidate id (ties never depend on timing)."""
    return sorted(screenings, key=lambda s: (-s.score, len(s.must_have_missing), s.id))


@skill("shortlist", output=Shortlist, pure=True)
def shortlist(request: SkillRequest) -> dict:
    """The candidates at or above inputs.min_score, ordered by score (ties: fewer missing must-haves, id)."""
    min_score = int(request.inputs.get("min_score", 60))
    order = ranked(_screenings(request))
    kept = [s for s in order if s.score >= min_score]
    return Shortlist(
        role_id=str(request.inputs.get("role_id") or ""),
        min_score=min_score,
        screened=len(order),
        shortlisted=[
            ShortlistEntry(rank=i, id=s.id, name=s.name, score=s.score) for i, s in enumerate(kept, 1)
        ],
        below_minimum=[s.id for s in order if s.score < min_score],
    ).model_dump()


@skill("interview_invites", pure=True)
def interview_invites(request: SkillRequest) -> dict[str, Any]:
    """The draft a person reviews: invite the top inputs.interview_slots of the shortlist."""
    listed = Shortlist.model_validate(request.steps["shortlist"])
    slots = int(request.inputs.get("interview_slots", 3))
    invite = [entry.id for entry in listed.shortlisted[:slots]]
    if not listed.shortlisted:
        notes = f"Nobody of {listed.screened} screened reached {listed.min_score}; invite no one."
    else:
        top = ", ".join(f"{e.id} {e.name} ({e.score})" for e in listed.shortlisted[:slots])
        notes = f"Top {len(invite)} of {len(listed.shortlisted)} shortlisted: {top}."
    return {"invite": invite, "notes": notes}


@skill("interview_plan", output=InterviewPlan, pure=True)
def interview_plan(request: SkillRequest) -> dict:
    """The interviews the reviewed invitations (steps.review) make; an unknown candidate id is an error."""
    review = request.steps["review"]
    by_id = {s.id: s for s in _screenings(request)}
    invite = [str(i) for i in review.get("invite") or []]
    unknown = [i for i in invite if i not in by_id]
    if unknown:
        raise FinalSkillError(
            f"the review invites {', '.join(unknown)}, who did not apply for this role; "
            f"the candidates are {', '.join(sorted(by_id))}"
        )
    listed = Shortlist.model_validate(request.steps["shortlist"])
    return InterviewPlan(
        role_id=listed.role_id,
        title=request.steps["write_posting"]["title"],
        interviews=[Interview(id=i, name=by_id[i].name, score=by_id[i].score) for i in invite],
        not_invited=[e.id for e in listed.shortlisted if e.id not in invite],
        notes=str(review.get("notes") or ""),
    ).model_dump()
