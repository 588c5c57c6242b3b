"""The queries of the SQL sensors, built with SQLAlchemy: identifiers come from the validated template
and are quoted by SQLAlchemy; every value is a bind parameter. Nothing here pastes text into SQL."""

from __future__ import annotations

import datetime as dt
import decimal
import operator
from typing import Any

from sqlalchemy import and_, bindparam, column, literal_column, or_, select, table, text
from sqlalchemy.engine import Connection

_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def json_safe(value: Any) -> Any:
    """A database value as JSON: decimals as numbers, dates and times as ISO text."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _table(name: str) -> Any:
    schema, _, name = name.rpartition(".")
    return table(name, schema=schema or None)


def _condition(cond: dict[str, Any], index: str) -> Any:
    col, op, value = column(cond["column"]), cond["op"], cond.get("value")
    param = bindparam(f"rule_{index}", value, expanding=op in ("in", "not_in"))
    if op in _COMPARE:
        return _COMPARE[op](col, param)
    return {
        "in": lambda: col.in_(param),
        "not_in": lambda: col.not_in(param),
        "like": lambda: col.like(param),
        "is_null": lambda: col.is_(None),
        "not_null": lambda: col.is_not(None),
    }[op]()


def rows_query(spec: dict[str, Any], mark: Any, until: Any = None) -> Any:
    """SELECT the rows of ``new_rows`` / ``rule_match`` after ``mark`` (all when None) and up to
    ``until`` (when given), oldest first."""
    key = column(spec["key"])
    columns = [column(c) for c in spec.get("columns") or []] or [literal_column("*")]
    query = select(*columns).select_from(_table(spec["table"]))
    if mark is not None:
        query = query.where(key > bindparam("mark", mark))
    if until is not None:
        query = query.where(key <= bindparam("until", until))
    if spec.get("all"):
        query = query.where(and_(*(_condition(c, f"all_{i}") for i, c in enumerate(spec["all"]))))
    if spec.get("any"):
        query = query.where(or_(*(_condition(c, f"any_{i}") for i, c in enumerate(spec["any"]))))
    return query.order_by(key).limit(spec.get("batch_size") or 500)


def max_key(conn: Connection, spec: dict[str, Any]) -> Any:
    """The key's current maximum (None for an empty table): where a ``start: now`` sensor begins."""
    from sqlalchemy import func

    return json_safe(conn.scalar(select(func.max(column(spec["key"]))).select_from(_table(spec["table"]))))


def new_rows(conn: Connection, spec: dict[str, Any], mark: Any, until: Any = None) -> list[dict[str, Any]]:
    result = conn.execute(rows_query(spec, _typed(mark), _typed(until)))
    return [{k: json_safe(v) for k, v in row._mapping.items()} for row in result]


def threshold_value(conn: Connection, spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """The query's one row (``value`` and maybe ``period``), or None when it returns none."""
    row = conn.execute(text(spec["query"]), params).mappings().first()
    if row is None:
        return None
    if "value" not in row:
        raise ValueError(
            f"the sql_threshold query returned the columns {', '.join(row)}; it must return one named "
            "'value' (SELECT SUM(amount) AS value ...)"
        )
    return {"value": json_safe(row["value"]), "period": json_safe(row.get("period"))}


def reached(value: Any, op: str, threshold: float) -> bool:
    return value is not None and _COMPARE[op](float(value), float(threshold))


def _typed(mark: Any) -> Any:
    """A mark read back from JSON: ISO timestamps compare as timestamps again."""
    if isinstance(mark, str):
        try:
            return dt.datetime.fromisoformat(mark)
        except ValueError:
            return mark
    return mark
