"""compliance_findings reads its rule from the template (``with.rule``, the anchor of the sensor's
``rule_match``): the sweep selects with it, and its threshold and sanctioned countries decide each
finding's reasons and severity. Edit the rule in the YAML and the sensor and the sweep change together."""

from __future__ import annotations

import copy

import pytest
import yaml
from demo.business import create
from demo.skills.finance import compliance_findings

from baton.errors import FinalSkillError
from baton.registry import SkillRequest
from tests.conftest import DAGS

TEMPLATE = yaml.safe_load((DAGS / "workflows" / "compliance_monitoring.yaml").read_text())


def _request(rule, trigger=None) -> SkillRequest:
    return SkillRequest(
        workflow="compliance_monitoring",
        step="review_payments",
        instruction="",
        inputs={},
        args={"rule": rule},
        trigger=trigger or {},
    )


@pytest.fixture
def business(tmp_path, monkeypatch):
    """The demo business database (SQLite) as the connection the rule names."""
    url = f"sqlite:///{tmp_path / 'business.db'}"
    create(url)
    monkeypatch.setenv("AIRFLOW_CONN_BATON_BUSINESS", url)
    return url


def test_the_step_is_given_the_sensors_own_rule():
    (step,) = [s for s in TEMPLATE["steps"] if s["id"] == "review_payments"]
    assert step["with"]["rule"] == TEMPLATE["trigger"]["sensor"]["rule_match"]


def test_an_edited_rule_changes_the_sweep_its_reasons_and_severities(business):
    rule = copy.deepcopy(TEMPLATE["trigger"]["sensor"]["rule_match"])
    bundled = compliance_findings(_request(rule))
    assert bundled["rule"] == "baton_business:payments sweep large_or_sanctioned"
    assert bundled["count"] == 6 and {f["severity"] for f in bundled["findings"]} == {"high"}
    assert bundled["findings"][0]["reasons"] == ["amount 12,500 USD >= 10,000"]

    rule["any"] = [
        {"column": "amount", "op": ">=", "value": 12000},
        {"column": "country", "op": "in", "value": ["GB"]},
    ]
    rule["batch_size"] = 2  # the sweep pages through the table, two rows at a time
    edited = compliance_findings(_request(rule))
    # include/demo/payments.json: to GB (critical, largest first), or 12,000 USD and more (high)
    assert [(f["payment"], f["severity"]) for f in edited["findings"]] == [
        ("P-2016", "critical"),
        ("P-2037", "critical"),
        ("P-2014", "critical"),
        ("P-2036", "critical"),
        ("P-2019", "critical"),
        ("P-2020", "critical"),
        ("P-2010", "critical"),
        ("P-2021", "high"),
        ("P-2022", "high"),
        ("P-2028", "high"),
        ("P-2032", "high"),
        ("P-2035", "high"),
    ]
    assert edited["findings"][0]["reasons"] == ["amount 12,500 USD >= 12,000", "sanctioned country GB"]
    assert edited["findings"][1]["reasons"] == ["sanctioned country GB"]


def test_the_sensors_rows_are_judged_by_the_same_rule(business):
    rule = TEMPLATE["trigger"]["sensor"]["rule_match"]
    rows = [{"id": "P-1", "customer": "C-1", "country": "SY", "amount": 15000.0, "currency": "USD"}]
    found = compliance_findings(_request(rule, {"rows": rows, "source": "sensor rule_match"}))
    assert found["findings"][0]["severity"] == "critical"
    assert found["findings"][0]["reasons"] == ["amount 15,000 USD >= 10,000", "sanctioned country SY"]
    assert found["rule"] == "sensor rule_match"


def test_a_step_without_the_rule_fails_for_good_naming_the_fix():
    with pytest.raises(FinalSkillError) as caught:
        compliance_findings(_request({"any": [{"column": "amount", "op": ">", "value": 5}]}))
    assert str(caught.value).startswith("step 'review_payments': with.rule must be the payments rule")
    assert str(caught.value).endswith("(fix: `rule: *rule`, the anchor of trigger.sensor.rule_match)")
