"""Effects happen once per key: the real store (SQLite and PostgreSQL) and a real HTTP service that
counts the posts."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from functools import partial

import httpx
import pytest
from demo.http_service import PartnerService

from baton import effects
from baton.agents.skills import run_skill
from baton.errors import SkillError
from baton.skills.http import post_json
from tests.threads import run_threads


@pytest.fixture
def partner():
    with PartnerService() as service:
        yield service


def _scope(store, **overrides):
    where = {"run_id": "run_1", "workflow": "orders", "step": "notify", "try_number": 1} | overrides
    return effects.scope(store, **where)


def _events(store, kind, run_id="run_1"):
    return [e for e in store.read(run_id, types=[kind])]


# --- once per key --------------------------------------------------------------------------------


def test_the_first_call_posts_and_records_what_it_got(store, partner):
    with _scope(store) as active:
        got = post_json(partner.url("/orders"), {"order": 42})
    assert got == {"status": 201, "body": {"received": 1, "path": "/orders", "duplicate": False}}
    (post,) = partner.posts()
    assert post["body"] == {"order": 42}
    (done,) = _events(store, "effect.done")
    assert (done.step, done.map_index, done.try_number) == ("notify", -1, 1)
    assert done.payload["action"] == "http.post"
    assert done.payload["result"] == got
    assert done.payload["effect_key"] == post["idempotency_key"], "the key is sent as Idempotency-Key"
    assert done.key == f"effect|{done.payload['effect_key']}"
    assert active.effects == [
        {"action": "http.post", "effect_key": post["idempotency_key"], "reused": False, "seq": done.seq}
    ]


def test_a_later_try_reuses_the_recorded_result_and_does_not_post_again(store, partner):
    with _scope(store, try_number=1):
        first = post_json(partner.url("/orders"), {"order": 42})
    for _ in range(2):  # the second try, and a re-run of it: one effect.reused per try
        with _scope(store, try_number=2) as active:
            again = post_json(partner.url("/orders"), {"order": 42})
        assert again == first
        assert [e["reused"] for e in active.effects] == [True]
    with _scope(store, try_number=0):  # baton replay --rerun's scope
        assert post_json(partner.url("/orders"), {"order": 42}) == first
    assert partner.count() == 1
    (done,) = _events(store, "effect.done")
    reused = _events(store, "effect.reused")
    assert sorted(e.try_number for e in reused) == [0, 2]
    assert {e.payload["done_seq"] for e in reused} == {done.seq}
    assert {e.payload["effect_key"] for e in reused} == {done.payload["effect_key"]}


@pytest.mark.parametrize(
    "other",
    [{"map_index": 3}, {"subtask": "lead_7"}, {"step": "notify_again"}, {"run_id": "run_2"}],
    ids=["map_index", "subtask", "step", "run"],
)
def test_another_map_index_subtask_step_or_run_is_another_effect(store, partner, other):
    with _scope(store):
        post_json(partner.url("/orders"), {"order": 42})
    with _scope(store, try_number=2, **other):
        got = post_json(partner.url("/orders"), {"order": 42})
    assert got["body"]["received"] == 2
    assert partner.count() == 2
    assert len(set(partner.by_key())) == 2


@effects.effect("http.put")
def put_json(url: str, body: dict, idempotency_key: str | None = None) -> dict:
    """Another action: a separate effect even at the same place."""
    response = httpx.post(url, json=body, headers={"Idempotency-Key": idempotency_key or ""})
    return {"status": response.status_code}


def test_another_action_is_another_effect(store, partner):
    with _scope(store):
        post_json(partner.url("/orders"), {"order": 42})
        put_json(partner.url("/orders"), {"order": 42})
    with _scope(store, try_number=2):
        post_json(partner.url("/orders"), {"order": 42})
        put_json(partner.url("/orders"), {"order": 42})
    assert partner.count() == 2
    assert sorted(e.payload["action"] for e in _events(store, "effect.done")) == ["http.post", "http.put"]


def test_the_second_call_of_an_action_in_a_scope_is_a_second_effect(store, partner):
    with _scope(store):
        one = post_json(partner.url("/orders"), {"order": 1})
        two = post_json(partner.url("/orders"), {"order": 2})
    assert (one["body"]["received"], two["body"]["received"]) == (1, 2)
    with _scope(store, try_number=2) as active:
        assert post_json(partner.url("/orders"), {"order": 1}) == one
        assert post_json(partner.url("/orders"), {"order": 2}) == two
        third = post_json(partner.url("/orders"), {"order": 3})  # new in this try: it happens
    assert third["body"]["received"] == 3
    assert [e["reused"] for e in active.effects] == [True, True, False]
    assert [p["body"] for p in partner.posts()] == [{"order": 1}, {"order": 2}, {"order": 3}]
    assert len(partner.by_key()) == 3


def test_an_explicit_effect_key_names_the_effect_instead_of_its_ordinal(store, partner):
    with _scope(store):
        post_json(partner.url("/orders"), {"order": 1}, effect_key="order-1")
        post_json(partner.url("/orders"), {"order": 2}, effect_key="order-2")
    with _scope(store, try_number=2):  # another order of calls, same effects
        post_json(partner.url("/orders"), {"order": 2}, effect_key="order-2")
        post_json(partner.url("/orders"), {"order": 1}, effect_key="order-1")
        post_json(partner.url("/orders"), {"order": 0})  # ordinal 0: not taken by the named ones
    assert [p["body"] for p in partner.posts()] == [{"order": 1}, {"order": 2}, {"order": 0}]


# --- failures ------------------------------------------------------------------------------------


def test_a_failed_call_records_nothing_and_the_next_try_posts(store, partner):
    partner.fail("/orders", times=1)
    with _scope(store, try_number=1), pytest.raises(SkillError) as failed:
        post_json(partner.url("/orders?token=s3cret"), {"order": 42}, step="notify")
    message = str(failed.value)
    assert "http://127.0.0.1:" in message and "/orders answered 500" in message
    assert "step 'notify'" in message
    assert "s3cret" not in message, "the query string may hold a secret"
    assert _events(store, "effect.done") == []
    with _scope(store, try_number=2):
        got = post_json(partner.url("/orders?token=s3cret"), {"order": 42})
    assert got["status"] == 201
    assert [p["status"] for p in partner.posts()] == [500, 201]
    assert len(_events(store, "effect.done")) == 1


def test_a_call_that_failed_gives_its_ordinal_back_to_a_retry_in_the_same_scope(store, partner):
    partner.fail("/orders", times=1)
    with _scope(store):
        for _ in range(2):  # a skill's own retry loop
            try:
                first = post_json(partner.url("/orders"), {"order": 42})
                break
            except SkillError:
                continue
    with _scope(store, try_number=2):
        assert post_json(partner.url("/orders"), {"order": 42}) == first
    assert partner.count() == 1


def test_an_unreachable_service_is_a_skill_error_naming_the_url(store):
    with PartnerService() as gone:
        url = gone.url("/orders")
    with _scope(store), pytest.raises(SkillError, match=r"POST http://127\.0\.0\.1:\d+/orders failed"):
        post_json(url, {}, timeout=2)
    assert _events(store, "effect.done") == []


@effects.effect("demo.object")
def returns_an_object() -> object:
    return object()


def test_a_result_that_is_not_json_is_a_clear_type_error(store):
    with _scope(store), pytest.raises(TypeError, match="not JSON-serialisable.*Return JSON data"):
        returns_an_object()
    assert _events(store, "effect.done") == []


def test_a_large_result_is_stored_as_a_blob_and_reused_from_it(store):
    calls = []

    @effects.effect("demo.large")
    def large() -> dict:
        calls.append(1)
        return {"rows": [{"n": n, "text": "x" * 40} for n in range(1000)]}

    with _scope(store):
        first = large()
    (done,) = _events(store, "effect.done")
    assert done.payload["ref"] and done.payload["result"] is None
    with _scope(store, try_number=2):
        assert large() == first
    assert len(calls) == 1


def test_an_unreadable_record_refuses_to_do_the_effect_again(store):
    from sqlalchemy import delete, update

    from baton.events import schema

    calls = []

    @effects.effect("demo.large")
    def large() -> dict:
        calls.append(1)
        return {"rows": ["x" * 60] * 1000}

    with _scope(store):
        large()
    (done,) = _events(store, "effect.done")
    with store.engine.begin() as conn:  # the result's blob is gone
        conn.execute(delete(schema.blobs).where(schema.blobs.c.sha256 == done.payload["ref"]))
    with _scope(store, try_number=2), pytest.raises(effects.EffectError) as missing:
        large()
    assert str(missing.value) == (
        f"Effect 'demo.large' of step 'notify' was done (event {done.seq}) but its record cannot be read "
        f"(its result blob {done.payload['ref'][:12]} is missing); it is not done again. Repair or remove "
        f"event {done.seq} to let it run."
    )
    with store.engine.begin() as conn:  # the record no longer fits effect.done
        conn.execute(update(schema.events).where(schema.events.c.seq == done.seq).values(payload={"x": 1}))
    with _scope(store, try_number=3), pytest.raises(effects.EffectError, match=r"payload does not fit"):
        large()
    assert calls == [1]


def test_a_replay_scope_does_not_do_an_effect_the_run_did_not_do(store, partner):
    with _scope(store, try_number=0, allow_new=False), pytest.raises(effects.EffectError, match="not done"):
        post_json(partner.url("/orders"), {"order": 42})
    assert partner.posts() == []


# --- sync, async, threads, no scope -----------------------------------------------------------------


@effects.effect("http.apost")
async def apost(url: str, body: dict, idempotency_key: str | None = None) -> dict:
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json=body, headers={"Idempotency-Key": idempotency_key})
    return {"status": response.status_code, "body": response.json()}


def test_an_async_effect_in_fan_out_subtasks_each_with_its_own_scope(store, partner):
    async def subtask(name: str, try_number: int) -> dict:
        with _scope(store, subtask=name, try_number=try_number):
            await asyncio.sleep(0)
            return await apost(partner.url("/leads"), {"lead": name})

    async def fan_out(try_number: int) -> list[dict]:
        return await asyncio.gather(*(subtask(f"lead_{n}", try_number) for n in range(5)))

    first = asyncio.run(fan_out(1))
    assert effects.current() is None, "each task's scope stays in its task"
    again = asyncio.run(fan_out(2))
    assert again == first
    assert partner.count() == 5 and set(partner.by_key().values()) == {1}
    assert {e.payload["subtask"] for e in _events(store, "effect.reused")} == {f"lead_{n}" for n in range(5)}


def test_a_thread_started_with_the_copied_context_is_in_the_scope(store, partner):
    with _scope(store) as active:
        context = contextvars.copy_context()
        (posted,) = run_threads([partial(context.run, post_json, partner.url("/orders"), {"order": 1})], 60)
        assert posted
        assert asyncio.run(asyncio.to_thread(post_json, partner.url("/orders"), {"order": 2}))
    assert len(active.effects) == 2
    assert len(_events(store, "effect.done")) == 2


def test_outside_a_scope_the_effect_runs_with_one_warning(partner, caplog, monkeypatch):
    monkeypatch.setattr(effects, "_WARNED", set())
    assert effects.current() is None
    with caplog.at_level(logging.WARNING, logger="baton.effects"):
        post_json(partner.url("/orders"), {"order": 1})
        post_json(partner.url("/orders"), {"order": 1})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'http.post'" in warnings[0].getMessage() and "not deduplicated" in warnings[0].getMessage()
    assert partner.count() == 2, "not deduplicated: each call posts"
    assert [p["idempotency_key"] for p in partner.posts()] == [None, None]


def test_the_decorator_needs_an_action_name():
    with pytest.raises(ValueError, match="needs the action's name"):
        effects.effect("")


# --- the http_post skill ---------------------------------------------------------------------------


def _run_http_post(args, inputs=None, step_id="notify"):
    return run_skill(
        "http_post",
        workflow="orders",
        step_id=step_id,
        output_spec=None,
        instruction="",
        scope={"inputs": inputs or {"month": "2026-10"}, "steps": {}, "run": {"id": "run_1"}},
        with_=args,
    )


def test_the_http_post_skill_posts_its_with_arguments_once(store, partner):
    args = {"url": partner.url("/orders"), "json": {"order": 42}, "headers": {"X-Source": "baton"}}
    with _scope(store, try_number=1):
        got = _run_http_post(args)
    with _scope(store, try_number=2):
        assert _run_http_post(args) == got
    assert got == {"status": 201, "body": {"received": 1, "path": "/orders", "duplicate": False}}
    assert [p["body"] for p in partner.posts()] == [{"order": 42}]


def test_the_http_post_skill_posts_the_inputs_by_default(store, partner):
    with _scope(store):
        _run_http_post({"url": partner.url("/orders")}, inputs={"month": "2026-11", "region": "emea"})
    assert partner.posts()[0]["body"] == {"month": "2026-11", "region": "emea"}


def test_the_http_post_skill_takes_an_airflow_connection(store, partner, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_PARTNER", partner.base_url)
    with _scope(store):
        got = _run_http_post({"conn_id": "demo_partner", "path": "/v1/orders", "json": {"order": 1}})
    assert got["body"]["path"] == "/v1/orders"
    assert partner.count("/v1/orders") == 1


def test_a_non_2xx_answer_fails_the_skill_and_is_not_recorded(store, partner):
    partner.fail("/orders", times=-1)
    with _scope(store), pytest.raises(SkillError) as failed:
        _run_http_post({"url": partner.url("/orders?api_key=s3cret")})
    assert "step 'notify': POST http://127.0.0.1:" in str(failed.value)
    assert "/orders answered 500 Internal Server Error" in str(failed.value)
    assert "s3cret" not in str(failed.value)
    assert _events(store, "effect.done") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "step 'notify' (skill http_post): no URL to post to; add to the step `with: {url: "),
        ({"url": "http://a", "conn_id": "b"}, "give either 'url' or 'conn_id', not both"),
        ({"urll": "http://a"}, "unknown argument(s) urll in 'with'"),
        ({"url": "ftp://a/b"}, "'with.url' must be an http(s) URL"),
        ({"url": "http://a", "timeout": "soon"}, "'with.timeout' must be a number of seconds"),
        ({"url": "http://a", "headers": ["X"]}, "'with.headers' must be a mapping"),
        ({"conn_id": "no_such_partner"}, "there is no Airflow connection 'no_such_partner'"),
    ],
)
def test_wrong_arguments_say_what_to_fix(store, args, message):
    with _scope(store), pytest.raises(SkillError) as failed:
        _run_http_post(args)
    assert message in str(failed.value)
    assert _events(store, "effect.done") == []
