"""compliance_monitoring's scheduled sweep, the bundled template in ``dag.test()``: every payment of
a PostgreSQL business database checked against the rule, the findings reported critical first and
posted to Slack; a business database without its tables fails the sweep with the fix. (The sensor
path runs on a real Airflow in tests/integration/test_triggers.py.)"""

from __future__ import annotations

import pytest
from demo.business import add, payments

from tests.conftest import DAGS, run_dag_test_in_subprocess
from tests.slack_recorder import SlackRecorder

pytestmark = pytest.mark.integration

LARGE = ["P-2016", "P-2021", "P-2022", "P-2028", "P-2032", "P-2035"]  # include/demo/payments.json, >= 10,000


@pytest.fixture(scope="module")
def sweeps(airflow_db, business_db, tmp_path_factory):
    pg_url = business_db
    sanctioned = {"id": "P-7001", "customer": "C-7", "country": "KP", "amount": 80.0}
    add(pg_url, payments, [{**sanctioned, "currency": "USD", "day": "2026-11-21"}])
    empty = tmp_path_factory.mktemp("empty") / "business.db"
    with SlackRecorder() as slack:
        pg = pg_url.replace("postgresql+psycopg://", "postgres://")
        env = {"AIRFLOW_CONN_BATON_SLACK": slack.connection, "AIRFLOW_CONN_BATON_BUSINESS": pg}
        swept = run_dag_test_in_subprocess(DAGS, "dags-folder", "compliance_monitoring", env=env)
        env["AIRFLOW_CONN_BATON_BUSINESS"] = f"sqlite:///{empty}"
        broken = run_dag_test_in_subprocess(DAGS, "dags-folder", "compliance_monitoring", env=env)
        posts = list(slack.posts)
    return swept, broken, posts


def test_the_sweep_finds_every_breaking_payment_critical_first_and_posts_them(sweeps):
    (run, results, output), _, posts = sweeps
    assert {task: state for task, (state, _) in results.items()} == {
        "review_payments": "success",
        "alert_findings": "success",
    }, output[-3000:]
    report = results["review_payments"][1]
    assert [(f["payment"], f["severity"]) for f in report["findings"]] == [
        ("P-7001", "critical"),
        *((payment, "high") for payment in LARGE),
    ]
    assert (report["count"], report["total_amount"]) == (7, 75080.0)
    assert report["rule"] == "baton_business:payments sweep large_or_sanctioned"
    assert report["findings"][0]["reasons"] == ["sanctioned country KP"]
    (post,) = [p for p in posts if run.run_id in p["text"]]
    assert post["text"].startswith(":rotating_light: *Baton: compliance findings*")
    assert (
        "7 payment(s) break baton_business:payments sweep large_or_sanctioned (75080.0 USD):" in post["text"]
    )
    assert "P-7001 critical (sanctioned country KP)" in post["text"]


def test_a_business_database_without_its_tables_fails_the_sweep_with_the_fix(sweeps):
    _, (run, results, output), posts = sweeps
    assert {task: state for task, (state, _) in results.items()} == {
        "review_payments": "failed",
        "alert_findings": "upstream_failed",
    }, output[-3000:]
    assert (
        "compliance sweep: cannot read the payments of connection 'baton_business' (OperationalError: no such "
        "table: payments). Point the connection at the business database, or create the demo one with "
        "`python -m demo.business`."
    ) in output
    (alert,) = [p for p in posts if run.run_id in p["text"]]
    assert "*Step:* `review_payments`" in alert["text"] and "SweepImpossible" in alert["text"]
