"""Baton's event store: an append-only history of runs, steps and agent decisions, with projections
and replay. It depends on nothing else of Baton's but its errors.

The modules, from the bottom: ``types`` (the payloads), ``event`` (an ``Event``), ``schema``, ``log`` (the
append-only log, handed the projections it keeps), ``summaries`` and ``summary_writes`` (the projections),
``projections`` (which the store keeps, and the reads they share), ``store`` (the store opened, with them),
then ``migrations``, ``replay``, ``recorder`` and ``feedback`` over it."""

from baton.events.event import CorruptEvent, Event
from baton.events.log import StoreError
from baton.events.store import EventStore

__all__ = ["CorruptEvent", "Event", "EventStore", "StoreError"]
