"""Losses, accuracies on clean/noisy subsets and coefficient summaries at one logged step.

The names below are the columns of ``Result.history`` and of ``metrics.csv``.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels import metrics as KM
from ..kernels import weights as K

__all__ = [
    "HISTORY_COLUMNS",
    "METHOD_COLUMNS",
    "method_sample_losses",
    "method_mean_loss",
    "sample_losses",
    "step_metrics",
    "accuracy",
]

HISTORY_COLUMNS: dict[str, str] = {
    "step": "GD step t",
    "loss": "training loss (1/n) sum_i l(y_obs_i f_i)",
    "loss_clean": "mean training loss over clean samples S_c (NaN if S_c is empty)",
    "loss_noisy": "mean training loss over mislabelled samples S_f (NaN if S_f is empty)",
    "train_acc": "fraction of samples with y_obs_i f_i > 0 (fitted w.r.t. the observed label)",
    "train_acc_clean": "fraction of clean samples with y_obs_i f_i > 0",
    "train_acc_noisy": "fraction of mislabelled samples with y_obs_i f_i > 0 (fitted to the wrong label)",
    "true_acc_noisy": "fraction of mislabelled samples predicted as their TRUE label (y_i f_i > 0)",
    "test_acc": "test accuracy: fraction of test samples with y_score f > 0 (NaN if n_test = 0)",
    "gamma_max": "max_{j,r} gamma_{j,r}",
    "gamma_mean": "mean_{j,r} gamma_{j,r}",
    "gamma_min": "min_{j,r} gamma_{j,r}",
    "rho_bar_max_clean": "max over clean i and all j,r of rho_bar_{j,r,i} = max(rho, 0)",
    "rho_bar_max_noisy": "max over mislabelled i and all j,r of rho_bar_{j,r,i}",
    "rho_max_mean_clean": "mean over clean i of max_{j,r} rho_{j,r,i}",
    "rho_max_mean_noisy": "mean over mislabelled i of max_{j,r} rho_{j,r,i}",
    "rho_under_min": "min over all i, j, r of rho_under_{j,r,i} = min(rho, 0)",
}


# columns a run with a training method other than the logistic loss adds to its history (SPEC.md section 9)
METHOD_COLUMNS: dict[str, str] = {
    "method_loss": "the training method's loss (1/n) sum_i l_method(y_obs_i f_i), as GD's step at t evaluates it "
    "(ELR: with the targets after that step's update); 'loss' stays the plain logistic loss",
}


def method_sample_losses(
    f: np.ndarray, y: np.ndarray, y_obs: np.ndarray, code: int, lp: np.ndarray, target: np.ndarray, update: bool
) -> np.ndarray:
    """The method's loss per sample at outputs f on the observed labels (SPEC.md section 9), computed by the
    kernel GD runs; ``target`` (2, n) is ELR's targets before the step (not modified; ``update``: whether the
    step updates them first)."""
    n = f.shape[0]
    loss = np.empty(n)
    K.method_scalars(
        np.ascontiguousarray(f, dtype=np.float64),
        np.ascontiguousarray(y_obs, dtype=np.float64),
        np.ascontiguousarray(y, dtype=np.float64),
        int(code),
        lp,
        np.array(target, dtype=np.float64),
        bool(update),
        loss,
        np.empty(n),
    )
    return loss


def method_mean_loss(f: np.ndarray, y: np.ndarray, y_obs: np.ndarray, cfg, target: np.ndarray, step: int) -> float:
    """The ``method_loss`` column: the mean of :func:`method_sample_losses` for ``cfg``'s method at GD step
    ``step`` (ELR's targets updated first where that step updates them)."""
    update = cfg.loss == "elr" and step % int(cfg.loss_params["period"]) == 0
    return _mean(method_sample_losses(f, y, y_obs, cfg.loss_code, cfg.loss_vector(), target, update))


def sample_losses(margin: np.ndarray) -> np.ndarray:
    """l(margin_i) per sample (SPEC.md section 3), computed by the same kernel as training."""
    margin = np.ascontiguousarray(margin, dtype=np.float64)
    loss = np.empty_like(margin)
    dloss = np.empty_like(margin)
    K.losses(margin, np.ones_like(margin), loss, dloss)
    return loss


def _mean(a: np.ndarray) -> float:
    # np.mean's own arithmetic (the pairwise sum, then one division by the count): the same bits, without its
    # Python-level dispatch (sweeps call this a few times per run)
    return float(a.sum()) / a.size if a.size else math.nan


def step_metrics(
    f: np.ndarray, y: np.ndarray, y_obs: np.ndarray, gamma: np.ndarray, rho: np.ndarray, names=None
) -> dict[str, float]:
    """The history columns except ``step`` and the test columns, at one step.

    Parameters
    ----------
    f : (n,) outputs on the training samples
    y, y_obs : (n,) true and observed labels
    gamma : (2, m); rho : (2, m, n)
    names : collection of str, optional
        Compute only these columns (and ``loss``, always); None computes every one.  The values do not depend
        on which others are computed (accuracies are exact counts over sizes).

    Returns
    -------
    dict column -> float (NaN for a mean or max over an empty subset)
    """
    every = names is None
    n = y.shape[0]
    loss, rho_max = np.empty(n), np.empty(n)
    counts, ext = np.empty(5, dtype=np.int64), np.empty(5)
    KM.step_counts(
        np.ascontiguousarray(f, dtype=np.float64),
        np.ascontiguousarray(y, dtype=np.float64),
        np.ascontiguousarray(y_obs, dtype=np.float64),
        np.ascontiguousarray(gamma, dtype=np.float64).reshape(-1),
        np.ascontiguousarray(rho, dtype=np.float64).reshape(-1, n),
        loss,
        rho_max,
        counts,
        ext,
    )
    n_clean = int(counts[KM.N_CLEAN])
    n_noisy = n - n_clean
    out = {"loss": _mean(loss)}
    want = HISTORY_COLUMNS if every else names
    if "loss_clean" in want or "loss_noisy" in want or "rho_max_mean_clean" in want or "rho_max_mean_noisy" in want:
        clean = y_obs == y  # the means stay NumPy's (pairwise sums) over the subsets
        noisy = ~clean
        if "loss_clean" in want:
            out["loss_clean"] = _mean(loss[clean])
        if "loss_noisy" in want:
            out["loss_noisy"] = _mean(loss[noisy])
    # accuracies: exact counts over sizes (the value np.mean of the boolean array gives)
    if "train_acc" in want:
        out["train_acc"] = int(counts[KM.N_FITTED]) / n if n else math.nan
    if "train_acc_clean" in want:
        out["train_acc_clean"] = int(counts[KM.N_FITTED_CLEAN]) / n_clean if n_clean else math.nan
    if "train_acc_noisy" in want:
        out["train_acc_noisy"] = int(counts[KM.N_FITTED_NOISY]) / n_noisy if n_noisy else math.nan
    if "true_acc_noisy" in want:
        out["true_acc_noisy"] = int(counts[KM.N_TRUE_NOISY]) / n_noisy if n_noisy else math.nan
    if "gamma_max" in want:
        out["gamma_max"] = float(ext[KM.GAMMA_MAX])
    if "gamma_mean" in want:
        out["gamma_mean"] = float(gamma.mean())
    if "gamma_min" in want:
        out["gamma_min"] = float(ext[KM.GAMMA_MIN])
    # rho_max[i] = max_{j,r} rho_{j,r,i}; rho_bar = max(rho, 0)
    if "rho_bar_max_clean" in want:
        out["rho_bar_max_clean"] = float(ext[KM.RHO_BAR_MAX_CLEAN])
    if "rho_bar_max_noisy" in want:
        out["rho_bar_max_noisy"] = float(ext[KM.RHO_BAR_MAX_NOISY])
    if "rho_max_mean_clean" in want:
        out["rho_max_mean_clean"] = _mean(rho_max[clean])
    if "rho_max_mean_noisy" in want:
        out["rho_max_mean_noisy"] = _mean(rho_max[noisy])
    if "rho_under_min" in want:
        out["rho_under_min"] = float(min(float(ext[KM.RHO_MIN]), 0.0))
    if every:
        out["test_acc"] = math.nan
        out = {c: out[c] for c in HISTORY_COLUMNS if c in out}
    return out


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction with labels * outputs > 0 (a zero output counts as an error)."""
    return _mean(labels * outputs > 0)
