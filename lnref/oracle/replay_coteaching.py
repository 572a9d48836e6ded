"""Co-teaching in the oracle's NumPy replay (SPEC.md section 9): two networks, each stepped on the samples the
OTHER ranks as the int((1 - R(t)) n) of smallest loss, R(t) = tau min(t / T_k, 1), mean over them.

Part of the declared second implementation of the dynamics (:mod:`lnref.oracle.replay`): the masks are recomputed
from the replay's own two networks at every step (not read from the fixture), so replaying lnref's fixture checks
lnref's selection too, and the co-teaching mistakes of the catalogue (each network on its own ranking, R(t)
without its cap) are switches of :class:`~lnref.oracle.replay.Variant`.  A replay's state is the two networks
stacked: W (4, m, d) (rows 0-1 network 1, rows 2-3 network 2, each with index 0 holding j = +1), b (4, m).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .replay_core import Problem, Stepper, outputs, rounded, step_size
from .replay_variant import Variant

__all__ = ["simulate_pair", "forget_rate", "kept", "smallest_loss", "stack", "unstack"]


def forget_rate(t: int, tau: float, tk: int, cap: bool = True) -> float:
    """R(t) = tau min(t / T_k, 1) (``cap=False``: the mistake tau t / T_k)."""
    return tau * min(t / tk, 1.0) if cap else tau * (t / tk)


def kept(t: int, n: int, tau: float, tk: int, cap: bool = True) -> int:
    """int((1 - R(t)) n), the number of samples each network trains on at step t (at least 0)."""
    return max(0, int((1.0 - forget_rate(t, tau, tk, cap)) * n))


def smallest_loss(margin: np.ndarray, keep: int) -> np.ndarray:
    """0/1 mask (float64) of the ``keep`` largest margins y_obs f (the smallest losses), ties to the lower index."""
    order = np.argsort(-np.asarray(margin, dtype=np.float64), kind="stable")
    mask = np.zeros(order.size)
    mask[order[:keep]] = 1.0
    return mask


def stack(a: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """The two networks' arrays (2, ...) stacked into one (4, ...)."""
    return np.concatenate([a, a2], axis=0)


def unstack(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(network 1's, network 2's) of a stacked (4, ...) array."""
    return a[:2], a[2:]


def simulate_pair(P: Problem, want: list[int], v: Variant, dtype, W0=None, t0: int = 0, b0=None, with_bias=False):
    """Both networks from step ``t0`` (:func:`lnref.oracle.replay.simulate` for a problem with ``coteach``):
    dict step -> stacked W (4, m, d), or (W, b) with ``with_bias`` (b (4, m) or None).  ``W0`` / ``b0`` are
    network 1's, or both stacked; network 2 starts from ``P.coteach`` otherwise."""
    ct = P.coteach
    W0 = P.W0 if W0 is None else np.asarray(W0)
    W0_2 = ct.W0_2
    if W0.shape[0] == 4:
        W0, W0_2 = unstack(W0)
    b0_2 = ct.b0_2
    if b0 is not None and np.shape(b0)[0] == 4:
        b0, b0_2 = unstack(np.asarray(b0))
    P1 = replace(P, coteach=None, mask=None, scale=None, W0=W0)
    P2 = replace(P1, W0=W0_2, b0=b0_2)
    if v.round_inputs:
        P1, W0, b0 = rounded(P1, v, W0, b0)
        P2, W0_2, b0_2 = rounded(P2, v, W0_2, b0_2)
        v = replace(v, round_inputs="")
    dt = np.dtype(dtype).type
    nets = (Stepper(P1, v, dt, W0, b0), Stepper(P2, v, dt, W0_2, b0_2))
    y = P.y if v.label_source == "true" else P.y_obs
    n, out = P.n, {}

    def state():
        W = stack(nets[0].W, nets[1].W)
        if not with_bias:
            return W.copy()
        b = None if nets[0].b is None else stack(nets[0].b, nets[1].b)
        return W.copy(), None if b is None else b.copy()

    with np.errstate(all="ignore"):
        for t in range(int(t0), want[-1] + 1):
            if t in want:
                out[t] = state()
            if t == want[-1]:
                break
            keep = kept(t, n, ct.tau, ct.tk, v.coteach_cap)
            margins = [P.y_obs * outputs(net.W, Pk, v, net.b) for net, Pk in zip(nets, (P1, P2))]
            if v.coteach_exchange == "own":
                masks = (smallest_loss(margins[0], keep), smallest_loss(margins[1], keep))
            else:  # network 2 picks network 1's samples, and network 1 network 2's
                masks = (smallest_loss(margins[1], keep), smallest_loss(margins[0], keep))
            exact = v.mask_mode == "exact"
            c = n / keep if exact and v.select_mean == "selected" and keep > 0 else 1.0
            eta = dt(step_size(P1, v, t, c))
            ok = True
            for net, mask in zip(nets, masks):
                ok = net.step(mask * y if exact else y, eta) and ok
            if not ok:
                nan = np.full((4, *W0.shape[1:]), np.nan)
                nanb = None if nets[0].b is None else np.full((4, W0.shape[1]), np.nan)
                for s in want:
                    out.setdefault(s, (nan, nanb) if with_bias else nan)
                break
    return out
