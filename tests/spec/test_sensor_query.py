"""The sqlglot check of a ``sql_threshold`` query: what it refuses (each with its exact message), and the
reading SQL of both databases it accepts."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from baton.spec.sensor_query import refusal
from baton.spec.triggers import SqlThreshold

_WRITES = "(fix: a sensor only reads: select what the workflow needs, and let its steps change data)"
_COMMAND = "(fix: write one SELECT (or WITH ... SELECT) that only reads)"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("VACUUM payments", f"the query is a VACUUM command, not a SELECT {_COMMAND}"),
        ("EXPLAIN ANALYZE DELETE FROM payments", f"the query is an EXPLAIN command, not a SELECT {_COMMAND}"),
        ("COPY payments TO '/tmp/out.csv'", f"the query is a COPY, not a SELECT {_WRITES}"),
        ("DROP TABLE payments", f"the query is a DROP, not a SELECT {_WRITES}"),
        ("TRUNCATE payments", f"the query is a TRUNCATE, not a SELECT {_WRITES}"),
        ("ALTER TABLE payments ADD COLUMN x int", f"the query is an ALTER, not a SELECT {_WRITES}"),
        ("CREATE TABLE t AS SELECT 1 AS value", f"the query is a CREATE, not a SELECT {_WRITES}"),
        (
            "WITH x AS (SELECT 1 AS value) INSERT INTO t SELECT * FROM x",
            f"the query is an INSERT, not a SELECT {_WRITES}",
        ),
        (
            "WITH u AS (UPDATE payments SET amount = 0 RETURNING amount) SELECT count(*) AS value FROM u",
            f"the query contains an UPDATE in a WITH clause {_WRITES}",
        ),
        (
            "SELECT count(*) AS value FROM (SELECT amount FROM payments FOR KEY SHARE) p",
            "the query contains a FOR KEY SHARE clause, which locks rows (fix: remove it: a sensor reads "
            "without locking rows)",
        ),
        (
            "SET statement_timeout = 0",
            "the query is a SET, not a SELECT (fix: remove it: the sensor's session settings are Baton's)",
        ),
        (
            "SELECT 1 AS value; COMMIT",
            "the query holds 2 statements (a SELECT, then a COMMIT); a sensor runs exactly one (fix: keep the one "
            "SELECT; whatever follows a ';' is another statement, even after a comment)",
        ),
        (
            ";",
            "the query has no statement (fix: write one SELECT (or WITH ... SELECT) that returns a column named value)",
        ),
        (
            "SELECT 'unclosed AS value",
            "the query is not valid SQL: Error tokenizing 'SELECT 'unclosed AS valu' (fix: correct the SQL; it is "
            "read as PostgreSQL)",
        ),
        (
            "SELECT 1 FROM",
            "the query is not valid SQL: Expected table name but got the end of the query at line 1, column 13 of "
            "the query ('FROM') (fix: correct the SQL; it is read as PostgreSQL)",
        ),
    ],
)
def test_what_is_refused_and_why(query, message, caplog):
    with caplog.at_level(logging.WARNING):
        assert refusal(query) == message
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")]  # the query is not echoed to logs


@pytest.mark.parametrize(
    "query",
    [
        "SELECT substr(day, 1, 7) AS period, SUM(amount) AS value FROM revenue WHERE substr(day, 1, 7) = :month "
        "GROUP BY substr(day, 1, 7)",  # the portable SQL of the bundled revenue sensor
        "SELECT strftime('%Y-%m', day) AS period, ifnull(sum(amount), 0) AS value FROM revenue "
        "WHERE day >= date('now', '-30 days') GROUP BY 1 LIMIT 1 OFFSET 0",  # SQLite's functions
        "SELECT date_trunc('month', now())::date AS period, count(*) AS value FROM payments",  # PostgreSQL's
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t WHERE n < 5) SELECT sum(n) AS value FROM t",
        "SELECT 1 AS value UNION SELECT 2 EXCEPT SELECT 3",
        "SELECT 1 AS value; -- a comment after the one statement",
        "SELECT 1 AS value /* ; DELETE FROM payments */",  # a ';' inside a comment ends nothing
    ],
)
def test_reading_sql_of_both_databases_is_accepted(query):
    assert refusal(query) is None


def test_bind_parameters_are_the_ones_sqlalchemy_binds_even_inside_a_string():
    """SQLAlchemy's text() takes ':b' in a literal for a parameter too: the check says so at validate
    time rather than letting the sensor fail at run time."""
    query = "SELECT count(*) AS value FROM payments WHERE day = :a AND note = 'at :b' AND amount::int > 0"
    with pytest.raises(ValidationError) as caught:
        SqlThreshold(conn_id="c", query=query, params={"a": "2026-11-01"}, threshold=1)
    assert (
        caught.value.errors()[0]["msg"] == "Value error, the query uses :b; give a value for each in params"
    )
    assert SqlThreshold(conn_id="c", query=query, params={"a": 1, "b": 2}, threshold=1).query == query
