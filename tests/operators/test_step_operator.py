"""Baton's operator is StepOperator: a compiled DAG's tasks are StepOperators (BrowserOperators for browser
steps), and AgentOperator, its name until 0.2 (common-ai's operator has it too), is still importable from
both its old places with a DeprecationWarning that names what to import instead."""

from __future__ import annotations

import importlib
import warnings

import pytest

from baton.compile.build import build_dag
from baton.operators import FanOutBatches, StepOperator
from baton.operators.browser import BrowserOperator
from baton.plan import plan_workflow
from baton.spec import load_roster, load_workflow

RENAMED = (
    "the same operator, renamed: AgentOperator is also the name of common-ai's operator that runs one "
    "pydantic-ai agent"
)


def test_a_compiled_dags_steps_are_step_operators(dags_folder):
    roster = load_roster(dags_folder / "agents.yaml")
    dag = build_dag(
        plan_workflow(load_workflow(dags_folder / "workflows" / "revenue_milestone.yaml", roster), roster)
    )
    steps = [task for task in dag.tasks if not task.task_id.startswith("_")]
    assert steps and all(type(task) is StepOperator for task in steps), [type(t).__name__ for t in steps]
    assert {task.task_type for task in steps} == {"StepOperator"}  # the name Airflow's UI shows
    assert issubclass(BrowserOperator, StepOperator)


@pytest.mark.parametrize(
    ("module", "name", "is_now", "message"),
    [
        (
            "baton.operators",
            "AgentOperator",
            StepOperator,
            f"baton.operators.AgentOperator is deprecated and goes in Baton 0.3: import "
            f"baton.operators.StepOperator ({RENAMED})",
        ),
        (
            "baton.operators.agent",
            "AgentOperator",
            StepOperator,
            f"baton.operators.agent.AgentOperator is deprecated and goes in Baton 0.3: import "
            f"baton.operators.StepOperator ({RENAMED})",
        ),
        (
            "baton.operators.agent",
            "FanOutBatches",
            FanOutBatches,
            "baton.operators.agent.FanOutBatches is deprecated and goes in Baton 0.3: import "
            "baton.operators.FanOutBatches (its module, baton.operators.agent, is now baton.operators.step)",
        ),
    ],
)
def test_the_old_names_still_import_with_a_deprecation_warning(module, name, is_now, message):
    with pytest.warns(DeprecationWarning, match="is deprecated and goes in Baton 0.3") as caught:
        found = getattr(importlib.import_module(module), name)
    assert found is is_now
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [message]
    assert caught[0].filename == __file__  # the warning points at the line that used the old name


def test_the_new_names_and_an_unknown_one_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from baton.operators import StepOperator as again
        from baton.operators.step import StepOperator as there

        assert again is there is StepOperator
        with pytest.raises(AttributeError, match="module 'baton.operators' has no attribute 'AgentOperatr'"):
            importlib.import_module("baton.operators").AgentOperatr  # noqa: B018
