"""Sticky assignment of a key (a run, a customer) to a variant by weights: a hash of the experiment and
the key, the same in every process, with no state to keep."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from baton.errors import OptimizeError
from baton.optimize import _state

MAX_VARIANTS = 20
MAX_KEY = 100_000
NAME_FIX = "(fix: name the experiment with a short text)"


def _weights(variants: Mapping[str, float], where: str) -> dict[str, float]:
    if not isinstance(variants, Mapping) or not variants:
        raise OptimizeError(f"{where}: must map each variant to its weight, e.g. {{control: 1, shorter: 1}}")
    if len(variants) > MAX_VARIANTS:
        raise OptimizeError(
            f"{where}: {len(variants)} variants, over the limit of {MAX_VARIANTS} (fix: test fewer)"
        )
    weights = {}
    for name, weight in variants.items():
        _state.name(name, where, "a variant's name", fix="(fix: name each variant with a short text)")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise OptimizeError(
                f"{where}.{name}: a weight must be a finite number >= 0, got {weight!r} "
                "(fix: e.g. 1 for an even share, 0 to send it no more runs)"
            )
        weights[name] = float(weight)
    if sum(weights.values()) <= 0:
        raise OptimizeError(
            f"{where}: every weight is 0, so no variant can be assigned (fix: give one a weight > 0)"
        )
    return weights


def assign(experiment: str, key: str, variants: Mapping[str, float]) -> str:
    """The variant of ``key`` in ``experiment``: sticky (a hash, no state) and distributed by the weights."""
    _state.name(experiment, "assign: experiment", "an experiment's name", fix=NAME_FIX)
    if not isinstance(key, str) or len(key) > MAX_KEY:
        raise OptimizeError(
            f"assign: key: must be a text of at most {MAX_KEY:,} characters, got "
            f"{type(key).__name__ if not isinstance(key, str) else f'{len(key):,} characters'} "
            "(fix: use the run's business key or its id)"
        )
    weights = _weights(variants, "assign: variants")
    digest = hashlib.blake2b(f"{experiment}\x1f{key}".encode(errors="surrogatepass"), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * sum(weights.values())
    names = sorted(weights)
    reached = 0.0
    for name in names:
        reached += weights[name]
        if point < reached and weights[name] > 0:
            return name
    return next(name for name in reversed(names) if weights[name] > 0)  # rounding at the very top
