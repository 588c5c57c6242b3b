"""The demo business database that the bundled sensors watch: leads, revenue and payments tables,
seeded from include/demo/*.json. SQLite in the embedded run, PostgreSQL in the integration tests.

    python -m demo.business sqlite:///path/to/baton_business.db     # create and seed (idempotent)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
)

DEMO = Path(__file__).resolve().parent
metadata = MetaData()

# ``seq`` is each table's ever-increasing key: the high-water mark of the new_rows sensors.
leads = Table(
    "leads",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("company", String(200), nullable=False),
    Column("contact_role", String(100)),
    Column("region", String(16), nullable=False),
    Column("employees", Integer, nullable=False),
    Column("annual_budget", Float, nullable=False),
    Column("engagement", Integer, nullable=False),
    Column("source", String(64)),
    Column("created_at", String(32)),
)
revenue = Table(
    "revenue",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("day", String(10), nullable=False),
    Column("product", String(64), nullable=False),
    Column("amount", Float, nullable=False),
    Column("customer", String(32)),
)
payments = Table(
    "payments",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("customer", String(64), nullable=False),
    Column("country", String(2), nullable=False),
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("day", String(10), nullable=False),
)


def _demo(name: str) -> dict[str, Any]:
    return json.loads((DEMO / f"{name}.json").read_text())


def _names(table: Table) -> list[str]:
    return [c.name for c in table.c if c.name != "seq"]


def seed_rows() -> dict[Table, list[dict[str, Any]]]:
    lead_rows = [{k: lead.get(k) for k in _names(leads)} for lead in _demo("leads")["leads"]]
    revenue_rows = [
        {"day": t["date"], "product": t["product"], "amount": t["amount"], "customer": t["customer"]}
        for t in _demo("revenue")["transactions"]
    ]
    payment_rows = [{k: p[k] for k in _names(payments)} for p in _demo("payments")["payments"]]
    return {leads: lead_rows, revenue: revenue_rows, payments: payment_rows}


def create(url: str, *, seed: bool = True) -> None:
    """Create the tables; seed each that is empty with the demo data."""
    engine = create_engine(url)
    metadata.create_all(engine)
    if seed:
        with engine.begin() as conn:
            for table, rows in seed_rows().items():
                if not conn.scalar(select(func.count()).select_from(table)) and rows:
                    conn.execute(insert(table), rows)
    engine.dispose()


def add(url: str, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (what an external system does), in one transaction."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """``python -m demo.business [--conn baton_business]``: create and seed the demo business database of
    an Airflow connection (a SQLite or PostgreSQL one)."""
    import argparse

    from baton.errors import ConnectionNotDefined
    from baton.hooks.business import database_url

    parser = argparse.ArgumentParser(prog="python -m demo.business", description=main.__doc__)
    parser.add_argument(
        "--conn", default="baton_business", help="its Airflow connection (default baton_business)"
    )
    args = parser.parse_args(argv)
    try:
        url = database_url(args.conn, "the demo business database")
    except (ConnectionNotDefined, ValueError) as error:
        print(f"demo business database: {error}", file=sys.stderr)
        return 1
    create(url)
    print(f"demo business database ready (connection {args.conn})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
