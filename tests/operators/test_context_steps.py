"""Steps that write and read the shared context, in a real dag.test(): values, versions, events."""

from __future__ import annotations

import pytest

from baton.context import ContextStore
from baton.events import EventStore
from tests.conftest import run_dag_test


@pytest.fixture(scope="module")
def context_run(fixture_dagbag, airflow_db):
    run, results = run_dag_test(fixture_dagbag.dags["shared_context"])
    assert run.state == "success", results
    return run.run_id


def test_writes_land_as_versions_with_each_keys_strategy(context_run):
    context = ContextStore(EventStore.from_airflow()).snapshot(context_run)
    workspace = context["workspace"]
    assert {k: v for k, v in workspace.value.items() if k != "files"} == {"backend": 14, "frontend": 9}
    assert sorted(workspace.value["files"]) == ["api.py", "ui.tsx"], "a merge key accumulates every write"
    assert workspace.version == 2
    owner = context["owner"]
    assert (owner.version, owner.value) == (2, owner.writer), "last writer wins: the value is its writer's"
    assert context["notes"].value == "backend: 9 qualified\nintegrated 2 files\n"
    assert context["notes"].writer == "integrate"


def test_a_later_step_reads_the_context_in_its_instruction(context_run):
    events = list(EventStore.from_airflow().read(context_run))
    (call,) = [e for e in events if e.type == "model.called" and e.step == "integrate"]
    owner = ContextStore(EventStore.from_airflow()).get(context_run, "owner").value
    files = ", ".join(ContextStore(EventStore.from_airflow()).get(context_run, "workspace").value["files"])
    assert call.payload["prompt_chars"] == len(f"Integrate {files} owned by {owner}")


def test_every_write_is_an_event_committed_with_its_version(context_run):
    events = [e for e in EventStore.from_airflow().read(context_run) if e.type == "context.written"]
    written = sorted((e.payload["key"], e.payload["version"], e.step) for e in events)
    assert [(key, version) for key, version, _ in written] == [
        ("notes", 1),
        ("notes", 2),
        ("owner", 1),
        ("owner", 2),
        ("workspace", 1),
        ("workspace", 2),
    ]
    assert ("notes", 2, "integrate") in written
