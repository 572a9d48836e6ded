"""The trajectory check: :func:`compare_trajectory` compares the weights (and biases) another implementation
reached at a fixture's checkpoints with lnref's, and diagnoses a mismatch by replay
(:func:`lnref.oracle.diagnosis.diagnose_trajectory`).  Also :func:`quiet`, the wrapper every public check wears.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import ConfigError
from ..model import loss as model_loss
from .coverage import special_points
from .diagnosis import diagnose_trajectory
from .fixtures import Fixture, bias_scale, load_fixture
from .intake import their_biases, their_loss
from .intake import their_checkpoints as read_checkpoints
from .report import CheckpointError, Report, coefficients, decomposable, maxabs, rel
from .tolerances import Tolerance, bounds, judgeable, resolve_tolerance

__all__ = ["compare_trajectory", "quiet", "second_network", "net2_error"]


def quiet(fn):
    """The check with NumPy's floating-point warnings silenced (a diverged or replayed trajectory overflows)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = fn.__name__.lstrip("_")
    return wrapper


def _compare_trajectory(
    their_checkpoints: Mapping[int, Any] | Any,
    fixture: Fixture | str | os.PathLike,
    *,
    tier: str | Tolerance = "float64",
    rtol: float | None = None,
    atol: float | None = None,
    loss: Mapping[int, float] | Sequence[float] | None = None,
    biases: Mapping[int, Any] | Any | None = None,
    second: Mapping[int, Any] | Any | None = None,
    second_biases: Mapping[int, Any] | Any | None = None,
) -> Report:
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
    second, second_biases : like ``their_checkpoints`` and ``biases``
        Co-teaching's second network (a fixture with ``W0_2``, SPEC.md section 9): their W_2(t) from the
        fixture's W0_2 (and b_2(t) with biases), required exactly for a co-teaching fixture, at the same steps as
        W.  Compared at both tiers like W (``max|dW_2| / max|W_2|``, and b_2 like b; column "net2 rel", the larger
        of the two); a checkpoint passes only when both networks pass.

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
        raise ConfigError(
            "this fixture's network has biases (config bias=True, SPEC.md section 7): pass their "
            "biases too, biases={step: b (2, m)} (array 'b' (K, 2, m) in their .npz for lnref compare)"
        )
    if not fx.has_bias and biases is not None:
        raise ConfigError(
            "their biases were given but this fixture's network has no bias (config bias=False); "
            "export a fixture with --bias true to check a network with biases"
        )
    if fx.coteaching and second is None:
        raise ConfigError(
            "this fixture is co-teaching's (two networks, SPEC.md section 9): pass their second network's "
            "weights too, second={step: W_2 (2, m, d)} (array 'W_2' (K, 2, m, d) in their .npz for lnref compare)"
        )
    if not fx.coteaching and (second is not None or second_biases is not None):
        raise ConfigError(
            f"their second network was given but this fixture has one network (algorithm="
            f"{fx.config.algorithm!r}); export a fixture with --algorithm coteaching to check two networks"
        )
    steps, Ws, dtypes, extra = read_checkpoints(their_checkpoints, fx)
    W2s = B2s = None
    if fx.coteaching:
        W2s, B2s = second_network(second, second_biases, fx, steps)
    Bs = their_biases(biases, fx, steps, given_steps) if fx.has_bias else None
    bsc = bias_scale(fx.b, fx.b0) if fx.has_bias else 1.0
    idx = [fx.index(t) for t in steps]
    spread = None if fx.spread is None else fx.spread[idx]
    can = judgeable(tol, np.array(steps), spread)
    if not np.all(can):
        bad = [t for t, c in zip(steps, can) if not c]
        raise ConfigError(
            f"this fixture cannot judge at tier {tol.name!r} at step(s) {bad}: its own trajectory is "
            "too sensitive there (a rounding-sized change of W0 moves W by "
            f"{max(tol.spread_of(fx.spread[fx.index(t)]) for t in bad):.1e}); compare fewer steps "
            "or export a fixture with fewer steps or a smaller eta"
        )
    bnd = bounds(tol, np.array(steps), spread)
    theirs_l = None if loss is None else their_loss(loss, steps, given_steps)
    dec = decomposable(fx)
    sg = maxabs(fx.gamma)
    sr = maxabs(fx.rho)
    sg, sr = sg or max(sg, sr) or 1.0, sr or max(sg, sr) or 1.0
    rep = Report("trajectory", tol)
    scales = []
    whats: list[list[str]] = []  # what failed at each checkpoint
    for k, t in enumerate(steps):
        i = idx[k]
        W_ref, W = fx.W[i], Ws[k]
        b = None if Bs is None else Bs[k]
        finite = bool(np.all(np.isfinite(W))) and (b is None or bool(np.all(np.isfinite(b))))
        diff = maxabs(W - W_ref) if finite else math.inf
        r = rel(diff, maxabs(W_ref))
        scales.append(maxabs(W_ref))
        if theirs_l is not None:
            lo = theirs_l[k]
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
        if theirs_l is not None or (tol.on == "summaries" and finite):
            row.ok = row.ok and lrel <= bnd[k]
            failed += [] if lrel <= bnd[k] else ["loss"]
        if W2s is not None:
            row.net2_rel_err = net2_error(fx, i, W2s[k], None if B2s is None else B2s[k], tol.atol)
            ok2 = row.net2_rel_err <= bnd[k]
            row.ok = row.ok and ok2
            failed += [] if ok2 else ["W_2" if B2s is None else "W_2 or b_2"]
        whats.append(failed)
        rep.rows.append(row)
        if not row.ok and rep.first_failure is None:
            rep.first_failure = t
    unchecked = [int(t) for t in fx.steps if int(t) not in steps]
    if unchecked:
        rep.notes.append(f"fixture checkpoint(s) {unchecked} were not checked (not in their file)")
    if extra:
        rep.notes.append(
            f"their step(s) {extra[:10]}{' ...' if len(extra) > 10 else ''} are not checkpoints of the "
            "fixture and were ignored"
        )
    if spread is not None and np.any(bnd > np.array([tol.at(t) for t in steps])):
        loose = [t for t, b in zip(steps, bnd) if b > tol.at(t)]
        rep.notes.append(
            f"at step(s) {loose} the bound is {tol.safety:g} x the fixture's measured spread (its "
            "trajectory amplifies rounding there), wider than the tier's rtol (1 + t)"
        )
    rep.special_points = special_points(fx, "trajectory", idx)
    if rep.first_failure is None:
        return rep
    diagnose_trajectory(rep, fx, steps, idx, Ws, dtypes, scales, bnd, sg, sr, tol, Bs, bsc, whats, W2s)
    return rep


compare_trajectory = quiet(_compare_trajectory)


def second_network(second, second_biases, fx: Fixture, steps: list[int]):
    """(their W_2 at ``steps``, their b_2 there or None) of a co-teaching fixture, from a mapping or an array
    aligned with the fixture's steps; ConfigError for a missing step, a wrong shape or dtype."""
    s2, W2, _, _ = read_checkpoints(second, fx)
    got = dict(zip(s2, W2))
    missing = [t for t in steps if t not in got]
    if missing:
        raise ConfigError(f"their second network's W_2 is missing step(s) {missing} (they are given for their W)")
    B2 = None
    if fx.has_bias:
        if second_biases is None:
            raise ConfigError(
                "this co-teaching fixture's networks have biases: pass their second network's biases too, "
                "second_biases={step: b_2 (2, m)} (array 'b_2' (K, 2, m) in their .npz for lnref compare)"
            )
        given = sorted(int(t) for t in second) if isinstance(second, Mapping) else None
        B2 = their_biases(second_biases, fx, steps, given)
    elif second_biases is not None:
        raise ConfigError("their second network's biases were given but this fixture's network has no bias")
    return [got[t] for t in steps], B2


def net2_error(fx: Fixture, i: int, W2: np.ndarray, b2: np.ndarray | None, atol: float) -> float:
    """The second network's relative error at checkpoint index i: max|W_2 - lnref's| / max|lnref's W_2|, and
    likewise b_2 relative to the largest |b_2| of the fixture (the larger of the two); inf when not finite, 0
    when within ``atol``."""
    if not (np.all(np.isfinite(W2)) and (b2 is None or np.all(np.isfinite(b2)))):
        return math.inf
    d = maxabs(W2 - fx.W_2[i])
    err = 0.0 if d <= atol else rel(d, maxabs(fx.W_2[i]))
    if b2 is not None:
        db = maxabs(b2 - fx.b_2[i])
        err = max(err, 0.0 if db <= atol else db / bias_scale(fx.b_2, fx.b0_2))
    return err
