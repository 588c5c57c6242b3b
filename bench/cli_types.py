"""The ``argparse`` types the benchmarks share: a whole number in a range (a seed is one), a fraction, a
number in a range, a subset of names.

Each refuses a bad value before anything runs, in argparse's words (exit 2, ``argument --x: ...``): a
``--scale`` of NaN or 5 used to end in a traceback, or in a headline measured on nothing. This module
imports nothing heavy: a benchmark's measured child processes (bench/hostile.py) import it too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

SEED_MAX = 2**62  # numpy's generators take any seed from 0; run i of a benchmark may use seed + i


def bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number from ``lo`` to ``hi`` (a 0 or a huge ``--runs`` is refused before an Airflow
    starts, not by a median of nothing after)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:  # a word, a fraction, or more digits than Python converts (4,300)
            digits = value.strip().removeprefix("-").removeprefix("+")
            if digits.isascii() and digits.isdigit():
                raise argparse.ArgumentTypeError(
                    f"a number of {len(digits):,} digits is not between {lo} and {hi}"
                ) from None
            raise argparse.ArgumentTypeError(f"'{value[:50]}' is not a whole number") from None
        if not lo <= number <= hi:
            raise argparse.ArgumentTypeError(f"{number} is not between {lo} and {hi}")
        return number

    return parse


def fraction(most: float = 1.0, why: str = "") -> Callable[[str], float]:
    """A number above 0 and at most ``most`` (NaN and infinity are neither); ``why`` ends the message."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{value[:50]}' is not a number") from None
        if not 0 < number <= most:  # False for a NaN too
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"{number} is not above 0 and at most {most:g}{reason}")
        return number

    return parse


def bounded_float(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    """A number from ``lo`` to ``hi`` (NaN and infinity are neither), ``unit`` after the limits."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{value[:50]}' is not a number") from None
        if not lo <= number <= hi:  # False for a NaN too
            raise argparse.ArgumentTypeError(f"{number} is not between {lo:g} and {hi:g}{unit}")
        return number

    return parse


def subset(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """A comma-separated subset of ``choices``, each at most once, in the order given."""

    def parse(value: str) -> list[str]:
        names = value.split(",")
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"'{unknown[0][:50]}' is not one of {', '.join(choices)}"
                + (f" (and {len(unknown) - 1:,} more that are not)" if len(unknown) > 1 else "")
            )
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise argparse.ArgumentTypeError(f"{name} is named more than once")
            seen.add(name)
        return names

    return parse
