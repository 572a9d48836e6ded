"""The checks every field and input goes through: :class:`ConfigError` and the allowed values (SPEC.md sections
1-3 and 9).  A check raises ConfigError naming the field, the value and what is allowed, before any work starts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "ConfigError",
    "check_int",
    "check_float",
    "check_choice",
    "unknown_fields_message",
]

NOISE_MODELS = ("orthogonal", "isotropic")
FLIP_MODELS = ("independent", "exact")
ALGORITHMS = ("gd", "label_noise_gd", "select_retrain", "truncated_gce", "coteaching")
# the algorithms that choose samples (lnref.training.selection; SPEC.md section 9, "Selection algorithms")
SELECTION_ALGORITHMS = ("select_retrain", "truncated_gce", "coteaching")
SELECT_RULES = ("log2", "rank")
SELECT_THENS = ("continue", "retrain")
TEST_DISTRIBUTIONS = ("iid", "spurious")
ENGINES = ("weights", "coefficients")
SAMPLINGS = ("explicit", "gram")
VIRTUAL_TESTS = ("fixed", "fresh")
INITS = ("gaussian", "torch")
PATCH_REDUCTIONS = ("sum", "mean")


class ConfigError(ValueError):
    """A configuration or input array is invalid; the message says what is allowed."""


def check_int(name: str, value: Any, minimum: int) -> int:
    """The integer ``value`` of field ``name`` (a whole float is accepted), at least ``minimum``; else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name}={value!r} is not allowed: {name} must be an integer >= {minimum}")
    value = int(value)
    if value < minimum:
        raise ConfigError(f"{name}={value} is not allowed: {name} must be an integer >= {minimum}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
    allowed: str = "",
) -> float:
    """The finite real ``value`` of field ``name`` within the given bounds; else ConfigError saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name}={value!r} is not allowed: {name} must be a real number {allowed}".rstrip())
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None and (value < low or (low_open and value == low)):
        bad = True
    if high is not None and (value > high or (high_open and value == high)):
        bad = True
    if bad:
        raise ConfigError(f"{name}={value!r} is not allowed: {name} must be a finite number {allowed}".rstrip())
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; else ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not allowed: choose one of {', '.join(map(repr, choices))}")
    return value


def unknown_fields_message(unknown: list[str], known: list[str] | tuple[str, ...]) -> str:
    """'unknown config field(s) ...' with a 'did you mean' for each and the allowed fields."""
    from .._suggest import suggest

    parts = []
    for name in unknown:
        best = suggest(name, known)
        parts.append(f"{name!r} (did you mean {best[0]!r}?)" if best else repr(name))
    return f"unknown config field(s) {', '.join(parts)}; allowed fields: {', '.join(sorted(known))}"
