"""The three checks of another implementation against a fixture, and their assert_* forms.

* :func:`check_gradient` calls ``grad_fn(W, mu, xi, y, y_obs, q) -> (2, m, d)`` at every checkpoint;
* :func:`check_step` calls ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` (one GD step) likewise;
* :func:`compare_trajectory` compares the weights another implementation reached at the checkpoint steps.

Calling convention of ``grad_fn`` and ``step_fn``: every argument is a C-contiguous NumPy float64 array (``q`` and
``eta`` Python floats): ``W`` (2, m, d) with index 0 holding j = +1, ``mu`` (d,), ``xi`` (n, d), ``y`` (n,) the
TRUE labels (the signal patch of sample i is ``y[i] * mu``), ``y_obs`` (n,) the labels the loss uses (for
label-noise GD already ``eps[t] * y_obs``).  Return anything ``np.asarray`` accepts (a CPU tensor is fine).

Networks with biases (a fixture whose config has ``bias=True``, SPEC.md section 7): the functions also get the
biases as a keyword, ``b`` (2, m) laid out like W (``b[j, r]`` is the bias of filter w_jr), and return a pair:
``grad_fn(..., q, b=b) -> (grad_W, grad_b)`` and ``step_fn(..., eta, b=b) -> (W', b')``; their trajectory is
given with ``compare_trajectory(Ws, fixture, biases=bs)``.  The bias part is checked at the same bound as W.  The
other conventions (``patch_reduce``, ``output_scale``) are fixed by the fixture's config: the implementation
builds them into its network.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..model import gradients as model_gradients
from ..model import loss as model_loss
from .catalogue import Mistake, applicable, with_value
from .fixtures import Fixture, bias_scale, load_fixture, make_fixture
from .replay import Problem, simulate
from .replay import gradient as replay_gradient
from .report import (
    CheckpointError,
    Judge,
    Report,
    coefficients,
    decomposable,
    describe_matches,
    findings,
    maxabs,
    not_in_catalogue,
    rel,
)
from .tolerances import Tolerance, bounds, judgeable, resolve_tolerance

__all__ = ["check_gradient", "check_step", "compare_trajectory", "assert_gradient_matches", "assert_step_matches",
           "assert_trajectory_matches", "to_numpy"]

#: replays are skipped above this much work (steps x m x n x d x entries)
REPLAY_BUDGET = 4e10


def _as_fixture(obj: Fixture | Config | str | os.PathLike) -> Fixture:
    if isinstance(obj, Fixture):
        return obj
    if isinstance(obj, Config):
        return make_fixture(obj, [0, 1] if obj.steps >= 1 else [0])
    if isinstance(obj, (str, Path, os.PathLike)):
        return load_fixture(obj)
    raise ConfigError(f"expected an lnref fixture (Fixture or .npz path) or an lnref.Config, got "
                      f"{type(obj).__name__}")


def to_numpy(name: str, a: Any) -> np.ndarray:
    """``a`` as a NumPy array; only float64 and float32 are accepted (complex, float16, integers refused)."""
    if hasattr(a, "detach"):  # torch tensors
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:
        raise ConfigError(f"{name} cannot be converted to a NumPy array: {exc}") from None
    if arr.dtype not in (np.float64, np.float32):
        raise ConfigError(f"{name} must be float64 or float32, got dtype {arr.dtype} (complex, float16, bfloat16 "
                          "and integer arrays are refused: cast to float64)")
    return arr


def _shape_message(name: str, got: tuple, want: tuple) -> str:
    msg = f"{name} has shape {got}; expected {want} (layout W[j, r, :], index 0 holds j = +1)"
    if len(got) >= 3 and tuple(got[-3:]) == (want[-2], want[-3], want[-1]) and want[-2] != want[-3]:
        msg += "; it looks like (m, 2, d): transpose the j and r axes"
    return msg


def _reshape_export(W: np.ndarray) -> np.ndarray:
    m = W.shape[1]
    return np.ascontiguousarray(W.transpose(1, 0, 2)).reshape(2, m, W.shape[2])


def _reshape_import(W0: np.ndarray) -> np.ndarray:
    m = W0.shape[1]
    return np.ascontiguousarray(W0.reshape(m, 2, W0.shape[2]).transpose(1, 0, 2))


def _float32_hint(subs, refs, ref32s, scales, steps, stored32: bool) -> str | None:
    """A float32 hint, stated only when the submission is within 10x the distance of a float32 replay."""
    worst_t, worst_r = 0.0, 0.0
    for s, r, r32, sc in zip(subs, refs, ref32s, scales):
        if not np.all(np.isfinite(s)):
            return None
        d_sub = rel(maxabs(s - r), sc)
        d32 = max(rel(maxabs(r32 - r), sc), 2.0 ** -24)
        if d_sub > 10.0 * d32:
            return None
        worst_t, worst_r = max(worst_t, d_sub), max(worst_r, d32)
    how = "their arrays are float32" if stored32 else "their arrays are float64 but"
    return (f"float32 rounding explains the differences: {how} within 10x of lnref's exact dynamics replayed in "
            f"float32 (the float32 replay differs from lnref by up to {worst_r:.1e}, theirs by {worst_t:.1e} at "
            f"step(s) {', '.join(map(str, steps))}); compare with tier 'float32', or compute in float64 "
            "(torch.float64, jax_enable_x64)")


# --------------------------------------------------------------------------------------------- gradient / step
def _b_for(fx: Fixture, v, k: int) -> np.ndarray | None:
    """The biases a replay under ``v`` uses at checkpoint index k: the fixture's b(t) (zeros for a fixture without
    biases), or None when ``v`` has no bias."""
    if not v.bias:
        return None
    return fx.b[k] if fx.has_bias else np.zeros((2, fx.m))


def _split_pair(kind: str, t: int, out: Any, fx: Fixture) -> tuple[Any, Any]:
    """(W part, b part) of a function's output: a pair (W-like, b-like) for a fixture with biases."""
    if not fx.has_bias:
        if isinstance(out, tuple):
            raise ConfigError(f"their {kind} function returned a tuple of {len(out)} at step {t}; this fixture's "
                              "network has no bias (config bias=False): return one array of shape (2, m, d)")
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ConfigError(f"this fixture's network has biases (config bias=True): their {kind} function must return "
                          f"a pair ({'grad_W, grad_b' if kind == 'gradient' else 'W_next, b_next'}) of shapes "
                          f"(2, m, d) and (2, m); at step {t} it returned {type(out).__name__}")
    return out[0], out[1]


def _check_arrays(kind: str, fx: Fixture, outputs: Sequence[Any], refs: Sequence[np.ndarray],
                  bases: Sequence[np.ndarray], tol: Tolerance,
                  predict: Callable[[Mistake, float | None, int], np.ndarray | None],
                  predict32: Callable[[int], np.ndarray], b_refs: Sequence[np.ndarray] | None = None,
                  b_bases: Sequence[np.ndarray] | None = None) -> Report:
    """Shared body of check_gradient / check_step: ``outputs[k] - bases[k]`` vs ``refs[k]`` (and, for a network
    with biases, the b part of each output minus ``b_bases[k]`` vs ``b_refs[k]``, at the same bound)."""
    rep = Report(kind, tol)
    shape = (2, fx.m, fx.d)
    subs, scales, bnds, origs = [], [], [], []
    b_bad: list[str] = []
    for k, t in enumerate(fx.steps):
        t = int(t)
        out, out_b = _split_pair(kind, t, outputs[k], fx)
        orig = to_numpy(f"the {kind} at step {t}", out)
        if orig.shape == (fx.m, 2, fx.d) and fx.m != 2:
            rep.rows.append(CheckpointError(t, math.inf, math.inf, tol.at(0), False))
            rep.first_failure = t
            rep.findings.append(f"their {kind} has shape {orig.shape} = (m, 2, d); lnref's layout is (2, m, d)")
            back = np.asarray(orig, dtype=np.float64).transpose(1, 0, 2) - bases[k]
            ok = rel(maxabs(back - refs[k]), maxabs(refs[k])) <= max(tol.at(0), 1e-6)
            rep.diagnosis.append("the j and r axes are transposed: use W[j, r, :] with shape (2, m, d), index 0 for "
                                 "j = +1" + (" (transposed back, their values match lnref's)" if ok else ""))
            return rep
        if orig.shape != shape:
            raise ConfigError(f"their {kind} at step {t} has shape {orig.shape}; expected (2, m, d) = {shape}")
        a = np.asarray(orig, dtype=np.float64) - bases[k]
        ref = refs[k]
        finite = bool(np.all(np.isfinite(a)))
        diff = maxabs(a - ref) if finite else math.inf
        scale = maxabs(ref) + (tol.unit_roundoff * maxabs(bases[k]) if kind == "step" else 0.0)
        r = rel(diff, scale)
        ok = r <= tol.at(0) or diff <= tol.atol
        row = CheckpointError(t, diff, r, tol.at(0), ok)
        if decomposable(fx) and finite:
            g_t, r_t, _ = coefficients(a, fx)
            g_r, r_r, _ = coefficients(ref, fx)
            sg, sr = maxabs(g_r), maxabs(r_r)
            sg, sr = sg or max(sg, sr), sr or max(sg, sr)
            row.gamma_rel_err = rel(maxabs(g_t - g_r), sg)
            row.rho_rel_err = rel(maxabs(r_t - r_r), sr)
        if out_b is not None:
            ob = to_numpy(f"the bias part of their {kind} at step {t}", out_b)
            if ob.shape != (2, fx.m):
                raise ConfigError(f"the bias part of their {kind} at step {t} has shape {ob.shape}; expected (2, m) = "
                                  f"{(2, fx.m)} (b[j, r], index 0 holds j = +1)")
            ab = np.asarray(ob, dtype=np.float64) - b_bases[k]
            bref = b_refs[k]
            bscale = maxabs(bref) + (tol.unit_roundoff * maxabs(b_bases[k]) if kind == "step" else 0.0)
            bdiff = maxabs(ab - bref) if np.all(np.isfinite(ab)) else math.inf
            row.b_rel_err = rel(bdiff, bscale)
            b_ok = row.b_rel_err <= tol.at(0) or bdiff <= tol.atol
            if not b_ok:
                row.ok = ok = False
                if not b_bad:
                    where = np.argwhere(np.abs(ab - bref) > max(tol.at(0) * bscale, tol.atol)) \
                        if np.all(np.isfinite(ab)) else np.argwhere(~np.isfinite(ab))
                    shown = ", ".join(f"(j={'+1' if j == 0 else '-1'}, r={r})" for j, r in where[:6])
                    b_bad.append(f"the bias part of their {kind} differs from lnref's at step {t} for {len(where)} "
                                 f"of {2 * fx.m} filters: {shown}; max relative difference {row.b_rel_err:.3g}")
        rep.rows.append(row)
        subs.append(a), scales.append(scale), bnds.append(tol.at(0)), origs.append(orig)
        if not ok and rep.first_failure is None:
            rep.first_failure = t
    if rep.first_failure is None:
        return rep
    rep.findings += b_bad
    k = [r.ok for r in rep.rows].index(False)
    t, a, ref = int(fx.steps[k]), subs[k], refs[k]
    if not (rel(maxabs(a - ref), scales[k]) > tol.at(0)) and np.all(np.isfinite(a)):
        rep.findings.append(f"their {kind} of W agrees with lnref's at step {t}; only the bias part differs")
        rep.diagnosis.append("only the bias part differs; the catalogue's replays are judged on W, so no cause is "
                             "named: check dL/db (SPEC.md section 7: dL/db_jr = (s_j kappa / n) sum_i l'_i y_obs_i "
                             "[sigma'(<w_jr, y_i mu> + b_jr) + sigma'(<w_jr, xi_i> + b_jr)])")
        return rep
    if not np.all(np.isfinite(a)):
        rep.findings.append(f"their {kind} contains NaN or infinite values at step {t}; lnref's is finite")
    elif decomposable(fx):
        g_t, r_t, outside = coefficients(a, fx)
        g_r, r_r, _ = coefficients(ref, fx)
        sg, sr = maxabs(g_r), maxabs(r_r)
        sg, sr = sg or max(sg, sr), sr or max(sg, sr)
        rep.findings += findings(g_t - g_r, r_t - r_r, sg, sr, fx, tol.at(0))
        if outside > 1e-6:
            rep.findings.append(f"{outside:.2g} of their {kind} (relative) lies outside span{{mu, xi_1..xi_n}}: "
                                "it uses vectors other than the signal and the noise patches")
    else:
        rep.notes.append("no coefficient breakdown: it needs d >= n + 1, mu != 0 and every xi_i != 0")
    failing = [j for j, r in enumerate(rep.rows) if not r.ok]
    steps_all = [int(s) for s in fx.steps]

    def pred_all(e: Mistake, value: float | None):
        out = []
        for j in range(len(steps_all)):
            p = predict(e, value, j)
            if p is None:
                return None
            out.append(p)
        return out

    entries = applicable(fx, kind)
    matches = Judge(fx, subs, list(refs), scales, bnds, pred_all).judge(entries)
    if matches:
        describe_matches(rep, fx, matches, f"their {kind}", steps_all)
        return rep
    stored32 = all(o.dtype == np.float32 for o in origs)
    hint = _float32_hint([subs[j] for j in failing], [refs[j] for j in failing],
                         [predict32(j) for j in failing], [scales[j] for j in failing],
                         [steps_all[j] for j in failing], stored32)
    if hint:
        rep.diagnosis.append(hint)
        return rep
    not_in_catalogue(rep, len(entries))
    return rep


def _check_gradient(grad_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike, *,
                   tier: str | Tolerance = "float64", rtol: float | None = None,
                   atol: float | None = None) -> Report:
    """Compare ``grad_fn(W, mu, xi, y, y_obs, q)`` with lnref's gradient at every checkpoint.

    Parameters
    ----------
    grad_fn : callable
        ``grad_fn(W, mu, xi, y, y_obs, q) -> array (2, m, d)``; W (2, m, d), mu (d,), xi (n, d), y (n,) the true
        labels, y_obs (n,) the labels of the loss (``eps[t] * y_obs`` for label-noise GD), all float64; q float.
        For a fixture of a network with biases (config ``bias=True``): ``grad_fn(W, mu, xi, y, y_obs, q, b=b) ->
        (grad_W (2, m, d), grad_b (2, m))`` with b (2, m) the biases at that checkpoint; grad_b is compared with
        the fixture's ``grad_b`` at the same bound as grad_W.  The network's ``patch_reduce`` and ``output_scale``
        are the fixture config's (SPEC.md section 7).
    fixture_or_config : Fixture, path of a fixture .npz, or Config
        A Config makes a fixture on the fly (checkpoints 0, 1 and ``steps``).
    tier, rtol, atol
        Tolerance (see :data:`lnref.testing.TIERS`); the relative error is ``max|theirs - lnref| / max|lnref|``.

    Returns
    -------
    Report

    Notes
    -----
    SPEC.md section 3 (the gradient) and identity 5.2.
    """
    fx = _as_fixture(fixture_or_config)
    tol = resolve_tolerance(tier, rtol, atol)
    d = fx.data
    P = Problem.of(fx)
    outs = []
    for k, t in enumerate(fx.steps):
        kw = {"b": fx.b[k].copy()} if fx.has_bias else {}
        outs.append(grad_fn(fx.W[k].copy(), d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(),
                            float(fx.config.q), **kw))
    zeros = [np.zeros_like(fx.W0)] * len(outs)
    bzeros = [np.zeros((2, fx.m))] * len(outs)

    def predict(e: Mistake, value: float | None, k: int):
        t = int(fx.steps[k])
        if e.transform == "reshape_export":
            return _reshape_export(fx.grad[k])
        if e.transform is not None:
            return None
        v = e.variant(fx) if value is None else with_value(e, fx, value)
        with np.errstate(all="ignore"):
            return replay_gradient(fx.W[k], P, P.labels(t, v), v, _b_for(fx, v, k))[0]

    def predict32(k: int):
        t = int(fx.steps[k])
        b = _b_for(fx, P.base, k)
        return replay_gradient(fx.W[k].astype(np.float32), P, P.labels(t), P.base,
                               None if b is None else b.astype(np.float32))[0].astype(np.float64)

    rep = _check_arrays("gradient", fx, outs, list(fx.grad), zeros, tol, predict, predict32,
                        None if not fx.has_bias else list(fx.grad_b), bzeros)
    if not rep.passed and "relu_derivative_one_at_zero" not in rep.mistakes and fx.config.q == 1.0 \
            and not _has_zero_inner_product(fx):
        rep.notes.append("no pre-activation <w_jr, x> (+ b_jr) is exactly 0 at these checkpoints, so sigma'(0) was "
                         "not exercised (fixtures from `lnref export` exercise it)")
    return rep


def _has_zero_inner_product(fx: Fixture) -> bool:
    """Is some pre-activation <w_jr, x> (+ b_jr with biases) exactly 0 at a checkpoint?"""
    b = fx.b if fx.has_bias else np.zeros((fx.steps.size, 2, fx.m))
    noise = np.einsum("kjrd,id->kjri", fx.W, fx.data.xi) + b[..., None]
    signal = np.einsum("kjrd,d->kjr", fx.W, fx.data.mu)[..., None] * fx.data.y + b[..., None]
    return bool(np.any(noise == 0.0) or np.any(signal == 0.0))


def _check_step(step_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike, *,
               tier: str | Tolerance = "float64", rtol: float | None = None, atol: float | None = None) -> Report:
    """Compare one GD step ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` with lnref's at every checkpoint.

    The comparison is on the update W' - W (relative to lnref's update, plus the rounding of storing W' in the
    tier's precision), so a mistake much smaller than |W| is still caught.  For a fixture of a network with biases
    the call is ``step_fn(W, mu, xi, y, y_obs, q, eta, b=b) -> (W', b')`` and b' - b is checked the same way.

    Notes
    -----
    SPEC.md section 3: W(t+1) = W(t) - eta grad L(W(t)).
    """
    fx = _as_fixture(fixture_or_config)
    tol = resolve_tolerance(tier, rtol, atol)
    d, q, eta = fx.data, float(fx.config.q), float(fx.config.eta)
    P = Problem.of(fx)
    outs, refs, bases, brefs, bbases = [], [], [], [], []
    for k, t in enumerate(fx.steps):
        W = fx.W[k]
        kw = {"b": fx.b[k].copy()} if fx.has_bias else {}
        outs.append(step_fn(W.copy(), d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(), q, eta, **kw))
        G, Gb = model_gradients(W, d, q, fx.eps_at(int(t)), **fx.conventions(k))
        refs.append((W - eta * G) - W)
        bases.append(W)
        if fx.has_bias:
            brefs.append((fx.b[k] - eta * Gb) - fx.b[k])
            bbases.append(fx.b[k])

    def predict(e: Mistake, value: float | None, k: int):
        t = int(fx.steps[k])
        if e.transform is not None:
            return None
        v = e.variant(fx) if value is None else with_value(e, fx, value)
        # one step from W(t) (and b(t)) with the labels of step t (only constant-eta entries have the step scope)
        return simulate(P, [t + 1], v, W0=fx.W[k], t0=t, b0=_b_for(fx, v, k))[t + 1] - fx.W[k]

    def predict32(k: int):
        t = int(fx.steps[k])
        return simulate(P, [t + 1], P.base, dtype=np.float32, W0=fx.W[k], t0=t,
                        b0=_b_for(fx, P.base, k))[t + 1].astype(np.float64) - fx.W[k]

    return _check_arrays("step", fx, outs, refs, bases, tol, predict, predict32,
                         brefs if fx.has_bias else None, bbases if fx.has_bias else None)


# --------------------------------------------------------------------------------------------- trajectories
def _their_checkpoints(theirs: Any, fx: Fixture) -> tuple[list[int], list[np.ndarray], list[str], list[int]]:
    """(compared steps, their W at them as float64, their dtypes, their steps that are not checkpoints)."""
    shape = (2, fx.m, fx.d)
    if isinstance(theirs, Mapping):
        items = sorted(((int(s), W) for s, W in theirs.items()), key=lambda kv: kv[0])
    else:
        arr = to_numpy("their checkpoints", theirs)
        if arr.ndim != 4 or arr.shape[1:] != shape:
            raise ConfigError(_shape_message("their W", arr.shape, (fx.steps.size,) + shape))
        if arr.shape[0] != fx.steps.size:
            raise ConfigError(f"their W has {arr.shape[0]} checkpoints but the fixture has {fx.steps.size} "
                              f"(steps {fx.steps.tolist()}); pass a dict step -> W for a subset or other steps")
        items = list(zip(fx.steps.tolist(), arr))
    if not items:
        raise ConfigError("no checkpoints to compare: give W at one or more of the fixture's steps "
                          f"{fx.steps.tolist()}")
    ck = set(fx.steps.tolist())
    steps, Ws, dtypes, extra = [], [], [], []
    for s, W in items:
        if s < 0:
            raise ConfigError(f"step {s} is not allowed: steps are >= 0")
        a = to_numpy(f"their W at step {s}", W)
        if a.shape != shape:
            raise ConfigError(_shape_message(f"their W at step {s}", a.shape, shape))
        if s not in ck:
            extra.append(s)
            continue
        steps.append(s), Ws.append(np.asarray(a, dtype=np.float64)), dtypes.append(str(a.dtype))
    if not any(s > 0 for s in steps):
        raise ConfigError(f"nothing to judge: their file has no GD step beyond 0 at a checkpoint of the fixture "
                          f"(fixture checkpoints {fx.steps.tolist()}, their steps {[s for s, _ in items]}); "
                          "save W at the fixture's checkpoints")
    return steps, Ws, dtypes, extra


def _their_biases(biases: Any, fx: Fixture, steps: list[int], given_steps: list[int] | None) -> list[np.ndarray]:
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
        if arr.ndim != 3 or arr.shape != (len(order),) + shape:
            raise ConfigError(f"their biases have shape {arr.shape}; expected ({len(order)}, 2, m) = "
                              f"{(len(order),) + shape}, one b[j, r] per step of their W (index 0 holds j = +1)")
        bmap = dict(zip(order, arr))
    out = []
    for s in steps:
        b = to_numpy(f"their biases at step {s}", bmap[s])
        if b.shape != shape:
            raise ConfigError(f"their biases at step {s} have shape {b.shape}; expected (2, m) = {shape} (b[j, r], "
                              "index 0 holds j = +1)")
        out.append(np.asarray(b, dtype=np.float64))
    return out


def _compare_trajectory(their_checkpoints: Mapping[int, Any] | Any, fixture: Fixture | str | os.PathLike, *,
                       tier: str | Tolerance = "float64", rtol: float | None = None, atol: float | None = None,
                       loss: Mapping[int, float] | Sequence[float] | None = None,
                       biases: Mapping[int, Any] | Any | None = None) -> Report:
    """Compare another implementation's weights at the fixture's checkpoints with lnref's.

    Parameters
    ----------
    their_checkpoints : dict step -> array (2, m, d), or array (K, 2, m, d) aligned with ``fixture.steps``
        Their W(t), started from the fixture's W0 on the fixture's data (and eps).  Steps that are not checkpoints
        of the fixture are ignored (listed in the notes); fixture checkpoints they lack are listed as not checked.
    fixture : Fixture or path
    tier, rtol, atol
        Tolerance (:data:`lnref.testing.TIERS`).  'float64' compares W (``max|dW| / max|W|``); 'float32' compares
        the loss and the coefficients gamma and rho (relative to the largest magnitude each reaches in the
        fixture).  The bound at each checkpoint also respects the fixture's measured spread
        (:mod:`lnref.oracle.tolerances`).
    loss : dict step -> float or sequence aligned with their steps, optional
        Their training loss, compared with the fixture's (relative, same bound); by default lnref evaluates the
        loss of their W (and b).
    biases : dict step -> array (2, m), or array (K, 2, m) aligned like ``their_checkpoints``
        Their biases b(t) (``b[j, r]``, index 0 holds j = +1), required exactly when the fixture's network has
        biases (config ``bias=True``, SPEC.md section 7).  b is compared at both tiers at the same bound as W,
        relative to the largest |b| the fixture reaches: ``max|b - b_lnref| / max_t max|b_lnref(t)|`` (column
        "b rel"); a checkpoint passes only when W (or the float32 summaries) and b both pass.

    Returns
    -------
    Report

    Raises
    ------
    ConfigError
        Wrong shapes or dtypes (complex, float16, integers), no step beyond 0 to compare, a fixture that cannot
        judge at this tier, biases missing for a fixture with biases (or given for one without).

    Notes
    -----
    GD of SPEC.md section 3; the breakdown uses the decomposition of section 4 (identity 5.1).  Their weights may
    be non-finite (a diverged trajectory): that is a mismatch where lnref's is finite, not unusable input.
    """
    fx = fixture if isinstance(fixture, Fixture) else load_fixture(fixture)
    tol = resolve_tolerance(tier, rtol, atol)
    given_steps = sorted(int(s) for s in their_checkpoints) if isinstance(their_checkpoints, Mapping) else None
    if fx.has_bias and biases is None:
        raise ConfigError("this fixture's network has biases (config bias=True, SPEC.md section 7): pass their "
                          "biases too, biases={step: b (2, m)} (array 'b' (K, 2, m) in their .npz for lnref compare)")
    if not fx.has_bias and biases is not None:
        raise ConfigError("their biases were given but this fixture's network has no bias (config bias=False); "
                          "export a fixture with --bias true to check a network with biases")
    steps, Ws, dtypes, extra = _their_checkpoints(their_checkpoints, fx)
    Bs = _their_biases(biases, fx, steps, given_steps) if fx.has_bias else None
    bsc = bias_scale(fx.b, fx.b0) if fx.has_bias else 1.0
    idx = [fx.index(t) for t in steps]
    spread = None if fx.spread is None else fx.spread[idx]
    can = judgeable(tol, np.array(steps), spread)
    if not np.all(can):
        bad = [t for t, c in zip(steps, can) if not c]
        raise ConfigError(f"this fixture cannot judge at tier {tol.name!r} at step(s) {bad}: its own trajectory is "
                          "too sensitive there (a rounding-sized change of W0 moves W by "
                          f"{max(tol.spread_of(fx.spread[fx.index(t)]) for t in bad):.1e}); compare fewer steps "
                          "or export a fixture with fewer steps or a smaller eta")
    bnd = bounds(tol, np.array(steps), spread)
    their_loss = None
    if loss is not None:
        if isinstance(loss, Mapping):
            lmap = {int(k): float(v) for k, v in loss.items()}
            missing = [s for s in steps if s not in lmap]
            if missing:
                raise ConfigError(f"their loss is missing step(s) {missing}")
            their_loss = np.array([lmap[s] for s in steps])
        else:
            arr = np.asarray(to_numpy("their loss", loss), dtype=np.float64).ravel()
            if given_steps is not None:
                if arr.shape != (len(given_steps),):
                    raise ConfigError(f"their loss has shape {arr.shape}; expected ({len(given_steps)},), one value "
                                      "per step of their W")
                lmap = dict(zip(given_steps, arr.tolist()))
                arr = np.array([lmap[s] for s in steps])
            elif arr.shape != (len(steps),):
                raise ConfigError(f"their loss has shape {arr.shape}; expected ({len(steps)},)")
            their_loss = arr
    dec = decomposable(fx)
    sg = maxabs(fx.gamma)
    sr = maxabs(fx.rho)
    sg, sr = sg or max(sg, sr) or 1.0, sr or max(sg, sr) or 1.0
    rep = Report("trajectory", tol)
    scales = []
    whats: list[list[str]] = []       # what failed at each checkpoint
    for k, t in enumerate(steps):
        i = idx[k]
        W_ref, W = fx.W[i], Ws[k]
        b = None if Bs is None else Bs[k]
        finite = bool(np.all(np.isfinite(W))) and (b is None or bool(np.all(np.isfinite(b))))
        diff = maxabs(W - W_ref) if finite else math.inf
        r = rel(diff, maxabs(W_ref))
        scales.append(maxabs(W_ref))
        if their_loss is not None:
            lo = their_loss[k]
        else:
            conv = fx.conventions(i)
            if b is not None:
                conv["b"] = b
            lo = model_loss(W, fx.data, fx.config.q, **conv) if finite else math.nan
        lrel = rel(abs(lo - fx.loss[i]), abs(fx.loss[i])) if math.isfinite(lo) else math.inf
        row = CheckpointError(t, diff, r, float(bnd[k]), False, loss_rel_err=lrel)
        if dec and finite:
            g, rh, _ = coefficients(W - fx.W0, fx)
            row.gamma_rel_err = maxabs(g - fx.gamma[i]) / sg
            row.rho_rel_err = maxabs(rh - fx.rho[i]) / sr
        failed = []
        if not finite:
            row.ok = False
            failed.append("W" if not np.all(np.isfinite(W)) else "b")
        elif tol.on == "weights" or not dec:
            row.ok = r <= bnd[k] or diff <= tol.atol
            failed += [] if row.ok else ["W"]
        else:
            row.ok = max(row.gamma_rel_err, row.rho_rel_err) <= bnd[k]
            failed += [] if row.ok else ["coefficients gamma, rho"]
        if b is not None:
            bdiff = maxabs(b - fx.b[i]) if np.all(np.isfinite(b)) else math.inf
            row.b_rel_err = bdiff / bsc
            b_ok = row.b_rel_err <= bnd[k] or bdiff <= tol.atol
            row.ok = row.ok and b_ok
            failed += [] if b_ok or "b" in failed else ["b"]
        if their_loss is not None or (tol.on == "summaries" and finite):
            row.ok = row.ok and lrel <= bnd[k]
            failed += [] if lrel <= bnd[k] else ["loss"]
        whats.append(failed)
        rep.rows.append(row)
        if not row.ok and rep.first_failure is None:
            rep.first_failure = t
    unchecked = [int(t) for t in fx.steps if int(t) not in steps]
    if unchecked:
        rep.notes.append(f"fixture checkpoint(s) {unchecked} were not checked (not in their file)")
    if extra:
        rep.notes.append(f"their step(s) {extra[:10]}{' ...' if len(extra) > 10 else ''} are not checkpoints of the "
                         "fixture and were ignored")
    if spread is not None and np.any(bnd > np.array([tol.at(t) for t in steps])):
        loose = [t for t, b in zip(steps, bnd) if b > tol.at(t)]
        rep.notes.append(f"at step(s) {loose} the bound is {tol.safety:g} x the fixture's measured spread (its "
                         "trajectory amplifies rounding there), wider than the tier's rtol (1 + t)")
    if rep.first_failure is None:
        return rep
    _diagnose_trajectory(rep, fx, steps, idx, Ws, dtypes, scales, bnd, sg, sr, tol, Bs, bsc, whats)
    return rep


def _bias_findings(rep: Report, fx: Fixture, t: int, i: int, b: np.ndarray, bsc: float, bound: float) -> bool:
    """A finding on their biases at checkpoint t (index i); True when they differ beyond ``bound``."""
    if not np.all(np.isfinite(b)):
        rep.findings.append(f"their biases b are NaN or infinite at step {t}")
        return True
    e = np.abs(b - fx.b[i]) / bsc
    bad = np.argwhere(e > bound)
    if not bad.size:
        rep.findings.append(f"their biases b agree at step {t} (max relative difference {float(e.max()):.2g})")
        return False
    shown = ", ".join(f"(j={'+1' if j == 0 else '-1'}, r={r})" for j, r in bad[:6])
    rep.findings.append(f"their biases b differ at step {t} at {len(bad)} of {2 * fx.m} filters: {shown}"
                        f"{'' if len(bad) <= 6 else ' ...'}; max relative difference {float(e.max()):.3g}")
    return True


def _diagnose_trajectory(rep: Report, fx: Fixture, steps, idx, Ws, dtypes, scales, bnd, sg, sr,
                         tol: Tolerance, Bs=None, bsc: float = 1.0, whats=None) -> None:
    k = [r.ok for r in rep.rows].index(False)
    t, i = steps[k], idx[k]
    W = Ws[k]
    ok_before = [s for s, r in zip(steps, rep.rows) if r.ok and s < t]
    failed = (whats[k] if whats else None) or ["W"]
    verb = "differs" if len(failed) == 1 and failed[0] in ("W", "b", "loss") else "differ"
    where = f"their {' and '.join(failed)} first {verb} at step {t}" + (
        f" ({'it agrees' if len(failed) == 1 else 'they agree'} at step(s) {ok_before})" if ok_before else "")
    if failed == ["loss"]:
        where += "; their W" + (" and b" if Bs is not None else "") + " agree there, so their loss is computed " \
                 "differently from lnref's (SPEC.md section 3; with the fixture's conventions, section 7)"
    rep.findings.append(where)
    b_differs = Bs is not None and "b" in failed and _bias_findings(rep, fx, t, i, Bs[k], bsc, float(bnd[k]))
    if t == 0 and b_differs and np.array_equal(W, fx.W0):
        rep.diagnosis.append("their b(0) differs from the fixture's b0 (their W(0) is the fixture's W0): start "
                             "from the fixture's biases (array 'b0'; PyTorch: conv.bias = b0.reshape(2m))")
        return
    bad_nf = [s for s, w in zip(steps, Ws) if not np.all(np.isfinite(w))]
    if bad_nf:
        rep.findings.append(f"their W is NaN or infinite at step(s) {bad_nf}: their trajectory diverged where "
                            f"lnref's stays finite (max |W| {maxabs(fx.W[idx[steps.index(bad_nf[0])]]):.3g})")
    if np.all(np.isfinite(W)) and decomposable(fx) and t > 0:
        g, r, outside = coefficients(W - fx.W0, fx)
        rep.findings += findings(g - fx.gamma[i], r - fx.rho[i], sg, sr, fx, float(bnd[k]))
        ref_disp = maxabs(fx.W[i] - fx.W0)
        if outside * maxabs(W - fx.W0) > 1e-3 * ref_disp:
            rep.findings.append(f"{outside:.2g} of their W(t) - W0 (relative) lies outside span{{mu, xi_1..xi_n}}: "
                                "their updates use vectors other than the signal and noise patches, or their W0 "
                                "is not the fixture's")
    elif not decomposable(fx):
        rep.notes.append("no coefficient breakdown: it needs d >= n + 1, mu != 0 and every xi_i != 0")
    P = Problem.of(fx)
    last = max(steps)
    entries = applicable(fx, "trajectory")
    work = last * fx.m * fx.n * fx.d * (len(entries) + 30)
    cache: dict = {}
    bias_pred: dict = {}              # the replay's biases at the compared steps (None: the replay has none)

    def predict(e: Mistake, value: float | None):
        key = (e.key, value)
        if key in cache:
            return cache[key]
        bp = None
        if e.transform == "j_reversed":
            out = [fx.W[j][::-1].copy() for j in idx]
            bp = None if Bs is None else [fx.b[j][::-1].copy() for j in idx]
        elif e.transform == "reshape_export":
            out = [_reshape_export(fx.W[j]) for j in idx]
        elif e.transform == "shift1":
            out = [fx.W[j] - fx.config.eta * fx.grad[j] for j in idx]
            bp = None if Bs is None else [fx.b[j] - fx.config.eta * fx.grad_b[j] for j in idx]
        elif e.transform == "reshape_import":
            run = simulate(P, steps, P.base, W0=_reshape_import(fx.W0))
            out = [run[s] for s in steps]
        else:
            v = e.variant(fx) if value is None else with_value(e, fx, value)
            run = simulate(P, steps, v, with_bias=True)
            out = [run[s][0] for s in steps]
            bp = None if Bs is None or not v.bias else [run[s][1] for s in steps]
        cache[key] = out
        bias_pred[key] = bp
        return out

    if work > REPLAY_BUDGET:
        entries = [e for e in entries if e.transform in ("j_reversed", "reshape_export", "shift1")]
        rep.notes.append(f"the replays of known mistakes were skipped ({last} steps is too long at this size); only "
                         "the export mistakes were checked; compare a fixture with fewer steps for a diagnosis")
    matches = Judge(fx, Ws, [fx.W[j] for j in idx], scales, list(bnd), predict).judge(entries)
    if matches:
        describe_matches(rep, fx, matches, "their W", steps)
        if Bs is not None:
            _check_bias_replays(rep, matches, bias_pred, Bs, bsc, bnd, steps)
        return
    if t == 0 and np.all(np.isfinite(W)):
        if np.array_equal(W, fx.W0):
            rep.diagnosis.append("their W(0) is the fixture's W0 but their other values at step 0 differ (see 'What "
                                 "differs')")
        elif np.array_equal(W, fx.W0.astype(np.float32).astype(np.float64)):
            rep.diagnosis.append("their W(0) is the fixture's W0 rounded to float32 (exactly): the implementation "
                                 "stores the weights in float32; compare with tier 'float32', or use float64")
        else:
            rep.diagnosis.append("their W(0) differs from the fixture's W0 (and is not a known rearrangement of "
                                 "it): start from the fixture's W0 (array 'W0')")
        return
    if work <= REPLAY_BUDGET:
        run32 = simulate(P, steps, P.base, dtype=np.float32)
        hint = _float32_hint(Ws, [fx.W[j] for j in idx], [run32[s].astype(np.float64) for s in steps], scales,
                             steps, all(dt == "float32" for dt in dtypes))
        if hint:
            rep.diagnosis.append(hint)
            return
    _step_size_note(rep, fx, steps, Ws)
    not_in_catalogue(rep, len(entries))


def _check_bias_replays(rep: Report, matches, bias_pred: dict, Bs, bsc: float, bnd, steps) -> None:
    """The causes were named on W; say for each whether its replay also reproduces their biases."""
    for e, value, _ in matches:
        bp = bias_pred.get((e.key, value))
        if bp is None:
            continue
        worst, ok = 0.0, True
        for _, b, p, bd in zip(steps, Bs, bp, bnd):
            if not (np.all(np.isfinite(b)) and np.all(np.isfinite(p))):
                ok = ok and not np.all(np.isfinite(b)) and not np.all(np.isfinite(p))
                continue
            r = maxabs(b - p) / bsc
            worst, ok = max(worst, r), ok and r <= bd
        if ok:
            rep.diagnosis.append(f"the replay of {e.key} also reproduces their biases b (to {worst:.1e}, relative)")
        else:
            rep.diagnosis.append(f"the replay of {e.key} does NOT reproduce their biases b (they differ from it by "
                                 f"up to {worst:.1e}, relative; bound {float(min(bnd)):.1e}): their biases have a "
                                 "further difference not explained by this cause")


def _step_size_note(rep: Report, fx: Fixture, steps, Ws) -> None:
    """With consecutive checkpoints t, t + 1: the step size their update corresponds to (checked by residual)."""
    from ..model import gradient as lnref_gradient
    if fx.has_bias:
        return      # their update of W depends on their b too; no exact step size to state
    for a, b in zip(range(len(steps)), range(1, len(steps))):
        if steps[b] != steps[a] + 1 or not (np.all(np.isfinite(Ws[a])) and np.all(np.isfinite(Ws[b]))):
            continue
        t = steps[a]
        G = lnref_gradient(Ws[a], fx.data, fx.config.q, fx.eps_at(t), **fx.conventions())
        dW = Ws[b] - Ws[a]
        gg = float(np.sum(G * G))
        if gg == 0:
            continue
        c = -float(np.sum(dW * G)) / gg
        res = rel(maxabs(dW + c * G), maxabs(dW))
        eta = fx.config.eta
        if res <= 1e-8 and abs(c / eta - 1.0) > 1e-8:
            rep.findings.append(f"between their steps {t} and {t + 1} the update is exactly -{c:.6g} x lnref's "
                                f"gradient at their W({t}) (residual {res:.1e}): a step size of {c:.6g} where "
                                f"lnref uses eta = {eta:g}")
            return


# --------------------------------------------------------------------------------------------- public checks
def _quiet(fn):
    """The check with NumPy's floating-point warnings silenced (a diverged or replayed trajectory overflows)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    wrapper.__name__ = wrapper.__qualname__ = fn.__name__.lstrip("_")
    return wrapper


check_gradient = _quiet(_check_gradient)
check_step = _quiet(_check_step)
compare_trajectory = _quiet(_compare_trajectory)


# --------------------------------------------------------------------------------------------- assertions
def assert_gradient_matches(grad_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike,
                            **kwargs: Any) -> Report:
    """:func:`check_gradient`, raising AssertionError with the report text when it does not match."""
    rep = check_gradient(grad_fn, fixture_or_config, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep


def assert_step_matches(step_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike,
                        **kwargs: Any) -> Report:
    """:func:`check_step`, raising AssertionError with the report text when it does not match."""
    rep = check_step(step_fn, fixture_or_config, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep


def assert_trajectory_matches(their_checkpoints: Mapping[int, Any] | Any, fixture: Fixture | str | os.PathLike,
                              **kwargs: Any) -> Report:
    """:func:`compare_trajectory`, raising AssertionError with the report text when it does not match."""
    rep = compare_trajectory(their_checkpoints, fixture, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep
