"""The shared context of runs: versioned keys, conflict strategies, stored with the events."""

from baton.context.store import ContextConflict, ContextEscalation, ContextStore, Entry, Writer
from baton.context.strategies import STRATEGIES

__all__ = ["STRATEGIES", "ContextConflict", "ContextEscalation", "ContextStore", "Entry", "Writer"]
