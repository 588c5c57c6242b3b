"""Variants of a step (``variants:``): an experiment whose arms change the step's instruction or its agent,
each run sticky to one arm by a key, decided by an anytime-valid sequential test.

A run's arm is ``assign(<workflow>.<step>, key, weights)`` (a hash: no state, the same arm for the same key
whatever the worker), the key being the step's ``variants.key`` rendered over the run's inputs (the run id
by default; a customer's id keeps a customer on one arm). It is recorded as ``variant.assigned`` (the key
by its hash: a key may be personal). Each run's outcome is its step's: delivered (and not judged bad by a
person: a verdict under 0.5 counts as a failure of the arm), failed for good, and how long it took.

Before each assignment the experiment is replayed from those events (``baton.optimize.experiments``: pairs
of runs, an e-value per comparison, valid however often it is looked at). Once it decides, the decision is
recorded once (``variant.decided``, with the counts and the test that decided) and from then on every run
takes the winner (a promotion), or the control when every other arm was stopped on a guardrail or lost.
"""

from __future__ import annotations

import hashlib
from typing import Any

from baton import templating
from baton.coordination import evaluation
from baton.events.event import Event
from baton.events.store import EventStore
from baton.optimize.assignment import assign
from baton.optimize.experiments import Experiment

MAX_RUNS = 20_000  # the latest runs of a step an experiment is replayed from
MAX_KEY = 1_000
BAD_VERDICT = 0.5  # a person's score under this makes a delivered run a failure of its arm


def experiment_name(step: Any) -> str:
    return f"{step.workflow}.{step.task_id}"


def outcomes(store: EventStore, workflow: str, step: str) -> list[tuple[str, bool, bool, float | None]]:
    """The step's runs that have an arm and an end, in the order they ended: (arm, delivered, failed for
    good, seconds)."""
    kinds = ("variant.assigned", "step.succeeded", "step.failed", "feedback.recorded")
    rows = store.step_history(workflow, step, kinds, MAX_RUNS * 4)
    arms: dict[str, str] = {}
    ended: dict[str, tuple[int, bool, bool, float | None]] = {}
    verdicts: dict[str, float] = {}
    for seq, run_id, _, kind, _, payload in rows:
        if kind == "variant.assigned":
            arms[run_id] = payload["variant"]
        elif kind == "feedback.recorded":
            verdicts[run_id] = float(payload.get("score", 1.0))
        elif kind == "step.succeeded":
            ended[run_id] = (seq, True, False, payload.get("duration_s"))
        elif not payload.get("will_retry"):
            ended[run_id] = (seq, False, True, None)
    done = sorted((seq, run_id, ok, failed, seconds) for run_id, (seq, ok, failed, seconds) in ended.items())
    return [
        (arms[run_id], ok and verdicts.get(run_id, 1.0) >= BAD_VERDICT, failed, seconds)
        for _, run_id, ok, failed, seconds in done
        if run_id in arms
    ]


def decided(store: EventStore, workflow: str, step: str) -> dict[str, Any] | None:
    """The experiment's recorded decision, if it has one."""
    rows = store.step_history(workflow, step, ["variant.decided"], 1)
    return rows[0][-1] if rows else None


def proposed(store: EventStore, workflow: str, step: str) -> dict[str, Any] | None:
    """The decision an experiment with ``approve: true`` proposes to a person, if it has reached one."""
    rows = store.step_history(workflow, step, ["variant.proposed"], 1)
    return rows[0][-1] if rows else None


def settle(store: EventStore, workflow: str, step: str, by: str, accept: bool) -> dict[str, Any]:
    """A person's answer to a proposed decision: ``accept`` applies it; otherwise the control stays (every
    run takes it). Recorded once as ``variant.decided`` by them; a second answer changes nothing. Raises
    LookupError when nothing is proposed."""
    if (known := decided(store, workflow, step)) is not None:
        return known
    proposal = proposed(store, workflow, step)
    if proposal is None:
        raise LookupError(f"experiment {workflow}.{step} has no decision waiting for a person")
    payload = {**proposal, "by": by[:250]}
    if not accept:
        reason = f"{by} kept the control {proposal['control']} (proposed: {proposal['status']} {proposal['variant']})"
        payload |= {"status": "stopped", "variant": proposal["control"], "reason": reason[:2000]}
    store.append([Event(type="variant.decided", run_id=f"experiment:{workflow}.{step}"[:250], workflow=workflow,
                        step=step, payload=payload)])  # fmt: skip
    return decided(store, workflow, step) or payload


def replayed(store: EventStore, workflow: str, step: str, spec: Any) -> Any:
    """The experiment of ``spec`` (a step's ``variants``) with the step's runs so far recorded in it."""
    weights = {arm: variant.weight for arm, variant in spec.arms.items()}
    name = f"{workflow}.{step}"
    experiment = Experiment(name, weights, control=spec.control, alpha=spec.alpha, min_runs=spec.min_runs)
    experiment.replay(row for row in outcomes(store, workflow, step) if row[0] in weights)
    return experiment


def judge(store: EventStore, step: Any) -> dict[str, Any] | None:
    """Replay the step's experiment; record its decision the first time there is one. The decision's
    payload (recorded now or before), or None while it runs."""
    spec = step.spec.variants
    workflow, name = step.workflow, step.task_id
    if (known := decided(store, workflow, name)) is not None:
        return known
    if spec.approve and proposed(store, workflow, name) is not None:
        return None  # proposed to a person: the arms go on until they answer
    experiment = replayed(store, workflow, name, spec)
    verdict = experiment.decide()
    if verdict.status == "running":
        return None
    kind = "variant.proposed" if spec.approve else "variant.decided"  # approve: a person decides
    payload = {
        "experiment": experiment_name(step),
        "status": verdict.status,
        "variant": verdict.variant,
        "control": experiment.control,
        "reason": str(verdict.why.get("reason", ""))[:2000],
        "counts": verdict.why.get("counts", {}),
    }
    store.append([Event(type=kind, run_id=f"experiment:{experiment_name(step)}"[:250],
                        workflow=workflow, step=name, payload=payload)])  # fmt: skip
    return None if spec.approve else payload


def choose(step: Any, recorder: Any, scope: dict[str, Any]) -> tuple[Any, Event]:
    """The step as this run's arm has it (its instruction, its agent), and the ``variant.assigned`` event."""
    spec = step.spec.variants
    decision = judge(recorder.store, step)
    key = templating.render(spec.key, scope)[:MAX_KEY] if decision is None else ""
    held: list[str] = []  # arms that have not passed the workflow's dataset: no run of theirs yet
    if decision is not None:
        arm, why = decision["variant"], f"decided: {decision['status']}"
    else:
        weights = {a: v.weight for a, v in spec.arms.items()}
        if step.evaluated:  # the workflow has a dataset: an arm gets runs once it passed it
            passed = evaluated_arms(recorder.store, step)
            control = spec.control or next(iter(spec.arms))
            held = [a for a in weights if a != control and a not in passed]
            weights = {a: w for a, w in weights.items() if a not in held}
        arm = assign(experiment_name(step), key, weights)
        why = "assigned"
    payload = {
        "experiment": experiment_name(step),
        "variant": arm,
        "how": why,
        "key_sha256": hashlib.sha256(key.encode()).hexdigest()[:16] if key else "",
        "gated": held,
    }
    return applied(step, arm), recorder.event("variant.assigned", payload)


def evaluated_arms(store: EventStore, step: Any) -> set[str]:
    """The arms of ``step``'s variants with a passing evaluation of the template as built (its digest) against
    the control (``baton eval --variant STEP:ARM --record``)."""
    prefix = f"{step.spec.id}:"
    return {
        str(payload["variant"]).removeprefix(prefix)
        for payload in evaluation.passed_evaluations(store, step.workflow, step.evaluated)
        if str(payload.get("variant", "")).startswith(prefix)
    }


def applied(step: Any, arm: str) -> Any:
    """The compiled step with arm ``arm``'s changes (its instruction; its agent, resolved at planning)."""
    variant = step.spec.variants.arms[arm]
    spec = step.spec
    if variant.instruction is not None:
        spec = spec.model_copy(update={"instruction": variant.instruction})
    agent = step.variant_agents.get(arm, step.agent) if variant.agent else step.agent
    return step.model_copy(update={"spec": spec, "agent": agent})
