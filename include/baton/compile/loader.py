"""The entry points of the two DAG files in dags/: healthy templates -> DAGs; broken ones -> import errors.

``baton_workflows.py`` gets one DAG per healthy template (``load_dags``); ``baton_template_errors.py``
gets the errors of the broken ones (``load_template_errors``). They are two files because Airflow
(3.3) marks every DAG of a file that has an import error stale and refuses to trigger it: a broken
template must not take the healthy DAGs down with it.

A growing folder never loses every DAG to Airflow's import timeout: shard files and a deadline
(``baton.compile.shards``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

from airflow.sdk import DAG, get_parsing_context

import baton.skills  # noqa: F401  (registers Baton's own skills, which templates and the roster may name)
from baton.compile import gates
from baton.compile.build import COMPENSATE_DAG_ID, SENSOR_SUFFIX, build_dag, compensate_dag, sensor_dag
from baton.compile.cache import Entry, SpecCache, default_folder
from baton.compile.shards import LOADER_FILE, Deadline, Loaders, Share
from baton.coordination.tasks import VERSION_TASK
from baton.errors import Issue, TemplateError
from baton.plan import WorkflowPlan, plan_workflow, step_reads
from baton.spec.deprecations import warn
from baton.spec.diff import diff
from baton.spec.loading import load_roster, read_workflow
from baton.spec.loading import template_files as spec_template_files
from baton.spec.models import Workflow
from baton.spec.reading import read_bytes
from baton.spec.rollout import VERSIONS_DIR
from baton.spec.roster import Roster

log = logging.getLogger(__name__)

ERRORS_DAG_ID = "baton_template_errors"
ROSTER_FILE = "agents.yaml"
WORKFLOWS_DIR = "workflows"


class TemplateErrorsDag(DAG):
    """Carries every broken template into the DAG processor, whose ``validate()`` call files them.

    The exception of a DAG's ``validate()`` becomes the import error of its file, shown in the UI and
    by ``airflow dags list-import-errors``. All broken templates go into this one DAG's error,
    because import errors are keyed by file and a second one would replace the first.
    """

    def validate(self):
        raise self.template_error  # type: ignore[attr-defined]


def template_files(dags_folder: Path) -> list[Path]:
    folder = dags_folder / WORKFLOWS_DIR
    return spec_template_files(folder) if folder.is_dir() else []


def read_roster(dags_folder: Path) -> tuple[Roster | None, TemplateError | None]:
    """The roster's healthy agents (None when the file cannot be read as a roster at all) and the
    problems of the rest: a broken agent fails only the workflows that name it."""
    path = dags_folder / ROSTER_FILE
    if not path.exists():
        return Roster(), None
    try:
        roster = load_roster(path, root=dags_folder)
    except TemplateError as error:
        return None, error
    return roster, TemplateError(roster.issues) if roster.issues else None


def _roster(dags_folder: Path) -> tuple[Roster | None, TemplateError | None, bytes]:
    """:func:`read_roster`, and the roster file's bytes (for the validation cache's key)."""
    roster, error = read_roster(dags_folder)
    path = dags_folder / ROSTER_FILE
    return roster, error, read_bytes(path, ROSTER_FILE) if roster is not None and path.exists() else b""


def healthy_workflows(dags_folder: Path) -> list[Workflow]:
    """The validated workflows of the healthy templates of ``dags_folder`` (from the validation cache when
    it can be); the broken ones are left out (the errors file names them)."""
    roster, _, roster_bytes = _roster(dags_folder)
    cache = SpecCache(default_folder())
    found = []
    try:
        for path in template_files(dags_folder):
            name = str(path.relative_to(dags_folder))
            try:
                workflow, _, _ = _checked(
                    path, dags_folder, roster, _key(cache, path, name, roster_bytes), cache, True
                )
            except TemplateError:
                continue
            found.append(workflow)
    finally:
        cache.flush()
    return found


class _Keyed(NamedTuple):
    """A template's key in the validation cache, its bytes when they were read for it, and what keying it
    by its bytes takes (its name, the roster's bytes)."""

    key: str
    data: bytes | None
    name: str
    roster: bytes


def _key(cache: SpecCache, path: Path, name: str, roster: bytes) -> _Keyed:
    """The template's key in the validation cache, from what ``stat`` says of it; from its bytes when
    the file changed too recently for that to be sure (then the bytes too, read once)."""
    if (key := cache.stat_key(name, path.stat(), roster)) is not None:
        return _Keyed(key, None, name, roster)
    data = read_bytes(path, name)
    return _Keyed(cache.key(name, data, roster), data, name, roster)


def _cached(cache: SpecCache, path: Path, keyed: _Keyed, whole: bool) -> tuple[Entry | None, bytes | None]:
    """What the cache knows of the template, and its bytes if they were read. A parse within ``RACY``
    seconds of the template's last write keyed it by its bytes; the next one keys it by ``stat``, misses,
    and finds it by its bytes (read anyway to validate it): known by ``stat`` from then on."""
    found = cache.get(keyed.key, whole=whole)
    if found is not None or keyed.data is not None:
        return found, keyed.data
    try:
        data = read_bytes(path, keyed.name)
    except TemplateError:
        return None, None  # validating it reads it again, and records why it cannot be read
    found = cache.get(cache.key(keyed.name, data, keyed.roster), whole=whole)
    if found is not None and (whole or found.issues is not None):  # a whole entry, or a broken one's
        cache.put(keyed.key, found)
    return found, data


def _errors_dag(errors: list[TemplateError], loaded: int) -> TemplateErrorsDag:
    files = sorted({issue.file for error in errors for issue in error.issues})
    summary = (
        f"{len(files)} Baton template file(s) could not be loaded ({loaded} healthy workflow(s) load from "
        f"baton_workflows.py): {', '.join(files)}. Run `baton validate` for the same list.\n"
    )
    dag = TemplateErrorsDag(dag_id=ERRORS_DAG_ID, schedule=None)
    dag.template_error = TemplateError([issue for error in errors for issue in error.issues])
    dag.template_error.args = (summary + str(dag.template_error),)
    return dag


def _checked(
    path: Path,
    dags_folder: Path,
    roster: Roster | None,
    keyed: _Keyed,
    cache: SpecCache,
    build: bool,
    announce: bool = False,
) -> tuple[Workflow | None, dict[str, tuple[str, ...]], str | None]:
    """The validated workflow of ``path``, what each step reads and the file of the version it rolls out
    to, from the cache when it can be (``keyed``: its key, and its bytes if they were read for the key).
    When no DAG is built, a template the cache knows to be healthy is not validated again: (None, {}, its
    rollout's file). ``announce``: its deprecated forms are warnings (where a DAG file builds its DAG)."""
    key = keyed.key
    found, data = _cached(cache, path, keyed, build)
    if found is not None:
        if found.issues is not None:
            raise TemplateError([Issue(**issue) for issue in found.issues])
        if not build:
            return None, {}, found.rollout
        reads = {step: tuple(needs) for step, needs in (found.reads or {}).items()}
        return Workflow.model_validate_json(found.workflow), reads, found.rollout
    try:
        data = data if data is not None else read_bytes(path, str(path.relative_to(dags_folder)))
        workflow, deprecated = read_workflow(path, roster, root=dags_folder, data=data)
    except TemplateError as error:
        cache.put(key, Entry([asdict(issue) for issue in error.issues]))
        raise
    # Old forms: a BatonDeprecationWarning each, which the DAG processor records as the import warnings of
    # the DAG file that builds the template's DAG (not the errors file's check, nor a page's read of it).
    # Such a template is not cached, so that every parse warns again until it is migrated.
    if announce:
        warn(deprecated)
    reads = step_reads(workflow)
    rollout = workflow.rollout.to if workflow.rollout is not None else None
    if not deprecated:
        # the model's own JSON, read back by pydantic's own parser: a third of json.loads and model_validate
        needs = {step: list(needs) for step, needs in reads.items()}
        cache.put(key, Entry(None, workflow.model_dump_json(), needs, rollout))
    return workflow, reads, rollout


def _canary(
    path: Path,
    file: str | None,
    dags_folder: Path,
    roster: Roster | None,
    roster_bytes: bytes,
    cache: SpecCache,
    workflow: Workflow | None,
    announce: bool = False,
) -> tuple[WorkflowPlan | None, TemplateError | None]:
    """The plan of the version the template of ``path`` rolls out to (``dags/versions/<file>``, in its task
    group), or why there is none: the new version's own errors, or what makes it unable to take the
    current version's runs. Either way the current version's DAG loads (without the rollout). Nothing
    when it rolls out nothing (``file`` None)."""
    if file is None:
        return None, None
    name = str(path.relative_to(dags_folder))
    where = f"{VERSIONS_DIR}/{file}"
    target = dags_folder / VERSIONS_DIR / file
    if not target.is_file():
        fix = f"put the new version's template at dags/{where}, or remove 'rollout'"
        return None, TemplateError([Issue(name, "rollout.to", f"there is no file {where}", fix)])
    try:
        keyed = _key(cache, target, where, roster_bytes)
        canary, reads, _ = _checked(target, dags_folder, roster, keyed, cache, True, announce)
        if workflow is None:  # the current version came from the cache without its workflow
            keyed = _key(cache, path, name, roster_bytes)
            workflow, _, _ = _checked(path, dags_folder, roster, keyed, cache, True)
    except TemplateError as error:
        return None, error
    assert canary is not None and workflow is not None  # built: the whole entries
    issues = rollout_issues(workflow, canary, name, where)
    if issues:
        return None, TemplateError(issues)
    return plan_workflow(canary, roster, reads, group=f"v{canary.version}"), None


def rollout_issues(current: Workflow, new: Workflow, name: str, where: str) -> list[Issue]:
    """What keeps ``new`` (the file ``where``) from taking a share of the runs of ``current`` (``name``)."""
    issues = []
    if new.workflow != current.workflow:
        fix = f"name it workflow: {current.workflow}, or point rollout.to at that workflow's next version"
        issues.append(
            Issue(where, "workflow", f"is '{new.workflow}', not '{current.workflow}' ({name})", fix)
        )
    if new.version <= current.version:
        msg = f"{new.version} is not above the current version {current.version} ({name})"
        issues.append(Issue(where, "version", msg, f"make it {current.version + 1}"))
    if new.rollout is not None:
        msg = "a version being rolled out cannot roll out another one"
        issues.append(Issue(where, "rollout", msg, "remove 'rollout' from the new version"))
    if any(step.id == VERSION_TASK for step in current.steps):
        msg = f"a step named '{VERSION_TASK}': that is the task that picks each run's version"
        issues.append(Issue(name, "steps", msg, "rename the step"))
    for change in diff(current, new).breaking:
        if change.where.startswith("inputs"):
            msg = f"breaks the runs of v{current.version} ({name}), whose inputs it must take: {change.what}"
            fix = "keep the new version's inputs compatible (optional, with a default), then roll it out"
            issues.append(Issue(where, change.where, msg, fix))
    return issues


def compile_folder(
    dags_folder: Path, *, build: bool = True, share: Share | None = None, dag_file: str | None = None
) -> tuple[dict[str, DAG | None], list[TemplateError]]:
    """Every template of ``dags_folder/workflows`` compiled: the DAGs, and the errors of the broken ones.

    In a task process Airflow says which DAG it wants (the parsing context); only that template is compiled
    then. With ``build=False`` templates are validated and planned but no DAG is built (the values are None):
    what the errors file needs. What validation found is reused from the validation cache while the template,
    the roster and Baton are unchanged; a template whose planning or building fails is dropped from it, so
    that the errors file plans it again and names the failure.

    ``share``: only the templates of these shards (a shard file's). In a full parse under Airflow's import
    timer (``Deadline``) the templates are compiled in file-name order until the deadline, and the rest left
    out with an error that names them and the fix (``dag_file``: the DAG file it names)."""
    # long: one pass over the folder: the shard's templates, the task's one, the deadline, each template's errors apart
    roster, roster_error, roster_bytes = _roster(dags_folder)
    cache = SpecCache(default_folder())
    files = template_files(dags_folder)
    in_folder = len(files)
    wanted = get_parsing_context().dag_id
    if share is not None:
        files = [path for path in files if share.holds(path.stem)]
    if wanted and wanted.endswith(SENSOR_SUFFIX):  # a sensor DAG comes from its workflow's template
        wanted = wanted.removesuffix(SENSOR_SUFFIX)
    if wanted and any(path.stem == wanted for path in files):
        files = [path for path in files if path.stem == wanted]
    deadline = None if wanted else Deadline.now()  # a task's parse of its one DAG never stops early
    evaluated = gates.evaluated(dags_folder)  # the workflows with a dataset: their variants and rollout wait
    dags: dict[str, DAG | None] = {}
    errors = [roster_error] if roster_error else []
    try:
        for index, path in enumerate(files):
            if deadline is not None and index and deadline.passed():
                deadline.stop(files[index:], index, in_folder, dag_file, dags_folder)
                break
            name, key = str(path.relative_to(dags_folder)), ""
            try:
                keyed = _key(cache, path, name, roster_bytes)
                key = keyed[0]
                workflow, reads, rollout = _checked(path, dags_folder, roster, keyed, cache, build, build)
                canary, error = _canary(
                    path, rollout, dags_folder, roster, roster_bytes, cache, workflow, announce=build
                )
                errors.extend([error] if error else [])  # the current version's DAG loads without it
                if workflow is None:  # checked before, and its plan and DAG did not fail since
                    dags[path.stem] = None
                    continue
                plan, gated = gates.applied(plan_workflow(workflow, roster, reads), evaluated)
                dags[workflow.workflow] = (
                    build_dag(plan, canary, gated and canary is not None) if build else None
                )
                if build and (sensor := sensor_dag(workflow)) is not None:
                    dags[sensor.dag_id] = sensor
            except TemplateError as error:
                errors.append(error)
            except Exception as error:  # a Baton bug must not hide the healthy templates either
                cache.forget(key)  # not healthy after all: the errors file plans it again, and names the bug
                log.exception("Building %s failed", name)
                issue = Issue(
                    name, "", f"{type(error).__name__}: {error}", "this is a Baton bug; please report it"
                )
                errors.append(TemplateError([issue]))
    finally:
        cache.flush()  # what this parse validated, in one write
    return dags, errors


def load_dags(dag_file: Path) -> dict[str, DAG]:
    """The DAGs of the healthy templates that the DAG file ``dag_file`` loads (``Path(__file__)``):
    ``baton_workflows.py`` every template, or those of the shards without a file of their own when the folder
    has shard files; ``baton_workflows_<k>_of_<n>.py`` those of shard k of n (see ``Loaders``). A folder
    (``Path(__file__).resolve().parent``, the call of 0.2's copies of the file) is ``baton_workflows.py``'s."""
    path = Path(dag_file)
    if path.is_dir():
        folder, file = path, LOADER_FILE
    else:
        folder, file = path.resolve().parent, path.name
    wanted = get_parsing_context().dag_id
    share, compensates = Loaders.of(folder).share(file)
    if wanted == COMPENSATE_DAG_ID:  # its task needs no template: it reads the past run from the store
        return {COMPENSATE_DAG_ID: compensate_dag()} if compensates else {}
    if share is not None and not share.shards:
        return {}
    if wanted and share is not None and not share.holds(wanted.removesuffix(SENSOR_SUFFIX)):
        return {}  # a task's parse of a DAG another file holds: nothing to compile here
    dags, errors = compile_folder(folder, share=share, dag_file=file)
    for error in errors:
        log.warning(
            "Skipped a broken template; see the import errors of baton_template_errors.py:\n%s", error
        )
    # the DAG that compensates a past run on purpose: from one file, while the folder has templates
    if compensates and wanted is None and (dags or (share is not None and template_files(folder))):
        dags[COMPENSATE_DAG_ID] = compensate_dag()
    return dags


def load_template_errors(dags_folder: Path) -> dict[str, DAG]:
    """A DAG whose validation fails with every template error, or nothing (for dags/baton_template_errors.py)."""
    healthy, errors = compile_folder(dags_folder, build=False)
    return {ERRORS_DAG_ID: _errors_dag(errors, loaded=len(healthy))} if errors else {}


def rollouts(dags_folder: Path) -> list[tuple[Workflow, Workflow]]:
    """(current, new) of every healthy template of ``dags_folder`` that rolls out a healthy, compatible new
    version (``baton rollout``); the others are the errors file's."""
    roster, _, roster_bytes = _roster(dags_folder)
    cache = SpecCache(default_folder())
    found = []
    try:
        for workflow in healthy_workflows(dags_folder):
            if workflow.rollout is None:
                continue
            path = dags_folder / WORKFLOWS_DIR / f"{workflow.workflow}.yaml"
            canary, _ = _canary(path, workflow.rollout.to, dags_folder, roster, roster_bytes, cache, workflow)
            if canary is not None:
                found.append((workflow, canary.workflow))
    finally:
        cache.flush()
    return found


def steps_of(dags_folder: Path, workflow: str) -> dict[str, Any]:
    """Task id -> compiled step of the healthy template ``workflow`` (both versions' steps while it rolls
    out): what an action on a step checks against. Empty when there is no such healthy template."""
    path = dags_folder / WORKFLOWS_DIR / f"{workflow}.yaml"
    if not path.is_file():
        return {}
    roster, _, roster_bytes = _roster(dags_folder)
    cache = SpecCache(default_folder())
    try:
        found, reads, rollout = _checked(
            path,
            dags_folder,
            roster,
            _key(cache, path, f"{WORKFLOWS_DIR}/{workflow}.yaml", roster_bytes),
            cache,
            True,
        )
        canary, _ = _canary(path, rollout, dags_folder, roster, roster_bytes, cache, found)
    except TemplateError:
        return {}
    finally:
        cache.flush()
    plans = [plan_workflow(found, roster, reads), *([canary] if canary else [])]
    return {step.task_id: step for plan in plans for step in plan.steps}
