"""The one exception family of Baton: configuration errors apart from run-time failures."""

from __future__ import annotations

from dataclasses import dataclass


class BatonError(Exception):
    """Base of every error Baton raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem in one template: where it is, what is wrong, and how to fix it."""

    file: str
    path: str
    message: str
    fix: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class SensorQueryError(BatonError):
    """A sensor's query stopped by its session: it ran past the sensor's ``statement_timeout``, it tried
    to write (the session is read-only), or the triggerer cancelled it."""


class ConnectionNotDefined(BatonError, LookupError):
    """A database connection Baton reads (the business database, a ledger) is not defined in Airflow."""

    def __init__(self, conn_id: str, what: str):
        self.conn_id = conn_id
        super().__init__(
            f"connection '{conn_id}' is not defined: create it as a postgres or sqlite connection to {what} "
            f"(Admin > Connections, or AIRFLOW_CONN_{conn_id.upper()}='postgresql://user:password@host:5432/db')"
        )


class TemplateError(BatonError):
    """A workflow template or the agent roster is wrong; carries every issue found, not just the first."""

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class AgentError(BatonError):
    """An agent step could not produce a valid output."""


class AgentTimeout(AgentError):
    """One agent call took longer than the step's ``agent_timeout`` (the try fails; a retry may reassign)."""


class OutputInvalid(AgentError):
    """An agent's answers broke the step's output schema on every ask (its ``output_retries`` re-asks
    spent): the event's ``error_class`` the monitor's ``schema_failure_rate`` counts."""


class SkillError(BatonError):
    """A registered Python skill failed or returned something its step does not accept."""


class FinalSkillError(SkillError):
    """A skill's failure that no retry can mend (a bad document, data that is not there): the step
    fails at once, whatever retries it has left, and the failure alert fires."""


class SensorError(BatonError):
    """A sensor that cannot look: its connection is missing or its query fails (retried: the database
    may come back)."""


class CompensationFailed(BatonError):
    """A compensation failed every try: the saga stops at it."""


class ContextConflict(BatonError):
    """A write to a shared-context key that its strategy could not resolve."""


class OptimizeError(BatonError, ValueError):
    """Learned routing or a variant experiment was given what it cannot use: an outcome out of range, an
    unknown preference or variant, a stored state that is malformed. The message names the field and the fix."""


class BudgetExceeded(AgentError):
    """A model call does not fit in a budget (``dags/budgets.yaml``): the message names the budget, its
    window and its spend. No other agent is tried unless the budget says ``at_limit: fallback``."""


class RequirementFailed(AgentError):
    """A step's ``require:`` condition is false: the step (or the fan-out item) is refused, for good."""
