"""The browser runtime of browser agents: Playwright driving Chromium, only on the agent's allowed hosts.

- :func:`run_actions` performs a declarative browser step (``baton.browser.runner``);
- :func:`browser_toolset` gives a model browser tools (``baton.browser.tools``, pydantic-ai);
- :class:`Allowlist` decides which hosts a browser may reach; :class:`Artifacts` keeps its files.

Importing this package is cheap: Playwright and pydantic-ai are imported when a browser is used.
"""

from __future__ import annotations

from typing import Any

from baton.errors import AgentError


class BrowserError(AgentError):
    """A browser action failed (no such element, a timeout, a page that answered an error).

    ``reason`` is the message without where it happened (what a model is told).
    """

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class NavigationBlocked(BrowserError):
    """A navigation to a host outside the agent's allowlist."""


_LAZY = {
    "Allowlist": "baton.egress.browser",
    "Artifacts": "baton.browser.artifacts",
    "artifacts_root": "baton.browser.artifacts",
    "task_folder": "baton.browser.artifacts",
    "run_actions": "baton.browser.runner",
    "run_actions_async": "baton.browser.runner",
    "action_problems": "baton.browser.runner",
    "BrowserSession": "baton.browser.session",
    "browser_toolset": "baton.browser.tools",
}

__all__ = ["BrowserError", "NavigationBlocked", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'baton.browser' has no attribute '{name}'")
