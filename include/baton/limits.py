"""Baton's limits on what one template may cost: named, with defaults, each raised by an environment variable.

A template is data from whoever may edit ``dags/``; one file must never hold the DAG processor (whose
``dagbag_import_timeout`` is 30 s for every template together), a validation or a worker for long, nor
exhaust its memory. Each limit is checked before the work it bounds, and its message says which limit
it was and how to raise it::

    BATON_MAX_TEMPLATE_BYTES=2000000 baton validate
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import lru_cache

#: characters of one sensor's SQL query (a fixed bound: the query is parsed before anything else)
MAX_SENSOR_QUERY_CHARS = 20_000


@dataclass(frozen=True)
class Limits:
    """The limits in force (the defaults, or the environment's ``BATON_<NAME>``)."""

    #: bytes of one template or roster file (read no further than this)
    max_template_bytes: int = 1_000_000
    #: nesting of mappings and lists in one YAML file
    max_yaml_depth: int = 50
    #: YAML nodes of one file once every alias is expanded (what walking it costs)
    max_yaml_nodes: int = 200_000
    #: steps of one workflow
    max_steps: int = 1_000
    #: nesting of one Jinja expression or statement (parentheses, filters, blocks)
    max_jinja_depth: int = 40
    #: characters one rendering (an instruction, a value of ``with``) may produce
    max_rendered_chars: int = 1_000_000
    #: seconds one rendering may take
    max_render_seconds: float = 5.0
    #: loop iterations one rendering may make (every ``for`` of it together)
    max_render_iterations: int = 1_000_000

    @staticmethod
    def variable(name: str) -> str:
        return f"BATON_{name.upper()}"

    def fix(self, name: str) -> str:
        """How to raise the limit ``name``."""
        return f"or raise the limit: {self.variable(name)}={_raised(getattr(self, name))}"


_VARIABLES = tuple(Limits.variable(spec.name) for spec in fields(Limits))


def _raised(value: int | float) -> str:
    return f"{value * 2:g}" if isinstance(value, float) else str(value * 2)


def limits() -> Limits:
    """The limits, read from the environment at each call (tests and operators may change it); the
    values are parsed once per distinct setting (validation asks for every Jinja text)."""
    return _parsed(tuple(os.environ.get(variable) for variable in _VARIABLES))


@lru_cache(maxsize=64)
def _parsed(raws: tuple[str | None, ...]) -> Limits:
    values = {}
    for spec, raw in zip(fields(Limits), raws, strict=True):
        if raw is None or not raw.strip():
            continue
        kind = float if spec.type in ("float", float) else int
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(
                f"{Limits.variable(spec.name)}={raw!r} is not a number; unset it or give a "
                f"{'number' if kind is float else 'whole number'} (default {spec.default})"
            ) from None
        if value <= 0:
            raise ValueError(f"{Limits.variable(spec.name)}={raw!r} must be above 0 (default {spec.default})")
        values[spec.name] = value
    return Limits(**values)
