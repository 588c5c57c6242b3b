"""What a run always refuses, ``baton validate`` reports from the same rule: a Jinja text the sandbox will
refuse (a template it would load, a format string reaching a private attribute) and the part of an
``http_post`` URL that fixes where the post goes (the egress policy's side: tests/egress/test_http.py)."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from baton import templating
from baton.cli import main as baton
from baton.spec.checks.egress import fixed_url
from baton.templating.render import render
from baton.templating.sandbox import LOAD_FIX, LOADS_NOTHING
from tests.conftest import ROOT

WARNED = ROOT / "tests" / "spec" / "egress_warnings"

CONTEXT = {"inputs": {"region": "emea", "leads": {"a": 1}}, "steps": {}, "run": {"id": "r1"}, "context": {}}

REFUSED = [
    ("{% include 'prompts/score.txt' %}", SecurityError, "the template 'prompts/score.txt' is not loaded"),
    ("{% import 'macros' as m %}{{ 1 }}", SecurityError, "the template 'macros' is not loaded"),
    ("{% from 'macros' import score %}", SecurityError, "the template 'macros' is not loaded"),
    ("{% extends 'base' %}", SecurityError, "the template 'base' is not loaded"),
    ("{% include inputs.region %}", SecurityError, "the template 'emea' is not loaded"),
    ("{{ '{0.__class__}'.format(inputs.region) }}", SecurityError, "access to attribute '__class__'"),
    (
        "{{ '{region.__class__.__mro__}'.format_map(inputs) }}",
        SecurityError,
        "access to attribute '__class__'",
    ),
    ("{{ '{0:{1.__doc__}}'.format(1, inputs) }}", SecurityError, "access to attribute '__doc__'"),
    ("{{ '{0[_a]}'.format(inputs.leads) }}", UndefinedError, "has no attribute '_a'"),
    ("{{ '{'.format(1) }}", ValueError, "Single '{' encountered in format string"),
]


@pytest.mark.parametrize(("source", "error", "words"), REFUSED)
def test_a_text_validate_calls_unsafe_is_refused_by_every_rendering(source, error, words):
    assert templating.analyse(source, expression=False).unsafe, "validate reports it"
    with pytest.raises(error) as refused:
        render(source, CONTEXT)
    assert words in str(refused.value)
    if "not loaded" in words:
        assert str(refused.value).endswith(f": {LOADS_NOTHING} (fix: {LOAD_FIX})")


@pytest.mark.parametrize(
    "source",
    [
        "{{ '{0} in {1}'.format(inputs.region, run.id) }}",
        "{{ '{0[a]} {0!r:>10}'.format(inputs.leads) }}",
        "{{ '{region:_^9}'.format_map(inputs) }}",  # '_' as a fill character, not a name
        "{{ '%s-%s' | format(inputs.region, run.id) }}",
        "{% set x = 'include' %}{{ x }}",
    ],
)
def test_a_format_the_sandbox_renders_is_not_reported(source):
    assert templating.analyse(source, expression=False).unsafe == ()
    render(source, CONTEXT)


@pytest.mark.parametrize(
    ("url", "path", "fixed"),
    [
        ("http://169.254.169.254/latest", None, "http://169.254.169.254/latest"),
        ("http://169.254.169.254/{{ run.id }}", None, "http://169.254.169.254/"),
        ("https://h.example/a", "/b", "https://h.example/a/b"),
        ("https://h.example/", "{{ inputs.p }}", "https://h.example/"),
        ("{{ inputs.base }}/posts", None, None),  # Jinja writes the host
        ("http://{{ inputs.host }}/posts", None, None),
        ("http://h.example{{ inputs.port }}/x", None, None),  # the port, so the authority, is Jinja's
        ("http://h.example{# c #}/x", None, None),
        ("https://h.example?q={{ x }}", None, "https://h.example?q="),
    ],
)
def test_the_part_of_a_url_that_fixes_the_host(url, path, fixed):
    assert fixed_url(url, path) == fixed


def test_a_huge_or_odd_url():
    # (one pass of a pattern without nested repetition: linear in the URL, whatever its size)
    assert fixed_url("http://" + "a" * 1_000_000 + "{{ x }}/") is None
    long = "http://" + "a." * 200_000 + "example/"
    assert fixed_url(long + "{{" * 100_000) == long
    assert fixed_url("\x00\ud800://{{") is None
    assert fixed_url("http://h.example/" + "{%" * 10, "{{ p }}") == "http://h.example/"


def test_validate_warns_of_an_http_post_url_every_run_is_refused_and_the_template_still_loads(capsys):
    """A warning, not an error: the roster (the admins') changes apart from the template, and a template
    that loaded before keeps loading; its step fails as it did, recorded as egress.blocked."""
    roster = ROOT / "dags" / "agents.yaml"
    assert baton(["validate", str(WARNED), "--agents", str(roster)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(WARNED))]
    assert lines == [
        f"{WARNED}/http_post_metadata.yaml:9: steps[0].with.url: warning: every run's post to "
        "http://169.254.169.254/latest/meta-data/ would be refused by the egress policy: 169.254.169.254 is a "
        "link-local address (where cloud metadata services answer): never allowed, even when listed (fix: post "
        "elsewhere: no entry of the roster can allow it)",
        f"{WARNED}/http_post_not_allowed.yaml:9: steps[0].with.url: warning: every run's post to "
        "https://partner.example.com/leads would be refused by the egress policy: partner.example.com is not on "
        "skill http_post's allowlist (127.0.0.1, localhost) (fix: add 'partner.example.com' to "
        "skills.http_post.allow in dags/agents.yaml)",
    ]
