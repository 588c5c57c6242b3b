"""What one browser session records: each action as ``browser.action`` (validated against its event
type), and its error texts, which never carry a value typed into a field nor a URL's query string.

The session's other records go through it too: the guard's ``browser.blocked``, the files'
``artifact.saved``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from baton.browser import BrowserError
from baton.events.types import EVENT_TYPES

log = logging.getLogger("baton.browser")

Record = Callable[[str, dict[str, Any]], None]
"""``record(event_type, payload)``: how the runtime hands its events to the caller's store."""

_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*)[?#][^\s'\"]*", re.IGNORECASE)


class Journal:
    """The record of one browser (a step's, or one model's run): ``mode`` is ``declared`` or ``agent``."""

    def __init__(self, record: Record, *, mode: str = "declared", step: str = ""):
        self._record = record
        self.mode = mode
        self.step = step
        self._typed: set[str] = set()

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        """Validate ``payload`` against the event type's model, then hand it to ``record``."""
        self._record(kind, EVENT_TYPES[kind].model_validate(payload).model_dump(mode="json"))

    def typed(self, value: str) -> None:
        """A value typed into a field: scrubbed from every error text from now on."""
        if value and len(value) >= 3:
            self._typed.add(value)

    def scrub(self, text: str) -> str:
        """``text`` without the typed values, nor the query string of any URL in it."""
        for value in sorted(self._typed, key=len, reverse=True):
            text = text.replace(value, "***")
        return _QUERY.sub(r"\1", text)

    def where(self, index: int, action: str, target: str = "") -> str:
        step = f"Step '{self.step}', " if self.step else ""
        return f"{step}browser[{index}] ({action}{f' {target!r}' if target else ''})"

    def action_event(self, index: int, action: str, selector: str, started: float, error: str = "") -> None:
        """Record (and log) one action: how long it took since ``started`` (monotonic), and its error."""
        latency = round(time.monotonic() - started, 3)
        self.emit(
            "browser.action",
            {
                "index": index,
                "action": action,
                "selector": selector,
                "mode": self.mode,
                "ok": not error,
                "error": self.scrub(error)[:2000],
                "latency_s": latency,
            },
        )
        if error:
            log.warning(
                "%s failed in %.2f s: %s", self.where(index, action, selector), latency, self.scrub(error)
            )
        else:
            log.info("%s ok in %.2f s", self.where(index, action, selector), latency)

    def fail(self, index: int, action: str, selector: str, started: float, reason: str) -> BrowserError:
        """Record a failed action and give the error that says where and why."""
        self.action_event(index, action, selector, started, reason)
        reason = self.scrub(reason)
        return BrowserError(f"{self.where(index, action, selector)}: {reason}", reason)
