"""The quick path of reading a YAML file (one composition, for files without anchors or merge keys and
with few structural characters) gives what the full path gives (an event scan, then a composition): the
same data, the same node tree, the same refusals at the same lines; and every file it must not take
falls back to the full path."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.errors import TemplateError
from baton.spec import reading

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted((ROOT / "dags").rglob("*.yaml"))


def _full(text: str):
    try:
        reading.scan(text, "t.yaml")
        data, node = reading.load(text, "t.yaml")
    except TemplateError as error:
        return [str(issue) for issue in error.issues]
    return data, node.start_mark.line if node else None


def _quick(text: str):
    try:
        quick = reading.quick_load(text, "t.yaml")
    except TemplateError as error:
        return [str(issue) for issue in error.issues]
    assert quick is not None, "the quick path should have taken this file"
    data, node = quick
    return data, node.start_mark.line if node else None


CASES = [
    "",
    "a: 1\nb: [1, 2.5, true, null, ~, '1', 2026-11-25, 0x1F, .inf]\nc: {d: e}\n",
    "a: 1\nb: 2\na: 3\n",  # a duplicate, lines apart
    "x: {a: 1, a: 2}\n",  # a duplicate on one line
    "x: {'1': a, 1: b}\n",  # a quoted and a plain 1 are two keys
    "steps:\n  - with: {region: eu, region: us}\n  - id: b\n",
    "x: " + "[" * 50 + "]" * 50 + "\n",  # deeper than 50 levels
    "x: " + "[" * 49 + "]" * 49 + "\n",  # just within
    "a: 'unclosed\nb: 2\n",
    "a: {b: 1\n",
    "a: !!python/name:os.system ''\n",  # a tag the safe constructor refuses
    "a: !!binary aGVsbG8=\n",
    "- - - - x\n",
]


@pytest.mark.parametrize("text", CASES, ids=range(len(CASES)))
def test_the_quick_path_gives_what_the_full_path_gives(text):
    assert _quick(text) == _full(text)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_every_bundled_yaml_file_reads_the_same_both_ways(path):
    text = path.read_text(encoding="utf-8")
    if reading.quick_load(text, "t.yaml") is None:  # the full path, for one of its reasons
        assert "&" in text or "<<" in text or sum(map(text.count, "[{-:?,\n")) > reading.QUICK_MAX
        return
    assert _quick(text) == _full(text)


def test_most_bundled_files_take_the_quick_path():
    quick = [
        p.name for p in BUNDLED if reading.quick_load(p.read_text(encoding="utf-8"), "t.yaml") is not None
    ]
    assert len(quick) >= len(BUNDLED) - 2, sorted({p.name for p in BUNDLED} - set(quick))


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1, 2]\nb: *x\n",  # an anchor: aliases are the scan's to bound
        "a: {x: 1}\nb:\n  <<: {y: 2}\n",  # a merge key
        "x: !!set {a, b}\n",  # a tagged collection: the constructor's rules
        "a: !!python/object:os.system {}\n",
        "? [a, b]\n: 1\n",  # a collection as a key
        "x: [" + ", ".join("1" for _ in range(6000)) + "]\n",  # many structural characters
        "x: " + "[" * 100_000 + "]" * 100_000 + "\n",  # deep enough to crash libyaml's own recursion
    ],
    ids=["anchor", "merge", "tagged-set", "tagged-object", "collection-key", "many-commas", "deep"],
)
def test_what_the_quick_path_must_not_take_goes_the_full_way(text):
    assert reading.quick_load(text, "t.yaml") is None


def test_a_file_that_says_it_is_smaller_than_it_is_is_read_whole_and_still_bounded(monkeypatch):
    """read_bytes sizes its buffer by what stat says; a file that grows meanwhile, or one whose size
    stat does not know (here /proc, size 0), is still read to its end, and refused over the limit."""
    lying = Path("/proc/self/cmdline")
    assert lying.stat().st_size == 0 and len(lying.read_bytes()) > 10
    assert reading.read_bytes(lying, "cmdline") == lying.read_bytes()
    monkeypatch.setenv("BATON_MAX_TEMPLATE_BYTES", "10")
    with pytest.raises(TemplateError) as refused:
        reading.read_bytes(lying, "cmdline")
    assert "cmdline: the file is at least 11 bytes, over the limit of 10 bytes for one template" in str(
        refused.value
    )


SCALARS = """
plain: text
yes_no: [yes, no, on, off, y, n, true, False, TRUE]
nulls: [~, null, Null, ""]
numbers: [1, -2, 0x1F, 0o17, 017, 1_000, 1.5, 1e3, .inf, -.INF, .nan, 1:20, 190:20:30.15]
dates: [2001-12-14, 2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10 -5]
quoted: ["yes", '1', "~"]
merge_like: "<<"
"1": one
? [a, b]
: complex key
"""


def test_the_loader_tags_and_builds_what_the_safe_loader_does():
    """Baton's loader remembers the tags of plain scalars and skips the path resolvers: every tag of
    every node, and the data, are the safe loader's own, for YAML 1.1's odd scalars and every bundled
    file."""
    import yaml

    def tags(node):
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        return [(node.tag, node.value if isinstance(node, yaml.ScalarNode) else None)] + [
            tag for child in children for tag in tags(child)
        ]

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for text in [SCALARS, *(path.read_text() for path in BUNDLED)]:
        ours, theirs = reading.LOADER(text), base(text)
        try:
            assert tags(ours.get_single_node()) == tags(theirs.get_single_node())
        finally:
            ours.dispose()
            theirs.dispose()
        if "? [a, b]" not in text:
            assert yaml.load(text, Loader=reading.LOADER) == yaml.load(text, Loader=base)


def test_a_declared_path_resolver_gets_the_safe_loaders_own_methods(monkeypatch):
    import yaml

    assert reading.LOADER("a: 1").descend_resolver is slice  # the cheap path, while none is declared
    monkeypatch.setattr(reading.LOADER, "yaml_path_resolvers", {(((None, "a"),), yaml.ScalarNode): "!x"})
    loader = reading.LOADER("a: 1")
    assert loader.descend_resolver.__func__ is yaml.resolver.BaseResolver.descend_resolver
    assert loader.resolve(yaml.ScalarNode, "1", (True, False)) == "tag:yaml.org,2002:int"
