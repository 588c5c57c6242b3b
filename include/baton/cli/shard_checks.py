"""What ``baton validate`` checks of a dags folder's DAG files: shard files that cannot load
(``loader_issues``), and a DAG file holding more templates than it compiles with room to spare within
Airflow's ``[core] dagbag_import_timeout`` (``parse_time_warnings``, at the time per template ``seconds_each``
measured). See ``baton.compile.shards``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from baton.compile.build import build_dag
from baton.compile.loader import template_files as folder_templates
from baton.compile.shards import (
    DEADLINE_SHARE,
    LOADER_FILE,
    MAX_SHARDS,
    ROOM_SHARE,
    Loaders,
    dagfile_loaders,
    import_timeout,
    shard_file,
    shard_of,
    shards_needed,
)
from baton.errors import Issue
from baton.plan import plan_workflow

BUILD_SAMPLE = 5  # healthy templates whose DAG validate builds, to time that part of a parse


def seconds_each(took: list[float], loaded: dict[Path, Any], roster: Any) -> float | None:
    """What compiling one template costs a parse with a cold validation cache (after an upgrade of Baton):
    checking it, as measured here, and planning and building its DAG, timed on the first ``BUILD_SAMPLE``
    healthy ones. None when nothing was checked."""
    if not took:
        return None
    built = []
    for workflow in list(loaded.values())[:BUILD_SAMPLE]:
        started = time.perf_counter()
        try:
            build_dag(plan_workflow(workflow, roster))
        except Exception:  # its errors are the loader's to report; only its time counts here
            continue
        built.append(time.perf_counter() - started)
    return sum(took) / len(took) + (sum(built) / len(built) if built else 0.0)


def loader_issues(folder: Path) -> list[tuple[Path, list[Issue]]]:
    """The problems of the dags folder's shard files (``baton shard``): a file named like a shard that cannot
    be one, shard files of two counts (only one loads), a shard without a file when no ``baton_workflows.py``
    loads its templates in its place."""
    if not folder.is_dir():
        return []
    state = Loaders.of(folder)
    found = []
    for name, why in state.refused:
        found.append(
            (
                folder / name,
                [
                    Issue(
                        name,
                        "",
                        f"named like a shard file but cannot be one ({why}): the loader loads no template from it",
                        f"remove it, or name it baton_workflows_<k>_of_<n>.py with 1 <= k <= n <= {MAX_SHARDS}; "
                        "`baton shard N` writes a whole set",
                    )
                ],
            )
        )
    for name in state.others:
        msg = (
            f"a shard file of another count than the folder's {shard_file(1, state.count)} .. "
            f"{shard_file(state.count, state.count)}: it loads no template (of several counts, the largest "
            "whole set loads, else the largest count)"
        )
        fix = f"run `baton shard {state.count}` (or the count you want): it writes one set and removes the others"
        found.append((folder / name, [Issue(name, "", msg, fix)]))
    if state.missing and not (folder / LOADER_FILE).is_file():
        names = [path.stem for path in folder_templates(folder)]
        lost = sum(shard_of(name, state.count) in state.missing for name in names)
        which = ", ".join(shard_file(k, state.count) for k in state.missing)
        msg = f"{which} missing and no {LOADER_FILE}: {lost} template(s) load from no file"
        fix = f"run `baton shard {state.count}` to write the set whole"
        found.append((folder, [Issue(str(folder), "", msg, fix)]))
    return found


def parse_time_warnings(folder: Path, seconds_each: float | None) -> list[str]:
    """A DAG file of the dags folder that holds more templates than it compiles with room to spare within
    Airflow's ``[core] dagbag_import_timeout`` (``ROOM_SHARE`` of it), at ``seconds_each`` a template: its parse
    stops at ``DEADLINE_SHARE`` of it and leaves the rest out. The fix: ``baton shard N``."""
    timeout = import_timeout()
    if seconds_each is None or timeout is None or not (folder / "workflows").is_dir():
        return []
    names = [path.stem for path in folder_templates(folder)]
    everything = dagfile_loaders(folder)
    state = Loaders.of(folder)
    held: dict[str, int] = {}
    for name in names:
        if everything:
            file = everything[0]
        elif state.present and shard_of(name, state.count) in state.present:
            file = shard_file(shard_of(name, state.count), state.count)
        else:
            file = LOADER_FILE
        held[file] = held.get(file, 0) + 1
    needed = shards_needed(seconds_each, len(names), timeout)
    if everything:
        fix = f"raise [core] dagbag_import_timeout to {seconds_each * len(names) / ROOM_SHARE:.0f} s"
    elif needed <= MAX_SHARDS:
        fix = f"`baton shard {needed}`"
    else:
        longer = seconds_each * len(names) / MAX_SHARDS / ROOM_SHARE
        fix = f"`baton shard {MAX_SHARDS}`, and raise [core] dagbag_import_timeout to {longer:.0f} s"
    found = []
    for file, count in sorted(held.items()):
        estimate = count * seconds_each
        if estimate <= ROOM_SHARE * timeout:
            continue
        found.append(
            f"{folder}: warning: {file} holds {count} template(s), about {estimate:.1f} s to compile at "
            f"{seconds_each * 1000:.1f} ms each (as measured by this run, with a cold cache), more than the "
            f"{ROOM_SHARE:.0%} of [core] dagbag_import_timeout ({timeout:g} s) that leaves room to spare; a parse "
            f"stops at {DEADLINE_SHARE:.0%} of it and leaves the rest of its templates out (fix: {fix})"
        )
    return found
