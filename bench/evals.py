"""Benchmark: does an evaluation catch a prompt edit that breaks a field, without crying wolf (issue 58)?

The workflow is the bundled ``support_triage``, with its dataset's checks (a priority of the three, a
summary that names the first ticket's customer, at most twelve urgent tickets) over a pool of ``--cases``
cases (default 200) drawn from the demo queue as the bundled dataset's are: a batch of one to five tickets,
its loading and filing recorded, a fifth of them with a phone ticket first.

Its versions, each a template file that ``baton eval`` runs for real (the command as a user runs it: each
case a ``dag.test()`` of the version's compiled DAG, the offline model answering):

- **regressions** (``--regressions``, default 3): prompt edits that leave the customer out of the phone
  tickets' lines, each worded differently; the summary then misses its customer in the fifth of the cases
  that start with a phone ticket, and only there;
- **harmless** (``--harmless``, default 3): rewordings that keep what the checks need.

The model is made flaky the way real ones are (``devtools/eval_noise.py``): ``--noise`` of its answers
(default 0.1) are vague, a summary without the tickets, on every version alike. Each version's pool is run
``--repeats`` times (default 2), each with its own draws.

Then ``--trials`` trials (default 200), half on a regression and half on a harmless edit, each on a version
of its kind, one run of it and one of the stable version, and the pool's cases in an order of its own, at
most ``--max-cases`` of them: the cases are judged one by one by the sequential rule ``baton eval`` reports
(:func:`baton.evaluate.score.sequential`: an e-value over the cases that regressed and improved, at 5 %,
and the checks lost beyond the dataset's tolerance, 1 % here: a fifth of the cases losing one check of four
is 5 % of the checks, which a tolerance of 5 % would accept). A regression caught is a regression trial the
rule calls; a false alarm, a harmless one it calls. The cases to decide are those a caught regression took.

Run from the repository root, with the README's environment::

    .venv/bin/python bench/evals.py [--cases 200] [--trials 200] [--noise 0.1] [--seed 7]

It prints each version's share of checks held and, last, ``regressions caught N.N % at false alarms N.N %
(median cases to decide N)`` (goal: caught >= 95 % at false alarms <= 5 %). ``--quick`` is a tiny run
(12 cases, one edit of each kind, one repeat, one worker, 20 trials), the test suite's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from cli_types import SEED_MAX, bounded_int, fraction

from baton.evaluate.score import CaseScore, Result, sequential

ROOT = Path(__file__).resolve().parents[1]

WORKFLOW = "support_triage"
OFFLINE = '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
LINE = "{{ t.id }} from {{ t.customer }} ({{ t.channel }}): {{ t.subject }}"
LEAD = "Triage these {{ steps.load_tickets.count }} new tickets:"
# Prompt edits that drop the customer of the phone tickets (each worded its own way) ...
WITHOUT_PHONES = "{% if t.channel != 'phone' %} from {{ t.customer }}{% endif %}"
REGRESSIONS = [
    (LEAD, "{{ t.id }}" + WITHOUT_PHONES + " ({{ t.channel }}): {{ t.subject }}"),
    ("Please triage these {{ steps.load_tickets.count }} new tickets:",
     "{{ t.id }}" + WITHOUT_PHONES + " ({{ t.channel }}): {{ t.subject }}"),
    (LEAD, "{{ t.id }} ({{ t.channel }})" + WITHOUT_PHONES + ": {{ t.subject }}"),
    ("Triage the {{ steps.load_tickets.count }} tickets below:", "{{ t.id }}" + WITHOUT_PHONES + ": {{ t.subject }}"),
]  # fmt: skip
# ... and rewordings that keep every customer where the summary's first words take it from.
HARMLESS = [
    ("Triage these {{ steps.load_tickets.count }} new support tickets:", LINE),
    ("Please triage these {{ steps.load_tickets.count }} new tickets:", LINE),
    ("Triage the {{ steps.load_tickets.count }} tickets below:", LINE),
    (LEAD, "{{ t.id }} from {{ t.customer }} by {{ t.channel }}: {{ t.subject }}"),
]
TOLERANCE = 0.01  # the pool's: a team that wants a fifth of one field's answers broken caught allows little


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", type=bounded_int(5, 2000), default=200, help="the pool's cases (5 to 2000)"
    )
    parser.add_argument(
        "--trials", type=bounded_int(2, 100_000), default=200, help="trials, half of each kind"
    )
    parser.add_argument("--regressions", type=bounded_int(1, len(REGRESSIONS)), default=3)
    parser.add_argument("--harmless", type=bounded_int(1, len(HARMLESS)), default=3)
    parser.add_argument("--repeats", type=bounded_int(1, 10), default=2, help="runs of each version's pool")
    parser.add_argument("--noise", type=fraction(0.5, "a flaky model, not a broken one"), default=0.1)
    parser.add_argument("--max-cases", type=bounded_int(1, 2000), help="the most cases a trial judges (all)")
    parser.add_argument("--workers", type=bounded_int(1, 8), default=2, help="baton eval's --workers")
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=7)
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run: 12 cases, one edit of each kind, 20 trials"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.regressions, args.harmless, args.repeats, args.trials, args.workers = (
            12,
            1,
            1,
            1,
            20,
            1,
        )
    return args


def pool(cases: int, rng: random.Random) -> dict:
    """The dataset: ``cases`` batches of the demo queue, a fifth of them with a phone ticket first."""
    tickets = json.loads((ROOT / "include" / "demo" / "support.json").read_text())["tickets"]
    phone = [t for t in tickets if t["channel"] == "phone"]
    other = [t for t in tickets if t["channel"] != "phone"]
    found = []
    for index in range(cases):
        first = rng.choice(phone if index % 5 == 0 else other)
        size = rng.randint(1, 5)
        start = tickets.index(first)
        batch = [tickets[(start + k) % len(tickets)] for k in range(size)]
        found.append(
            {
                "id": f"case_{index:04d}",
                "inputs": {"per_run": size},
                "recorded": {
                    "load_tickets": {"tickets": batch, "count": size, "queue": len(tickets)},
                    "file_tickets": {
                        "results": [
                            {"id": str(k), "output": {"ticket": t["id"], "status": 201}}
                            for k, t in enumerate(batch)
                        ],
                        "failures": [],
                        "total": size,
                    },
                },
                "expect": {
                    "triage": {
                        "priority": {"one_of": ["low", "normal", "high"]},
                        "summary": {"contains": first["customer"], "max_length": 2000},
                        "urgent": {"max_length": 12},
                    }
                },
            }
        )
    return {"dataset": WORKFLOW, "tolerance": TOLERANCE, "cases": found}


def write_folder(folder: Path, dataset: dict, edits: list[tuple[str, str]]) -> None:
    """The dags folder: the roster, the stable template (without its rollout), a version per edit, the pool."""
    for name in ("workflows", "versions", "evals"):
        (folder / name).mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "agents.yaml", folder / "agents.yaml")
    stable = (ROOT / "dags" / "workflows" / f"{WORKFLOW}.yaml").read_text()
    stable = stable[: stable.index("\nrollout:")] + "\n"
    assert LEAD in stable and LINE in stable, (
        "the bundled template's instruction changed: update this benchmark"
    )
    (folder / "workflows" / f"{WORKFLOW}.yaml").write_text(stable)
    for number, (lead, line) in enumerate(edits, start=2):
        text = (
            stable.replace("version: 1", f"version: {number}", 1)
            .replace(LEAD, lead, 1)
            .replace(LINE, line, 1)
        )
        (folder / "versions" / f"{WORKFLOW}.v{number}.yaml").write_text(text)
    (folder / "evals" / f"{WORKFLOW}.yaml").write_text(yaml.safe_dump(dataset, sort_keys=False))


def evaluate(
    folder: Path, version: int | None, repeat: int, args: argparse.Namespace
) -> tuple[list[CaseScore], float]:
    """``baton eval`` of one version (None: the stable one) alone; its cases' scores and its CPU-seconds."""
    env = os.environ | {
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW_CONN_BATON_LLM": OFFLINE,
        "BATON_EXTENSIONS": "demo.skills,devtools.eval_noise",
        "BATON_EVAL_NOISE": json.dumps({"seed": args.seed * 1000 + repeat, "rate": args.noise}),
    }
    command = [str(Path(sys.executable).with_name("baton")), "eval", WORKFLOW, "--format", "json"]
    command += ["--workers", str(args.workers)] + (
        ["--version", str(version), "--against", "none"] if version else []
    )
    before = os.times()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    after = os.times()
    if done.returncode not in (0, 1):
        sys.exit(
            f"baton eval {version or 'stable'} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
        )
    report = json.loads(done.stdout)
    ((_, cases),) = report["versions"].items()
    scores = [
        CaseScore(c["case"], c["state"], [Result(**{k: r[k] for k in ("step", "field", "check", "passed", "reason")})
                                          for r in c["results"]], c["error"])
        for c in cases
    ]  # fmt: skip
    return scores, (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )


def held(scores: list[CaseScore]) -> float:
    return sum(s.passed for s in scores) / max(1, sum(len(s.results) for s in scores))


def trials(
    runs: dict, kinds: dict[int, str], args: argparse.Namespace, rng: random.Random
) -> tuple[list, list]:
    """The trials: (called, cases to decide) of each regression trial and each harmless one."""
    outcome: dict[str, list] = {"regression": [], "harmless": []}
    by_kind = {kind: [v for v, k in kinds.items() if k == kind] for kind in outcome}
    ids = [s.case for s in runs[None][0]]
    for trial in range(args.trials):
        kind = "regression" if trial % 2 == 0 else "harmless"
        version = rng.choice(by_kind[kind])
        new = {s.case: s for s in rng.choice(runs[version])}
        stable = {s.case: s for s in rng.choice(runs[None])}
        order = rng.sample(ids, len(ids))[: args.max_cases or len(ids)]
        rule = sequential([(new[c], stable[c]) for c in order], TOLERANCE)
        outcome[kind].append(rule.decided_after)
    return outcome["regression"], outcome["harmless"]


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    rng = random.Random(args.seed)
    edits = REGRESSIONS[: args.regressions] + HARMLESS[: args.harmless]
    kinds = {
        n: ("regression" if i < args.regressions else "harmless")
        for i, n in enumerate(range(2, 2 + len(edits)))
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="baton-bench-evals-") as work:
        folder = Path(work) / "dags"
        write_folder(folder, pool(args.cases, rng), edits)
        runs: dict[int | None, list[list[CaseScore]]] = {}
        cpu = 0.0
        for version in [None, *kinds]:
            for repeat in range(args.repeats):
                scores, spent = evaluate(folder, version, repeat, args)
                runs.setdefault(version, []).append(scores)
                cpu += spent
            label = "stable" if version is None else f"v{version} ({kinds[version]})"
            shares = ", ".join(f"{100 * held(s):.1f} %" for s in runs[version])
            print(f"{label}: checks held {shares} over {args.cases} cases", flush=True)
    took = time.monotonic() - started
    print(f"{len(runs) * args.repeats} evaluations of {args.cases} cases: {cpu:.1f} CPU-s, {took:.0f} s")
    caught, false = trials(runs, kinds, args, rng)
    decided = [n for n in caught if n is not None]
    rate = 100 * len(decided) / len(caught)
    alarms = 100 * sum(n is not None for n in false) / len(false)
    median = statistics.median(decided) if decided else 0
    print(
        f"{len(caught)} regression trials, {len(false)} harmless; noise {args.noise:g}, tolerance {TOLERANCE:g}"
    )
    print(
        f"regressions caught {rate:.1f} % at false alarms {alarms:.1f} % (median cases to decide {median:.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
