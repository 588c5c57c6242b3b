"""Benchmark: the worst case of each class of hostile template, validated and (where it runs) rendered.

Each case runs in a child process of its own, which validates the template with `baton validate`'s code
(and builds its DAG when the template is valid, or renders its Jinja when the case is about rendering);
the parent reads the child's wall time and its peak RSS (``wait4``). A baseline case, the healthy
``lead_qualification`` template, runs the same way in the same run, so the machine's noise shows. Goal
(issue 15): every case <= 10 s and <= 512 MB on this machine; a huge template is refused by its size limit
before it costs anything.

Run from the repository root::

    .venv/bin/python bench/hostile.py [--scale 1.0] [--case NAME ...]

It prints a line per case and, last, ``worst case: N.N s, NNN MB``. ``--scale`` shrinks the cases (the
test suite runs it at a tiny scale so that it cannot rot). The cases are also the test suite's corpus
(tests/spec/test_hostile.py builds them at their full size and asserts each message).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "workflow: {name}\nversion: 1\ndescription: A hostile case (bench/hostile.py).\nowner: bench\n"
STEP = "  - id: {id}\n    skill: score_leads\n"


@dataclass(frozen=True)
class Case:
    """One hostile template: its class (issue 15's numbering), what it is, how to build it at a scale,
    and what Baton must answer (a regex over the issues, or None when the template is valid)."""

    name: str
    klass: str
    build: Callable[[float], str]
    expect: str | None
    render: str | None = None  # an instruction to render instead of validating a template


def _n(base: int, scale: float, least: int = 2) -> int:
    return max(least, int(base * scale))


def errors_everywhere(scale: float) -> str:
    """Every one of the (at most) 1,000 steps has two errors."""
    n = _n(1000, scale)
    steps = "".join(f"  - id: s{i}\n    skil: score_leads\n    needs: [nowhere_{i}]\n" for i in range(n))
    return HEADER.format(name="errors_everywhere") + "steps:\n" + steps


def too_many_steps(scale: float) -> str:
    """A valid chain of 5,000 steps: refused by the step limit before anything walks it."""
    n = _n(5000, scale, least=1001)
    return (
        HEADER.format(name="too_many_steps") + "steps:\n" + "".join(STEP.format(id=f"s{i}") for i in range(n))
    )


def reverse_chain(scale: float) -> str:
    """A valid chain of 1,000 steps listed last first: each needs the one after it in the file."""
    n = _n(1000, scale)
    steps = "".join(
        f"  - id: s{i}\n    skill: score_leads\n" + (f"    needs: [s{i + 1}]\n" if i + 1 < n else "")
        for i in range(n)
    )
    return HEADER.format(name="reverse_chain") + "steps:\n" + steps


def _bomb(levels: int, indent: str, fan: int = 10) -> str:
    """A list of anchored lists, each made of ``fan`` aliases of the one before: 10**levels values once
    expanded, in a few hundred bytes."""
    lines = [f"{indent}- &l0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"{indent}- &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def alias_bomb_with(scale: float) -> str:
    """Anchors of anchors under a step's ``with`` (which Baton walks for Jinja): 10**9 values expanded."""
    levels = _n(9, scale, least=6)
    return (
        HEADER.format(name="alias_bomb_with")
        + "steps:\n  - id: a\n    skill: http_post\n    with:\n      json:\n"
        + _bomb(levels, "        ")
    )


def alias_bomb_default(scale: float) -> str:
    """The same bomb as an input's default (which is checked against the input's JSON Schema)."""
    levels = _n(9, scale, least=6)
    return (
        HEADER.format(name="alias_bomb_default")
        + "inputs:\n  data:\n    type: array\n    default:\n"
        + _bomb(levels, "      ")
        + "steps:\n"
        + STEP.format(id="a")
    )


def deep_nesting(scale: float) -> str:
    """Lists nested 1,000 deep under a step's ``with``."""
    depth = _n(1000, scale, least=60)
    return (
        HEADER.format(name="deep_nesting")
        + "steps:\n  - id: a\n    skill: http_post\n    with:\n      json: "
        + "[" * depth
        + "1"
        + "]" * depth
        + "\n"
    )


def deep_jinja(scale: float) -> str:
    """An instruction whose Jinja expression nests parentheses 5,000 deep."""
    depth = _n(5000, scale, least=200)
    return (
        HEADER.format(name="deep_jinja")
        + "steps:\n  - id: a\n    skill: score_leads\n    instruction: '{{ "
        + "(" * depth
        + "1"
        + ")" * depth
        + " }}'\n"
    )


def huge_file(scale: float) -> str:
    """A 5 MB template: refused by its size before it is read as YAML."""
    size = _n(5_000_000, scale, least=1_100_000)
    return (
        HEADER.format(name="huge_file")
        + "tags: ["
        + ", ".join(["x"] * (size // 3))
        + "]\nsteps:\n"
        + STEP.format(id="a")
    )


def non_utf8(scale: float) -> str:
    return HEADER.format(name="non_utf8") + "tags: [caf\udcff]\nsteps:\n" + STEP.format(id="a")


CASES = [
    Case("errors_everywhere", "1 cost", errors_everywhere, r"steps\[\d+\]\.skil: unknown key 'skil'"),
    Case("too_many_steps", "1 cost", too_many_steps, r"steps: [\d,]+ steps, over the limit of 1,000"),
    Case("reverse_chain", "1 cost", reverse_chain, None),
    Case("alias_bomb_with", "1 cost", alias_bomb_with, r"more than 200,000 values once its aliases"),
    Case("alias_bomb_default", "1 cost", alias_bomb_default, r"more than 200,000 values once its aliases"),
    Case("deep_nesting", "1 cost", deep_nesting, r"nesting deeper than 50 levels"),
    Case("deep_jinja", "1 cost", deep_jinja, r"Jinja nested deeper than 40 levels"),
    Case("huge_file", "1 cost", huge_file, r"over the limit of 1,000,000 bytes"),
    Case(
        "render_nested_loops",
        "4 render",
        lambda s: "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        r"loops made more than 1,000,000 iterations",
        render="template",
    ),
    Case(
        "render_output",
        "4 render",
        lambda s: "{% for a in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        r"the rendered text would be [\d,]+ characters",
        render="template",
    ),
    Case(
        "render_big_integer",
        "4 render",
        lambda s: "{{ 10 ** 10000000 }}",
        r"is an integer of about",
        render="template",
    ),
    Case(
        "render_recursion",
        "4 render",
        lambda s: "{% macro f(n) %}{{ f(n ~ 'x') }}{% endmacro %}{{ f('') }}",
        r"recurses too deeply",
        render="template",
    ),
]
BASELINE = "baseline_lead_qualification"


def _child(name: str, scale: float) -> int:
    """Run one case in this process; print what Baton answered as JSON."""
    from baton.cli.validate import _checked
    from baton.compile.build import build_dag
    from baton.plan import plan_workflow
    from baton.spec.loading import load_roster

    roster = load_roster(ROOT / "dags" / "agents.yaml")
    if name == BASELINE:
        path, case = ROOT / "dags" / "workflows" / "lead_qualification.yaml", None
    else:
        case = next(c for c in CASES if c.name == name)
        if case.render:
            from baton import templating

            try:
                templating.render(case.build(scale), {"inputs": {}, "steps": {}, "run": {}, "context": {}})
                answer = "rendered"
            except Exception as error:
                answer = f"{type(error).__name__}: {error}"
            print(json.dumps({"answer": answer}))
            return 0
    with tempfile.TemporaryDirectory(prefix="baton-hostile-") as folder:  # removed again, whatever happens
        if case is not None:
            path = Path(folder) / f"{name}.yaml"
            path.write_text(case.build(scale), encoding="utf-8", errors="surrogateescape")
        workflow, issues = _checked(path, roster)
        if workflow is not None:
            build_dag(plan_workflow(workflow, roster))
    print(json.dumps({"answer": "valid" if workflow else "\n".join(str(i)[:500] for i in issues[:3])}))
    return 0


def _measure(name: str, scale: float) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, what Baton answered) of one case in a child process."""
    # The cases and the baseline name the bundled roster's skill agents (score_leads, ...): the demo's
    # skills are registered here, as scripts/env.sh does, or every case would answer "unknown skill" from a
    # shell without it (as docs/tests.md runs the benchmarks).
    extensions = [e for e in os.environ.get("BATON_EXTENSIONS", "").split(",") if e]
    env = {**os.environ, "BATON_EXTENSIONS": ",".join(dict.fromkeys([*extensions, "demo.skills"]))}
    began = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", name, "--scale", str(scale)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    out, err = child.stdout.read(), child.stderr.read()
    if child.returncode != 0:
        return wall, usage.ru_maxrss / 1024, f"CRASHED ({child.returncode}): {err.strip()[-300:]}"
    answer = json.loads(out.strip().splitlines()[-1])["answer"]
    return wall, usage.ru_maxrss / 1024, answer


def main(argv: list[str] | None = None) -> int:
    # here, not at the top: bench/ is on sys.path when this runs, but the tests import it as bench.hostile
    from cli_types import fraction

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=fraction(1.0, "it only shrinks the cases"),
        default=1.0,
        help="shrink every case (the suite's smoke run)",
    )
    parser.add_argument("--case", action="append", help="run only these cases")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.scale)
    import re

    names = args.case or [c.name for c in CASES]
    if unknown := sorted(set(names) - {c.name for c in CASES}):
        parser.error(
            f"--case: no case named {', '.join(unknown)} (the cases: {', '.join(c.name for c in CASES)})"
        )
    worst_s = worst_mb = 0.0
    failed = []
    wall, rss, _ = _measure(BASELINE, args.scale)
    print(f"{'baseline (lead_qualification)':<32} {'':<9} {wall:6.2f} s {rss:7.1f} MB  valid, DAG built")
    for case in (c for c in CASES if c.name in names):
        wall, rss, answer = _measure(case.name, args.scale)
        worst_s, worst_mb = max(worst_s, wall), max(worst_mb, rss)
        ok = (answer == "valid") if case.expect is None else bool(re.search(case.expect, answer))
        failed += [] if ok else [case.name]
        shown = answer.splitlines()[0][:110] if answer else ""
        print(
            f"{case.name:<32} {case.klass:<9} {wall:6.2f} s {rss:7.1f} MB  {'ok' if ok else 'WRONG'}: {shown}"
        )
    if failed:
        print(f"wrong answers: {', '.join(failed)}", file=sys.stderr)
    print(f"worst case: {worst_s:.1f} s, {worst_mb:.0f} MB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
