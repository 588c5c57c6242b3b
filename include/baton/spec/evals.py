"""What ``dags/evals/<workflow>.yaml`` declares: a workflow's evaluation dataset, cases of its inputs each
with what its steps' outputs must be. ``baton validate`` checks each dataset against its workflow's template
(its steps, their outputs' fields and types, the inputs), so that a check that could never pass, or a case
that could never run, is reported with the file, the key and the fix before anything runs.

.. code-block:: yaml

    dataset: support_triage            # the workflow it evaluates; the file is evals/support_triage.yaml
    description: Tickets whose triage we know.
    tolerance: 0.05                    # the share of checks a new version may pass fewer than the stable one
    judge: support_judge               # the roster's LLM agent that judges the rubrics
    cases:
      - id: refund_request
        inputs: {ticket_id: 216}
        recorded:                      # a step that reads a business system: its recorded output, not run
          load_ticket: {subject: Refund, body: I was charged twice}
        expect:                        # a step's id -> its output's fields -> what each must be
          triage:
            category: {equals: billing}
            priority: {range: [1, 3]}
            reply: {contains: refund, matches: "^Dear", max_length: 2000}
            summary: {rubric: 'Names the customer and says "refund"'}
            tags: {evaluator: known_tags, args: {allowed: [billing, refund]}}

``evaluator`` names a Python check registered with ``@evaluator`` (:mod:`baton.registry`); ``rubric`` says what
a judge (the ``judge`` agent, a model) must find true of the field. A check on a ``for_each`` step applies to
every item's output. ``matches`` is a regular expression searched in the text, in the syntax of the ``regex``
module (chosen for the time limit it can put on a search).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from baton.errors import Issue, TemplateError
from baton.limits import limits
from baton.spec.common import IDENTIFIER, Strict, first_repeat
from baton.spec.expect import CHECKS, Check, rubric_without
from baton.spec.loading import Source, template_files

DIR = "evals"
MAX_CASES = 10_000


class Case(Strict):
    """One run of the workflow: its inputs, the steps whose outputs are recorded, and what is expected."""

    id: str = Field(pattern=IDENTIFIER, max_length=100, description="names the case in reports")
    description: str = Field(default="", max_length=2_000)
    inputs: dict[str, Any] = Field(default_factory=dict, description="the run's inputs, as REST's conf")
    recorded: dict[str, Any] = Field(
        default_factory=dict, description="step id -> the output it gives in this case (the step is not run)"
    )
    trigger: dict[str, Any] | None = Field(
        default=None,
        description="what started the run, for a workflow with a trigger: the asset event's extra, the sensor's "
        "finding or the queue's message (the steps' trigger.payload)",
    )
    expect: dict[str, dict[str, Check]] = Field(
        min_length=1, description="step id -> output field -> what it must be"
    )


class Dataset(Strict):
    """An evaluation dataset: cases of one workflow."""

    TOP_FIX: ClassVar[str] = "start the file with 'dataset: <workflow>' and 'cases:'"

    dataset: str = Field(pattern=IDENTIFIER, max_length=200, description="the workflow the cases run")
    description: str = Field(default="", max_length=2_000)
    tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="the share of checks a version may pass fewer than the stable one",
    )
    judge: str | None = Field(
        default=None,
        pattern=IDENTIFIER,
        max_length=200,
        description="the roster's LLM agent that judges the cases' rubrics",
    )
    cases: list[Case] = Field(min_length=1, max_length=MAX_CASES)

    @field_validator("cases")
    @classmethod
    def _unique(cls, cases: list[Case]) -> list[Case]:
        if (name := first_repeat(case.id for case in cases)) is not None:
            raise ValueError(f"two cases are named '{name}': give each case its own id")
        return cases

    @model_validator(mode="after")
    def _judged(self) -> Dataset:
        if self.judge is not None:
            return self
        for case in self.cases:
            for step, fields in case.expect.items():
                if (field := rubric_without(fields)) is not None:
                    raise ValueError(
                        f"case '{case.id}' checks {step}.{field} with a rubric and nothing judges it: add "
                        "'judge: <an LLM agent of the roster>' to the dataset"
                    )
        return self

    def rubrics(self) -> int:
        """How many rubric checks the cases hold (each a judge's call per case run)."""
        return sum(
            check.rubric is not None
            for case in self.cases
            for fields in case.expect.values()
            for check in fields.values()
        )


def version_digest(workflow: Any) -> str:
    """What names one version of a template for its evaluation: the validated template's JSON, hashed (its
    comments, spacing and deprecated spellings do not count; any change of what it does does). A rollout's
    gate compares the digest an evaluation recorded with the new version's as the dag processor built it."""
    return hashlib.sha256(workflow.model_dump_json().encode()).hexdigest()[:16]


def dataset_files(folder: Path) -> list[Path]:
    """The datasets of a dags folder (``evals/*.yaml``; ``.yml`` and any case too, as templates), by name."""
    evals = folder / DIR
    return template_files(evals) if evals.is_dir() else []


def load_dataset(path: Path, root: Path | None = None) -> tuple[Dataset, Source]:
    """The dataset of ``path`` and its source (for locating later issues); ``TemplateError`` naming the file,
    the key, the line and the fix."""
    bound = limits()
    if path.is_file() and (size := path.stat().st_size) > bound.max_template_bytes:
        name = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        message = f"the dataset is {size:,} bytes, over the limit of {bound.max_template_bytes:,} bytes for one file"
        fix = (
            f"keep a dataset's cases small (at most {MAX_CASES:,}; a recorded output holds what the step needs, not "
            f"a whole export), {bound.fix('max_template_bytes')}"
        )
        raise TemplateError([Issue(name, "", message, fix)])
    source = Source(path, root)
    data = source.parse()
    return source.validate(Dataset, data), source


__all__ = [
    "CHECKS",
    "DIR",
    "MAX_CASES",
    "Case",
    "Check",
    "Dataset",
    "dataset_files",
    "load_dataset",
    "version_digest",
]
