"""``templating.arguments``: a step's ``with``, rendered; one ``{{ expression }}`` keeps its type."""

from __future__ import annotations

import jinja2
import pytest

from baton.templating import arguments

SCOPE = {
    "inputs": {"month": "2026-10", "limit": 3, "regions": ["emea", "apac"]},
    "steps": {"score": {"qualified": [{"id": 1}], "total": 4}},
    "run": {"id": "run_1"},
}


def test_one_expression_keeps_its_type_and_text_is_rendered():
    got = arguments(
        {
            "url": "https://partner.example/{{ inputs.month }}/orders",
            "limit": "{{ inputs.limit }}",
            "padded": "  {{ inputs.limit }} ",
            "trimmed": "{{- inputs.limit -}}",
            "negative": "{{ -inputs.limit }}",
            "leads": "{{ steps.score.qualified }}",
            "literal": "{{ {'a': {'b': 1}} }}",
            "two": "{{ inputs.limit }}{{ inputs.limit }}",
            "braces": "{{ inputs.limit }} }} {{ inputs.limit }}",
            "plain": "hello",
            "number": 7,
            "none": None,
        },
        SCOPE,
    )
    assert got == {
        "url": "https://partner.example/2026-10/orders",
        "limit": 3,
        "padded": 3,
        "trimmed": 3,
        "negative": -3,
        "leads": [{"id": 1}],
        "literal": {"a": {"b": 1}},
        "two": "33",
        "braces": "3 }} 3",
        "plain": "hello",
        "number": 7,
        "none": None,
    }


def test_nested_mappings_and_lists_are_rendered_keys_are_not():
    got = arguments({"json": {"{{ k }}": ["{{ inputs.regions }}", "{{ run.id }}-x", 1]}}, SCOPE)
    assert got == {"json": {"{{ k }}": [["emea", "apac"], "run_1-x", 1]}}


@pytest.mark.parametrize("source", ["{{ inputs.missing }}", "{{ nothing }}", "x {{ inputs.missing }}"])
def test_an_undefined_name_raises(source):
    with pytest.raises(jinja2.UndefinedError):
        arguments({"value": source}, SCOPE)
