"""Baton's event store: an append-only history of runs, steps and agent decisions, with projections
and replay. It depends on nothing else of Baton's."""

from baton.events.store import CorruptEvent, Event, EventStore, StoreError

__all__ = ["CorruptEvent", "Event", "EventStore", "StoreError"]
