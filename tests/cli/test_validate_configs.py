"""``baton validate`` checks every file a user writes in the dags folder: beside the roster, budgets.yaml and
monitoring.yaml, read by the spec's loader like a template (bounded, UTF-8, no duplicate keys) and each
problem told at its file, line and key with its fix; a hostile file is refused within bounds, never a
crash, and a broken one fails the command without hiding the others' problems."""

from __future__ import annotations

import json

import pytest

from baton.cli import main, validate
from baton.cli.init import init

SUMMARY_OK = "1 template(s) checked, 0 with errors, 0 error(s) in all"


@pytest.fixture
def dags(tmp_path, monkeypatch):
    init(tmp_path / "dags")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(tmp_path / "plugins"))
    monkeypatch.setenv(  # no warning about the model connection: only the files' problems are printed
        "AIRFLOW_CONN_BATON_LLM", '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
    )
    return tmp_path / "dags"


def _run(capsys, *args: str) -> tuple[int, list[str]]:
    status = main(["validate", *args])
    return status, capsys.readouterr().out.splitlines()


def test_valid_budgets_and_monitoring_files_pass(dags, capsys):
    (dags / "budgets.yaml").write_text("budgets:\n  - {name: daily, per: day, cost: 5, at_limit: defer}\n")
    (dags / "monitoring.yaml").write_text("monitoring:\n  tick: 30s\n  incidents: {resolve_after: 1d12h}\n")
    assert _run(capsys) == (0, [SUMMARY_OK])


def test_each_problem_of_each_file_is_located_and_the_command_fails(dags, capsys):
    (dags / "budgets.yaml").write_text("budgets:\n  - {name: daily, per: day}\n")
    (dags / "monitoring.yaml").write_text(
        "monitoring:\n  tick: 5s\n  detectors:\n    failure_rat: {}\n  runbooks:\n    cost: [nuke]\n"
    )
    status, out = _run(capsys)
    assert status == 1
    assert out == [
        f"{dags}/budgets.yaml:2: budgets[0]: a budget needs a limit: 'cost' (money), 'tokens', or both",
        f"{dags}/monitoring.yaml:2: monitoring.tick: 5s is out of range: use a duration from 10s to 1h",
        f"{dags}/monitoring.yaml:4: monitoring.detectors.failure_rat: unknown key 'failure_rat' (fix: did you "
        "mean 'failure_rate'?)",
        f"{dags}/monitoring.yaml:6: monitoring.runbooks.cost[0]: unknown action 'nuke': use one of "
        "open_circuit, lower_concurrency, pause_workflow, retry_failed_runs, escalate",
        "1 template(s) checked, 0 with errors, 4 error(s) in all; budgets.yaml has errors; monitoring.yaml has "
        "errors",
    ]


def test_the_files_beside_a_roster_given_with_agents_are_checked(dags, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "agents.yaml").write_bytes((dags / "agents.yaml").read_bytes())
    (other / "monitoring.yaml").write_text("monitoring: {tick: soon}\n")
    (dags / "monitoring.yaml").write_text("monitoring: {tick: 2h}\n")  # not this folder's: not read
    status, out = _run(capsys, str(dags / "workflows"), "--agents", str(other / "agents.yaml"))
    assert (status, out[0]) == (
        1,
        f"{other}/monitoring.yaml:1: monitoring.tick: Input should be a valid timedelta, invalid digit in "
        "duration (fix: use seconds (300) or a duration like '30s', '5m', '1h30m')",
    )
    assert len(out) == 2 and out[-1].endswith("1 error(s) in all; monitoring.yaml has errors")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)  # nine levels of ten aliases each: 10^9 values once expanded


@pytest.mark.parametrize("name", ["budgets.yaml", "monitoring.yaml"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"#" * 1_000_001,
            ": the file is 1,000,001 bytes, over the limit of 1,000,000 bytes for one template (fix: split it "
            "into smaller workflows, or raise the limit: BATON_MAX_TEMPLATE_BYTES=2000000)",
        ),
        (
            b"x: " + b"[" * 100 + b"]" * 100 + b"\n",
            ":1: x" + "[0]" * 49 + ": nesting deeper than 50 levels of mappings and lists (fix: flatten this "
            "part of the file, or raise the limit: BATON_MAX_YAML_DEPTH=100)",
        ),
        (
            BOMB.encode(),
            ":6: more than 200,000 values once its aliases (*name) are expanded (fix: write the data out instead "
            "of repeating aliases of aliases, or raise the limit: BATON_MAX_YAML_NODES=400000)",
        ),
        (
            b"x: [1, 2\n",
            ":1: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence that starts "
            "here (noticed at line 2) (fix: close or fix what opens at this line)",
        ),
        (
            b"x: {}\nx: {}\n",
            ":2: x: duplicate key 'x' (first at line 1): YAML would keep only the last one (fix: remove one of "
            "the two, or merge them into one)",
        ),
        (
            b"x: caf\xe9\n",
            ":1: the file is not UTF-8 text: byte 0xe9 at column 7 cannot be decoded (fix: save the file as UTF-8)",
        ),
    ],
    ids=["huge", "deep", "alias-bomb", "malformed", "duplicate-key", "not-utf8"],
)
def test_a_hostile_file_is_refused_within_bounds_at_its_line(dags, capsys, name, content, expected):
    (dags / name).write_bytes(content)
    status, out = _run(capsys)
    assert (status, out) == (
        1,
        [
            f"{dags}/{name}{expected}",
            f"1 template(s) checked, 0 with errors, 1 error(s) in all; {name} has errors",
        ],
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "budgets.yaml",
            "expected a mapping at the top, got list (fix: start the file with the keys of a budgets)",
        ),
        ("monitoring.yaml", "expected a mapping at the top, got list (fix: start with 'monitoring:')"),
    ],
)
def test_a_file_that_is_not_a_mapping_says_how_to_start(dags, capsys, name, expected):
    (dags / name).write_text("- a\n- b\n")
    assert _run(capsys)[1][0] == f"{dags}/{name}: {expected}"


def test_a_crash_while_reading_one_file_is_that_file_s_error_and_the_json_says_which(
    dags, capsys, monkeypatch
):
    def crash(path):
        raise RuntimeError("planted")

    monkeypatch.setitem(validate.CONFIGS, "budgets.yaml", crash)
    (dags / "budgets.yaml").write_text("budgets: []\n")
    (dags / "monitoring.yaml").write_text("monitoring:\n  tick: 90s\n  tick: 2m\n")
    status, out = _run(capsys, "--format", "json")
    lines = [json.loads(line) for line in out]
    assert status == 1
    configs = [line for line in lines[:-1] if line["file"].endswith(("budgets.yaml", "monitoring.yaml"))]
    assert [(line["file"], line["ok"], [i["text"] for i in line["issues"]]) for line in configs] == [
        (
            f"{dags}/budgets.yaml",
            False,
            [
                f"{dags}/budgets.yaml: RuntimeError: planted (fix: this is a Baton bug; please report it with the file)"
            ],
        ),
        (
            f"{dags}/monitoring.yaml",
            False,
            [
                f"{dags}/monitoring.yaml:3: monitoring.tick: duplicate key 'tick' (first at line 2): YAML would "
                "keep only the last one (fix: remove one of the two, or merge them into one)"
            ],
        ),
    ]
    assert lines[-1]["summary"] == {
        "checked": 1,
        "with_errors": 0,
        "errors": 2,
        "warnings": 0,
        "roster_ok": True,
        "configs_ok": False,
    }


def test_without_the_files_nothing_more_is_checked_and_the_json_says_the_configs_are_ok(dags, capsys):
    status, out = _run(capsys, "--format", "json")
    assert (status, json.loads(out[-1])["summary"]["configs_ok"]) == (0, True)
    assert [json.loads(line)["file"] for line in out[:-1]] == [f"{dags}/workflows/hello_baton.yaml"]
