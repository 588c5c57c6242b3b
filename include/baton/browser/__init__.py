"""The browser runtime of browser agents: Playwright driving Chromium, only on the agent's allowed hosts.

- :func:`baton.browser.runner.run_actions` performs a declarative browser step;
- :func:`baton.browser.tools.browser_toolset` gives a model browser tools (pydantic-ai);
- :class:`baton.browser.session.BrowserSession` is the one Chromium of a step, made of its guard on the
  network (:mod:`~baton.browser.guard`), its record (:mod:`~baton.browser.journal`), what it reads of a
  page (:mod:`~baton.browser.extraction`) and the files it keeps (:mod:`~baton.browser.files`,
  :mod:`~baton.browser.artifacts`).

This package module holds the errors only, so importing it is cheap; Playwright and pydantic-ai are
imported when a browser is used.
"""

from __future__ import annotations

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


class ActionFailed(Exception):
    """An action failed for a reason this package words itself; the session turns it into a
    :class:`BrowserError` that says which action."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ActionRefused(Exception):
    """A navigation the allowlist refused before it started; the session raises :class:`NavigationBlocked`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


__all__ = ["ActionFailed", "ActionRefused", "BrowserError", "NavigationBlocked"]
