"""The training methods' hyper-parameters (``Config.loss`` and ``Config.loss_params``; SPEC.md section 9): each
method's parameters, with the official code's default and the allowed range."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .checks import ConfigError, check_float, check_int

__all__ = ["LOSSES", "LossParam", "LossParams", "resolve_loss_params", "param_list"]


@dataclass(frozen=True)
class LossParam:
    """One hyper-parameter of a training method: its default (the official code's) and its allowed range."""

    name: str
    default: float
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    integer: bool = False
    allowed: str = ""


# Config.loss -> the method's hyper-parameters, in the order the kernels read them
# (lnref.kernels.losses.method_dloss; SPEC.md section 9 gives the formulas and the official codes' defaults).
# Adding a method: its g(z) and l(z) in lnref/kernels/losses.py, its name in LOSS_NAMES there, its entry here.
LOSSES: dict[str, tuple[LossParam, ...]] = {
    "logistic": (),
    "gce": (LossParam("q", 0.7, low=0.0, low_open=True, high=1.0, allowed="in (0, 1]"),),
    "sce": (
        LossParam("alpha", 0.1, low=0.0, allowed=">= 0"),
        LossParam("beta", 1.0, low=0.0, allowed=">= 0"),
        LossParam(
            "A",
            math.log(1e-4),
            high=0.0,
            high_open=True,
            allowed="< 0 (the log of the clamped 0 of the one-hot label; the official code's ln 1e-4)",
        ),
    ),
    "label_smoothing": (LossParam("eps", 0.1, low=0.0, high=1.0, high_open=True, allowed="in [0, 1)"),),
    "bootstrap_soft": (LossParam("beta", 0.95, low=0.0, high=1.0, allowed="in [0, 1]"),),
    "bootstrap_hard": (LossParam("beta", 0.8, low=0.0, high=1.0, allowed="in [0, 1]"),),
    "forward": (LossParam("tau", 0.2, low=0.0, high=0.5, high_open=True, allowed="in [0, 1/2)"),),
    "backward": (LossParam("tau", 0.2, low=0.0, high=0.5, high_open=True, allowed="in [0, 1/2)"),),
    "elr": (
        LossParam("lam", 3.0, low=0.0, allowed=">= 0"),
        LossParam("beta", 0.7, low=0.0, high=1.0, allowed="in [0, 1]"),
        LossParam("period", 1, low=1, integer=True, allowed="an integer >= 1 (GD steps between target updates)"),
    ),
}


class LossParams(Mapping):
    """The resolved hyper-parameters of a method (name -> value, every one present): an immutable, hashable
    mapping, so a Config holding it stays frozen and hashable.  ``dict(params)`` gives a plain dict."""

    __slots__ = ("_items",)
    _items: tuple[tuple[str, Any], ...]

    def __init__(self, items=()):
        object.__setattr__(self, "_items", tuple(items))

    def __getitem__(self, key):
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self):
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(dict(self._items))

    def __setattr__(self, name, value):
        raise AttributeError("LossParams is immutable; use Config.replace(loss_params=...)")

    def __reduce__(self):
        return (LossParams, (self._items,))


def resolve_loss_params(loss: str, params: Mapping[str, Any] | None) -> LossParams:
    """Check a method's hyper-parameters and fill in the defaults of the others (in the kernels' order).

    Raises
    ------
    ConfigError
        For a parameter the method does not have (naming the method's) or a value out of its range.
    """
    spec = LOSSES[loss]
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"loss_params={params!r} is not allowed: give a mapping of parameter -> value "
            f"(for loss={loss!r}: {param_list(loss)})"
        )
    known = {p.name for p in spec}
    unknown = [k for k in params if k not in known]
    if unknown:
        owners = sorted({name for name, ps in LOSSES.items() for p in ps if p.name in unknown and name != loss})
        hint = f" (a parameter of {', '.join(map(repr, owners))})" if owners else ""
        raise ConfigError(
            f"loss_params {', '.join(map(repr, map(str, unknown)))} not allowed for loss={loss!r}"
            f"{hint}: loss={loss!r} takes {param_list(loss)}"
        )
    out = []
    for p in spec:
        name = f"loss_params.{p.name}"
        v = params.get(p.name, p.default)
        if p.integer:
            v = check_int(name, v, int(p.low or 0))
        else:
            v = check_float(
                name, v, low=p.low, low_open=p.low_open, high=p.high, high_open=p.high_open, allowed=p.allowed
            )
        out.append((p.name, v))
    return LossParams(out)


def param_list(loss: str) -> str:
    """The parameters of method ``loss`` with their allowed ranges and defaults, for error messages."""
    spec = LOSSES[loss]
    if not spec:
        return "no parameters"
    return ", ".join(f"{p.name} {p.allowed} (default {p.default:.6g})" for p in spec)
