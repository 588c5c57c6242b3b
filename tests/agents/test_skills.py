"""The skill runner: a skill's final failure is one Airflow does not retry, under the skill's own name."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from demo.skills.invoices import InvalidInvoice

from baton.agents.skills import run_skill

SCOPE = {"inputs": {"invoice": "bad_adatum_AD-551.txt"}, "steps": {}, "run": {"id": "r1"}, "context": {}}


def test_a_final_skill_error_fails_the_task_without_a_retry_and_keeps_its_name():
    with pytest.raises(InvalidInvoice) as caught:
        run_skill(
            "extract_invoice", workflow="w", step_id="extract", output_spec=None, instruction="", scope=SCOPE
        )
    error = caught.value
    assert isinstance(error, AirflowFailException)  # Airflow fails the task at once: no retry
    assert type(error).__name__ == "InvalidInvoice"
    assert str(error) == "invoice bad_adatum_AD-551.txt: no total found (a line 'Total: ...')"
