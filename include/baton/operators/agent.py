"""AgentOperator: one Baton step — render the instruction, call the agent or skill, validate the output."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from baton import templating


class AgentOperator(BaseOperator):
    """Run one step of a Baton workflow.

    The runtime (common-ai, pydantic-ai, the skills) is imported in ``execute()``, so that
    parsing a DAG of these operators stays cheap.

    :param workflow: the workflow (DAG) id, for logs and skill requests.
    :param instruction: Jinja over ``inputs``, ``steps`` (upstream outputs) and ``run``.
    :param agent: the roster entry of the agent (``Agent.model_dump()``), or None for a skill step.
    :param skill: the registered skill to run, for a skill step.
    :param output_spec: output fields (name -> field spec), a registered output model name, or None.
    :param reads: upstream step ids whose outputs the instruction or condition reads.
    :param when: a Jinja condition; when false the step is skipped.
    :param output_retries: how many times the model is asked again after an invalid output.
    :param template_version: the template's ``version``, recorded with every event of the step.
    :param usage_limits: common-ai usage limits (``request_limit``, ``total_tokens_limit``, ...).
    :param context_keys: the workflow's shared-context keys and their conflict strategies.
    :param context_writes: context key -> expression of what this step writes there (over ``output``).
    """

    ui_color = "#e7effd"
    records_own_events = True  # the listener leaves this task's start and end to it
    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        workflow: str,
        instruction: str = "",
        agent: dict[str, Any] | None = None,
        skill: str | None = None,
        output_spec: dict[str, Any] | str | None = None,
        reads: Sequence[str] = (),
        when: str | None = None,
        output_retries: int = 2,
        template_version: int | None = None,
        usage_limits: dict[str, int] | None = None,
        context_keys: dict[str, str] | None = None,
        context_writes: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow = workflow
        self.instruction = instruction
        self.agent = agent
        self.skill = skill
        self.output_spec = output_spec
        self.reads = list(reads)
        self.when = when
        self.output_retries = output_retries
        self.template_version = template_version
        self.usage_limits = usage_limits
        self.context_keys = context_keys or {}
        self.context_writes = context_writes or {}

    def execute(self, context: Any) -> dict[str, Any]:
        from baton.events import EventStore
        from baton.events.recorder import StepRecorder

        recorder = StepRecorder(
            EventStore.from_airflow(),
            context,
            workflow=self.workflow,
            template_version=self.template_version,
            agent=(self.agent or {}).get("name"),
            pool=self.pool,
        )
        try:
            scope = self.jinja_context(context)
            versions = self._read_context(recorder.store, context, scope)
            runs = not self.when or templating.evaluate(self.when, scope)
            chosen = [self._agent_selected(recorder)] if self.agent and runs else []
            recorder.start(*chosen)
            if not runs:
                raise AirflowSkipException(
                    f"Step '{self.task_id}' skipped: its condition `{self.when}` is false."
                )
            output = self._run(context, scope, recorder)
            self._write_context(recorder.store, context, scope, output, versions)
        except AirflowSkipException as skip:
            recorder.skipped(str(skip))
            raise
        except BaseException as error:
            recorder.failed(error)
            raise
        recorder.succeeded(output)
        return output

    def _agent_selected(self, recorder: Any) -> Any:
        name = self.agent["name"]
        return recorder.event(
            "agent.selected", {"agent": name, "candidates": [name], "reason": "named by the template"}
        )

    def _run(self, context: Any, scope: dict[str, Any], recorder: Any) -> dict[str, Any]:
        prompt = templating.render(self.instruction, scope)
        self.log.info(
            "Step %s (%s): instruction of %d chars, sha256 %s; upstream outputs read: %s",
            self.task_id,
            self.worker,
            len(prompt),
            hashlib.sha256(prompt.encode()).hexdigest()[:16],
            ", ".join(self.reads) or "none",
        )
        skill = self.skill or (self.agent or {}).get("skill")
        if skill:
            from baton.agents.skills import run_skill_step

            output = run_skill_step(self, skill, prompt, scope, context)
        else:
            from baton.agents.llm import run_llm_step

            output = run_llm_step(self, prompt, context, recorder)
        self.log.info(
            "Step %s output: keys %s, %d bytes",
            self.task_id,
            sorted(output),
            len(json.dumps(output, default=str)),
        )
        return output

    def _read_context(self, store: Any, context: Any, scope: dict[str, Any]) -> dict[str, int]:
        """Put the run's shared context in ``scope``; the version of each key read (0: not written yet)."""
        if not self.context_keys:
            return {}
        from baton.context import ContextStore

        entries = ContextStore(store).snapshot(context["ti"].run_id)
        scope["context"] = {key: entries[key].value if key in entries else None for key in self.context_keys}
        return {key: entries[key].version if key in entries else 0 for key in self.context_keys}

    def _write_context(
        self, store: Any, context: Any, scope: dict[str, Any], output: Any, versions: dict[str, int]
    ) -> None:
        """Write this step's ``writes`` over the versions it read; conflicts go to each key's strategy."""
        if not self.context_writes:
            return
        from baton.context import ContextStore, Writer

        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        writer = Writer(
            run_id=ti.run_id,
            workflow=self.workflow,
            step=self.task_id,
            map_index=map_index,
            try_number=ti.try_number,
            name=self.task_id if map_index < 0 else f"{self.task_id}[{map_index}]",
        )
        values = {**scope, "output": output}
        contexts = ContextStore(store)
        for key, expression in self.context_writes.items():
            entry = contexts.write(
                writer,
                key,
                templating.value(expression, values),
                base_version=versions.get(key, 0),
                strategy=self.context_keys[key],
            )
            self.log.info("Step %s wrote context key %s: version %d", self.task_id, key, entry.version)

    @property
    def worker(self) -> str:
        return f"agent {self.agent['name']}" if self.agent else f"skill {self.skill}"

    def jinja_context(self, context: Any) -> dict[str, Any]:
        """``inputs`` (the validated params), ``steps`` (upstream outputs) and ``run`` for Jinja."""
        ti = context["ti"]
        steps = {step_id: ti.xcom_pull(task_ids=step_id) for step_id in self.reads}
        run = context["dag_run"]
        logical_date = context.get("logical_date")
        return {
            "inputs": dict(context["params"]),
            "steps": steps,
            "context": {},
            "run": {
                "id": run.run_id,
                "logical_date": logical_date.isoformat() if logical_date else None,
                "ds": context.get("ds"),
                "try_number": ti.try_number,
            },
        }
