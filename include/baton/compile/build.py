"""Plan -> Airflow DAG: the only module of the compiler that touches Airflow."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Asset, AssetWatcher, CronTriggerTimetable, Param, XComArg

from baton.alerts import deadline_alerts, on_task_failure
from baton.assets import asset
from baton.compile.plan import StepPlan, WorkflowPlan
from baton.operators.agent import AgentOperator, FanOutBatches
from baton.operators.browser import BrowserOperator
from baton.operators.saga import SagaOperator
from baton.operators.sensor import BusinessSensor
from baton.spec.models import InputField, RetryPolicy, Workflow

COMPENSATE_DAG_ID = "baton_compensate"
SENSOR_SUFFIX = "__sensor"
# Airflow's own retry and timeout arguments; agent_timeout is Baton's (one agent call).
_AIRFLOW_RETRY_ARGS = set(RetryPolicy.model_fields) - {"agent_timeout"}

START_DATE = datetime(2025, 1, 1)
_NOT_CRON = ("@once", "@continuous")


def _queue_asset(queue: Any) -> Asset:
    """An asset watched on a Redis channel: each message starts a run (common-messaging's trigger)."""
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    trigger = MessageQueueTrigger(
        scheme="redis+pubsub",
        channels=[queue.redis_channel],
        redis_conn_id=queue.conn_id,
        poll_interval=queue.poll_interval.total_seconds(),
    )
    name = f"queue.{queue.redis_channel}"
    return Asset(
        name=name,
        uri=f"redis+pubsub://{queue.conn_id}/{queue.redis_channel}",
        group="baton",
        watchers=[AssetWatcher(name=f"baton_watch_{queue.redis_channel}".replace(".", "_"), trigger=trigger)],
    )


def _schedule(workflow: Workflow) -> Any:
    trigger = workflow.trigger
    if trigger is not None and trigger.asset:
        return [asset(name) for name in trigger.asset]
    if trigger is not None and trigger.queue:
        return [_queue_asset(trigger.queue)]
    cron, tz = workflow.schedule.cron, workflow.schedule.timezone
    if trigger is not None and trigger.sensor:
        # Its sensor DAG emits the asset when the condition holds; a cron schedule may run it too.
        if cron is None:
            return [sensor_asset(workflow.workflow)]
        from airflow.sdk import AssetOrTimeSchedule

        return AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(cron, timezone=tz), assets=[sensor_asset(workflow.workflow)]
        )
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
        emits=[emit.model_dump(mode="json") for emit in step.emits] or None,
        outlets=[asset(emit.asset) for emit in step.emits],
        trigger_kind=_trigger_kind(workflow),
        agent_timeout=_seconds(step.agent_timeout or workflow.defaults.agent_timeout),
        pool=plan.pool,
        pool_slots=plan.pool_slots,
        trigger_rule=step.trigger_rule,
        doc_md=step.description or None,
        **_retry_args(step),
    )
    if step.browser:
        actions = [action.model_dump(mode="json") for action in step.browser]
        return BrowserOperator(**kwargs, browser_actions=actions)
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


def _trigger_kind(workflow: Workflow) -> str | None:
    trigger = workflow.trigger
    if trigger is None:
        return None
    return "sensor" if trigger.sensor else "asset" if trigger.asset else "queue"


def sensor_asset(workflow: str) -> Any:
    """The asset a workflow's sensor DAG emits (its extra: what the sensor found)."""
    return asset(f"sensor.{workflow}")


def sensor_dag(workflow: Workflow) -> DAG | None:
    """``<workflow>__sensor``: one run always waiting (deferred in the triggerer, holding no worker
    slot) for the template's sensor; when it fires, it moves the sensor's mark and emits the asset
    that starts the workflow with what it found. Manual runs of the workflow never queue behind it."""
    if workflow.trigger is None or workflow.trigger.sensor is None:
        return None
    sensor = workflow.trigger.sensor
    spec = sensor.spec.model_dump(mode="json")
    spec["poke_interval"] = sensor.spec.poke_interval.total_seconds()
    spec["timeout"] = sensor.spec.timeout.total_seconds()
    where = f"`{spec['table']}`" if spec.get("table") else "a query"
    dag = DAG(
        dag_id=f"{workflow.workflow}{SENSOR_SUFFIX}",
        description=f"Waits for {sensor.kind} on {spec.get('table') or 'a query'}, then starts "
        f"{workflow.workflow}",
        doc_md=f"The sensor of [{workflow.workflow}](/dags/{workflow.workflow}): waits in the triggerer for "
        f"`{sensor.kind}` on {where} (connection `{spec['conn_id']}`, every {spec['poke_interval']:g} s), "
        f"then emits the asset `sensor.{workflow.workflow}` with what it found, which starts the workflow.",
        schedule="@continuous",
        max_active_runs=1,
        start_date=START_DATE.replace(tzinfo=ZoneInfo("UTC")),
        catchup=False,
        tags=sorted({"baton", "sensor", workflow.category, *workflow.tags}),
        params={name: _param(field) for name, field in workflow.inputs.items()},  # the threshold's
        default_args={"owner": workflow.owner, "on_failure_callback": on_task_failure},
        # A run waits at most the sensor's timeout; one still going well after it is stuck: alert.
        deadline=deadline_alerts(
            workflow.model_copy(
                update={
                    "workflow": f"{workflow.workflow}{SENSOR_SUFFIX}",
                    "deadline": sensor.spec.timeout + timedelta(minutes=10),
                    "steps": [],
                }
            )
        ),
    )
    BusinessSensor(
        task_id=f"wait_for_{sensor.kind}",
        dag=dag,
        workflow=workflow.workflow,
        kind=sensor.kind,
        spec=spec,
        key_path=f"trigger.sensor.{sensor.kind}",
        template_version=workflow.version,
        outlets=[sensor_asset(workflow.workflow)],
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    return dag


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
    schedule = _schedule(workflow)
    dag = DAG(
        dag_id=workflow.workflow,
        description=workflow.description.strip().splitlines()[0][:200],
        doc_md=_doc_md(workflow, plan),
        schedule=schedule,
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
