"""``baton migrate PATH ...``: rewrite the deprecated forms of templates and rosters, in place, to today's
template language (the table of :mod:`baton.spec.deprecations`), keeping comments, key order, quoting and
layout.

The file is edited as YAML, not as text: ruamel.yaml reads it round-trip (comments and quoting kept), the
table's rewrites change its mapping, and only the lines that changed are put back into the original text,
so that what ruamel would lay out differently elsewhere stays as written. The result is read back and must
be what loading the old file gives (the same data, no deprecated form left), or nothing is written. A file
is read within the limits of every template (size, nesting, aliases), locked while it is migrated, and
replaced in one step (a temporary file, then ``os.replace``, keeping its mode): a reader sees the old file
or the new, never half of one, and two migrations of the same file make one change.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import fcntl
import io
import os
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from baton.cli.common import add_command
from baton.errors import Issue, TemplateError
from baton.spec import reading
from baton.spec.deprecations import upgrade
from baton.spec.loading import format_loc, is_template

SUBFOLDERS = ("workflows", "versions")  # a dags folder's templates, besides its roster
# (mapping, sequence, offset) indentations tried, the most common first: the one that lays the unchanged
# file out as written is used
INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (3, 3, 0))
EXIT_CHANGES, EXIT_ERRORS = 1, 2


def add(commands: Any) -> None:
    migrate = add_command(commands, "migrate")
    migrate.add_argument(
        "paths",
        nargs="+",
        help="template or roster files, or folders (their *.yaml/*.yml, and those of workflows/ and versions/)",
    )
    migrate.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file would change (for CI)"
    )
    migrate.add_argument("--diff", action="store_true", help="print what changes, as a unified diff")
    migrate.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    return migrate(args.paths, check=args.check, show_diff=args.diff)


@dataclass
class Outcome:
    """What migrating one file did: its name, the deprecated forms found (key paths), the diff."""

    name: str
    changes: list[str] = field(default_factory=list)
    diff: str = ""


def migrate(paths: list[str], *, check: bool = False, show_diff: bool = False) -> int:
    """Migrate every file of ``paths``; print a line per file and a summary. 0: nothing left to change;
    1 (``check``): a file would change; 2: a file could not be migrated (its error printed)."""
    tally: Counter[str] = Counter()
    for name, path, issue, named in _files(paths):
        status, line, diff = _migrate_one(name, path, issue, named, check)
        if show_diff and diff:
            print(diff, end="", flush=True)
        print(line, flush=True)
        tally[status] += 1
    print(
        f"{tally.total()} file(s): {tally['changed']} {'to migrate' if check else 'migrated'}, "
        f"{tally['current']} already current, {tally['failed']} with errors"
        + (f", {tally['skipped']} skipped" if tally["skipped"] else ""),
        flush=True,
    )
    if tally["failed"]:
        return EXIT_ERRORS
    return EXIT_CHANGES if check and tally["changed"] else 0


def _migrate_one(
    name: str, path: Path, issue: Issue | None, named: bool, check: bool
) -> tuple[str, str, str]:
    """(changed, current, failed or skipped; the line that says so; the diff) of one file."""
    if issue is not None:
        return "failed", str(issue), ""
    try:
        outcome = migrate_file(path, name, write=not check)
    except NotATemplate as error:  # named: an error; found in a folder (budgets.yaml, ...): left alone
        return ("failed", str(error), "") if named else ("skipped", f"{name}: skipped: not a template", "")
    except TemplateError as error:
        return "failed", str(error), ""
    if not outcome.changes:
        return "current", f"{name}: already current", ""
    verb = "would migrate" if check else "migrated"
    return (
        "changed",
        f"{name}: {verb} {len(outcome.changes)} form(s): {', '.join(outcome.changes)}",
        outcome.diff,
    )


def _files(paths: list[str]) -> list[tuple[str, Path, Issue | None, bool]]:
    """(name, the file to migrate, or why it is not migrated, whether the command line named it) for each
    file ``paths`` names. A folder's entries (and its workflows/ and versions/ with theirs) must resolve
    inside the folder: a symbolic link out of it is refused, not followed."""
    found: list[tuple[str, Path, Issue | None, bool]] = []
    for raw in paths:
        given = Path(raw)
        if given.is_dir():
            found += _folder(given, raw)
        elif given.exists():
            found.append((raw, given.resolve(), None, True))
        else:
            fix = "name a template file or a folder of them"
            found.append((raw, given, Issue(raw, "", "no such file or folder", fix), True))
    return found


def _folder(given: Path, raw: str) -> list[tuple[str, Path, Issue | None, bool]]:
    folder = given.resolve()
    entries = [given / entry.name for entry in _entries(given)]
    entries += [given / sub for sub in SUBFOLDERS if (given / sub).is_dir()]
    found: list[tuple[str, Path, Issue | None, bool]] = []
    while entries:
        entry = entries.pop(0)
        target = entry.resolve()
        if not target.is_relative_to(folder):
            message = f"a link to {target}, outside the folder {raw}: not migrated"
            fix = "migrate that file by naming it, or replace the link with the file"
            found.append((str(entry), target, Issue(str(entry), "", message, fix), False))
        elif target.is_dir():
            entries += [entry / sub.name for sub in _entries(entry)]
        else:
            found.append((str(entry), target, None, False))
    return found


def _entries(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if is_template(path) and not path.is_dir())


def migrate_file(path: Path, name: str, *, write: bool = True) -> Outcome:
    """Rewrite the deprecated forms of the file ``path`` (``name`` in messages) in place (unless not
    ``write``): what was found and the diff. Raises ``TemplateError`` naming the file when it cannot."""
    with _locked(path, name) as info:
        if write and not info.st_mode & 0o222:
            raise reading.refuse(
                name,
                f"the file is read-only (mode {stat.S_IMODE(info.st_mode):04o}): not migrated",
                f"make it writable (chmod u+w {name}) and run baton migrate again",
            )
        data = reading.read_bytes(path, name)
        text = reading.decode(data, name)
        reading.scan(text, name)  # the size of every alias expanded, nesting, duplicate keys: refused early
        plain, _ = reading.load(text, name)
        kind = _kind(plain, name)
        expected = copy.deepcopy(plain)
        found = upgrade(expected, kind)
        if not found:
            return Outcome(name)
        new_text = _migrated(text, kind, name, expected, found)
        diff = "".join(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                fromfile=f"a/{name.lstrip('/')}",
                tofile=f"b/{name.lstrip('/')}",
            )
        )
        if write:
            bom = "\ufeff" if data.startswith(b"\xef\xbb\xbf") else ""
            _replace(path, (bom + new_text).encode("utf-8"), info, name)
        return Outcome(name, [format_loc(loc) for loc, _, _, _ in found], diff)


def _migrated(text: str, kind: str, name: str, expected: Any, found: list[Any]) -> str:
    """``text`` rewritten, checked to read as ``expected``; refused when its old forms are in YAML it
    shares through anchors (rewriting one place would change, or miss, the others; loading translates
    them all the same)."""
    try:
        new_text = _rewritten(text, kind, name)
        _check_result(new_text, expected, kind, name)
    except Exception as error:
        if not _shares(text):
            raise
        fixes = "; ".join(f"{format_loc(loc)}: {fix}" for loc, _, _, fix in found)
        message = "its old forms are in YAML it shares through anchors (&name, *name, <<): not migrated"
        fix = f"write the step out without them, or by hand: {fixes}"
        raise reading.refuse(name, message, fix) from error
    return new_text


class _locked:
    """The file opened and locked (``flock``) for the time of its migration; another migration of it
    waits. After the wait the lock may be on a file another migration replaced: then it is taken again on
    the file now at the path (at most ``tries`` times)."""

    tries = 100

    def __init__(self, path: Path, name: str):
        self.path, self.name, self.fd = path, name, -1

    def __enter__(self) -> os.stat_result:
        for _ in range(self.tries):
            try:
                info = os.stat(self.path)
                if not stat.S_ISREG(info.st_mode):
                    raise reading.refuse(
                        self.name, "not a regular file: not migrated", "name a template file"
                    )
                self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError as error:
                raise reading.refuse(
                    self.name, f"cannot be read: {error.strerror}", "check the path"
                ) from None
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            held = os.fstat(self.fd)
            try:
                now = os.stat(self.path)
            except OSError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return held
            os.close(self.fd)  # replaced while this one waited: lock the new file
        raise reading.refuse(self.name, "kept being replaced while waiting for its lock", "try again")

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


class NotATemplate(TemplateError):
    """A YAML file that is neither a workflow template nor a roster (named: an error; in a folder: skipped)."""


def _kind(data: Any, name: str) -> str:
    if isinstance(data, dict) and ("steps" in data or "workflow" in data):
        return "workflow"
    if isinstance(data, dict) and "agents" in data:
        return "roster"
    message = "not a Baton template (no 'workflow' or 'steps') nor a roster (no 'agents'): not migrated"
    raise NotATemplate([Issue(name, "", message, "name a workflow template or an agents roster")])


def _yaml(indent: tuple[int, int, int]) -> Any:
    from ruamel.yaml import YAML  # the round-trip library, imported by this command only

    round_trip = YAML(typ="rt")
    round_trip.preserve_quotes = True
    round_trip.width = 1_000_000  # never wrap a line that was not wrapped
    mapping, sequence, offset = indent
    round_trip.indent(mapping=mapping, sequence=sequence, offset=offset)
    round_trip.representer.add_representer(  # null as written in templates, not as an empty value
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return round_trip


def _dump(round_trip: Any, document: Any) -> str:
    out = io.StringIO()
    round_trip.dump(document, out)
    return out.getvalue()


def _rewritten(text: str, kind: str, name: str) -> str:
    """``text`` with its deprecated forms rewritten: ruamel lays out the changed document, and the lines
    it changed are put back into the original text (the rest stays byte for byte as written)."""
    from ruamel.yaml.error import YAMLError  # the round-trip library, imported by this command only

    source = text.replace("\r\n", "\n")
    best: tuple[int, str, str] | None = None
    for indent in INDENTS:
        round_trip = _yaml(indent)
        try:
            document = round_trip.load(source)
            before = _dump(round_trip, document)
            upgrade(document, kind)
            after = _dump(round_trip, document)
        except YAMLError as error:
            raise reading.refuse(name, f"cannot be rewritten as YAML: {error}", "fix the YAML") from None
        if before == source:
            best = (0, before, after)
            break
        distance = sum(tag != "equal" for tag, *_ in _opcodes(before, source))
        if best is None or distance < best[0]:
            best = (distance, before, after)
    assert best is not None  # INDENTS is not empty
    _, before, after = best
    result = _splice(source, before, after)
    return result.replace("\n", "\r\n") if "\r\n" in text else result


def _opcodes(a: str, b: str) -> list[tuple[str, int, int, int, int]]:
    return difflib.SequenceMatcher(None, a.splitlines(True), b.splitlines(True), autojunk=False).get_opcodes()


def _splice(original: str, before: str, after: str) -> str:
    """Apply the change ``before`` -> ``after`` (ruamel's layouts of the document, unchanged and changed)
    to ``original``: each changed run of lines of ``before`` is found in ``original`` by the lines the two
    share. When a changed line is one ruamel lays out differently from ``original``, ``after`` is used."""
    if before == original:
        return after
    old, new = original.splitlines(True), after.splitlines(True)
    where: dict[int, int] = {}  # line of before -> the same line of original
    for tag, i1, i2, j1, _ in _opcodes(before, original):
        if tag == "equal":
            where.update({i1 + k: j1 + k for k in range(i2 - i1)})
    out: list[str] = []
    cursor = 0
    for tag, i1, i2, j1, j2 in _opcodes(before, after):
        if tag == "equal":
            continue
        if i2 > i1 and not all(i in where for i in range(i1, i2)):
            return after
        start = where[i1] if i2 > i1 else (where[i1 - 1] + 1 if i1 - 1 in where else None)
        if start is None or start < cursor:
            return after
        end = where[i2 - 1] + 1 if i2 > i1 else start
        out += old[cursor:start] + new[j1:j2]
        cursor = end
    return "".join(out + old[cursor:])


def _shares(text: str) -> bool:
    """Whether the YAML uses anchors (and so aliases or merge keys)."""
    return any(getattr(event, "anchor", None) for event in yaml.parse(text, Loader=yaml.SafeLoader))


def _check_result(new_text: str, expected: Any, kind: str, name: str) -> None:
    """The rewritten text must read as the old file does once translated, with no old form left."""
    try:
        reading.scan(new_text, name)
        data, _ = reading.load(new_text, name)
    except TemplateError as error:
        raise reading.refuse(name, f"the rewrite does not read back ({error}): not migrated", BUG) from None
    left = upgrade(copy.deepcopy(data), kind) if isinstance(data, dict) else []
    if data != expected or left:
        raise reading.refuse(name, "the rewrite would change what the file means: not migrated", BUG)


BUG = "this is a Baton bug; please report it with the file"


def _replace(path: Path, data: bytes, info: os.stat_result, name: str) -> None:
    """Write ``data`` over the file in one step: a temporary file beside it (the same mode), then
    ``os.replace``."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".migrate", dir=path.parent)
    except OSError as error:
        message = f"cannot write beside the file: {error.strerror}: not migrated"
        raise reading.refuse(name, message, "make its folder writable") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), stat.S_IMODE(info.st_mode))
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
