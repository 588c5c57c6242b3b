"""``baton eval WORKFLOW``: run a workflow's evaluation dataset (``evals/<workflow>.yaml``) through its
compiled steps (:mod:`baton.evaluate`), report each case and each check, and, for a new version (``--file``
or ``--version``) or one arm of a step's variants (``--variant``), compare it with the stable template on the
same cases; ``--record`` appends the result to Baton's store, where a gated rollout or variant reads it.

Exit codes: 0 the dataset passes (every check, or with a new version: no regression beyond the dataset's
``tolerance``); 1 it does not; 2 the dataset, the templates or the arguments are wrong (nothing ran); 3 it
ran but ``--record`` could not write its result to Baton's store.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import baton.skills  # noqa: F401  (registers Baton's own skills, which the templates it reads may name)
from baton.cli.common import add_command, dags_folder
from baton.coordination.judging import Judge
from baton.errors import Issue, TemplateError
from baton.evaluate.report import as_json, as_text, evaluation_event
from baton.evaluate.run import Version, run_versions
from baton.evaluate.score import compare
from baton.events.store import EventStore
from baton.spec.evals import DIR, Dataset, load_dataset, version_digest
from baton.spec.evals_checks import dataset_issues, unrecorded
from baton.spec.expect import judge_problem
from baton.spec.loading import read_roster, read_workflow, template_path
from baton.spec.rollout import VERSIONS_DIR

MAX_WORKERS = 8


def add(commands: Any) -> None:
    command = add_command(commands, "eval")
    command.add_argument("workflow", help="the workflow whose dataset runs (evals/<workflow>.yaml)")
    new = command.add_mutually_exclusive_group()
    new.add_argument("--file", type=Path, help="a new version's template file, compared with the stable one")
    new.add_argument(
        "--version",
        type=int,
        help="the version N of versions/<workflow>.vN.yaml, compared with the stable one",
    )
    new.add_argument(
        "--variant",
        metavar="STEP:ARM",
        help="one arm of a step's variants in the stable template, compared with the template as written",
    )
    command.add_argument(
        "--against",
        choices=["stable", "none"],
        default="stable",
        help="compare a new version with the stable one (default), or run the new version alone",
    )
    command.add_argument("--dataset", type=Path, help="the dataset file (default: evals/<workflow>.yaml)")
    command.add_argument("--agents", type=Path, help="the roster (default: agents.yaml of the dags folder)")
    command.add_argument(
        "--workers",
        type=int,
        default=1,
        help=f"cases run at once, each share of them in a process of its own: 1 to {MAX_WORKERS} (default 1)",
    )
    command.add_argument(
        "--format", choices=["text", "json"], default="text", help="json: one object, for CI"
    )
    command.add_argument(
        "--record",
        action="store_true",
        help="record the result in Baton's store (evaluation.completed): a rollout of a workflow that has a "
        "dataset starts once its new version passed against the stable one",
    )
    command.set_defaults(run=_run)


class Refused(Exception):
    """What is wrong before anything runs: the lines to print."""


def _template(folder: Path, workflow: str) -> Path:
    found = template_path(folder / "workflows", workflow)
    if found is None:
        raise Refused(
            f"{folder / 'workflows'}: there is no template '{workflow}' (fix: name a workflow of the folder)"
        )
    return found


def _new_version(args: argparse.Namespace, folder: Path) -> Path | None:
    if args.file is not None:
        if not args.file.is_file():
            raise Refused(f"{args.file}: no such file (fix: name the new version's template file)")
        return args.file
    if args.version is not None:
        path = folder / VERSIONS_DIR / f"{args.workflow}.v{args.version}.yaml"
        if not path.is_file():
            raise Refused(f"{path}: no such file (fix: put version {args.version} there, or pass --file)")
        return path
    return None


Checked = tuple[Version, list[str], list[str]]


def _arm(given: str, stable: Path, roster: Any) -> tuple[str, str]:
    """(step, arm) of ``--variant STEP:ARM``: a step of the stable template with ``variants`` and one of its arms."""
    step_id, _, arm = given.partition(":")
    try:
        workflow, _ = read_workflow(stable, roster)
    except TemplateError as error:
        raise Refused("\n".join(map(str, error.issues))) from None
    with_variants = {s.id: s.variants for s in workflow.steps if s.variants is not None}
    if step_id not in with_variants:
        steps = ", ".join(with_variants) or "none"
        raise Refused(
            f"--variant {given[:200]}: no step '{step_id[:100]}' with variants (fix: name one of: {steps})"
        )
    if arm not in with_variants[step_id].arms:
        arms = ", ".join(with_variants[step_id].arms)
        raise Refused(
            f"--variant {given[:200]}: step '{step_id}' has no arm '{arm[:100]}' (fix: name one of: {arms})"
        )
    return step_id, arm


def _checked(version: Version, roster: Any, dataset: Dataset, source: Any, workflow_id: str) -> Checked:
    """The version with its number and digest, the problems of its template and of the dataset against it,
    and the warnings (the steps an evaluation runs for real), as lines."""
    path = version.template
    try:
        workflow, _ = read_workflow(path, roster)
    except TemplateError as error:
        return version, [str(issue) for issue in error.issues], []
    if workflow.workflow != workflow_id:
        wrong = Issue(
            str(path), "workflow", f"is '{workflow.workflow}', not '{workflow_id}'", "name the same workflow"
        )
        return version, [str(wrong)], []
    problems = [str(issue) for issue in dataset_issues(dataset, source, workflow)]
    warnings = [f"{source.path}: cases: warning: {line}" for line in unrecorded(dataset, workflow, roster)]
    return replace(version, number=workflow.version, digest=version_digest(workflow)), problems, warnings


def _plan(args: argparse.Namespace) -> tuple[Dataset, Path, Path, list[Version], list[str], Judge | None]:
    """The dataset and its file, the roster, the versions to run (the new one first), the warnings and the
    judge of its rubrics; ``Refused`` when one is wrong."""
    if not 1 <= args.workers <= MAX_WORKERS:
        raise Refused(f"--workers {args.workers}: give 1 to {MAX_WORKERS}")
    folder = dags_folder()
    roster_path = args.agents or folder / "agents.yaml"
    path = args.dataset or template_path(folder / DIR, args.workflow)
    if path is None or not path.is_file():
        where = path or folder / DIR / f"{args.workflow}.yaml"
        fix = f"write the cases of '{args.workflow}' there, and check them with `baton validate`"
        raise Refused(f"{where}: no such dataset (fix: {fix})")
    try:
        dataset, source = load_dataset(path)
        roster = read_roster(roster_path)[0] if roster_path.is_file() else None
    except TemplateError as error:
        raise Refused("\n".join(map(str, error.issues))) from None
    if dataset.dataset != args.workflow:
        found = f"is '{dataset.dataset}', not '{args.workflow}'"
        raise Refused(
            f"{path}: dataset: {found} (fix: name the dataset's workflow, or pass its file with --dataset)"
        )
    stable = _template(folder, args.workflow)
    new = _new_version(args, folder)
    versions = [Version(f"v{args.version}" if args.version else "new", new)] if new is not None else []
    if args.variant is not None:
        step, arm = _arm(args.variant, stable, roster)
        versions, new = [Version(args.variant, stable, arms={step: arm})], stable
    if new is None or args.against == "stable":
        versions.append(Version("stable", stable))
    problems, warnings, checked = [], [], []
    for version in versions:
        version, found, warned = _checked(version, roster, dataset, source, args.workflow)
        checked.append(version)
        problems += found
        warnings += warned
    if problems:
        raise Refused("\n".join(problems))
    return dataset, path, roster_path, checked, warnings, _judge(dataset, path, roster, roster_path)


def _judge(dataset: Dataset, path: Path, roster: Any, roster_path: Path) -> Judge | None:
    """The judge of the dataset's rubrics (None: it has none); ``Refused`` when the roster lacks it."""
    if not dataset.rubrics():
        return None
    if roster is None:
        raise Refused(
            f"{path}: judge: no roster at {roster_path} names the judge (fix: pass it with --agents)"
        )
    if problem := judge_problem(dataset.judge or "", roster):
        raise Refused(f"{path}: judge: {problem[0]} (fix: {problem[1]})")
    return Judge(roster.get(dataset.judge or ""))


def _run(args: argparse.Namespace) -> int:
    try:
        dataset, dataset_path, roster, versions, warnings, judge = _plan(args)
    except Refused as refused:
        print(str(refused), flush=True)
        return 2
    for line in warnings:
        print(line, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="baton-eval-") as workdir:
        scores = run_versions(versions, dataset, roster, Path(workdir), args.workers, judge)
    comparison = None
    if len(versions) == 2:
        comparison = compare(scores[versions[0].label], scores["stable"], dataset.tolerance)
    failed = (
        comparison.regression
        if comparison
        else any(s.passed < len(s.results) for s in scores[versions[0].label])
    )
    spend = judge.spend() if judge is not None else None
    if args.format == "json":
        report = {**as_json(args.workflow, scores, comparison, failed), "judge": spend}
        print(json.dumps(report, default=str), flush=True)
    else:
        for line in as_text(args.workflow, [v.label for v in versions], scores, comparison):
            print(line, flush=True)
        if spend is not None:
            print(
                f"judge {spend['agent']}: {spend['calls']} call(s), {spend['tokens']:,} tokens, "
                f"cost {spend['cost']:.6g}",
                file=sys.stderr,
                flush=True,
            )
    if args.record:
        new = versions[0]
        event = evaluation_event(args.workflow, new, dataset_path, scores[new.label], comparison, failed)
        try:
            EventStore.from_airflow().append([event])
        except Exception as error:  # no store there, or not migrated: say so; the result stands above
            why = f"{type(error).__name__}: {error}"[:1000]
            fix = (
                ""
                if "baton db upgrade" in why
                else " (fix: `baton db upgrade` creates or migrates the store)"
            )
            print(f"the evaluation was not recorded in Baton's store: {why}{fix}", file=sys.stderr)
            return 3
        print(f"recorded: evaluation.completed of {args.workflow} v{new.number} ({event.run_id})", flush=True)
    return 1 if failed else 0
