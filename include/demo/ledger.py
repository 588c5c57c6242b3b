"""The accounts-payable ledger that ``invoice_processing`` posts to, in the business database
(the connection ``baton_business``: SQLite in ``make run``, PostgreSQL in the tests and production).

One ``ledger`` row per invoice (the journal entry's header) and one ``ledger_lines`` row per line
item. The workflow's skills create both tables when they are missing; every statement is
SQLAlchemy Core with bound values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

MONEY = Numeric(14, 2)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_number", String(64), nullable=False),
    Column("vendor", String(200), nullable=False),
    Column("invoice_date", Date, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal", MONEY, nullable=False),
    Column("tax_rate", MONEY, nullable=False),  # percent
    Column("tax", MONEY, nullable=False),
    Column("total", MONEY, nullable=False),
    Column("source_file", String(300), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Two runs racing past the duplicate check still cannot post one invoice twice.
    UniqueConstraint("invoice_number", name="ledger_invoice_number_key"),
)

ledger_lines = Table(
    "ledger_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", Integer, ForeignKey("ledger.id"), nullable=False, index=True),
    Column("line_no", Integer, nullable=False),
    Column("description", String(300), nullable=False),
    Column("quantity", MONEY, nullable=False),
    Column("unit_price", MONEY, nullable=False),
    Column("amount", MONEY, nullable=False),
    UniqueConstraint("entry_id", "line_no", name="ledger_lines_entry_line_key"),
)


def ensure_tables(engine: Engine) -> None:
    """Create ``ledger`` and ``ledger_lines`` if they are missing (never alters existing ones)."""
    metadata.create_all(engine, checkfirst=True)


def find_entry(conn: Connection, invoice_number: str) -> dict[str, Any] | None:
    """The ledger entry of ``invoice_number``, if it was posted."""
    row = conn.execute(
        select(ledger.c.id, ledger.c.vendor, ledger.c.run_id, ledger.c.total).where(
            ledger.c.invoice_number == invoice_number
        )
    ).first()
    return dict(row._mapping) if row else None


def insert_entry(conn: Connection, values: dict[str, Any]) -> int:
    """Insert the header; its id."""
    return conn.execute(insert(ledger).values(**values).returning(ledger.c.id)).scalar_one()


def insert_lines(conn: Connection, entry_id: int, lines: list[dict[str, Any]]) -> int:
    """Insert the line items of entry ``entry_id``; how many."""
    if lines:
        conn.execute(insert(ledger_lines), [{"entry_id": entry_id, **line} for line in lines])
    return len(lines)


def delete_lines(conn: Connection, entry_id: int) -> int:
    """Remove the line items of entry ``entry_id``; how many there were."""
    return conn.execute(delete(ledger_lines).where(ledger_lines.c.entry_id == entry_id)).rowcount


def delete_entry(conn: Connection, entry_id: int) -> tuple[int, int]:
    """Remove entry ``entry_id`` with its lines; (headers removed, lines removed)."""
    lines = delete_lines(conn, entry_id)
    headers = conn.execute(delete(ledger).where(ledger.c.id == entry_id)).rowcount
    return headers, lines
