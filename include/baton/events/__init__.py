"""Baton's event store: an append-only history of runs, steps and agent decisions, with projections
and replay. It depends on nothing else of Baton's but its errors.

The modules, from the bottom: ``types`` (the payloads), ``event`` (an ``Event``), ``schema``, ``log`` (the
append-only log, handed the projections it keeps), ``summaries`` and ``summary_writes`` (the projections),
``projections`` (which the store keeps, and the reads they share), ``store`` (the store opened, with them),
then ``migrations``, ``replay``, ``recorder`` and ``feedback`` over it."""

from typing import Any

__all__ = ["CorruptEvent", "Event", "EventStore", "StoreError"]


def __getattr__(name: str) -> Any:
    """``from baton.events import EventStore`` (and the other three names) as before, while importing any
    one module of the package (``schema``, a DAG file's ``store.connection_url``) loads only what that
    module needs: the payload catalogue and the store stay out of a DAG file's parse. Baton's own modules
    import each name from its module."""
    if name in ("Event", "CorruptEvent"):
        from baton.events import event  # deferred: the package's names load on first use (its docstring)

        return getattr(event, name)
    if name == "StoreError":
        from baton.events import log  # deferred: the package's names load on first use (its docstring)

        return log.StoreError
    if name == "EventStore":
        from baton.events import store  # deferred: the package's names load on first use (its docstring)

        return store.EventStore
    raise AttributeError(f"module 'baton.events' has no attribute {name!r}")
