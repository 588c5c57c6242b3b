"""Event types and their payloads: adding a type is adding one class here.

A payload never holds a secret or a prompt's text: prompts are recorded by hash and length.
"""

# long: one small class per event type: the registry of payloads is this file, read top to bottom

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class Payload(BaseModel):
    """Base of every payload; ``TYPE`` is the event type it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str]


EVENT_TYPES: dict[str, type[Payload]] = {}


def event_type(name: str):
    """Register a payload class as the payload of the event type ``name``."""

    def register(cls: type[Payload]) -> type[Payload]:
        if name in EVENT_TYPES:
            raise ValueError(f"event type '{name}' is registered twice")
        cls.TYPE = name
        EVENT_TYPES[name] = cls
        return cls

    return register


# --- runs ---------------------------------------------------------------------------------------


# Who wrote a run's start or end when it was not the listener or the operator (None): a repair.
RunRecorder = Literal["verify"] | None


@event_type("run.started")
class RunStarted(Payload):
    """The run's ``conf`` is Airflow's to keep (it may hold personal data): only its keys and digest here."""

    run_type: str = "manual"
    logical_date: str | None = None
    conf_keys: list[str] = Field(default_factory=list)
    conf_sha256: str = ""
    recorded_by: RunRecorder = None


@event_type("run.succeeded")
class RunSucceeded(Payload):
    duration_s: float | None = None
    recorded_by: RunRecorder = None


@event_type("run.failed")
class RunFailed(Payload):
    duration_s: float | None = None
    reason: str = ""
    recorded_by: RunRecorder = None


@event_type("priority.assigned")
class PriorityAssigned(Payload):
    """Where a run stands in Airflow's queue when it starts, and why (``baton.queue``): its level
    and where it came from, its age bound, its deadline, the predicted time to its end (p50, p90, from the
    store's history) and the risk of missing the deadline, the start-by time and the weight that follow."""

    level: int
    level_from: Literal["template", "run"] = "template"
    max_wait_s: float
    queued_at: str
    start_by: str
    weight: int
    reason: str
    deadline_at: str | None = None
    predicted_p50_s: float | None = None
    predicted_p90_s: float | None = None
    predicted_finish: str | None = None
    miss_risk: float | None = None
    history_runs: int = 0


# --- steps --------------------------------------------------------------------------------------

Recorder = Literal["operator", "listener", "next try", "run end", "verify"]

#: The tag of every DAG Baton builds: how the listener and ``baton verify`` tell Baton's runs from others.
BATON_TAG = "baton"
#: A task instance's final Airflow state -> the event that records it.
TI_TERMINAL = {
    "success": "step.succeeded",
    "failed": "step.failed",
    "skipped": "step.skipped",
    "upstream_failed": "step.skipped",
    "removed": "step.skipped",
}


@event_type("step.started")
class StepStarted(Payload):
    pid: int | None = None
    hostname: str = ""
    worker: str = Field(default="", description="the Celery worker's name (BATON_WORKER_NAME), if set")
    pool: str = ""
    recorded_by: Recorder = "operator"


@event_type("step.succeeded")
class StepSucceeded(Payload):
    duration_s: float | None = None
    recorded_by: Recorder = "operator"


@event_type("step.failed")
class StepFailed(Payload):
    error_class: str = ""
    error: str = ""
    will_retry: bool = False
    recorded_by: Recorder = "operator"


@event_type("step.retried")
class StepRetried(Payload):
    next_try: int
    recorded_by: Recorder = "operator"


@event_type("step.skipped")
class StepSkipped(Payload):
    reason: str = ""
    recorded_by: Recorder = "operator"


@event_type("agent.selected")
class AgentSelected(Payload):
    """Who does a step (or one subtask of a fan-out), and why: the ranked candidates with their
    scores, and the agents left out with the reason (busy, breaker open, failed this step before)."""

    agent: str
    candidates: list[str] = Field(default_factory=list)
    reason: str = ""
    subtask: str = ""
    scores: dict[str, float] = Field(default_factory=dict)
    excluded: dict[str, str] = Field(default_factory=dict)
    queue_wait_s: float = Field(
        default=0.0, description="seconds the call waited for a free slot of the agent"
    )
    queue_start_by: str | None = Field(
        default=None,
        description="the start-by time of its run the call waited with (the earliest is served first)",
    )
    learned: dict[str, Any] | None = Field(
        default=None,
        description="a learned route's choice: the policy, its settings, and each candidate's posterior "
        "(mean, scale, df, effective calls) and draw",
    )


@event_type("agent.breaker_opened")
class BreakerOpened(Payload):
    agent: str
    failures: int
    until: str
    last_error: str = ""


@event_type("agent.breaker_closed")
class BreakerClosed(Payload):
    agent: str


# --- fan-out ------------------------------------------------------------------------------------


@event_type("fanout.planned")
class FanoutPlanned(Payload):
    """A for_each task's share of the list: its items (by subtask id) and how many run at once."""

    source: str
    total: int
    batch: list[int]
    subtasks: list[str]
    concurrency: int
    reused: list[str] = Field(default_factory=list, description="done by an earlier try, not rerun")


@event_type("subtask.started")
class SubtaskStarted(Payload):
    subtask: str
    attempt: int = 1


@event_type("subtask.succeeded")
class SubtaskSucceeded(Payload):
    subtask: str
    attempt: int = 1
    latency_s: float = 0.0
    sha256: str
    size: int
    output: Any = None
    ref: str | None = None
    same_as: str | None = None  # for_each.dedupe: the answer of this item, whose instruction was the same
    group: str | None = None  # for_each.items_per_call: the first item of the call that answered it


@event_type("subtask.failed")
class SubtaskFailed(Payload):
    subtask: str
    attempt: int = 1
    error_class: str = ""
    error: str = ""
    reassigned: bool = False


@event_type("model.called")
class ModelCalled(Payload):
    model: str
    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    prompt_sha256: str
    prompt_chars: int
    items: int | None = None  # for_each.items_per_call: the fan-out items this one call answered
    offline: bool = Field(
        default=False, description="Baton's offline model answered (made-up data): set only then"
    )


@event_type("tool.called")
class ToolCalled(Payload):
    tool: str
    arguments_sha256: str = ""
    ok: bool = True
    latency_s: float = 0.0


@event_type("browser.action")
class BrowserAction(Payload):
    """One browser action (declared in the template, or chosen by a model through a tool). Values
    typed into fields are never recorded: only the action, its selector and how it went."""

    index: int
    action: str
    selector: str = ""
    mode: Literal["declared", "agent"] = "declared"
    ok: bool = True
    error: str = ""
    latency_s: float = 0.0


@event_type("browser.blocked")
class BrowserBlocked(Payload):
    """A navigation or request to a host outside the agent's allowlist, refused."""

    host: str
    url: str = Field(description="scheme, host and path; never the query string")
    kind: Literal["navigation", "request"] = "request"
    allowed: list[str] = Field(default_factory=list)


@event_type("egress.blocked")
class EgressBlocked(Payload):
    """An outbound call of a skill (or of an agent through its skill) refused by the egress policy
    (``baton.egress``): where it would have gone, and why. Never a query string, credentials or a body."""

    who: str = Field(description="the caller: 'skill http_post'")
    url: str = Field(description="scheme, host, port and path; never the query string or credentials")
    host: str = ""
    address: str = Field(default="", description="the address refused; '' when refused before resolving")
    reason: Literal["not_allowed", "link_local", "metadata", "private_not_named", "scheme", "bad_url"]
    allowed: list[str] = Field(default_factory=list)


@event_type("artifact.saved")
class ArtifactSaved(Payload):
    """A file a step produced (a screenshot, a download), kept under the artifacts folder."""

    name: str
    kind: Literal["screenshot", "download", "report", "file"] = "file"
    path: str = Field(description="relative to the artifacts folder (BATON_ARTIFACTS)")
    sha256: str
    bytes: int
    content_type: str = ""


@event_type("trigger.fired")
class TriggerFired(Payload):
    """What started the run's work: a sensor's condition (with the high-water mark it moved from and
    to), or an asset event from another workflow."""

    kind: str
    source: str = ""
    count: int = 0
    value: float | None = None
    mark_from: Any = None
    mark_to: Any = None
    lag_s: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="from the oldest new row's time to the firing"
    )


@event_type("asset.emitted")
class AssetEmitted(Payload):
    """A step emitted an asset event (a message to the workflows scheduled on it): its payload's
    keys and digest, not its values."""

    asset: str
    extra_keys: list[str] = Field(default_factory=list)
    extra_sha256: str = ""


@event_type("output.recorded")
class OutputRecorded(Payload):
    sha256: str
    size: int
    output: Any = None
    ref: str | None = Field(default=None, description="blob key, when the output is too large to inline")


@event_type("approval.requested")
class ApprovalRequested(Payload):
    """A person is asked (Airflow human-in-the-loop, the Required Actions page)."""

    subject: str
    options: list[str] = Field(default_factory=list)
    assignees: list[str] = Field(default_factory=list)
    kind: Literal[
        "approval", "escalation", "review", "conflict", "partial_failure", "compensation", "budget"
    ] = "approval"
    reason: str = ""
    timeout_s: float | None = None


@event_type("approval.answered")
class ApprovalAnswered(Payload):
    chosen: list[str] = Field(default_factory=list)
    by: str = ""
    timed_out: bool = False
    fields: list[str] = Field(default_factory=list, description="the names of the fields the person filled")


@event_type("feedback.recorded")
class FeedbackRecorded(Payload):
    """A verdict on a step's output: a person's review on the Required Actions page (approve 1, edit
    0.5, reject 0), or a score from outside the run (``baton feedback``, the API). Learned routing learns
    it with the try that gave the output."""

    score: float = Field(ge=0, le=1)
    verdict: Literal["approve", "edit", "reject", "score"] = "score"
    source: Literal["review", "cli", "api", "evaluation"] = "api"  # evaluation: the step's live checks
    by: str = Field(default="", max_length=250)


@event_type("variant.assigned")
class VariantAssigned(Payload):
    """The arm of a step's experiment this run takes: assigned by its key (kept by hash only), or the
    decided one for every run once the experiment decided."""

    experiment: str
    variant: str
    how: Literal["assigned", "decided: promoted", "decided: stopped"] = "assigned"
    key_sha256: str = ""
    gated: list[str] = Field(
        default_factory=list, description="arms held back: not passed the workflow's evaluation dataset yet"
    )


class _VariantDecision(Payload):
    experiment: str
    status: Literal["promoted", "stopped"]
    variant: str
    control: str
    reason: str = ""
    counts: dict[str, Any] = Field(default_factory=dict)


@event_type("variant.decided")
class VariantDecided(_VariantDecision):
    """A step's experiment decided, once: the arm every run takes from now on, and why (the counts of
    each arm and the test that decided)."""

    by: str = Field(default="", max_length=250, description="the person who approved it (approve: true)")


@event_type("variant.proposed")
class VariantProposed(_VariantDecision):
    """A step's experiment that waits for a person (``variants.approve``) reached a decision: it is proposed,
    once; runs keep their arms until a person approves it (``variant.decided``, by them) or keeps the
    control."""


# --- a person's actions from the Coordination page ----------------------------------------------------


@event_type("step.reassigned")
class StepReassigned(Payload):
    """A person chose the agent of a routed step's next try (the try after ``after_try``)."""

    agent: str = Field(max_length=250)
    after_try: int = Field(ge=0)
    by: str = Field(default="", max_length=250)
    reason: str = Field(default="", max_length=1000)


@event_type("run.stopped")
class RunStopped(Payload):
    """A person stopped the run from Baton's pages (Airflow marked it failed and stopped its tasks): who and
    why, the compensation run started for it, and the questions to people it closed (task ids: they can no
    longer be answered). The run's story tells a deliberate stop apart from a failure by this event."""

    by: str = Field(max_length=250)
    reason: str = Field(default="", max_length=1000)
    compensation_run_id: str | None = Field(default=None, max_length=250)
    questions_closed: list[str] = Field(default_factory=list, max_length=1000)


@event_type("action.taken")
class ActionTaken(Payload):
    """What a person did from Baton's pages (trigger, stop, reassign, a circuit opened or closed), as whom,
    and what Airflow answered: every action is one of these, whether or not it succeeded."""

    verb: Literal["trigger", "stop", "reassign", "open_circuit", "close_circuit", "settle"]
    target: str = Field(max_length=600)
    by: str = Field(default="", max_length=250)
    ok: bool = True
    detail: str = Field(default="", max_length=2000)


# --- versions and rollouts -----------------------------------------------------------------------


@event_type("version.assigned")
class VersionAssigned(Payload):
    """The template version a run takes while a rollout runs (the whole run stays on it): the new one
    (``canary``) by the run's hash under the share of the moment, or the current one (``stable``)."""

    rollout: str
    version: int
    arm: Literal["stable", "canary"]
    share: float = Field(ge=0, le=100, description="the new version's share of runs when it was assigned, %")
    how: str = ""


class _RolloutDecision(Payload):
    rollout: str
    at: str = Field(description="when it was decided (ISO 8601, UTC)")
    share: float = Field(ge=0, le=100)
    reason: str = ""
    counts: dict[str, Any] = Field(default_factory=dict)


@event_type("rollout.started")
class RolloutStarted(_RolloutDecision):
    """A rollout's first look: the new version takes ``share`` % of the runs from now."""

    from_version: int
    to_version: int


@event_type("rollout.advanced")
class RolloutAdvanced(_RolloutDecision):
    """A stage passed with the guardrails holding: the share grows to ``share`` %."""

    stage: int


@event_type("rollout.completed")
class RolloutCompleted(_RolloutDecision):
    """Every new run takes the new version."""


@event_type("rollout.rolled_back")
class RolloutRolledBack(_RolloutDecision):
    """A guardrail failed: every new run takes the current version again; the runs in flight finish on
    theirs. ``reason`` says which guardrail, with the counts and the test."""


@event_type("rollout.gated")
class RolloutGated(Payload):
    """The rollout has not started: the workflow has an evaluation dataset, and the new version, as it is
    now (``digest``), has no passing evaluation of it against the current version (``baton eval --record``).
    Recorded once for each digest; every run takes the current version meanwhile."""

    rollout: str
    digest: str
    reason: str


# --- evaluations --------------------------------------------------------------------------------


@event_type("evaluation.completed")
class EvaluationCompleted(Payload):
    """``baton eval --record``: a version of a workflow (or one arm of a step's variants) ran its evaluation
    dataset, compared with the current version when ``against`` says so. The cases' ids and scores only:
    never their inputs or outputs."""

    at: str = Field(default="", description="when it ended (ISO 8601, UTC)")
    version: int
    digest: str = Field(
        description="the version's validated template, hashed (baton.spec.evals.version_digest)"
    )
    variant: str = Field(default="", description="'<step>:<arm>' when one arm of a step's variants ran")
    against: Literal["stable"] | None = None
    passed: bool
    cases: int = Field(ge=0)
    checks: int = Field(ge=0)
    held: int = Field(ge=0, description="the checks that held")
    held_stable: int | None = None
    mean_difference: float | None = None
    interval: list[float] | None = None
    regressed: dict[str, list[str]] = Field(
        default_factory=dict,
        description="case -> its checks that held on the current version (at most 50 cases)",
    )
    dataset_sha256: str = ""


@event_type("alert.raised")
class AlertRaised(Payload):
    """An alert for people: recorded whether or not it reached Slack (``delivered``); an undelivered
    one is retried later (``baton alerts --resend``) and gets an ``alert.delivered`` then."""

    kind: str
    message: str
    channel: str = "log"
    delivered: bool = False
    step: str | None = None
    error_class: str = ""
    attempt: int | None = None
    url: str = ""
    attempts: int = 0
    delivery_error: str = ""


@event_type("alert.delivered")
class AlertDelivered(Payload):
    alert_key: str
    channel: str = "slack"
    attempts: int = 1


# --- side effects (exactly once) -----------------------------------------------------------------


@event_type("effect.done")
class EffectDone(Payload):
    """A side effect (HTTP post, message, form submission ...) that happened; its key is derived from
    run, step, map index, subtask and action, so a retry or a rerun reuses ``result`` instead."""

    action: str
    effect_key: str
    subtask: str = ""
    sha256: str = ""
    result: Any = None
    ref: str | None = None
    latency_s: float = 0.0


@event_type("effect.reused")
class EffectReused(Payload):
    action: str
    effect_key: str
    subtask: str = ""
    done_seq: int | None = Field(default=None, description="the effect.done event whose result is reused")


# --- saga ---------------------------------------------------------------------------------------


@event_type("saga.started")
class SagaStarted(Payload):
    """A failed run (or an operator's request) undoes its completed steps, newest first."""

    trigger: Literal["run_failed", "manual"] = "run_failed"
    failed_steps: list[str] = Field(default_factory=list)
    plan: list[str] = Field(default_factory=list, description="targets in the order they are compensated")
    already: list[str] = Field(default_factory=list, description="compensated by an earlier saga")


@event_type("compensation.started")
class CompensationStarted(Payload):
    target: str
    attempt: int = 1
    worker: str = ""


@event_type("compensation.succeeded")
class CompensationSucceeded(Payload):
    target: str
    attempt: int = 1
    by: str = Field(default="", description="'' when the compensation ran; a person's name when done by hand")
    sha256: str = ""


@event_type("compensation.failed")
class CompensationFailed(Payload):
    target: str
    attempt: int = 1
    error_class: str = ""
    error: str = ""
    will_retry: bool = False


@event_type("saga.completed")
class SagaCompleted(Payload):
    outcome: Literal["compensated", "partial", "nothing_to_do"]
    compensated: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list, description="targets left uncompensated")
    trigger: Literal["run_failed", "manual"] = "run_failed"


# --- shared context -----------------------------------------------------------------------------


@event_type("context.written")
class ContextWritten(Payload):
    key: str
    version: int
    base_version: int
    writer: str
    sha256: str
    size: int
    value: Any = None
    ref: str | None = None


@event_type("context.conflict")
class ContextConflict(Payload):
    key: str
    strategy: str
    base_version: int
    current_version: int
    writer: str
    other_writer: str


@event_type("context.resolved")
class ContextResolved(Payload):
    key: str
    strategy: str
    outcome: Literal["retried", "overwrote", "merged", "rejected", "unresolved", "escalated"]
    version: int | None = None
    detail: str = ""


# --- operations -----------------------------------------------------------------------------------


class IncidentTransition(Payload):
    """An incident's transition (``baton.ops.incidents``): the run id of these events is the incident's
    ``incident:<id>``, their workflow ``baton_monitor``."""

    incident_id: str | None = None
    kind: str
    where: str
    severity: str | None = None
    count: int = 0
    notified: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)


for _name in ("opened", "updated", "acknowledged", "action", "resolved", "suppressed"):
    event_type(f"incident.{_name}")(type(f"Incident{_name.title()}", (IncidentTransition,), {}))


class ComponentLife(Payload):
    """A component of the platform started, or stopped cleanly (``baton.events.lifecycle``): Airflow's
    scheduler, triggerer or dag processor (its lifecycle listener) or a Celery worker (its ``worker_ready``
    and ``worker_shutdown``). The run id of these events is ``platform:<component>``, their workflow
    ``baton_monitor``; the monitor reads a start with no stop of the same component since its last start as
    a crash (``baton.ops.monitor.platform``)."""

    component: str = Field(min_length=1, max_length=40)
    name: str = Field(default="", max_length=200)  # a Celery worker's name (BATON_WORKER_NAME)
    hostname: str = Field(default="", max_length=255)
    pid: int = Field(ge=0)


event_type("platform.started")(type("PlatformStarted", (ComponentLife,), {}))
event_type("platform.stopped")(type("PlatformStopped", (ComponentLife,), {}))


# --- budgets ----------------------------------------------------------------------------------------


@event_type("budget.reserved")
class BudgetReserved(Payload):
    """A model call's estimate, reserved in every budget that applies ([budget, window] pairs)."""

    agent: str
    budgets: list[list[str]]
    cost: float
    tokens: int


@event_type("budget.settled")
class BudgetSettled(Payload):
    """The call ended: its actual use replaced its estimate (``released``: it never reached the model)."""

    agent: str
    budgets: list[list[str]]
    estimate_cost: float
    estimate_tokens: int
    cost: float
    tokens: int
    released: bool = False


@event_type("budget.refused")
class BudgetRefused(Payload):
    """A call that did not fit in ``budget``: its limits, what was spent and in flight, what happens next."""

    agent: str
    budget: str
    window: str
    limit_cost: float | None = None
    limit_tokens: int | None = None
    spent_cost: float
    spent_tokens: int
    in_flight_cost: float = 0.0
    in_flight_tokens: int = 0
    at_limit: str
    waited: bool = False


@event_type("budget.deferred")
class BudgetDeferred(Payload):
    """A step waits for the next window of ``budget`` (``at_limit: defer``): deferred until ``until``."""

    budget: str
    window: str
    until: str
    items: list[str] = Field(default_factory=list, max_length=10_000)


@event_type("budget.raised")
class BudgetRaised(Payload):
    """A person raised ``budget``'s limit once in ``window`` (``at_limit: ask``) by ``percent`` of it."""

    budget: str
    window: str
    percent: int
    cost: float
    tokens: int
    by: str
    first: bool = True


@event_type("budget.warned")
class BudgetWarned(Payload):
    """A budget window passed its ``warn_at`` share (once per window, whichever run got there)."""

    budget: str
    window: str
    share: float
    cost: float
    tokens: int
    agent: str
