"""Taking in another implementation's arrays: fixtures from a Config or a file, dtypes, shapes, layouts.

Everything a user passes to :mod:`lnref.testing` goes through here before any comparison: a refused input raises
:class:`lnref.ConfigError` naming what was wrong and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from .fixtures import Fixture, load_fixture, make_fixture

__all__ = ["as_fixture", "to_numpy", "shape_message", "split_pair", "their_checkpoints", "their_biases", "their_loss"]


def as_fixture(obj: Fixture | Config | str | os.PathLike) -> Fixture:
    """The fixture a check runs on: ``obj`` itself, a fixture file, or one made on the fly from a Config.

    A fixture made from a Config exercises the model's special points like ``lnref export``'s (the last filter of
    each class orthogonal to mu, so some pre-activations are exactly 0 and sigma'(0) matters; SPEC.md section 2).
    Should that fixture's GD diverge before its last checkpoint where the unedited one does not, the unedited one
    is used (its report then says that the kink was not exercised).
    """
    if isinstance(obj, Fixture):
        return obj
    if isinstance(obj, Config):
        ck = [0, 1] if obj.steps >= 1 else [0]
        try:
            return make_fixture(obj, ck, exercise=True)
        except FloatingPointError:
            return make_fixture(obj, ck, exercise=False)
    if isinstance(obj, (str, Path, os.PathLike)):
        return load_fixture(obj)
    raise ConfigError(f"expected an lnref fixture (Fixture or .npz path) or an lnref.Config, got {type(obj).__name__}")


def to_numpy(name: str, a: Any) -> np.ndarray:
    """``a`` as a NumPy array; only float64 and float32 are accepted (complex, float16, integers refused)."""
    if hasattr(a, "detach"):  # torch tensors
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:  # noqa: BLE001 - np.asarray runs the object's own __array__: anything may raise
        raise ConfigError(f"{name} cannot be converted to a NumPy array: {exc}") from None
    if arr.dtype not in (np.float64, np.float32):
        raise ConfigError(
            f"{name} must be float64 or float32, got dtype {arr.dtype} (complex, float16, bfloat16 "
            "and integer arrays are refused: cast to float64)"
        )
    return arr


def shape_message(name: str, got: tuple, want: tuple) -> str:
    msg = f"{name} has shape {got}; expected {want} (layout W[j, r, :], index 0 holds j = +1)"
    if len(got) >= 3 and tuple(got[-3:]) == (want[-2], want[-3], want[-1]) and want[-2] != want[-3]:
        msg += "; it looks like (m, 2, d): transpose the j and r axes"
    return msg


def split_pair(kind: str, t: int, out: Any, fx: Fixture) -> tuple[Any, Any]:
    """(W part, b part) of a function's output: a pair (W-like, b-like) for a fixture with biases."""
    if not fx.has_bias:
        if isinstance(out, tuple):
            raise ConfigError(
                f"their {kind} function returned a tuple of {len(out)} at step {t}; this fixture's "
                "network has no bias (config bias=False): return one array of shape (2, m, d)"
            )
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ConfigError(
            f"this fixture's network has biases (config bias=True): their {kind} function must return "
            f"a pair ({'grad_W, grad_b' if kind == 'gradient' else 'W_next, b_next'}) of shapes "
            f"(2, m, d) and (2, m); at step {t} it returned {type(out).__name__}"
        )
    return out[0], out[1]


def their_checkpoints(theirs: Any, fx: Fixture) -> tuple[list[int], list[np.ndarray], list[str], list[int]]:
    """(compared steps, their W at them as float64, their dtypes, their steps that are not checkpoints)."""
    shape = (2, fx.m, fx.d)
    if isinstance(theirs, Mapping):
        items = sorted(((int(s), W) for s, W in theirs.items()), key=lambda kv: kv[0])
    else:
        arr = to_numpy("their checkpoints", theirs)
        if arr.ndim != 4 or arr.shape[1:] != shape:
            raise ConfigError(shape_message("their W", arr.shape, (fx.steps.size, *shape)))
        if arr.shape[0] != fx.steps.size:
            raise ConfigError(
                f"their W has {arr.shape[0]} checkpoints but the fixture has {fx.steps.size} "
                f"(steps {fx.steps.tolist()}); pass a dict step -> W for a subset or other steps"
            )
        items = list(zip(fx.steps.tolist(), arr))
    if not items:
        raise ConfigError(
            f"no checkpoints to compare: give W at one or more of the fixture's steps {fx.steps.tolist()}"
        )
    ck = set(fx.steps.tolist())
    steps, Ws, dtypes, extra = [], [], [], []
    for s, W in items:
        if s < 0:
            raise ConfigError(f"step {s} is not allowed: steps are >= 0")
        a = to_numpy(f"their W at step {s}", W)
        if a.shape != shape:
            raise ConfigError(shape_message(f"their W at step {s}", a.shape, shape))
        if s not in ck:
            extra.append(s)
            continue
        steps.append(s), Ws.append(np.asarray(a, dtype=np.float64)), dtypes.append(str(a.dtype))
    if not any(s > 0 for s in steps):
        raise ConfigError(
            f"nothing to judge: their file has no GD step beyond 0 at a checkpoint of the fixture "
            f"(fixture checkpoints {fx.steps.tolist()}, their steps {[s for s, _ in items]}); "
            "save W at the fixture's checkpoints"
        )
    return steps, Ws, dtypes, extra


def their_biases(biases: Any, fx: Fixture, steps: list[int], given_steps: list[int] | None) -> list[np.ndarray]:
    """Their b (2, m) at the compared ``steps`` as float64, from a mapping or an array aligned like their W."""
    shape = (2, fx.m)
    if isinstance(biases, Mapping):
        bmap = {int(k): v for k, v in biases.items()}
        missing = [s for s in steps if s not in bmap]
        if missing:
            raise ConfigError(f"their biases are missing step(s) {missing} (they are given for their W)")
    else:
        arr = to_numpy("their biases", biases)
        order = given_steps if given_steps is not None else [int(t) for t in fx.steps]
        if arr.ndim != 3 or arr.shape != (len(order), *shape):
            raise ConfigError(
                f"their biases have shape {arr.shape}; expected ({len(order)}, 2, m) = "
                f"{(len(order), *shape)}, one b[j, r] per step of their W (index 0 holds j = +1)"
            )
        bmap = dict(zip(order, arr))
    out = []
    for s in steps:
        b = to_numpy(f"their biases at step {s}", bmap[s])
        if b.shape != shape:
            raise ConfigError(
                f"their biases at step {s} have shape {b.shape}; expected (2, m) = {shape} (b[j, r], "
                "index 0 holds j = +1)"
            )
        out.append(np.asarray(b, dtype=np.float64))
    return out


def their_loss(
    loss: Mapping[int, float] | Sequence[float], steps: list[int], given_steps: list[int] | None
) -> np.ndarray:
    """Their loss at the compared ``steps`` as float64, from a mapping or a sequence aligned with their W."""
    if isinstance(loss, Mapping):
        lmap = {int(k): float(v) for k, v in loss.items()}
        missing = [s for s in steps if s not in lmap]
        if missing:
            raise ConfigError(f"their loss is missing step(s) {missing}")
        return np.array([lmap[s] for s in steps])
    arr = np.asarray(to_numpy("their loss", loss), dtype=np.float64).ravel()
    if given_steps is not None:
        if arr.shape != (len(given_steps),):
            raise ConfigError(
                f"their loss has shape {arr.shape}; expected ({len(given_steps)},), one value per step of their W"
            )
        lmap = dict(zip(given_steps, arr.tolist()))
        return np.array([lmap[s] for s in steps])
    if arr.shape != (len(steps),):
        raise ConfigError(f"their loss has shape {arr.shape}; expected ({len(steps)},)")
    return arr
