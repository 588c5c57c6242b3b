"""``baton replay --rerun`` of a step that posted: the recorded answer is reused, nothing is posted."""

from __future__ import annotations

import shutil
import textwrap

import pytest
import yaml
from demo.http_service import PartnerService

from baton import effects, templating
from baton.agents.skills import run_skill
from baton.events.event import Event, conf_digest
from baton.rerun import rerun

TEMPLATE = """
workflow: partner_orders
version: 1
owner: operations
category: operations
description: Tell the partner about the month's orders.
inputs:
  partner_url: {type: string}
  month: {type: string, default: "2026-10"}
steps:
  - id: notify_partner
    skill: http_post
    with:
      url: "{{ inputs.partner_url }}"
      json: {month: "{{ inputs.month }}", lines: "{{ [1, 2] }}"}
"""


@pytest.fixture
def partner():
    with PartnerService() as service:
        yield service


@pytest.fixture
def dags(tmp_path, dags_folder):
    folder = tmp_path / "dags"
    (folder / "workflows").mkdir(parents=True)
    shutil.copy(dags_folder / "agents.yaml", folder / "agents.yaml")
    (folder / "workflows" / "partner_orders.yaml").write_text(textwrap.dedent(TEMPLATE))
    return folder


def _event(kind, try_number=1, payload=None, step="notify_partner"):
    return Event(
        type=kind,
        run_id="run_1",
        workflow="partner_orders",
        template_version=1,
        step=step if not kind.startswith("run.") else None,
        try_number=try_number if not kind.startswith("run.") else 0,
        payload=payload or {},
    )


def _record_run(store, conf, *, post: bool):
    """What the operator records: try 1 posts and then fails (its worker lost after the post), try 2
    succeeds, reusing the post; with ``post=False`` the step succeeded without posting."""
    started = {"run_type": "manual", "conf_keys": sorted(conf), "conf_sha256": conf_digest(conf)}
    store.append([_event("run.started", payload=started)])
    scope = {"inputs": {"month": "2026-10"} | conf, "steps": {}, "run": {"id": "run_1"}}
    args = templating.arguments(yaml.safe_load(TEMPLATE)["steps"][0]["with"], scope)  # as the operator does
    output = {"status": 200, "body": None}
    if post:
        for try_number in (1, 2):
            with effects.scope(
                store, run_id="run_1", workflow="partner_orders", step="notify_partner", try_number=try_number
            ):
                output = run_skill(
                    "http_post",
                    workflow="partner_orders",
                    step_id="notify_partner",
                    output_spec=None,
                    instruction="",
                    scope=scope,
                    with_=args,
                )
    failed = {"error_class": "TaskLost", "error": "lost", "will_retry": True}
    store.append(
        [
            _event("step.failed", 1, failed),
            _event("output.recorded", 2, store.output_payload(output)),
            _event("step.succeeded", 2, {"duration_s": 0.1}),
        ]
    )


def test_a_rerun_reuses_the_post_the_run_made(store, partner, dags):
    conf = {"partner_url": partner.url("/orders")}
    _record_run(store, conf, post=True)
    assert partner.count() == 1, "the retry reused the first try's post"
    (verdict,) = rerun(store, "run_1", dags, conf=conf)
    assert (verdict.step, verdict.same, verdict.detail) == (
        "notify_partner",
        True,
        "skill ran again, effect reused (http.post)",
    )
    rerun(store, "run_1", dags, conf=conf)
    assert partner.count() == 1
    assert partner.posts()[0]["body"] == {"month": "2026-10", "lines": [1, 2]}
    reused = [e for e in store.read("run_1", types=["effect.reused"])]
    assert sorted(e.try_number for e in reused) == [0, 2], "once per try; a second rerun records nothing"


def test_a_rerun_does_not_do_an_effect_the_run_did_not_do(store, partner, dags):
    conf = {"partner_url": partner.url("/orders")}
    _record_run(store, conf, post=False)
    (verdict,) = rerun(store, "run_1", dags, conf=conf)
    assert not verdict.same
    assert "effect 'http.post' of step 'notify_partner' was not done by run 'run_1'" in verdict.detail
    assert partner.posts() == []


def test_a_rerun_whose_arguments_no_longer_render_diverges(store, partner, dags):
    conf = {"partner_url": partner.url("/orders")}
    _record_run(store, conf, post=True)
    template = dags / "workflows" / "partner_orders.yaml"
    template.write_text(template.read_text().replace("inputs.partner_url", "inputs.partner_url.host"))
    (verdict,) = rerun(store, "run_1", dags, conf=conf)
    assert not verdict.same
    assert verdict.detail.startswith("its 'with' arguments no longer render: ")
    assert partner.count() == 1
