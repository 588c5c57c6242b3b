"""The offline model only where it is chosen (issue 52): a step whose LLM connection is not defined fails
with the connection's name and the fix; a connection that names ``baton:offline`` answers offline, and every
event, ``baton replay`` and the Coordination page's chart say so. Real ``dag.test()`` runs of
tests/fixtures/offline_choice/dags (its own bundle), and the hook itself on hostile connections."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import pytest

from baton.cli import main as baton
from baton.errors import AgentError
from baton.events import EventStore
from baton.hooks.llm import ALLOW_OFFLINE_ENV, OFFLINE_CONNECTION, BatonAIHook
from baton.hooks.offline import OFFLINE_MODEL_NAME
from baton.ops.dashboard import gantt
from tests.conftest import own_bundle, run_dag_test_in_subprocess
from tests.threads import run_threads

BUNDLE = "baton-test-offline-choice"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "offline_choice" / "dags"
MISSING = (
    "LLM connection 'baton_llm' is not defined, so its agents have no model. Create it for a real model: "
    'AIRFLOW_CONN_BATON_LLM=\'{"conn_type": "pydanticai", "password": "<API key>", "extra": {"model": '
    '"openai:gpt-5-mini"}}\' (or `airflow connections add baton_llm --conn-type pydanticai --conn-password '
    "'<API key>' --conn-extra '{\"model\": \"openai:gpt-5-mini\"}'`). To answer with Baton's offline model "
    'instead (made-up data, for demos and tests), give the connection the extra {"model": "baton:offline"}.'
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("offline-choice") / "dags"
    return folder, own_bundle(FIXTURE, folder, BUNDLE)


@pytest.fixture(scope="module")
def unconfigured_run(bundle, airflow_db):
    """The workflow where `make run`'s settings are not: no baton_llm, no BATON_OFFLINE_FALLBACK."""
    folder, env = bundle
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AIRFLOW_CONN_BATON_LLM")
        patch.delenv(ALLOW_OFFLINE_ENV, raising=False)
        run, results, output = run_dag_test_in_subprocess(folder, BUNDLE, "offline_choice", env=env)
    return run, results, output, list(EventStore.from_airflow().read(run.run_id))


@pytest.fixture(scope="module")
def offline_run(bundle, airflow_db):
    """The workflow with baton_llm naming the offline model, as `make run` and the tests define it."""
    folder, env = bundle
    env = {**env, "AIRFLOW_CONN_BATON_LLM": OFFLINE_CONNECTION}
    run, results, output = run_dag_test_in_subprocess(folder, BUNDLE, "offline_choice", env=env)
    return run, results, output, list(EventStore.from_airflow().read(run.run_id))


def test_a_missing_connection_fails_the_step_with_its_name_and_the_fix(unconfigured_run):
    run, _, output, events = unconfigured_run
    assert run.task_states == {"plan": "failed", "build": "upstream_failed"}, output[-3000:]
    (failed,) = [e for e in events if e.type == "step.failed" and e.step == "plan"]
    assert (failed.payload["error_class"], failed.payload["error"]) == ("AgentError", MISSING)
    assert [e for e in events if e.type == "model.called"] == [], "no model answered, offline or other"
    assert "answering with the offline model" not in output


def test_a_connection_naming_the_offline_model_answers_marked_offline(offline_run, capsys):
    run, results, output, events = offline_run
    assert run.task_states == {"plan": "success", "build": "success"}, output[-3000:]
    calls = [e for e in events if e.type == "model.called"]
    items = len(results["plan"][1]["subtasks"])
    assert [e.step for e in calls].count("build") == items >= 1
    assert [e.step for e in calls].count("plan") == 1
    assert {(e.payload["model"], e.payload.get("offline")) for e in calls} == {(OFFLINE_MODEL_NAME, True)}

    assert baton(["replay", run.run_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    answers = [line for line in lines if " model.called " in line]
    assert len(answers) == len(calls)
    assert all("OFFLINE MODEL (made-up answer) baton:offline: " in line for line in answers), answers
    steps = [line for line in lines if line.startswith(("  plan ", "  build "))]
    assert len(steps) == 2 and all("answered by the OFFLINE MODEL (made-up data)" in s for s in steps), steps

    # The Coordination page's chart: each try the offline model answered is marked, and the run counts them.
    chart = gantt.chart(EventStore.from_airflow(), run.run_id)
    assert chart["offline_calls"] == len(calls)
    tries = {b["step"]: b["offline"] for b in chart["bars"] if b["kind"] == "try"}
    assert tries == {"plan": True, "build": True}


def test_a_real_models_calls_are_not_marked_offline():
    from baton.agents.model import model_called  # the payload the offline run's events were made by

    real = model_called("gpt-local", {}, {"input_tokens": 3, "output_tokens": 1}, 0.5, "hi")
    offline = model_called(OFFLINE_MODEL_NAME, {}, {"input_tokens": 3, "output_tokens": 1}, 0.5, "hi")
    assert ("offline" in real, offline["offline"]) == (False, True)


# --- the hook on its own ------------------------------------------------------------------------


def _conn(monkeypatch, conn_id: str, extra: object) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "pydanticai", "extra": extra})
    )


def _error(conn_id: str, model_id: str | None = None) -> str:
    with pytest.raises(AgentError) as caught:
        BatonAIHook(llm_conn_id=conn_id, model_id=model_id).get_conn()
    return str(caught.value)


def test_the_deprecated_fallback_still_answers_offline_with_a_warning(monkeypatch, airflow_db):
    monkeypatch.setenv(ALLOW_OFFLINE_ENV, "true")
    with pytest.warns(DeprecationWarning, match="BATON_OFFLINE_FALLBACK is deprecated") as caught:
        model = BatonAIHook(llm_conn_id="baton_test_never_defined").get_conn()
    assert model.model_name == OFFLINE_MODEL_NAME
    (warning,) = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert warning == (
        "LLM connection 'baton_test_never_defined' is not defined: answering with the offline model "
        "baton:offline because BATON_OFFLINE_FALLBACK is true. BATON_OFFLINE_FALLBACK is deprecated and goes "
        'in Baton 0.3: choose the offline model with a connection whose extra is {"model": "baton:offline"} '
        '(AIRFLOW_CONN_BATON_LLM=\'{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}\'), '
        "or create the connection for a real model."
    )


@pytest.mark.parametrize("value", ["false", "0", "", "maybe", "TRUE please"])
def test_anything_but_true_is_the_strict_behaviour(monkeypatch, airflow_db, value):
    monkeypatch.setenv(ALLOW_OFFLINE_ENV, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no warning: nothing deprecated was used
        message = _error("baton_test_never_defined")
    assert message.startswith("LLM connection 'baton_test_never_defined' is not defined, so its agents")


def test_the_offline_model_chosen_by_the_agents_model_needs_no_connection(airflow_db):
    model = BatonAIHook(llm_conn_id="baton_test_never_defined", model_id=OFFLINE_MODEL_NAME).get_conn()
    assert model.model_name == OFFLINE_MODEL_NAME


@pytest.mark.parametrize(
    "model",
    [" baton:offline", "baton:offline ", "Baton:Offline", "baton:offline; rm -rf /", "openai:baton:offline"],
)
def test_a_misspelt_offline_model_is_an_error_not_a_provider_call(monkeypatch, model):
    _conn(monkeypatch, "baton_test_junk", {"model": model})
    assert _error("baton_test_junk") == (
        f"LLM connection 'baton_test_junk': extra.model is {model!r}, which is not a model: write exactly "
        '"baton:offline" for the offline model (nothing around it), or a real model such as "openai:gpt-5-mini"'
    )


def test_an_agents_misspelt_offline_model_is_an_error(airflow_db):
    assert _error("baton_test_never_defined", "baton:ofline") == (
        "The agent's model is 'baton:ofline', which is not a model: write exactly \"baton:offline\" for the "
        'offline model (nothing around it), or a real model such as "openai:gpt-5-mini"'
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"model": ""},
            "LLM connection 'baton_test_bad': extra.model is empty: set it to a model such as "
            '"openai:gpt-5-mini", or "baton:offline" for the offline model',
        ),
        (
            {"model": "   "},
            "LLM connection 'baton_test_bad': extra.model is empty: set it to a model such as "
            '"openai:gpt-5-mini", or "baton:offline" for the offline model',
        ),
        (
            {"model": ["baton:offline"]},
            "LLM connection 'baton_test_bad': extra.model must be a model name such as "
            '"openai:gpt-5-mini" or "baton:offline", not list [\'baton:offline\']',
        ),
        (
            {"model": {"a": {"b": {"c": "baton:offline"}}}},
            "LLM connection 'baton_test_bad': extra.model must be a model name such as "
            "\"openai:gpt-5-mini\" or \"baton:offline\", not dict {'a': {'b': {'c': 'baton:offline'}}}",
        ),
        (
            {},
            "LLM connection 'baton_test_bad' names no model: give it the extra "
            '{"model": "openai:gpt-5-mini"} (a real model), or {"model": "baton:offline"} for the offline model',
        ),
        (
            {"model": "baton:offline", "offline_delay_s": "soon"},
            "LLM connection 'baton_test_bad': offline_delay_s must be a number of seconds from 0 to 86,400, "
            "not soon",
        ),
        (
            {"model": "baton:offline", "offline_delay_s": -1},
            "LLM connection 'baton_test_bad': offline_delay_s must be a number of seconds from 0 to 86,400, "
            "not -1",
        ),
        (
            {"model": "baton:offline", "offline_delay_s": 1e300},
            "LLM connection 'baton_test_bad': offline_delay_s must be a number of seconds from 0 to 86,400, "
            "not 1e+300",
        ),
        (
            {"model": "baton:offline", "offline_delay_s": True},
            "LLM connection 'baton_test_bad': offline_delay_s must be a number of seconds from 0 to 86,400, "
            "not True",
        ),
    ],
)
def test_a_connection_that_names_no_usable_model_is_a_clear_error(monkeypatch, extra, message):
    _conn(monkeypatch, "baton_test_bad", extra)
    assert _error("baton_test_bad") == message


def test_a_huge_model_string_is_cut_short_in_the_error(monkeypatch):
    _conn(monkeypatch, "baton_test_bad", {"model": "baton:offline" + "x" * 100_000})
    message = _error("baton_test_bad")
    assert len(message) < 400 and "'baton:offline" + "x" * 87 + "'" in message


def test_a_connection_id_no_environment_variable_can_carry_gets_the_command(airflow_db):
    assert _error("llm-eu.prod") == (
        "LLM connection 'llm-eu.prod' is not defined, so its agents have no model. Create it for a real model: "
        "`airflow connections add llm-eu.prod --conn-type pydanticai --conn-password '<API key>' --conn-extra "
        '\'{"model": "openai:gpt-5-mini"}\'` (an environment variable cannot carry this id). To answer with '
        "Baton's offline model instead (made-up data, for demos and tests), give the connection the extra "
        '{"model": "baton:offline"}.'
    )
    quoted = _error("llm prod's")  # a space and a quote: the command quotes the id for the shell
    assert "`airflow connections add 'llm prod'\"'\"'s' --conn-type pydanticai" in quoted


@pytest.mark.parametrize(
    ("conn_id", "shown"),
    [
        ("llm\n'; DROP TABLE connection; --", repr("llm\n'; DROP TABLE connection; --")),
        ("x" * 10_000, repr("x" * 100) + "..."),
    ],
)
def test_an_id_no_connection_can_have_is_named_escaped_and_short(airflow_db, conn_id, shown):
    assert _error(conn_id) == (
        f"LLM connection {shown} is not defined, and no connection can have that id: name one of at most "
        "250 printable characters (letters, digits and _) as the agent's llm_conn_id in the roster "
        "(agents.yaml), then create it."
    )


@pytest.mark.parametrize("conn_id", ["", "   "])
def test_an_empty_connection_id_is_an_error(conn_id):
    assert _error(conn_id) == (
        "An agent's llm_conn_id is empty: name an Airflow connection of type pydanticai in the roster "
        "(agents.yaml), or leave llm_conn_id out for the default, baton_llm."
    )


def test_many_steps_at_once_each_get_the_same_error(airflow_db):
    """Sixteen hooks resolving a missing connection at once (a fan-out's items): each fails the same way,
    none answers offline."""
    start = threading.Barrier(16)

    def resolve() -> object:
        start.wait(timeout=60)
        try:
            return BatonAIHook(llm_conn_id="baton_test_never_defined").get_conn()
        except AgentError as error:
            return str(error)

    outcomes = run_threads([resolve] * 16, start=start)  # another error in a thread fails the test here
    expected = MISSING.replace("'baton_llm'", "'baton_test_never_defined'").replace(
        "AIRFLOW_CONN_BATON_LLM", "AIRFLOW_CONN_BATON_TEST_NEVER_DEFINED"
    )
    expected = expected.replace("add baton_llm", "add baton_test_never_defined")
    assert outcomes == [expected] * 16
