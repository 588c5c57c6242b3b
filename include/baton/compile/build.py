"""Plan -> Airflow DAG: the only module of the compiler that touches Airflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, CronTriggerTimetable, Param, XComArg

from baton.alerts import deadline_alerts, on_task_failure
from baton.compile.plan import StepPlan, WorkflowPlan
from baton.operators.agent import AgentOperator, FanOutBatches
from baton.operators.saga import SagaOperator
from baton.spec.models import InputField, RetryPolicy, Workflow

COMPENSATE_DAG_ID = "baton_compensate"
# Airflow's own retry and timeout arguments; agent_timeout is Baton's (one agent call).
_AIRFLOW_RETRY_ARGS = set(RetryPolicy.model_fields) - {"agent_timeout"}

START_DATE = datetime(2025, 1, 1)
_NOT_CRON = ("@once", "@continuous")


def _schedule(workflow: Workflow) -> Any:
    cron, tz = workflow.schedule.cron, workflow.schedule.timezone
    if cron is None or cron in _NOT_CRON:
        return cron
    return CronTriggerTimetable(cron, timezone=tz)


def _param(field: InputField) -> Param:
    schema = field.json_schema()
    extra = {"description": field.description or None, "title": field.title}
    extra = {k: v for k, v in extra.items() if v}
    if field.default is not None:
        return Param(field.default, **schema, **extra)
    if field.required:
        return Param(**schema, **extra)
    return Param(None, **{**schema, "type": [field.type, "null"]}, **extra)


def _retry_args(policy: RetryPolicy) -> dict[str, Any]:
    return {k: v for k, v in policy.model_dump(include=_AIRFLOW_RETRY_ARGS).items() if v is not None}


def _doc_md(workflow: Workflow, plan: WorkflowPlan) -> str:
    rows = "\n".join(f"| `{s.task_id}` | {s.worker} | {', '.join(s.upstream) or '-'} |" for s in plan.steps)
    return (
        f"{workflow.description.strip()}\n\n"
        f"**Template** `workflows/{workflow.workflow}.yaml`, version {workflow.version} · "
        f"**category** {workflow.category} · **owner** {workflow.owner}\n\n"
        f"| step | runs | needs |\n|---|---|---|\n{rows}\n"
    )


def _task(
    plan: StepPlan, workflow: Workflow, dag: DAG, roster: list[dict[str, Any]], tasks: dict, fanned: set[str]
) -> Any:
    step = plan.step
    kwargs = dict(
        task_id=step.id,
        dag=dag,
        workflow=workflow.workflow,
        instruction=step.instruction,
        agent=plan.agent.model_dump(mode="json") if plan.agent else None,
        skill=step.skill,
        output_spec=step.output
        if not isinstance(step.output, dict)
        else {name: f.model_dump(exclude_defaults=True) for name, f in step.output.items()},
        reads=list(plan.reads),
        fanned_reads=sorted(fanned & set(plan.reads)),
        when=step.when,
        output_retries=step.output_retries,
        usage_limits=step.usage_limits.model_dump(exclude_none=True) if step.usage_limits else None,
        template_version=workflow.version,
        context_keys={key: spec.strategy for key, spec in workflow.context.items()},
        context_writes=dict(step.writes),
        route=step.route.model_dump() if step.route else None,
        # A routed step's candidates; all agents when a for_each item may ask for more capabilities.
        roster=(roster if step.for_each else [a.model_dump(mode="json") for a in plan.candidates])
        if step.route
        else None,
        fan_out=plan.fan_out,
        concurrency=step.concurrency,
        partial_failure=step.partial_failure,
        escalate=_escalation(step),
        skill_args=dict(step.with_) or None,
        agent_timeout=_seconds(step.agent_timeout or workflow.defaults.agent_timeout),
        pool=plan.pool,
        pool_slots=plan.pool_slots,
        trigger_rule=step.trigger_rule,
        doc_md=step.description or None,
        **_retry_args(step),
    )
    if plan.fan_out is None or step.batch_size is None:
        return AgentOperator(**kwargs)  # a for_each without batch_size runs every item in one task
    # Batches of batch_size items, one mapped task each (they may run on different workers).
    batches = FanOutBatches(
        task_id=f"{step.id}__batches",
        dag=dag,
        source=plan.fan_out["source"],
        field=plan.fan_out["field"],
        batch_size=step.batch_size,
        retries=0,
        doc_md=f"Splits {plan.fan_out['source']}.{plan.fan_out['field']} into batches for `{step.id}`.",
    )
    tasks[plan.fan_out["source"]] >> batches
    return AgentOperator.partial(**kwargs).expand(batch=XComArg(batches))


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if value is not None else None


def _saga(plan: WorkflowPlan, dag: DAG, tasks: dict[str, Any]) -> SagaOperator | None:
    """The ``_compensate`` task after every other, when any step declares ``compensate``."""
    from baton.coordination.saga import SAGA_TASK, saga_parts

    workflow = plan.workflow
    parts = saga_parts(plan)
    if not parts["compensations"]:
        return None
    saga = SagaOperator(
        task_id=SAGA_TASK,
        dag=dag,
        workflow=workflow.workflow,
        template_version=workflow.version,
        trigger_rule="all_done",
        retries=0,  # each compensation retries itself; a failed run must not be undone twice over
        on_failure_callback=None,  # the failed step has alerted; a stuck compensation alerts itself
        doc_md="Runs when every step is done: skipped when none failed; otherwise undoes the completed "
        "steps that declare `compensate`, newest first, and fails so the run ends failed.",
        **parts,
    )
    for task in tasks.values():
        task >> saga
    return saga


def compensate_dag() -> DAG:
    """``baton_compensate``: undo the completed steps of any past Baton run, from the Airflow UI."""
    dag = DAG(
        dag_id=COMPENSATE_DAG_ID,
        description="Compensate a past Baton run: undo its completed steps, newest first",
        doc_md="Trigger with the id of a Baton run (any workflow): the steps it completed that declare "
        "`compensate` are undone newest first, skipping what an earlier saga already undid. The same "
        "as `baton compensate RUN_ID` on the command line.",
        schedule=None,
        start_date=START_DATE.replace(tzinfo=ZoneInfo("UTC")),
        catchup=False,
        tags=["baton", "operations"],
        params={
            "run_id": Param(
                "", type="string", minLength=1, title="Run id", description="the run to compensate"
            ),
            "reason": Param("", type="string", title="Reason", description="why (kept in the logs)"),
        },
        default_args={"owner": "baton"},
    )
    SagaOperator(task_id="compensate", dag=dag, workflow=COMPENSATE_DAG_ID, run_id_param="run_id", retries=0)
    return dag


def _escalation(step: Any) -> dict[str, Any] | None:
    if step.escalate is None:
        return None
    timeout = step.escalate.timeout
    return {**step.escalate.model_dump(mode="json"), "timeout": timeout.total_seconds() if timeout else None}


def build_dag(plan: WorkflowPlan) -> DAG:
    """Build the Airflow DAG of a planned workflow."""
    workflow = plan.workflow
    dag = DAG(
        dag_id=workflow.workflow,
        description=workflow.description.strip().splitlines()[0][:200],
        doc_md=_doc_md(workflow, plan),
        schedule=_schedule(workflow),
        start_date=START_DATE.replace(tzinfo=ZoneInfo(workflow.schedule.timezone)),
        catchup=workflow.schedule.catchup,
        tags=sorted({"baton", workflow.category, f"v{workflow.version}", *workflow.tags}),
        params={name: _param(field) for name, field in workflow.inputs.items()},
        default_args={
            "owner": workflow.owner,
            "on_failure_callback": on_task_failure,
            **_retry_args(workflow.defaults),
        },
        max_active_runs=workflow.max_active_runs,
        deadline=deadline_alerts(workflow),
    )
    roster = [agent.model_dump(mode="json") for agent in plan.roster]
    fanned = {s.task_id for s in plan.steps if s.fan_out}  # their reads join the batches
    tasks: dict[str, Any] = {}
    for s in _ordered(plan):
        tasks[s.task_id] = _task(s, workflow, dag, roster, tasks, fanned)
    for s in plan.steps:
        for upstream in s.upstream:
            tasks[upstream] >> tasks[s.task_id]
    _saga(plan, dag, tasks)
    return dag


def _ordered(plan: WorkflowPlan) -> list[StepPlan]:
    """The steps, every for_each source before the step that iterates over it."""
    done: set[str] = set()
    ordered: list[StepPlan] = []
    pending = list(plan.steps)
    while pending:
        for s in pending:
            if s.fan_out is None or s.fan_out["source"] in done:
                ordered.append(s)
                done.add(s.task_id)
                pending.remove(s)
                break
    return ordered
