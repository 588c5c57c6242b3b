"""The demo web site and an in-memory recorder for the browser runtime's tests."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from demo.web import DemoWeb


class Events:
    """What a step records (``record(type, payload)``), kept in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.items.append((kind, payload))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [payload for k, payload in self.items if k == kind]

    def text(self) -> str:
        return json.dumps(self.items)


class LogText(logging.Handler):
    """Everything the ``baton`` loggers write, as text (module-scoped fixtures cannot use caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> LogText:
        logger = logging.getLogger("baton")
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("baton")
        logger.removeHandler(self)
        logger.setLevel(self._level)


@pytest.fixture(scope="module")
def web():
    with DemoWeb() as site:
        yield site
