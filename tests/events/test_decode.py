"""The store's JSON reader (baton.events.decode): every document reads exactly as the json module reads it,
malformed text fails with the json module's own error, and data nested too deep for Python's stack fails as
before. Its use by the store: tests/events/test_store.py (a payload that SQLite kept with NaN)."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest

from baton.events.decode import loads


def _document(rng: random.Random, depth: int = 0) -> object:
    """A random JSON value: nested objects and lists, whole numbers up to 400 digits, floats of any bit
    pattern (subnormal, -0.0, the largest), text with escapes, control characters and astral letters."""
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([rng.randrange(-(2**63), 2**64), rng.randrange(10**400), -(10**30)])
    if kind == 2:
        value = struct.unpack("<d", rng.randbytes(8))[0]
        return value if math.isfinite(value) else rng.choice([5e-324, -0.0, 1.7976931348623157e308])
    if kind in (3, 4):
        return "".join(
            rng.choice(['"', "\\", "\n", "\x00", "é", "\u2028", "\U0001f600", "a", "/"])
            for _ in range(rng.randrange(12))
        )
    if kind in (5, 6):
        return {f"k{rng.randrange(5)}": _document(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_document(rng, depth + 1) for _ in range(rng.randrange(5))]


def _same(a: object, b: object) -> bool:
    """Equal, with NaN equal to NaN and -0.0 told from 0.0 (json.dumps writes both apart)."""
    return json.dumps(a) == json.dumps(b) and type(a) is type(b)


def test_stored_json_reads_exactly_as_the_json_module_reads_it():
    rng = random.Random(7)
    texts = [json.dumps(_document(rng), ensure_ascii=rng.random() < 0.5) for _ in range(3000)]
    texts += [
        '{"latency_s": NaN, "cost": Infinity, "floor": -Infinity}',  # json.dumps writes these; SQLite keeps them
        '{"a": 1e400, "b": -1e400}',  # beyond a float: json.loads gives infinities
        '"\\ud800 alone"',  # a lone surrogate escape
        '{"a": 1, "a": 2}',  # a repeated key: the last one
        " \n[1, 2.5, -0, -0.0, 1E2, 1e-7]\t",
        '{"deep": ' * 500 + "1" + "}" * 500,
    ]
    for document in texts:
        for given in (document, document.encode()):
            assert _same(loads(given), json.loads(given)), document[:200]
    # what only one of the two forms can carry: a str with a lone surrogate (not UTF-8), bytes in the other
    # encodings json.loads detects
    given: list[str | bytes] = ['{"a": "x\ud800y"}', '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32")]
    given += [b"\xef\xbb\xbf" + b'{"a": [1, "\xc3\xa9"]}']  # a UTF-8 byte-order mark
    for document in given:
        assert _same(loads(document), json.loads(document)), document


@pytest.mark.parametrize(
    "text", ["{not json", '{"a": 1,}', "", "[1, 2", '{"a": tru}', "'single'", '{"a": 1} trailing', "\ufeff{}"]
)
def test_json_that_is_not_json_fails_with_the_json_modules_own_error(text):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as raised:
        loads(text)
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize(
    ("data", "kind", "said"),
    [
        (b'"\xff"', UnicodeDecodeError, "can't decode byte 0xff in position 1: invalid start byte"),
        (b'{"a": "\xc3"}', UnicodeDecodeError, "can't decode byte 0xc3 in position 7: invalid continuation"),
        (b"\xed\xa0\x80", json.JSONDecodeError, "Expecting value: line 1 column 1"),  # an encoded surrogate
        (b"\x00\x00\x00", json.JSONDecodeError, "Expecting value: line 1 column 1"),
    ],
)
def test_bytes_that_are_not_utf_8_fail_with_the_json_modules_own_error(data, kind, said):
    with pytest.raises(kind, match=said) as expected:
        json.loads(data)
    with pytest.raises(kind, match=said) as raised:
        loads(data)
    assert str(raised.value) == str(expected.value)


def test_json_nested_beyond_pythons_stack_fails_as_before_and_a_large_document_reads_whole():
    deep = "[" * 200_000 + "]" * 200_000
    with pytest.raises(RecursionError):
        json.loads(deep)
    with pytest.raises(RecursionError):
        loads(deep)
    large = json.dumps({"items": [{"id": i, "text": "x" * 100} for i in range(50_000)]})  # ~6 MB
    assert loads(large) == json.loads(large)
