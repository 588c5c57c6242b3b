"""The shared context on SQLite and PostgreSQL: every strategy under real concurrency, with the
final value and the events asserted."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from baton.context import ContextConflict, ContextEscalation, ContextStore, Writer

WRITERS = 8


def _writer(i: int) -> Writer:
    return Writer(run_id="run_ctx", workflow="w", name=f"step_{i}", step=f"step_{i}", try_number=1)


def race(store, write: Callable[[ContextStore, int], object]) -> list[object]:
    """Run ``write`` in WRITERS threads released together; each result or exception."""
    context = ContextStore(store)
    barrier = threading.Barrier(WRITERS)

    def one(i: int) -> object:
        barrier.wait()
        try:
            return write(context, i)
        except ContextConflict as error:
            return error

    with ThreadPoolExecutor(WRITERS) as pool:
        return list(pool.map(one, range(WRITERS)))


def _kinds(store) -> Counter:
    return Counter(e.type for e in store.read("run_ctx"))


def _outcomes(store) -> Counter:
    return Counter(e.payload["outcome"] for e in store.read("run_ctx") if e.type == "context.resolved")


def test_reject_lets_one_writer_win_and_tells_the_others_to_reread(store):
    results = race(
        store, lambda ctx, i: ctx.write(_writer(i), "plan", {"by": i}, base_version=0, strategy="reject")
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, ContextConflict)]
    assert (len(winners), len(losers)) == (1, WRITERS - 1)
    assert "read it again and retry" in str(losers[0])
    final = ContextStore(store).get("run_ctx", "plan")
    assert (final.version, final.value) == (1, {"by": int(winners[0].writer.split("_")[1])})
    assert _kinds(store)["context.written"] == 1
    assert _outcomes(store) == Counter({"rejected": WRITERS - 1})


def test_reject_with_recompute_is_optimistic_concurrency_and_loses_no_update(store):
    ContextStore(store).write(_writer(0), "counter", 0, base_version=0, strategy="reject")
    race(
        store,
        lambda ctx, i: ctx.write(
            _writer(i), "counter", 1, base_version=1, strategy="reject", recompute=lambda current: current + 1
        ),
    )
    final = ContextStore(store).get("run_ctx", "counter")
    assert (final.version, final.value) == (WRITERS + 1, WRITERS), "every increment landed once"
    assert _kinds(store)["context.written"] == WRITERS + 1
    assert _outcomes(store)["retried"] >= 1


def test_last_writer_wins_keeps_every_write_as_a_version(store):
    race(
        store,
        lambda ctx, i: ctx.write(
            _writer(i), "owner", f"step_{i}", base_version=0, strategy="last_writer_wins"
        ),
    )
    context = ContextStore(store)
    final = context.get("run_ctx", "owner")
    assert final.version == WRITERS
    assert final.value == final.writer, "the last version is its writer's value"
    assert sorted(context.get("run_ctx", "owner", v).writer for v in range(1, WRITERS + 1)) == sorted(
        f"step_{i}" for i in range(WRITERS)
    )
    assert _kinds(store)["context.written"] == WRITERS
    assert _outcomes(store)["overwrote"] >= WRITERS - 1


def test_merge_unites_every_writers_keys_and_items(store):
    race(
        store,
        lambda ctx, i: ctx.write(
            _writer(i), "workspace", {f"part_{i}": i, "files": [f"f{i}.py"]}, base_version=0, strategy="merge"
        ),
    )
    final = ContextStore(store).get("run_ctx", "workspace")
    assert {k: v for k, v in final.value.items() if k != "files"} == {f"part_{i}": i for i in range(WRITERS)}
    assert sorted(final.value["files"]) == sorted(f"f{i}.py" for i in range(WRITERS))
    assert final.version == WRITERS
    assert _outcomes(store)["merged"] >= WRITERS - 1


def test_three_way_merge_combines_edits_of_different_lines_and_refuses_the_same_line(store):
    base = "".join(f"line {i}\n" for i in range(WRITERS))
    ContextStore(store).write(_writer(0), "doc", base, base_version=0, strategy="three_way_merge")
    race(
        store,
        lambda ctx, i: ctx.write(
            _writer(i),
            "doc",
            base.replace(f"line {i}\n", f"line {i} edited\n"),
            base_version=1,
            strategy="three_way_merge",
        ),
    )
    final = ContextStore(store).get("run_ctx", "doc")
    assert final.value == "".join(f"line {i} edited\n" for i in range(WRITERS))
    assert final.version == WRITERS + 1
    clash = ContextStore(store).write
    with pytest.raises(ContextConflict, match="edited the same lines"):
        clash(
            _writer(9),
            "doc",
            base.replace("line 3\n", "line 3 clash\n"),
            base_version=1,
            strategy="three_way_merge",
        )
    assert _outcomes(store)["unresolved"] == 1


def test_escalate_stops_every_loser_with_both_values_for_a_person(store):
    results = race(
        store, lambda ctx, i: ctx.write(_writer(i), "price", 100 + i, base_version=0, strategy="escalate")
    )
    escalations = [r for r in results if isinstance(r, ContextEscalation)]
    assert len(escalations) == WRITERS - 1
    winner = ContextStore(store).get("run_ctx", "price")
    assert all(e.current == winner.value and e.proposed != winner.value for e in escalations)
    assert "a person must decide" in str(escalations[0])
    assert _outcomes(store) == Counter({"escalated": WRITERS - 1})


def test_an_unknown_strategy_is_refused(store):
    with pytest.raises(ValueError, match="unknown context strategy 'first_wins'; use one of reject, "):
        ContextStore(store).write(_writer(0), "k", 1, base_version=0, strategy="first_wins")
