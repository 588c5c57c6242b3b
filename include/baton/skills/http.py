"""``http_post``: post JSON to a partner's API, once per run and step, whatever the retries.

```yaml
- id: notify_partner
  skill: http_post
  with:
    url: https://partner.example.com/orders      # or conn_id: partner_api (an Airflow HTTP connection)
    json: {order: "{{ steps.make_order.id }}"}   # default: the run's inputs
    headers: {X-Source: baton}                   # optional
    timeout: 10                                  # seconds, default 30
```

It reaches only what the roster's egress policy for ``http_post`` allows (``baton.egress``:
``skills: {http_post: {allow: [...]}}`` in dags/agents.yaml), judged on the address it connects to;
the host of a connection named by ``conn_id`` is allowed too (an admin named it). It follows no
redirect. A refusal fails the step at once (no retry) and is recorded as ``egress.blocked``.

The post is an effect (``baton.effects``): a retry of the step, or ``baton replay --rerun``, that
reaches it after it succeeded gets the recorded answer back and posts nothing. It carries an
``Idempotency-Key`` header (the effect's key), so the partner can drop a duplicate Baton could not
see (a post that arrived but whose answer was lost).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from baton import egress
from baton.effects import effect
from baton.errors import SkillError
from baton.hooks import http as http_hook
from baton.registry import SkillRequest, skill

ARGS = ("url", "conn_id", "path", "json", "headers", "timeout")
DEFAULT_TIMEOUT = 30.0
BODY_TEXT_LIMIT = 2000


class HttpPostResult(BaseModel):
    status: int
    body: Any = None


def shown(url: str) -> str:
    """The URL without what may hold a secret (user and password, query string, fragment)."""
    return egress.safe_url(url)


@skill("http_post", output=HttpPostResult)
def http_post(request: SkillRequest) -> dict:
    """Post JSON (with.json, default the run's inputs) to with.url or an HTTP connection's with.path."""
    url, headers, auth, timeout, named = _target(request)
    body = request.args.get("json", request.inputs)
    policy = http_hook.current("http_post")
    if named is not None:  # an HTTP connection's host: an admin named it
        policy = policy.naming(*named)
    return post_json(url, body, headers=headers, auth=auth, timeout=timeout, step=request.step, policy=policy)


@effect("http.post")
def post_json(
    url: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    step: str = "",
    policy: egress.Policy | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """POST ``body`` as JSON; ``{"status", "body"}`` of a 2xx answer, a ``SkillError`` otherwise.

    :param policy: where the post may go; default the running skill's (or ``http_post``'s) egress
        policy. A refusal is an ``EgressBlocked``, recorded as ``egress.blocked``.
    """
    import httpx

    sent = {"Content-Type": "application/json", **(headers or {})}
    if idempotency_key:
        sent["Idempotency-Key"] = idempotency_key
    where = f"step '{step}': " if step else ""
    policy = policy or http_hook.current("http_post")
    try:
        target = policy.check_url(url)
        with http_hook.http_client(policy, url=shown(url), timeout=timeout) as client:
            response = client.post(target.href, content=json.dumps(body).encode(), headers=sent, auth=auth)
    except egress.EgressBlocked as error:
        raise egress.EgressBlocked(f"{where}{error}") from None
    except httpx.TimeoutException:
        raise SkillError(f"{where}POST {shown(url)} got no answer within {timeout:g} s") from None
    except httpx.HTTPError as error:
        raise SkillError(f"{where}POST {shown(url)} failed: {type(error).__name__}: {error}") from None
    answer = _body(response)
    if not 200 <= response.status_code < 300:
        text = answer if isinstance(answer, str) else json.dumps(answer)
        raise SkillError(
            f"{where}POST {shown(url)} answered {response.status_code} {response.reason_phrase}: {text[:300]}"
        )
    return {"status": response.status_code, "body": answer}


def _body(response: Any) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text[:BODY_TEXT_LIMIT]


def _target(
    request: SkillRequest,
) -> tuple[str, dict[str, str], tuple[str, str] | None, float, tuple[str, int | None] | None]:
    """(url, headers, basic auth, timeout, the connection's (host, port) or None) from the step's
    ``with``; a SkillError says what to fix."""
    args = request.args
    where = f"step '{request.step}' (skill http_post)"
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise SkillError(
            f"{where}: unknown argument(s) {', '.join(unknown)} in 'with'; it takes {', '.join(ARGS)}"
        )
    headers = args.get("headers") or {}
    if not isinstance(headers, dict):
        raise SkillError(f"{where}: 'with.headers' must be a mapping of header names to values")
    headers = {str(name): str(value) for name, value in headers.items()}
    timeout = args.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise SkillError(f"{where}: 'with.timeout' must be a number of seconds in (0, 600], not {timeout!r}")
    url, conn_id = args.get("url"), args.get("conn_id")
    if bool(url) == bool(conn_id):
        raise SkillError(
            f"{where}: "
            + ("give either 'url' or 'conn_id', not both" if url else "no URL to post to")
            + "; add to the step `with: {url: https://host/path}`, or `with: {conn_id: <an Airflow "
            "HTTP connection>, path: /path}`"
        )
    auth = named = None
    if conn_id:
        url, conn_headers, auth, base = _connection(str(conn_id), str(args.get("path") or ""), where)
        headers = {**conn_headers, **headers}
        admin = egress.parse_url(base)  # the host is the connection's, whatever the template's path
        named = (admin.host, admin.port) if admin is not None and admin.host else None
    elif args.get("path"):
        url = str(url).rstrip("/") + "/" + str(args["path"]).lstrip("/")
    url = str(url)
    target = egress.parse_url(url)
    if target is None or target.scheme not in egress.HTTP or not target.host:
        raise SkillError(f"{where}: 'with.url' must be an http(s) URL with a host, not {shown(url)!r}")
    return url, headers, auth, float(timeout), named


def _connection(
    conn_id: str, path: str, where: str
) -> tuple[str, dict[str, str], tuple[str, str] | None, str]:
    """URL, headers (the connection's extra, as the HTTP provider does), basic auth and base URL."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise SkillError(
            f"{where}: there is no Airflow connection '{conn_id}'; create it (e.g. AIRFLOW_CONN_"
            f"{conn_id.upper()}='http://host:port'), or give 'url' instead"
        ) from None
    host = conn.host or ""
    if "://" in host:
        base = host
    else:
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        base = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    url = base.rstrip("/") + ("/" + path.lstrip("/") if path else "")
    extra = conn.extra_dejson if conn.extra else {}
    headers = {str(k): str(v) for k, v in extra.items() if isinstance(v, (str, int, float))}
    auth = (conn.login, conn.password or "") if conn.login else None
    return url, headers, auth, base
