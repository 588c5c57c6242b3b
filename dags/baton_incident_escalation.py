"""Airflow DAG file of Baton's incident escalation: a person answers an incident on Airflow's Required
Actions page (``baton.dagfile.incident_escalation_dag``).

A runbook's ``escalate`` step (``baton.ops.monitor.paging``) triggers a run with the incident's id, subject and
evidence; a person acknowledges the incident, stops its runbook, or leaves it to the runbook.
"""

from baton.dagfile import incident_escalation_dag

incident_escalation_dag()
