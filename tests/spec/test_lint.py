"""``baton validate``'s warnings about allowlists and credentials (baton.spec.lint): real files, the real
command."""

from __future__ import annotations

import textwrap

from baton.cli import main as baton
from baton.spec import lint
from tests.conftest import DAGS

SECRET_FIX = (
    "(fix: keep secrets out of templates: put them in an Airflow connection or variable; if this is not a "
    "secret, end the line with the comment `# pragma: allowlist secret`)"
)
BROAD_FIX = (
    "(fix: name the hosts themselves, or a wildcard under a domain you control such as '*.example.com')"
)

ROSTER = """\
skills:
  http_post: {allow: ["127.0.0.1", "*.co.uk:443", "0.0.0.0/0", "169.254.169.254", "*.internal"]}
  htp_post: {allow: ["api.example.com"]}
agents:
  - name: scout
    skill: market_prices
    browser: {allow: ["127.0.0.1", "*.com", "*.github.io", "*.shop.example.com"]}
"""


def _template(name: str, body: str) -> str:
    head = f"workflow: {name}\nversion: 1\ndescription: A test.\nowner: tests\n"
    return head + textwrap.dedent(body)


def test_validate_warns_of_broad_entries_credentials_and_unknown_skills(tmp_path, capsys):
    roster = tmp_path / "agents.yaml"
    roster.write_text(ROSTER)
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "notify.yaml").write_text(
        _template(
            "notify",
            """\
            steps:
              - id: post
                skill: http_post
                with:
                  url: http://127.0.0.1:8766/orders
                  headers: {Authorization: "Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789"}
                  json: {aws: AKIAIOSFODNN7EXAMPLE}
              - id: again
                skill: http_post
                with: {url: "http://127.0.0.1:8766/x", json: {key: AKIAIOSFODNN7EXAMPLE}}  # pragma: allowlist secret
            """,
        )
    )
    assert baton(["validate", str(folder), "--agents", str(roster)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{roster}:3: skills.htp_post: warning: no skill 'htp_post' is registered, so this entry allows nothing "
        "(fix: did you mean 'http_post'? name a registered skill: " + ", ".join(_skills()) + ")",
        f"{roster}:7: agents[0].browser.allow[1]: warning: '*.com' allows every host under 'com', a public "
        f"suffix: anyone can register a name there {BROAD_FIX}",
        f"{roster}:7: agents[0].browser.allow[2]: warning: '*.github.io' allows every host under 'github.io', a "
        f"public suffix: anyone can register a name there {BROAD_FIX}",
        f"{roster}:2: skills.http_post.allow[1]: warning: '*.co.uk:443' allows every host under 'co.uk', a "
        f"public suffix: anyone can register a name there {BROAD_FIX}",
        f"{roster}:2: skills.http_post.allow[2]: warning: '0.0.0.0/0' is a range wider than a /8: it holds "
        "private networks and much of the internet (fix: name the addresses, or the smallest range that holds "
        "them, such as '10.20.0.0/16')",
        f"{roster}:2: skills.http_post.allow[3]: warning: '169.254.169.254' is a link-local or cloud metadata "
        "address: it is never reached, even when listed (fix: remove it: a cloud metadata service is never "
        "reached on a template's behalf)",
        f"{folder / 'notify.yaml'}:10: warning: text shaped like a credential (GitHub Token); it is not shown "
        f"here {SECRET_FIX}",
        f"{folder / 'notify.yaml'}:11: warning: text shaped like a credential (AWS Access Key); it is not shown "
        f"here {SECRET_FIX}",
        "1 template(s) checked, 0 with errors, 0 error(s) in all, 8 warning(s)",
    ]
    assert "ghp_" not in "\n".join(out) and "AKIA" not in "\n".join(out), "the secret itself is never printed"


def _skills() -> list[str]:
    from baton.registry import skill_names

    return skill_names()


def test_a_credential_in_the_roster_is_found_too(tmp_path):
    roster = tmp_path / "agents.yaml"
    roster.write_text(
        "agents:\n  - name: planner\n    system_prompt: 'You may use the key sk_live_abcdefghijklmnopqrstuvwx'\n"
    )
    (issue,) = lint.warnings([], roster)
    assert str(issue) == (
        f"{roster}:3: warning: text shaped like a credential (Stripe Access Key); it is not shown here {SECRET_FIX}"
    )


def test_the_bundled_templates_and_roster_have_nothing_to_warn_of(monkeypatch):
    """Nothing to warn of, each file scanned once (counted: a template named twice is scanned once)."""
    from detect_secrets.core import scan

    scanned, scan_file = [], scan.scan_file

    def counted(path: str):
        scanned.append(path)
        return scan_file(path)

    monkeypatch.setattr(scan, "scan_file", counted)
    templates = sorted((DAGS / "workflows").glob("*.yaml"))
    assert len(templates) > 5
    assert lint.warnings([*templates, templates[0]], DAGS / "agents.yaml") == []
    assert scanned == [str(path) for path in [*templates, DAGS / "agents.yaml"]]


def test_hostile_rosters_give_no_warning_and_no_crash(tmp_path):
    for text in (
        "",  # empty
        "skills: [1, 2]\nagents: {a: 1}\n",  # the wrong shapes everywhere
        "skills:\n  http_post: {allow: [[1, [2]], {a: b}, null, 'not a host!']}\n",
        "agents:\n" + "  - browser: {allow: ['*.example.com']}\n" * 2000,  # big
        "a: " + "[" * 50 + "]" * 50 + "\n",  # deeply nested
        "skills: {http_post: {allow: [x\n",  # not YAML
    ):
        roster = tmp_path / "agents.yaml"
        roster.write_text(text)
        assert lint.allowlist_warnings(roster) == []


def test_a_public_suffix_is_judged_by_the_list_not_by_its_length():
    assert lint.doubtful("*.example.com") is None
    assert lint.doubtful("*.internal") is None  # not under any known suffix: a private name space
    assert lint.doubtful("*.shop.example.com:8443") is None
    assert lint.doubtful("api.com") is None  # one host, not a wildcard
    assert lint.doubtful("*.s3.amazonaws.com")[0].startswith("'*.s3.amazonaws.com' allows every host")
    assert lint.doubtful("*.xn--p1ai")[0].startswith("'*.xn--p1ai' allows every host under 'xn--p1ai'")
    assert lint.doubtful("10.0.0.0/8") is None and lint.doubtful("10.0.0.0/7") is not None
    assert lint.doubtful("fd00::/32") is None and lint.doubtful("::/0") is not None
