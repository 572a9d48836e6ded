"""The three checks of another implementation against a fixture, and their assert_* forms.

* :func:`check_gradient` calls ``grad_fn(W, mu, xi, y, y_obs, q) -> (2, m, d)`` at every checkpoint;
* :func:`check_step` calls ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` (one GD step) likewise;
* :func:`compare_trajectory` compares the weights another implementation reached at the checkpoint steps.

Calling convention of ``grad_fn`` and ``step_fn``: every argument is a C-contiguous NumPy float64 array (``q`` and
``eta`` Python floats): ``W`` (2, m, d) with index 0 holding j = +1, ``mu`` (d,), ``xi`` (n, d), ``y`` (n,) the
TRUE labels (the signal patch of sample i is ``y[i] * mu``), ``y_obs`` (n,) the labels the loss uses (for
label-noise GD already ``eps[t] * y_obs``).  Return anything ``np.asarray`` accepts (a CPU tensor is fine).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..config import Config, ConfigError
from ..model import gd_step, loss as model_loss
from .catalogue import Mistake, applicable, with_value
from .fixtures import Fixture, load_fixture, make_fixture
from .replay import Problem, gradient as replay_gradient, simulate
from .report import (CheckpointError, Judge, Report, coefficients, decomposable, describe_matches, findings,
                     maxabs, not_in_catalogue, rel)
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
def _check_arrays(kind: str, fx: Fixture, outputs: Sequence[Any], refs: Sequence[np.ndarray],
                  bases: Sequence[np.ndarray], tol: Tolerance,
                  predict: Callable[[Mistake, float | None, int], np.ndarray | None],
                  predict32: Callable[[int], np.ndarray]) -> Report:
    """Shared body of check_gradient / check_step: ``outputs[k] - bases[k]`` vs ``refs[k]``."""
    rep = Report(kind, tol)
    shape = (2, fx.m, fx.d)
    subs, scales, bnds, origs = [], [], [], []
    for k, t in enumerate(fx.steps):
        t = int(t)
        orig = to_numpy(f"the {kind} at step {t}", outputs[k])
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
        rep.rows.append(row)
        subs.append(a), scales.append(scale), bnds.append(tol.at(0)), origs.append(orig)
        if not ok and rep.first_failure is None:
            rep.first_failure = t
    if rep.first_failure is None:
        return rep
    k = [r.ok for r in rep.rows].index(False)
    t, a, ref = int(fx.steps[k]), subs[k], refs[k]
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
        outs.append(grad_fn(fx.W[k].copy(), d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(),
                            float(fx.config.q)))
    zeros = [np.zeros_like(fx.W0)] * len(outs)

    def predict(e: Mistake, value: float | None, k: int):
        t = int(fx.steps[k])
        if e.transform == "reshape_export":
            return _reshape_export(fx.grad[k])
        if e.transform is not None:
            return None
        v = e.variant(fx) if value is None else with_value(e, fx, value)
        with np.errstate(all="ignore"):
            return replay_gradient(fx.W[k], P, P.labels(t, v), v)[0]

    def predict32(k: int):
        t = int(fx.steps[k])
        return replay_gradient(fx.W[k].astype(np.float32), P, P.labels(t), P.base)[0].astype(np.float64)

    rep = _check_arrays("gradient", fx, outs, list(fx.grad), zeros, tol, predict, predict32)
    if not rep.passed and "relu_derivative_one_at_zero" not in rep.mistakes and fx.config.q == 1.0 \
            and not _has_zero_inner_product(fx):
        rep.notes.append("no inner product <w_jr, x> is exactly 0 at these checkpoints, so sigma'(0) was not "
                         "exercised (fixtures from `lnref export` exercise it)")
    return rep


def _has_zero_inner_product(fx: Fixture) -> bool:
    return bool(np.any(np.einsum("kjrd,id->kjri", fx.W, fx.data.xi) == 0.0)
                or np.any(np.einsum("kjrd,d->kjr", fx.W, fx.data.mu) == 0.0))


def _check_step(step_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike, *,
               tier: str | Tolerance = "float64", rtol: float | None = None, atol: float | None = None) -> Report:
    """Compare one GD step ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` with lnref's at every checkpoint.

    The comparison is on the update W' - W (relative to lnref's update, plus the rounding of storing W' in the
    tier's precision), so a mistake much smaller than |W| is still caught.

    Notes
    -----
    SPEC.md section 3: W(t+1) = W(t) - eta grad L(W(t)).
    """
    fx = _as_fixture(fixture_or_config)
    tol = resolve_tolerance(tier, rtol, atol)
    d, q, eta = fx.data, float(fx.config.q), float(fx.config.eta)
    P = Problem.of(fx)
    outs, refs, bases = [], [], []
    for k, t in enumerate(fx.steps):
        W = fx.W[k]
        outs.append(step_fn(W.copy(), d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(), q, eta))
        refs.append(gd_step(W, d, eta, q, fx.eps_at(int(t))) - W)
        bases.append(W)

    def predict(e: Mistake, value: float | None, k: int):
        t = int(fx.steps[k])
        if e.transform is not None:
            return None
        v = e.variant(fx) if value is None else with_value(e, fx, value)
        # one step from W(t) with the labels of step t (only constant-eta entries have the step scope)
        return simulate(P, [t + 1], v, W0=fx.W[k], t0=t)[t + 1] - fx.W[k]

    def predict32(k: int):
        t = int(fx.steps[k])
        return simulate(P, [t + 1], P.base, dtype=np.float32, W0=fx.W[k], t0=t)[t + 1].astype(np.float64) - fx.W[k]

    return _check_arrays("step", fx, outs, refs, bases, tol, predict, predict32)


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


def _compare_trajectory(their_checkpoints: Mapping[int, Any] | Any, fixture: Fixture | str | os.PathLike, *,
                       tier: str | Tolerance = "float64", rtol: float | None = None, atol: float | None = None,
                       loss: Mapping[int, float] | Sequence[float] | None = None) -> Report:
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
        loss of their W.

    Returns
    -------
    Report

    Raises
    ------
    ConfigError
        Wrong shapes or dtypes (complex, float16, integers), no step beyond 0 to compare, a fixture that cannot
        judge at this tier.

    Notes
    -----
    GD of SPEC.md section 3; the breakdown uses the decomposition of section 4 (identity 5.1).  Their weights may
    be non-finite (a diverged trajectory): that is a mismatch where lnref's is finite, not unusable input.
    """
    fx = fixture if isinstance(fixture, Fixture) else load_fixture(fixture)
    tol = resolve_tolerance(tier, rtol, atol)
    given_steps = sorted(int(s) for s in their_checkpoints) if isinstance(their_checkpoints, Mapping) else None
    steps, Ws, dtypes, extra = _their_checkpoints(their_checkpoints, fx)
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
    for k, t in enumerate(steps):
        i = idx[k]
        W_ref, W = fx.W[i], Ws[k]
        finite = bool(np.all(np.isfinite(W)))
        diff = maxabs(W - W_ref) if finite else math.inf
        r = rel(diff, maxabs(W_ref))
        scales.append(maxabs(W_ref))
        if their_loss is not None:
            lo = their_loss[k]
        else:
            lo = model_loss(W, fx.data, fx.config.q) if finite else math.nan
        lrel = rel(abs(lo - fx.loss[i]), abs(fx.loss[i])) if math.isfinite(lo) else math.inf
        row = CheckpointError(t, diff, r, float(bnd[k]), False, loss_rel_err=lrel)
        if dec and finite:
            g, rh, _ = coefficients(W - fx.W0, fx)
            row.gamma_rel_err = maxabs(g - fx.gamma[i]) / sg
            row.rho_rel_err = maxabs(rh - fx.rho[i]) / sr
        if not finite:
            row.ok = False
        elif tol.on == "weights" or not dec:
            row.ok = r <= bnd[k] or diff <= tol.atol
        else:
            row.ok = max(row.gamma_rel_err, row.rho_rel_err) <= bnd[k]
        if their_loss is not None or (tol.on == "summaries" and finite):
            row.ok = row.ok and lrel <= bnd[k]
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
    _diagnose_trajectory(rep, fx, steps, idx, Ws, dtypes, scales, bnd, sg, sr, tol)
    return rep


def _diagnose_trajectory(rep: Report, fx: Fixture, steps, idx, Ws, dtypes, scales, bnd, sg, sr,
                         tol: Tolerance) -> None:
    k = [r.ok for r in rep.rows].index(False)
    t, i = steps[k], idx[k]
    W = Ws[k]
    ok_before = [s for s, r in zip(steps, rep.rows) if r.ok and s < t]
    where = f"their W first differs at step {t}" + (f" (it agrees at step(s) {ok_before})" if ok_before else "")
    rep.findings.append(where)
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

    def predict(e: Mistake, value: float | None):
        key = (e.key, value)
        if key in cache:
            return cache[key]
        if e.transform == "j_reversed":
            out = [fx.W[j][::-1].copy() for j in idx]
        elif e.transform == "reshape_export":
            out = [_reshape_export(fx.W[j]) for j in idx]
        elif e.transform == "shift1":
            out = [fx.W[j] - fx.config.eta * fx.grad[j] for j in idx]
        elif e.transform == "reshape_import":
            run = simulate(P, steps, P.base, W0=_reshape_import(fx.W0))
            out = [run[s] for s in steps]
        else:
            v = e.variant(fx) if value is None else with_value(e, fx, value)
            run = simulate(P, steps, v)
            out = [run[s] for s in steps]
        cache[key] = out
        return out

    if work > REPLAY_BUDGET:
        entries = [e for e in entries if e.transform in ("j_reversed", "reshape_export", "shift1")]
        rep.notes.append(f"the replays of known mistakes were skipped ({last} steps is too long at this size); only "
                         "the export mistakes were checked; compare a fixture with fewer steps for a diagnosis")
    matches = Judge(fx, Ws, [fx.W[j] for j in idx], scales, list(bnd), predict).judge(entries)
    if matches:
        describe_matches(rep, fx, matches, "their W", steps)
        return
    if t == 0 and np.all(np.isfinite(W)):
        if np.array_equal(W, fx.W0.astype(np.float32).astype(np.float64)):
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


def _step_size_note(rep: Report, fx: Fixture, steps, Ws) -> None:
    """With consecutive checkpoints t, t + 1: the step size their update corresponds to (checked by residual)."""
    from ..model import gradient as lnref_gradient
    for a, b in zip(range(len(steps)), range(1, len(steps))):
        if steps[b] != steps[a] + 1 or not (np.all(np.isfinite(Ws[a])) and np.all(np.isfinite(Ws[b]))):
            continue
        t = steps[a]
        G = lnref_gradient(Ws[a], fx.data, fx.config.q, fx.eps_at(t))
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
