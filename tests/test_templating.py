"""baton.templating: what a template reads (for the checks and the plan), rendering and ``when`` conditions."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from baton import templating
from baton.templating import evaluate, references, render


def unknown(source: str, *, expression: bool = False) -> set[str]:
    return set(references(source, expression=expression)[0])


# --- references(): step ids and input names read -----------------------------------------------


def test_step_ids_and_input_names_read_by_attribute_and_by_item():
    names, steps, inputs = references(
        "{{ steps.score.total }} {{ steps['value'].rows | length }} {{ inputs.region }} {{ inputs['month'] }}"
    )
    assert names == set()
    assert steps == {"score", "value"}
    assert inputs == {"region", "month"}


def test_a_computed_key_is_not_a_step_id():
    assert references("{{ steps[inputs.which] }}")[1:] == (set(), {"which"})


def test_reads_inside_blocks_loops_and_filters_are_found():
    source = (
        "{% if inputs.verbose %}{% for lead in steps.score.leads %}{{ lead.name }}{% endfor %}{% endif %}"
        "{{ steps.value.rows | map(attribute='total') | join(', ') }}"
    )
    assert references(source) == (set(), {"score", "value"}, {"verbose"})


def test_the_context_names_alone_are_known():
    assert references("{{ run.id }} {{ run.logical_date }} {{ run.ds }} {{ steps }} {{ inputs }}")[0] == set()


# --- references(): unknown names ---------------------------------------------------------------


def test_an_unknown_top_level_name_is_reported():
    assert unknown("Score {{ lead.name }} for {{ inputs.region }}") == {"lead"}


def test_every_unknown_name_is_reported_once():
    assert unknown("{{ a }} {{ b.c }} {{ a | upper }} {{ f(a) }}") == {"a", "b", "f"}


def test_an_unknown_name_is_reported_next_to_names_the_template_defines():
    source = "{% set total = 3 %}{% for x in steps.s.rows %}{{ x }}{{ other }}{% endfor %}{{ total }}"
    assert unknown(source) == {"other"}


def test_loop_outside_any_for_is_unknown():
    assert unknown("{{ loop.index }}") == {"loop"}


def test_an_unknown_name_in_the_iterable_a_default_or_a_with_value_is_reported():
    assert unknown("{% for x in items %}{{ x }}{% endfor %}") == {"items"}
    assert unknown("{% macro m(a, b=fallback) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}") == {"fallback"}
    assert unknown("{% with a = source %}{{ a }}{% endwith %}") == {"source"}


def test_a_namespace_assignment_reads_the_namespace():
    assert unknown("{% set ns.count = 1 %}") == {"ns"}
    assert (
        unknown("{% set ns = namespace(count=0) %}{% set ns.count = ns.count + 1 %}{{ ns.count }}") == set()
    )


# --- references(): names the template or Jinja defines are not reported -------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{% set n = steps.s.rows | length %}{{ n }}", id="set"),
        pytest.param("{% set a, b = steps.s.pair %}{{ a }}-{{ b }}", id="set-tuple"),
        pytest.param("{% set text %}{{ inputs.x }}{% endset %}{{ text | upper }}", id="set-block"),
        pytest.param("{% for row in steps.s.rows %}{{ row }}{% endfor %}", id="for"),
        pytest.param("{% for k, v in steps.s.scores.items() %}{{ k }}={{ v }}{% endfor %}", id="for-tuple"),
        pytest.param(
            "{% for r in steps.s.rows %}{{ loop.index }}/{{ loop.length }} {{ r }}{% endfor %}", id="loop"
        ),
        pytest.param(
            "{% for r in steps.s.tree recursive %}{{ loop(r.children) }}{% endfor %}", id="recursive"
        ),
        pytest.param(
            "{% macro line(name, total=0) %}{{ name }}: {{ total }}{% endmacro %}{{ line('a') }}", id="macro"
        ),
        pytest.param(
            "{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}x{% endcall %}", id="caller"
        ),
        pytest.param("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, a=2) }}", id="varargs"),
        pytest.param(
            "{% macro m(x) %}{{ x }}{% endmacro %}{% call(item) m(1) %}{{ item }}{% endcall %}",
            id="call-args",
        ),
        pytest.param("{% with total = steps.s.total %}{{ total }}{% endwith %}", id="with"),
        pytest.param("{% for i in range(3) %}{{ i }}{% endfor %}", id="range"),
        pytest.param("{% set ns = namespace(n=0) %}{{ ns.n }}", id="namespace"),
        pytest.param(
            "{{ dict(a=1) }} {{ lipsum(1) }} {{ cycler('a', 'b').next() }} {{ joiner(', ')() }}", id="globals"
        ),
        pytest.param("{{ steps.s.rows | join(', ') }} {{ inputs.x | default('all') | upper }}", id="filters"),
        pytest.param("{{ inputs.x is defined and inputs.x is string }}", id="tests"),
        pytest.param("{{ true }} {{ false }} {{ none }} {{ True }}", id="constants"),
        pytest.param("{% raw %}{{ not_jinja }}{% endraw %}", id="raw"),
    ],
)
def test_names_defined_by_the_template_or_by_jinja_are_not_reported(source):
    assert unknown(source) == set()


# --- references(): syntax errors and `when` expressions -----------------------------------------


@pytest.mark.parametrize("source", ["{{ steps.a.x ", "{% for x in y %}no end", "{{ 1 + }}", "{% bogus %}"])
def test_bad_jinja_raises_a_syntax_error_with_a_message(source):
    with pytest.raises(jinja2.TemplateSyntaxError) as caught:
        references(source)
    assert caught.value.message


def test_a_syntax_error_is_raised_every_time_not_only_the_first():
    for _ in range(2):
        with pytest.raises(jinja2.TemplateSyntaxError):
            references("{{ steps.a.x ")


def test_a_when_condition_is_read_as_an_expression():
    assert references("steps.summarize.priority == 'high' and inputs.notify", expression=True) == (
        set(),
        {"summarize"},
        {"notify"},
    )
    assert unknown("priority == 'high'", expression=True) == {"priority"}


def test_a_bad_when_condition_raises_a_syntax_error():
    with pytest.raises(jinja2.TemplateSyntaxError):
        references("steps.a.x ==", expression=True)
    with pytest.raises(jinja2.TemplateSyntaxError):
        references("{% if x %}", expression=True)  # a statement is no expression


def test_the_same_text_as_template_and_as_expression_are_told_apart():
    # As a template, "a" is plain text; as a `when` expression it is the name a.
    assert unknown("a") == set()
    assert unknown("a", expression=True) == {"a"}


# --- references(): parsed once, and immutable ---------------------------------------------------


def test_a_source_is_parsed_once_and_the_answer_cannot_be_changed_by_a_caller():
    source = "{{ steps.cache_probe.x }} {{ inputs.cache_probe }} {{ cache_probe }}"
    before = templating._analyse.cache_info()
    first = references(source)
    second = references(source, expression=False)
    after = templating._analyse.cache_info()
    assert second is first
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert all(isinstance(part, frozenset) for part in first)
    with pytest.raises(AttributeError):
        first[1].add("other")  # type: ignore[attr-defined]
    assert references(source) == ({"cache_probe"}, {"cache_probe"}, {"cache_probe"})


# --- render() and evaluate() ---------------------------------------------------------------------

CONTEXT = {
    "inputs": {"region": "emea", "min_score": 50},
    "steps": {"score": {"total": 3, "leads": ["a", "b"]}, "summarize": {"priority": "high"}},
    "run": {"id": "manual__1", "ds": "2025-01-01"},
}


def test_render_fills_in_inputs_steps_and_run():
    source = "{{ inputs.region }}: {{ steps.score.leads | join(', ') }} ({{ steps['score'].total }}) {{ run.ds }}\n"
    assert render(source, CONTEXT) == "emea: a, b (3) 2025-01-01\n"  # the trailing newline is kept


def test_render_raises_on_a_missing_key_or_name():
    with pytest.raises(jinja2.UndefinedError):
        render("{{ inputs.regoin }}", CONTEXT)
    with pytest.raises(jinja2.UndefinedError):
        render("{{ steps.nope.total }}", CONTEXT)
    with pytest.raises(jinja2.UndefinedError):
        render("{{ lead }}", CONTEXT)


def test_evaluate_returns_a_bool():
    assert evaluate("steps.summarize.priority == 'high'", CONTEXT) is True
    assert evaluate("steps.score.total > inputs.min_score", CONTEXT) is False
    assert evaluate("steps.score.leads", CONTEXT) is True  # truthiness, as a bool
    assert evaluate("steps.score.leads | select('eq', 'z') | list", CONTEXT) is False


def test_evaluate_raises_on_a_missing_key():
    with pytest.raises(jinja2.UndefinedError):
        evaluate("steps.summarize.urgency == 'high'", CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ steps.__class__ }}",
        "{{ (lipsum).__globals__ }}",
    ],
)
def test_the_sandbox_refuses_unsafe_attributes_in_render(source):
    with pytest.raises(SecurityError):
        render(source, CONTEXT)


def test_the_sandbox_refuses_unsafe_attributes_in_when():
    with pytest.raises(SecurityError):
        evaluate("''.__class__", CONTEXT)


# --- the plain-hole fast path: the same answer as the syntax tree --------------------------------

TRICKY = [
    "",
    "plain text",
    "\n",
    "{{ a }}",
    "{{a.b}}{{c}}",
    "x {{ steps.a.b }} y {{ inputs.c }} {{ context.d.e }} {{ run.ds }}",
    "{{\n  steps.score.total\n}}",
    "{{{ a }}",  # Jinja reads a dict literal here
    "{{ a }}}}",
    "{{ a }}}",
    "{ {{ a }} }",
    "{{ a }} {% if x %}y{% endif %}",
    "{{ a }} {# note #}",
    "{{- a -}}",
    "{{ a._b }}",
    "{{ _a }}",
    "{{ a.__class__ }}",
    "{{ a.0 }}",
    "{{ true }}",
    "{{ none.x }}",
    "{{ a.if }}",
    "{{ loop.index }}",
    "{{ self }}",
    "{{ range }}",
    "{{ a | default('n/a') }}",
    "{{ a }",
    "{{ a",
    "}} {{ a }} {{",
    "100% {{ a }} #1 {b} }}",
    "{{ é.x }}",
]


def _texts_of_the_shipped_templates() -> list[tuple[str, bool]]:
    import importlib.util
    import sys
    from pathlib import Path

    import baton.skills  # noqa: F401  (Baton's own skills, e.g. http_post, register when imported)
    from baton.spec.loading import load_roster, load_workflow

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_parse", root / "bench" / "parse.py")
    bench = importlib.util.module_from_spec(spec)
    # run as `python bench/parse.py`, its folder is on the path (it imports its sibling cli_types): here too,
    # rather than only when another test of the same process happened to put it there
    sys.path.insert(0, str(root / "bench"))
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(root / "bench"))
    texts = [(step["instruction"], False) for i in range(6) for step in bench.workflow_spec(i)["steps"]]
    texts += [
        (step["when"], True) for i in range(6) for step in bench.workflow_spec(i)["steps"] if "when" in step
    ]
    roster = load_roster(root / "dags" / "agents.yaml")
    for path in sorted((root / "dags" / "workflows").glob("*.yaml")):
        workflow = load_workflow(path, roster)
        for step in workflow.steps:
            texts += [(source, expression) for _, source, expression, _ in step.jinja_sources() if source]
    return texts


def _slow(source: str, expression: bool):
    """The tree walk alone (the fast path switched off)."""
    from baton.templating import analysis

    fast = analysis._plain_reads
    analysis._plain_reads = lambda *_: None
    try:
        return analysis._analyse.__wrapped__(source, expression)
    except jinja2.TemplateSyntaxError as error:
        return ("syntax error", error.message)
    finally:
        analysis._plain_reads = fast


def test_the_plain_hole_fast_path_reads_what_the_syntax_tree_reads():
    import random

    from baton.templating import analysis

    rng = random.Random(7)
    alphabet = ["{{", "}}", "{", "}", "%", "#", "-", ".", " ", "\n", "a", "steps", "inputs", "_x", "if", "0"]
    alphabet += ["|", "default", "upper", "e", "(", ")", "('n/a')", '("_x")', "(2)", "attr('_x')", "'", ","]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    cases = [(text, expression) for text in TRICKY + fuzz for expression in (False, True)]
    cases += _texts_of_the_shipped_templates()
    taken = 0
    for source, expression in cases:
        plain = analysis._plain_reads(source, expression)
        if plain is not None:
            taken += 1
            assert plain == _slow(source, expression), (source, expression)
    # the fast path is taken for most shipped texts and for many fuzzed ones, and refuses the rest
    assert taken > 500, taken
    for taken_by_fast_path in (
        "{{ a | upper }}",
        "x {{ steps.a.b|default('n/a') }} {{ c }}",
        "{{ a | round(2) }}",
    ):
        assert analysis._plain_reads(taken_by_fast_path, False) == _slow(taken_by_fast_path, False)
    assert analysis._plain_reads("a.b | default(0)", True) == _slow("a.b | default(0)", True)
    for parsed in (
        "{{ a | attr('_x') }}",
        "{{ a | default('x', true) }}",
        "{{ a | default('{{') }}",
        "{{ a | b }}",
    ):
        assert analysis._plain_reads(parsed, False) is None, parsed
    assert _slow("{{ a | attr('_x') }}", False).unsafe  # what the parse is for
    assert analysis._plain_reads("{{{ a }}", False) is None
