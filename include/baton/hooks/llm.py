"""BatonAIHook: common-ai's PydanticAIHook, answering with the offline model where configured so."""

from __future__ import annotations

import os

from airflow.providers.common.ai.hooks.pydantic_ai import PydanticAIHook
from airflow.sdk.exceptions import AirflowNotFoundException
from pydantic_ai.models import Model

from baton.errors import AgentError
from baton.hooks.offline import OFFLINE_MODEL_NAME, offline_model

ALLOW_OFFLINE_ENV = "BATON_OFFLINE_FALLBACK"


def offline_fallback_allowed() -> bool:
    """Whether a missing LLM connection means the offline model (the embedded default) or an error."""
    return os.environ.get(ALLOW_OFFLINE_ENV, "true").strip().lower() not in ("0", "false", "no", "off")


def _fixed_usage(value: object, conn_id: str) -> tuple[int, int] | None:
    """``{"input_tokens": N, "output_tokens": M}`` of a connection's extra: what each offline answer reports."""
    if value is None:
        return None
    counts = value if isinstance(value, dict) else {}
    tokens = (counts.get("input_tokens"), counts.get("output_tokens"))
    if set(counts) != {"input_tokens", "output_tokens"} or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10**9 for n in tokens
    ):
        raise AgentError(
            f'LLM connection \'{conn_id}\': offline_usage must be {{"input_tokens": N, "output_tokens": M}} '
            f"with whole numbers from 0 to 1,000,000,000, not {str(value)[:100]}"
        )
    return tokens[0], tokens[1]


class BatonAIHook(PydanticAIHook):
    """A ``PydanticAIHook`` whose model is Baton's offline model when the connection is missing
    (and ``BATON_OFFLINE_FALLBACK`` is not false) or sets ``{"model": "baton:offline"}`` (with
    ``"offline_delay_s"`` in the extra, each answer takes that long; with ``"offline_usage":
    {"input_tokens": N, "output_tokens": M}``, each answer reports those tokens).

    Any other connection is resolved by common-ai unchanged: OpenAI, Anthropic, an
    OpenAI-compatible server (host = base URL), fallback chains.
    """

    def get_conn(self) -> Model:
        if self._model is None and self._is_offline():
            self._model = offline_model(self._offline_delay, self.llm_conn_id, self._offline_usage)
        return super().get_conn() if self._model is None else self._model

    _offline_delay: float = 0.0
    _offline_usage: tuple[int, int] | None = None

    def _is_offline(self) -> bool:
        if self.model_id == OFFLINE_MODEL_NAME:
            return True
        try:
            _, extra = self._get_conn_and_extra()
            self._offline_delay = float(extra.get("offline_delay_s") or 0)
            self._offline_usage = _fixed_usage(extra.get("offline_usage"), self.llm_conn_id)
        except AirflowNotFoundException:
            if not offline_fallback_allowed():
                raise AgentError(
                    f"LLM connection '{self.llm_conn_id}' is not defined. Create it (type pydanticai, "
                    f'extra {{"model": "openai:gpt-5-mini"}}) or set {ALLOW_OFFLINE_ENV}=true to use '
                    "the offline model."
                ) from None
            self.log.warning(
                "LLM connection '%s' is not defined: answering with the offline model %s.",
                self.llm_conn_id,
                OFFLINE_MODEL_NAME,
            )
            return True
        return extra.get("model") == OFFLINE_MODEL_NAME
