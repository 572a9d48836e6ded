"""ONE NumPy reference of the dynamics, with switches for the mistakes people make (SPEC.md sections 2-3).

:func:`simulate` runs (label-noise) GD from a fixture's W0; :func:`gradient` is the gradient it uses.  With
``Variant()`` (every switch off) they are the exact dynamics of SPEC.md; every entry of the oracle's catalogue of
known mistakes (:mod:`lnref.oracle.catalogue`) is a :class:`Variant` of these functions, never a separate copy of
the equations.  The activation and its derivative are defined once here (:func:`sigma`, :func:`dsigma`).

This is the oracle's *replay* code: plain NumPy (BLAS matmuls, other summation order than lnref's kernels), so
its distance to lnref's trajectory is also a realistic measure of how far an independent correct implementation
lands.  It runs in float64 or float32 and never warns (overflow in a mistaken variant is expected and gives
non-finite weights, which the callers handle).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from .replay_core import (
    SCHEDULES,
    CoTeach,
    Problem,
    Stepper,
    dsigma,
    gradient,
    initial_bias,
    outputs,
    rounded,
    sigma,
    step_size,
)
from .replay_coteaching import simulate_pair
from .replay_losses import (
    LOSS_DERIVATIVES,
    METHOD_DERIVATIVES,
    elr_initial,
    elr_period,
    elr_update,
    is_elr,
)
from .replay_variant import EXACT, Variant, base_variant

__all__ = [
    "Variant",
    "Problem",
    "CoTeach",
    "Stepper",
    "initial_bias",
    "sigma",
    "dsigma",
    "outputs",
    "gradient",
    "simulate",
    "EXACT",
    "LOSS_DERIVATIVES",
    "SCHEDULES",
    "step_size",
    "rounded",
    "METHOD_DERIVATIVES",
    "base_variant",
    "step_gradient",
    "elr_state",
    "elr_initial",
    "elr_update",
    "elr_period",
]


def elr_state(W, P, v: Variant, b, target: np.ndarray, t: int, period: int | None = None):
    """(targets the loss of step t uses, whether this step updated them, targets after step t) under ``v``, from
    the targets before step t (SPEC.md section 9: updated before the loss at t = 0, period, 2 period, ...)."""
    period = elr_period(v) if period is None else period
    if t % period != 0:
        return target, False, target
    new = elr_update(target, outputs(W, P, v, b), v)
    if v.elr_update == "before":
        return new, True, new
    return target, False, new


def step_gradient(W, P, t: int, v: Variant = EXACT, b=None, target=None):
    """The gradient of step t at W under ``v`` (labels of step t; ELR: ``target`` the targets before step t's
    update, default ``v.elr_init``'s), as :func:`gradient`.  A selection algorithm's step t: the gradient of its
    objective, scale[t] times the masked mean over n (the mean over |S| for scale = n/|S|)."""
    lab = P.labels(t, v)
    if not is_elr(v):
        G, Gb = gradient(W, P, lab, v, b)
    else:
        dt = W.dtype.type
        target = elr_initial(P, v, dt) if target is None else np.asarray(target, dtype=dt)
        use, fresh, _ = elr_state(W, P, v, b, target, t)
        G, Gb = gradient(W, P, lab, v, b, use, fresh)
    c = P.step_scale(t, v)
    if c != 1.0:  # a mean over |S|: the step's objective is n/|S| times the masked mean
        G, Gb = G * W.dtype.type(c), None if Gb is None else Gb * W.dtype.type(c)
    return G, Gb


def simulate(
    P: Problem,
    steps: Iterable[int],
    v: Variant = EXACT,
    dtype=np.float64,
    W0: np.ndarray | None = None,
    t0: int = 0,
    b0: np.ndarray | None = None,
    with_bias: bool = False,
    target0: np.ndarray | None = None,
) -> dict[int, np.ndarray] | dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """W(t) at every step in ``steps`` of GD from W0 under ``v`` (SPEC.md section 3 when ``v`` is exact).

    Once the weights become non-finite every later requested step holds NaN.  No warnings are raised.

    Parameters
    ----------
    P : Problem
    steps : iterable of int >= 0
    v : Variant
    dtype : numpy float type of the arithmetic and the storage (float64 or float32)
    W0 : array (2, m, d), optional, default ``P.W0``
    t0 : int
        The step W0 is at (its labels and step size are those of step t0); ``steps`` are absolute, >= t0.
    b0 : array (2, m), optional
        The biases at step t0 (default ``P.b0``, or ``v.b0`` everywhere); used only when ``v.bias``.
    with_bias : bool
        Return (W, b) pairs (b None without biases) instead of W alone.
    target0 : array (2, n), optional
        ELR only: the targets at step t0, before its update (default: ``v.elr_init``'s at step 0).

    Returns
    -------
    dict step -> ndarray (2, m, d) of ``dtype`` (or step -> (W, b) with ``with_bias``)
    """
    want = sorted({int(s) for s in steps})
    out: dict[int, np.ndarray] = {}
    if not want:
        return out
    if P.coteach is not None:  # two networks, masks recomputed from the replay's own outputs
        return simulate_pair(P, want, v, dtype, W0, t0, b0, with_bias)
    if v.round_inputs:  # the inputs are rounded once; the arithmetic stays in ``dtype``
        P, W0, b0 = rounded(P, v, P.W0 if W0 is None else W0, b0)
        v = replace(v, round_inputs="")
    dt = np.dtype(dtype).type
    net = Stepper(P, v, dt, P.W0 if W0 is None else W0, b0)
    # 'select_retrain' with select_then='retrain': the step ``P.reset`` starts from the run's initial state again
    # (this call's W0 and b0 when it starts at step 0, else the problem's)
    if P.reset >= 0 and t0 <= P.reset:
        if int(t0) == 0:
            Wr, br = net.W.copy(), None if net.b is None else net.b.copy()
        else:
            Wr, br = np.array(P.W0, dtype=dt), initial_bias(P, v, dt, None)
    elr = is_elr(v)
    if elr:
        net.tgt = np.array(target0, dtype=dt) if target0 is not None else elr_initial(P, v, dt)
        period = elr_period(v)
    with np.errstate(all="ignore"):
        for t in range(int(t0), want[-1] + 1):
            if t in want:
                out[t] = net.state(with_bias)
            if t == want[-1]:
                break
            if t == P.reset:
                net.W, net.b = Wr.copy(), None if br is None else br.copy()
            use, fresh = None, False
            if elr:
                use, fresh, net.tgt = elr_state(net.W, P, v, net.b, net.tgt, t, period)
            if not net.step(P.labels(t, v), dt(step_size(P, v, t)), use, fresh):
                for s in want:
                    out.setdefault(s, net.nan_state(with_bias))
                break
    return out
