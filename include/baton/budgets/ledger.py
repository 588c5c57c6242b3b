"""The budgets' ledger in Baton's store: reserve before a call, settle after it, release a dead try's.

A reservation is checked and written in one transaction per call, across every budget that applies, under
a lock per budget window (PostgreSQL: a transaction-level advisory lock; SQLite: its single writer, taken
at ``BEGIN IMMEDIATE``), so that no two concurrent calls can both take the last of a budget:

- ``settled + reserved + estimate <= limit``: reserved.
- ``settled + estimate > limit``: refused: even once the calls in flight settle, this one does not fit.
- otherwise the calls in flight decide: the caller waits for them to settle and asks again.

A person may raise a budget's limit once in a window (``at_limit: ask``): a ``raised`` row of the window
holds the extra cost and tokens, added to the limit (:meth:`Ledger.raise_once`).

Spend in a window is what is settled plus what is reserved and not expired. A try that dies holding a
reservation (SIGKILL, a lost worker) leaves it until its expiry, or until the next try of its task starts
and releases what its predecessors held (:func:`release_holder`).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, func, select, text, update

from baton.events import schema
from baton.events.store import EventStore
from baton.spec.budgets import Budget


@dataclass(frozen=True)
class Spend:
    cost: float = 0.0
    tokens: int = 0

    def over(self, budget: Budget, plus: Spend, raised: Spend | None = None) -> bool:
        """Whether this spend and ``plus`` together pass ``budget``'s limit (raised by ``raised``)."""
        raised = raised or Spend()
        if budget.cost is not None and self.cost + plus.cost > budget.cost + raised.cost + 1e-12:
            return True
        return budget.tokens is not None and self.tokens + plus.tokens > budget.tokens + raised.tokens


@dataclass(frozen=True)
class Refusal:
    """The budget a call does not fit in, with its window and spend; ``wait``: it may fit once the calls
    in flight settle (their reservations are counted)."""

    budget: Budget
    window: str
    settled: Spend
    reserved: Spend
    wait: bool
    raised: Spend = Spend()

    def message(self, estimate: Spend) -> str:
        b, limit, up = self.budget, [], self.raised
        if b.cost is not None:
            limit.append(f"{self.settled.cost:.6g} of {b.cost + up.cost:.6g} spent")
        if b.tokens is not None:
            limit.append(f"{self.settled.tokens:,} of {b.tokens + up.tokens:,} tokens spent")
        if up.cost or up.tokens:
            limit[-1] += " (raised once by a person)"
        in_flight = f", {self.reserved.cost:.6g} / {self.reserved.tokens:,} tokens reserved in flight"
        return (
            f"budget '{b.name}' ({b.scope}, per {b.per}, window {self.window}): "
            f"{'; '.join(limit)}{in_flight if self.reserved.tokens or self.reserved.cost else ''}; this call "
            f"needs up to {estimate.cost:.6g} / {estimate.tokens:,} tokens"
        )


@dataclass(frozen=True)
class Reservation:
    ids: tuple[int, ...]
    windows: tuple[tuple[str, str], ...]  # (budget, window) of each row
    estimate: Spend
    holder: str


def holder_of(key: str) -> str:
    """A reservation's holder: the try's key, and this process (which a dead try's successor frees)."""
    return f"{key} pid {os.getpid()}@{socket.gethostname()}"[:250]


def _now() -> datetime:
    return datetime.now(UTC)


def _lock(conn: Connection, budget: str, window: str) -> None:
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.sha256(f"budget|{budget}|{window}".encode()).digest()[:8], "big", signed=True
        )
        conn.execute(_LOCK, {"key": key})


# The statements of every call, built once (a statement built per call costs its construction and its cache
# key each time): the lock of a budget window, its spend, a settlement, a release.
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_L = schema.budget_ledger.c
_SPEND = (
    select(_L.state, func.coalesce(func.sum(_L.cost), 0.0), func.coalesce(func.sum(_L.tokens), 0))
    .where(_L.budget == bindparam("budget"), _L.window == bindparam("window"))
    .where((_L.state != "reserved") | (_L.expires_at > bindparam("now")))
    .group_by(_L.state)
)
_SETTLE = (
    update(schema.budget_ledger)
    .where(_L.id.in_(bindparam("ids", expanding=True)))
    .values(state="settled", cost=bindparam("cost"), tokens=bindparam("tokens"), updated_at=bindparam("at"))
)
_RELEASE = delete(schema.budget_ledger).where(
    _L.id.in_(bindparam("ids", expanding=True)), _L.state == "reserved"
)
_RESERVE = schema.budget_ledger.insert().returning(_L.id)


def _spend(conn: Connection, budget: str, window: str, now: datetime) -> tuple[Spend, Spend, Spend]:
    """(settled, reserved and not expired, raised by a person) of one budget window."""
    rows = conn.execute(_SPEND, {"budget": budget, "window": window, "now": now}).all()
    found = {state: Spend(float(cost), int(tokens)) for state, cost, tokens in rows}
    return found.get("settled", Spend()), found.get("reserved", Spend()), found.get("raised", Spend())


def share_left(conn: Connection, budget: Budget, window: str) -> float:
    """The share of ``budget``'s limit (as raised) in ``window`` that neither settled nor in-flight calls
    hold: 1.0 untouched, 0.0 spent (the tighter of money and tokens)."""
    settled, reserved, raised = _spend(conn, budget.name, window, _now())
    used = []
    if budget.cost is not None:
        used.append((settled.cost + reserved.cost) / (budget.cost + raised.cost))
    if budget.tokens is not None:
        used.append((settled.tokens + reserved.tokens) / (budget.tokens + raised.tokens))
    return max(0.0, 1.0 - max(used))


class Ledger:
    def __init__(self, store: EventStore):
        self.store = store

    def reserve(
        self,
        budgets: Sequence[Budget],
        windows: Sequence[str],
        estimate: Spend,
        holder: str,
        ttl: timedelta,
    ) -> Reservation | Refusal:
        """Reserve ``estimate`` in each of ``budgets`` (in its window of ``windows``), all or none."""
        with self.store.engine.begin() as conn:
            return reserve_in(conn, budgets, windows, estimate, holder, ttl)

    def settle(self, reservation: Reservation, actual: Spend) -> None:
        """The call's actual use replaces its estimate in every budget it reserved in."""
        if reservation.ids:
            with self.store.engine.begin() as conn:
                settle_in(conn, reservation, actual)

    def release(self, reservation: Reservation) -> None:
        """The call spent nothing (it never reached the model): its reservation goes."""
        if reservation.ids:
            with self.store.engine.begin() as conn:
                release_in(conn, reservation)

    def release_holder(self, prefix: str) -> int:
        """Free the reservations of the tries whose holder key starts with ``prefix`` (a task's earlier
        tries, when its next one starts); how many rows went."""
        b = schema.budget_ledger.c
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.store.engine.begin() as conn:
            gone = conn.execute(
                delete(schema.budget_ledger).where(b.state == "reserved", b.holder.like(pattern, escape="\\"))
            )
        return gone.rowcount

    def spent(self, budget: Budget, window: str) -> tuple[Spend, Spend]:
        """(settled, reserved in flight) of ``budget`` in ``window``."""
        return self.window(budget, window)[:2]

    def raised(self, budget: Budget, window: str) -> Spend:
        """What a person added to ``budget``'s limit in ``window`` (nothing: ``Spend()``)."""
        return self.window(budget, window)[2]

    def window(self, budget: Budget, window: str) -> tuple[Spend, Spend, Spend]:
        """(settled, reserved in flight, raised by a person) of ``budget`` in ``window``, in one query."""
        with self.store.engine.connect() as conn:
            return _spend(conn, budget.name, window, _now())

    def raise_once(self, budget: Budget, window: str, extra: Spend, by: str) -> bool:
        """Add ``extra`` to ``budget``'s limit in ``window``, unless it was raised there already (under the
        window's lock: two people answering at once raise it once). Whether it was raised now."""
        b = schema.budget_ledger
        now = _now()
        with self.store.engine.begin() as conn:
            _lock(conn, budget.name, window)
            exists = conn.execute(
                select(b.c.id).where(b.c.budget == budget.name, b.c.window == window, b.c.state == "raised")
            ).first()
            if exists is not None:
                return False
            row = {"budget": budget.name, "window": window, "holder": f"raised by {by}"[:250],
                   "state": "raised", "cost": extra.cost, "tokens": extra.tokens,
                   "expires_at": now, "updated_at": now}  # fmt: skip
            conn.execute(b.insert().values(**row))
        return True


def reserve_in(
    conn: Connection,
    budgets: Sequence[Budget],
    windows: Sequence[str],
    estimate: Spend,
    holder: str,
    ttl: timedelta,
) -> Reservation | Refusal:
    """:meth:`Ledger.reserve` in the caller's transaction (its locks held until that one ends)."""
    now = _now()
    pairs = sorted(zip((x.name for x in budgets), windows, strict=True))
    by_name = {x.name: x for x in budgets}
    for name, window in pairs:  # in one order: two calls never wait on each other's locks
        _lock(conn, name, window)
    for name, window in pairs:
        settled, reserved, raised = _spend(conn, name, window, now)
        budget = by_name[name]
        if settled.over(budget, estimate, raised):
            return Refusal(budget, window, settled, reserved, False, raised)
        if Spend(settled.cost + reserved.cost, settled.tokens + reserved.tokens).over(
            budget, estimate, raised
        ):
            return Refusal(budget, window, settled, reserved, True, raised)
    rows = [
        {
            "budget": name,
            "window": window,
            "holder": holder,
            "state": "reserved",
            "cost": estimate.cost,
            "tokens": estimate.tokens,
            "expires_at": now + ttl,
            "updated_at": now,
        }
        for name, window in pairs
    ]
    ids = [conn.execute(_RESERVE, row).scalar_one() for row in rows]
    return Reservation(tuple(ids), tuple(pairs), estimate, holder)


def settle_in(conn: Connection, reservation: Reservation, actual: Spend) -> None:
    """:meth:`Ledger.settle` in the caller's transaction."""
    if reservation.ids:
        params = {"ids": list(reservation.ids), "cost": actual.cost, "tokens": actual.tokens, "at": _now()}
        conn.execute(_SETTLE, params)


def release_in(conn: Connection, reservation: Reservation) -> None:
    """:meth:`Ledger.release` in the caller's transaction."""
    if reservation.ids:
        conn.execute(_RELEASE, {"ids": list(reservation.ids)})


def spent_in(conn: Connection, budget: Budget, window: str) -> tuple[Spend, Spend]:
    """(settled, reserved in flight) of ``budget`` in ``window``, in the caller's transaction."""
    return _spend(conn, budget.name, window, _now())[:2]
