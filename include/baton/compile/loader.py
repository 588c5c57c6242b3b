"""The one entry point of dags/baton_workflows.py: every template -> a DAG; broken ones -> import errors."""

from __future__ import annotations

import logging
from pathlib import Path

from airflow.sdk import DAG, get_parsing_context

from baton.compile.build import build_dag
from baton.compile.plan import plan_workflow
from baton.errors import Issue, TemplateError
from baton.spec.loading import load_roster, load_workflow
from baton.spec.roster import Roster

log = logging.getLogger(__name__)

ERRORS_DAG_ID = "baton_template_errors"
ROSTER_FILE = "agents.yaml"
WORKFLOWS_DIR = "workflows"


class TemplateErrorsDag(DAG):
    """Carries every broken template into the DAG processor, whose ``validate()`` call files them.

    Airflow bags each DAG of a file on its own: the exception of one DAG's ``validate()`` becomes
    the import error of the file (shown in the UI and by ``airflow dags list-import-errors``) while
    the file's healthy DAGs still load. All broken templates go into this one DAG's error, because
    import errors are keyed by file and a second one would replace the first.
    """

    def validate(self):
        raise self.template_error  # type: ignore[attr-defined]


def template_files(dags_folder: Path) -> list[Path]:
    folder = dags_folder / WORKFLOWS_DIR
    return sorted(p for pattern in ("*.yaml", "*.yml") for p in folder.glob(pattern))


def _read_roster(dags_folder: Path) -> tuple[Roster | None, TemplateError | None]:
    path = dags_folder / ROSTER_FILE
    if not path.exists():
        return Roster(), None
    try:
        return load_roster(path, root=dags_folder), None
    except TemplateError as error:
        return None, error


def _errors_dag(errors: list[TemplateError], loaded: int) -> TemplateErrorsDag:
    files = sorted({issue.file for error in errors for issue in error.issues})
    summary = (
        f"{len(files)} Baton template file(s) could not be loaded ({loaded} workflow(s) did load): "
        f"{', '.join(files)}. Run `baton validate` for the same list.\n"
    )
    dag = TemplateErrorsDag(dag_id=ERRORS_DAG_ID, schedule=None)
    dag.template_error = TemplateError([issue for error in errors for issue in error.issues])
    dag.template_error.args = (summary + str(dag.template_error),)
    return dag


def load_dags(dags_folder: Path) -> dict[str, DAG]:
    """One DAG per template in ``dags_folder/workflows``; a broken template never hides the others.

    In a task process Airflow says which DAG it wants (the parsing context), and only that
    template is compiled.
    """
    roster, roster_error = _read_roster(dags_folder)
    files = template_files(dags_folder)
    wanted = get_parsing_context().dag_id
    if wanted and any(path.stem == wanted for path in files):
        files = [path for path in files if path.stem == wanted]
    dags: dict[str, DAG] = {}
    errors = [roster_error] if roster_error else []
    for path in files:
        try:
            workflow = load_workflow(path, roster, root=dags_folder)
            dags[workflow.workflow] = build_dag(plan_workflow(workflow, roster))
        except TemplateError as error:
            errors.append(error)
        except Exception as error:  # a Baton bug must not hide the healthy templates either
            log.exception("Building %s failed", path)
            name = str(path.relative_to(dags_folder))
            errors.append(
                TemplateError(
                    [
                        Issue(
                            name,
                            "",
                            f"{type(error).__name__}: {error}",
                            "this is a Baton bug; please report it with the template",
                        )
                    ]
                )
            )
    if errors:
        dags[ERRORS_DAG_ID] = _errors_dag(errors, loaded=len(dags))
    return dags
