"""``baton replay RUN --rerun``: re-execute a recorded run's steps against the current templates.

Skills run again; an LLM step gets the model output recorded for it (a pydantic-ai FunctionModel
that answers with it), so no model is called and no token spent. A skill's side effects
(``baton.effects``) that the run did get their recorded results back ("effect reused": nothing is
posted again); an effect the run did not do is not done, and the step diverges. A step diverges
when its condition, its prompt (by hash), its arguments or its output differs from what the run
recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from pydantic import ValidationError
from pydantic_ai import Agent
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from baton import effects, templating
from baton.agents.outputs import output_model
from baton.agents.skills import run_skill
from baton.coordination.subtasks import subtasks_of
from baton.errors import SkillError
from baton.events.event import conf_digest
from baton.events.replay import RunState, fold
from baton.events.store import EventStore
from baton.hooks.airflow_runs import conf_from_metadata_db
from baton.plan import CompiledStep, plan_workflow
from baton.spec.loading import load_named


@dataclass(frozen=True)
class Verdict:
    step: str
    same: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.step:<24} {'same' if self.same else 'DIVERGES'}  {self.detail}"


def _replaying(recorded: dict[str, Any]) -> FunctionModel:
    """A model that answers with the recorded output: a call of the output tool, or the text."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if info.output_tools:
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, recorded)])
        return ModelResponse(parts=[TextPart(recorded.get("text", ""))])

    return FunctionModel(respond, model_name="baton:replay")


def _recorded(store: EventStore, run_id: str) -> tuple[RunState, dict[str, str]]:
    events = list(store.read(run_id))
    prompts = {e.step: e.payload["prompt_sha256"] for e in events if getattr(e, "type", "") == "model.called"}
    return fold(run_id, events), prompts


def _output_of(store: EventStore, state: RunState, step: str) -> Any:
    recorded = state.steps.get((step, -1))
    if recorded is None:
        return None
    return store.blob(recorded.output_ref) if recorded.output_ref else recorded.output


def _differences(before: Any, after: Any) -> str:
    if before == after:
        return ""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return "output differs in " + ", ".join(keys)
    return "output differs"


def _rerun_step(
    store: EventStore, state: RunState, plan: CompiledStep, scope: dict[str, Any], prompts: dict
) -> tuple[Verdict, Any]:
    """Re-execute one step; its verdict and the output it gave now (None when it did not run)."""
    step = plan.spec
    if plan.fan_out:
        return _rerun_fan_out(store, state, plan, scope)
    recorded = state.steps.get((step.id, -1))
    if recorded is None or recorded.state not in ("success", "skipped"):
        return Verdict(
            step.id, True, f"not rerun: it ended {recorded.state if recorded else 'unrecorded'}"
        ), None
    if step.when:
        runs_now = templating.evaluate(step.when, scope)
        if runs_now != (recorded.state == "success"):
            detail = f"condition `{step.when}` is now {runs_now}; the run {recorded.state} it"
            return Verdict(step.id, False, detail), None
        if not runs_now:
            return Verdict(step.id, True, "skipped, as recorded"), None
    prompt = templating.render(step.instruction, scope)
    before = _output_of(store, state, step.id)
    skill = plan.skill
    notes = []
    reused: list[str] = []
    try:
        if skill:
            after, reused = _rerun_skill(store, state, step, skill, prompt, scope)
        else:
            if prompts.get(step.id) != hashlib.sha256(prompt.encode()).hexdigest():
                notes.append("prompt changed")
            model = output_model(step.id, _spec(step))
            agent = Agent(_replaying(before or {}), output_type=model or str, retries={"output": 0})
            output = agent.run_sync(prompt).output
            after = output.model_dump(mode="json") if model else {"text": output}
    except effects.EffectError as error:
        return Verdict(step.id, False, str(error)), None
    except TemplateError as error:
        return Verdict(step.id, False, f"its 'with' arguments no longer render: {error}"), None
    except (UnexpectedModelBehavior, ValidationError, SkillError) as error:
        cause = error.__cause__ if isinstance(error, UnexpectedModelBehavior) and error.__cause__ else error
        first = str(cause).strip().splitlines()[:3]
        notes.append("the output no longer fits the step's output fields: " + " ".join(first))
        return Verdict(step.id, False, "; ".join(notes)), None
    if difference := _differences(before, after):
        notes.append(difference)
    detail = "; ".join(notes) or ("skill ran again" if skill else "recorded output fits")
    if reused:
        detail += f", effect reused ({', '.join(reused)})"
    return Verdict(step.id, not notes, detail), after


def _rerun_fan_out(
    store: EventStore, state: RunState, plan: CompiledStep, scope: dict[str, Any]
) -> tuple[Verdict, Any]:
    """Re-execute each item a for_each step completed, in its own effects scope; a skill runs again,
    an agent's recorded item output is checked against the step's output fields."""
    # long: each item rerun in its own effects scope, each kind of divergence named
    step = plan.spec
    tasks = [s for (name, _), s in state.steps.items() if name == step.id]
    if not tasks or any(t.state not in ("success", "skipped") for t in tasks):
        ended = ", ".join(sorted({t.state for t in tasks})) or "unrecorded"
        return Verdict(step.id, True, f"not rerun: it ended {ended}"), None
    done = {}
    for event in store.read(scope["run"]["id"], types=["subtask.succeeded"]):
        if getattr(event, "step", None) == step.id:
            payload = event.payload
            done[payload["subtask"]] = (event.map_index, event.agent, store.output_of(payload))
    source = scope["steps"].get(plan.fan_out.source) or {}
    items = source.get(plan.fan_out.field) if isinstance(source, dict) else None
    skill = plan.skill
    notes: list[str] = []
    reused: list[str] = []
    results = []
    for sub in subtasks_of(items if isinstance(items, list) else []):
        if sub.id not in done:
            continue
        map_index, agent, before = done[sub.id]
        sub_scope = {**scope, "item": sub.item, "index": sub.index}
        prompt = templating.render(step.instruction, sub_scope)
        try:
            if skill:
                after, actions = _rerun_skill(
                    store, state, step, skill, prompt, sub_scope, map_index=map_index, subtask=sub.id
                )
                reused += actions
            else:
                model = output_model(step.id, _spec(step))
                replay = Agent(_replaying(before or {}), output_type=model or str, retries={"output": 0})
                output = replay.run_sync(prompt).output
                after = output.model_dump(mode="json") if model else {"text": output}
        except effects.EffectError as error:
            return Verdict(step.id, False, f"item {sub.id}: {error}"), None
        except TemplateError as error:
            return Verdict(
                step.id, False, f"item {sub.id}: its 'with' arguments no longer render: {error}"
            ), None
        except (UnexpectedModelBehavior, ValidationError, SkillError) as error:
            first = " ".join(str(error).strip().splitlines()[:3])
            return Verdict(step.id, False, f"item {sub.id} no longer fits the output fields: {first}"), None
        if difference := _differences(before, after):
            notes.append(f"item {sub.id}: {difference}")
        results.append({"id": sub.id, "agent": agent, "output": after})
    detail = "; ".join(notes) or f"{len(results)} item(s) " + ("ran again" if skill else "fit")
    if reused:
        detail += f", effect reused ({len(reused)} x {', '.join(sorted(set(reused)))})"
    return Verdict(step.id, not notes, detail), {"results": results, "failures": [], "total": len(results)}


def _rerun_skill(
    store: EventStore,
    state: RunState,
    step: Any,
    skill: str,
    prompt: str,
    scope: dict[str, Any],
    *,
    map_index: int = -1,
    subtask: str = "",
) -> tuple[Any, list[str]]:
    """Run the step's skill again, its effects reusing the run's recorded results (a rerun does no
    new effect); its output and the actions of the effects reused."""
    with effects.scope(
        store,
        run_id=scope["run"]["id"],
        workflow=state.workflow,
        step=step.id,
        map_index=map_index,
        try_number=0,
        subtask=subtask,
        template_version=state.template_version,
        allow_new=False,
    ) as done:
        output = run_skill(
            skill,
            workflow=state.workflow,
            step_id=step.id,
            output_spec=_spec(step),
            instruction=prompt,
            scope=scope,
            with_=step.arguments,
        )
    return output, [e["action"] for e in done.reused]


def _spec(step: Any) -> Any:
    if isinstance(step.output, dict):
        return {name: field.model_dump(exclude_defaults=True) for name, field in step.output.items()}
    return step.output


def rerun(
    store: EventStore, run_id: str, dags_folder: Path, conf: dict[str, Any] | None = None
) -> list[Verdict]:
    """Re-execute ``run_id``'s steps in dependency order; a verdict per step.

    :param conf: the run's conf; read from Airflow's metadata DB when not given.
    """
    state, prompts = _recorded(store, run_id)
    conf = conf_from_metadata_db(state.workflow, run_id) if conf is None else conf
    workflow, roster = load_named(dags_folder, state.workflow)
    plan = plan_workflow(workflow, roster)
    verdicts = []
    if state.template_version not in (None, workflow.version):
        verdicts.append(
            Verdict("(template)", False, f"now v{workflow.version}; the run used v{state.template_version}")
        )
    if conf_digest(conf) != state.conf_sha256:
        verdicts.append(Verdict("(inputs)", False, "the run's conf is not the one recorded (digest differs)"))
    inputs = {name: field.default for name, field in workflow.inputs.items()} | conf
    by_id = {s.task_id: s for s in plan.steps}
    outputs = {name: _output_of(store, state, name) for name in by_id}  # re-executed ones replace these
    order = TopologicalSorter({s.task_id: set(s.upstream) for s in plan.steps}).static_order()
    for step_id in order:
        step = by_id[step_id]
        scope = {
            "inputs": inputs,
            "steps": {name: outputs.get(name) for name in step.reads},
            "run": {"id": run_id, "logical_date": None, "ds": None, "try_number": 1},
        }
        verdict, output = _rerun_step(store, state, step, scope, prompts)
        if output is not None:
            outputs[step_id] = output
        verdicts.append(verdict)
    return verdicts
