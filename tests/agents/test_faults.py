"""Injected faults (``BATON_FAULTS``): seeded rates, off by default, and each kind really breaks a
pydantic-ai Agent run on the offline model the way a misbehaving provider would."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest
from pydantic import BaseModel, ConfigDict
from pydantic_ai import Agent, capture_run_messages
from pydantic_ai.exceptions import ModelHTTPError, UnexpectedModelBehavior

from baton import effects
from baton.agents.timeout import call_with_timeout
from baton.errors import AgentTimeout
from baton.hooks import offline
from baton.hooks.offline import offline_model
from devtools import faults
from devtools.faults import INVALID_FIELD, InjectedModelError

DRAWS = 2000


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str
    score: int


@pytest.fixture
def inject(monkeypatch):
    """Set ``BATON_FAULTS`` for this test (the parsed setting is cached per process: cleared around it)."""

    def set_faults(**settings):
        monkeypatch.setenv(faults.ENV, json.dumps(settings))
        faults.active.cache_clear()
        return faults.active()

    faults.active.cache_clear()
    yield set_faults
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.active.cache_clear()


def _step_scope(try_number: int = 1, run_id: str = "manual__r1", step: str = "extract", workflow: str = "w"):
    """The effect scope the operator runs an agent call in: the draws are keyed by it."""
    return effects.scope(object(), run_id=run_id, workflow=workflow, step=step, try_number=try_number)


def _agent(output_retries: int = 2) -> Agent:
    return Agent(offline_model(), output_type=Verdict, retries={"output": output_retries})


# --- the draws -------------------------------------------------------------------------------------


def test_each_rate_holds_within_tolerance_over_2000_draws(inject):
    chosen = inject(seed=7, error=0.10, timeout=0.02, invalid=0.05)
    for kind, rate in (("error", 0.10), ("timeout", 0.02), ("invalid", 0.05)):
        hits = sum(chosen.draw(kind, "run", "step", -1, "", t, i) for t in range(1, 41) for i in range(50))
        assert abs(hits / DRAWS - rate) < 4 * (rate * (1 - rate) / DRAWS) ** 0.5 + 0.002, (kind, hits)


def test_a_request_gets_at_most_one_fault_drawn_error_then_timeout_then_invalid(inject):
    chosen = inject(seed=7, error=0.10, timeout=0.02, invalid=0.05)
    kinds = Counter(chosen.model_fault(f"manual__{n}", "extract", -1, "", 1, 0) for n in range(DRAWS))
    expected = {"error": 0.10, "timeout": 0.90 * 0.02, "invalid": 0.90 * 0.98 * 0.05}
    for kind, rate in expected.items():
        assert abs(kinds[kind] / DRAWS - rate) < 4 * (rate * (1 - rate) / DRAWS) ** 0.5 + 0.002, kinds
    p = faults.request_parts("manual__r1", "extract", -1, "", 1, 0)
    assert faults.Faults(error=1, timeout=1, invalid=1).model_fault(*p) == "error"
    assert faults.Faults(timeout=1, invalid=1).model_fault(*p) == "timeout"


def test_draws_repeat_with_the_seed_and_differ_between_tries_and_re_asks(inject):
    chosen = inject(seed=7, error=0.5)
    draws = [chosen.draw("error", "r", "s", -1, "", t, i) for t in range(1, 21) for i in range(5)]
    assert draws == [chosen.draw("error", "r", "s", -1, "", t, i) for t in range(1, 21) for i in range(5)]
    by_try = {tuple(draws[t * 5 : t * 5 + 5]) for t in range(20)}
    assert len(by_try) > 5, "a retry draws anew"
    assert len({tuple(draws[i::5]) for i in range(5)}) > 1, "a re-ask draws anew"
    # Pinned: the benchmark recomputes the draws in another process (no per-process salt may creep in).
    pinned = [faults.Faults(seed=7, error=0.5).draw("error", "r", "s", -1, "", 1, i) for i in range(8)]
    assert pinned == [True, False, True, True, True, True, True, False]
    other = inject(seed=8, error=0.5)
    assert draws != [other.draw("error", "r", "s", -1, "", t, i) for t in range(1, 21) for i in range(5)]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="'error' must be a rate"):
        faults.Faults(error=1.5)
    with pytest.raises(ValueError, match="fail_after"):
        faults.Faults(fail_after={"post": "often"})
    with pytest.raises(TypeError):
        faults.Faults(**{"eror": 0.1})  # a misspelt key is refused, not ignored


# --- off by default ----------------------------------------------------------------------------------


def test_nothing_is_injected_without_the_environment_variable(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.active.cache_clear()
    try:
        assert faults.active() is None
        assert faults.model_fault in offline.REQUEST_HOOKS  # imported, so hooked: but idle
        assert asyncio.run(faults.model_fault([], None)) is None
        with _step_scope(1, step="post"):
            faults.after_call()  # no fail_after without the variable
        agent = _agent()
        for t in range(1, 31):
            with _step_scope(t):
                result = agent.run_sync(f"Assess order {t}")
            assert result.usage.requests == 1
    finally:
        faults.active.cache_clear()


# --- each kind breaks a real Agent run -----------------------------------------------------------------


def test_an_error_fails_the_run_like_a_provider_error(inject):
    inject(seed=1, error=1.0)
    with _step_scope(), pytest.raises(ModelHTTPError) as raised:
        _agent().run_sync("Assess order 1")
    assert isinstance(raised.value, InjectedModelError) and raised.value.status_code == 503
    assert "manual__r1/extract/-1//1/0" in str(raised.value.body)


@pytest.fixture
def sleeps(monkeypatch):
    """The offline model's and the faults' waits, recorded instead of slept (``asyncio.sleep`` in both
    modules): what a test reads is the seconds each asked for, not the wall clock of a loaded machine."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    for module in (offline, faults):
        monkeypatch.setattr(module, "asyncio", SimpleNamespace(sleep=sleep))
    return asked


def test_a_timeout_hangs_hang_s_and_the_agent_timeout_cuts_it(inject, monkeypatch):
    """The fault hangs the request for hang_s: without agent_timeout the answer comes after it (the hang
    asked for 0.6 s); with one, AgentTimeout is raised while the request still hangs (a hang that ends only
    when the test lets it), and the abandoned call ends once let go."""
    inject(seed=1, timeout=1.0, hang_s=0.6)
    hangs, hanging, release = [], threading.Event(), threading.Event()

    async def hang(seconds: float) -> None:
        hangs.append(seconds)
        hanging.set()
        await asyncio.to_thread(release.wait, 60)

    monkeypatch.setattr(faults, "asyncio", SimpleNamespace(sleep=hang))
    agent = _agent()
    release.set()
    with _step_scope():
        result = agent.run_sync("Assess order 1")  # no agent_timeout: it answers after the hang
    assert hangs == [0.6] and result.output.summary
    release.clear()
    hanging.clear()
    returned = threading.Event()

    def call() -> None:
        agent.run_sync("Assess order 1")
        returned.set()

    with _step_scope(2), pytest.raises(AgentTimeout):
        call_with_timeout(call, 0.2, "agent x on step 'extract'")
    assert hanging.wait(60) and not returned.is_set()  # the request hangs: it was not waited for
    release.set()
    assert returned.wait(60) and hangs == [0.6, 0.6]


def test_an_invalid_answer_is_asked_again_up_to_output_retries(inject):
    inject(seed=1, invalid=1.0)
    agent = _agent(output_retries=2)
    with _step_scope(), pytest.raises(UnexpectedModelBehavior, match="output retries"):
        agent.run_sync("Assess order 1")
    with _step_scope(), pytest.raises(UnexpectedModelBehavior), capture_run_messages() as messages:
        agent.run_sync("Assess order 1")
    answers = [m for m in messages if m.kind == "response"]
    assert len(answers) == 3, "the first answer and two re-asks"
    args = answers[0].parts[0].args_as_dict()
    assert INVALID_FIELD in args and "summary" not in args  # a field missing, one too many


def test_an_invalid_answer_then_a_valid_one_gives_a_valid_output(inject):
    chosen = inject(seed=3, invalid=0.5)
    agent = _agent(output_retries=5)
    requests = []
    for t in range(1, 41):
        with _step_scope(t):
            result = agent.run_sync("Assess order 1")
        requests.append(result.usage.requests)
        expected = 1
        while (
            chosen.model_fault(*faults.request_parts("manual__r1", "extract", -1, "", t, expected - 1))
            == "invalid"
        ):
            expected += 1
        assert result.usage.requests == expected, "the benchmark can recompute the re-asks"
        assert isinstance(result.output, Verdict)
    assert min(requests) == 1 and max(requests) > 1


def test_a_text_output_is_invalidated_too(inject):
    inject(seed=1, invalid=1.0)
    with _step_scope(), pytest.raises(UnexpectedModelBehavior):
        Agent(offline_model()).run_sync("Say something")


def test_unscoped_requests_still_draw_anew_each_call(inject):
    inject(seed=1, error=0.5)
    agent = _agent()
    outcomes = set()
    for _ in range(30):  # no step scope (a unit test, a script): the prompt and a call counter
        try:
            agent.run_sync("Assess order 1")
            outcomes.add("ok")
        except InjectedModelError:
            outcomes.add("error")
    assert outcomes == {"ok", "error"}


# --- after the call ------------------------------------------------------------------------------------


def test_fail_after_by_tries_or_by_rate(inject):
    inject(seed=5, fail_after={"ship": [1], "post": 0.3})
    with _step_scope(1, step="ship"), pytest.raises(faults.InjectedFault, match="after its call"):
        faults.after_call()
    with _step_scope(2, step="ship"):
        faults.after_call()
    with _step_scope(1, step="extract"):
        faults.after_call()  # not named: never
    faults.after_call()  # outside a step: never
    failed = 0
    for n in range(DRAWS):
        try:
            with _step_scope(1 + n % 4, run_id=f"manual__{n}", step="post"):
                faults.after_call()
        except faults.InjectedFault:
            failed += 1
    assert abs(failed / DRAWS - 0.3) < 0.05
    # The benchmark recomputes the draws in another process: they are pinned, not just repeatable here.
    chosen = faults.active()
    assert [chosen.fails_after("post", f"manual__{n}", 2) for n in range(8)] == [
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
    ]


# --- workflows: a campaign beside other work ---------------------------------------------------------


def test_with_workflows_only_their_steps_get_faults_and_every_other_call_is_left_alone(inject):
    inject(seed=1, error=1.0, fail_after={"post": [1]}, workflows=["fault_campaign"])
    with _step_scope(workflow="fault_campaign"), pytest.raises(InjectedModelError):
        _agent().run_sync("Assess order 1")
    with _step_scope(step="post", workflow="fault_campaign"), pytest.raises(faults.InjectedFault):
        faults.after_call()
    # another workflow's step with the same step id, and a call outside any step: no fault at all
    with _step_scope(workflow="lead_qualification"):
        assert _agent().run_sync("Assess order 1").output.summary
    with _step_scope(step="post", workflow="lead_qualification"):
        faults.after_call()
    assert _agent().run_sync("Assess order 1").usage.requests == 1
    faults.after_call()


@pytest.mark.parametrize(
    "workflows",
    ["fault_campaign", [], [""], [7], ["w"] * 101, ["x" * 251], {"fault_campaign": 1}, [["nested"]]],
    ids=["a string", "empty", "an empty id", "a number", "101 ids", "a huge id", "an object", "nested"],
)
def test_a_bad_workflows_setting_is_refused_naming_it(workflows):
    with pytest.raises(
        ValueError, match=r"BATON_FAULTS: 'workflows' must be a list of 1 to 100 workflow ids"
    ):
        faults.Faults(workflows=workflows)


# --- windows: one connection's faults for a while ----------------------------------------------------


def _window(kind: str, conn: str = "writer_llm", start: float = 0.0, end: float = 4e9, **extra) -> dict:
    return {"kind": kind, "conn": conn, "start": start, "end": end, **extra}


def test_an_error_window_fails_its_connections_share_of_requests_and_no_other_connections(inject):
    inject(seed=3, windows=[_window("error", rate=0.3)])
    writer, other = offline_model(0.0, "writer_llm"), offline_model(0.0, "other_llm")
    failed, bodies = Counter(), []
    for conn, model in (("writer_llm", writer), ("other_llm", other)):
        agent = Agent(model, output_type=Verdict, retries={"output": 0})
        for t in range(300):
            with _step_scope(1, run_id=f"run_{t}"):
                try:
                    agent.run_sync(f"Assess order {t}")
                except InjectedModelError as error:
                    failed[conn] += 1
                    bodies.append(str(error.body))
    assert 0.22 * 300 <= failed["writer_llm"] <= 0.38 * 300, failed
    assert failed["other_llm"] == 0
    assert all("injected model error (window on writer_llm, request run_" in body for body in bodies)


def test_a_window_is_closed_before_its_start_and_after_its_end(inject):
    now = time.time()
    inject(
        seed=3, windows=[_window("error", start=now + 3600, end=now + 7200), _window("error", end=now - 1)]
    )
    agent = Agent(offline_model(0.0, "writer_llm"), output_type=Verdict)
    with _step_scope():
        assert agent.run_sync("Assess order 1").output.summary


def test_with_a_clock_the_windows_count_from_the_time_in_its_file_and_are_closed_until_it_exists(
    inject, tmp_path
):
    clock = tmp_path / "clock"
    inject(seed=3, clock=str(clock), windows=[_window("error", start=0.0, end=600.0)])
    agent = Agent(offline_model(0.0, "writer_llm"), output_type=Verdict, retries={"output": 0})

    def failures(count: int = 40) -> int:
        failed = 0
        for t in range(count):
            with _step_scope(run_id=f"clock_{t}"):
                try:
                    agent.run_sync(f"Assess order {t}")
                except InjectedModelError:
                    failed += 1
        return failed

    assert failures() == 0  # no file yet: the schedule has not started
    clock.write_text("not a time")
    assert failures() == 0  # a file that does not hold a time is no start either
    clock.write_text(str(time.time() - 3600))
    assert failures() == 0  # started an hour ago: the 10-minute window is over
    faults._CLOCKS.clear()
    clock.write_text(str(time.time()))
    assert failures() == 40  # started now: inside the window, every request fails (rate 1)


def test_a_clock_that_is_not_a_path_is_refused():
    with pytest.raises(ValueError, match="'clock' must be the path of a file, not 7"):
        faults.Faults(clock=7)


def test_a_slow_window_multiplies_the_connections_delay(inject, sleeps):
    inject(seed=3, windows=[_window("slow", factor=3)])
    agent = Agent(offline_model(0.2, "writer_llm"), output_type=Verdict)
    with _step_scope():
        agent.run_sync("Assess order 1")
    assert sleeps == [0.2, 0.4]  # the connection's 0.2 s, then (3 - 1) x 0.2 s more
    quick = Agent(offline_model(0.2, "other_llm"), output_type=Verdict)
    with _step_scope():
        quick.run_sync("Assess order 1")
    assert sleeps == [0.2, 0.4, 0.2]  # another connection: its own delay only


def test_a_cost_window_reports_factor_times_the_tokens_of_the_same_answer(inject):
    inject(seed=3, windows=[_window("cost", factor=4)])
    with _step_scope():
        spiked = Agent(offline_model(0.0, "writer_llm"), output_type=Verdict).run_sync("Assess order 7")
        plain = Agent(offline_model(0.0, "other_llm"), output_type=Verdict).run_sync("Assess order 7")
    assert spiked.output == plain.output  # the same answer...
    assert spiked.usage.input_tokens == 4 * plain.usage.input_tokens  # ...for four times the tokens
    assert spiked.usage.output_tokens == 4 * plain.usage.output_tokens > 0


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (_window("flood"), "kind must be one of error, slow, cost"),
        (_window("error", conn=""), "'conn' must name an LLM connection"),
        (_window("error", start=5.0, end=5.0), "'end' must come after 'start'"),
        (_window("error", rate=1.5), r"'rate' must be in \[0, 1\], not 1.5"),
        (_window("slow", factor=0.5), r"'factor' must be in \[1, 100\], not 0.5"),
        (_window("slow", factor=1e9), r"'factor' must be in \[1, 100\]"),
        (_window("cost", start=float("nan")), "'start' must be a finite number, not nan"),
        (_window("cost", factor=True), "'factor' must be a finite number, not True"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(window, message):
    with pytest.raises(ValueError, match=message):
        faults.Faults(windows=[window])


def test_too_many_windows_or_an_unknown_key_is_refused():
    with pytest.raises(ValueError, match="'windows' must be a list of at most 100 windows"):
        faults.Faults(windows=[_window("error")] * 101)
    with pytest.raises(TypeError, match="unexpected keyword argument 'sart'"):
        faults.Faults(windows=[{"kind": "error", "conn": "c", "sart": 0, "end": 1}])
