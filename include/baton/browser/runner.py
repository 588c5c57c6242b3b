"""A declarative browser step: the template's actions, in order, in one Chromium.

The output is one object: each ``extract``'s ``name`` -> its value (``text``: a string; ``all_text``:
a list of strings; ``table``: a list of objects keyed by the header cells; ``attribute``: a string),
then ``url`` (the page at the end), ``screenshots`` and ``downloads`` (name -> path relative to the
artifacts root)::

    {"account_id": "CRM-0001", "url": "http://127.0.0.1:8765/crm/welcome/CRM-0001",
     "screenshots": {"signed_up": "<dag>/<run>/<task>/try-1/signed_up.png"}, "downloads": {}}
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from baton import templating
from baton.browser import BrowserError
from baton.browser.artifacts import Artifacts
from baton.browser.journal import Record
from baton.browser.session import BrowserSession
from baton.spec.browser import BrowserAccess, BrowserAction, action_strings

RESERVED = ("url", "screenshots", "downloads")


def parse_actions(actions: Sequence[Any]) -> list[Any]:
    """Typed actions from the template's form (``{fill: {...}}``), ``model_dump`` dicts, or models."""
    from pydantic import TypeAdapter

    return TypeAdapter(list[BrowserAction]).validate_python(list(actions))


def action_problems(actions: Sequence[Any]) -> list[str]:
    """What makes a list of actions unusable before any runs: two outputs of one name, or an extract
    named like a key of the output."""
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for index, action in enumerate(parse_actions(actions)):
        name = getattr(action, "name", None)
        if name is None:
            continue
        group = "extract" if action.action == "extract" else action.action
        if action.action == "extract" and name in RESERVED:
            problems.append(
                f"browser[{index}] (extract): the name '{name}' is a key of the step's output "
                f"({', '.join(RESERVED)}); choose another name"
            )
        if (group, name) in seen:
            problems.append(
                f"browser[{index}] ({action.action}): the name '{name}' is already used by "
                f"browser[{seen[group, name]}]; give each {group} its own name"
            )
        seen.setdefault((group, name), index)
    return problems


def render_action(action: Any, scope: dict[str, Any]) -> Any:
    """``action`` with its string arguments rendered (Jinja over the step's scope)."""
    rendered = {field: templating.render(text, scope) for field, text in action_strings(action)}
    return action.model_copy(update=rendered) if rendered else action


async def run_actions_async(
    actions: Sequence[Any],
    access: BrowserAccess | dict[str, Any],
    *,
    scope: dict[str, Any],
    record: Record,
    artifacts: Artifacts | None,
    step: str = "",
) -> dict[str, Any]:
    """:func:`run_actions` inside a running event loop."""
    # long: one browser session: each action performed, recorded and bounded in turn
    typed = parse_actions(actions)
    problems = action_problems(typed)
    if problems:
        prefix = f"Step '{step}': " if step else ""
        raise BrowserError(prefix + "; ".join(problems))
    extracted: dict[str, Any] = {}
    output: dict[str, Any] = {"url": "", "screenshots": {}, "downloads": {}}
    if not typed:
        return output
    session = BrowserSession(access, record=record, artifacts=artifacts, mode="declared", step=step)
    # Every action is rendered, and every goto checked, before the browser starts: a step that cannot
    # finish this way does nothing at all.
    rendered = []
    for index, declared in enumerate(typed):
        started = time.monotonic()
        try:
            action = render_action(declared, scope)
        except Exception as error:
            raise session.journal.fail(
                index,
                declared.action,
                getattr(declared, "selector", ""),
                started,
                f"its arguments do not render: {type(error).__name__}: {error}; fix the Jinja of the action",
            ) from error
        if action.action == "fill":
            session.journal.typed(action.value)
        if action.action in ("screenshot", "download") and artifacts is None:
            raise session.journal.fail(
                index, action.action, "", started, "this step was given no artifacts folder to keep files in"
            )
        session.guard.refuse_early(index, action)
        rendered.append(action)
    async with session:
        for index, action in enumerate(rendered):
            value = await session.perform(index, action)
            if action.action == "extract":
                extracted[action.name] = value
            elif action.action == "screenshot":
                output["screenshots"][action.name] = value
            elif action.action == "download":
                output["downloads"][action.name] = value
        output["url"] = await session.final_url()
    return {**extracted, **output}


def run_actions(
    actions: Sequence[Any],
    access: BrowserAccess | dict[str, Any],
    *,
    scope: dict[str, Any],
    record: Record,
    artifacts: Artifacts | None,
    step: str = "",
) -> dict[str, Any]:
    """Perform a declarative browser step and return its output (see the module's docstring).

    :param actions: the step's actions (typed, ``model_dump`` dicts, or the template's one-key form).
    :param access: the agent's ``browser`` (allowed hosts, timeouts).
    :param scope: what the actions' Jinja reads (``inputs``, ``steps``, ``context``, ``run``).
    :param record: ``record(event_type, payload)``: a ``browser.action`` per action, a
        ``browser.blocked`` per refusal, an ``artifact.saved`` per file.
    :param artifacts: where screenshots and downloads go (None: a step that saves none).
    :param step: the step's id, for error messages.
    :raises BrowserError: (an ``AgentError``) naming the action's index, the action and its selector;
        ``NavigationBlocked`` when the allowlist refused a navigation.
    """
    call = run_actions_async(actions, access, scope=scope, record=record, artifacts=artifacts, step=step)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call)
    # Called from inside an event loop (asyncio.run cannot nest): run it in a thread of its own.
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(call)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, name="baton-browser", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
