"""BrowserOperator: a declarative browser step — the template's actions, performed in Chromium by an
agent with browser access, within its allowed hosts (the call itself is :func:`baton.agents.call.browse`)."""

from __future__ import annotations

from baton.operators.step import StepOperator


class BrowserOperator(StepOperator):
    """Run a step's declared browser actions (``browser:`` in the template) with its agent's
    ``BrowserAccess``: each action recorded (``browser.action``; typed values never), each refused
    request (``browser.blocked``), each screenshot and download (``artifact.saved``, the files under
    ``<artifacts>/<dag>/<run>/<task>[.<map index>]/try-<n>/``).

    The output is the extracts by name, ``url``, ``screenshots`` and ``downloads``
    (see :mod:`baton.browser.runner`). Its own class only so that the graph tells browser steps apart.
    """

    ui_color = "#e8f4ea"
