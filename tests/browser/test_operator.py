"""A browser step's call (baton.agents.call.browse_step): the step's declared actions with its agent's
browser access (no Airflow run, no operator: the compiled step is all it reads)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from baton.agents.call import browse_step
from baton.errors import AgentError
from baton.plan import CompiledStep
from baton.spec.browser import Click, Extract, Fill, Goto, Screenshot
from baton.spec.roster import Agent
from baton.spec.step import AgentStep


@dataclass
class TaskInstance:
    dag_id: str = "market_watch"
    run_id: str = "manual__2026-11-21T07:15:07.195898+00:00"
    task_id: str = "scrape"
    map_index: int = 2
    try_number: int = 3


class StepEvents:
    """The two methods of StepRecorder that ``_call`` uses, keeping the events in a list; like the
    store, it refuses a second event with the same key (type and discriminator, within one try)."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, dict[str, Any]]] = []
        self.keys: set[tuple[str, str]] = set()

    def event(self, kind: str, payload: dict[str, Any], discriminator: str = "") -> tuple:
        return kind, payload, discriminator

    def record(self, *events: tuple[str, dict[str, Any], str]) -> None:
        for kind, payload, discriminator in events:
            assert (kind, discriminator) not in self.keys, (
                f"two {kind} events share the key {discriminator!r}"
            )
            self.keys.add((kind, discriminator))
            self.recorded.append((kind, payload))


def compiled(agent: Agent, actions: list) -> CompiledStep:
    spec = AgentStep(id="scrape", agent=agent.name, browser=actions)
    return CompiledStep(workflow="market_watch", template_version=1, spec=spec, agent=agent)


def call(agent: Agent, actions: list, scope: dict, ti: TaskInstance, events: StepEvents) -> dict:
    return browse_step(compiled(agent, actions), agent, scope, {"ti": ti}, events)


@pytest.mark.integration
def test_call_runs_the_actions_with_the_agents_access_and_the_tasks_artifact_folder(
    web, tmp_path, monkeypatch
):
    monkeypatch.setenv("BATON_ARTIFACTS", str(tmp_path))
    agent = Agent(name="scout", skill="noop", browser={"allow": [web.host], "action_timeout": "5s"})
    actions = [
        Goto(url="{{ inputs.base }}/market/competitors/{{ inputs.slug }}"),
        Extract(name="name", selector="#name"),
        Screenshot(name="page"),
    ]
    events = StepEvents()
    scope = {"inputs": {"base": web.url, "slug": "acme"}, "steps": {}, "context": {}, "run": {}}
    output = call(agent, actions, scope, TaskInstance(), events)
    folder = "market_watch/manual__2026-11-21T07_15_07.195898_00_00/scrape.2/try-3"
    assert output == {
        "name": "Acme Analytics",
        "url": f"{web.url}/market/competitors/acme",
        "screenshots": {"page": f"{folder}/page.png"},
        "downloads": {},
    }
    assert [kind for kind, _ in events.recorded] == [
        "browser.action", "browser.action", "artifact.saved", "browser.action"
    ]  # fmt: skip
    saved = events.recorded[2][1]
    data = (tmp_path / saved["path"]).read_bytes()
    assert saved["path"] == f"{folder}/page.png" and saved["sha256"] == hashlib.sha256(data).hexdigest()


def test_call_refuses_an_agent_without_browser_access():
    agent = Agent(name="scout", skill="noop")
    with pytest.raises(AgentError) as raised:
        call(agent, [Goto(url="http://127.0.0.1/")], {}, TaskInstance(), StepEvents())
    assert str(raised.value) == (
        "Step 'scrape' declares browser actions, but agent 'scout' has no browser access; give it "
        "`browser: {allow: [<hosts>]}` in the roster, or name an agent that has it"
    )


@pytest.mark.integration
def test_a_later_try_reuses_the_recorded_run_instead_of_submitting_again(web, tmp_path, monkeypatch):
    from baton import effects
    from baton.events.migrations import upgrade
    from baton.events.store import EventStore, engine_for

    monkeypatch.setenv("BATON_ARTIFACTS", str(tmp_path / "artifacts"))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(engine_for(url))
    store = EventStore(engine_for(url))
    web.reset()
    agent = Agent(name="onboarder", skill="noop", browser={"allow": [web.host]})
    signup = [
        Goto(url=f"{web.url}/support/users/new"),
        Fill(selector="#name", value="Grace Hopper"),
        Fill(selector="#email", value="grace@navy.example"),
        Click(selector="#submit"),
        Extract(name="user_id", selector="#confirmation"),
    ]
    outputs = []
    for try_number in (1, 2):
        ti = TaskInstance(task_id="scrape", map_index=-1, try_number=try_number)
        with effects.scope(
            store, run_id=ti.run_id, workflow="onboarding", step="scrape", try_number=try_number
        ) as scope:
            outputs.append(call(agent, signup, {}, ti, StepEvents()))
        outputs.append([e["reused"] for e in scope.effects])
    assert outputs[0]["user_id"] == "SUP-0001" and outputs[0] == outputs[2]
    assert outputs[1::2] == [[False], [True]]
    assert [s["id"] for s in web.submissions("support")] == ["SUP-0001"]
