"""The losses of the oracle's NumPy replay: d l / d f of the logistic loss and of each mistaken evaluation of it
(:data:`LOSS_DERIVATIVES`), g(z) of each training method of SPEC.md section 9 and of the method mistakes the
catalogue names (:data:`METHOD_DERIVATIVES`), and ELR's targets.  Part of the declared second implementation of
the dynamics (:mod:`lnref.oracle.replay`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .replay_variant import Variant

__all__ = [
    "LOSS_DERIVATIVES",
    "METHOD_DERIVATIVES",
    "P_CLIP",
    "ELR_CLIP",
    "sigmoid",
    "dloss",
    "is_elr",
    "elr_period",
    "elr_initial",
    "elr_update",
]


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: d l_i / d f_i (before the 1/n) of each loss a Variant can name: ``fn(f, labels) -> array``.  A new loss (or a
#: new mistake in evaluating one) is one more entry here and a Variant with ``loss=<key>``.
LOSS_DERIVATIVES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "logistic": lambda f, lab: -lab * sigmoid(-lab * f),
    "wrong_arg": lambda f, lab: -lab * sigmoid(lab * f),
    "labels01": lambda f, lab: -((lab + 1) * f.dtype.type(0.5)) * sigmoid(-((lab + 1) * f.dtype.type(0.5)) * f),
    "bce_pm1": lambda f, lab: sigmoid(f) - lab,
}


#: the clip of the Keras codes (SCE's CE term, the bootstraps, the corrections) and the clamp of GCE: 1e-7;
#: ELR's clamp of p: 1e-4 (SPEC.md section 9)
P_CLIP, ELR_CLIP = 1e-7, 1e-4


def _inside(s, oms, c):
    return (s >= c) & (oms >= c)


def _elr_g(z, p, a, b, v, fresh):
    """ELR's g(z) (SPEC.md section 9) under the ELR switches of ``v``; ``fresh``: this step updated the targets
    from its own outputs (only then can a non-detached target pass a gradient)."""
    s, oms = sigmoid(z), sigmoid(-z)
    lam = p["lam"]
    h = 1.0 - a * s - b * oms
    extra = a - b
    if not v.elr_detach and fresh:
        extra = extra + (1.0 - p["beta"]) * (2.0 * s - 1.0)  # d(target)/dz through the update, not detached
    term = lam * extra * s * oms / h
    if v.elr_clamp:
        ok = (s >= ELR_CLIP) & (oms >= ELR_CLIP) & (s <= 1.0 - ELR_CLIP) & (oms <= 1.0 - ELR_CLIP)
        term = np.where(ok, term, 0.0)
    return -oms - term


def _clipped(g, s, oms):
    return np.where(_inside(s, oms, P_CLIP), g, 0.0)


def _S(z):
    return sigmoid(z), sigmoid(-z)


#: g(z) = dl/dz of each training method (SPEC.md section 9) and of the method mistakes the catalogue names:
#: ``fn(z, params, a, b, v, fresh) -> array``, z = label * f; a, b are ELR's targets on the label and on the other
#: class (zeros for the others), ``fresh`` whether this step updated them.  The logistic loss stays in
#: :data:`LOSS_DERIVATIVES` (its bits unchanged).
METHOD_DERIVATIVES: dict[str, Callable] = {
    "gce": lambda z, p, a, b, v, fr: np.where(_S(z)[0] >= P_CLIP, -(_S(z)[0] ** p["q"]) * _S(z)[1], 0.0),
    "sce": lambda z, p, a, b, v, fr: (
        p["beta"] * p["A"] * _S(z)[0] * _S(z)[1] - np.where(_S(z)[0] >= P_CLIP, p["alpha"] * _S(z)[1], 0.0)
    ),
    "label_smoothing": lambda z, p, a, b, v, fr: -_S(z)[1] + 0.5 * p["eps"],
    # the target (1 - eps) e_y + eps (eps on each class: it sums to 1 + eps): l(z) + eps l(-z)
    "label_smoothing_unnormalised": lambda z, p, a, b, v, fr: -_S(z)[1] + p["eps"] * _S(z)[0],
    "bootstrap_soft": lambda z, p, a, b, v, fr: _clipped(
        -p["beta"] * _S(z)[1] - (1.0 - p["beta"]) * z * _S(z)[0] * _S(z)[1], *_S(z)
    ),
    # the target beta e_y + (1 - beta) p with p detached: beta x CE
    "bootstrap_soft_detached": lambda z, p, a, b, v, fr: _clipped(-p["beta"] * _S(z)[1], *_S(z)),
    "bootstrap_hard": lambda z, p, a, b, v, fr: _clipped(np.where(z >= 0, -_S(z)[1], _S(z)[0] - p["beta"]), *_S(z)),
    "forward": lambda z, p, a, b, v, fr: _clipped(
        -(1.0 - 2.0 * p["tau"]) * _S(z)[0] * _S(z)[1] / ((1.0 - p["tau"]) * _S(z)[0] + p["tau"] * _S(z)[1]), *_S(z)
    ),
    "backward": lambda z, p, a, b, v, fr: _clipped(-_S(z)[1] - p["tau"] / (1.0 - 2.0 * p["tau"]), *_S(z)),
    "elr": _elr_g,
}


def dloss(
    f: np.ndarray, lab: np.ndarray, v: Variant, target: np.ndarray | None = None, fresh: bool = False
) -> np.ndarray:
    """d l_i / d f_i of every sample (before the 1/n), under ``v.loss`` (ELR: ``target`` (2, n) the targets the
    loss uses)."""
    if v.loss in METHOD_DERIVATIVES:
        dt = f.dtype.type
        z = lab * f
        if target is None:
            a = b = np.zeros_like(f)
        else:
            a = np.where(lab > 0, target[0], target[1]).astype(f.dtype)
            b = np.where(lab > 0, target[1], target[0]).astype(f.dtype)
        with np.errstate(all="ignore"):
            g = METHOD_DERIVATIVES[v.loss](z, dict(v.loss_params), a, b, v, fresh)
        return (np.asarray(g) * lab).astype(dt, copy=False)
    try:
        return LOSS_DERIVATIVES[v.loss](f, lab)
    except KeyError:
        raise ValueError(f"loss={v.loss!r}") from None


def is_elr(v: Variant) -> bool:
    return v.loss == "elr"


def elr_period(v: Variant) -> int:
    """The period of ELR's target updates under ``v`` (its override, else the config's)."""
    return int(v.elr_period) if v.elr_period else int(dict(v.loss_params).get("period", 1))


def elr_initial(P, v: Variant, dt=np.float64) -> np.ndarray:
    """ELR's targets at step 0 under ``v.elr_init`` (2, n): zeros (exact), one-hot of y_obs, or 1/2."""
    if v.elr_init == "label":
        return np.stack([(P.y_obs > 0), (P.y_obs < 0)]).astype(dt)
    if v.elr_init == "uniform":
        return np.full((2, P.n), 0.5, dtype=dt)
    return np.zeros((2, P.n), dtype=dt)


def elr_update(target: np.ndarray, f: np.ndarray, v: Variant) -> np.ndarray:
    """t <- beta t + (1 - beta) p/sum(p), p = (sigmoid(f), sigmoid(-f)) clamped to [1e-4, 1 - 1e-4] (unless
    ``v.elr_clamp`` is off) (SPEC.md section 9)."""
    beta = f.dtype.type(dict(v.loss_params)["beta"])
    pp, pn = sigmoid(f), sigmoid(-f)
    if v.elr_clamp:
        pp, pn = np.clip(pp, ELR_CLIP, 1 - ELR_CLIP), np.clip(pn, ELR_CLIP, 1 - ELR_CLIP)
    tot = pp + pn
    return np.stack([beta * target[0] + (1 - beta) * (pp / tot), beta * target[1] + (1 - beta) * (pn / tot)])
