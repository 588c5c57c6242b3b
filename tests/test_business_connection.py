"""One message, wherever Baton needs a database connection that is not defined: the sensors, the
invoice ledger, the compliance sweep and ``python -m demo.business`` all say which connection and how to define it."""

from __future__ import annotations

import pytest
from demo.skills.finance import ComplianceRule, SweepImpossible, _breaking_payments
from demo.skills.invoices import ledger_engine

from baton.errors import ConnectionNotDefined, SkillError
from baton.hooks.business import database_url
from baton.registry import SkillRequest

HOW = (
    "create it as a postgres or sqlite connection to {what} (Admin > Connections, or "
    "AIRFLOW_CONN_{ID}='postgresql://user:password@host:5432/db')"
)


@pytest.fixture
def undefined(monkeypatch):
    """No business connection in this process's environment (scripts/env.sh defines one)."""
    monkeypatch.delenv("AIRFLOW_CONN_BATON_BUSINESS", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_LEDGER_DB", raising=False)


def test_database_url_names_the_connection_and_how_to_define_it(undefined):
    with pytest.raises(ConnectionNotDefined) as caught:
        database_url("ledger_db", "the ledger")
    assert caught.value.conn_id == "ledger_db"
    assert str(caught.value) == "connection 'ledger_db' is not defined: " + HOW.format(
        what="the ledger", ID="LEDGER_DB"
    )


def test_the_compliance_sweep_fails_for_good_with_that_message(undefined):
    rule = ComplianceRule(
        large_usd=1, sanctioned=["KP"], spec={"conn_id": "baton_business", "table": "payments"}
    )
    with pytest.raises(SweepImpossible) as caught:
        _breaking_payments(rule)
    assert str(caught.value) == "compliance sweep: connection 'baton_business' is not defined: " + HOW.format(
        what="the business database", ID="BATON_BUSINESS"
    )


def test_the_invoice_ledger_says_which_step_and_connection(undefined):
    request = SkillRequest(
        workflow="invoice_processing",
        step="post_entry",
        instruction="",
        inputs={},
        args={"conn_id": "ledger_db"},
    )
    with pytest.raises(SkillError) as caught:
        ledger_engine(request)
    assert str(caught.value) == "step 'post_entry': connection 'ledger_db' is not defined: " + HOW.format(
        what="the business database with the ledger", ID="LEDGER_DB"
    )


def test_the_demo_database_script_without_the_connection_exits_1_with_the_message(undefined, capsys):
    from demo.business import main

    assert main([]) == 1
    assert capsys.readouterr().err.strip() == (
        "demo business database: connection 'baton_business' is not defined: "
        + HOW.format(what="the demo business database", ID="BATON_BUSINESS")
    )
