"""``baton cost``: model spend by workflow, agent, model or day, and each budget against its limit."""

from __future__ import annotations

import json
from typing import Any

from baton.budgets.config import budgets_of
from baton.budgets.report import cost_document
from baton.cli.common import add_command, dags_folder
from baton.errors import TemplateError
from baton.events.store import EventStore


def add(commands: Any) -> None:
    cost = add_command(commands, "cost")
    cost.add_argument("--days", type=int, default=7, choices=range(1, 367), metavar="1..366",
                      help="how far back the spend goes (default 7)")  # fmt: skip
    cost.add_argument("--by", choices=("workflow", "agent", "model", "day"), default="workflow")
    cost.add_argument("--json", action="store_true", help="one JSON document instead of the tables")
    cost.set_defaults(run=lambda args: show(args.days, args.by, args.json))


def show(days: int, by: str, as_json: bool) -> int:
    try:
        budgets = budgets_of(dags_folder())
    except TemplateError as error:
        print(f"the budgets cannot be read, so none is shown:\n{error}")
        return 1
    document = cost_document(EventStore.from_airflow(), budgets, days, by)
    if as_json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"model spend of the last {days} day(s), by {by}:")
    if not document["spend"]:
        print("  no model calls")
    for line in document["spend"]:
        print(f"  {line['key'][:40]:<40} {line['calls']:>8,} call(s) {line['cost']:>14,.4f} "
              f"{line['tokens']:>14,} tokens")  # fmt: skip
    status = document["budgets"]
    print("budgets (dags/budgets.yaml):" if status else "no budgets (declare them in dags/budgets.yaml)")
    for row in status:
        print("  " + _budget_line(row))
    return 0


def _budget_line(row: dict[str, Any]) -> str:
    parts = []
    if row["limit_cost"] is not None:
        parts.append(f"{row['cost']:,.4f} of {row['limit_cost']:,.4f}")
    if row["limit_tokens"] is not None:
        parts.append(f"{row['tokens']:,} of {row['limit_tokens']:,} tokens")
    flight = row["in_flight_cost"] or row["in_flight_tokens"]
    forecast = f", forecast {row['forecast']:.0%} at the window's end" if row["forecast"] is not None else ""
    forecast += ", raised once by a person" if row.get("raised") else ""
    return (
        f"{row['budget']:<20} {row['scope']:<30} {row['window'][:40]:<40} {' and '.join(parts)}"
        f" ({row['used']:.0%} used{' with calls in flight' if flight else ''}{forecast})"
    )


__all__ = ["add", "show"]
