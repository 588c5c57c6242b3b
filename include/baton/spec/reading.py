"""Reading one YAML file safely: bounded in size, depth and alias expansion, UTF-8, no duplicate keys.

PyYAML's ``safe_load`` runs no code, but it accepts what is costly or ambiguous: an alias bomb (anchors
that reference anchors: a few lines that expand to billions of nodes for whoever walks the data), nesting
deep enough to exhaust the recursion of its composer or of ours, and a key written twice (the second
silently replaces the first). One pass over the parser's events, which is iterative and linear in the
file, refuses all of these with the line they are at, before anything is built from the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from baton.errors import Issue, TemplateError
from baton.limits import Limits, limits

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Loc = Sequence[str | int]
MERGE_KEY = "<<"


def refuse(name: str, message: str, fix: str, line: int | None = None, path: str = "") -> TemplateError:
    return TemplateError([Issue(name, path, message, fix, line)])


def read_bytes(path: Path, name: str, bound: Limits | None = None) -> bytes:
    """The file's bytes, refused without reading further once over ``max_template_bytes``."""
    bound = bound or limits()
    with path.open("rb") as file:
        data = file.read(bound.max_template_bytes + 1)
    if len(data) > bound.max_template_bytes:
        size = path.stat().st_size
        raise refuse(
            name,
            f"the file is {size:,} bytes, over the limit of {bound.max_template_bytes:,} bytes for one template",
            f"split it into smaller workflows, {bound.fix('max_template_bytes')}",
        )
    return data


def read_text(path: Path, name: str, bound: Limits | None = None) -> str:
    """The file's text: at most ``max_template_bytes`` read, UTF-8 (a BOM is dropped)."""
    data = read_bytes(path, name, bound)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise refuse(
            name,
            f"the file is not UTF-8 text: byte 0x{data[error.start]:02x} at column {column} cannot be decoded",
            "save the file as UTF-8",
            line,
        ) from None


@dataclass
class _Node:
    """A collection being read: its size once aliases are expanded, and its keys (mappings)."""

    kind: str  # "mapping" | "sequence"
    anchor: str | None
    path: tuple[str | int, ...]
    size: int = 1
    items: int = 0  # events read inside it (a mapping alternates key, value)
    key: Any = None  # a mapping: the key whose value comes next
    keys: dict[Any, tuple[int, int]] = field(default_factory=dict)  # a mapping: key -> (offset, line)


def scan(text: str, name: str, bound: Limits | None = None) -> None:
    """Refuse what the file must not hold, each at its line: nesting deeper than ``max_yaml_depth``,
    more than ``max_yaml_nodes`` nodes once aliases are expanded, and keys written twice in a mapping
    (every duplicate is reported). YAML syntax errors are left to :func:`load`, which locates them."""
    bound = bound or limits()
    stack: list[_Node] = []
    anchors: dict[str, int] = {}  # anchor -> the size of its node once expanded
    duplicates: list[Issue] = []
    try:
        for event in yaml.parse(text, Loader=LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                parent = stack[-1] if stack else None
                if len(stack) >= bound.max_yaml_depth:
                    raise refuse(
                        name,
                        f"nesting deeper than {bound.max_yaml_depth} levels of mappings and lists",
                        f"flatten this part of the file, {bound.fix('max_yaml_depth')}",
                        event.start_mark.line + 1,
                        _path(_child_path(parent)),
                    )
                kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence"
                stack.append(_Node(kind, event.anchor, _child_path(parent)))
            elif isinstance(event, yaml.CollectionEndEvent):
                done = stack.pop()
                _add(stack, done.size, done.anchor, anchors, name, bound, event, key=None)
            elif isinstance(event, yaml.ScalarEvent):
                if (issue := _duplicate(stack, event, name)) is not None:
                    duplicates.append(issue)
                _add(stack, 1, event.anchor, anchors, name, bound, event, key=event.value)
            elif isinstance(event, yaml.AliasEvent):
                _add(stack, anchors.get(event.anchor, 1), None, anchors, name, bound, event, key=None)
    except yaml.YAMLError:
        return  # load() reports it, with both of its marks
    if duplicates:
        raise TemplateError(duplicates)


def _child_path(parent: _Node | None) -> tuple[str | int, ...]:
    if parent is None:
        return ()
    if parent.kind == "sequence":
        return (*parent.path, parent.items)
    return (*parent.path, parent.key) if parent.key is not None else parent.path


def _path(loc: Loc) -> str:
    from baton.spec.loading import format_loc

    return format_loc([part if isinstance(part, int) else str(part) for part in loc])


def _duplicate(stack: list[_Node], event: yaml.ScalarEvent, name: str) -> Issue | None:
    """The issue of a scalar that is a key its mapping already has (the merge key ``<<`` may repeat)."""
    mapping = stack[-1] if stack else None
    if mapping is None or mapping.kind != "mapping" or mapping.items % 2 != 0:
        return None  # not in a key's position
    if event.value == MERGE_KEY and event.style is None:
        return None
    key = (event.value, event.style is None)  # a quoted "1" and a plain 1 are different keys
    line = event.start_mark.line + 1
    first = mapping.keys.setdefault(key, (event.start_mark.index, line))
    if first[0] == event.start_mark.index:
        return None
    return Issue(
        name,
        _path((*mapping.path, event.value)),
        f"duplicate key '{event.value}' (first at line {first[1]}): YAML would keep only the last one",
        "remove one of the two, or merge them into one",
        line,
    )


def _add(
    stack: list[_Node],
    size: int,
    anchor: str | None,
    anchors: dict[str, int],
    name: str,
    bound: Limits,
    event: yaml.Event,
    key: Any,
) -> None:
    """A node of ``size`` (expanded) was read: count it in its parent, remember its anchor."""
    if anchor is not None:
        anchors[anchor] = size
    if not stack:
        return
    parent = stack[-1]
    if parent.kind == "mapping":
        parent.key = key if parent.items % 2 == 0 else None
    parent.items += 1
    parent.size += size
    if parent.size > bound.max_yaml_nodes:
        raise refuse(
            name,
            f"more than {bound.max_yaml_nodes:,} values once its aliases (*name) are expanded",
            f"write the data out instead of repeating aliases of aliases, {bound.fix('max_yaml_nodes')}",
            event.start_mark.line + 1,
        )


def load(text: str, name: str) -> tuple[Any, yaml.Node | None]:
    """The file's data and its node tree (for line numbers), in one composition. A syntax error names
    the line where the construct that breaks opens (the quote, the bracket), and where it broke."""
    loader = LOADER(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, name) from None
    except yaml.YAMLError as error:
        raise refuse(name, f"YAML syntax error: {error}", "fix the YAML syntax") from None
    finally:
        loader.dispose()
    return data, node


def _syntax_error(error: yaml.MarkedYAMLError, name: str) -> TemplateError:
    problem = error.problem or "invalid YAML"
    at = error.problem_mark.line + 1 if error.problem_mark else None
    opened = error.context_mark.line + 1 if error.context_mark else None
    if error.context and opened is not None and opened != at:
        message = f"YAML syntax error: {problem} {error.context} that starts here" + (
            f" (noticed at line {at})" if at else ""
        )
        return refuse(name, message, "close or fix what opens at this line", opened)
    context = f" {error.context}" if error.context else ""
    return refuse(name, f"YAML syntax error: {problem}{context}", "fix the YAML syntax at this line", at)
