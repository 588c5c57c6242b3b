"""Content-marketing skills (dags/workflows/content_marketing.yaml): one brief made into a piece per
channel, each checked against the brand guide and revised until it passes (up to a bound), the
pieces that pass gathered for publishing, and the campaign's performance recorded for the next run.

Demo data: ``include/demo/content/briefs.json``, ``brand.json`` (banned words and what to use
instead, the required disclaimer, tone rules, per-channel length limits) and ``metrics.json``.

A piece is a list of parts (the channel's angle, the key messages, the call to action, the
disclaimer). The brand check finds: a banned word, an exclamation mark (tone ``no_exclamation``), a
word in capitals (``no_shouting``), the disclaimer or the first key message missing, a length over
the channel's limit. A revision fixes what it can: the word the guide says to use, calm punctuation,
sentence case, the missing part added, and the optional parts (the angle, the further key messages)
dropped from the end until the piece fits. What a revision cannot fix (the required parts alone are
over the limit) stays failing, and the step asks a person.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from baton.errors import FinalSkillError, SkillError
from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data, demo_pick

REQUIRED_FIELDS = ("product", "audience", "key_messages", "channels")
STATE_FILE = ("content_marketing", "state", "performance.json")
SHORT_CHANNELS = ("x", "sms")  # one paragraph; the others have a paragraph per part
CAPITALS = re.compile(r"\b[A-Z]{4,}\b")


class Channel(BaseModel):
    id: str
    limit: int


class Brief(BaseModel):
    id: str
    campaign: str
    product: str
    audience: str
    key_messages: list[str]
    call_to_action: str
    channels: list[Channel]
    angles: dict[str, str]
    previous: dict[str, Any] | None  # the performance the last run recorded, if any


class Revision(BaseModel):
    round: int
    issues: list[str]
    before: str
    after: str


class Piece(BaseModel):
    channel: str
    limit: int
    text: str
    length: int
    key_message: str
    disclaimer: bool
    draft: str
    revisions: list[Revision]


class Part(BaseModel):
    role: str  # angle | headline | message | cta | disclaimer
    text: str
    required: bool


class Approved(BaseModel):
    campaign: str
    brief: str
    pieces: list[Piece]
    revised: list[str]
    not_published: list[str]


class ChannelPerformance(BaseModel):
    impressions: int
    clicks: int
    conversions: int
    ctr_pct: float
    conversion_pct: float
    ctr_change_pct: float | None  # percentage points vs the previous run's record


class Performance(BaseModel):
    brief: str
    channels: dict[str, ChannelPerformance]
    best_channel: str
    previous_run: str | None
    previous_best_channel: str | None
    state_file: str


def brand() -> dict[str, Any]:
    return demo_data("content/brand")


def state_path():
    """Where the last run's performance is kept (``<artifacts root>/content_marketing/state/``)."""
    from baton.browser.artifacts import artifacts_root

    return artifacts_root().joinpath(*STATE_FILE)


# --- the brief -------------------------------------------------------------------------------------


@skill("content_brief", output=Brief)
def content_brief(request: SkillRequest) -> dict:
    """The brief (inputs.brief) with each channel's length limit, and the last run's performance."""
    brief_id = str(request.inputs.get("brief") or "")
    raw = demo_pick({b["id"]: b for b in demo_data("content/briefs")["briefs"]}, "brief", brief_id)
    missing = [name for name in REQUIRED_FIELDS if not raw.get(name)]
    if missing:
        raise FinalSkillError(
            f"brief '{brief_id}' is missing the required field(s) {', '.join(missing)}: a brief needs "
            f"{', '.join(REQUIRED_FIELDS)}, so no content is written and nothing is published"
        )
    limits = brand()["length_limits"]
    unknown = [c for c in raw["channels"] if c not in limits]
    if unknown:
        raise FinalSkillError(
            f"brief '{brief_id}' names channel(s) {', '.join(unknown)} the brand guide has no length "
            f"limit for; the channels are {', '.join(limits)}"
        )
    state = state_path()
    previous = json.loads(state.read_text()) if state.exists() else None
    return Brief(
        id=brief_id,
        campaign=raw.get("campaign") or brief_id,
        product=raw["product"],
        audience=raw["audience"],
        key_messages=raw["key_messages"],
        call_to_action=raw.get("call_to_action") or "",
        channels=[Channel(id=c, limit=limits[c]) for c in raw["channels"]],
        angles=raw.get("angles") or {},
        previous=previous,
    ).model_dump()


# --- writing, checking, revising ---------------------------------------------------------------------


def draft_parts(brief: Brief, channel: str) -> list[Part]:
    """The first draft of the channel's piece: every part of the brief, the disclaimer last."""
    parts = []
    if channel not in SHORT_CHANNELS:
        parts.append(Part(role="headline", text=f"{brief.product} for {brief.audience}", required=True))
    if brief.angles.get(channel):
        parts.append(Part(role="angle", text=brief.angles[channel], required=False))
    for index, message in enumerate(brief.key_messages):
        parts.append(Part(role="message", text=f"{message}.", required=index == 0))
    if brief.call_to_action:
        parts.append(Part(role="cta", text=f"{brief.call_to_action}.", required=True))
    parts.append(Part(role="disclaimer", text=brand()["disclaimer"], required=True))
    return parts


def render(parts: list[Part], channel: str) -> str:
    return (" " if channel in SHORT_CHANNELS else "\n\n").join(p.text for p in parts)


def issues(text: str, channel: str, limit: int, key_message: str) -> list[str]:
    """What breaks the brand guide in ``text``, in a fixed order."""
    guide = brand()
    found = [
        f"banned word '{b['word']}' (use '{b['use']}')"
        for b in guide["banned_words"]
        if re.search(rf"\b{re.escape(b['word'])}\b", text, re.IGNORECASE)
    ]
    if "!" in text:
        found.append("tone no_exclamation: an exclamation mark")
    found += [f"tone no_shouting: '{word}' in capitals" for word in CAPITALS.findall(text)]
    if key_message not in text:
        found.append(f"the key message '{key_message}' is missing")
    if guide["disclaimer"] not in text:
        found.append("the disclaimer is missing")
    if len(text) > limit:
        found.append(f"{len(text)} characters, over the {channel} limit of {limit}")
    return found


def _fix_words(text: str) -> str:
    for banned in brand()["banned_words"]:

        def use(match: re.Match, word: str = banned["use"]) -> str:
            return word.capitalize() if match[0].istitle() else word

        text = re.sub(rf"\b{re.escape(banned['word'])}\b", use, text, flags=re.IGNORECASE)
    text = CAPITALS.sub(lambda m: m[0].capitalize(), text)
    return re.sub(r"!+", ".", text)


def revise(parts: list[Part], channel: str, limit: int, brief: Brief) -> list[Part]:
    """One revision: words and tone fixed, missing required parts added, optional parts dropped from
    the end until the piece fits its limit."""
    parts = [Part(role=p.role, text=_fix_words(p.text), required=p.required) for p in parts]
    key = f"{brief.key_messages[0]}."
    if not any(p.text == key for p in parts):
        parts.insert(0 if channel in SHORT_CHANNELS else 1, Part(role="message", text=key, required=True))
    disclaimer = brand()["disclaimer"]
    if not any(p.text == disclaimer for p in parts):
        parts.append(Part(role="disclaimer", text=disclaimer, required=True))
    while len(render(parts, channel)) > limit:
        optional = [i for i, p in enumerate(parts) if not p.required]
        if not optional:
            break
        # The further key messages go first (last first), the angle last.
        messages = [i for i in optional if parts[i].role == "message"]
        parts.pop(messages[-1] if messages else optional[-1])
    return parts


@skill("content_piece", output=Piece, pure=True)
def content_piece(request: SkillRequest) -> dict:
    """One channel's piece (with.channel) of the brief (with.brief), revised until it passes the brand
    guide, at most with.max_revisions times; still failing is an error (the step asks a person)."""
    for name in ("channel", "brief"):
        if not isinstance(request.args.get(name), dict):
            raise SkillError(f"step '{request.step}': 'with.{name}' must be a mapping (the {name})")
    channel = Channel.model_validate(request.args["channel"])
    brief = Brief.model_validate(request.args["brief"])
    rounds = int(request.args.get("max_revisions", 2))
    key = brief.key_messages[0]
    parts = draft_parts(brief, channel.id)
    draft = text = render(parts, channel.id)
    revisions: list[Revision] = []
    for number in range(1, rounds + 1):
        found = issues(text, channel.id, channel.limit, key)
        if not found:
            break
        parts = revise(parts, channel.id, channel.limit, brief)
        revised = render(parts, channel.id)
        revisions.append(Revision(round=number, issues=found, before=text, after=revised))
        if revised == text:
            break  # nothing more a revision can do
        text = revised
    left = issues(text, channel.id, channel.limit, key)
    if left:
        raise SkillError(
            f"the {channel.id} piece still breaks the brand guide after {len(revisions)} revision(s): "
            + "; ".join(left)
        )
    return Piece(
        channel=channel.id,
        limit=channel.limit,
        text=text,
        length=len(text),
        key_message=key,
        disclaimer=brand()["disclaimer"] in text,
        draft=draft,
        revisions=revisions,
    ).model_dump()


@skill("content_approve", output=Approved, pure=True)
def content_approve(request: SkillRequest) -> dict:
    """The pieces to publish: every written piece checked again against the brand guide (a person's
    text too); a channel a person left out is listed, not published."""
    brief = Brief.model_validate(request.steps["load_brief"])
    joined = request.steps.get("write") or {}
    by_channel = {r["id"]: r["output"] for r in joined.get("results") or []}
    pieces = []
    for channel in brief.channels:
        if channel.id not in by_channel:
            continue
        output = by_channel[channel.id]
        text = str(output.get("text") or "")
        left = issues(text, channel.id, channel.limit, brief.key_messages[0])
        if left:
            raise FinalSkillError(f"the {channel.id} piece breaks the brand guide: {'; '.join(left)}")
        pieces.append(
            Piece(
                channel=channel.id,
                limit=channel.limit,
                text=text,
                length=len(text),
                key_message=brief.key_messages[0],
                disclaimer=True,
                draft=str(output.get("draft") or text),
                revisions=output.get("revisions") or [],
            )
        )
    if not pieces:
        raise FinalSkillError(f"brief '{brief.id}': no piece passed the brand guide, so nothing is published")
    return Approved(
        campaign=brief.campaign,
        brief=brief.id,
        pieces=pieces,
        revised=[p.channel for p in pieces if p.revisions],
        not_published=[c.id for c in brief.channels if c.id not in {p.channel for p in pieces}],
    ).model_dump()


# --- performance --------------------------------------------------------------------------------------


@skill("content_performance", output=Performance)
def content_performance(request: SkillRequest) -> dict:
    """Each published channel's demo metrics (CTR, conversion rate), compared with the record the last
    run left, and recorded for the next run."""
    approved = Approved.model_validate(request.steps["approve"])
    metrics = demo_data("content/metrics")["campaigns"].get(approved.brief) or {}
    previous = Brief.model_validate(request.steps["load_brief"]).previous or {}
    before = previous.get("channels") or {}
    channels = {}
    for piece in approved.pieces:
        m = metrics.get(piece.channel)
        if m is None:
            raise SkillError(f"no demo metrics for the {piece.channel} piece of brief '{approved.brief}'")
        ctr = round(100 * m["clicks"] / m["impressions"], 2)
        old = before.get(piece.channel, {}).get("ctr_pct")
        channels[piece.channel] = ChannelPerformance(
            impressions=m["impressions"],
            clicks=m["clicks"],
            conversions=m["conversions"],
            ctr_pct=ctr,
            conversion_pct=round(100 * m["conversions"] / m["clicks"], 2),
            ctr_change_pct=None if old is None else round(ctr - old, 2),
        )
    best = max(channels, key=lambda c: (channels[c].ctr_pct, c))
    state = state_path()
    state.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "run_id": request.run_id,
        "brief": approved.brief,
        "best_channel": best,
        "channels": {c: p.model_dump() for c, p in channels.items()},
    }
    state.write_text(json.dumps(record, indent=2, sort_keys=True))
    return Performance(
        brief=approved.brief,
        channels=channels,
        best_channel=best,
        previous_run=previous.get("run_id"),
        previous_best_channel=previous.get("best_channel"),
        state_file=str(state),
    ).model_dump()
