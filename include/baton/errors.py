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


class SkillError(BatonError):
    """A registered Python skill failed or returned something its step does not accept."""


class FinalSkillError(SkillError):
    """A skill's failure that no retry can mend (a bad document, data that is not there): the step
    fails at once, whatever retries it has left, and the failure alert fires."""
