"""An input naming nothing in the demo data fails the step for good, naming what there is."""

from __future__ import annotations

import pytest
from demo.skills.content import content_brief
from demo.skills.recruiting import recruiting_role
from demo.skills.supply import _warehouse

from baton.errors import FinalSkillError
from baton.registry import SkillRequest


def _request(**inputs) -> SkillRequest:
    return SkillRequest(workflow="w", step="s", instruction="", inputs=inputs)


@pytest.mark.parametrize(
    ("call", "inputs", "message"),
    [
        (
            content_brief,
            {"brief": "winter"},
            "unknown brief 'winter'; the demo briefs are autumn-teaser, flash-sale, spring-launch",
        ),
        (
            recruiting_role,
            {"role_id": "astronaut"},
            "unknown role 'astronaut'; the demo roles are backend-engineer, site-reliability-engineer",
        ),
        (
            _warehouse,
            {"warehouse": "north"},
            "unknown warehouse 'north'; the demo warehouses are central, coastal",
        ),
    ],
)
def test_an_unknown_demo_record_is_a_final_error_naming_the_known_ones(call, inputs, message):
    with pytest.raises(FinalSkillError) as caught:
        call(_request(**inputs))
    assert str(caught.value) == message
