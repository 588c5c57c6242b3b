"""supply_chain in real ``dag.test()`` runs, offline on include/demo/supply/: the central warehouse's
reorder (the supplier and finance agents adjust the same draft at once, merged), and the coastal
warehouse, where no supplier can deliver a SKU before it runs out (a failure with its alert).
"""

from __future__ import annotations

import json

import pytest

from baton.context import ContextStore
from baton.events import EventStore
from tests.conftest import DAGS, run_dag_test_in_subprocess

DAG_ID = "supply_chain"


@pytest.fixture(scope="module")
def central(slack, airflow_db):
    env = {"AIRFLOW_CONN_BATON_SLACK": slack.connection}
    return run_dag_test_in_subprocess(DAGS, "dags-folder", DAG_ID, {"warehouse": "central"}, env=env)


@pytest.fixture(scope="module")
def coastal(slack, airflow_db):
    env = {"AIRFLOW_CONN_BATON_SLACK": slack.connection}
    return run_dag_test_in_subprocess(DAGS, "dags-folder", DAG_ID, {"warehouse": "coastal"}, env=env)


def _events(run_id: str, *types: str) -> list:
    return list(EventStore.from_airflow().read(run_id, types=list(types) or None))


def _orders(run_id: str):
    return ContextStore(EventStore.from_airflow()).get(run_id, "orders")


ALL_SUCCESS = {
    "check_inventory": "success",
    "source_suppliers": "success",
    "adjust_orders": "success",
    "decide_orders": "success",
}
# The central warehouse's SKUs below their reorder point, as the decision approves them.
FINAL_ORDERS = {
    "SKU-100": {
        "name": "Steel bolts M8 (box of 100)",
        "on_hand": 40,
        "reorder_point": 100,
        "days_to_stockout": 5.0,
        "qty": 221,
        "supplier": "Acme Fasteners",
        "unit_price": 12.5,
        "lead_time_days": 3,
        "moq": 200,
        "moq_qty": 260,
        "budget_qty": 221,
        "cost": 2762.5,
        "status": "approved",
    },
    "SKU-200": {
        "name": "Hydraulic hose 2 m",
        "on_hand": 12,
        "reorder_point": 20,
        "days_to_stockout": 6.0,
        "qty": 40,
        "supplier": "HydroParts",
        "unit_price": 45.0,
        "lead_time_days": 4,
        "moq": 20,
        "moq_qty": 48,
        "budget_qty": 40,
        "cost": 1800.0,
        "status": "approved",
    },
    "SKU-400": {  # Rollwell's minimum is 100, the budget allows 76: FlexBear sells 50 or more in time
        "name": "Ball bearing 6204",
        "on_hand": 30,
        "reorder_point": 50,
        "days_to_stockout": 10.0,
        "qty": 76,
        "supplier": "FlexBear",
        "unit_price": 18.4,
        "lead_time_days": 8,
        "moq": 50,
        "moq_qty": 100,
        "budget_qty": 76,
        "cost": 1398.4,
        "status": "approved",
    },
}


def test_the_skus_below_their_reorder_point_are_ordered_within_moq_and_budget(central):
    run, results, _ = central
    assert run.state == "success" and run.task_states == ALL_SUCCESS
    check = results["check_inventory"][1]
    assert (check["warehouse"], check["checked"]) == ("central", 5)
    assert check["below_reorder_point"] == ["SKU-100", "SKU-200", "SKU-400"]  # not SKU-300, SKU-500
    sourced = results["source_suppliers"][1]
    assert (sourced["draft_cost"], sourced["budget"]) == (7030.0, 6000.0)  # 260x12.50 + 48x45 + 90x18

    decision = results["decide_orders"][1]
    assert [(o["sku"], o["qty"], o["supplier"], o["cost"]) for o in decision["orders"]] == [
        ("SKU-100", 221, "Acme Fasteners", 2762.5),
        ("SKU-200", 40, "HydroParts", 1800.0),
        ("SKU-400", 76, "FlexBear", 1398.4),
    ]
    assert (decision["total_cost"], decision["budget"], decision["remaining"]) == (5960.9, 6000.0, 39.1)
    assert [o["note"] for o in decision["orders"]] == [
        "cut from 260 to 221 to fit the budget",
        "cut from 48 to 40 to fit the budget",
        "Rollwell sells no fewer than 100 and the budget allows 76: 76 from FlexBear (minimum 50, 8 days)",
    ]
    for order in decision["orders"]:  # every order meets its supplier's minimum, arrives before stock-out
        assert order["qty"] >= FINAL_ORDERS[order["sku"]]["moq"]
        assert order["lead_time_days"] < order["days_to_stockout"]

    orders = _orders(run.run_id)
    assert (orders.version, orders.writer) == (5, "decide_orders")
    assert orders.value == FINAL_ORDERS


def test_supplier_and_finance_adjust_the_same_draft_at_once_and_the_merge_keeps_both(central):
    run, results, _ = central
    reviews = {r["id"]: r["output"] for r in results["adjust_orders"][1]["results"]}
    assert reviews["supplier"]["adjusted"] == ["SKU-400"]  # 90 raised to Rollwell's minimum of 100
    assert reviews["finance"]["adjusted"] == ["SKU-100", "SKU-200", "SKU-400"]  # 7,030 cut to 6,000

    written = [
        (e.payload["version"], e.payload["base_version"], e.payload["writer"])
        for e in _events(run.run_id, "context.written")
        if e.payload["key"] == "orders"
    ]
    assert written == [
        (1, 0, "check_inventory"),
        (2, 1, "source_suppliers"),
        (3, 2, "adjust_orders[supplier]"),
        (4, 2, "adjust_orders[finance]"),  # read version 2, as the supplier did
        (5, 4, "decide_orders"),
    ]
    (conflict,) = _events(run.run_id, "context.conflict")
    assert conflict.step == "adjust_orders"
    assert conflict.payload == {
        "key": "orders",
        "strategy": "merge",
        "base_version": 2,
        "current_version": 3,
        "writer": "adjust_orders[finance]",
        "other_writer": "adjust_orders[supplier]",
    }
    (resolved,) = _events(run.run_id, "context.resolved")
    assert resolved.payload == {
        "key": "orders",
        "strategy": "merge",
        "outcome": "merged",
        "version": 4,
        "detail": "",
    }
    merged = ContextStore(EventStore.from_airflow()).get(run.run_id, "orders", version=4).value
    assert {sku: (o["qty"], o["moq_qty"], o["budget_qty"], o["supplier"]) for sku, o in merged.items()} == {
        "SKU-100": (260, 260, 221, "Acme Fasteners"),
        "SKU-200": (48, 48, 40, "HydroParts"),
        "SKU-400": (90, 100, 76, "Rollwell"),  # the supplier's raise and finance's cut, both kept
    }


NO_SUPPLIER = (
    "no supplier can deliver SKU-700 (Forklift battery 48 V) to coastal before it runs out in 4 days: "
    "the fastest, VoltPower, takes 9 days; expedite it or move stock by hand"
)


def test_a_sku_no_supplier_can_deliver_before_stock_out_fails_at_once_with_an_alert(coastal, slack):
    run, results, _ = coastal
    assert run.state == "failed"
    assert run.task_states == {
        "check_inventory": "success",
        "source_suppliers": "failed",
        "adjust_orders": "upstream_failed",
        "decide_orders": "upstream_failed",
    }
    assert results["check_inventory"][1]["below_reorder_point"] == ["SKU-700"]
    (failed,) = _events(run.run_id, "step.failed")
    assert (failed.step, failed.try_number) == ("source_suppliers", 1)  # bad data: no retry
    assert failed.payload["error"] == NO_SUPPLIER
    (alert,) = _events(run.run_id, "alert.raised")
    assert (alert.payload["step"], alert.payload["error_class"], alert.payload["delivered"]) == (
        "source_suppliers",
        "FinalSkillError",
        True,
    )
    (posted,) = [p for p in slack.posts if run.run_id in json.dumps(p)]
    assert (
        "*Step:* `source_suppliers`" in posted["text"] and "no supplier can deliver SKU-700" in posted["text"]
    )
    assert _orders(run.run_id).version == 1  # only the draft: nothing was sourced or decided


def test_the_template_declares_owner_tags_retries_deadline_and_merges_orders(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert dag.owner == "operations" and {"baton", "v1", "supply-chain", "shared-context"} <= set(dag.tags)
    assert dag.description and "no supplier can deliver before it runs out" in dag.doc_md
    assert [t.retries for t in dag.tasks if not t.task_id.startswith("_")] == [2] * 4
    assert dag.deadline  # the run must finish an hour after it was queued
