"""Reading one YAML file safely: bounded in size, depth and alias expansion, UTF-8, no duplicate keys.

PyYAML's ``safe_load`` runs no code, but it accepts what is costly or ambiguous: an alias bomb (anchors
that reference anchors: a few lines that expand to billions of nodes for whoever walks the data), nesting
deep enough to exhaust the recursion of its composer or of ours, and a key written twice (the second
silently replaces the first). One pass over the parser's events, which is iterative and linear in the
file, refuses all of these with the line they are at, before anything is built from the file.

Most files cannot hold any of the costly kinds: without an anchor there is no alias, and with few
structural characters there is neither deep nesting nor a huge tree. Those are composed at once and their
node tree walked while the data is built (:func:`quick_load`), with the same refusals; the event pass is
kept for the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from baton.errors import Issue, TemplateError
from baton.limits import Limits, limits

_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=16_384)
def _plain_tag(value: str) -> str:
    """The tag YAML 1.1 gives a plain (unquoted) scalar: the safe loader's implicit resolvers, as
    ``BaseResolver.resolve`` applies them, kept per value (keys such as ``id`` and ``needs`` repeat)."""
    resolvers = _BASE.yaml_implicit_resolvers
    for tag, regexp in resolvers.get(value[:1], []) + resolvers.get(None, []):
        if regexp.match(value):
            return tag
    return _BASE.DEFAULT_SCALAR_TAG


class _Loader(_BASE):
    """The safe loader, made cheaper to compose with: libyaml's composer asks Python for each node's tag
    (``resolve``) and to track path resolvers (``descend_resolver``, ``ascend_resolver``), which the safe
    loader never declares. Here the tags of plain scalars are remembered per value, and the two path
    calls are C callables that do nothing with their arguments (``slice``, ``tuple``): together more than
    a third of composing a template. The tags are the safe loader's own (the tests compare them); a
    loader made while some path resolver is declared takes the safe loader's own methods."""

    descend_resolver = staticmethod(slice)  # (parent, index) -> a throwaway slice: no Python frame
    ascend_resolver = staticmethod(tuple)  # () -> ()

    def __init__(self, stream: Any):
        super().__init__(stream)
        if self.yaml_path_resolvers:
            self.descend_resolver = super().descend_resolver
            self.ascend_resolver = super().ascend_resolver

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        if kind is yaml.ScalarNode:
            return _plain_tag(value) if implicit[0] else self.DEFAULT_SCALAR_TAG
        return self.DEFAULT_SEQUENCE_TAG if kind is yaml.SequenceNode else self.DEFAULT_MAPPING_TAG


LOADER = _Loader
Loc = Sequence[str | int]
MERGE_KEY = "<<"


def refuse(name: str, message: str, fix: str, line: int | None = None, path: str = "") -> TemplateError:
    return TemplateError([Issue(name, path, message, fix, line)])


def read_bytes(path: Path, name: str, bound: Limits | None = None) -> bytes:
    """The file's bytes, refused without reading further once over ``max_template_bytes``."""
    bound = bound or limits()
    with open(path, "rb") as file:
        # read(n) allocates n bytes first: a buffer the file's size (a limit's worth was most of a read)
        size = os.fstat(file.fileno()).st_size
        data = file.read(min(size, bound.max_template_bytes) + 1)
        if size < len(data) <= bound.max_template_bytes:  # it grew since: read on, up to the limit
            data += file.read(bound.max_template_bytes + 1 - len(data))
    if len(data) > bound.max_template_bytes:
        size = path.stat().st_size
        size_text = f"{size:,} bytes" if size >= len(data) else f"at least {len(data):,} bytes"
        raise refuse(
            name,
            f"the file is {size_text}, over the limit of {bound.max_template_bytes:,} bytes for one template",
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
                    raise _too_deep(name, bound, event.start_mark.line + 1, _child_path(parent))
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


def format_loc(loc: Loc) -> str:
    """``('steps', 2, 'agent')`` -> ``steps[2].agent``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _path(loc: Loc) -> str:
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
    return _duplicate_issue(name, mapping.path, event.value, first, line)


def _duplicate_issue(name: str, path: Loc, key: str, first: int, line: int) -> Issue:
    return Issue(
        name,
        _path((*path, key)),
        f"duplicate key '{key}' (first at line {first}): YAML would keep only the last one",
        "remove one of the two, or merge them into one",
        line,
    )


QUICK_MAX = 5_000  # structural characters under which a file is composed at once (see quick_load)
_STRUCTURAL = "[{-:?,\n"
_MAP, _SEQ, _STR = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:str"


class _Fallback(Exception):
    """What the quick path leaves to :func:`scan` and :func:`load` (a tag, a key that is a collection)."""


def quick_load(text: str, name: str, bound: Limits | None = None) -> tuple[Any, yaml.Node | None] | None:
    """:func:`scan` and :func:`load` in one composition, for the common file: no anchor (so no alias), no
    merge key, and few enough structural characters (``[{-:?,`` and line breaks) that its nesting and its
    node count are far under the limits and libyaml's own recursion. The node tree is walked once,
    refusing nesting over ``max_yaml_depth`` and duplicate keys as :func:`scan` does (same messages, same
    lines), while the data is built. None: the file takes the full path."""
    bound = bound or limits()
    if "&" in text or "<<" in text:
        return None
    if sum(map(text.count, _STRUCTURAL)) > min(QUICK_MAX, bound.max_yaml_nodes // 2 - 1):
        return None
    try:
        with _composed(text, name) as (loader, node):
            if node is None:
                return None, None
            walk = _Walk(loader, name, bound)
            data = walk.build(node, 0, ())
    except _Fallback:
        return None
    if walk.duplicates:
        raise TemplateError(walk.duplicates)
    return data, node


class _Walk:
    """One walk of a composed node tree (no aliases): the data, the duplicate keys, the depth refused.
    Where a node is is kept as a trail, (parent's trail, key), and spelled out only for a message."""

    def __init__(self, loader: Any, name: str, bound: Limits):
        self.loader, self.name, self.bound = loader, name, bound
        self.duplicates: list[Issue] = []

    def build(self, node: yaml.Node, depth: int, trail: tuple) -> Any:
        kind = type(node)
        if kind is yaml.ScalarNode:
            return node.value if node.tag == _STR else self.loader.construct_object(node)
        if depth >= self.bound.max_yaml_depth:
            raise _too_deep(self.name, self.bound, node.start_mark.line + 1, _spelled(trail))
        if kind is yaml.SequenceNode and node.tag == _SEQ:
            return [self.build(item, depth + 1, (trail, i)) for i, item in enumerate(node.value)]
        if not (kind is yaml.MappingNode and node.tag == _MAP):
            raise _Fallback  # an explicit tag on a collection (!!set, !!omap, ...): the constructor's rules
        built: dict[Any, Any] = {}
        seen: dict[tuple[str, bool], yaml.Node] = {}  # (key, plain) -> its first node, as scan() keys them
        for key_node, value_node in node.value:
            if type(key_node) is not yaml.ScalarNode:
                raise _Fallback  # a collection as a key: the constructor refuses it in its words
            key = key_node.value
            mark = (key, key_node.style is None)
            if mark in seen:
                first, line = seen[mark].start_mark.line + 1, key_node.start_mark.line + 1
                self.duplicates.append(_duplicate_issue(self.name, _spelled(trail), key, first, line))
            else:
                seen[mark] = key_node
            built[key if key_node.tag == _STR else self.loader.construct_object(key_node)] = self.build(
                value_node, depth + 1, (trail, key)
            )
        return built


def _spelled(trail: tuple) -> tuple[str | int, ...]:
    """The path of a trail: ``(((), 'steps'), 0)`` is ``('steps', 0)``."""
    parts: list[str | int] = []
    while trail:
        trail, part = trail
        parts.append(part)
    return tuple(reversed(parts))


def load(text: str, name: str) -> tuple[Any, yaml.Node | None]:
    """The file's data and its node tree (for line numbers), in one composition. A syntax error names
    the line where the construct that breaks opens (the quote, the bracket), and where it broke."""
    with _composed(text, name) as (loader, node):
        return (loader.construct_document(node) if node is not None else None), node


@contextmanager
def _composed(text: str, name: str) -> Iterator[tuple[Any, yaml.Node | None]]:
    """The loader of ``text`` and its composed node tree (None: an empty file); a YAML error while
    composing or building from it becomes the file's located TemplateError."""
    loader = LOADER(text)
    try:
        yield loader, loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, name) from None
    except yaml.YAMLError as error:
        raise refuse(name, f"YAML syntax error: {error}", "fix the YAML syntax") from None
    finally:
        loader.dispose()


def _too_deep(name: str, bound: Limits, line: int, path: Loc) -> TemplateError:
    return refuse(
        name,
        f"nesting deeper than {bound.max_yaml_depth} levels of mappings and lists",
        f"flatten this part of the file, {bound.fix('max_yaml_depth')}",
        line,
        _path(path),
    )


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
