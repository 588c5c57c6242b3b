"""A step's side of the shared context: read the keys when the try starts, write its ``writes`` over the
versions it read (conflicts go to each key's strategy), and merge a fan-out's items at its join."""

from __future__ import annotations

import logging
from typing import Any

from baton import templating
from baton.context.store import ContextEscalation, ContextStore, Writer
from baton.events.store import EventStore


def writer(step: Any, context: Any, subtask: str | None = None) -> Writer:
    """Who writes: this try of ``step`` (a compiled step), or one item of its fan-out."""
    ti = context["ti"]
    map_index = ti.map_index if ti.map_index is not None else -1
    name = step.task_id if map_index < 0 else f"{step.task_id}[{map_index}]"
    return Writer(
        run_id=ti.run_id,
        workflow=step.workflow,
        step=step.task_id,
        map_index=map_index,
        try_number=ti.try_number,
        name=f"{step.task_id}[{subtask}]" if subtask else name,
    )


def read_context(store: EventStore, step: Any, context: Any, scope: dict[str, Any]) -> dict[str, int]:
    """Put the run's shared context in ``scope``; the version of each key read (0: not written yet)."""
    if not step.context_keys:
        return {}
    entries = ContextStore(store).snapshot(context["ti"].run_id)
    scope["context"] = {key: entries[key].value if key in entries else None for key in step.context_keys}
    return {key: entries[key].version if key in entries else 0 for key in step.context_keys}


def write_context(
    store: EventStore,
    step: Any,
    context: Any,
    scope: dict[str, Any],
    output: Any,
    versions: dict[str, int],
    log: logging.Logger | logging.LoggerAdapter,
) -> None:
    """Write the step's ``writes`` over the versions it read; conflicts go to each key's strategy. A key
    whose strategy is ``escalate`` and that conflicts is left to a person (the others are written)."""
    if not step.spec.writes:
        return
    who = writer(step, context)
    values = {**scope, "output": output}
    contexts = ContextStore(store)
    escalations = []
    for key, expression in step.spec.writes.items():
        try:
            entry = contexts.write(
                who,
                key,
                templating.value(expression, values),
                base_version=versions.get(key, 0),
                strategy=step.context_keys[key],
            )
        except ContextEscalation as conflict:
            escalations.append(conflict)
            continue
        log.info("Step %s wrote context key %s: version %d", step.task_id, key, entry.version)
    if escalations:
        escalations[0].output = output
        raise escalations[0]


def merge_items(
    store: EventStore,
    step: Any,
    context: Any,
    scope: dict[str, Any],
    done: list[tuple[Any, Any]],
    versions: dict[str, int],
    log: logging.Logger | logging.LoggerAdapter,
) -> None:
    """The join of a fan-out: each item writes into its own namespace (``key[item]``), then into ``key``
    over the version read when the batch started, so parallel writers conflict and the key's strategy
    resolves them (each conflict and resolution is an event).

    :param done: (subtask, output) of the items that succeeded, in list order, so the merged value does
        not depend on who finished first.
    """
    if not step.spec.writes or not done:
        return
    contexts = ContextStore(store)
    for sub, output in done:
        values = {**scope, "output": output, "item": sub.item, "index": sub.index}
        for key, expression in step.spec.writes.items():
            value = templating.value(expression, values)
            who = writer(step, context, sub.id)
            space = f"{key}[{sub.id}]"
            current = contexts.get(who.run_id, space)
            contexts.write(
                who, space, value, base_version=current.version if current else 0, strategy="last_writer_wins"
            )
            entry = contexts.write(
                who, key, value, base_version=versions.get(key, 0), strategy=step.context_keys[key]
            )
            log.info("Subtask %s merged into context key %s: version %d", sub.id, key, entry.version)


def settle_conflict(store: EventStore, step: Any, context: Any, key: str, value: Any) -> None:
    """A person decided a conflict on ``key``: write their value over the current version."""
    contexts = ContextStore(store)
    current = contexts.get(context["ti"].run_id, key)
    contexts.write(
        writer(step, context),
        key,
        value,
        base_version=current.version if current else 0,
        strategy="last_writer_wins",
    )
