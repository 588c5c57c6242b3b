"""The template language's version, and its deprecations: the forms an earlier language accepted that
today's spells differently, each translated to today's form when a template is read, with a warning,
until the version that removes it.

The table :data:`DEPRECATIONS` is the one place that knows them: the old form, the new one, the language
that deprecated it and the one that removes it, and how to rewrite it. Reading a template
(:mod:`baton.spec.loading`) applies it to the parsed data before validation; ``baton migrate`` applies the
same rewrites to the file itself (round-trip YAML: comments and layout kept). The policy: a form is
accepted with a warning for one minor version of the language, then refused with the fix it names today.

Only spellings are translated. A template that an earlier Baton accepted but that could not work (a key
written twice, an identifier PostgreSQL truncates, a sensor that selects no key column) stays refused:
there is no "today's form" of it to translate to (CHANGELOG.md lists those under Changed).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

LANGUAGE_VERSION = "0.2"  # the template language this Baton speaks: the package's major.minor
Loc = tuple[str | int, ...]


class BatonDeprecationWarning(DeprecationWarning):
    """A template or roster uses a form of an earlier template language: accepted, translated, and
    refused from the version its message names (``baton migrate PATH`` rewrites it)."""


# A rewrite finds its form in a document (the workflow's or the roster's mapping), changes it in place to
# today's form and yields where it was, where it is now (None: removed) and the fix for that place. The
# mapping may be a dict (loading) or ruamel's round-trip mapping (baton migrate): new mappings are made as
# type(parent)().
Rewrite = Callable[[MutableMapping[str, Any]], Iterator[tuple[Loc, Loc | None, str]]]


@dataclass(frozen=True)
class Deprecation:
    """One form of an earlier language: what it was, what it is now, when it goes."""

    name: str  # the old form, as a key path ("steps[].concurrency")
    document: str  # "workflow" or "roster"
    old: str
    new: str
    deprecated_in: str  # the language version that first warns about it
    removed_in: str  # the language version that refuses it
    rewrite: Rewrite


@dataclass(frozen=True)
class Deprecated:
    """One use of a deprecated form in one file: where, which form, and the fix for that place."""

    file: str
    path: str
    line: int | None
    deprecation: Deprecation
    fix: str
    moved_to: str | None = None  # the key path of today's form (an error there is reported here)

    @property
    def message(self) -> str:
        d = self.deprecation
        return (
            f"deprecated since template language {d.deprecated_in}, refused from Baton {d.removed_in}: "
            f"{d.old}; {d.new}"
        )

    @property
    def text(self) -> str:
        """The notice without its file and line (a warning carries them apart)."""
        return f"{self.path}: {self.message} (fix: {self.fix}; or run `baton migrate {self.file}`)"

    def __str__(self) -> str:
        return f"{self.file if self.line is None else f'{self.file}:{self.line}'}: {self.text}"


def _steps(document: MutableMapping[str, Any]) -> Iterator[tuple[int, MutableMapping[str, Any]]]:
    steps = document.get("steps")
    if isinstance(steps, list):
        for index, step in enumerate(steps):
            if isinstance(step, MutableMapping):
                yield index, step


def _move(step: MutableMapping[str, Any], key: str, target: MutableMapping[str, Any]) -> None:
    """Move ``step[key]`` into ``target``, with the comments written beside it (ruamel keeps a mapping's
    comments in ``.ca.items`` by key; a dict has none)."""
    target[key] = step.pop(key)
    comments = getattr(step, "ca", None)
    if comments is not None and key in comments.items:
        target.ca.items[key] = comments.items.pop(key)  # type: ignore[attr-defined]


FAN_OUT_OPTIONS = ("concurrency", "batch_size", "partial_failure")


def _fan_out_options(document: MutableMapping[str, Any]) -> Iterator[tuple[Loc, Loc | None, str]]:
    """``for_each: <step>.<list>`` with ``concurrency``, ``batch_size`` or ``partial_failure`` beside it on
    the step (language 0.1) -> ``for_each: {over: <step>.<list>, <option>: value, ...}``. A step whose
    ``for_each`` is a mapping already is today's form, and its errors are today's."""
    for index, step in _steps(document):
        over = step.get("for_each")
        options = [key for key in step if key in FAN_OUT_OPTIONS]
        if not isinstance(over, str) or not options:
            continue
        fan_out = type(step)()
        fan_out["over"] = over
        step["for_each"] = fan_out  # in the place of the old key: the order of the step's keys is kept
        for key in options:
            value = step[key]
            _move(step, key, fan_out)
            fix = f"write for_each: {{over: {over}, {key}: {value}}}"
            yield ("steps", index, key), ("steps", index, "for_each", key), fix


def _default_partial_failure(document: MutableMapping[str, Any]) -> Iterator[tuple[Loc, Loc | None, str]]:
    """``partial_failure: fail`` on a step without ``for_each`` (language 0.1 accepted the default written
    out, and nothing else there) -> removed: it said nothing."""
    for index, step in _steps(document):
        if step.get("partial_failure") == "fail" and step.get("for_each") is None:
            comments = getattr(step, "ca", None)
            if comments is not None:
                comments.items.pop("partial_failure", None)
            del step["partial_failure"]
            yield ("steps", index, "partial_failure"), None, "remove it (fail is the default of a fan-out)"


DEPRECATIONS: tuple[Deprecation, ...] = (
    Deprecation(
        name="steps[].concurrency, steps[].batch_size, steps[].partial_failure",
        document="workflow",
        old="a fan-out's option on the step, beside 'for_each: <step>.<list>' (language 0.1)",
        new="it goes under for_each",
        deprecated_in="0.2",
        removed_in="0.3",
        rewrite=_fan_out_options,
    ),
    Deprecation(
        name="steps[].partial_failure: fail",
        document="workflow",
        old="'partial_failure: fail' on a step without for_each (language 0.1: the default, written out)",
        new="only a fan-out has partial_failure",
        deprecated_in="0.2",
        removed_in="0.3",
        rewrite=_default_partial_failure,
    ),
)


def upgrade(document: MutableMapping[str, Any], kind: str) -> list[tuple[Loc, Loc | None, Deprecation, str]]:
    """Rewrite in place every deprecated form of ``document`` (a ``kind``: "workflow" or "roster") to
    today's; (where it was, where it is now, which form, the fix there) for each, in the table's order."""
    return [
        (old, new, deprecation, fix)
        for deprecation in DEPRECATIONS
        if deprecation.document == kind
        for old, new, fix in deprecation.rewrite(document)
    ]


def warn(notices: list[Deprecated]) -> None:
    """Each notice as a :class:`BatonDeprecationWarning` at the template's file and line, where Airflow's
    DAG processor records the warnings raised while it imports a DAG file (its import warnings).

    Python hides DeprecationWarnings outside ``__main__`` by default. As Airflow does for its own, Baton's
    are shown unless the process says otherwise: warning options (``-W``, ``PYTHONWARNINGS``), or a filter
    that names :class:`BatonDeprecationWarning`. The filter is put back before each warning because Airflow
    imports a DAG file inside ``warnings.catch_warnings``, which drops the filters added meanwhile; it is
    not set and restored around the warning, which would race with other threads' warnings."""
    if not notices:
        return
    if not sys.warnoptions and not any(entry[2] is BatonDeprecationWarning for entry in warnings.filters):
        warnings.filterwarnings("always", category=BatonDeprecationWarning)
    for notice in notices:
        warnings.warn_explicit(
            BatonDeprecationWarning(notice.text),
            BatonDeprecationWarning,
            filename=notice.file,
            lineno=notice.line or 0,
            module="baton.spec.deprecations",
        )
