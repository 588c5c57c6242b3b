"""The documentation as a reader meets it: every YAML, shell and Python block of README.md, CHANGELOG.md and
every page of docs/ is executed or validated here, as written; the site builds with `mkdocs build --strict`
(no broken link, anchor or page left out of the nav); README.md stays the front door (under 300 lines, linking
only to pages that exist); every image a page shows exists.

Each block is preceded by a marker that says how it is checked::

    <!-- check: workflow -->              a whole template: `baton validate` against the bundled roster
    <!-- check: workflow-part NAME -->    part of a template: completed by CONTEXTS[NAME], then validated
    <!-- check: roster -->                part of dags/agents.yaml: merged into the bundled roster, loaded
    <!-- check: monitoring -->            a dags/monitoring.yaml: loaded as the monitor loads it
    <!-- check: budgets -->               a dags/budgets.yaml: loaded as a task loads it
    <!-- check: dataset -->               a dags/evals/<workflow>.yaml: checked against the bundled template
    <!-- check: yaml REASON -->           parsed only (YAML for another tool); the reason says which
    <!-- check: shell -->                 every command is parsed by the tool that runs it (baton's and
                                          Airflow's CLI parsers, the REST API's routes and body models,
                                          the Makefile's targets, the files it names)
    <!-- check: shell-run -->             the same, and the `baton` commands that only read templates run
    <!-- check: python PATH -->           the same text as the file PATH of this repository
    <!-- check: python -->                compiles, and every module it imports is installed

A block without a marker, or with a marker this file does not know, fails the test.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

from tests.conftest import DAGS, ROOT

README = ROOT / "README.md"
# What the site shows: the front door, the changelog (docs/changelog.md includes it) and every page.
PAGES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_LINES = 300
CHECKED = {"yaml", "bash", "python"}
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\w*)\s*$")
MARKER = re.compile(r"^\s*<!-- check: (?P<kind>[\w-]+)(?: (?P<arg>.*?))? -->\s*$")

# What a part of a template needs around it to be a template: its inputs, and a step when it has none.
CONTEXTS: dict[str, dict] = {
    "guards": {
        "inputs": {"partner": {"type": "string"}, "sku": {"type": "string"}, "quantity": {"type": "integer"}}
    },
    "context": {},
    "fanout": {"context": {"changes": {"strategy": "merge"}}},
    "saga": {"inputs": {"partner": {"type": "string"}, "order": {"type": "string"}}},
    "trigger": {"steps": [{"id": "score", "skill": "score_leads"}]},
    "browser": {"inputs": {"crm_url": {"type": "string"}, "email": {"type": "string"}}},
    "output": {"inputs": {"order": {"type": "string"}}},
    "variants": {"inputs": {"customer": {"type": "string", "default": "acme"}}},
    # a rollout's new version is written beside it (dags/versions/<to>): the current template, version 2
    "rollout": {"steps": [{"id": "score", "skill": "score_leads"}]},
}
# `baton` commands that only read templates: a shell-run block runs them against the bundled dags folder.
READ_ONLY = {"validate", "show", "skills"}
PLACEHOLDER = re.compile(r"<[^<>\n]+>")


@dataclass
class Block:
    page: str  # the file, relative to the repository
    line: int  # of the opening fence
    lang: str
    text: str
    kind: str
    arg: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang}, check: {self.kind})"


def blocks(text: str, page: str = "README.md") -> list[Block]:
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        indent = len(fence["indent"])
        body = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        marker = MARKER.match(lines[i - 1]) if i else None
        if fence["lang"] in CHECKED:
            found.append(
                Block(
                    page,
                    i + 1,
                    fence["lang"],
                    body,
                    marker["kind"] if marker else "",
                    (marker and marker["arg"]) or "",
                )
            )
        i = end + 1
    return found


BLOCKS = [
    b for path in PAGES if path.exists() for b in blocks(path.read_text(), path.relative_to(ROOT).as_posix())
]


def _ids(kind_prefix: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind.split("-")[0] == kind_prefix]


def test_every_yaml_shell_and_python_block_says_how_it_is_checked():
    known = {
        "workflow",
        "workflow-part",
        "roster",
        "monitoring",
        "budgets",
        "dataset",
        "yaml",
        "shell",
        "shell-run",
        "python",
    }
    unmarked = [str(b) for b in BLOCKS if b.kind not in known]
    assert unmarked == [], "add a <!-- check: ... --> line above each (see tests/test_docs.py)"
    assert len(BLOCKS) >= 20  # the parser found the pages' blocks
    assert {b.page for b in BLOCKS} >= {"README.md", "docs/templates.md", "docs/tour.md"}
    assert all(b.arg for b in BLOCKS if b.kind in {"yaml", "workflow-part"})
    assert {b.arg for b in BLOCKS if b.kind == "workflow-part"} <= set(CONTEXTS)


def test_the_marker_parser_finds_a_block_without_its_marker():
    text = "intro\n\n```yaml\na: 1\n```\n\n<!-- check: yaml other tool -->\n```yaml\nb: 2\n```\n"
    found = blocks(text, "docs/page.md")
    assert [(b.line, b.kind, b.arg) for b in found] == [(3, "", ""), (8, "yaml", "other tool")]
    assert str(found[0]) == "docs/page.md:3 (yaml, check: )"


def test_the_readme_keeps_exactly_the_two_commands():
    first = next(b for b in BLOCKS if b.page == "README.md")
    assert (first.kind, commands(first.text)) == ("shell", [["make", "run"], ["make", "test"]])


# --- YAML ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_dags(tmp_path_factory) -> Path:
    """The bundled dags folder with the pages' roster blocks merged into its roster (a block shown on two
    pages, once). Its workflows are the pages' (none of the bundled ones, so nor their datasets)."""
    dags = tmp_path_factory.mktemp("docs") / "dags"
    shutil.copytree(DAGS, dags, ignore=shutil.ignore_patterns("__pycache__", "workflows", "evals"))
    (dags / "workflows").mkdir()
    roster = yaml.safe_load((DAGS / "agents.yaml").read_text())
    for text in dict.fromkeys(b.text for b in _ids("roster")):
        part = yaml.safe_load(text)
        assert set(part) <= {"agents", "skills"}, f"{text}: a roster part has agents: and/or skills:"
        roster["agents"] += part.get("agents", [])
        roster.setdefault("skills", {}).update(part.get("skills", {}))
    (dags / "agents.yaml").write_text(yaml.safe_dump(roster, sort_keys=False))
    return dags


def _validate(dags: Path, name: str, template: dict, capsys) -> str:
    from baton.cli import main as baton

    path = dags / "workflows" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    status = baton(["validate", str(path), "--agents", str(dags / "agents.yaml")])
    printed = capsys.readouterr().out
    assert status == 0, printed
    return printed


def test_the_roster_blocks_load_with_the_bundled_roster(docs_dags):
    from baton.spec.loading import load_roster

    roster = load_roster(docs_dags / "agents.yaml", root=docs_dags)
    names = {agent.name for agent in roster.agents}
    for block in _ids("roster"):
        part = yaml.safe_load(block.text)
        assert {a["name"] for a in part.get("agents", [])} <= names, str(block)
        assert set(part.get("skills", {})) <= set(roster.skills), str(block)
    assert not roster.broken, roster.issues


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "workflow"], ids=str)
def test_a_whole_template_validates(block, docs_dags, capsys):
    template = yaml.safe_load(block.text)
    _validate(docs_dags, template["workflow"], template, capsys)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "workflow-part"], ids=str)
def test_a_part_of_a_template_validates_in_its_context(block, docs_dags, capsys):
    part = yaml.safe_load(block.text)
    rollout = part.get("rollout") if isinstance(part, dict) else None
    name = rollout["to"].split(".v")[0] if rollout else f"docs_{block.arg}"
    template = {
        "workflow": name,
        "version": 1,
        "description": "the documentation",
        "owner": "docs",
        **CONTEXTS[block.arg],
    }
    if isinstance(part, list):  # steps
        template["steps"] = [*template.get("steps", []), *part]
    else:
        for key, value in part.items():
            template[key] = (
                {**template[key], **value} if isinstance(value, dict) and key in template else value
            )
    if rollout:
        new = {k: v for k, v in template.items() if k != "rollout"} | {"version": 2}
        (docs_dags / "versions").mkdir(exist_ok=True)
        (docs_dags / "versions" / rollout["to"]).write_text(yaml.safe_dump(new, sort_keys=False))
    _validate(docs_dags, name, template, capsys)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "monitoring"], ids=str)
def test_a_monitoring_file_loads_as_the_monitor_loads_it(block, tmp_path):
    from baton.spec.monitoring import Monitoring, load_config

    (tmp_path / "monitoring.yaml").write_text(block.text)
    assert load_config(tmp_path) != Monitoring(), f"{block} changes nothing"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "budgets"], ids=str)
def test_a_budgets_file_loads_as_a_task_loads_it(block, tmp_path):
    from baton.budgets.config import budgets_of

    (tmp_path / "budgets.yaml").write_text(block.text)
    assert budgets_of(tmp_path), f"{block} declares no budget"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "dataset"], ids=str)
def test_a_dataset_fits_its_bundled_workflow_as_baton_validate_checks_it(block, tmp_path):
    from baton.spec.evals_checks import folder_datasets
    from baton.spec.loading import read_roster, read_workflow

    name = yaml.safe_load(block.text)["dataset"]
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / f"{name}.yaml").write_text(block.text)
    bundled = Path(__file__).resolve().parents[1] / "dags"
    workflow, _ = read_workflow(
        bundled / "workflows" / f"{name}.yaml", read_roster(bundled / "agents.yaml")[0]
    )
    assert folder_datasets(tmp_path, {name: workflow}) == [], str(block)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "yaml"], ids=str)
def test_other_yaml_parses(block):
    assert isinstance(yaml.safe_load(block.text), dict), str(block)


# --- shell ---------------------------------------------------------------------------------------


def commands(text: str) -> list[list[str]]:
    """The block's commands as argument lists: continuations joined, comments dropped, `<placeholders>`
    filled, a pipeline cut into its commands, ``NAME=$(...)`` reduced to what it runs."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        line = PLACEHOLDER.sub("x", line)
        line = re.sub(r"^\w+=\$\((.*)\)\s*$", r"\1", line.strip())
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("|") if "|" in words else len(words)
            found.append(words[:cut])
            words = words[cut + 1 :]
    return [c for c in found if c]


def _option(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        if word in names and i + 1 < len(words):
            return words[i + 1]
    return None


@pytest.fixture(scope="module")
def rest_routes():
    from airflow.api_fastapi.auth.managers.simple.routes.login import login_router
    from airflow.api_fastapi.core_api.routes.public import public_router

    from baton.plugin.api import app

    routes = [(r.path, r) for r in public_router.routes]
    routes += [("/auth" + r.path, r) for r in login_router.routes]
    routes += [("/baton" + r.path, r) for r in app.routes if getattr(r, "methods", None)]  # Baton's API
    return routes


def _check_curl(words: list[str], routes) -> None:
    method = (_option(words, "-X") or "GET").upper()
    url = next(w for w in words[1:] if w.startswith(("localhost", "http")))
    path = "/" + url.split("/", 1)[1] if url.startswith("localhost") else "/" + url.split("/", 3)[3]
    matches = [
        route
        for pattern, route in routes
        if method in route.methods and re.fullmatch(re.sub(r"\{[^/]+\}", r"[^/]+", pattern), path)
    ]
    assert matches, f"no {method} {path} in Airflow's REST API"
    if (body := _option(words, "-d", "--data")) is not None:
        data = json.loads(body)
        field = matches[0].body_field
        if field is not None:  # the route's own body model takes it
            from pydantic import TypeAdapter

            TypeAdapter(field.field_info.annotation).validate_python(data)


def _check_command(words: list[str], routes, makefile: str) -> None:
    tool, args = words[0], words[1:]
    if tool == "baton":
        from baton.cli import parser

        parser(args).parse_args(args)
    elif tool == "airflow":
        from airflow.cli.cli_parser import get_parser

        get_parser().parse_args(args)
        if (extra := _option(args, "--conn-extra")) is not None:
            json.loads(extra)
    elif tool == "curl":
        _check_curl(words, routes)
    elif tool == "make":  # its targets, and its variables (NAME=value) each used by the Makefile as $(NAME)
        targets = [t for t in args if "=" not in t]
        assert all(re.search(rf"^{re.escape(t)}:", makefile, re.M) for t in targets), words
        assert all(f"$({t.split('=')[0]})" in makefile for t in args if "=" in t), words
    elif tool == "git":  # a template as it was: git show <rev>:<path of the repository>
        assert args[0] == "show" and (ROOT / args[1].split(":", 1)[1]).is_file(), words
    elif tool in {"source", "bash", ".venv/bin/python", "cp"}:
        assert (ROOT / args[0]).is_file(), f"{args[0]} is not a file of the repository"
    elif tool == "python3":  # reads the token out of the JSON answer
        assert args[0] == "-c" and compile(args[1], "<docs>", "exec")
    elif tool == "export":  # settings: NAME=value, each a setting Airflow or OpenTelemetry reads
        for arg in args:
            name, _, value = arg.partition("=")
            assert (
                name.isidentifier()
                and value
                and name.startswith(("AIRFLOW__", "OTEL_", "BATON_", "AIRFLOW_CONN_"))
            ), arg
            if name.startswith(
                "AIRFLOW_CONN_"
            ):  # a connection as Airflow reads it from the environment: JSON
                assert json.loads(value)["conn_type"], arg
    elif tool == "pip":  # installs Baton's wheel, as docs/install.md says to
        assert args[0] == "install" and all(a.endswith(".whl") or a.startswith("-") for a in args[1:]), words
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        wheels = [a for a in args if a.endswith(".whl")]
        assert all(Path(a).name == f"baton-{version}-py3-none-any.whl" for a in wheels), (words, version)
    elif tool == "uv":  # builds the wheel: the repository's build (pyproject.toml, setup.py)
        assert args[:2] == ["build", "--wheel"] and args[-1] == "." and (ROOT / "setup.py").is_file(), words
    elif tool in ("pg_dump", "pg_restore"):  # the options tests/ops/test_backup.py runs
        from tests.ops.test_backup import DUMP, RESTORE  # (the test module imports Baton's store: only here)

        options = [a for a in args if a.startswith("--") and not a.startswith(("--file=", "--dbname="))]
        assert [tool, *options] == (DUMP if tool == "pg_dump" else RESTORE), words
    elif tool == "createdb":
        assert len(args) == 1 and args[0].isidentifier(), words
    elif tool == "docker":
        assert args[:2] in (["compose", "up"], ["compose", "config"]), words  # tests/deploy checks the file
    else:
        raise AssertionError(f"no check for `{tool}`: add one to tests/test_docs.py")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind.startswith("shell")], ids=str)
def test_every_shell_command_parses(block, rest_routes):
    makefile = (ROOT / "Makefile").read_text()
    found = commands(block.text)
    assert found, str(block)
    for words in found:
        try:
            _check_command(words, rest_routes, makefile)
        except SystemExit as exit:  # argparse refuses
            raise AssertionError(f"{block}: `{shlex.join(words)}` does not parse") from exit


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "shell-run"], ids=str)
def test_the_baton_commands_that_read_templates_run(block, capsys):
    from baton.cli import main as baton

    ran = 0
    for words in commands(block.text):
        if words[0] == "baton" and words[1] in READ_ONLY:
            assert baton(words[1:]) == 0, capsys.readouterr().out
            ran += 1
    assert ran, f"{block} has no command to run"


def test_the_shell_check_refuses_what_does_not_parse(rest_routes):
    makefile = (ROOT / "Makefile").read_text()
    with pytest.raises(SystemExit):
        _check_command(["baton", "validat"], rest_routes, makefile)
    with pytest.raises(AssertionError, match=r"no POST /api/v2/dags/x/dagRunz"):
        _check_curl(["curl", "-X", "POST", "localhost:8080/api/v2/dags/x/dagRunz"], rest_routes)
    with pytest.raises(json.JSONDecodeError):
        _check_curl(
            ["curl", "-X", "POST", "localhost:8080/api/v2/dags/x/dagRuns", "-d", "{conf: 1}"], rest_routes
        )
    with pytest.raises(AssertionError, match="no check for `rm`"):
        _check_command(["rm", "-rf", "/"], rest_routes, makefile)


# --- Python --------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "python"], ids=str)
def test_python_blocks_are_the_tested_file_or_compile_with_installed_imports(block):
    if block.arg:
        assert block.text == (ROOT / block.arg).read_text(), f"{block} differs from {block.arg}"
        return
    tree = ast.parse(block.text)
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules, str(block)
    missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert missing == [], f"{block} imports what is not installed"


# --- the site, the front door, the images ------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)|<img\b(?P<attrs>[^>]*)>")


def _outside_code(text: str) -> str:
    """The page without its fenced blocks and inline code, where a link or an image is only an example."""
    text = re.sub(r"^\s*```.*?^\s*```\s*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(page: Path) -> set[str]:
    """The heading ids MkDocs gives a page (Python-Markdown's toc slugify; GitHub's agrees on these)."""
    headings = re.findall(r"^#{1,6} (.+?)\s*$", _outside_code(page.read_text()), flags=re.M)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in headings}


def broken_front_door_links(text: str, root: Path = ROOT) -> list[str]:
    """README links that do not open a page of the site: each must be docs/<page>.md (with an anchor that
    page has) or CHANGELOG.md, both relative so they work on GitHub too; links out (http) are free."""
    broken = []
    for match in LINK.finditer(_outside_code(text)):
        target = match["target"]
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        page = root / path
        if not (path == "CHANGELOG.md" or (path.startswith("docs/") and path.endswith(".md"))):
            broken.append(f"{target}: not a page of the documentation (link docs/<page>.md)")
        elif not page.is_file():
            broken.append(f"{target}: no such page")
        elif anchor and anchor not in _anchors(page):
            broken.append(f"{target}: {path} has no heading #{anchor}")
    return broken


def missing_images(page: Path) -> list[str]:
    """Images a page shows (Markdown or <img>) whose file is not there, or that say nothing to a reader
    who cannot see them (no alt text)."""
    missing = []
    for match in IMAGE.finditer(_outside_code(page.read_text())):
        if match["attrs"] is not None:
            src = re.search(r'\bsrc="([^"]+)"', match["attrs"])
            alt = re.search(r'\balt="([^"]+)"', match["attrs"])
            src, alt = (src and src[1]) or "", alt and alt[1]
        else:
            src, alt = match["src"], match["alt"]
        if src.startswith(("http://", "https://")):
            missing.append(f"{page.name}: {src}: an image from elsewhere (keep it in docs/img)")
        elif not src or not (page.parent / src).is_file():
            missing.append(f"{page.name}: {src}: no such file")
        if not alt:
            missing.append(f"{page.name}: {src}: no alt text")
    return missing


def test_the_readme_is_the_front_door_under_300_lines_linking_to_pages_that_exist():
    text = README.read_text()
    assert len(text.splitlines()) < README_LINES, "README.md is the front door: move the detail to docs/"
    assert broken_front_door_links(text) == []
    linked = {m["target"].partition("#")[0] for m in LINK.finditer(_outside_code(text))}
    assert {"docs/install.md", "docs/tour.md", "docs/templates.md"} <= linked


def test_the_front_door_check_finds_links_that_go_nowhere(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "tour.md").write_text("# A tour\n\n## Step one\n")
    text = (
        "[tour](docs/tour.md#step-one) [out](https://example.com) `[code](nowhere.md)`\n"
        "[gone](docs/gone.md) [anchor](docs/tour.md#step-two) [source](include/baton/plan.py)\n"
    )
    assert broken_front_door_links(text, tmp_path) == [
        "docs/gone.md: no such page",
        "docs/tour.md#step-two: docs/tour.md has no heading #step-two",
        "include/baton/plan.py: not a page of the documentation (link docs/<page>.md)",
    ]


@pytest.mark.parametrize(
    "page", [p for p in PAGES if p.exists()], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_every_image_a_page_shows_exists(page):
    assert missing_images(page) == []


def test_the_image_check_finds_a_missing_file_and_a_missing_alt(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG")
    page = tmp_path / "page.md"
    page.write_text(
        '![A](img/a.png) ![](img/a.png) ![B](img/b.png) <img src="img/a.png" alt="A">\n'
        '<img src="img/c.png" width="49%"> ![C](https://example.com/c.png)\n```\n![D](img/d.png)\n```\n'
    )
    assert missing_images(page) == [
        "page.md: img/a.png: no alt text",
        "page.md: img/b.png: no such file",
        "page.md: img/c.png: no such file",
        "page.md: img/c.png: no alt text",
        "page.md: https://example.com/c.png: an image from elsewhere (keep it in docs/img)",
    ]


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its successor, not ours
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_site_builds_strict_with_every_page_in_its_nav(tmp_path):
    built = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    pages = {p.relative_to(ROOT / "docs").with_suffix(".html") for p in (ROOT / "docs").rglob("*.md")}
    assert {p for p in pages if not (tmp_path / "site" / p).is_file()} == set()
    changelog = (tmp_path / "site" / "changelog.html").read_text()
    assert _anchors(ROOT / "CHANGELOG.md") <= set(re.findall(r'<h\d id="([^"]+)"', changelog))  # included


def _planted_site(tmp_path: Path, pages: dict[str, str], nav: list) -> Path:
    """mkdocs.yml's settings over a planted docs folder (its hook named by its path in this repository)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in pages.items():
        (docs / name).write_text(text)
    hooks = [str(ROOT / hook) for hook in config["hooks"]]
    config |= {"docs_dir": str(docs), "nav": nav, "hooks": hooks}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return tmp_path / "mkdocs.yml"


def test_the_strict_build_fails_on_a_broken_link_an_unknown_anchor_and_a_page_left_out(tmp_path):
    pages = {"index.md": "# Home\n\n[gone](gone.md) [nowhere](#nowhere)\n", "forgotten.md": "# Forgotten\n"}
    built = _mkdocs_build(_planted_site(tmp_path, pages, [{"Home": "index.md"}]), tmp_path / "site")
    assert built.returncode == 1
    assert "contains a link 'gone.md', but the target is not found" in built.stderr
    assert "contains a link '#nowhere', but there is no such anchor on this page" in built.stderr
    assert "forgotten.md" in built.stderr and 'not included in the "nav"' in built.stderr


def test_the_changelog_page_is_the_root_changelog_with_its_links_into_docs_checked(tmp_path):
    pages = {"changelog.md": "# Changelog\n\nReplaced by CHANGELOG.md.\n", "upgrading.md": "# Upgrading\n"}
    nav = [{"Changelog": "changelog.md"}, {"Upgrading": "upgrading.md"}]
    config = _planted_site(tmp_path, pages, nav)
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## 1.0\n\n[Upgrade](docs/upgrading.md#upgrading)\n"
    )
    built = _mkdocs_build(config, tmp_path / "site")
    assert built.returncode == 0, built.stderr
    page = (tmp_path / "site" / "changelog.html").read_text()
    assert 'href="upgrading.html#upgrading"' in page and "Replaced by" not in page
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n[Gone](docs/gone.md)\n")
    built = _mkdocs_build(config, tmp_path / "site")
    assert built.returncode == 1
    assert "'changelog.md' contains a link 'gone.md', but the target is not found" in built.stderr
