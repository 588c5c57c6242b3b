"""The conflict strategies as plain functions: deep merge and the line-based three-way merge."""

from __future__ import annotations

from baton.context.strategies import deep_merge, merge3

BASE = "title\nintro\nbody\nsummary\n"


def test_deep_merge_merges_maps_unites_lists_and_lets_the_new_scalar_win():
    current = {"order": {"qty": 10, "supplier": "acme"}, "tags": ["a", "b"], "status": "draft"}
    mine = {"order": {"qty": 12, "eta": "2026-12-01"}, "tags": ["b", "c"], "status": "final"}
    assert deep_merge(current, mine) == {
        "order": {"qty": 12, "supplier": "acme", "eta": "2026-12-01"},
        "tags": ["a", "b", "c"],
        "status": "final",
    }


def test_three_way_merge_takes_both_edits_of_different_lines():
    current = BASE.replace("intro", "intro by backend")
    mine = BASE.replace("summary", "summary by frontend")
    assert merge3(BASE, current, mine) == "title\nintro by backend\nbody\nsummary by frontend\n"


def test_three_way_merge_takes_edits_of_adjacent_lines():
    current = BASE.replace("intro", "intro A")
    mine = BASE.replace("body", "body B")
    assert merge3(BASE, current, mine) == "title\nintro A\nbody B\nsummary\n"


def test_three_way_merge_refuses_an_insertion_at_the_edge_of_another_edit():
    assert merge3(BASE, BASE.replace("body\n", "body\nnew line\n"), BASE.replace("summary", "end")) is None


def test_three_way_merge_accepts_the_same_edit_twice_and_insertions_apart():
    same = BASE.replace("body", "new body")
    assert merge3(BASE, same, same) == same
    inserted_top = "preface\n" + BASE
    inserted_end = BASE + "appendix\n"
    assert merge3(BASE, inserted_top, inserted_end) == "preface\n" + BASE + "appendix\n"


def test_three_way_merge_refuses_different_edits_of_the_same_line():
    assert merge3(BASE, BASE.replace("body", "body A"), BASE.replace("body", "body B")) is None
