"""The shared context of a run: versioned keys that steps read and write, stored with their events.

Every write names the version it read (``base_version``). When another writer got there first, the
key's strategy decides: ``reject`` (re-read and recompute, or fail), ``last_writer_wins``, ``merge``
(maps deep-merged, lists united; a merge key merges every write, raced or not, so that it
accumulates what parallel steps contribute), ``three_way_merge`` (text, against the version both
started from) or ``escalate`` (a person decides). Versions are append-only rows keyed by (run, key,
version): two writers racing for the same next version cannot both insert it, whichever the
database, so no write is lost. The new version and its events commit in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from baton.context.strategies import (
    RESOLVERS,
    STRATEGIES,
    Conflict,
    ContextEscalation,
    Unresolved,
    deep_merge,
)
from baton.errors import ContextConflict
from baton.events import schema
from baton.events.event import Event
from baton.events.store import EventStore

__all__ = ["ContextConflict", "ContextEscalation", "ContextStore", "Entry", "Writer"]


@dataclass(frozen=True)
class Entry:
    key: str
    version: int
    value: Any
    writer: str


@dataclass(frozen=True)
class Writer:
    """Who writes: the run, and the step (and try) that the events are filed under."""

    run_id: str
    workflow: str
    name: str
    step: str | None = None
    map_index: int = -1
    try_number: int = 0


class ContextStore:
    """Reads and writes the shared context of runs, in Baton's event store."""

    def __init__(self, events: EventStore, attempts: int = 20):
        self.events = events
        self.attempts = attempts

    def get(self, run_id: str, key: str, version: int | None = None) -> Entry | None:
        """The latest version of ``key`` (or the given one)."""
        c = schema.context_versions.c
        query = select(c.key, c.version, c.value, c.writer).where(c.run_id == run_id, c.key == key)
        query = query.where(c.version == version) if version is not None else query
        with self.events.engine.connect() as conn:
            row = conn.execute(query.order_by(c.version.desc()).limit(1)).first()
        return Entry(*row) if row else None

    def history(self, run_id: str) -> list[Entry]:
        """Every version of every key of a run, by key then version."""
        c = schema.context_versions.c
        with self.events.engine.connect() as conn:
            rows = conn.execute(
                select(c.key, c.version, c.value, c.writer)
                .where(c.run_id == run_id)
                .order_by(c.key, c.version)
            ).all()
        return [Entry(*row) for row in rows]

    def snapshot(self, run_id: str) -> dict[str, Entry]:
        """The latest version of every key of a run."""
        return {entry.key: entry for entry in self.history(run_id)}  # by version: the last one stays

    def write(
        self,
        writer: Writer,
        key: str,
        value: Any,
        *,
        base_version: int,
        strategy: str,
        recompute: Callable[[Any], Any] | None = None,
    ) -> Entry:
        """Write ``value`` over the version ``base_version`` that the writer read.

        :param recompute: with ``reject``, called with the newer value to compute a new write
            (the optimistic-concurrency retry); without it a rejected write raises.
        :raises ContextConflict: the strategy could not resolve the conflict.
        :raises ContextEscalation: the strategy is ``escalate``.
        """
        # long: optimistic concurrency: read, resolve, insert, retry on a lost race
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown context strategy '{strategy}'; use one of {', '.join(STRATEGIES)}")
        for attempt in range(self.attempts):
            current = self.get(writer.run_id, key)
            version = current.version if current else 0
            notes: list[Event] = []
            new_value = value
            if strategy == "merge" and current is not None and version == base_version:
                new_value = deep_merge(current.value, value)  # a merge key accumulates every write
            if version != base_version:
                notes.append(
                    self._event(
                        writer,
                        "context.conflict",
                        f"{key}@{version}#{attempt}",
                        {
                            "key": key,
                            "strategy": strategy,
                            "base_version": base_version,
                            "current_version": version,
                            "writer": writer.name,
                            "other_writer": current.writer if current else "",
                        },
                    )
                )
                new_value, outcome = self._resolve(
                    writer, key, value, base_version, current, strategy, recompute, notes, attempt
                )
                if outcome == "retried":
                    value, base_version = new_value, version
                    continue
                notes.append(self._resolved(writer, key, strategy, outcome, attempt, version + 1))
            try:
                return self._insert(writer, key, version + 1, base_version, new_value, notes)
            except IntegrityError:
                continue  # another writer took that version first: read again
        raise ContextConflict(
            f"context key '{key}' of run {writer.run_id}: no write after {self.attempts} tries"
        )

    def _resolve(
        self,
        writer: Writer,
        key: str,
        value: Any,
        base_version: int,
        current: Entry,
        strategy: str,
        recompute: Callable[[Any], Any] | None,
        notes: list[Event],
        attempt: int,
    ) -> tuple[Any, str]:
        """The value to write over ``current`` and the outcome, from the key's strategy (its resolver in
        ``RESOLVERS``); raises the conflict error when there is none (its events stored first)."""

        def base() -> Any:
            found = self.get(writer.run_id, key, base_version) if base_version else None
            return found.value if found else None

        conflict = Conflict(
            key=key,
            value=value,
            base=base,
            current=current.value,
            writer=writer.name,
            other=current.writer,
            base_version=base_version,
            current_version=current.version,
            recompute=recompute,
        )
        try:
            new_value, outcome = RESOLVERS[strategy](conflict)
        except Unresolved as unresolved:
            notes.append(
                self._resolved(writer, key, strategy, unresolved.outcome, attempt, None, unresolved.detail)
            )
            self.events.append(notes)
            raise unresolved.error from None
        if outcome == "retried":  # recorded now: the retry writes again over the latest version
            notes.append(self._resolved(writer, key, strategy, "retried", attempt, None))
            self.events.append(notes)
        return new_value, outcome

    def _insert(
        self, writer: Writer, key: str, version: int, base_version: int, value: Any, notes: list[Event]
    ) -> Entry:
        payload = self.events.output_payload(value)
        written = {
            "key": key,
            "version": version,
            "base_version": base_version,
            "writer": writer.name,
            "sha256": payload["sha256"],
            "size": payload["size"],
            "value": payload.get("output"),
            "ref": payload.get("ref"),
        }
        events = [*notes, self._event(writer, "context.written", f"{key}@{version}", written)]
        with self.events.engine.begin() as conn:
            conn.execute(
                schema.context_versions.insert().values(
                    run_id=writer.run_id,
                    key=key,
                    version=version,
                    value=value,
                    writer=writer.name,
                    ts=datetime.now(UTC),
                )
            )
            self.events.append_in(conn, events)
        return Entry(key, version, value, writer.name)

    def _event(self, writer: Writer, kind: str, discriminator: str, payload: dict[str, Any]) -> Event:
        return Event.like(writer, kind, discriminator=f"{writer.name}:{discriminator}", payload=payload)

    def _resolved(
        self,
        writer: Writer,
        key: str,
        strategy: str,
        outcome: str,
        attempt: int,
        version: int | None,
        detail: str = "",
    ) -> Event:
        return self._event(
            writer,
            "context.resolved",
            f"{key}#{attempt}",
            {"key": key, "strategy": strategy, "outcome": outcome, "version": version, "detail": detail},
        )
