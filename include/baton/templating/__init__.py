"""Jinja for instructions, ``when``, ``writes`` and ``with``: sandboxed, read-only, bounded and strict, over
``inputs``, ``steps``, ``run`` and ``context`` (the run's shared context).

A template is data written by whoever may edit ``dags/``. Its Jinja runs in Jinja's immutable sandbox (no
Python internals, no changing the values it reads: ``inputs`` or an upstream step's output stay as they
were) and within :mod:`baton.limits`: every loop of one rendering shares ``max_render_iterations``, the
rendering stops at ``max_render_seconds`` and at ``max_rendered_chars`` of output, and the operations that
can make a value huge in one step (``*``, ``**``, ``%``, ``+``, widths and counts given to calls and
filters) are refused before they run when their result would pass the output limit. At validate time,
:func:`references` reports what a text reads and what it must not touch (dunder and private attributes,
methods that mutate what they are called on), so such a template never reaches a worker."""

from baton.templating.analysis import Reads, _analyse, analyse, context_reads, references
from baton.templating.render import arguments, evaluate, render, value
from baton.templating.sandbox import (
    ATTRIBUTE_FILTERS,
    CONTEXT_NAMES,
    ENV,
    MUTATING_METHODS,
    BoundedSandbox,
    RenderLimit,
)

__all__ = [
    "ATTRIBUTE_FILTERS",
    "BoundedSandbox",
    "CONTEXT_NAMES",
    "ENV",
    "MUTATING_METHODS",
    "Reads",
    "RenderLimit",
    "analyse",
    "arguments",
    "context_reads",
    "evaluate",
    "references",
    "render",
    "value",
    "_analyse",  # its cache is inspected by tests
]
