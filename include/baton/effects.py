"""Side effects that happen once per run: an HTTP post, a message, a form submitted, a tool call.

A function that changes the world outside Baton declares it with one decorator::

    @effect("http.post")
    def post_order(url, body, idempotency_key=None): ...

Called inside a :func:`scope` (the operator enters one per step try; a fan-out subtask its own),
each call gets a key: sha256 of run | step | map index | subtask | action | n, where n is the
ordinal of this action's call in the scope (0, 1, ...), so a deterministic skill derives the same
keys on every try. The first time, the function runs and its result is recorded (``effect.done``,
stored once per key whatever the try); a later try, or ``baton replay --rerun``, that reaches the
same key gets the recorded result back (``effect.reused``) and the function is not called. A
function with a parameter ``idempotency_key`` receives the key, to send on (an ``Idempotency-Key``
header), so the other side can drop a duplicate Baton could not see (a post whose reply was lost).

A call that raises records nothing and gives its ordinal back: the next call of the action in the
scope (a retry loop in the skill) or the next try does it again. A caller that knows a better
identity than "the n-th call" passes ``effect_key="order-42"``; it replaces n in the key. Effects
that run concurrently in one scope get ordinals in the order they start: give each concurrent
branch its own scope (``subtask=``) or an ``effect_key`` to keep their keys stable.

Outside any scope the function simply runs, with a warning (once per action) that it is not
deduplicated. Results must be JSON-serialisable: they are what a retry gets back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from baton.errors import BatonError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_SCOPE: contextvars.ContextVar[EffectScope | None] = contextvars.ContextVar(
    "baton_effect_scope", default=None
)
_WARNED: set[str] = set()  # actions already warned about (outside any scope), once per process


class EffectError(BatonError):
    """An effect cannot be deduplicated safely (its record is unreadable, or a rerun would do it anew)."""


@dataclass
class EffectScope:
    """Where effects happen: one try of one step (or of one fan-out subtask) of one run."""

    store: Any
    run_id: str
    workflow: str
    step: str
    map_index: int = -1
    try_number: int = 0
    subtask: str = ""
    template_version: int | None = None
    allow_new: bool = True
    #: what happened in this scope, in order: {"action", "effect_key", "reused": bool, "seq"}
    effects: list[dict[str, Any]] = field(default_factory=list)
    _taken: dict[str, set[int]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.run_id or not self.step:
            raise ValueError("an effect scope needs the run id and the step id")

    @property
    def reused(self) -> list[dict[str, Any]]:
        """The effects of this scope whose recorded result was reused instead of doing them again."""
        return [e for e in self.effects if e["reused"]]

    def key(self, action: str, part: str) -> str:
        text = "|".join((self.run_id, self.step, str(self.map_index), self.subtask, action, part))
        return hashlib.sha256(text.encode()).hexdigest()

    def _take(self, action: str) -> int:
        with self._lock:
            taken = self._taken.setdefault(action, set())
            n = 0
            while n in taken:
                n += 1
            taken.add(n)
            return n

    def _give_back(self, action: str, n: int) -> None:
        with self._lock:
            self._taken.get(action, set()).discard(n)

    def _note(self, action: str, key: str, reused: bool, seq: int | None) -> None:
        with self._lock:
            self.effects.append({"action": action, "effect_key": key, "reused": reused, "seq": seq})

    def record(self, kind: str, payload: dict[str, Any], key: str) -> None:
        """Store one event of this scope's run and step (an ``egress.blocked``), under ``key``."""
        self.store.append([self._event(kind, payload, key)])

    def _event(self, kind: str, payload: dict[str, Any], key: str) -> Any:
        from baton.events.event import Event  # deferred: DAG files import skills: no event catalogue at parse

        return Event.like(self, kind, template_version=self.template_version, payload=payload, key=key)


@contextlib.contextmanager
def scope(
    store: Any,
    *,
    run_id: str,
    workflow: str,
    step: str,
    map_index: int = -1,
    try_number: int = 0,
    subtask: str = "",
    template_version: int | None = None,
    allow_new: bool = True,
) -> Iterator[EffectScope]:
    """Make effects called in this block (and in threads and asyncio tasks started from it with
    the context copied) deduplicated for this run, step, map index and subtask.

    :param store: the ``EventStore`` the effects are recorded in.
    :param allow_new: ``False`` for a replay: an effect the run did not do raises ``EffectError``
        instead of happening.
    """
    active = EffectScope(
        store=store,
        run_id=run_id,
        workflow=workflow,
        step=step,
        map_index=map_index,
        try_number=try_number,
        subtask=subtask,
        template_version=template_version,
        allow_new=allow_new,
    )
    token = _SCOPE.set(active)
    try:
        yield active
    finally:
        _SCOPE.reset(token)


def current() -> EffectScope | None:
    """The active effect scope, or None."""
    return _SCOPE.get()


def effect(action: str) -> Callable[[F], F]:
    """Declare that the decorated function (sync or async) has a side effect named ``action``
    (``"http.post"``, ``"slack.message"``, ``"browser.submit"``): inside a :func:`scope` it happens
    once per key, a retry or a rerun gets its recorded result back.

    The caller may pass ``effect_key=...`` (it is not passed on) to name the effect instead of its
    ordinal; a function with a parameter ``idempotency_key`` receives the key (None outside a scope).
    """
    # long: a decorator: the wrapper's sync and async forms share its checks
    if not isinstance(action, str) or not action.strip():
        raise ValueError("@effect needs the action's name, e.g. @effect('http.post')")

    def decorate(func: F) -> F:
        # long: the wrapper's sync and async forms, side by side
        wants_key = "idempotency_key" in inspect.signature(func).parameters

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, effect_key: str | None = None, **kwargs: Any) -> Any:
                active = _SCOPE.get()
                if active is None:
                    _warn_unscoped(action, func)
                    return await func(*args, **_with_key(kwargs, wants_key, None))
                key, n = _claim(active, action, effect_key)
                try:
                    found = await asyncio.to_thread(_recorded, active, action, key)
                    if found is not None:
                        return await asyncio.to_thread(_reuse, active, action, key, found)
                    _refuse_new(active, action)
                    began = time.monotonic()
                    result = await func(*args, **_with_key(kwargs, wants_key, key))
                    return await asyncio.to_thread(_record, active, action, key, result, began, func)
                except BaseException:
                    if n is not None:
                        active._give_back(action, n)
                    raise

            wrapper: Any = run_async
        else:

            @functools.wraps(func)
            def run_sync(*args: Any, effect_key: str | None = None, **kwargs: Any) -> Any:
                active = _SCOPE.get()
                if active is None:
                    _warn_unscoped(action, func)
                    return func(*args, **_with_key(kwargs, wants_key, None))
                key, n = _claim(active, action, effect_key)
                try:
                    found = _recorded(active, action, key)
                    if found is not None:
                        return _reuse(active, action, key, found)
                    _refuse_new(active, action)
                    began = time.monotonic()
                    result = func(*args, **_with_key(kwargs, wants_key, key))
                    return _record(active, action, key, result, began, func)
                except BaseException:
                    if n is not None:
                        active._give_back(action, n)
                    raise

            wrapper = run_sync
        wrapper.effect_action = action
        return wrapper

    return decorate


# --- the steps of one call ------------------------------------------------------------------------


def _with_key(kwargs: dict[str, Any], wants_key: bool, key: str | None) -> dict[str, Any]:
    return {**kwargs, "idempotency_key": key} if wants_key else kwargs


def _warn_unscoped(action: str, func: Callable[..., Any]) -> None:
    if action not in _WARNED:
        _WARNED.add(action)
        log.warning(
            "Effect '%s' (%s.%s) runs outside an effect scope: it is not deduplicated, a retry will "
            "do it again. Run it from a Baton step, or inside baton.effects.scope(...).",
            action,
            func.__module__,
            func.__qualname__,
        )


def _claim(active: EffectScope, action: str, effect_key: str | None) -> tuple[str, int | None]:
    """The key of this call, and the ordinal it took (None with an explicit ``effect_key``)."""
    if effect_key is not None:
        if not isinstance(effect_key, str) or not effect_key:
            raise ValueError(f"effect_key of '{action}' must be a non-empty string, not {effect_key!r}")
        return active.key(action, "key:" + effect_key), None
    n = active._take(action)
    return active.key(action, str(n)), n


def _recorded(active: EffectScope, action: str, key: str) -> tuple[int, Any] | None:
    """(seq, result) of the ``effect.done`` stored for ``key``, or None when it was not done."""
    found = active.store.get(f"effect|{key}")
    if found is None:
        return None
    problem = getattr(found, "problem", "")  # a CorruptEvent: the payload is unreadable
    if not problem:
        payload = found.payload
        result = active.store.output_of(payload, field="result")
        if not (payload.get("ref") and result is None):
            return found.seq, result
        problem = f"its result blob {payload['ref'][:12]} is missing"
    raise EffectError(
        f"Effect '{action}' of step '{active.step}' was done (event {found.seq}) but its record cannot be "
        f"read ({problem}); it is not done again. Repair or remove event {found.seq} to let it run."
    )


def _reuse(active: EffectScope, action: str, key: str, found: tuple[int, Any]) -> Any:
    done_seq, result = found
    payload = {"action": action, "effect_key": key, "subtask": active.subtask, "done_seq": done_seq}
    active.store.append([active._event("effect.reused", payload, f"effect.reused|{key}|{active.try_number}")])
    active._note(action, key, True, done_seq)
    log.info(
        "Effect '%s' of step '%s'%s already done (event %d): its recorded result is reused, "
        "it is not done again",
        action,
        active.step,
        f" [{active.subtask}]" if active.subtask else "",
        done_seq,
    )
    return result


def _refuse_new(active: EffectScope, action: str) -> None:
    if not active.allow_new:
        raise EffectError(
            f"effect '{action}' of step '{active.step}' was not done by run '{active.run_id}'; a replay "
            "does not do new effects"
        )


def _record(
    active: EffectScope, action: str, key: str, result: Any, began: float, func: Callable[..., Any]
) -> Any:
    latency = round(time.monotonic() - began, 3)
    try:
        text = json.dumps(result)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"effect '{action}' ({func.__module__}.{func.__qualname__}) returned a "
            f"{type(result).__name__} that is not JSON-serialisable ({error}); it happened but was not "
            "recorded, so a retry will do it again. Return JSON data (dict, list, str, number, bool, None)."
        ) from None
    normal = json.loads(text)  # what a retry will get back, so that every try sees the same value
    stored = active.store.output_payload(normal)
    payload = {
        "action": action,
        "effect_key": key,
        "subtask": active.subtask,
        "sha256": stored["sha256"],
        "result": stored.get("output"),
        "ref": stored.get("ref"),
        "latency_s": latency,
    }
    seqs = active.store.append([active._event("effect.done", payload, f"effect|{key}")])
    active._note(action, key, False, seqs[0] if seqs else None)
    return normal
