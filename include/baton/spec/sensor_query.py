"""The check of a ``sql_threshold`` query at validate time: the text is parsed with sqlglot, not
pattern-matched, so a statement hidden behind a comment, a data-modifying CTE or a locking clause is
found wherever it sits in the tree.

sqlglot reads the query as PostgreSQL: that dialect also covers the SQLite the demo and the bundled
templates use (``substr``, ``strftime``, ``||``, ``LIMIT``/``OFFSET``, ``WITH RECURSIVE``); a query
in another dialect's syntax is refused with sqlglot's description of where it stopped. What gets past
this check still runs in a read-only session with a statement timeout (``baton.hooks.readonly``).
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from baton.limits import MAX_SENSOR_QUERY_CHARS as MAX_QUERY_CHARS

DIALECT = "postgres"

_WRITES = "a sensor only reads: select what the workflow needs, and let its steps change data"
# Nodes that write, lock, change the schema or the session, anywhere in the tree: what each is called
# in a message, and how to fix it.
_REFUSED: tuple[tuple[type[exp.Expression], str, str], ...] = (
    (exp.Insert, "an INSERT", _WRITES),
    (exp.Update, "an UPDATE", _WRITES),
    (exp.Delete, "a DELETE", _WRITES),
    (exp.Merge, "a MERGE", _WRITES),
    (exp.Copy, "a COPY", _WRITES),
    (exp.Create, "a CREATE", _WRITES),
    (exp.Drop, "a DROP", _WRITES),
    (exp.Alter, "an ALTER", _WRITES),
    (exp.TruncateTable, "a TRUNCATE", _WRITES),
    (exp.Into, "SELECT ... INTO, which creates a table", "remove the INTO clause: the sensor reads the row"),
    (exp.Lock, "a locking clause", "remove it: a sensor reads without locking rows"),
    (exp.Grant, "a GRANT", _WRITES),
    (exp.Revoke, "a REVOKE", _WRITES),
    (exp.Set, "a SET", "remove it: the sensor's session settings are Baton's"),
    (exp.Pragma, "a PRAGMA", "remove it: the sensor's session settings are Baton's"),
    (exp.Transaction, "a BEGIN", "remove it: Baton runs the query in its own read-only transaction"),
    (exp.Commit, "a COMMIT", "remove it: Baton runs the query in its own read-only transaction"),
    (exp.Rollback, "a ROLLBACK", "remove it: Baton runs the query in its own read-only transaction"),
    (exp.Command, "a command", "write one SELECT (or WITH ... SELECT) that only reads"),
)
_ONE_SELECT = "write one SELECT (or WITH ... SELECT) that returns a column named value"


class _NoFallbackWarning(logging.Filter):
    """sqlglot warns (with the query's text) when it reads a statement as a generic Command: the
    refusal below says so without echoing the query into the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_NoFallbackWarning())


def refusal(query: str) -> str | None:
    """Why ``query`` cannot be a sensor's query (a message with its fix), or None when it is one
    statement that only reads."""
    if len(query) > MAX_QUERY_CHARS:
        return (
            f"the query is {len(query):,} characters, more than the {MAX_QUERY_CHARS:,} a sensor's query may "
            "have (fix: move the logic into a view in the database and select from it)"
        )
    try:
        parsed = sqlglot.parse(query, read=DIALECT)
    except ParseError as error:
        return f"the query is not valid SQL: {_described(error)} (fix: correct the SQL; it is read as PostgreSQL)"
    except RecursionError:
        return _TOO_DEEP
    except SqlglotError as error:  # the tokenizer's own errors
        return f"the query is not valid SQL: {error} (fix: correct the SQL; it is read as PostgreSQL)"
    statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        return f"the query has no statement (fix: {_ONE_SELECT})"
    if len(statements) > 1:
        kinds = ", then ".join(_kind(s) for s in statements[:3])
        return (
            f"the query holds {len(statements)} statements ({kinds}); a sensor runs exactly one (fix: keep "
            "the one SELECT; whatever follows a ';' is another statement, even after a comment)"
        )
    return _refused_node(statements[0])


_TOO_DEEP = (
    "the query nests too deeply to be checked (fix: flatten the nested subqueries into WITH ... AS steps, "
    "or move them into a view)"
)


def _refused_node(statement: exp.Expression) -> str | None:
    try:
        nodes = list(statement.walk())
    except RecursionError:
        return _TOO_DEEP
    for node in nodes:
        for kind, name, fix in _REFUSED:
            if isinstance(node, kind):
                what = _name(node, name)
                if node is statement:
                    return f"the query is {what}, not a SELECT (fix: {fix})"
                return f"the query contains {what}{_where(node)} (fix: {fix})"
    if not isinstance(statement, exp.Query):
        return f"the query is {_kind(statement)}, not a SELECT (fix: {_ONE_SELECT})"
    return None


def _name(node: exp.Expression, name: str) -> str:
    if isinstance(node, exp.Lock):
        strength = {
            (True, False): "UPDATE",
            (True, True): "NO KEY UPDATE",
            (False, False): "SHARE",
            (False, True): "KEY SHARE",
        }[bool(node.args.get("update")), bool(node.args.get("key"))]
        return f"a FOR {strength} clause, which locks rows"
    if isinstance(node, exp.Into):
        return f"SELECT ... INTO {node.this.sql(dialect=DIALECT)}, which creates a table"
    if isinstance(node, exp.Command):
        command = str(node.this).upper()
        return f"{'an' if command[:1] in 'AEIOU' else 'a'} {command} command"
    return name


def _where(node: exp.Expression) -> str:
    """' in a WITH clause' for a node inside a CTE (the data-modifying CTE that passes a prefix check)."""
    return " in a WITH clause" if node.find_ancestor(exp.CTE) is not None else ""


def _kind(statement: exp.Expression) -> str:
    if isinstance(statement, exp.Query):
        return "a SELECT"
    for kind, name, _ in _REFUSED:
        if isinstance(statement, kind):
            return _name(statement, name)
    return f"a {statement.key.upper()}"


_TOKEN = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*?>")


def _described(error: ParseError) -> str:
    """sqlglot's own description of the first error, with its line and column, and its tokens shown
    as their text."""
    first = error.errors[0] if error.errors else {}
    description = _TOKEN.sub(
        lambda m: "the end of the query" if m.group(1) == "SENTINEL" else f"'{m.group(2)}'",
        str(first.get("description") or error),
    )
    if first.get("line") is not None:
        description += f" at line {first['line']}, column {first['col']} of the query"
        if first.get("highlight"):
            description += f" ('{first['highlight']}')"
    return description
