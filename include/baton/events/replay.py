"""Replay: a run's state at any point, rebuilt from its events alone, and its timeline."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from baton.events.event import CorruptEvent, Event

STEP_STATES = {
    "step.started": "running",
    "step.succeeded": "success",
    "step.failed": "failed",
    "step.retried": "up_for_retry",
    "step.skipped": "skipped",
}


@dataclass
class StepState:
    step: str
    map_index: int = -1
    state: str = "none"
    try_number: int = 0
    agent: str | None = None
    output: Any = None
    output_ref: str | None = None
    error: str = ""
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    offline_calls: int = 0  # the model calls Baton's offline model answered (made-up data)


@dataclass
class RunState:
    run_id: str
    workflow: str = ""
    template_version: int | None = None
    state: str = "none"
    conf_keys: list[str] = field(default_factory=list)
    conf_sha256: str = ""
    steps: dict[tuple[str, int], StepState] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)
    saga: str = ""  # the outcome of the run's last saga: compensated | partial | nothing_to_do
    compensated: list[str] = field(default_factory=list)  # targets undone, in the order they were
    last_seq: int = 0
    events: int = 0
    corrupt: list[CorruptEvent] = field(default_factory=list)

    def step_states(self) -> dict[str, str]:
        """step id (``id[i]`` for a mapped one) -> state."""
        return {
            (s.step if s.map_index < 0 else f"{s.step}[{s.map_index}]"): s.state for s in self.steps.values()
        }


def fold(run_id: str, events: Iterable[Event | CorruptEvent]) -> RunState:
    """Apply events in order to an empty run state."""
    run = RunState(run_id)
    for event in events:
        if isinstance(event, CorruptEvent):
            run.corrupt.append(event)
            continue
        run.events += 1
        run.last_seq = event.seq or run.last_seq
        run.workflow = event.workflow
        run.template_version = event.template_version or run.template_version
        kind, payload = event.type, event.payload
        if kind.startswith("run."):
            run.state = {"run.started": "running", "run.succeeded": "success", "run.failed": "failed"}[kind]
            if kind == "run.started":
                run.conf_keys, run.conf_sha256 = payload.get("conf_keys", []), payload.get("conf_sha256", "")
            continue
        if event.step is None or kind.startswith(("effect.", "alert.", "saga.", "compensation.")):
            # Facts about a run's effects, alerts and saga: they do not change a step's state.
            if kind == "saga.completed":
                run.saga = payload.get("outcome", "")
            elif kind == "compensation.succeeded" and payload.get("target") not in run.compensated:
                run.compensated.append(payload.get("target"))
            continue
        key = (event.step, event.map_index)
        step = run.steps.setdefault(key, StepState(event.step, event.map_index))
        if event.try_number >= step.try_number:
            step.try_number = event.try_number
            if kind in STEP_STATES:
                step.state = STEP_STATES[kind]
        if kind == "step.failed":
            step.error = f"{payload.get('error_class', '')}: {payload.get('error', '')}".strip(": ")
        elif kind == "agent.selected":
            step.agent = payload["agent"]
            if step.agent not in run.agents:
                run.agents.append(step.agent)
        elif kind == "model.called":
            step.model_calls += payload.get("requests", 1)
            step.input_tokens += payload.get("input_tokens", 0)
            step.output_tokens += payload.get("output_tokens", 0)
            step.cost += payload.get("cost", 0.0)
            step.offline_calls += 1 if payload.get("offline") else 0
        elif kind == "output.recorded":
            step.output, step.output_ref = payload.get("output"), payload.get("ref")
    return run


def _summary(event: Event, full: bool = False) -> str:
    # long: one line per event type, in the order of the types
    p = event.payload
    match event.type:
        case "run.started":
            return f"{p.get('run_type')}, conf keys {p.get('conf_keys', [])}"
        case "priority.assigned":
            predicted = (
                f"; predicted finish {p['predicted_finish']} (p90 in {p['predicted_p90_s']} s)"
                if p.get("predicted_finish")
                else ""
            )
            risk = (
                f", deadline miss risk {100 * p['miss_risk']:.0f} %" if p.get("miss_risk") is not None else ""
            )
            return (
                f"level {p['level']} (the {p.get('level_from', 'template')}'s), weight {p['weight']}, start by "
                f"{p['start_by']}: {p['reason']}{predicted}{risk}"
            )
        case "step.started":
            worker = f", {p['worker']}" if p.get("worker") else ""
            return f"pid {p.get('pid')} on {p.get('hostname')}{worker}, pool {p.get('pool')}"
        case "step.succeeded" | "run.succeeded":
            return f"in {p.get('duration_s')} s" if p.get("duration_s") is not None else ""
        case "step.failed":
            return f"{p.get('error_class')}: {p.get('error')} (retry: {p.get('will_retry')}, by {p.get('recorded_by')})"
        case "agent.selected":
            sub = f"[{p['subtask']}] " if p.get("subtask") else ""
            out = (
                f"; left out: {', '.join(f'{a} ({why})' for a, why in p['excluded'].items())}"
                if p.get("excluded")
                else ""
            )
            wait = (
                f"; waited {p['queue_wait_s']:g} s for a slot"
                + (
                    f" (start by {p['queue_start_by']}: the earliest goes first)"
                    if p.get("queue_start_by")
                    else ""
                )
                if p.get("queue_wait_s")
                else ""
            )
            return f"{sub}{p['agent']} — {p.get('reason', '')}{out}{wait}"
        case "fanout.planned":
            return (
                f"{len(p['subtasks'])} of {p['total']} items of {p['source']}, {p['concurrency']} at once"
                + (f", {len(p['reused'])} done before" if p.get("reused") else "")
            )
        case "effect.done":
            sub = f"[{p['subtask']}] " if p.get("subtask") else ""
            return f"{sub}{p['action']} key {_clip(p['effect_key'], 12, full)} in {p.get('latency_s')} s"
        case "effect.reused":
            sub = f"[{p['subtask']}] " if p.get("subtask") else ""
            return f"{sub}{p['action']} key {_clip(p['effect_key'], 12, full)}: the result of event {p.get('done_seq')}"
        case "saga.started":
            return f"{p.get('trigger')}: undo {', '.join(p.get('plan', [])) or 'nothing'}"
        case "compensation.started" | "compensation.succeeded":
            by = f" by {p['by']}" if p.get("by") else ""
            return f"{p['target']} try {p.get('attempt')}{by}"
        case "compensation.failed":
            return f"{p['target']} try {p.get('attempt')}: {p.get('error')} (retry: {p.get('will_retry')})"
        case "saga.completed":
            left = f"; left undone: {', '.join(p['failed'])}" if p.get("failed") else ""
            return f"{p.get('outcome')}: {', '.join(p.get('compensated', [])) or 'nothing'}{left}"
        case "alert.raised":
            where = "Slack" if p.get("delivered") else f"{p.get('channel')} (not delivered)"
            return f"{p.get('kind')} to {where}: {_clip(p.get('message', ''), 120, full)}"
        case "subtask.succeeded":
            return f"[{p['subtask']}] attempt {p.get('attempt')} in {p.get('latency_s')} s, {p['size']} bytes"
        case "subtask.failed":
            return (
                f"[{p['subtask']}] attempt {p.get('attempt')}: {p.get('error_class')}: "
                f"{_clip(p.get('error', ''), 80, full)}" + (" -> next agent" if p.get("reassigned") else "")
            )
        case "context.conflict":
            return (
                f"{p['key']}: {p['writer']} read v{p['base_version']}, {p['other_writer']} wrote "
                f"v{p['current_version']} ({p['strategy']})"
            )
        case "context.resolved":
            return f"{p['key']}: {p['outcome']} ({p['strategy']})" + (
                f" -> v{p['version']}" if p.get("version") else ""
            )
        case "approval.requested":
            return f"{p.get('kind')}: {p['subject']} — options {p.get('options')}"
        case "approval.answered":
            return f"{p.get('chosen')} by {p.get('by') or '-'}" + (
                " (timeout default)" if p.get("timed_out") else ""
            )
        case "model.called":
            return (
                ("OFFLINE MODEL (made-up answer) " if p.get("offline") else "")
                + f"{p['model']}: {p.get('input_tokens')} in / {p.get('output_tokens')} out tokens, "
                f"${p.get('cost', 0):.6f}, {p.get('latency_s')} s, prompt sha256 {_clip(p['prompt_sha256'], 12, full)}"
                + _reasks(p.get("requests"))
            )
        case "output.recorded":
            return f"{p['size']} bytes" + (
                f", blob {_clip(p['ref'], 12, full)}"
                if p.get("ref")
                else f": {_clip(p.get('output'), 80, full)}"
            )
        case _:
            return _clip(", ".join(f"{k}={v}" for k, v in p.items()), 120, full)


def _reasks(requests: Any) -> str:
    """A call's re-asks (its requests after the first: answers that broke the output schema, asked again)."""
    if not isinstance(requests, int) or isinstance(requests, bool) or requests < 2:
        return ""
    return f"; {requests} requests: {requests - 1} re-ask{'s' if requests > 2 else ''}"


def _clip(value: Any, limit: int, full: bool) -> str:
    """``value`` as text, cut at ``limit`` characters unless ``full``."""
    text = value if isinstance(value, str) else json.dumps(value, default=str) if full else str(value)
    return text if full or len(text) <= limit else text[:limit]


def timeline(events: Iterable[Event | CorruptEvent], full: bool = False) -> list[str]:
    """One readable line per event (``full``: nothing cut: outputs, errors and messages whole)."""
    lines = []
    for event in events:
        if isinstance(event, CorruptEvent):
            lines.append(f"{event.seq:>8}  !! {event}")
            continue
        where = event.step or "-"
        if event.map_index >= 0:
            where += f"[{event.map_index}]"
        if event.try_number:
            where += f" #{event.try_number}"
        lines.append(
            f"{event.seq:>8}  {event.ts:%H:%M:%S.%f}"[:-3]
            + f"  {where:<24} {event.type:<16} {_summary(event, full)}"
        )
    return lines
