"""HTTP calls a skill makes on a template's behalf, under the egress policy of :mod:`baton.egress`.

The policy of the skill that is acting (``acting``, entered by the skill runner) comes from the roster
(``skills:`` in dags/agents.yaml, re-read when it changes). ``http_client`` gives an httpx client whose
network backend resolves the host once, judges every address, and connects only to one that passed
(DNS rebinding cannot slip through); a refusal is recorded as an ``egress.blocked`` event in the
current effect scope.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from baton import effects
from baton.egress import ROSTER_FILE, EgressBlocked, Policy, skill_policy
from baton.errors import TemplateError
from baton.spec.loading import load_roster

log = logging.getLogger(__name__)


class _Acting:
    """The skill running in this context; its policy is read from the roster when first needed."""

    def __init__(self, skill: str):
        self.skill = skill
        self._policy: Policy | None = None

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = for_skill(self.skill)
        return self._policy


_ACTING: contextvars.ContextVar[_Acting | None] = contextvars.ContextVar("baton_egress_acting", default=None)


@contextlib.contextmanager
def acting(skill: str) -> Iterator[None]:
    """Outbound calls made in this block (and in threads started from it with the context copied) are
    the skill ``skill``'s, under its roster entry. The roster is read only if a call goes out."""
    token = _ACTING.set(_Acting(skill))
    try:
        yield
    finally:
        _ACTING.reset(token)


def current(default_skill: str) -> Policy:
    """The policy of the skill running now, or else of ``default_skill`` (a function of that skill
    called directly, outside a step)."""
    active = _ACTING.get()
    return active.policy if active is not None else for_skill(default_skill)


def roster_file() -> Path:
    """The roster of the DAGs folder: ``AIRFLOW__CORE__DAGS_FOLDER``, else Airflow's configured one."""
    folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if not folder:
        try:
            from airflow.configuration import conf

            folder = conf.get("core", "dags_folder")
        except Exception:  # no Airflow configuration here: the checkout's layout
            folder = "dags"
    return Path(folder) / ROSTER_FILE


_ROSTERS: dict[str, tuple[tuple[int, int], dict[str, list[str]], str]] = {}
_ROSTERS_LOCK = threading.Lock()


def for_skill(skill: str, path: Path | None = None) -> Policy:
    """The policy the roster at ``path`` (default: :func:`roster_file`) declares for ``skill``: nothing
    allowed when it declares none, or cannot be read."""
    path = path or roster_file()
    skills, problem = _skills_of(path)
    unset = f"the roster {path} cannot be read ({problem}); fix it" if problem else ""
    return skill_policy(skill, skills.get(skill, []), unset=unset, record=record_blocked)


def _skills_of(path: Path) -> tuple[dict[str, list[str]], str]:
    """The roster's ``skills`` (name -> allow entries) and why it cannot be read ("" if it can);
    read again only when the file changes."""
    try:
        stat = path.stat()
    except OSError:
        return {}, f"there is no {path.name}"
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _ROSTERS.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    try:
        roster = load_roster(path, root=path.parent)
        skills, problem = {name: list(access.allow) for name, access in roster.skills.items()}, ""
    except TemplateError as error:
        skills, problem = {}, str(error.issues[0]) if error.issues else "invalid"
    with _ROSTERS_LOCK:
        _ROSTERS[str(path)] = (stamp, skills, problem)
    return skills, problem


# --- the record ----------------------------------------------------------------------------------


def record_blocked(payload: dict[str, Any]) -> None:
    """An ``egress.blocked`` event in the current effect scope (once per scope, try, URL, address and
    reason); nothing outside a scope (the log has it)."""
    active = effects.current()
    if active is None:
        return
    part = "|".join((payload["url"], payload["address"], payload["reason"], str(active.try_number)))
    active.record("egress.blocked", payload, "egress.blocked|" + active.key("egress.blocked", part))


# --- HTTP ----------------------------------------------------------------------------------------


def http_client(policy: Policy, *, url: str = "", timeout: float = 30.0) -> Any:
    """An ``httpx.Client`` whose every connection is judged by ``policy`` on the address it goes to:
    no redirect followed, no proxy or ``.netrc`` from the environment. ``url`` (as shown) names the
    call in a refusal."""
    import httpx

    return httpx.Client(
        transport=_transport(policy, url), trust_env=False, follow_redirects=False, timeout=timeout
    )


def _transport(policy: Policy, url: str) -> Any:
    import httpcore
    import httpx

    class GuardedTransport(httpx.HTTPTransport):
        """httpx's transport over a connection pool whose network backend is :class:`_Guarded`. httpx
        takes no network backend, so the pool is made here as ``HTTPTransport`` makes it without a
        proxy (its requests go through ``self._pool`` only)."""

        def __init__(self) -> None:  # not the parent's: it would build a pool to throw away
            self._pool = httpcore.ConnectionPool(
                ssl_context=httpx.create_ssl_context(), network_backend=_Guarded(policy, url)
            )

    return GuardedTransport()


class _Guarded:
    """httpcore's synchronous network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: Policy, url: str):
        import httpcore

        self.policy = policy
        self.url = url
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        import httpcore

        try:
            addresses = self.policy.addresses(host, port, url=self.url)
        except OSError as error:  # the name does not resolve
            raise httpcore.ConnectError(f"{host} does not resolve: {error}") from None
        last: Exception | None = None
        for address in addresses:  # the checked addresses, never the name again
            try:
                return self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise EgressBlocked(f"{self.policy.who}: a Unix socket is not an allowed destination")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)
