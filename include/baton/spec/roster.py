"""Pydantic models of the agent roster (dags/agents.yaml)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from baton.egress import Entry
from baton.spec.browser import BrowserAccess
from baton.spec.common import IDENTIFIER, Duration, Strict

DEFAULT_LLM_CONN_ID = "baton_llm"


class Cost(Strict):
    """Price of an agent's model, in the currency of your bill, per 1,000 tokens."""

    input_per_1k: float = Field(default=0.0, ge=0)
    output_per_1k: float = Field(default=0.0, ge=0)


class CircuitBreaker(Strict):
    """After ``failures`` failures in a row, routing leaves the agent out for ``cooldown``; then one
    call may try it again (half-open). Its state is in Baton's store, shared by every run."""

    failures: int = Field(default=3, ge=1, le=1000)
    cooldown: Duration = timedelta(minutes=5)


class McpServer(Strict):
    """An MCP server whose tools the agent's model may call: an Airflow connection of type ``mcp``
    (common-ai's MCPHook: host = the server's URL, or ``{"transport": "stdio", "command": ...}``)."""

    conn_id: str = Field(min_length=1)
    prefix: str | None = Field(
        default=None, pattern=IDENTIFIER, description="prepended to its tool names: '<prefix>_<tool>'"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"conn_id": value} if isinstance(value, str) else value


class SkillAccess(Strict):
    """Where a skill may connect (``baton.egress``): every other host and address is refused."""

    allow: list[str] = Field(
        min_length=1,
        max_length=1000,
        description="hosts the skill may reach: 'api.example.com' (any port), '*.example.com' (any "
        "subdomain), an address '127.0.0.1' or '::1' (a host name never grants a private address), a range "
        "'10.0.0.0/8'; any of them but a range with ':port' (that port only). Link-local and cloud "
        "metadata addresses are never reached",
    )

    @field_validator("allow")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        for index, text in enumerate(value):
            try:
                Entry.parse(text)
            except ValueError as error:
                raise PydanticCustomError(
                    "egress_host",
                    "allow[{index}]: '{entry}' {problem}",
                    {"index": index, "entry": str(text)[:100], "problem": str(error)},
                ) from None
        return [text.strip().lower() for text in value]


class Agent(Strict):
    """An agent: an LLM behind an Airflow connection, or a deterministic registered skill."""

    name: str = Field(pattern=IDENTIFIER, max_length=100)
    department: str = "general"
    description: str = ""
    capabilities: list[str] = Field(default_factory=list)
    llm_conn_id: str | None = None
    model: str | None = Field(
        default=None, description="Overrides the connection's model, e.g. 'openai:gpt-5-mini'."
    )
    system_prompt: str = ""
    skill: str | None = None
    max_concurrency: int = Field(default=4, ge=1, le=1024)
    browser: BrowserAccess | None = Field(
        default=None,
        description="the agent may use a browser (Chromium): declarative browser steps, and browser tools "
        "its model can call; only on the hosts allowed",
    )
    mcp: list[McpServer] = Field(
        default_factory=list, description="MCP servers whose tools the agent's model may call"
    )
    cost: Cost = Field(default_factory=Cost)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)

    @model_validator(mode="before")
    @classmethod
    def _default_backend(cls, value: Any) -> Any:
        """No ``llm_conn_id`` and no ``skill``: an LLM on the default connection."""
        if isinstance(value, dict) and value.get("llm_conn_id") is None and value.get("skill") is None:
            return {**value, "llm_conn_id": DEFAULT_LLM_CONN_ID}
        return value

    @model_validator(mode="after")
    def _one_backend(self) -> Agent:
        if self.llm_conn_id is not None and self.skill is not None:
            raise ValueError("an agent has either 'llm_conn_id' (an LLM) or 'skill' (Python), not both")
        return self

    @property
    def pool(self) -> str:
        """The Airflow pool that caps this agent's concurrent steps at ``max_concurrency``."""
        return f"baton_agent_{self.name}"


class Roster(Strict):
    """All agents a workflow may name."""

    agents: list[Agent] = Field(default_factory=list)
    skills: dict[Annotated[str, Field(pattern=IDENTIFIER, max_length=100)], SkillAccess] = Field(
        default_factory=dict,
        description="where each skill that calls out may connect (http_post: {allow: [...]}); a skill with "
        "no entry reaches nothing, and an agent whose backend is a skill uses the skill's entry",
    )
    _issues: tuple[Any, ...] = PrivateAttr(default=())
    _broken: dict[str, str] = PrivateAttr(default_factory=dict)

    def with_problems(self, issues: list[Any], broken: dict[str, str]) -> Roster:
        """This roster, noting the entries left out of it (``load_roster`` keeps only healthy agents)."""
        self._issues, self._broken = tuple(issues), dict(broken)
        return self

    @property
    def issues(self) -> list[Any]:
        """The problems of the entries left out (``baton.errors.Issue``)."""
        return list(self._issues)

    @property
    def broken(self) -> dict[str, str]:
        """Agent name -> why its entry was left out: workflows naming it cannot load."""
        return dict(self._broken)

    @model_validator(mode="after")
    def _unique_names(self) -> Roster:
        seen: set[str] = set()
        for index, agent in enumerate(self.agents):
            if agent.name in seen:
                raise ValueError(f"agents[{index}].name: duplicate agent name '{agent.name}'")
            seen.add(agent.name)
        return self

    def get(self, name: str) -> Agent | None:
        return next((agent for agent in self.agents if agent.name == name), None)

    @property
    def names(self) -> list[str]:
        return [agent.name for agent in self.agents]

    def capable(self, capabilities: list[str] | tuple[str, ...]) -> list[Agent]:
        """The agents having every one of ``capabilities``."""
        return [a for a in self.agents if set(capabilities) <= set(a.capabilities)]

    @property
    def capabilities(self) -> list[str]:
        return sorted({c for agent in self.agents for c in agent.capabilities})
