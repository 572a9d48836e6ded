"""The losses of SPEC.md sections 3 and 9, one numba function each: the logistic loss l(z) and its derivative l'(z),
and the training methods' losses g(z) = dl/dz that replace them (GCE, SCE, label smoothing, the bootstraps, the
forward and backward corrections, ELR), with the per-sample scalars one GD step reads.

=================================  ==========================================================  ===========
function                           equation                                                    SPEC.md
=================================  ==========================================================  ===========
:func:`logistic_loss`              l(z) = log(1 + exp(-z))                                     section 3
:func:`logistic_dloss`             l'(z) = -1/(1 + exp(z))                                     section 3
:func:`method_loss`, ``*_loss``    each method's l(z) (:data:`LOSS_NAMES` gives the codes)      section 9
:func:`method_dloss`, ``*_dloss``  each method's g(z) = dl/dz                                  section 9
:func:`elr_target_update`          ELR's target t <- beta t + (1 - beta) p/sum(p)               section 9
:func:`sample_scalars`             lpm_i = g(mult_i f_i) mult_i, lpy_i = lpm_i y_i               sections 3, 9
=================================  ==========================================================  ===========

The network's formulas (sigma, the outputs, one filter's GD step, the inner products in coefficients) are in
:mod:`lnref.kernels.equations`, which re-exports every name of this module.  Same numerics rules (no fastmath,
``error_model="numpy"``, every sum serial in index order).
"""

from __future__ import annotations

import math

from .cache import inline, kernel

__all__ = [
    "LOSS_NAMES",
    "LOSS_LOGISTIC",
    "LOSS_GCE",
    "LOSS_SCE",
    "LOSS_LS",
    "LOSS_BOOT_SOFT",
    "LOSS_BOOT_HARD",
    "LOSS_FORWARD",
    "LOSS_BACKWARD",
    "LOSS_ELR",
    "P_CLAMP",
    "ELR_CLAMP",
    "N_LOSS_PARAMS",
    "logistic_loss",
    "logistic_dloss",
    "sigmoid",
    "gce_loss",
    "gce_dloss",
    "sce_loss",
    "sce_dloss",
    "label_smoothing_loss",
    "label_smoothing_dloss",
    "bootstrap_soft_loss",
    "bootstrap_soft_dloss",
    "bootstrap_hard_loss",
    "bootstrap_hard_dloss",
    "forward_correction_loss",
    "forward_correction_dloss",
    "backward_correction_loss",
    "backward_correction_dloss",
    "elr_loss",
    "elr_dloss",
    "elr_target_update",
    "method_dloss",
    "method_loss",
    "elr_update_due",
    "label_targets",
    "method_scalars_range",
    "sample_scalars",
    "undo_target_update",
    "truncation_mask",
]


# ----------------------------------------------------------------------------------- the logistic loss
@inline
def logistic_loss(z):
    """l(z) = log(1 + exp(-z)) without overflow for any finite z (SPEC.md section 3)."""
    if z > 0.0:
        return math.log1p(math.exp(-z))
    return -z + math.log1p(math.exp(z))


@inline
def logistic_dloss(z):
    """l'(z) = -1/(1 + exp(z)) = -sigmoid(-z), in (-1, 0), without overflow (SPEC.md section 3)."""
    if z >= 0.0:
        e = math.exp(-z)
        return -e / (1.0 + e)
    return -1.0 / (1.0 + math.exp(z))


# ----------------------------------------------------------------------------------- training-method losses
# SPEC.md section 9.  Every method changes only the per-sample scalar of the gradient: with z = mult f (the
# margin on the label of the step), the loss l(z) and its derivative g(z) = dl/dz replace the logistic loss and
# l'(z).  Codes (the index of each name in LOSS_NAMES; Config.loss names them, the kernels branch on the code):
LOSS_NAMES = (
    "logistic",
    "gce",
    "sce",
    "label_smoothing",
    "bootstrap_soft",
    "bootstrap_hard",
    "forward",
    "backward",
    "elr",
)
LOSS_LOGISTIC, LOSS_GCE, LOSS_SCE, LOSS_LS, LOSS_BOOT_SOFT, LOSS_BOOT_HARD, LOSS_FORWARD, LOSS_BACKWARD, LOSS_ELR = (
    range(9)
)
# the clamps of the official codes (SPEC.md section 9): GCE clamps p >= 1e-7 (PyTorch), SCE's CE term clips
# p >= 1e-7, the Keras codes of the bootstraps and the corrections clip p to [1e-7, 1 - 1e-7] (K.epsilon()), ELR
# clamps p to [1e-4, 1 - 1e-4];
# a clamped probability passes no gradient (torch.clamp and tf.clip_by_value pass it on the closed interval)
P_CLAMP = 1e-7
ELR_CLAMP = 1e-4
# the length of the parameter vector every kernel takes (the largest method has three parameters)
N_LOSS_PARAMS = 3


@inline
def sigmoid(z):
    """s = 1/(1 + exp(-z)) without overflow for any finite z (the probability of the label, SPEC.md section 9)."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@inline
def _clamp(p, lo, hi):
    return min(max(p, lo), hi)


@inline
def gce_loss(z, q):
    """GCE (Zhang & Sabuncu 2018): l(z) = (1 - p^q)/q with p = max(s, 1e-7) (SPEC.md section 9)."""
    return (1.0 - max(sigmoid(z), P_CLAMP) ** q) / q


@inline
def gce_dloss(z, q):
    """g(z) = -s^q (1 - s) for s >= 1e-7, else 0 (the clamp) (SPEC.md section 9)."""
    s = sigmoid(z)
    if s < P_CLAMP:
        return 0.0
    return -(s**q) * -logistic_dloss(z)


@inline
def sce_loss(z, alpha, beta, A):
    """SCE (Wang et al. 2019, their Keras code): alpha CE + beta RCE with CE = -log max(s, 1e-7) and RCE = -A (1 - s),
    A = the log of the clamped 0 of the one-hot label (ln 1e-4 in the official code) (SPEC.md section 9)."""
    return -alpha * math.log(max(sigmoid(z), P_CLAMP)) - beta * A * -logistic_dloss(z)


@inline
def sce_dloss(z, alpha, beta, A):
    """g(z) = -alpha (1 - s) + beta A s (1 - s); the CE term is 0 where s < 1e-7 (its clip) (SPEC.md section 9)."""
    s = sigmoid(z)
    oms = -logistic_dloss(z)
    g = beta * A * s * oms
    if s >= P_CLAMP:
        g -= alpha * oms
    return g


@inline
def label_smoothing_loss(z, eps):
    """Cross-entropy against the target (1 - eps) e_y + eps/2: (1 - eps/2) l(z) + (eps/2) l(-z) (SPEC.md 9)."""
    return (1.0 - 0.5 * eps) * logistic_loss(z) + 0.5 * eps * logistic_loss(-z)


@inline
def label_smoothing_dloss(z, eps):
    """g(z) = s - 1 + eps/2 = l'(z) + eps/2 (SPEC.md section 9)."""
    return logistic_dloss(z) + 0.5 * eps


@inline
def _clipped_logs(z):
    """(log p_y, log p_-y, inside) with p = (s, 1 - s) clipped to [1e-7, 1 - 1e-7] (the Keras codes); inside is
    True where no clip acts (the only place a gradient passes)."""
    s = sigmoid(z)
    oms = -logistic_dloss(z)
    inside = s >= P_CLAMP and oms >= P_CLAMP
    if inside:
        return -logistic_loss(z), -logistic_loss(-z), True
    return math.log(_clamp(s, P_CLAMP, 1.0 - P_CLAMP)), math.log(_clamp(oms, P_CLAMP, 1.0 - P_CLAMP)), False


@inline
def bootstrap_soft_loss(z, beta):
    """Soft bootstrapping (Reed et al. 2015), target beta e_y + (1 - beta) p, gradient through the target:
    -(beta + (1 - beta) p_y) log p_y - (1 - beta) p_-y log p_-y, p clipped as Keras (SPEC.md section 9)."""
    ly, lm, _ = _clipped_logs(z)
    py = math.exp(ly)
    pm = math.exp(lm)
    return -(beta + (1.0 - beta) * py) * ly - (1.0 - beta) * pm * lm


@inline
def bootstrap_soft_dloss(z, beta):
    """g(z) = -beta (1 - s) - (1 - beta) z s (1 - s) inside the clip, else 0 (SPEC.md section 9)."""
    s = sigmoid(z)
    oms = -logistic_dloss(z)
    if s < P_CLAMP or oms < P_CLAMP:
        return 0.0
    return -beta * oms - (1.0 - beta) * z * s * oms


@inline
def bootstrap_hard_loss(z, beta):
    """Hard bootstrapping: target beta e_y + (1 - beta) onehot(argmax p); for z >= 0 the argmax is the label
    (ties go to the label), so l = -log p_y, else -beta log p_y - (1 - beta) log p_-y (clipped) (SPEC.md 9)."""
    ly, lm, _ = _clipped_logs(z)
    if z >= 0.0:
        return -ly
    return -beta * ly - (1.0 - beta) * lm


@inline
def bootstrap_hard_dloss(z, beta):
    """g(z) = -(1 - s) for z >= 0, s - beta for z < 0, inside the clip; else 0 (SPEC.md section 9)."""
    s = sigmoid(z)
    oms = -logistic_dloss(z)
    if s < P_CLAMP or oms < P_CLAMP:
        return 0.0
    if z >= 0.0:
        return -oms
    return s - beta


@inline
def forward_correction_loss(z, tau):
    """Forward correction (Patrini et al. 2017), symmetric T: -log((1 - tau) p_y + tau p_-y), p clipped as
    Keras (SPEC.md section 9)."""
    ly, lm, _ = _clipped_logs(z)
    return -math.log((1.0 - tau) * math.exp(ly) + tau * math.exp(lm))


@inline
def forward_correction_dloss(z, tau):
    """g(z) = -(1 - 2 tau) s (1 - s)/((1 - tau) s + tau (1 - s)) inside the clip, else 0 (SPEC.md section 9)."""
    s = sigmoid(z)
    oms = -logistic_dloss(z)
    if s < P_CLAMP or oms < P_CLAMP:
        return 0.0
    return -(1.0 - 2.0 * tau) * s * oms / ((1.0 - tau) * s + tau * oms)


@inline
def backward_correction_loss(z, tau):
    """Backward correction: [(1 - tau)(-log p_y) - tau (-log p_-y)]/(1 - 2 tau), p clipped as Keras; = l(z) -
    tau z/(1 - 2 tau) inside the clip (SPEC.md section 9)."""
    ly, lm, _ = _clipped_logs(z)
    return (-(1.0 - tau) * ly + tau * lm) / (1.0 - 2.0 * tau)


@inline
def backward_correction_dloss(z, tau):
    """g(z) = l'(z) - tau/(1 - 2 tau) = -(1 - s) - tau/(1 - 2 tau) inside the clip, else 0 (SPEC.md section 9)."""
    s = sigmoid(z)
    oms = -logistic_dloss(z)
    if s < P_CLAMP or oms < P_CLAMP:
        return 0.0
    return logistic_dloss(z) - tau / (1.0 - 2.0 * tau)


@inline
def elr_loss(z, lam, a, b):
    """ELR (Liu et al. 2020): l(z) + lam log(1 - a p_y - b p_-y), p clamped to [1e-4, 1 - 1e-4], with a, b the
    sample's target on its label and on the other class (SPEC.md section 9)."""
    py = _clamp(sigmoid(z), ELR_CLAMP, 1.0 - ELR_CLAMP)
    pm = _clamp(-logistic_dloss(z), ELR_CLAMP, 1.0 - ELR_CLAMP)
    return logistic_loss(z) + lam * math.log(1.0 - a * py - b * pm)


@inline
def elr_dloss(z, lam, a, b):
    """g(z) = -(1 - s) - lam (a - b) s (1 - s)/(1 - a s - b (1 - s)); the lam term is 0 where the clamp acts
    (SPEC.md section 9)."""
    s = sigmoid(z)
    oms = -logistic_dloss(z)
    g = logistic_dloss(z)
    if s >= ELR_CLAMP and oms >= ELR_CLAMP and s <= 1.0 - ELR_CLAMP and oms <= 1.0 - ELR_CLAMP:
        g -= lam * (a - b) * s * oms / (1.0 - a * s - b * oms)
    return g


@inline
def elr_target_update(tp, tm, f, beta):
    """ELR's target after one update (SPEC.md section 9): t <- beta t + (1 - beta) p/sum(p), p = the clamped
    class probabilities (sigma(f), sigma(-f)) in [1e-4, 1 - 1e-4]; (tp, tm) are the targets of class +1 and -1.
    Returns the new (tp, tm)."""
    pp = _clamp(sigmoid(f), ELR_CLAMP, 1.0 - ELR_CLAMP)
    pn = _clamp(sigmoid(-f), ELR_CLAMP, 1.0 - ELR_CLAMP)
    tot = pp + pn
    return beta * tp + (1.0 - beta) * (pp / tot), beta * tm + (1.0 - beta) * (pn / tot)


@inline
def method_dloss(z, code, lp, a, b):
    """g(z) of the method with code ``code`` (LOSS_NAMES) and parameters lp (SPEC.md section 9); a, b: ELR's
    target on the label and on the other class (unused by the others).  The logistic code returns
    :func:`logistic_dloss` itself (the bits of plain GD)."""
    if code == LOSS_LOGISTIC:
        return logistic_dloss(z)
    if code == LOSS_GCE:
        return gce_dloss(z, lp[0])
    if code == LOSS_SCE:
        return sce_dloss(z, lp[0], lp[1], lp[2])
    if code == LOSS_LS:
        return label_smoothing_dloss(z, lp[0])
    if code == LOSS_BOOT_SOFT:
        return bootstrap_soft_dloss(z, lp[0])
    if code == LOSS_BOOT_HARD:
        return bootstrap_hard_dloss(z, lp[0])
    if code == LOSS_FORWARD:
        return forward_correction_dloss(z, lp[0])
    if code == LOSS_BACKWARD:
        return backward_correction_dloss(z, lp[0])
    return elr_dloss(z, lp[0], a, b)


@inline
def method_loss(z, code, lp, a, b):
    """l(z) of the method with code ``code`` (see :func:`method_dloss`)."""
    if code == LOSS_LOGISTIC:
        return logistic_loss(z)
    if code == LOSS_GCE:
        return gce_loss(z, lp[0])
    if code == LOSS_SCE:
        return sce_loss(z, lp[0], lp[1], lp[2])
    if code == LOSS_LS:
        return label_smoothing_loss(z, lp[0])
    if code == LOSS_BOOT_SOFT:
        return bootstrap_soft_loss(z, lp[0])
    if code == LOSS_BOOT_HARD:
        return bootstrap_hard_loss(z, lp[0])
    if code == LOSS_FORWARD:
        return forward_correction_loss(z, lp[0])
    if code == LOSS_BACKWARD:
        return backward_correction_loss(z, lp[0])
    return elr_loss(z, lp[0], a, b)


@inline
def elr_update_due(code, lp, t):
    """Whether GD step t updates ELR's targets (steps 0, period, 2 period, ...; lp[2] = period)."""
    return code == LOSS_ELR and t % int(lp[2]) == 0


@inline
def label_targets(tp, tm, mult):
    """ELR's (a, b): the target of the step's label sign(mult) and of the other class, from the targets of class
    +1 (tp) and -1 (tm) (SPEC.md section 9)."""
    if mult > 0.0:
        return tp, tm
    return tm, tp


@kernel
def method_scalars_range(f, mult, y, code, lp, target, target_old, update, i0, i1, lpm, lpy):
    """:func:`sample_scalars` for a method other than the logistic loss: one compiled function (not inlined), so
    the methods' code is compiled once, not into every step kernel."""
    beta = lp[1]
    for i in range(i0, i1):
        mi = mult[i]
        a = 0.0
        b = 0.0
        if code == LOSS_ELR:
            tp = target[0, i]
            tm = target[1, i]
            if update:
                target_old[0, i] = tp
                target_old[1, i] = tm
                tp, tm = elr_target_update(tp, tm, f[i], beta)
                target[0, i] = tp
                target[1, i] = tm
            a, b = label_targets(tp, tm, mi)
        v = method_dloss(mi * f[i], code, lp, a, b) * mi
        lpm[i] = v
        lpy[i] = v * y[i]


@inline
def sample_scalars(f, mult, y, code, lp, target, target_old, update, i0, i1, lpm, lpy):
    """The per-sample scalars of one GD step for i0 <= i < i1 (SPEC.md sections 3 and 9).

    With ``update`` (ELR at an update step) first the targets (2, n) (row 0: class +1, row 1: class -1) are
    updated from f (:func:`elr_target_update`), the old values kept in target_old (to undo a rejected step); then
    lpm_i = g(mult_i f_i) mult_i and lpy_i = lpm_i y_i, g of the method (:func:`method_dloss`; ELR reads the
    target of the label sign(mult_i) as a).  For the logistic loss, lpm_i = l'(mult_i f_i) mult_i exactly
    (inline, the step kernels' fast path); the other methods run :func:`method_scalars_range`.
    """
    if code == LOSS_LOGISTIC:
        for i in range(i0, i1):
            mi = mult[i]
            v = logistic_dloss(mi * f[i]) * mi
            lpm[i] = v
            lpy[i] = v * y[i]
    else:
        method_scalars_range(f, mult, y, code, lp, target, target_old, update, i0, i1, lpm, lpy)


@inline
def undo_target_update(target, target_old):
    """Restore ELR's targets saved by :func:`sample_scalars` (a rejected step leaves the state untouched)."""
    for i in range(target.shape[1]):
        target[0, i] = target_old[0, i]
        target[1, i] = target_old[1, i]


@kernel
def truncation_mask(margin, k, out):
    """The truncated Lq loss's mask (SPEC.md section 9, "Selection algorithms"; Zhang & Sabuncu 2018):
    out_i = 1 when the probability of the observed label sigmoid(y_obs_i f_i) exceeds k, else 0."""
    for i in range(margin.shape[0]):
        out[i] = 1.0 if sigmoid(margin[i]) > k else 0.0
