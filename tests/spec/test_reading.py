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
