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

Selection algorithms (a fixture of 'select_retrain', 'truncated_gce' or 'coteaching' - network 1, on the masks
network 2 chose, recorded in the fixture - SPEC.md section 9): the functions also get
``mask=`` (n,) float64 0/1, the samples step t trains on, and ``scale=`` (float), the step-size factor of a mean
over |S| (n/|S|; 1 for truncated GCE's mean over n).  ``grad_fn`` returns the gradient of that step's objective,
scale (1/n) sum_{i: mask_i = 1} grad l_i (the mean over |S| for select_retrain), and ``step_fn`` the step
W - eta x that gradient.  ``y_obs`` stays the observed labels (the mask is not folded into them).  At the
'select_retrain' reset (fixture ``reset_step``, select_then='retrain') W (and b) are W0 (and b0): the state that
step starts from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..model import gradients as model_gradients
from .catalogue import Mistake, with_value
from .coverage import special_points
from .diagnosis import diagnose_arrays, replay_bias, reshape_export
from .fixtures import Fixture
from .intake import as_fixture, split_pair, to_numpy
from .replay import Problem, simulate, step_gradient
from .report import CheckpointError, Report, coefficients, decomposable, maxabs, rel
from .tolerances import Tolerance, resolve_tolerance
from .trajectory import compare_trajectory, quiet

__all__ = [
    "check_gradient",
    "check_step",
    "compare_trajectory",
    "assert_gradient_matches",
    "assert_step_matches",
    "assert_trajectory_matches",
    "to_numpy",
]


def _check_arrays(
    kind: str,
    fx: Fixture,
    outputs: Sequence[Any],
    refs: Sequence[np.ndarray],
    bases: Sequence[np.ndarray],
    tol: Tolerance,
    predict: Callable[[Mistake, float | None, int], np.ndarray | None],
    predict32: Callable[[int], np.ndarray],
    b_refs: Sequence[np.ndarray] | None = None,
    b_bases: Sequence[np.ndarray] | None = None,
) -> Report:
    """Shared body of check_gradient / check_step: ``outputs[k] - bases[k]`` vs ``refs[k]`` (and, for a network
    with biases, the b part of each output minus ``b_bases[k]`` vs ``b_refs[k]``, at the same bound)."""
    rep = Report(kind, tol)
    shape = (2, fx.m, fx.d)
    subs, scales, bnds, origs = [], [], [], []
    b_bad: list[str] = []
    for k, t in enumerate(fx.steps):
        t = int(t)
        out, out_b = split_pair(kind, t, outputs[k], fx)
        orig = to_numpy(f"the {kind} at step {t}", out)
        if orig.shape == (fx.m, 2, fx.d) and fx.m != 2:
            rep.rows.append(CheckpointError(t, math.inf, math.inf, tol.at(0), False))
            rep.first_failure = t
            rep.findings.append(f"their {kind} has shape {orig.shape} = (m, 2, d); lnref's layout is (2, m, d)")
            back = np.asarray(orig, dtype=np.float64).transpose(1, 0, 2) - bases[k]
            ok = rel(maxabs(back - refs[k]), maxabs(refs[k])) <= max(tol.at(0), 1e-6)
            rep.diagnosis.append(
                "the j and r axes are transposed: use W[j, r, :] with shape (2, m, d), index 0 for "
                "j = +1" + (" (transposed back, their values match lnref's)" if ok else "")
            )
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
                raise ConfigError(
                    f"the bias part of their {kind} at step {t} has shape {ob.shape}; expected (2, m) = "
                    f"{(2, fx.m)} (b[j, r], index 0 holds j = +1)"
                )
            ab = np.asarray(ob, dtype=np.float64) - b_bases[k]
            bref = b_refs[k]
            bscale = maxabs(bref) + (tol.unit_roundoff * maxabs(b_bases[k]) if kind == "step" else 0.0)
            bdiff = maxabs(ab - bref) if np.all(np.isfinite(ab)) else math.inf
            row.b_rel_err = rel(bdiff, bscale)
            b_ok = row.b_rel_err <= tol.at(0) or bdiff <= tol.atol
            if not b_ok:
                row.ok = ok = False
                if not b_bad:
                    where = (
                        np.argwhere(np.abs(ab - bref) > max(tol.at(0) * bscale, tol.atol))
                        if np.all(np.isfinite(ab))
                        else np.argwhere(~np.isfinite(ab))
                    )
                    shown = ", ".join(f"(j={'+1' if j == 0 else '-1'}, r={r})" for j, r in where[:6])
                    b_bad.append(
                        f"the bias part of their {kind} differs from lnref's at step {t} for {len(where)} "
                        f"of {2 * fx.m} filters: {shown}; max relative difference {row.b_rel_err:.3g}"
                    )
        rep.rows.append(row)
        subs.append(a), scales.append(scale), bnds.append(tol.at(0)), origs.append(orig)
        if not ok and rep.first_failure is None:
            rep.first_failure = t
    if rep.first_failure is None:
        return rep
    return diagnose_arrays(rep, kind, fx, subs, refs, scales, bnds, origs, b_bad, tol, predict, predict32)


def _target(fx: Fixture, k: int) -> np.ndarray | None:
    """ELR's targets of checkpoint index k, before that step's update (None without ELR)."""
    return None if fx.target is None else fx.target[k]


def _elr_kwargs(fx: Fixture, k: int) -> dict:
    """The extra keyword arguments a gradient or step function of an ELR fixture receives (SPEC.md section 9):
    ``target`` (2, n), the targets before step t's update (row 0: class +1), and ``target_update``, whether step
    t updates them before its loss (t % period == 0)."""
    if fx.target is None:
        return {}
    return {
        "target": fx.target[k].copy(),
        "target_update": int(fx.steps[k]) % int(fx.config.loss_params["period"]) == 0,
    }


def _check_gradient(
    grad_fn: Callable[..., Any],
    fixture_or_config: Fixture | Config | str | os.PathLike,
    *,
    tier: str | Tolerance = "float64",
    rtol: float | None = None,
    atol: float | None = None,
) -> Report:
    """Compare ``grad_fn(W, mu, xi, y, y_obs, q)`` with lnref's gradient at every checkpoint.

    Parameters
    ----------
    grad_fn : callable
        ``grad_fn(W, mu, xi, y, y_obs, q) -> array (2, m, d)``; W (2, m, d), mu (d,), xi (n, d), y (n,) the true
        labels, y_obs (n,) the labels of the loss (``eps[t] * y_obs`` for label-noise GD), all float64; q float.
        For a fixture of a network with biases (config ``bias=True``): ``grad_fn(W, mu, xi, y, y_obs, q, b=b) ->
        (grad_W (2, m, d), grad_b (2, m))`` with b (2, m) the biases at that checkpoint; grad_b is compared with
        the fixture's ``grad_b`` at the same bound as grad_W.  The network's ``patch_reduce`` and ``output_scale``
        are the fixture config's (SPEC.md section 7).  The gradient is that of the fixture config's training method
        (``loss``, ``loss_params``, SPEC.md section 9); for ELR, grad_fn also receives ``target=`` (2, n), the
        targets before step t's update, and ``target_update=`` (whether step t updates them before its loss).
        For a selection algorithm's fixture, grad_fn also receives ``mask=`` (n,) 0/1 and ``scale=`` (n/|S| or 1)
        and returns scale (1/n) sum_{i in S} grad l_i (see the module docstring).
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
    fx = as_fixture(fixture_or_config)
    tol = resolve_tolerance(tier, rtol, atol)
    d = fx.data
    P = Problem.of(fx).single()
    outs = []
    for k, t in enumerate(fx.steps):
        Wk, bk = fx.start(k)
        kw = {"b": bk.copy()} if fx.has_bias else {}
        kw.update(_elr_kwargs(fx, k))
        kw.update(fx.selection_kwargs(k))
        outs.append(
            grad_fn(Wk.copy(), d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(), float(fx.config.q), **kw)
        )
    zeros = [np.zeros_like(fx.W0)] * len(outs)
    bzeros = [np.zeros((2, fx.m))] * len(outs)

    def predict(e: Mistake, value: float | None, k: int):
        t = int(fx.steps[k])
        if e.transform == "reshape_export":
            return reshape_export(fx.grad[k])
        if e.transform is not None:
            return None
        v = e.variant(fx) if value is None else with_value(e, fx, value)
        with np.errstate(all="ignore"):
            return step_gradient(fx.start(k)[0], P, t, v, replay_bias(fx, v, k), _target(fx, k))[0]

    def predict32(k: int):
        t = int(fx.steps[k])
        b = replay_bias(fx, P.base, k)
        return step_gradient(
            fx.start(k)[0].astype(np.float32), P, t, P.base, None if b is None else b.astype(np.float32), _target(fx, k)
        )[0].astype(np.float64)

    rep = _check_arrays(
        "gradient",
        fx,
        outs,
        list(fx.grad),
        zeros,
        tol,
        predict,
        predict32,
        None if not fx.has_bias else list(fx.grad_b),
        bzeros,
    )
    rep.special_points = special_points(fx, "gradient")
    return rep


def _check_step(
    step_fn: Callable[..., Any],
    fixture_or_config: Fixture | Config | str | os.PathLike,
    *,
    tier: str | Tolerance = "float64",
    rtol: float | None = None,
    atol: float | None = None,
) -> Report:
    """Compare one GD step ``step_fn(W, mu, xi, y, y_obs, q, eta) -> W'`` with lnref's at every checkpoint.

    The comparison is on the update W' - W (relative to lnref's update, plus the rounding of storing W' in the
    tier's precision), so a mistake much smaller than |W| is still caught.  For a fixture of a network with biases
    the call is ``step_fn(W, mu, xi, y, y_obs, q, eta, b=b) -> (W', b')`` and b' - b is checked the same way.

    A selection algorithm's fixture: ``step_fn(..., eta, mask=mask, scale=scale)`` returns
    W - eta scale (1/n) sum_{i in S} grad l_i (see the module docstring); at the 'select_retrain' reset W is W0.

    Notes
    -----
    SPEC.md section 3: W(t+1) = W(t) - eta grad L(W(t)); section 9 for the selection algorithms.
    """
    fx = as_fixture(fixture_or_config)
    tol = resolve_tolerance(tier, rtol, atol)
    d, q, eta = fx.data, float(fx.config.q), float(fx.config.eta)
    P = Problem.of(fx).single()
    outs, refs, bases, brefs, bbases = [], [], [], [], []
    for k, t in enumerate(fx.steps):
        W, bk = fx.start(k)
        kw = {"b": bk.copy()} if fx.has_bias else {}
        kw.update(_elr_kwargs(fx, k))
        kw.update(fx.selection_kwargs(k))
        outs.append(step_fn(W.copy(), d.mu.copy(), d.xi.copy(), d.y.copy(), fx.mult(int(t)).copy(), q, eta, **kw))
        conv = fx.conventions(k)
        if fx.has_bias:
            conv["b"] = bk
        eta_t = eta * fx.scale_at(int(t)) if fx.scale_at(int(t)) != 1.0 else eta  # as the engines' set_eta
        G, Gb = model_gradients(W, d, q, fx.eps_at(int(t)), **conv, **fx.method_kwargs(k), mask=fx.mask_at(int(t)))
        refs.append((W - eta_t * G) - W)
        bases.append(W)
        if fx.has_bias:
            brefs.append((bk - eta_t * Gb) - bk)
            bbases.append(bk)

    def predict(e: Mistake, value: float | None, k: int):
        t = int(fx.steps[k])
        if e.transform is not None:
            return None
        v = e.variant(fx) if value is None else with_value(e, fx, value)
        # one step from W(t) (and b(t)) with the labels of step t (only constant-eta entries have the step scope)
        return (
            simulate(P, [t + 1], v, W0=fx.W[k], t0=t, b0=replay_bias(fx, v, k), target0=_target(fx, k))[t + 1]
            - fx.start(k)[0]
        )

    def predict32(k: int):
        t = int(fx.steps[k])
        return (
            simulate(
                P,
                [t + 1],
                P.base,
                dtype=np.float32,
                W0=fx.W[k],
                t0=t,
                b0=replay_bias(fx, P.base, k),
                target0=_target(fx, k),
            )[t + 1].astype(np.float64)
            - fx.start(k)[0]
        )

    rep = _check_arrays(
        "step",
        fx,
        outs,
        refs,
        bases,
        tol,
        predict,
        predict32,
        brefs if fx.has_bias else None,
        bbases if fx.has_bias else None,
    )
    rep.special_points = special_points(fx, "step")
    return rep


# --------------------------------------------------------------------------------------------- public checks
check_gradient = quiet(_check_gradient)
check_step = quiet(_check_step)


# --------------------------------------------------------------------------------------------- assertions
def assert_gradient_matches(
    grad_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike, **kwargs: Any
) -> Report:
    """:func:`check_gradient`, raising AssertionError with the report text when it does not match."""
    rep = check_gradient(grad_fn, fixture_or_config, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep


def assert_step_matches(
    step_fn: Callable[..., Any], fixture_or_config: Fixture | Config | str | os.PathLike, **kwargs: Any
) -> Report:
    """:func:`check_step`, raising AssertionError with the report text when it does not match."""
    rep = check_step(step_fn, fixture_or_config, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep


def assert_trajectory_matches(
    their_checkpoints: Mapping[int, Any] | Any, fixture: Fixture | str | os.PathLike, **kwargs: Any
) -> Report:
    """:func:`compare_trajectory`, raising AssertionError with the report text when it does not match."""
    rep = compare_trajectory(their_checkpoints, fixture, **kwargs)
    if not rep.passed:
        raise AssertionError(rep.text())
    return rep
