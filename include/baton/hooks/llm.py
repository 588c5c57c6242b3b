"""BatonAIHook: common-ai's PydanticAIHook, answering with the offline model only where it is chosen.

The offline model (made-up, schema-valid answers) is chosen by name: a connection whose extra is
``{"model": "baton:offline"}`` (what ``make run``, the tests and the demo's docker-compose.yaml define as
``baton_llm``), or an agent whose ``model`` is ``baton:offline``. A connection that is not defined fails
the step with a message naming it and how to create it: a missing or misnamed connection in production
never answers with made-up data.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import warnings

from airflow.providers.common.ai.hooks.pydantic_ai import PydanticAIHook
from airflow.sdk.exceptions import AirflowNotFoundException
from pydantic_ai.models import Model

from baton.errors import AgentError
from baton.hooks.offline import OFFLINE_MODEL_NAME, offline_model

#: Deprecated in 0.2, removed in 0.3: a missing LLM connection answered with the offline model.
ALLOW_OFFLINE_ENV = "BATON_OFFLINE_FALLBACK"
#: The connection that chooses the offline model, in Airflow's JSON format (``AIRFLOW_CONN_<ID>``).
OFFLINE_CONNECTION = json.dumps({"conn_type": "pydanticai", "extra": {"model": OFFLINE_MODEL_NAME}})
EXAMPLE_MODEL = "openai:gpt-5-mini"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_DELAY_S = 86_400.0
MAX_CONN_ID = 250  # Airflow's longest connection id


def offline_fallback_allowed() -> bool:
    """Whether ``BATON_OFFLINE_FALLBACK`` is set to true (deprecated): a missing connection then still
    answers with the offline model, with a warning. Unset or anything else: a missing connection fails."""
    return os.environ.get(ALLOW_OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def shown(conn_id: str) -> str:
    """A connection id as a message shows it: quoted, and escaped and cut short when it is not plain text."""
    plain = conn_id.isprintable() and len(conn_id) <= 100
    return f"'{conn_id}'" if plain else repr(conn_id[:100]) + ("..." if len(conn_id) > 100 else "")


def missing_connection(conn_id: str) -> str:
    """What a step says when its agent's LLM connection ``conn_id`` is not defined: how to create it for
    a real model, and how to choose the offline model on purpose."""
    if not conn_id.isprintable() or len(conn_id) > MAX_CONN_ID:
        return (
            f"LLM connection {shown(conn_id)} is not defined, and no connection can have that id: name one of "
            f"at most {MAX_CONN_ID} printable characters (letters, digits and _) as the agent's llm_conn_id "
            "in the roster (agents.yaml), then create it."
        )
    real = json.dumps({"conn_type": "pydanticai", "password": "<API key>", "extra": {"model": EXAMPLE_MODEL}})
    add = (
        f"airflow connections add {shlex.quote(conn_id)} --conn-type pydanticai --conn-password '<API key>' "
        f"--conn-extra '{json.dumps({'model': EXAMPLE_MODEL})}'"
    )
    how = (
        f"AIRFLOW_CONN_{conn_id.upper()}='{real}' (or `{add}`)"
        if _ENV_NAME.fullmatch(conn_id)
        else f"`{add}` (an environment variable cannot carry this id)"
    )
    return (
        f"LLM connection {shown(conn_id)} is not defined, so its agents have no model. Create it for a real "
        f"model: {how}. To answer with Baton's offline model instead (made-up data, for demos and tests), "
        f'give the connection the extra {{"model": "{OFFLINE_MODEL_NAME}"}}.'
    )


def deprecated_fallback(conn_id: str) -> str:
    return (
        f"LLM connection {shown(conn_id)} is not defined: answering with the offline model {OFFLINE_MODEL_NAME} "
        f"because {ALLOW_OFFLINE_ENV} is true. {ALLOW_OFFLINE_ENV} is deprecated and goes in Baton 0.3: "
        f"choose the offline model with a connection whose extra is "
        f'{{"model": "{OFFLINE_MODEL_NAME}"}} (AIRFLOW_CONN_BATON_LLM=\'{OFFLINE_CONNECTION}\'), '
        "or create the connection for a real model."
    )


def _model_name(value: object, where: str) -> str | None:
    """The model a connection's extra (or an agent's ``model``) names; an error for one that is not a
    model name, and for a misspelt offline model (it would otherwise reach a provider as a real one)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise AgentError(
            f'{where} must be a model name such as "{EXAMPLE_MODEL}" or "{OFFLINE_MODEL_NAME}", '
            f"not {type(value).__name__} {str(value)[:100]}"
        )
    if not value.strip():
        raise AgentError(
            f'{where} is empty: set it to a model such as "{EXAMPLE_MODEL}", or "{OFFLINE_MODEL_NAME}" for '
            "the offline model"
        )
    if value != OFFLINE_MODEL_NAME and "baton" in value.lower():
        raise AgentError(
            f'{where} is {value[:100]!r}, which is not a model: write exactly "{OFFLINE_MODEL_NAME}" for the '
            "offline model (nothing around it), or a real model such as "
            f'"{EXAMPLE_MODEL}"'
        )
    return value


def _delay(value: object, conn_id: str) -> float:
    """``offline_delay_s`` of a connection's extra: seconds each offline answer takes."""
    if value is None:
        return 0.0
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= MAX_DELAY_S:
        raise AgentError(
            f"LLM connection {shown(conn_id)}: offline_delay_s must be a number of seconds from 0 to "
            f"{MAX_DELAY_S:,.0f}, not {str(value)[:100]}"
        )
    return float(value)


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
            f"LLM connection {shown(conn_id)}: offline_usage must be "
            '{"input_tokens": N, "output_tokens": M} '
            f"with whole numbers from 0 to 1,000,000,000, not {str(value)[:100]}"
        )
    return tokens[0], tokens[1]


class BatonAIHook(PydanticAIHook):
    """A ``PydanticAIHook`` whose model is Baton's offline model where it is chosen: the agent's model is
    ``baton:offline``, or the connection sets ``{"model": "baton:offline"}`` (with ``"offline_delay_s"``
    in the extra, each answer takes that long; with ``"offline_usage": {"input_tokens": N,
    "output_tokens": M}``, each answer reports those tokens).

    A connection that is not defined is an :class:`AgentError` naming it and the fix (unless the
    deprecated ``BATON_OFFLINE_FALLBACK`` is true: then the offline model, with a warning). Any other
    connection is resolved by common-ai unchanged: OpenAI, Anthropic, an OpenAI-compatible server
    (host = base URL), fallback chains.
    """

    #: The offline model where it is chosen, once resolved; None: the connection's own model, which
    #: common-ai resolves (and keeps) in ``PydanticAIHook.get_conn``.
    offline: Model | None = None
    resolved = False

    def get_conn(self) -> Model:
        if not self.resolved:
            self.offline = self.chosen_offline()
            self.resolved = True
        return self.offline if self.offline is not None else super().get_conn()

    def chosen_offline(self) -> Model | None:
        """The offline model when the agent or the connection chooses it (or the deprecated fallback
        stands in for a missing connection); None for a real model. An error for a connection that is
        missing, names no model, or names one wrongly."""
        chosen = _model_name(self.model_id, "The agent's model")
        if chosen == OFFLINE_MODEL_NAME:
            return offline_model(0.0, self.llm_conn_id)
        if not self.llm_conn_id or not self.llm_conn_id.strip():
            raise AgentError(
                "An agent's llm_conn_id is empty: name an Airflow connection of type pydanticai in the "
                "roster (agents.yaml), or leave llm_conn_id out for the default, baton_llm."
            )
        try:
            extra = self.get_connection(self.llm_conn_id).extra_dejson
        except AirflowNotFoundException:
            if not offline_fallback_allowed():
                raise AgentError(missing_connection(self.llm_conn_id)) from None
            message = deprecated_fallback(self.llm_conn_id)
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            self.log.warning("%s", message)
            return offline_model(0.0, self.llm_conn_id)
        where = f"LLM connection {shown(self.llm_conn_id)}"
        if not isinstance(extra, dict):
            raise AgentError(
                f'{where}: its extra must be a JSON object such as {{"model": "{EXAMPLE_MODEL}"}}'
            )
        named = _model_name(extra.get("model"), f"{where}: extra.model")
        if chosen is None and named is None:
            raise AgentError(
                f'{where} names no model: give it the extra {{"model": "{EXAMPLE_MODEL}"}} (a real model), '
                f'or {{"model": "{OFFLINE_MODEL_NAME}"}} for the offline model'
            )
        if chosen is None and named == OFFLINE_MODEL_NAME:
            delay = _delay(extra.get("offline_delay_s"), self.llm_conn_id)
            return offline_model(
                delay, self.llm_conn_id, _fixed_usage(extra.get("offline_usage"), self.llm_conn_id)
            )
        return None
