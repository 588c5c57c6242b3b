"""What a model call used, read from the run's captured messages (no XCom round trip)."""

from __future__ import annotations

from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.usage import RequestUsage

from baton.agents.model import used


def _answer(model: str | None, tokens_in: int, tokens_out: int, **extra) -> ModelResponse:
    return ModelResponse(
        [TextPart("...")],
        usage=RequestUsage(input_tokens=tokens_in, output_tokens=tokens_out),
        model_name=model,
        **extra,
    )


def test_a_run_that_never_reached_a_model_used_nothing():
    assert used([]) is None
    assert used([ModelRequest([UserPromptPart("hello")])]) is None


def test_every_answer_counts_a_cut_off_one_too_and_the_last_names_the_model():
    messages = [
        ModelRequest([UserPromptPart("hello")]),
        _answer("gpt-a", 40, 7),
        ModelRequest([UserPromptPart("that broke the schema; again")]),
        _answer("gpt-b", 55, 900, state="interrupted"),  # stopped at a usage limit: its tokens were spent
    ]
    assert used(messages) == ({"requests": 2, "input_tokens": 95, "output_tokens": 907}, "gpt-b")


def test_an_answer_without_a_model_name_or_token_counts_is_still_a_request():
    assert used([ModelResponse([TextPart("ok")])]) == (
        {"requests": 1, "input_tokens": 0, "output_tokens": 0},
        None,
    )
