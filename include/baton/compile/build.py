"""Plan -> Airflow DAG: the only module of the compiler that touches Airflow."""

from __future__ import annotations

import heapq
import logging
import os
import sys
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Asset, AssetWatcher, Param, XComArg

from baton.alerts import deadline_alerts, on_task_failure
from baton.assets import asset
from baton.compile.timetables import UniqueCronTrigger
from baton.coordination.tasks import SAGA_TASK, VERSION_TASK
from baton.operators.browser import BrowserOperator
from baton.operators.rollout import VersionOperator
from baton.operators.saga import SagaOperator
from baton.operators.step import FanOutBatches, StepOperator
from baton.plan import CompiledStep, WorkflowPlan
from baton.queue import RULE as PRIORITY_RULE
from baton.sensors.business import BusinessSensor
from baton.spec.evals import version_digest
from baton.spec.models import InputField, Workflow
from baton.spec.priority import PARAM as PRIORITY_PARAM
from baton.spec.priority import Priority
from baton.spec.step import RetryPolicy

COMPENSATE_DAG_ID = "baton_compensate"
SENSOR_SUFFIX = "__sensor"
SAGA_RETRIES = 3  # the _compensate task's: outlasts a worker's death and a database's restart or outage
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
            timetable=UniqueCronTrigger(cron, timezone=tz), assets=[sensor_asset(workflow.workflow)]
        )
    if cron is None or cron in _NOT_CRON:
        return cron
    return UniqueCronTrigger(cron, timezone=tz)


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
    rows = "\n".join(f"| `{s.task_id}` | {s.who} | {', '.join(s.upstream) or '-'} |" for s in plan.steps)
    return (
        f"{workflow.description.strip()}\n\n"
        f"**Template** `workflows/{workflow.workflow}.yaml`, version {workflow.version} · "
        f"**category** {workflow.category} · **owner** {workflow.owner}\n\n"
        f"| step | runs | needs |\n|---|---|---|\n{rows}\n"
    )


def _task(step: CompiledStep, dag: DAG, tasks: dict[str, Any], group: Any = None) -> Any:
    """The task of ``step``: a StepOperator (a BrowserOperator for browser actions), mapped over batches
    when its for_each has a batch_size. ``group``: the TaskGroup of a version being rolled out."""
    spec = step.spec
    kwargs = dict(
        task_id=spec.id,
        dag=dag,
        task_group=group,
        step=step,
        outlets=[asset(emit.asset) for emit in spec.emits],
        pool=step.pool,
        pool_slots=step.pool_slots,
        trigger_rule=spec.trigger_rule,
        doc_md=spec.description or None,
        **_retry_args(spec),
    )
    if spec.actions:
        return BrowserOperator(**kwargs)
    if step.fan_out is None or step.fan_out.batch_size is None:
        return StepOperator(**kwargs)  # a for_each without batch_size runs every item in one task
    # Batches of batch_size items, one mapped task each (they may run on different workers).
    fan_out = step.fan_out
    batches = FanOutBatches(
        task_id=f"{spec.id}__batches",
        dag=dag,
        task_group=group,
        source=step.task_of(fan_out.source),
        field=fan_out.field,
        batch_size=fan_out.batch_size,
        retries=0,
        doc_md=f"Splits {fan_out.source}.{fan_out.field} into batches for `{spec.id}`.",
    )
    tasks[step.task_of(fan_out.source)] >> batches
    return StepOperator.partial(**kwargs).expand(batch=XComArg(batches))


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
    spec["statement_timeout"] = sensor.spec.statement_timeout.total_seconds()
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
        deadline=_deadlines(
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


def _saga(plans: list[WorkflowPlan], dag: DAG, tasks: dict[str, Any]) -> SagaOperator | None:
    """The ``_compensate`` task after every other, when any step (of either version) declares ``compensate``."""
    sagas = [plan.saga() for plan in plans]
    saga = sagas[0].model_copy(
        update={
            "steps": {name: s for one in sagas for name, s in one.steps.items()},
            "agents": {name: a for one in sagas for name, a in one.agents.items()},
        }
    )
    if not saga.steps:
        return None
    task = SagaOperator(
        task_id=SAGA_TASK,
        dag=dag,
        workflow=plans[0].workflow.workflow,
        plan=saga,
        trigger_rule="all_done",
        # a try that dies (its worker killed, the store away beyond the reconnects) is tried again: what it
        # undid is recorded and skipped, an effect it made is reused by its key (baton.coordination.saga)
        retries=SAGA_RETRIES,
        retry_delay=timedelta(seconds=5),
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(minutes=1),
        on_failure_callback=None,  # the failed step has alerted; a stuck compensation alerts itself
        doc_md="Runs when every step is done: skipped when none failed; otherwise undoes the completed "
        "steps that declare `compensate`, newest first, and fails so the run ends failed.",
    )
    for upstream in tasks.values():
        upstream >> task
    return task


def _steps(plan: WorkflowPlan, dag: DAG, group: Any = None) -> dict[str, Any]:
    """The tasks of the plan's steps (in ``group``, for a version being rolled out), wired by ``needs``."""
    tasks: dict[str, Any] = {}
    for step in _ordered(plan):
        tasks[step.task_id] = _task(step, dag, tasks, group)
    for s in plan.steps:
        for upstream in s.upstream:
            tasks[s.task_of(upstream)] >> tasks[s.task_id]
    return tasks


def _rollout(
    plan: WorkflowPlan, canary: WorkflowPlan, dag: DAG, tasks: dict[str, Any], gated: bool = False
) -> dict[str, Any]:
    """The new version's tasks in their task group, and the ``baton_version`` task before both versions'
    first steps: it picks the run's version and skips the other's tasks (``gated``: the rollout starts only
    once the new version, as built here, passed the workflow's evaluation dataset)."""
    from airflow.sdk import TaskGroup

    stable, new = plan.workflow.version, canary.workflow.version
    group = TaskGroup(
        group_id=canary.steps[0].group, dag=dag, tooltip=f"version {new}, rolled out to a share of the runs"
    )
    canary_tasks = _steps(canary, dag, group)
    chooser = VersionOperator(
        task_id=VERSION_TASK,
        dag=dag,
        workflow=plan.workflow.workflow,
        stable=stable,
        canary=new,
        group=group.group_id,
        rollout=plan.workflow.rollout,
        gate=version_digest(canary.workflow) if gated else None,
        own_tasks=[SAGA_TASK],
        retries=2,
        doc_md=f"Picks the version of this run (v{stable}, or v{new} for its share of the runs while its "
        "guardrails hold) and skips the other version's tasks: `baton rollout` shows the rollout.",
    )
    for steps, built in ((plan.steps, tasks), (canary.steps, canary_tasks)):
        for step in steps:
            if not step.upstream:
                chooser >> built[step.task_id]
    return canary_tasks


log = logging.getLogger(__name__)


def under_dags_test() -> bool:
    """Whether this process is ``airflow dags test``."""
    argv = sys.argv
    program = os.path.basename(argv[0]) if argv else ""
    return program in ("airflow", "__main__.py") and argv[1:3] == ["dags", "test"]


def _deadlines(workflow: Any) -> Any:
    """The workflow's Deadline Alerts, except under ``airflow dags test``: Airflow 3.3.2's ``dags test``
    serialises the DAG in memory, so a run's ``dag.deadline`` holds encoded alerts where the scheduler's
    holds the ids the dag processor stored, and a run that succeeds then fails in ``DagRun.update_state``
    (``'dict' object has no attribute 'hex'``). There the run goes on without them, and the log says so."""
    alerts = deadline_alerts(workflow)
    if alerts and under_dags_test():
        log.warning(
            "%s: its deadlines are left out of `airflow dags test` (Airflow 3.3.2 fails a successful test run "
            "that has Deadline Alerts: 'dict' object has no attribute 'hex'); they hold under the scheduler "
            "(make run, or airflow dags trigger)",
            workflow.workflow,
        )
        return None
    return alerts


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


def build_dag(plan: WorkflowPlan, canary: WorkflowPlan | None = None, gated: bool = False) -> DAG:
    """Build the Airflow DAG of a planned workflow; with ``canary``, the plan of the version it rolls out
    to (planned in its task group), beside it: ``gated`` when the workflow has an evaluation dataset, which
    that version must pass before its rollout starts."""
    workflow = plan.workflow
    schedule = _schedule(workflow)
    dag = DAG(
        dag_id=workflow.workflow,
        description=workflow.description.strip().splitlines()[0][:200],
        doc_md=_doc_md(workflow, plan),
        schedule=schedule,
        start_date=START_DATE.replace(tzinfo=ZoneInfo(workflow.schedule.timezone)),
        catchup=workflow.schedule.catchup,
        tags=sorted({"baton", workflow.category, *_version_tags(workflow, canary), *workflow.tags}),
        params={name: _param(field) for name, field in workflow.inputs.items()} | _priority_param(workflow),
        default_args={
            "owner": workflow.owner,
            "on_failure_callback": on_task_failure,
            **_retry_args(workflow.defaults),
            # Airflow's queue by what the run is worth (baton.queue): the level is the tasks' weight
            # of Airflow's own, the rule turns it, the deadline and the predicted duration into the weight used.
            "weight_rule": PRIORITY_RULE,  # by name: see baton.queue.BatonPriority
            "priority_weight": (workflow.priority or Priority()).level,
        },
        max_active_runs=workflow.max_active_runs,
        deadline=_deadlines(workflow),
    )
    tasks = _steps(plan, dag)
    plans = [plan]
    if canary is not None:
        tasks |= _rollout(plan, canary, dag, tasks, gated)
        plans.append(canary)
    _saga(plans, dag, tasks)
    return dag


def _priority_param(workflow: Workflow) -> dict[str, Param]:
    """``baton_priority``: the level a triggered run may set, within the template's ``allow`` (Airflow checks a
    trigger's conf against its schema); only for a template that declares ``priority``."""
    if workflow.priority is None:
        return {}
    return {PRIORITY_PARAM: Param(workflow.priority.level, **workflow.priority.param_schema())}


def _version_tags(workflow: Workflow, canary: WorkflowPlan | None) -> list[str]:
    """``v<N>``: the template's version (each change of the DAG is also a new Airflow DAG version); while a
    rollout runs, the new version's too, and ``rollout``."""
    if canary is None:
        return [f"v{workflow.version}"]
    return [f"v{workflow.version}", f"v{canary.workflow.version}", "rollout"]


def _ordered(plan: WorkflowPlan) -> list[CompiledStep]:
    """The steps in template order, except that every for_each source comes before the step that
    iterates over it (its task must exist when the batches task is wired to it): a topological sort
    that keeps the template's order among the steps that are ready (linear but for the heap)."""
    index = {s.spec.id: i for i, s in enumerate(plan.steps)}
    waiting: dict[str, list[int]] = {}
    ready: list[int] = []
    for i, s in enumerate(plan.steps):
        source = s.fan_out.source if s.fan_out else None
        if source in index and source != s.spec.id:
            waiting.setdefault(source, []).append(i)
        else:
            ready.append(i)
    ordered: list[CompiledStep] = []
    while ready:
        step = plan.steps[heapq.heappop(ready)]
        ordered.append(step)
        for i in waiting.pop(step.spec.id, []):
            heapq.heappush(ready, i)
    return ordered
