"""The egress policy of skills that call out: http_post run through the skill runner, in an effect scope on
a real store, against real HTTP servers on loopback addresses (127.0.0.1, 127.0.0.2, ::1); the policy
read from a roster file, as at run time."""

from __future__ import annotations

import contextvars
import json
from functools import partial
from http.server import BaseHTTPRequestHandler

import pytest
from airflow.sdk.exceptions import AirflowFailException
from demo.http_service import PartnerService
from demo.serving import ThreadedServer

from baton import effects, egress
from baton.agents.skills import run_skill
from baton.errors import FinalSkillError, SkillError, TemplateError
from baton.hooks import http as http_hook
from baton.spec.loading import load_roster
from tests.threads import run_threads

WHERE = "skills.http_post.allow in dags/agents.yaml"
STEP = "step 'notify': skill http_post: egress to"


@pytest.fixture
def roster(tmp_path, monkeypatch):
    """``roster(allow)``: the dags folder's agents.yaml declares ``http_post: {allow: allow}`` (None: no
    ``skills`` at all)."""
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))

    def write(allow: list[str] | None) -> None:
        skills = "" if allow is None else f"skills:\n  http_post: {{allow: {json.dumps(allow)}}}\n"
        (tmp_path / "agents.yaml").write_text(skills + "agents: []\n")

    return write


@pytest.fixture
def second():
    """A partner API on the second loopback address, 127.0.0.2."""
    with PartnerService(host="127.0.0.2") as service:
        yield service


@pytest.fixture
def first():
    with PartnerService() as service:
        yield service


def _post(store, url, *, step="notify", try_number=1, **args):
    """http_post through the skill runner, in the effect scope of ``step`` of run 'run_1' (a post done
    in a step is not done again by that step: each post here that must go out has a step of its own)."""
    with effects.scope(store, run_id="run_1", workflow="orders", step=step, try_number=try_number):
        return run_skill(
            "http_post",
            workflow="orders",
            step_id=step,
            output_spec=None,
            instruction="",
            scope={"inputs": {"card": "4111 1111 1111 1111"}, "steps": {}, "run": {"id": "run_1"}},
            with_={"url": url, **args} if url is not None else args,
        )


def _blocked(store):
    return [e for e in store.read("run_1", types=["egress.blocked"])]


def _refused(store, url, **args) -> str:
    with pytest.raises(egress.EgressBlocked) as refused:
        _post(store, url, **args)
    return str(refused.value)


# --- the issue's case: a second loopback address the policy does not name -----------------------------


def test_a_post_to_an_address_not_allowed_is_refused_recorded_and_never_arrives(store, roster, second):
    roster(["127.0.0.1", "localhost"])  # the bundled roster's policy
    url = f"http://127.0.0.2:{second.port}/orders"
    with pytest.raises(FinalSkillError) as refused:
        _post(store, url + "?token=s3cret", headers={"Authorization": "Bearer s3cret-too"})
    assert str(refused.value) == (
        f"{STEP} {url} blocked: 127.0.0.2 is a loopback address, which skill http_post's "
        f"allowlist does not name; add '127.0.0.2' (or a range holding it) to {WHERE}"
    )
    assert isinstance(refused.value, egress.EgressBlocked)
    assert isinstance(refused.value, AirflowFailException), "no retry can mend it: the step fails at once"
    assert second.count() == 0, "nothing arrived"
    (event,) = _blocked(store)
    assert (event.run_id, event.workflow, event.step, event.try_number) == ("run_1", "orders", "notify", 1)
    assert event.payload == {
        "who": "skill http_post",
        "url": url,
        "host": "127.0.0.2",
        "address": "127.0.0.2",
        "reason": "private_not_named",
        "allowed": ["127.0.0.1", "localhost"],
    }
    stored = json.dumps([e.payload for e in store.read("run_1")])
    assert "s3cret" not in stored and "4111 1111" not in stored, "no query string, credential or body"
    assert [e.type for e in store.read("run_1")] == ["egress.blocked"], "no effect.done: nothing happened"


def test_the_same_server_named_in_the_policy_receives_the_post(store, roster, second):
    roster(["127.0.0.2"])
    got = _post(store, f"http://127.0.0.2:{second.port}/orders", json={"order": 7})
    assert got == {"status": 201, "body": {"received": 1, "path": "/orders", "duplicate": False}}
    assert [p["body"] for p in second.posts()] == [{"order": 7}]
    assert _blocked(store) == []


def test_a_range_names_the_addresses_it_holds_and_a_port_only_that_port(store, roster, second):
    roster(["127.0.0.0/30"])
    assert _post(store, f"http://127.0.0.2:{second.port}/a", step="a")["status"] == 201
    roster([f"127.0.0.2:{second.port + 1}"])
    assert _refused(store, f"http://127.0.0.2:{second.port}/b") == (
        f"{STEP} http://127.0.0.2:{second.port}/b blocked: 127.0.0.2 is a loopback "
        f"address, which skill http_post's allowlist does not name; add '127.0.0.2' (or a range holding it) "
        f"to {WHERE}"
    )
    roster([f"127.0.0.2:{second.port}"])
    assert _post(store, f"http://127.0.0.2:{second.port}/c", step="c")["status"] == 201
    assert second.count() == 2


# --- never -------------------------------------------------------------------------------------------


LINK_LOCAL = "a link-local address (where cloud metadata services answer): never allowed, even when listed"


@pytest.mark.parametrize(
    ("url", "address", "reason", "detail"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link_local", LINK_LOCAL),
        ("http://[fe80::1]/", "fe80::1", "link_local", LINK_LOCAL),
        ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe", "link_local", LINK_LOCAL),  # IPv4-mapped
        ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe", "link_local", LINK_LOCAL),  # NAT64
        ("http://0xa9fea9fe/", "169.254.169.254", "link_local", LINK_LOCAL),  # hex: the same address
        (
            "http://100.100.100.200/latest/",
            "100.100.100.200",
            "metadata",
            "a cloud metadata address: never allowed, even when listed",
        ),
        (
            "http://[fd00:ec2::254]/latest/",
            "fd00:ec2::254",
            "metadata",
            "a cloud metadata address: never allowed, even when listed",
        ),
    ],
)
def test_metadata_and_link_local_addresses_are_refused_even_when_listed(
    store, roster, url, address, reason, detail
):
    roster(["169.254.0.0/16", "169.254.169.254", "fe80::/10", "100.100.100.200", "fd00:ec2::254", "::/0"])
    shown = egress.safe_url(url)
    assert _refused(store, url) == f"{STEP} {shown} blocked: {address} is {detail}"
    (event,) = _blocked(store)
    assert (event.payload["address"], event.payload["reason"]) == (address, reason)


# --- the check is on the resolved address ------------------------------------------------------------


def test_a_host_name_that_resolves_to_loopback_needs_the_address_named(store, roster, first):
    url = f"http://localhost:{first.port}/orders"
    roster(["localhost"])
    assert _refused(store, url) == (
        f"{STEP} {url} blocked: localhost resolves to 127.0.0.1, a loopback address, "
        "which skill http_post's allowlist does not name (a host name never grants one); add '127.0.0.1' (or "
        f"a range holding it) to {WHERE}"
    )
    (event,) = _blocked(store)
    assert event.payload | {"allowed": None} == {
        "who": "skill http_post",
        "url": url,
        "host": "localhost",
        "address": "127.0.0.1",  # refused when connecting, on the address the name resolved to
        "reason": "private_not_named",
        "allowed": None,
    }
    assert first.count() == 0
    roster(["localhost", "127.0.0.1"])  # the roster is read again when it changes
    assert _post(store, url, try_number=2)["status"] == 201
    assert first.count() == 1


def test_an_address_in_another_notation_is_judged_by_the_address_it_is(store, roster, second):
    roster(["127.0.0.2"])
    for form, url in (
        ("decimal", f"http://2130706434:{second.port}/decimal"),
        ("hex", f"http://0x7f.0.0.2:{second.port}/hex"),
        ("octal", f"http://0177.0.0.2:{second.port}/octal"),
        ("short", f"http://127.2:{second.port}/short"),
    ):
        assert _post(store, url, step=form)["status"] == 201
    assert [p["path"] for p in second.posts()] == ["/decimal", "/hex", "/octal", "/short"]
    roster(["127.0.0.1"])
    assert _refused(store, f"http://0x7f.0.0.2:{second.port}/hex") == (
        f"{STEP} http://127.0.0.2:{second.port}/hex blocked: 127.0.0.2 is a loopback "
        f"address, which skill http_post's allowlist does not name; add '127.0.0.2' (or a range holding it) "
        f"to {WHERE}"
    )
    assert second.count() == 4


def test_ipv6_loopback_is_judged_by_its_address(store, roster):
    with PartnerService(host="::1") as six:
        url = f"http://[::1]:{six.port}/orders"
        roster(["127.0.0.1", "localhost"])
        assert _refused(store, url) == (
            f"{STEP} {url} blocked: ::1 is a loopback address, which skill http_post's "
            f"allowlist does not name; add '::1' (or a range holding it) to {WHERE}"
        )
        assert six.count() == 0
        roster(["::1"])
        assert _post(store, url)["status"] == 201
        assert six.count() == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example\\@127.0.0.1:{port}/orders",  # the URL standard: the backslash ends the host
        "http://user@evil.example\\@127.0.0.1:{port}/orders",
        "http://user@127.0.0.1:pass@evil.example/orders",  # the last @ ends the credentials
    ],
)
def test_a_url_is_read_as_the_url_standard_reads_it(store, roster, first, url):
    roster(["127.0.0.1"])
    url = url.format(port=first.port)
    assert _refused(store, url) == (
        f"{STEP} {egress.safe_url(url)} blocked: evil.example is not on skill http_post's "
        f"allowlist (127.0.0.1); add 'evil.example' to {WHERE}"
    )
    assert egress.safe_url(url).startswith("http://evil.example/")
    assert first.count() == 0


def test_a_skill_without_an_entry_reaches_nothing(store, roster, first):
    roster(None)
    url = f"http://127.0.0.1:{first.port}/orders"
    assert _refused(store, url) == (
        f"{STEP} {url} blocked: skill http_post has no egress allowlist, so it may reach "
        "nothing; add `http_post: {allow: [<hosts>]}` under `skills:` in dags/agents.yaml"
    )
    assert _blocked(store)[0].payload["reason"] == "not_allowed"
    assert first.count() == 0


def test_a_roster_that_cannot_be_read_allows_nothing(store, roster, tmp_path, first):
    (tmp_path / "agents.yaml").write_text("skills:\n  http_post: {allow: ['http://127.0.0.1/']}\n")
    assert _refused(store, f"http://127.0.0.1:{first.port}/x") == (
        f"{STEP} http://127.0.0.1:{first.port}/x blocked: skill http_post has no egress "
        f"allowlist, so it may reach nothing; the roster {tmp_path / 'agents.yaml'} cannot be read "
        "(agents.yaml:2: "
        "skills.http_post.allow: allow[0]: 'http://127.0.0.1/' is a URL; write only its host, such as "
        "'api.example.com' (no scheme, no path)); fix it"
    )


def test_only_http_urls(store, roster):
    roster(["127.0.0.1"])
    with pytest.raises(SkillError, match=r"'with\.url' must be an http\(s\) URL with a host, not 'file:'"):
        _post(store, "file:///etc/passwd")
    assert _blocked(store) == []  # a wrong argument, caught before any egress


# --- an HTTP connection's host, named by an admin ------------------------------------------------------


def test_an_http_connections_host_is_allowed_but_never_a_metadata_address(store, roster, second, monkeypatch):
    roster(["example.com"])
    monkeypatch.setenv("AIRFLOW_CONN_PARTNER", f"http://127.0.0.2:{second.port}")
    assert _post_conn(store, "partner", "/orders", step="a")["status"] == 201
    assert second.count() == 1, "the connection's host (and port) was named by an admin"
    _post_conn(store, "partner", "@evil.example/", step="b")  # the template's path cannot move the host
    assert [p["path"] for p in second.posts()] == ["/orders", "/@evil.example/"]
    monkeypatch.setenv("AIRFLOW_CONN_METADATA", "http://169.254.169.254")
    with pytest.raises(egress.EgressBlocked) as refused:
        _post_conn(store, "metadata", "/latest/meta-data/", step="c")
    assert str(refused.value) == (
        "step 'c': skill http_post: egress to http://169.254.169.254/latest/meta-data/ blocked: "
        f"169.254.169.254 is {LINK_LOCAL}"
    )


def _post_conn(store, conn_id, path, *, step):
    """http_post to an Airflow connection's host, the template giving only the path."""
    return _post(store, None, step=step, conn_id=conn_id, path=path)


# --- redirects, concurrency --------------------------------------------------------------------------


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def log_message(self, format, *args):  # quiet
        pass

    def do_POST(self):
        self.send_response(307)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_redirect_is_not_followed(store, roster, second):
    roster(["127.0.0.1"])
    handler = type("Redirect", (_Redirect,), {"target": f"http://127.0.0.2:{second.port}/orders"})
    with ThreadedServer(handler) as redirect:
        url = f"http://127.0.0.1:{redirect.port}/go"
        with pytest.raises(SkillError) as failed:
            _post(store, url)
    assert str(failed.value) == f"step 'notify': POST {url} answered 307 Temporary Redirect: null"
    assert second.count() == 0


def test_concurrent_posts_are_judged_each_under_its_own_skill(store, roster, first, second):
    """Threads started with the context copied (as a fan-out does) keep the skill that started them."""
    roster(["127.0.0.2"])

    def post(n: int) -> str:
        target = second if n % 2 else first
        try:
            _post(store, f"http://127.0.0.{2 if n % 2 else 1}:{target.port}/n{n}", step=f"s{n}")
            return "posted"
        except egress.EgressBlocked:
            return "blocked"

    outcomes = run_threads([partial(contextvars.copy_context().run, post, n) for n in range(1, 9)], 60)
    assert outcomes == ["posted" if n % 2 else "blocked" for n in range(1, 9)]
    assert sorted(p["path"] for p in second.posts()) == ["/n1", "/n3", "/n5", "/n7"]
    assert first.count() == 0
    assert sorted(e.step for e in _blocked(store)) == ["s2", "s4", "s6", "s8"]


# --- the roster's entries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "message"),
    [
        (["*"], "allow[0]: '*' is not a host name, an IP address or a range; write a host such as"),
        (["https://partner.example.com/"], "allow[0]: 'https://partner.example.com/' is a URL; write only"),
        (["10.0.0.1/8"], "allow[0]: '10.0.0.1/8' is not an address range (10.0.0.1/8 has host bits set)"),
        (["10.0.0.0/8:80"], "allow[0]: '10.0.0.0/8:80' is a range with a port; a range takes no port"),
        (["0x7f.1"], "allow[0]: '0x7f.1' reads as an IP address in a short or hex form; write it dotted"),
        (["api.example.com:0"], "allow[0]: 'api.example.com:0' has a port that is not a number from 1 to"),
        (["[::1"], "allow[0]: '[::1' is not an IPv6 address; write '::1' or '[::1]:8080'"),
        (["a" * 300], "is not a host (empty, or longer than 260 characters)"),
        ([], "List should have at least 1 item"),
        ([["nested", ["deeper"]]], "Input should be a valid string"),
    ],
)
def test_a_wrong_entry_is_an_error_of_the_roster(tmp_path, allow, message):
    path = tmp_path / "agents.yaml"
    path.write_text(f"skills:\n  http_post: {{allow: {json.dumps(allow)}}}\n")
    with pytest.raises(TemplateError) as wrong:
        load_roster(path)
    (issue,) = wrong.value.issues
    assert issue.line == 2 and issue.path.startswith("skills.http_post.allow")
    assert message in issue.message


def test_a_huge_allowlist_is_refused(tmp_path):
    path = tmp_path / "agents.yaml"
    path.write_text(
        "skills:\n  http_post: {allow: [" + ", ".join(f"h{n}.example.com" for n in range(1001)) + "]}\n"
    )
    with pytest.raises(TemplateError, match="List should have at most 1000 items"):
        load_roster(path)


def test_the_client_judges_the_address_it_connects_to_whatever_asked_for_it(store, second):
    """The check lives in the connection (the network backend), not only in the skill: a client of the
    policy refuses an address it does not allow, with no URL check before."""
    policy = egress.Policy(
        ["localhost"],
        who="skill probe",
        where="skills.probe.allow in dags/agents.yaml",
        record=http_hook.record_blocked,
    )
    with (
        effects.scope(store, run_id="run_1", workflow="orders", step="probe"),
        http_hook.http_client(policy, timeout=5) as client,
        pytest.raises(egress.EgressBlocked) as refused,
    ):
        client.post(f"http://127.0.0.2:{second.port}/x", json={})
    assert str(refused.value) == (
        f"skill probe: egress to 127.0.0.2:{second.port} blocked: 127.0.0.2 is a loopback address, which "
        "skill probe's allowlist does not name; add '127.0.0.2' (or a range holding it) to skills.probe.allow "
        "in dags/agents.yaml"
    )
    assert second.count() == 0
    (event,) = _blocked(store)
    assert (event.step, event.payload["reason"], event.payload["address"]) == (
        "probe",
        "private_not_named",
        "127.0.0.2",
    )


def test_a_huge_url_is_refused_and_recorded_shortened(store, roster):
    roster(["127.0.0.1"])
    url = "http://evil.example/" + "a" * 100_000 + "?q=" + "s3cret" * 1000
    message = _refused(store, url)
    assert len(message) < 2500 and "s3cret" not in message
    (event,) = _blocked(store)
    assert len(event.payload["url"]) == 2000 and event.payload["url"].startswith("http://evil.example/aaa")


@pytest.mark.parametrize(
    ("text", "name", "network", "port"),
    [
        ("API.Example.com", "api.example.com", None, None),
        ("*.example.com:443", "example.com", None, 443),
        ("bücher.de", "xn--bcher-kva.de", None, None),  # matched in the ASCII form URLs carry
        ("127.0.0.1:8766", "", "127.0.0.1/32", 8766),
        ("[::1]:8080", "", "::1/128", 8080),
        ("::1", "", "::1/128", None),
        ("fd00::/8", "", "fd00::/8", None),
    ],
)
def test_the_entries_a_roster_may_write(text, name, network, port):
    entry = egress.Entry.parse(text)
    assert (entry.name, str(entry.network) if entry.network else None, entry.port) == (name, network, port)


# --- baton validate asks the same policy ---------------------------------------------------------------

STATIC = [
    "http://169.254.169.254/latest/meta-data",  # link-local
    "http://0xa9fea9fe/x",  # the same, as the URL standard reads a hexadecimal host
    "http://[fd00:ec2::254]/x",  # a metadata address
    "http://127.0.0.2:9/x",  # loopback, not named
    "http://10.1.2.3/x",  # private, not named
    "https://partner.example.com/x",  # a host not named
    "ftp://127.0.0.1/x",  # not http(s)
    "http://127.0.0.1:9/x",  # allowed: refused by nothing (nobody listens: the post fails otherwise)
    "http://localhost:9/x",  # named: allowed before it is resolved
]


@pytest.mark.parametrize("url", STATIC)
def test_what_validate_refuses_of_a_literal_url_every_run_refuses_in_the_same_words(store, roster, url):
    """``Policy.refusal`` (asked by ``baton validate``, without resolving or recording) refuses exactly the
    URLs the running skill refuses before it resolves a name, with the run's own detail."""
    allow = ["127.0.0.1", "localhost"]
    roster(allow)
    _, static = egress.skill_policy("http_post", allow).refusal(url)
    if static is None:
        with pytest.raises(SkillError) as failed:  # not refused by the policy: the post goes out and fails
            _post(store, url, timeout=2)
        assert not isinstance(failed.value, egress.EgressBlocked), str(failed.value)
        assert _blocked(store) == []
        return
    with pytest.raises(SkillError) as refused:  # the skill's own check of a URL that is not http(s)
        _post(store, url)
    assert str(refused.value).endswith(static.detail) or static.reason == "scheme", str(refused.value)
    if static.reason == "scheme":
        assert "'with.url' must be an http(s) URL with a host" in str(refused.value)
        return
    assert isinstance(refused.value, egress.EgressBlocked)
    (event,) = _blocked(store)
    assert event.payload["reason"] == static.reason
