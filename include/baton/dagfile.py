"""The DAGs of a dags folder, for the one file a user's dags folder needs (``baton init`` writes it)::

    from baton.dagfile import load
    globals().update(load(__file__))

``load`` gives every DAG Baton makes of the folder the file is in: one per healthy template of
``workflows/``, the DAG that compensates a past run, the monitor (``baton_monitor``) and the incident
escalation (``baton_incident_escalation``). Broken templates do not take the healthy ones down: Airflow
marks every DAG of a file that has an import error stale, so in this one file they are not an import error
but the DAG ``baton_template_errors``, present while a template is broken, whose description names each
broken file and whose one task fails with every error (file, line, key path, fix) when run; ``baton
validate`` prints the same messages. This repository's own dags folder keeps a file per job instead
(``dags/``: the template errors there are the import error of a file of their own).

The monitor and escalation DAGs are defined here (``monitor_dag``, ``incident_escalation_dag``) for both.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Param, dag, get_parsing_context, task
from airflow.sdk.exceptions import AirflowFailException

from baton.compile.build import COMPENSATE_DAG_ID, compensate_dag
from baton.compile.loader import ERRORS_DAG_ID, compile_folder
from baton.errors import BatonError, TemplateError

if TYPE_CHECKING:
    from baton.events.store import EventStore

log = logging.getLogger(__name__)

MONITOR_DAG_ID = "baton_monitor"
ESCALATION_DAG_ID = "baton_incident_escalation"
TICK = timedelta(minutes=1)
ESCALATION_OPTIONS = [
    "Acknowledge",
    "Stop the runbook",
    "Leave it to the runbook",
]  # ops.monitor.paging.OPTIONS
START = datetime(2026, 1, 1)
MAX_ERRORS_TEXT = 100_000  # characters of errors the errors DAG carries (its description names every file)


def monitor_tick(folder: Path) -> timedelta:
    """monitoring.yaml's ``tick``, read when Airflow parses the DAG file, and only when the folder has one.
    A broken monitoring.yaml leaves the minute: the DAG still loads, and each of its runs fails with the
    file's errors, their key paths and fixes."""
    if not (folder / "monitoring.yaml").is_file():
        return TICK
    try:
        return _monitoring(folder).tick
    except (BatonError, OSError):
        return TICK


def _monitoring(folder: Path) -> Any:
    """The folder's ``monitoring.yaml`` (the defaults without one); its errors raised."""
    from baton.spec.monitoring import load_config  # deferred: most parses never read it

    return load_config(folder)


def _store() -> EventStore:
    """Baton's event store, for a task's run."""
    from baton.events.store import EventStore  # deferred: a task loads the store; parsing the file does not

    return EventStore.from_airflow()


def _celery_broker() -> str | None:
    """The Celery executor's broker, where Airflow runs that executor: the monitor watches it restart."""
    from airflow.configuration import conf  # deferred: read when a run ticks, not when the file is parsed

    if "CeleryExecutor" not in conf.get("core", "executor", fallback=""):
        return None
    return conf.get("celery", "broker_url", fallback=None)


def monitor_dag(folder: Path) -> DAG:
    """``baton_monitor``: runs every minute, or every ``tick`` of the folder's ``monitoring.yaml``.

    Each run folds the events since the last into signals, runs the detectors of ``monitoring.yaml`` (or
    the defaults), opens, updates and resolves incidents, carries out their runbooks and posts to Slack:
    see ``baton.ops.monitor``. One run at a time; a late run is not caught up (the next one covers it).
    """

    @dag(
        dag_id=MONITOR_DAG_ID,
        description="Baton's monitor: signals, anomaly detection, incidents and their runbooks, every tick",
        schedule=monitor_tick(folder),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["baton", "operations"],
        default_args={"owner": "baton", "retries": 0, "execution_timeout": timedelta(minutes=5)},
    )
    def baton_monitor():
        @task
        def tick() -> dict:
            from baton.ops.monitor.loop import tick  # deferred: the monitor (scipy) loads when a run ticks

            report = tick(_store(), _monitoring(folder), dags=folder, broker_url=_celery_broker())
            return {
                "events_folded": report.folded,
                "anomalies": [f"{a.kind}@{a.where}" for a in report.anomalies],
                "transitions": [f"{t.type} {t.where}" for t in report.transitions],
                "actions": [f"{a.do} {a.target}: {outcome}" for a, outcome in report.actions],
                "notified": report.notified,
            }

        tick()

    return baton_monitor()


def incident_escalation_dag() -> DAG:
    """``baton_incident_escalation``: a person answers one of Baton's incidents on the Required Actions page.

    A runbook's ``escalate`` step (``baton.ops.monitor.paging``) triggers a run with the incident's id, subject
    and evidence; ``ask`` waits for a person, who acknowledges the incident (no more messages, its
    escalations skipped), stops its runbook, or leaves it to the runbook; ``apply`` records that as the
    incident's event under their name. Unscheduled, and active from the start: it runs only when asked.
    """

    @dag(
        dag_id=ESCALATION_DAG_ID,
        description="A person answers one of Baton's incidents on the Required Actions page",
        schedule=None,
        start_date=START,
        catchup=False,
        is_paused_upon_creation=False,
        max_active_runs=16,
        tags=["baton", "operations"],
        default_args={"owner": "baton", "retries": 0},
        params={
            "incident_id": Param("inc-000000000000", type="string", pattern=r"^inc-[0-9a-f]{12}$"),
            "subject": Param("An incident", type="string", minLength=1, maxLength=300),
            "body": Param("", type="string", maxLength=4000),
        },
    )
    def baton_incident_escalation():
        ask = HITLOperator(
            task_id="ask",
            subject="{{ params.subject }}",
            body="{{ params.body }}",
            options=ESCALATION_OPTIONS,
        )

        @task
        def apply(answer: dict, params: dict | None = None) -> str:
            from baton.ops.monitor.paging import apply_answer  # deferred: loaded when a person has answered

            return apply_answer(_store(), params["incident_id"], answer)

        apply(ask.output)

    return baton_incident_escalation()


def template_errors_dag(errors: list[TemplateError], loaded: int) -> DAG:
    """A DAG that reports the broken templates without an import error: its description names the files,
    its documentation holds every error, and its one task fails with them all when run."""
    text = "\n\n".join(str(error) for error in errors)
    if len(text) > MAX_ERRORS_TEXT:  # the DAG is serialised into Airflow's database: a bounded size
        cut = len(text) - MAX_ERRORS_TEXT
        text = (
            text[:MAX_ERRORS_TEXT]
            + f"\n... and {cut:,} more characters: run `baton validate` for all of them"
        )
    files = sorted({issue.file for error in errors for issue in error.issues if issue.file})
    summary = f"{len(files) or len(errors)} broken template(s), {loaded} loaded: " + ", ".join(files)
    with DAG(
        dag_id=ERRORS_DAG_ID,
        description=summary[:1000],
        doc_md="Fix these templates (`baton validate` prints the same):\n\n```text\n" + text + "\n```",
        schedule=None,
        start_date=START,
        catchup=False,
        is_paused_upon_creation=True,
        tags=["baton", "template-errors"],
    ) as errors_dag:

        @task(task_id="report")
        def report() -> None:
            raise AirflowFailException("Broken Baton templates (fix them, then this DAG goes away):\n" + text)

        report()
    return errors_dag


def load(dag_file: str | Path) -> dict[str, DAG]:
    """Every DAG of the folder ``dag_file`` is in (see the module's docstring). When Airflow runs a task it
    parses the file for that task's DAG only, and only that one is built."""
    folder = Path(dag_file).resolve().parent
    wanted = get_parsing_context().dag_id
    if wanted == COMPENSATE_DAG_ID:  # its task needs no template: it reads the past run from the store
        return {COMPENSATE_DAG_ID: compensate_dag()}
    if wanted == MONITOR_DAG_ID:
        return {MONITOR_DAG_ID: monitor_dag(folder)}
    if wanted == ESCALATION_DAG_ID:
        return {ESCALATION_DAG_ID: incident_escalation_dag()}
    if wanted == ERRORS_DAG_ID:
        healthy, errors = compile_folder(folder, build=False)
        return {ERRORS_DAG_ID: template_errors_dag(errors, loaded=len(healthy))} if errors else {}
    dags, errors = compile_folder(folder)
    for error in errors:
        log.warning("Skipped a broken template; see the DAG %s:\n%s", ERRORS_DAG_ID, error)
    if errors:
        dags[ERRORS_DAG_ID] = template_errors_dag(errors, loaded=len(dags))
    if wanted is None:
        dags[COMPENSATE_DAG_ID] = compensate_dag()
        dags[MONITOR_DAG_ID] = monitor_dag(folder)
        dags[ESCALATION_DAG_ID] = incident_escalation_dag()
    return dags
