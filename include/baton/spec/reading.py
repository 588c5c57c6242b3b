"""Reading one YAML file safely: bounded in size, depth and alias expansion, UTF-8, no duplicate keys.

PyYAML's ``safe_load`` runs no code, but it accepts what is costly or ambiguous: an alias bomb (anchors
that reference anchors: a few lines that expand to billions of nodes for whoever walks the data), nesting
deep enough to exhaust the recursion of its composer or of ours, and a key written twice (the second
silently replaces the first). One pass over the parser's events, which is iterative and linear in the
file, refuses all of these with the line they are at, before anything is built from the file.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    return decode(read_bytes(path, name, bound), name)


def decode(data: bytes, name: str) -> str:
    """The text of file ``name``'s bytes ``data`` (UTF-8; a BOM is dropped)."""
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


class _Node:
    """A collection being read: its size once aliases are expanded, and its keys (mappings)."""

    __slots__ = ("mapping", "anchor", "path", "size", "items", "key", "keys")

    def __init__(self, mapping: bool, anchor: str | None, path: tuple[str | int, ...]):
        self.mapping = mapping
        self.anchor = anchor
        self.path = path
        self.size = 1
        self.items = 0  # events read inside it (a mapping alternates key, value)
        self.key: Any = None  # a mapping: the key whose value comes next
        self.keys: dict[Any, int] = {}  # a mapping: key -> the line it is first at


_STARTS = {yaml.MappingStartEvent: True, yaml.SequenceStartEvent: False}
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def scan(text: str, name: str, bound: Limits | None = None) -> None:
    """Refuse what the file must not hold, each at its line: nesting deeper than ``max_yaml_depth``,
    more than ``max_yaml_nodes`` nodes once aliases are expanded, and keys written twice in a mapping
    (every duplicate is reported). YAML syntax errors are left to :func:`load`, which locates them."""
    # long: one loop over every event of the file, kept flat because it runs for each of them
    bound = bound or limits()
    stack: list[_Node] = []
    parent: _Node | None = None  # stack[-1]
    anchors: dict[str, int] = {}  # anchor -> the size of its node once expanded
    duplicates: list[Issue] = []
    try:
        for event in yaml.parse(text, Loader=LOADER):
            kind = type(event)
            if kind is yaml.ScalarEvent:
                size, anchor, key = 1, event.anchor, event.value
                in_key = parent is not None and parent.mapping and parent.items % 2 == 0
                if in_key and (issue := _duplicate(parent, event, name)) is not None:
                    duplicates.append(issue)
            elif kind in _STARTS:
                if len(stack) >= bound.max_yaml_depth:
                    raise refuse(
                        name,
                        f"nesting deeper than {bound.max_yaml_depth} levels of mappings and lists",
                        f"flatten this part of the file, {bound.fix('max_yaml_depth')}",
                        event.start_mark.line + 1,
                        _path(_child_path(parent)),
                    )
                parent = _Node(_STARTS[kind], event.anchor, _child_path(parent))
                stack.append(parent)
                continue
            elif kind in _ENDS:
                done = stack.pop()
                parent = stack[-1] if stack else None
                size, anchor, key = done.size, done.anchor, None
            elif kind is yaml.AliasEvent:
                size, anchor, key = anchors.get(event.anchor, 1), None, None
            else:
                continue
            # the node just read (its size once expanded) counts in its parent; its anchor is kept
            if anchor is not None:
                anchors[anchor] = size
            if parent is None:
                continue
            if parent.mapping:
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
    except yaml.YAMLError:
        return  # load() reports it, with both of its marks
    if duplicates:
        raise TemplateError(duplicates)


def _child_path(parent: _Node | None) -> tuple[str | int, ...]:
    if parent is None:
        return ()
    if not parent.mapping:
        return (*parent.path, parent.items)
    return (*parent.path, parent.key) if parent.key is not None else parent.path


def _path(loc: Loc) -> str:
    from baton.spec.loading import format_loc

    return format_loc([part if isinstance(part, int) else str(part) for part in loc])


def _duplicate(mapping: _Node, event: yaml.ScalarEvent, name: str) -> Issue | None:
    """The issue of a scalar in a key's position of ``mapping`` that is a key it already has (the merge
    key ``<<`` may repeat)."""
    if event.value == MERGE_KEY and event.style is None:
        return None
    key = (event.value, event.style is None)  # a quoted "1" and a plain 1 are different keys
    line = event.start_mark.line + 1
    first = mapping.keys.get(key)
    if first is None:
        mapping.keys[key] = line
        return None
    return Issue(
        name,
        _path((*mapping.path, event.value)),
        f"duplicate key '{event.value}' (first at line {first}): YAML would keep only the last one",
        "remove one of the two, or merge them into one",
        line,
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
