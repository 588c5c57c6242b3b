"""Every Jinja-bearing field: syntax, nesting, unsafe access, and that each name it reads exists and is
upstream."""

from __future__ import annotations

from collections.abc import Iterator

import jinja2

from baton import templating
from baton.limits import Limits, limits
from baton.spec.checks.common import Found, _suggest
from baton.spec.checks.graph import Ancestry
from baton.spec.models import Workflow, strings_of
from baton.templating.analysis import LOADS
from baton.templating.sandbox import LOAD_FIX


def read_jinja(
    source: str, expression: bool, bound: Limits | None = None
) -> tuple[templating.Reads | None, list[tuple[str, str]]]:
    """What a Jinja text reads (None when it cannot be read), and its problems as (message, fix): a
    syntax error, nesting deeper than ``max_jinja_depth``, and every unsafe access."""
    bound = bound or limits()
    try:
        reads = templating.analyse(source, expression=expression)
    except jinja2.TemplateSyntaxError as error:
        return None, [(f"Jinja syntax error: {error.message}", "fix the {{ ... }} expression")]
    except RecursionError:
        reads = None
    if reads is None or reads.depth > bound.max_jinja_depth:
        return None, [
            (
                f"Jinja nested deeper than {bound.max_jinja_depth} levels (parentheses, filters, blocks)",
                f"split the expression with {{% set %}}, {bound.fix('max_jinja_depth')}",
            )
        ]
    return reads, [
        (
            f"unsafe Jinja: it {why}",
            LOAD_FIX
            if why.startswith(LOADS)
            else "templates read values; they never reach Python internals or change data",
        )
        for why in reads.unsafe
    ]


def _check_templates(workflow: Workflow) -> Iterator[Found]:
    """Every Jinja text of every step (and of its compensation): it parses, it is safe, and each name it
    reads exists where the step runs."""
    ancestry = Ancestry(workflow)
    declared = sorted(workflow.context)
    bound = limits()  # read once: a workflow has many texts
    for index, step in enumerate(workflow.steps):
        for key in step.writes:
            if key not in workflow.context:
                yield (
                    ("steps", index, "writes", key),
                    f"unknown context key '{key}'",
                    f"declare it under context: (with a strategy); {_suggest(key, declared)}",
                )
        for path, source, expression, extra in [*step.jinja_sources(), *step.compensation_sources()]:
            if source:
                loc = ("steps", index, *path)
                yield from _check_text(workflow, ancestry, step.id, loc, (source, expression, bound), extra)


def _check_text(
    workflow: Workflow,
    ancestry: Ancestry,
    step_id: str,
    loc: tuple,
    text: tuple[str, bool, Limits],
    extra: frozenset[str],
) -> Iterator[Found]:
    """One Jinja text of step ``step_id`` at ``loc`` (its source, whether it is an expression, the limits):
    its problems, then each name it reads."""
    reads, problems = read_jinja(*text)
    yield from ((loc, message, fix) for message, fix in problems)
    if reads is None:
        return
    unknown, steps_read, inputs_read = reads.names
    if "trigger" in unknown and workflow.trigger is None:
        yield (
            loc,
            "reads 'trigger', but the workflow has no trigger (its runs start by hand or on schedule)",
            "add a trigger: (a sensor, an asset or a queue), or read inputs instead",
        )
    for name in sorted(unknown - extra - {"trigger"}):
        yield (
            loc,
            f"unknown name '{name}' in Jinja",
            "use inputs.<name>, steps.<step id>.<field>, context.<key> or run.<id|logical_date|ds>"
            + (f", or {' / '.join(sorted(extra))}" if extra else ""),
        )
    if loc[2] == "compensate":
        if steps_read or reads.context:
            names = [
                *(f"steps.{n}" for n in sorted(steps_read)),
                *(f"context.{n}" for n in sorted(reads.context)),
            ]
            yield (
                loc,
                "a compensation reads the step's own output, not " + ", ".join(names),
                "use output.<field> (and item / index for a for_each step), inputs or run",
            )
        return
    yield from _check_reads(workflow, ancestry, step_id, loc, steps_read, inputs_read, reads.context)


def _check_reads(
    workflow: Workflow,
    ancestry: Ancestry,
    step_id: str,
    loc: tuple,
    steps_read: frozenset[str],
    inputs_read: frozenset[str],
    context_read: frozenset[str],
) -> Iterator[Found]:
    """The steps a text reads are upstream of its step; the inputs and context keys it reads exist."""
    for name in sorted(steps_read):
        if name not in ancestry.order:
            yield (loc, f"references unknown step '{name}'", _suggest(name, sorted(ancestry.order)))
        elif not ancestry.is_upstream(name, step_id):
            yield (
                loc,
                f"references step '{name}', which is not upstream of '{step_id}'",
                f"add '{name}' to needs of '{step_id}'",
            )
    for name in sorted(inputs_read - set(workflow.inputs)):
        yield (loc, f"references unknown input '{name}'", _suggest(name, sorted(workflow.inputs)))
    for name in sorted(context_read - set(workflow.context)):
        yield (
            loc,
            f"reads unknown context key '{name}'",
            f"declare it under context:; {_suggest(name, sorted(workflow.context))}",
        )


SENSOR_SCOPE = frozenset({"inputs", "run"})  # what a sensor's threshold and params are rendered over


def _check_sensor_templates(workflow: Workflow) -> Iterator[Found]:
    """A ``sql_threshold`` sensor's ``threshold`` and ``params`` are Jinja over ``inputs`` (and ``run``),
    rendered when the sensor starts: checked here like any instruction, not first in the triggerer."""
    sensor = workflow.trigger.sensor if workflow.trigger is not None else None
    if sensor is None or sensor.kind != "sql_threshold":
        return
    spec = sensor.spec
    base = ("trigger", "sensor", "sql_threshold")
    texts = [(("threshold",), spec.threshold)] if isinstance(spec.threshold, str) else []
    texts += [(("params", *path), text) for path, text in strings_of(spec.params)]
    for path, text in texts:
        loc = (*base, *path)
        reads, problems = read_jinja(text, expression=False)
        yield from ((loc, message, fix) for message, fix in problems)
        if reads is None:
            continue
        unknown, steps_read, inputs_read = reads.names
        scope_read = {"steps"} if steps_read else set()
        scope_read |= {"context"} if reads.context else set()
        for name in sorted((unknown | scope_read) - SENSOR_SCOPE):
            yield (
                loc,
                f"unknown name '{name}' in Jinja: a sensor's threshold and params are rendered before any step runs",
                "use inputs.<name> (or run.id)",
            )
        for name in sorted(inputs_read - set(workflow.inputs)):
            yield (loc, f"references unknown input '{name}'", _suggest(name, sorted(workflow.inputs)))
