"""Supply chain skills (supply_chain): inventory, supplier and finance agents drafting purchase orders
in the shared context key ``orders`` (SKU -> order), on the demo data in include/demo/supply/.

- supply_inventory: the SKUs below their reorder point, each drafted up to its order-up-to level;
- supply_sourcing: the cheapest supplier that delivers before the SKU runs out (none: the run fails);
- supply_adjust: one reviewer of the sourced draft: ``supplier`` raises a quantity to the supplier's
  minimum order quantity (``moq_qty``), ``finance`` cuts every quantity to fit the budget
  (``budget_qty``). Both read the same version of ``orders`` and write it at once: a conflict that
  the key's strategy (merge) resolves, keeping both adjustments;
- supply_decision: the reorder decision over the merged orders: finance's quantity when it meets the
  supplier's minimum, else the cheapest other supplier in time whose minimum it meets, else the
  minimum; the total within the budget.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from baton.errors import FinalSkillError
from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data, demo_pick


def _warehouse(request: SkillRequest) -> str:
    warehouse = request.inputs.get("warehouse", "central")
    demo_pick(demo_data("supply/inventory")["warehouses"], "warehouse", warehouse)
    return warehouse


def _budget(warehouse: str) -> float:
    return float(demo_data("supply/budget")["budgets"][warehouse])


def _days(days: float) -> str:
    return f"{days:g} day{'' if days == 1 else 's'}"


class Changes(BaseModel):
    """A step's contribution to ``orders``: SKU -> the fields it sets."""

    changes: dict[str, dict[str, Any]]


class InventoryCheck(Changes):
    warehouse: str
    checked: int
    below_reorder_point: list[str]


@skill("supply_inventory", output=InventoryCheck)
def supply_inventory(request: SkillRequest) -> dict:
    """The SKUs of the warehouse below their reorder point, each drafted up to its order-up-to level."""
    warehouse = _warehouse(request)
    stock = demo_data("supply/inventory")["warehouses"][warehouse]
    changes = {}
    for item in stock:
        if item["on_hand"] >= item["reorder_point"]:
            continue
        changes[item["sku"]] = {
            "name": item["name"],
            "on_hand": item["on_hand"],
            "reorder_point": item["reorder_point"],
            "qty": item["order_up_to"] - item["on_hand"],
            "days_to_stockout": round(item["on_hand"] / item["daily_demand"], 2),
            "status": "draft",
        }
    return {
        "warehouse": warehouse,
        "checked": len(stock),
        "below_reorder_point": sorted(changes),
        "changes": changes,
    }


class Sourcing(Changes):
    draft_cost: float
    budget: float
    reviewers: list[dict[str, str]]


def _in_time(sku: str, days_to_stockout: float) -> list[dict]:
    """The offers for ``sku`` that arrive before it runs out, cheapest first."""
    offers = demo_data("supply/suppliers")["offers"].get(sku, [])
    timely = [o for o in offers if o["lead_time_days"] < days_to_stockout]
    return sorted(timely, key=lambda o: (o["unit_price"], o["lead_time_days"], o["supplier"]))


@skill("supply_sourcing", output=Sourcing, pure=True)
def supply_sourcing(request: SkillRequest) -> dict:
    """For each drafted order the cheapest supplier that delivers before the SKU runs out; a SKU that
    no supplier can deliver in time fails the run (with its alert): it needs a person, not a retry."""
    warehouse = _warehouse(request)
    orders = request.context.get("orders") or {}
    changes, cost = {}, 0.0
    for sku in sorted(orders):
        order = orders[sku]
        timely = _in_time(sku, order["days_to_stockout"])
        if not timely:
            offers = sorted(
                demo_data("supply/suppliers")["offers"].get(sku, []), key=lambda o: o["lead_time_days"]
            )
            fastest = (
                f"the fastest, {offers[0]['supplier']}, takes {_days(offers[0]['lead_time_days'])}"
                if offers
                else "no supplier offers it"
            )
            raise FinalSkillError(
                f"no supplier can deliver {sku} ({order['name']}) to {warehouse} before it runs out in "
                f"{_days(order['days_to_stockout'])}: {fastest}; expedite it or move stock by hand"
            )
        best = timely[0]
        changes[sku] = {
            "supplier": best["supplier"],
            "unit_price": best["unit_price"],
            "lead_time_days": best["lead_time_days"],
            "moq": best["moq"],
        }
        cost += order["qty"] * best["unit_price"]
    return {
        "changes": changes,
        "draft_cost": round(cost, 2),
        "budget": _budget(warehouse),
        "reviewers": [
            {"id": "supplier", "checks": "minimum order quantities"},
            {"id": "finance", "checks": "the budget"},
        ],
    }


class Adjustment(Changes):
    reviewer: str
    adjusted: list[str]


@skill("supply_adjust", output=Adjustment, pure=True)
def supply_adjust(request: SkillRequest) -> dict:
    """One reviewer's adjustment of the sourced draft: ``supplier`` raises each quantity to the
    supplier's minimum order quantity (moq_qty); ``finance`` cuts every quantity in proportion so the
    draft fits the budget (budget_qty)."""
    reviewer = request.args.get("reviewer")
    orders = request.context.get("orders") or {}
    changes: dict[str, dict[str, Any]] = {}
    if reviewer == "supplier":
        for sku in sorted(orders):
            order = orders[sku]
            changes[sku] = {"moq_qty": max(order["qty"], order["moq"])}
    elif reviewer == "finance":
        budget = _budget(_warehouse(request))
        cost = sum(o["qty"] * o["unit_price"] for o in orders.values())
        scale = min(1.0, budget / cost) if cost else 1.0
        for sku in sorted(orders):
            changes[sku] = {"budget_qty": math.floor(orders[sku]["qty"] * scale)}
    else:
        raise FinalSkillError(f"unknown reviewer '{reviewer}'; supply_adjust knows supplier and finance")
    field = "moq_qty" if reviewer == "supplier" else "budget_qty"
    adjusted = [sku for sku, change in changes.items() if change[field] != orders[sku]["qty"]]
    return {"reviewer": reviewer, "adjusted": adjusted, "changes": changes}


class OrderLine(BaseModel):
    sku: str
    name: str
    qty: int
    supplier: str
    unit_price: float
    cost: float
    lead_time_days: int
    days_to_stockout: float
    note: str


class Decision(Changes):
    warehouse: str
    orders: list[OrderLine]
    total_cost: float
    budget: float
    remaining: float


@skill("supply_decision", output=Decision, pure=True)
def supply_decision(request: SkillRequest) -> dict:
    """The reorder decision over the merged orders: finance's quantity when it meets the supplier's
    minimum order quantity; else the cheapest other supplier in time whose minimum it meets; else the
    minimum. The total must fit the budget, or the run fails."""
    # long: the ordering rule of the demo, step by step
    warehouse = _warehouse(request)
    budget = _budget(warehouse)
    orders = request.context.get("orders") or {}
    lines, changes = [], {}
    for sku in sorted(orders):
        order = orders[sku]
        qty = order["budget_qty"]
        offer = {field: order[field] for field in ("supplier", "unit_price", "lead_time_days", "moq")}
        if qty >= order["moq"]:
            note = (
                f"{qty} as drafted"
                if qty == order["qty"]
                else f"cut from {order['qty']} to {qty} to fit the budget"
            )
        else:
            other = next((o for o in _in_time(sku, order["days_to_stockout"]) if o["moq"] <= qty), None)
            if other is not None:
                note = (
                    f"{order['supplier']} sells no fewer than {order['moq']} and the budget allows {qty}: "
                    f"{qty} from {other['supplier']} (minimum {other['moq']}, {_days(other['lead_time_days'])})"
                )
                offer = other
            else:
                note = f"raised from {qty} to {order['supplier']}'s minimum of {order['moq']}"
                qty = order["moq"]
        cost = round(qty * offer["unit_price"], 2)
        lines.append(
            OrderLine(
                sku=sku,
                name=order["name"],
                qty=qty,
                supplier=offer["supplier"],
                unit_price=offer["unit_price"],
                cost=cost,
                lead_time_days=offer["lead_time_days"],
                days_to_stockout=order["days_to_stockout"],
                note=note,
            )
        )
        changes[sku] = {
            "qty": qty,
            "supplier": offer["supplier"],
            "unit_price": offer["unit_price"],
            "lead_time_days": offer["lead_time_days"],
            "moq": offer["moq"],
            "cost": cost,
            "status": "approved",
        }
    total = round(sum(line.cost for line in lines), 2)
    if total > budget:
        raise FinalSkillError(
            f"the reorder for {warehouse} costs {total:,.2f} at the suppliers' minimum order quantities, "
            f"over the budget of {budget:,.2f}; raise the budget or defer a SKU"
        )
    return {
        "warehouse": warehouse,
        "orders": [line.model_dump() for line in lines],
        "total_cost": total,
        "budget": budget,
        "remaining": round(budget - total, 2),
        "changes": changes,
    }
