"""Hourly demand from recorded history: per-key counts and busy seconds, zero-filled, in UTC, and each key's
service-time profile."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from baton.ops.capacity.common import FIELDS, HOUR_S, MAX_CELLS, CapacityError

# --- hourly series ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One key's service times: how many records, their mean duration and coefficient of variation
    (standard deviation / mean; 1 for exponential times, 0 for constant ones)."""

    calls: int
    mean_s: float
    cv: float


@dataclass(frozen=True)
class Demand:
    """Hourly demand per key, one row per UTC hour from the first to the last (zero-filled).

    ``counts``: records that started in the hour (runs, or agent calls). ``busy``: the seconds of work
    that arrived in the hour (the sum of their durations, all booked to the hour they started in; divided
    by 3,600 it is Erlang's offered load). ``service``: each key's :class:`Service`. ``dropped``: records
    outside the ``start``/``end`` window.
    """

    counts: pd.DataFrame
    busy: pd.DataFrame
    service: dict[str, Service]
    dropped: int = 0


def hourly(
    records: Iterable[Sequence[Any]] | pd.DataFrame,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_cells: int = MAX_CELLS,
) -> Demand:
    """Bucket ``records`` into per-key hourly counts and busy seconds in UTC.

    ``records``: ``(timestamp, key, duration_s)`` triples, or a DataFrame with those columns. A timestamp
    is an aware datetime, an ISO 8601 string with an offset (``Z``, ``+02:00``) or epoch seconds; a naive
    one is refused (the hour would depend on a guess of its zone). ``key`` is a non-empty string.
    ``duration_s`` is a finite number of seconds >= 0. ``start``/``end`` (aware) keep only the records in
    ``[start, end)`` and zero-fill the whole window. Raises :class:`CapacityError` naming the first bad
    record (``records[i]``, counted from 0), an empty history, or a window too large for ``max_cells``.
    """
    frame = _frame(records)
    if frame.empty:
        raise CapacityError("no records: the history is empty (fix: record runs first, or widen the window)")
    keys = _keys(frame)
    durations = _durations(frame, keys)
    seconds = _epoch_seconds(frame["timestamp"], keys)
    first, last, keep = _window(seconds, start, end)
    dropped = int(keep.size - np.count_nonzero(keep))
    if not keep.any():
        raise CapacityError(
            f"no records in the window [{start}, {end}): all {keep.size} are outside it (fix: widen the window)"
        )
    hours, keys, durations = np.floor_divide(seconds[keep], HOUR_S), keys[keep], durations[keep]
    first = int(hours.min()) if first is None else first
    last = int(hours.max()) + 1 if last is None else last
    codes, names = pd.factorize(keys, sort=True)
    span, width = last - first, len(names)
    if span * width > max_cells:
        raise CapacityError(
            f"the history spans {span:,} hours x {width:,} keys = {span * width:,} cells, more than "
            f"max_cells={max_cells:,} (fix: pass start= to keep recent history, or fewer keys per call)"
        )
    cell = (hours - first) * width + codes
    counts = np.bincount(cell, minlength=span * width).reshape(span, width)
    busy = np.bincount(cell, weights=durations, minlength=span * width).reshape(span, width)
    index = pd.date_range(pd.Timestamp(first * HOUR_S, unit="s", tz="UTC"), periods=span, freq="h")
    columns = pd.Index([str(name) for name in names], name="key")
    return Demand(
        counts=pd.DataFrame(counts, index=index, columns=columns),
        busy=pd.DataFrame(busy, index=index, columns=columns),
        service=_service(codes, durations, list(columns)),
        dropped=dropped,
    )


def _frame(records: Iterable[Sequence[Any]] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(records, pd.DataFrame):
        missing = [name for name in FIELDS if name not in records.columns]
        if missing:
            raise CapacityError(
                f"records lack the column(s) {', '.join(missing)} "
                f"(fix: give a DataFrame with the columns {', '.join(FIELDS)})"
            )
        return records.loc[:, list(FIELDS)].reset_index(drop=True)
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        raise CapacityError(
            f"records is {_show(records)}, not a sequence of (timestamp, key, duration_s) (fix: give a list of "
            "triples or a DataFrame)"
        )
    rows = records if isinstance(records, list) else list(records)
    kinds = set(map(type, rows))  # map/set run in C: no Python loop over a million rows
    if any(not issubclass(kind, tuple | list) for kind in kinds):
        i = next(i for i, row in enumerate(rows) if not isinstance(row, tuple | list))
        raise CapacityError(
            f"records[{i}] is {_show(rows[i])}, not a (timestamp, key, duration_s) triple (fix: give a "
            "tuple or list of three fields for each record)"
        )
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero(lengths != len(FIELDS))
    if bad.size:
        i = int(bad[0])
        raise CapacityError(
            f"records[{i}] has {lengths[i]} fields, not 3 (fix: give (timestamp, key, duration_s) for each record)"
        )
    return pd.DataFrame.from_records(rows, columns=list(FIELDS))


def _show(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(i: int, keys: np.ndarray | None) -> str:
    return f"records[{i}]" if keys is None else f"records[{i}] (key {_show(keys[i])})"


def _keys(frame: pd.DataFrame) -> np.ndarray:
    keys = frame["key"]
    if pd.api.types.infer_dtype(keys, skipna=False) != "string":
        i = next(i for i, key in enumerate(keys) if not isinstance(key, str))
        raise CapacityError(
            f"records[{i}]: key is {_show(keys.iloc[i])}, not a name (fix: give the workflow's or the "
            "agent's name as a string)"
        )
    values = keys.to_numpy(dtype=object)
    codes, names = pd.factorize(values)  # a few names among a million records: check each name once
    blank = [code for code, name in enumerate(names) if not name.strip()]
    if blank:
        i = int(np.argmax(codes == blank[0]))
        raise CapacityError(f"records[{i}]: key is empty (fix: give the workflow's or the agent's name)")
    return values


def _durations(frame: pd.DataFrame, keys: np.ndarray) -> np.ndarray:
    raw = frame["duration_s"]
    numeric = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~(np.isfinite(numeric) & (numeric >= 0)))
    if bad.size:
        i = int(bad[0])
        raise CapacityError(
            f"{_where(i, keys)}: duration_s is {_show(raw.iloc[i])}: a duration is a finite number of "
            "seconds >= 0 (fix: drop the record or record its real duration)"
        )
    return numeric


_OFFSET = re.compile(r"(?:Z|[+-]\d\d(?::?\d\d)?)$", re.IGNORECASE)
_NAIVE_FIX = (
    "Baton counts hours in UTC and will not guess a zone (fix: give an aware datetime, an ISO 8601 "
    "string with an offset such as +00:00, or epoch seconds)"
)


def _epoch_seconds(values: pd.Series, keys: np.ndarray) -> np.ndarray:
    """Whole seconds since the epoch (UTC) of each timestamp; a naive or unreadable one is refused."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return _from_epoch(values, keys)
    if pd.api.types.infer_dtype(values, skipna=False).startswith("mixed"):  # numbers among dates: split them
        number = np.fromiter(map(_is_number, values), dtype=bool, count=len(values))
        if number.any():
            seconds = np.empty(len(values), dtype=np.int64)
            seconds[number] = _from_epoch(values[number].astype(float), keys)
            if not number.all():
                seconds[~number] = _from_dates(values[~number], keys)
            return seconds
    return _from_dates(values, keys)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _stamp(values: pd.Series, keys: np.ndarray, i: int) -> str:
    """``records[n] (key ...): timestamp ...`` of the ``i``-th of ``values`` (``n``: its place in the records)."""
    value = values.iloc[i]
    shown = _show(value.isoformat() if isinstance(value, datetime) else value)
    return f"{_where(int(values.index[i]), keys)}: timestamp {shown}"


def _from_epoch(values: pd.Series, keys: np.ndarray) -> np.ndarray:
    seconds = values.to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(seconds) | (np.abs(seconds) > 1e11))  # about year 5138
    if bad.size:
        raise CapacityError(
            f"{_stamp(values, keys, int(bad[0]))} is not a time in epoch seconds (fix: give seconds since "
            "1970-01-01 UTC, or an aware datetime)"
        )
    return np.floor(seconds).astype(np.int64)


def _from_dates(values: pd.Series, keys: np.ndarray) -> np.ndarray:
    parsed = _parse(values, keys)
    if parsed.dt.tz is None:
        raise CapacityError(f"{_stamp(values, keys, 0)} has no time zone: {_NAIVE_FIX}")
    return parsed.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)


def _parse(values: pd.Series, keys: np.ndarray) -> pd.Series:
    """The timestamps as datetimes: in their one zone, or in UTC when they mix zones (naive ones refused)."""
    strings = pd.api.types.infer_dtype(values, skipna=False) == "string"
    kind = {"format": "ISO8601"} if strings else {}
    try:
        return pd.to_datetime(values, **kind)
    except (ValueError, TypeError, OverflowError):
        pass  # mixed zones, a naive one among aware ones, or something that is no date: find which
    naive = np.flatnonzero(values.map(_is_naive).to_numpy(dtype=bool))
    if naive.size:
        raise CapacityError(f"{_stamp(values, keys, int(naive[0]))} has no time zone: {_NAIVE_FIX}")
    try:
        return pd.to_datetime(values, utc=True, **kind)
    except (ValueError, TypeError, OverflowError):
        unread = pd.to_datetime(values, utc=True, errors="coerce", **kind).isna().to_numpy()
        i = int(np.argmax(unread)) if unread.any() else 0
        raise CapacityError(
            f"{_stamp(values, keys, i)} is not a date and time (fix: give an aware datetime, an ISO 8601 "
            "string with an offset, or epoch seconds)"
        ) from None


def _is_naive(value: Any) -> bool:
    if isinstance(value, str):
        return _OFFSET.search(value.strip()) is None and pd.notna(pd.to_datetime(value, errors="coerce"))
    if isinstance(value, datetime):
        return value.utcoffset() is None
    return False


def _epoch(moment: datetime | None, name: str) -> float | None:
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        raise CapacityError(f"{name}={moment!s} has no time zone: {_NAIVE_FIX}")
    return stamp.timestamp()


def _window(
    seconds: np.ndarray, start: datetime | None, end: datetime | None
) -> tuple[int | None, int | None, np.ndarray]:
    """The first hour and the hour after the last of the window (None: the records' own), and which
    records fall in ``[start, end)``."""
    low, high = _epoch(start, "start"), _epoch(end, "end")
    if low is not None and high is not None and high <= low:
        raise CapacityError(f"the window [{start}, {end}) is empty (fix: give an end after the start)")
    keep = np.ones(seconds.size, dtype=bool)
    if low is not None:
        keep &= seconds >= math.floor(low)
    if high is not None:
        keep &= seconds < high
    first = None if low is None else math.floor(low / HOUR_S)
    last = None if high is None else math.ceil(high / HOUR_S)
    return first, last, keep


def _service(codes: np.ndarray, durations: np.ndarray, names: list[str]) -> dict[str, Service]:
    calls = np.bincount(codes, minlength=len(names))
    mean = np.bincount(codes, weights=durations, minlength=len(names)) / calls
    square = np.bincount(codes, weights=(durations - mean[codes]) ** 2, minlength=len(names))
    std = np.sqrt(square / np.maximum(calls - 1, 1))
    cv = np.divide(std, mean, out=np.zeros_like(std), where=mean > 0)
    return {
        name: Service(calls=int(calls[i]), mean_s=float(mean[i]), cv=float(cv[i]))
        for i, name in enumerate(names)
    }
