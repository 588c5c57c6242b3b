"""``baton validate``: every problem of every template (and of the roster, of ``budgets.yaml`` and
``monitoring.yaml`` beside it, and of the evaluation datasets in ``evals/``), each file as soon as it is
checked; a crash while checking one file is that file's error, never the end of the command."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from baton.cli.common import add_command, dags_folder
from baton.cli.shard_checks import loader_issues, parse_time_warnings, seconds_each
from baton.compile.loader import rollout_issues
from baton.errors import Issue, TemplateError
from baton.extensions import load
from baton.spec import lint
from baton.spec.budgets import FILE as BUDGETS_FILE
from baton.spec.budgets import load_budgets
from baton.spec.checks.egress import egress_findings
from baton.spec.evals_checks import folder_datasets
from baton.spec.loading import Source, read_roster, read_workflow, template_files
from baton.spec.monitoring import FILE as MONITORING_FILE
from baton.spec.monitoring import read_monitoring
from baton.spec.rollout import VERSIONS_DIR
from baton.spec.roster import Roster


def add(commands: Any) -> None:
    check = add_command(commands, "validate")
    check.add_argument(
        "paths", nargs="*", help="template files or folders (default: the dags folder's workflows)"
    )
    check.add_argument(
        "--agents",
        type=Path,
        help="the roster (default: agents.yaml of the dags folder); budgets.yaml and monitoring.yaml beside "
        "it are checked too",
    )
    check.add_argument(
        "--format", choices=["text", "json"], default="text", help="json: one object per file, per line"
    )
    check.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    paths = args.paths or [str(dags_folder() / "workflows")]
    return validate(paths, args.agents or dags_folder() / "agents.yaml", args.format)


def _template_paths(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files += template_files(path) if path.is_dir() else [path]
    return files


class _Report:
    """Prints what ``baton validate`` finds as it finds it: a line per problem (``text``), or a JSON object
    per file and one for the summary (``json``, one per line)."""

    def __init__(self, fmt: str):
        self.fmt = fmt

    def file(self, name: str, issues: list[Issue], warnings: list[str] = ()) -> None:
        if self.fmt == "json":
            print(
                json.dumps(
                    {
                        "file": name,
                        "ok": not issues,
                        "issues": [{**asdict(issue), "text": str(issue)} for issue in issues],
                        "warnings": list(warnings),
                    }
                ),
                flush=True,
            )
            return
        for line in [*map(str, issues), *warnings]:
            print(line, flush=True)

    def summary(
        self, checked: int, broken: int, errors: int, warned: int, roster_ok: bool, broken_configs: list[str]
    ) -> None:
        if self.fmt == "json":
            print(
                json.dumps(
                    {
                        "summary": {
                            "checked": checked,
                            "with_errors": broken,
                            "errors": errors,
                            "warnings": warned,
                            "roster_ok": roster_ok,
                            "configs_ok": not broken_configs,
                        }
                    }
                ),
                flush=True,
            )
            return
        print(
            f"{checked} template(s) checked, {broken} with errors, {errors} error(s) in all"
            + (f", {warned} warning(s)" if warned else "")
            + ("" if roster_ok else "; the roster has errors")
            + "".join(f"; {name} has errors" for name in broken_configs),
            flush=True,
        )


def _checked(path: Path, roster: Any, deprecated: list[str] | None = None) -> tuple[Any, list[Issue]]:
    """(the workflow, None when broken; its problems): a crash while checking is this file's error,
    never the end of the command. The deprecated forms it uses go to ``deprecated`` (one line each)."""
    if not path.is_file():
        return None, [Issue(str(path), "", "no such file", "name a template file or a folder of them")]
    try:
        workflow, notices = read_workflow(path, roster)
    except TemplateError as error:
        return None, error.issues
    except Exception as error:  # RecursionError, MemoryError, a bug: this file's error only
        return None, [Issue(str(path), "", f"{type(error).__name__}: {error}"[:2000], BUG)]
    if deprecated is not None:
        deprecated += [_warning(notice) for notice in notices]
    return workflow, []


BUG = "this is a Baton bug; please report it with the file"


def _rollout(path: Path, workflow: Any, roster: Any, deprecated: list[str]) -> list[Issue]:
    """The problems of the version ``workflow`` rolls out to (``../versions/<file>``), if it rolls out (its
    deprecated forms to ``deprecated``)."""
    if workflow.rollout is None:
        return []
    target = path.parent.parent / VERSIONS_DIR / workflow.rollout.to
    if not target.is_file():
        fix = f"put the new version's template at {target}, or remove 'rollout'"
        return [Issue(str(path), "rollout.to", f"there is no file {target}", fix)]
    canary, issues = _checked(target, roster, deprecated)
    return issues if canary is None else rollout_issues(workflow, canary, str(path), str(target))


def _roster(agents: Path) -> tuple[Any, list[Issue], list[str]]:
    """The roster (None when it cannot be read as one), its problems, and its deprecated forms (a warning
    line each)."""
    if not agents.exists():
        return Roster(), [], []
    try:
        roster, notices = read_roster(agents)
    except TemplateError as error:
        return None, error.issues, []
    except Exception as error:
        return None, [Issue(str(agents), "", f"{type(error).__name__}: {error}", BUG)], []
    return roster, roster.issues, [_warning(notice) for notice in notices]


CONFIGS = {BUDGETS_FILE: load_budgets, MONITORING_FILE: read_monitoring}
"""The other files a user writes in the dags folder, each read by the spec's loader like a template."""


def _configs(folder: Path) -> list[tuple[Path, list[Issue]]]:
    """Each of ``CONFIGS`` in ``folder`` (the roster's) that is there and has problems, with them."""
    found = []
    for name, read in CONFIGS.items():
        path = folder / name
        if not path.exists():
            continue
        try:
            read(path)
        except TemplateError as error:
            found.append((path, error.issues))
        except Exception as error:  # a bug: this file's error only
            found.append((path, [Issue(str(path), "", f"{type(error).__name__}: {error}"[:2000], BUG)]))
    return found


def _warning(notice: Any) -> str:
    """A deprecated form's line among ``baton validate``'s warnings."""
    return f"{notice.file}:{notice.line}: warning: {notice.text}"


def validate(paths: list[str], agents: Path, fmt: str = "text") -> int:
    """Print every problem of every template (and of the roster, budgets.yaml and monitoring.yaml beside
    it), each file as soon as it is checked; 1 if there is any. A deprecated form is a warning (file, line,
    key path, fix), not an error."""
    # long: one report over every file of the folder: templates, roster, configs, shard files, then the warnings
    report = _Report(fmt)
    errors = 0
    broken_extensions = [Issue(e.source, "", str(e)) for e in load()]  # their skills are unknown: say why
    if broken_extensions:
        report.file("(extensions)", broken_extensions)
        errors += len(broken_extensions)
    roster, roster_issues, deprecated = _roster(agents)
    if roster_issues or deprecated:
        report.file(str(agents), roster_issues, deprecated)
        errors += len(roster_issues)
    broken_configs = []
    for path, issues in _configs(agents.parent):
        report.file(str(path), issues)
        errors += len(issues)
        broken_configs.append(path.name)
    for path, issues in loader_issues(agents.parent):
        report.file(str(path), issues)
        errors += len(issues)
    files = _template_paths(paths)
    broken = 0
    loaded = {}
    took = []  # seconds each template took to check: what compiling it costs a parse, less building its DAG
    for path in files:
        old_forms: list[str] = []
        started = time.perf_counter()
        workflow, issues = _checked(path, roster, old_forms)
        if workflow is not None:
            loaded[path] = workflow
            issues = _rollout(path, workflow, roster, old_forms)  # the version it rolls out to (its issues)
        took.append(time.perf_counter() - started)
        broken += bool(issues)
        errors += len(issues)
        report.file(str(path), issues, old_forms)
        deprecated += old_forms
    dataset_warnings: list[str] = []  # the steps an evaluation would run for real (a skill that posts)
    by_id = {w.workflow: w for w in loaded.values()}
    for path, issues in folder_datasets(agents.parent, by_id, roster, dataset_warnings):
        report.file(str(path), issues)  # evals/<workflow>.yaml: each case against its template
        errors += len(issues)
        broken_configs.append(f"{path.parent.name}/{path.name}")
    found_warnings = (
        warnings(loaded, agents)
        + egress_warnings(loaded, roster)
        + model_connection_warnings(roster, agents)
        + plugin_copy_warnings()
        + parse_time_warnings(agents.parent, seconds_each(took, loaded, roster))
        + dataset_warnings
    )
    if found_warnings:
        report.file("(across templates)", [], found_warnings)
    roster_ok = roster is not None and not roster.issues
    report.summary(
        len(files), broken, errors, len(found_warnings) + len(deprecated), roster_ok, broken_configs
    )
    return 1 if errors else 0


def warnings(workflows: dict[Path, Any], agents: Path | None = None) -> list[str]:
    """What is valid but probably wrong across the templates: an asset no workflow emits (its
    workflow never runs by itself), a sensor whose database connection is not defined here; and
    (``baton.spec.lint``) an allowlist entry as broad as a public suffix, credential-shaped text."""
    emitted = sorted({emit.asset for w in workflows.values() for step in w.steps for emit in step.emits})
    found = []
    for path, workflow in workflows.items():
        trigger = workflow.trigger
        for index, name in enumerate((trigger.asset or []) if trigger else []):
            if name not in emitted:
                found.append(
                    f"{path}: trigger.asset[{index}]: warning: no workflow here emits asset '{name}', so "
                    f"'{workflow.workflow}' runs only when triggered by hand (fix: add `emits: {name}` to a "
                    f"step of the workflow that produces it; emitted here: {', '.join(emitted) or 'none'})"
                )
        if (
            trigger is not None
            and trigger.sensor is not None
            and not _connection_defined(trigger.sensor.spec.conn_id)
        ):
            conn_id = trigger.sensor.spec.conn_id
            found.append(
                f"{path}: trigger.sensor.{trigger.sensor.kind}.conn_id: warning: connection '{conn_id}' is "
                f"not defined here, so the sensor will fail (fix: create it in Admin > Connections or set "
                f"AIRFLOW_CONN_{conn_id.upper()} to the business database's URI)"
            )
    return found + [str(issue) for issue in lint.warnings(list(workflows), agents)]


def egress_warnings(workflows: dict[Path, Any], roster: Any) -> list[str]:
    """An ``http_post`` URL whose host is fixed in the template where every run's post would be refused by
    the roster's egress policy (``baton.spec.checks.egress``)."""
    found = []
    for path, workflow in workflows.items():
        findings = list(egress_findings(workflow, roster))
        if findings:
            source = Source(path)
            source.parse()  # (read again only for a template with a finding: its lines, for the messages)
            found += [str(source.issue(loc, f"warning: {message}", fix)) for loc, message, fix in findings]
    return found


def _connection_defined(conn_id: str) -> bool:
    """Whether Airflow can resolve the connection from this process (environment, secrets backend or
    metadata database); a lookup that cannot even be tried counts as defined (no false warning)."""
    if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return True
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return False
    except Exception:
        return True
    return True


def model_connection_warnings(roster: Any, agents: Path) -> list[str]:
    """An LLM agent whose connection is not defined here: each of its steps will fail (no offline model
    answers in its place unless a connection names it)."""
    found, defined = [], {}  # one look-up per connection, however many agents share it
    for index, agent in enumerate(roster.agents if roster is not None else []):
        conn_id = agent.llm_conn_id
        if conn_id and conn_id not in defined:
            defined[conn_id] = _connection_defined(conn_id)
        if conn_id and not defined[conn_id]:
            found.append(
                f"{agents}: agents[{index}].llm_conn_id: warning: connection '{conn_id}' of agent '{agent.name}' "
                f"is not defined here, so its steps will fail (fix: create it, e.g. `airflow connections add "
                f'{conn_id} --conn-type pydanticai --conn-extra \'{{"model": "openai:gpt-5-mini"}}\'`, or '
                f'with {{"model": "baton:offline"}} for Baton\'s offline model)'
            )
    return found


def plugin_copy_warnings() -> list[str]:
    """A copy of Baton's plugin in Airflow's plugins folder (0.1's instructions had one copied there): Airflow
    loads the folder's plugins first, so the copy is what runs and the installed package's plugin is skipped
    as a second 'baton'."""
    try:
        from airflow.configuration import conf  # where Airflow looks: only when asked to validate

        folder = Path(conf.get("core", "plugins_folder"))
    except Exception:  # no Airflow configuration to read here: nothing to say
        return []
    found = []
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        try:
            text = path.read_bytes()[:50_000]
        except OSError:
            continue
        if b"from baton.plugin import listener" in text and b"class BatonPlugin" in text:
            found.append(
                f"{path}: warning: a copy of Baton's plugin; Airflow loads it instead of the installed "
                "package's, whose pages and API may have changed since (fix: delete it: installing Baton "
                "registers the plugin)"
            )
    return found
