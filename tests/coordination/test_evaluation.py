"""An evaluation case's state (baton.coordination.evaluation): set only around the case's run, one at a time,
its recorded outputs handed out as copies, and the error a step fails with instead of asking a person."""

from __future__ import annotations

import pytest

from baton.coordination import evaluation


def test_a_case_is_current_only_inside_and_one_at_a_time():
    assert evaluation.current() is None
    with evaluation.case("refund", {"load": {"tickets": [1]}}) as running:
        assert evaluation.current() is running and running.id == "refund"
        refused = pytest.raises(
            RuntimeError, match="evaluation case 'refund' is still running in this process"
        )
        with refused, evaluation.case("other", {}):
            pass
        assert evaluation.current() is running  # the refused one changed nothing
    assert evaluation.current() is None
    assert evaluation.recorded_output("load") is None  # a production run: nothing recorded


def test_a_recorded_output_is_a_copy_and_only_for_the_steps_recorded():
    with evaluation.case("refund", {"load": {"tickets": [1]}}):
        given = evaluation.recorded_output("load")
        given["tickets"].append(2)  # a step that changes its output changes no later run's
        assert evaluation.recorded_output("load") == {"tickets": [1]}
        assert evaluation.recorded_output("triage") is None


def test_a_question_in_a_case_is_the_error_naming_what_to_record():
    with evaluation.case("refund", {}):
        error = evaluation.refuse_question("approve", "approval", "Approve the refund of 40 EUR?")
    assert isinstance(error, evaluation.NoPersonInEvaluation)
    assert str(error) == (
        "step 'approve' asked a person (approval: Approve the refund of 40 EUR?) in evaluation case 'refund', "
        "where nobody answers (fix: record the step's output in the case, `recorded: {approve: ...}`, or expect "
        "the case to fail there)"
    )


def test_a_cases_trigger_is_what_started_its_run_in_the_shape_an_asset_event_or_a_sensor_gives():
    from baton.coordination.scope import trigger_scope

    message = {"qualified_leads": 3, "top_leads": [{"id": "L-1", "company": "Acme"}]}
    assert trigger_scope("asset", {}) == {"events": [], "payload": {}}  # a run no asset event started
    with evaluation.case("week_1", {}, trigger=message):
        asset = trigger_scope("asset", {})
        sensor = trigger_scope("sensor", {})
        assert trigger_scope(None, {}) == {}  # a workflow without a trigger has none, whatever the case says
    assert asset["payload"] == message and asset["payload"] is not message
    assert [(e["source_dag_id"], e["source_run_id"]) for e in asset["events"]] == [("evaluation", "week_1")]
    assert (
        sensor["qualified_leads"] == 3 and sensor["payload"] == message
    )  # a sensor's finding is also at the top
    with evaluation.case("no_trigger", {}):
        assert trigger_scope("asset", {}) == {"events": [], "payload": {}}
