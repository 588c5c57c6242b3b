"""BrowserOperator: a declarative browser step — the template's actions, performed in Chromium by an
agent with browser access, within its allowed hosts.

The module imports no runtime: Playwright, the event store and the runner load in ``_call``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from baton.effects import effect
from baton.errors import AgentError
from baton.operators.agent import AgentOperator


@effect("browser.actions")
def browse(
    actions: list[dict[str, Any]],
    access: dict[str, Any],
    *,
    scope: dict[str, Any],
    record: Any,
    artifacts: Any,
    step: str,
) -> dict[str, Any]:
    """The step's actions as one side effect (they may submit forms): a try or a rerun that finds its
    output recorded reuses it instead of submitting again."""
    from baton.browser.runner import run_actions

    return run_actions(actions, access, scope=scope, record=record, artifacts=artifacts, step=step)


class BrowserOperator(AgentOperator):
    """Run a step's declared browser actions (``browser:`` in the template) with its agent's
    ``BrowserAccess``: each action recorded (``browser.action``; typed values never), each refused
    request (``browser.blocked``), each screenshot and download (``artifact.saved``, the files under
    ``<artifacts>/<dag>/<run>/<task>[.<map index>]/try-<n>/``).

    The output is the extracts by name, ``url``, ``screenshots`` and ``downloads``
    (see :mod:`baton.browser.runner`).

    :param browser_actions: the step's actions, each ``model_dump(mode="json")`` of a
        ``baton.spec.browser`` action (or its one-key template form).
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, browser_actions: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.browser_actions = [dict(action) for action in browser_actions]

    def _call(self, prompt: str, scope: dict[str, Any], context: Any, recorder: Any) -> dict[str, Any]:
        from baton.browser.artifacts import Artifacts

        agent = self.agent or {}
        access = agent.get("browser")
        if not access:
            raise AgentError(
                f"Step '{self.task_id}' declares browser actions, but agent '{agent.get('name')}' has no "
                "browser access; give it `browser: {allow: [<hosts>]}` in the roster, or name an agent "
                "that has it"
            )

        numbers = itertools.count(1)

        def record(kind: str, payload: dict[str, Any]) -> None:
            # One try records many actions, blocks and artifacts: each its own event.
            recorder.record(recorder.event(kind, payload, discriminator=str(next(numbers))))

        return browse(
            self.browser_actions,
            access,
            scope=scope,
            record=record,
            artifacts=Artifacts.for_task(context),
            step=self.task_id,
        )
