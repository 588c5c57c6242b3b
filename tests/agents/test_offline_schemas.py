"""The offline model answers any schema a template or a registered model can declare (issue 17): each
answer is validated here by jsonschema and by the pydantic model itself; the same prompt gives the same
answer; a schema no value can meet gets a clear error, at validate time when the template declares it."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field
from pydantic_ai import Agent

from baton.hooks.offline import Faker, OfflineError, offline_model


class Line(BaseModel):
    sku: str = Field(pattern=r"^[A-Z]{3}-\d{2}$")
    qty: int = Field(ge=1, le=9)
    price: float = Field(gt=0, lt=10, multiple_of=0.25)
    due: date


class Order(BaseModel):
    id: str = Field(pattern=r"^ord_[a-z0-9]{6}$")
    email: str = Field(json_schema_extra={"format": "email"})
    status: Literal["open", "shipped"]
    lines: list[Line] = Field(min_length=2, max_length=4)
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    code: str = Field(min_length=12, max_length=12)


class Tree(BaseModel):
    name: str
    children: list[Tree] = Field(default_factory=list)


def _answer(model: type[BaseModel], prompt: str) -> BaseModel:
    return Agent(offline_model(), output_type=model, retries={"output": 0}).run_sync(prompt).output


@pytest.mark.parametrize("prompt", ["order 1", "order 2 for ACME", "x" * 5000])
def test_an_answer_meets_every_constraint_of_a_registered_model(prompt):
    order = _answer(Order, prompt)
    schema = Order.model_json_schema()
    jsonschema.validate(order.model_dump(mode="json"), schema)
    assert re.fullmatch(r"ord_[a-z0-9]{6}", order.id) and 2 <= len(order.lines) <= 4
    assert order.tags == [] and order.note is None  # optional: their defaults


def test_the_same_prompt_gives_the_same_answer_and_another_prompt_another():
    assert _answer(Order, "order 7") == _answer(Order, "order 7")
    assert _answer(Order, "order 7") != _answer(Order, "order 8")


def test_a_recursive_model_ends():
    tree = _answer(Tree, "a tree")
    assert tree.name and tree.children == []


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "minItems": 3, "maxItems": 3, "uniqueItems": True, "items": {"type": "integer"}},
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.01},
        {"type": "integer", "minimum": -50, "maximum": -40, "multipleOf": 7},
        {"type": "string", "format": "uuid"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": "^(?:[a-f0-9]{2}:){5}[a-f0-9]{2}$"},
        {
            "type": "object",
            "properties": {"a": {"allOf": [{"type": "string", "minLength": 3}]}},
            "required": ["a"],
        },
        {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "integer", "minimum": 10}]},
        {"type": "array", "minItems": 2000, "items": {"type": "boolean"}},
    ],
)
def test_each_constraint_is_met(schema):
    value = Faker("p", schema).value(schema, "output")
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": "^a{3}$", "minLength": 5}, "found no string of 5 to 10000 characters"),
        (
            {"type": "integer", "minimum": 5, "maximum": 6, "multipleOf": 10},
            "no integer from 5 to 6 is a multiple of 10",
        ),
        (
            {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1},
            "no number lies between 1.0 and 1.0",
        ),
        ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems 3 is above maxItems 1"),
        ({"type": "string", "pattern": "(unclosed"}, "is not a regular expression"),
        (
            {"type": "string", "minLength": 10**9},
            "minLength 1,000,000,000 is more than the offline model writes",
        ),
        ({"type": "array", "minItems": 10**9}, "minItems 1,000,000,000 is more than the offline model makes"),
    ],
)
def test_a_schema_no_value_meets_gets_a_clear_error(schema, message):
    with pytest.raises(OfflineError, match=re.escape(message)):
        Faker("p", schema).value(schema, "output.field")


def test_a_schema_nested_past_the_limit_is_refused():
    schema: dict = {"type": "string"}
    for _ in range(200):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    with pytest.raises(OfflineError, match="nests deeper than the offline model follows"):
        Faker("p", schema).value(schema, "output")
