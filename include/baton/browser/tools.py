"""Browser tools a model can call (a pydantic-ai toolset), within its agent's ``browser`` access.

The browser starts at the first tool call and is closed when the agent run that entered the toolset
ends. A refused navigation, a missing element or the ``max_actions``-th call are answered with a
message the model can act on, not an exception that ends the run; each call is recorded as a
``browser.action`` (``mode: agent``), each refusal as ``browser.blocked``, each file as
``artifact.saved``. The values a model types are never recorded.

    toolset = browser_toolset(agent.browser, record=record, artifacts=Artifacts.for_task(context))
    Agent(model, toolsets=[toolset]).run_sync(prompt)
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from pydantic_ai.toolsets import FunctionToolset

from baton.browser import BrowserError, NavigationBlocked
from baton.browser.artifacts import Artifacts
from baton.browser.journal import Record
from baton.browser.session import BrowserSession
from baton.spec.browser import BrowserAccess, Check, Click, Extract, Fill, Goto, Screenshot, Select

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
log = logging.getLogger("baton.browser")
ERROR_PAGE_WAIT_S = 2.0  # Chromium commits its error page within milliseconds; this bounds a page that stays


class BrowserToolset(FunctionToolset):
    """``goto``, ``click``, ``fill``, ``select``, ``check``, ``read_page``, ``extract_table`` and
    ``screenshot`` on one browser; see :func:`browser_toolset`."""

    def __init__(
        self,
        access: BrowserAccess | dict[str, Any],
        *,
        record: Record,
        artifacts: Artifacts | None = None,
        step: str = "",
        text_limit: int = 4000,
    ):
        access = access if isinstance(access, BrowserAccess) else BrowserAccess.model_validate(access)
        self.access = access
        self.session = BrowserSession(access, record=record, artifacts=artifacts, mode="agent", step=step)
        self.text_limit = text_limit
        self.calls = 0
        self._depth = 0
        self._starting: asyncio.Lock | None = None
        super().__init__(
            [
                self.goto,
                self.click,
                self.fill,
                self.select,
                self.check,
                self.read_page,
                self.extract_table,
                self.screenshot,
            ],
            sequential=True,  # one page: its actions happen one after the other
            id="browser",
            instructions=(
                "You have a web browser. Open a page with goto, read it with read_page (its text, links "
                "and form fields with their selectors), then click, fill, select, check, extract_table "
                f"or screenshot. Only these hosts can be opened: {', '.join(access.allow)}; anything "
                f"else is blocked. At most {access.max_actions} browser actions in this task."
            ),
        )

    # --- lifecycle: the browser lives as long as the agent run that entered the toolset ---------

    async def __aenter__(self) -> BrowserToolset:
        self._depth += 1
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        self._depth = max(0, self._depth - 1)
        if self._depth == 0:
            await self.aclose()
        return None

    async def aclose(self) -> None:
        """Close the browser (the toolset may start another at its next call, in another event loop)."""
        await self.session.close()
        self._starting = None

    async def _ready(self) -> BrowserSession:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if not self.session.started:
                await self.session.start()
        return self.session

    # --- one call ----------------------------------------------------------------------------------

    def _refused(self, action: str, selector: str = "") -> str | None:
        """The answer to a call past ``max_actions`` (recorded), or None while calls are left."""
        index = self.calls
        self.calls += 1
        if index < self.access.max_actions:
            return None
        message = (
            f"refused: this task's limit of {self.access.max_actions} browser actions is reached; "
            "answer with what you have found"
        )
        self.session.journal.action_event(index, action, selector, time.monotonic(), message)
        return message

    async def _act(self, action: Any, label: str | None = None) -> tuple[Any, str | None]:
        """(value, None), or (None, the message for the model) when the action failed or was refused."""
        name = label or action.action
        refused = self._refused(name, getattr(action, "selector", "") or "")
        if refused:
            return None, refused
        session = await self._ready()
        index = self.calls - 1
        before = len(session.guard.blocked)
        try:
            value = await session.perform(index, action, label=label)
        except NavigationBlocked as error:
            return None, error.reason
        except BrowserError as error:
            return None, "error: " + error.reason
        blocked = session.guard.navigation_blocks(before)
        if blocked:
            await self._leave_error_page()
            where = await self._where()
            refusal = session.guard.refusal(blocked[0]["url"])
            return value, f"blocked: the page tried to go to {blocked[0]['url']}: {refusal}; {where}"
        return value, None

    async def _leave_error_page(self) -> None:
        """After a refused navigation Chromium shows its error page for the refused address, committed a
        moment after the refusal (under load, after this call has returned): wait for it, at most
        ERROR_PAGE_WAIT_S, and go back, so that the page is again the one the navigation left."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        page = self.session.page
        try:
            await page.wait_for_url(
                lambda url: url.startswith("chrome-error:"),
                wait_until="commit",
                timeout=ERROR_PAGE_WAIT_S * 1000,
            )
        except PlaywrightTimeout:
            log.debug("no error page within %s s of a refused navigation: the page stayed", ERROR_PAGE_WAIT_S)
            return
        await page.go_back()

    async def _where(self) -> str:
        page = self.session.page
        return f"now at {page.url} ({await page.title()!r})"

    # --- the tools (their docstrings are what the model reads) -------------------------------------

    async def goto(self, url: str) -> str:
        """Open a web page.

        Args:
            url: the absolute URL (http or https) of the page.
        """
        status, problem = await self._act(Goto(url=url))
        if problem:
            return problem
        return f"opened, HTTP {status}; {await self._where()}"

    async def click(self, selector: str) -> str:
        """Click an element (a link, a button).

        Args:
            selector: a CSS selector of exactly one element, e.g. '#submit' or 'a[href="/pricing"]'.
        """
        _, problem = await self._act(Click(selector=selector))
        if problem:
            return problem
        await self.session.final_url()
        return f"clicked; {await self._where()}"

    async def fill(self, selector: str, value: str) -> str:
        """Type a value into a text field (replacing what it held).

        Args:
            selector: a CSS selector of the input or textarea, e.g. '#email'.
            value: the text to type.
        """
        _, problem = await self._act(Fill(selector=selector, value=value))
        return problem or "filled"

    async def select(self, selector: str, value: str) -> str:
        """Choose an option of a <select> list.

        Args:
            selector: a CSS selector of the <select>.
            value: the option's value or its visible label.
        """
        _, problem = await self._act(Select(selector=selector, value=value))
        return problem or "selected"

    async def check(self, selector: str, checked: bool = True) -> str:
        """Tick (or untick) a checkbox.

        Args:
            selector: a CSS selector of the checkbox.
            checked: True to tick it, False to clear it.
        """
        _, problem = await self._act(Check(selector=selector, checked=checked))
        return problem or ("checked" if checked else "unchecked")

    async def read_page(self) -> dict[str, Any] | str:
        """Read the current page: its title, URL, visible text (trimmed), links (text and absolute
        href) and form fields (selector, type, label, the options of a select)."""
        refused = self._refused("read_page")
        if refused:
            return refused
        session = await self._ready()
        started = time.monotonic()
        try:
            page = await session.read_page(self.text_limit)
        except Exception as error:
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            session.journal.action_event(self.calls - 1, "read_page", "", started, message)
            return "error: " + message
        session.journal.action_event(self.calls - 1, "read_page", "", started)
        return page

    async def extract_table(self, selector: str = "table") -> list[dict[str, str]] | str:
        """Read a table of the current page as rows keyed by its header cells.

        Args:
            selector: a CSS selector of the <table> (or of an element holding one).
        """
        rows, problem = await self._act(
            Extract(name="table", selector=selector, kind="table"), label="extract_table"
        )
        return problem or rows

    async def screenshot(self, name: str) -> str:
        """Save a screenshot of the current page (kept with the task's files).

        Args:
            name: a short name in lower case letters, digits and underscores, e.g. 'pricing_page'.
        """
        if not _NAME.match(name):
            return "error: name the screenshot in lower case letters, digits and underscores, e.g. 'pricing'"
        path, problem = await self._act(Screenshot(name=name))
        return problem or f"saved as {path}"


def browser_toolset(
    access: BrowserAccess | dict[str, Any],
    *,
    record: Record,
    artifacts: Artifacts | None = None,
    step: str = "",
) -> BrowserToolset:
    """The browser tools of an agent with ``browser`` access, for a pydantic-ai ``Agent(toolsets=[...])``.

    :param access: the agent's ``browser`` (allowed hosts, timeouts, ``max_actions``).
    :param record: ``record(event_type, payload)`` for ``browser.action``, ``browser.blocked`` and
        ``artifact.saved``.
    :param artifacts: where screenshots go (None: the screenshot tool answers that it cannot).
    :param step: the step's id, for logs.
    """
    return BrowserToolset(access, record=record, artifacts=artifacts, step=step)
