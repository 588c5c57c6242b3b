"""Benchmark: structured calls of the bundled workflows' steps on the local model (issue 59).

Every step of the bundled templates (dags/workflows) whose agent is an LLM of the roster (not a skill, not a
browser) and that declares its output fields is called on the local model, in turn, until ``--calls`` calls
were made: Gemma 3 270M under llama.cpp (``baton.localmodel``, started here on a free port of 127.0.0.1), through
the path a step's call takes (``baton.agents.model.call_model``: common-ai's hook resolves the connection
``baton_llm``, here ``openai-chat:gemma-3-270m`` on that server, as ``make run MODEL=local`` defines it; the
agent's system prompt; the step's output model and its ``output_retries`` re-asks). The instruction is rendered
with the template's input defaults; what it reads of earlier steps is empty (their outputs are not made here).

Per call: whether the first answer fit the step's schema (one request), whether one did after the re-asks, the
wall time of the call and its tokens. A schema that failed is named with the last answer's error.

Run from the repository root, after the local model's install (``bash scripts/local_model.sh``; ``make test``
and ``make run MODEL=local`` run it):

    .venv/bin/python bench/model.py [--calls 50] [--threads 2]

Last line: ``schema-valid first try N %, after re-ask N %; p50 N s, p95 N s per call; N tokens/s`` (tokens/s:
the answers' tokens over the calls' time, prompts included). Goal: after re-ask >= 90 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cli_types import bounded_int
from harness import ROOT  # importing harness moves bench/ last on sys.path (bench/celery.py shadows celery)


def steps_to_call(dags: Path) -> list[tuple[str, Any, Any, str, int]]:
    """(workflow.step, its agent, its output model, its instruction rendered, its output_retries) of every LLM
    step with output fields."""
    from jinja2 import ChainableUndefined  # deferred: the benchmark's lenient rendering only
    from jinja2.sandbox import SandboxedEnvironment  # deferred: idem

    from baton.agents.outputs import output_model  # deferred: Baton loads after the arguments' check
    from baton.compile.loader import healthy_workflows, read_roster  # deferred: idem

    roster, error = read_roster(dags)
    if roster is None:
        raise SystemExit(f"bench/model.py: the bundled roster does not load: {error}")
    agents = {agent.name: agent for agent in roster.agents}
    env = SandboxedEnvironment(undefined=ChainableUndefined)  # an earlier step's output reads as empty
    found = []
    for workflow in healthy_workflows(dags):
        inputs = {name: field.default for name, field in workflow.inputs.items()}
        for step in workflow.steps:
            agent = agents.get(getattr(step, "agent", None) or "")  # a skill or person step has none
            if (
                agent is None
                or agent.skill
                or agent.browser
                or not isinstance(getattr(step, "output", None), dict)
            ):
                continue
            rendered = env.from_string(step.instruction or step.description or step.id).render(
                inputs=inputs, steps={}, item={}, run={"id": "bench"}, context={}
            )
            fields = {name: spec.model_dump(exclude_defaults=True) for name, spec in step.output.items()}
            model = output_model(step.id, fields)  # as a compiled step's output_spec gives them
            found.append(
                (
                    f"{workflow.workflow}.{step.id}",
                    agent,
                    model,
                    rendered.strip() or step.id,
                    step.output_retries,
                )
            )
    return found


def call_once(agent: Any, model: Any, prompt: str, retries: int) -> dict[str, Any]:
    """One structured call through Baton's model call: its outcome, requests, tokens and time."""
    from pydantic_ai.exceptions import UnexpectedModelBehavior  # deferred: idem

    from baton.agents.model import call_model, made  # deferred: idem

    began = time.perf_counter()
    outcome: dict[str, Any] = {"ok": False, "error": None}
    try:
        answer = asyncio.run(call_model(agent, prompt, lambda: made(agent, model, retries=retries)))
        outcome.update(ok=True, payload=answer.payload)
    except UnexpectedModelBehavior as error:
        outcome.update(error=str(error)[:300], payload=getattr(error, "spent", None) or {})
    payload = outcome.pop("payload")
    outcome.update(
        seconds=time.perf_counter() - began,
        requests=payload.get("requests", 1),
        output_tokens=payload.get("output_tokens", 0),
        input_tokens=payload.get("input_tokens", 0),
    )
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=bounded_int(1, 1000), default=50, help="structured calls (1-1000)")
    parser.add_argument("--threads", type=bounded_int(1, 64), default=2, help="llama.cpp's threads (1-64)")
    args = parser.parse_args()

    from baton import localmodel  # deferred: after the arguments' check (loading a model takes a second)

    try:
        path = localmodel.model_path()
    except SystemExit as missing:
        print(f"bench/model.py: {missing}", file=sys.stderr)
        return 1
    model = localmodel.LocalModel(path, threads=args.threads)
    server = localmodel.serve(model, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{server.server_address[1]}/v1"
    os.environ["AIRFLOW_CONN_BATON_LLM"] = json.dumps(
        {
            "conn_type": "pydanticai",
            "host": host,
            "password": "no-key",
            "extra": {"model": "openai-chat:gemma-3-270m"},
        }
    )
    try:
        steps = steps_to_call(ROOT / "dags")
        if not steps:
            print("bench/model.py: no LLM step with output fields in the bundled templates", file=sys.stderr)
            return 1
        calls = []
        for n in range(args.calls):
            name, agent, output, prompt, retries = steps[n % len(steps)]
            outcome = call_once(agent, output, prompt, retries)
            calls.append({"step": name, **outcome})
            print(f"  {n + 1:>3} {name:<48} {'ok' if outcome['ok'] else 'FAILED':<6} "
                  f"requests {outcome['requests']} {outcome['seconds']:6.1f} s")  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    return report(calls, len(steps))


def report(calls: list[dict[str, Any]], distinct: int) -> int:
    first = sum(c["ok"] and c["requests"] == 1 for c in calls) / len(calls)
    after = sum(c["ok"] for c in calls) / len(calls)
    seconds = sorted(c["seconds"] for c in calls)
    p50 = statistics.median(seconds)
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    rate = sum(c["output_tokens"] for c in calls) / sum(seconds)
    print(f"{len(calls)} calls of {distinct} steps; tokens in {sum(c['input_tokens'] for c in calls)}, "
          f"out {sum(c['output_tokens'] for c in calls)}")  # fmt: skip
    failed = Counter(c["step"] for c in calls if not c["ok"])
    for step, count in failed.most_common():
        error = next(c["error"] for c in calls if c["step"] == step and not c["ok"])
        print(f"  failed: {step} x{count}: {error}")
    print(f"schema-valid first try {100 * first:.0f} %, after re-ask {100 * after:.0f} %; "
          f"p50 {p50:.1f} s, p95 {p95:.1f} s per call; {rate:.0f} tokens/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
