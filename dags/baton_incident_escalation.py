"""Airflow DAG file of Baton's incident escalation: a person answers an incident on Airflow's Required
Actions page (issue 18).

A runbook's ``escalate`` step (``baton.ops.escalation``) triggers a run with the incident's id, subject and
evidence; ``ask`` waits for a person, who acknowledges the incident (no more messages, its escalations
skipped), stops its runbook, or leaves it to the runbook; ``apply`` records that as the incident's event
under their name. Unscheduled, and active from the start: it runs only when an incident asks.
"""

from datetime import datetime

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, task

OPTIONS = ["Acknowledge", "Stop the runbook", "Leave it to the runbook"]  # baton.ops.escalation.OPTIONS


@dag(
    dag_id="baton_incident_escalation",
    description="A person answers one of Baton's incidents on the Required Actions page",
    schedule=None,
    start_date=datetime(2026, 1, 1),
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
        task_id="ask", subject="{{ params.subject }}", body="{{ params.body }}", options=OPTIONS
    )

    @task
    def apply(answer: dict, params: dict | None = None) -> str:
        from baton.events import EventStore
        from baton.ops.escalation import apply_answer

        return apply_answer(EventStore.from_airflow(), params["incident_id"], answer)

    apply(ask.output)


baton_incident_escalation()
