"""dags/budgets.yaml: what it declares, and every bad file refused naming the file, the line, the key and
the fix; a broken file fails calls instead of letting them spend unchecked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from baton.budgets.config import budgets_of
from baton.errors import TemplateError
from baton.spec.budgets import Budget, load_budgets


def _load(tmp_path, text: str):
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return load_budgets(path, tmp_path)


def _error(tmp_path, text: str) -> str:
    with pytest.raises(TemplateError) as caught:
        _load(tmp_path, text)
    return str(caught.value)


def test_budgets_at_every_level_with_their_windows(tmp_path):
    budgets = _load(
        tmp_path,
        "budgets:\n"
        "  - {name: research-run, scope: workflow:market_research, per: run, cost: 0.5}\n"
        "  - {name: writer-day, scope: agent:ghost_writer, per: day, tokens: 200000, at_limit: fallback}\n"
        "  - {name: all-month, per: month, cost: 300, tokens: 50000000, warn_at: null}\n",
    )
    run, writer, everything = budgets
    now = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    assert (run.window("r1", now), writer.window("r1", now), everything.window("r1", now)) == (
        "run:r1",
        "2026-11-25",
        "2026-11",
    )
    assert run.applies("market_research", "anyone") and not run.applies("other", "anyone")
    assert writer.applies("any", "ghost_writer") and not writer.applies("any", "other")
    assert everything.applies("any", "any") and everything.scope == "global" and everything.warn_at is None
    assert (writer.at_limit, run.at_limit, run.warn_at) == ("fallback", "fail", 0.8)
    assert _load(tmp_path, "") == ()  # an empty file: no budgets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("budgets:\n  - {name: a, per: day}\n",
         "budgets.yaml:2: budgets[0]: a budget needs a limit: 'cost' (money), 'tokens', or both"),
        ("budgets:\n  - {name: a, per: day, cost: 1, scope: 'team:x'}\n",
         "budgets.yaml:2: budgets[0].scope: scope 'team:x' is not one: use 'global', 'workflow:<workflow>' or "
         "'agent:<agent>'"),
        ("budgets:\n  - {name: a, per: week, cost: 1}\n",
         "budgets.yaml:2: budgets[0].per: Input should be 'run', 'day' or 'month' (fix: use one of the allowed "
         "values)"),
        ("budgets:\n  - {name: a, per: day, cost: -1}\n",
         "budgets.yaml:2: budgets[0].cost: Input should be greater than 0 (fix: use a larger value)"),
        ("budgets:\n  - {name: a, per: day, cost: 1e400}\n",
         "budgets.yaml:2: budgets[0].cost: Input should be less than or equal to 1000000000000 (fix: use a "
         "smaller value)"),
        ("budgets:\n  - {name: a, per: day, cost: 1, warn_at: 1.5}\n",
         "budgets.yaml:2: budgets[0].warn_at: Input should be less than 1 (fix: use a smaller value)"),
        ("budgets:\n  - {name: a, per: day, cost: 1}\n  - {name: a, per: run, tokens: 5}\n",
         "budgets.yaml:1: budgets: two budgets are named 'a': give each its own name"),
        ("budgets:\n  - {name: a, per: day, costs: 1}\n",
         "budgets.yaml:2: budgets[0].costs: unknown key 'costs' (fix: did you mean 'cost'?)"),
        ("budgets:\n  - {name: a, per: day, cost: 1, at_limit: wait}\n",
         "budgets.yaml:2: budgets[0].at_limit: Input should be 'fail', 'fallback', 'ask' or 'defer' (fix: use "
         "one of the allowed values)"),
        ("budgets:\n  - {name: a, per: run, cost: 1, at_limit: defer}\n",
         "budgets.yaml:2: budgets[0]: at_limit 'defer' waits for the next window, and a per-run budget has "
         "none: use per day or month, or at_limit fail, fallback or ask"),
        ("budgets:\n  - {name: 'a b', per: day, cost: 1}\n",
         "budgets.yaml:2: budgets[0].name: 'a b' is not a budget name: use 1 to 100 letters, digits, '_', '.' "
         "or '-'"),
        ("- a\n- b\n",
         "budgets.yaml: expected a mapping at the top, got list (fix: start the file with the keys of a budgets)"),
    ],
)  # fmt: skip
def test_each_bad_budget_is_refused_with_its_line_key_and_fix(tmp_path, text, expected):
    assert _error(tmp_path, text) == expected


def test_hostile_files_are_refused_within_bounds(tmp_path):
    many = "budgets:\n" + "".join(f"  - {{name: b{i}, per: day, cost: 1}}\n" for i in range(201))
    assert _error(tmp_path, many) == (
        "budgets.yaml:1: budgets: List should have at most 200 items after validation, not 201 (fix: use fewer "
        "entries)"
    )
    long_name = _error(tmp_path, "budgets:\n  - {name: " + "n" * 10_000 + ", per: day, cost: 1}\n")
    assert (
        long_name.startswith(f"budgets.yaml:2: budgets[0].name: '{'n' * 100}' is not")
        and len(long_name) < 300
    )
    deep = _error(tmp_path, "budgets:\n  - {name: a, per: day, cost: " + "[" * 60 + "1" + "]" * 60 + "}\n")
    assert deep.endswith(
        "nesting deeper than 50 levels of mappings and lists (fix: flatten this part of the file, or raise "
        "the limit: BATON_MAX_YAML_DEPTH=100)"
    )
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcde", "bcdef", strict=True)
    )
    assert "more than 200,000 values once its aliases (*name) are expanded" in _error(
        tmp_path, bomb + "g: [*f, *f]\n"
    )
    assert _error(tmp_path, "budgets: [\n").startswith("budgets.yaml:")  # YAML syntax: located, no traceback


def test_the_folder_s_budgets_are_reread_when_the_file_changes_and_a_broken_one_fails_loudly(tmp_path):
    assert budgets_of(tmp_path) == () and budgets_of(None) == ()
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - {name: a, per: day, cost: 1}\n")
    assert [b.name for b in budgets_of(tmp_path)] == ["a"]
    path.write_text("budgets:\n  - {name: a, per: day, cost: 1}\n  - {name: bb, per: run, tokens: 10}\n")
    assert [b.name for b in budgets_of(tmp_path)] == ["a", "bb"]
    path.write_text("budgets:\n  - {name: a, per: day}\n")
    with pytest.raises(TemplateError, match="a budget needs a limit"):
        budgets_of(tmp_path)


def test_a_budget_in_the_json_schema_says_what_each_key_is():
    schema = Budget.model_json_schema()
    assert {k for k, v in schema["properties"].items() if not v.get("description")} == set()


@pytest.mark.parametrize(
    "value",
    [{"input_tokens": 1}, {"input_tokens": -1, "output_tokens": 5}, {"input_tokens": True, "output_tokens": 5},
     "100", {"input_tokens": 10**10, "output_tokens": 5}, {"input_tokens": 1, "output_tokens": 2, "x": 3}],
)  # fmt: skip
def test_the_offline_model_s_fixed_usage_is_checked(value, monkeypatch):
    import json

    from baton.errors import AgentError
    from baton.hooks.llm import BatonAIHook

    extra = {"model": "baton:offline", "offline_usage": value}
    monkeypatch.setenv("AIRFLOW_CONN_FIXED_LLM", json.dumps({"conn_type": "pydanticai", "extra": extra}))
    with pytest.raises(AgentError) as caught:
        BatonAIHook(llm_conn_id="fixed_llm").get_conn()
    assert str(caught.value).startswith(
        'LLM connection \'fixed_llm\': offline_usage must be {"input_tokens": N, "output_tokens": M} with whole '
        "numbers from 0 to 1,000,000,000, not "
    )
