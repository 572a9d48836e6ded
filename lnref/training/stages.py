"""The two stages of GD under label noise, early stopping and small-loss selection (SPEC.md sections 5-6).

Everything here reads what :func:`lnref.train` logged: ``Result.trace["margin"]`` (L, n), the margins
``y_obs_i f(W(t), x_i)`` at each logged step, ``Result.history["step"]`` (L,) and the clean mask
``Result.data.clean`` (n,).  A sample is *fitted* at a step when its margin is > 0, i.e. the network predicts
its observed label; a mislabelled sample that is not fitted is predicted as its TRUE label.

Definitions (Han et al. 2025, SPEC.md section 6), with a ``fraction`` for the robust variants (1.0 = exact):

- ``t1`` (T1, the end of Stage I and the start of Stage II): the first logged step at which at least ``fraction``
  of the clean samples are fitted while at most ``1 - fraction`` of the mislabelled samples are fitted (with
  ``fraction = 1``: every clean sample fitted and no mislabelled sample fitted).
- ``first_noisy_fit`` (a step inside Stage II, not its start): the first logged step after ``t1`` at which more
  than ``1 - fraction`` of the mislabelled samples are fitted (``fraction = 1``: the first fit of a mislabelled
  sample).  None when there is no ``t1``, no mislabelled sample, or no such step.  Between T1 and this step the
  mislabelled samples' noise is memorised without any of them being fitted yet.
- ``t2`` (T2, the end of Stage II): the first logged step at or after ``first_noisy_fit`` at which at least
  ``fraction`` of the mislabelled samples are fitted (``fraction = 1``: all of them), or None.

So Stage I is [0, T1] and Stage II is [T1, T2], in the figures, ``stages.json`` and the reports alike.  Earlier
versions called ``first_noisy_fit`` ``stage2_start``; :attr:`Stages.stage2_start` still reads it, with a
DeprecationWarning.

Thresholds are applied to counts: "at least fraction of k" means ``count >= ceil(fraction * k)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ConfigError
from ..model.metrics import sample_losses

__all__ = [
    "Stages",
    "EarlyStopping",
    "Selection",
    "fitted",
    "detect_stages",
    "stages_of",
    "early_stopping",
    "small_loss_selection",
    "first_fit_steps",
    "LOG2",
]

LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------------------------- validation
def _margin_clean_steps(margin: Any, clean: Any, steps: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        margin = np.ascontiguousarray(margin, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"margin must be a real (L, n) array: {exc}") from None
    if margin.ndim != 2:
        raise ConfigError(f"margin must be a 2-D array (logged steps L, samples n), got shape {margin.shape}")
    L, n = margin.shape
    if np.isnan(margin).any():
        raise ConfigError("margin contains NaN; every logged margin must be a number")
    clean = np.asarray(clean)
    if clean.dtype != bool or clean.shape != (n,):
        raise ConfigError(
            f"clean must be a boolean mask of shape ({n},) (one entry per sample), "
            f"got dtype {clean.dtype} and shape {clean.shape}"
        )
    if steps is None:
        steps = np.arange(L, dtype=np.int64)
    steps = np.asarray(steps)
    if steps.shape != (L,) or not np.issubdtype(steps.dtype, np.number):
        raise ConfigError(
            f"steps must be a numeric array of shape ({L},) matching margin's rows, got shape {steps.shape}"
        )
    if L > 1 and not np.all(np.diff(steps) > 0):
        raise ConfigError("steps must be strictly increasing (one row of margin per logged step)")
    return margin, clean, steps.astype(np.int64)


def _check_fraction(fraction: float) -> float:
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float, np.integer, np.floating))
        or not (0.5 < float(fraction) <= 1.0)
    ):
        raise ConfigError(
            f"fraction={fraction!r} is not allowed: fraction must be a number in (0.5, 1] (1 = exact stage boundaries)"
        )
    return float(fraction)


def _at_least(fraction: float, k: int) -> int:
    """ceil(fraction * k), robust to the rounding of fraction * k (e.g. 0.99 * 100)."""
    return math.ceil(fraction * k - 1e-9)


def _source(source: Any, clean: Any, steps: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(margin, clean, steps) from a Result or from explicit arrays."""
    if hasattr(source, "trace") and hasattr(source, "history"):
        if clean is not None or steps is not None:
            raise ConfigError("pass either a Result or (margin, clean, steps), not both")
        return _margin_clean_steps(source.trace["margin"], source.data.clean, source.history["step"])
    if clean is None:
        raise ConfigError("clean (boolean mask of the clean samples, shape (n,)) is required with a margin array")
    return _margin_clean_steps(source, clean, steps)


# ----------------------------------------------------------------------------------------------- stages
def fitted(margin: np.ndarray) -> np.ndarray:
    """Boolean array: the sample is fitted (predicted as its observed label), margin > 0.

    Parameters
    ----------
    margin : ndarray (..., n)   y_obs_i f(W, x_i)

    Notes
    -----
    SPEC.md section 5, identity 7: margin > 0 exactly when l(margin) < log 2.
    """
    return np.asarray(margin) > 0.0


@dataclass(frozen=True)
class Stages:
    """Stage boundaries detected from a margin trace (see the module docstring for the definitions).

    Attributes
    ----------
    t1 : int or None            T1: end of Stage I = start of Stage II (clean fitted, mislabelled predicted as
                                their true label)
    first_noisy_fit : int or None  first step after t1 at which mislabelled samples get fitted (inside Stage II)
    t2 : int or None            T2: end of Stage II, first step at which (a ``fraction`` of) the mislabelled
                                samples are fitted
    fraction : float            1.0 for the exact definitions
    n_clean, n_noisy : int
    clean_fitted, noisy_fitted : ndarray (L,) int   fitted counts per logged step
    steps : ndarray (L,) int
    """

    t1: int | None
    first_noisy_fit: int | None
    t2: int | None
    fraction: float
    n_clean: int
    n_noisy: int
    clean_fitted: np.ndarray
    noisy_fitted: np.ndarray
    steps: np.ndarray

    @property
    def stage2_start(self) -> int | None:
        """Deprecated name of :attr:`first_noisy_fit` (the first fit of a mislabelled sample, INSIDE Stage II;
        Stage II starts at :attr:`t1`)."""
        warnings.warn(
            "Stages.stage2_start is deprecated: it is the first fit of a mislabelled sample, now "
            "Stages.first_noisy_fit; Stage II starts at Stages.t1",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.first_noisy_fit

    @property
    def two_stages(self) -> bool:
        """Stage I ended (t1) strictly before the first fit of a mislabelled sample (first_noisy_fit)."""
        return self.t1 is not None and self.first_noisy_fit is not None and self.t1 < self.first_noisy_fit

    def summary(self) -> dict[str, Any]:
        """The scalar fields, JSON-ready: ``t1`` (end of Stage I = start of Stage II), ``first_noisy_fit`` (inside
        Stage II), ``t2`` (end of Stage II), ..."""
        return {
            "t1": self.t1,
            "first_noisy_fit": self.first_noisy_fit,
            "t2": self.t2,
            "fraction": self.fraction,
            "n_clean": self.n_clean,
            "n_noisy": self.n_noisy,
            "two_stages": self.two_stages,
        }


def detect_stages(source: Any, clean: Any = None, steps: Any = None, *, fraction: float = 1.0) -> Stages:
    """Detect T1 (end of Stage I = start of Stage II), the first fit of a mislabelled sample and T2 (end of
    Stage II).

    Parameters
    ----------
    source : Result or ndarray (L, n)
        A :class:`lnref.Result` (its ``trace["margin"]``, ``history["step"]`` and ``data.clean`` are used), or
        the margins y_obs_i f(W(t), x_i) at L logged steps.
    clean : ndarray (n,) bool, optional
        Clean mask S_c (required with a margin array).
    steps : ndarray (L,) int, optional
        The logged steps (default 0..L-1).
    fraction : float in (0.5, 1]
        1.0 for the exact boundaries; e.g. 0.99 tolerates 1% of stragglers in noisy runs.

    Returns
    -------
    Stages

    Notes
    -----
    SPEC.md section 6 (Han): Stage I ends when every clean sample is fitted while every mislabelled sample is
    predicted as its true label; in Stage II the mislabelled samples are memorised until they are fitted too.
    """
    fraction = _check_fraction(fraction)
    margin, clean, steps = _source(source, clean, steps)
    fit = fitted(margin)
    noisy = ~clean
    n_clean, n_noisy = int(clean.sum()), int(noisy.sum())
    clean_fitted = fit[:, clean].sum(axis=1).astype(np.int64)
    noisy_fitted = fit[:, noisy].sum(axis=1).astype(np.int64)
    need_clean = _at_least(fraction, n_clean)
    max_noisy_at_t1 = n_noisy - _at_least(fraction, n_noisy)
    stage1_done = (clean_fitted >= need_clean) & (noisy_fitted <= max_noisy_at_t1)
    t1_idx = _first(stage1_done)
    t1 = None if t1_idx is None else int(steps[t1_idx])
    start = t2 = None
    if t1_idx is not None and n_noisy > 0:
        after = np.zeros(steps.size, dtype=bool)
        after[t1_idx + 1 :] = True
        s_idx = _first(after & (noisy_fitted > max_noisy_at_t1))
        if s_idx is not None:
            start = int(steps[s_idx])
            done = np.zeros(steps.size, dtype=bool)
            done[s_idx:] = noisy_fitted[s_idx:] >= _at_least(fraction, n_noisy)
            e_idx = _first(done)
            t2 = None if e_idx is None else int(steps[e_idx])
    return Stages(
        t1=t1,
        first_noisy_fit=start,
        t2=t2,
        fraction=fraction,
        n_clean=n_clean,
        n_noisy=n_noisy,
        clean_fitted=clean_fitted,
        noisy_fitted=noisy_fitted,
        steps=steps,
    )


def stages_of(result: Any, fraction: float = 1.0) -> Stages:
    """:func:`detect_stages` of a :class:`lnref.Result`."""
    return detect_stages(result, fraction=fraction)


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def first_fit_steps(source: Any, clean: Any = None, steps: Any = None) -> np.ndarray:
    """Per sample, the first logged step from which it stays fitted until the last logged step (-1: never).

    Parameters
    ----------
    source, clean, steps : as in :func:`detect_stages` (``clean`` may be all True when unknown)

    Returns
    -------
    ndarray (n,) int64
    """
    margin, _, steps = _source(source, clean, steps)
    fit = fitted(margin)
    # stays fitted from row l to the end: reverse cumulative AND
    stays = np.logical_and.accumulate(fit[::-1], axis=0)[::-1]
    out = np.full(margin.shape[1], -1, dtype=np.int64)
    any_row = stays.any(axis=0)
    out[any_row] = steps[np.argmax(stays[:, any_row], axis=0)]
    return out


# ----------------------------------------------------------------------------------------------- early stopping
@dataclass(frozen=True)
class EarlyStopping:
    """Early stopping by an accuracy history (validation or test).

    Attributes
    ----------
    best_step : int           earliest logged step with the highest accuracy
    best_accuracy : float
    final_step : int
    final_accuracy : float
    stop_step : int or None   the step at which to stop given t1: the first logged step >= t1 (None without t1)
    stop_accuracy : float     accuracy at stop_step (NaN without t1)
    """

    best_step: int
    best_accuracy: float
    final_step: int
    final_accuracy: float
    stop_step: int | None
    stop_accuracy: float

    @property
    def gain(self) -> float:
        """best_accuracy - final_accuracy: what stopping at the best step gains over training to the end."""
        return self.best_accuracy - self.final_accuracy

    def summary(self) -> dict[str, Any]:
        return {
            "best_step": self.best_step,
            "best_accuracy": self.best_accuracy,
            "final_step": self.final_step,
            "final_accuracy": self.final_accuracy,
            "stop_step": self.stop_step,
            "stop_accuracy": self.stop_accuracy,
            "gain": self.gain,
        }


def early_stopping(steps: Any, accuracy: Any, t1: int | None = None) -> EarlyStopping:
    """Best step by accuracy, the final step, and the stopping step given the end of Stage I.

    Parameters
    ----------
    steps : ndarray (L,) int     logged steps, strictly increasing
    accuracy : ndarray (L,)      accuracy at each logged step (NaN entries are ignored)
    t1 : int, optional           end of Stage I (:attr:`Stages.t1`)

    Returns
    -------
    EarlyStopping

    Notes
    -----
    SPEC.md section 6 (Han): early stopping near T1 is best.
    """
    steps = np.asarray(steps)
    acc = np.asarray(accuracy, dtype=np.float64)
    if steps.ndim != 1 or acc.shape != steps.shape or steps.size == 0:
        raise ConfigError(
            f"steps and accuracy must be 1-D arrays of the same non-zero length, got shapes "
            f"{steps.shape} and {acc.shape}"
        )
    if steps.size > 1 and not np.all(np.diff(steps) > 0):
        raise ConfigError("steps must be strictly increasing")
    finite = ~np.isnan(acc)
    if not finite.any():
        raise ConfigError("accuracy is NaN at every logged step (was a test set configured, n_test > 0?)")
    best = int(np.flatnonzero(finite & (acc == np.nanmax(acc)))[0])
    last = int(np.flatnonzero(finite)[-1])
    stop_step, stop_acc = None, math.nan
    if t1 is not None:
        idx = np.flatnonzero(steps >= t1)
        if idx.size:
            stop_step, stop_acc = int(steps[idx[0]]), float(acc[idx[0]])
    return EarlyStopping(
        best_step=int(steps[best]),
        best_accuracy=float(acc[best]),
        final_step=int(steps[last]),
        final_accuracy=float(acc[last]),
        stop_step=stop_step,
        stop_accuracy=stop_acc,
    )


# ----------------------------------------------------------------------------------------------- selection
@dataclass(frozen=True)
class Selection:
    """Small-loss selection "l(y_obs_i f_i) < threshold" as a detector of the clean samples, per logged step.

    Attributes
    ----------
    steps : ndarray (L,) int
    threshold : float
    selected : ndarray (L,) int     number of samples selected
    true_positives : ndarray (L,) int   clean samples selected
    precision : ndarray (L,)        clean selected / selected (NaN when nothing is selected)
    recall : ndarray (L,)           clean selected / clean (NaN when there is no clean sample)
    noisy_rejected : ndarray (L,)   mislabelled not selected / mislabelled (NaN when there is none)
    """

    steps: np.ndarray
    threshold: float
    selected: np.ndarray
    true_positives: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    noisy_rejected: np.ndarray

    def at(self, step: int) -> dict[str, float]:
        """Precision, recall and noisy_rejected at a logged step."""
        idx = np.flatnonzero(self.steps == step)
        if idx.size == 0:
            raise ConfigError(
                f"step={step} is not a logged step; logged steps run from {int(self.steps[0])} to {int(self.steps[-1])}"
            )
        i = int(idx[0])
        return {
            "step": int(step),
            "selected": int(self.selected[i]),
            "precision": float(self.precision[i]),
            "recall": float(self.recall[i]),
            "noisy_rejected": float(self.noisy_rejected[i]),
        }


def small_loss_selection(source: Any, clean: Any = None, steps: Any = None, *, threshold: float = LOG2) -> Selection:
    """Select the samples whose training loss is below ``threshold`` and score the selection against S_c.

    Parameters
    ----------
    source, clean, steps : as in :func:`detect_stages`
    threshold : float > 0
        Loss threshold; the default log 2 selects exactly the fitted samples (margin > 0).

    Returns
    -------
    Selection

    Notes
    -----
    SPEC.md section 5, identity 7 (l < log 2 iff margin > 0) and section 6 (Han: at T1 small-loss selection
    separates clean from noisy exactly).  Losses are computed by the training kernel (l of section 3).
    """
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, np.integer, np.floating))
        or not (math.isfinite(threshold) and threshold > 0)
    ):
        raise ConfigError(f"threshold={threshold!r} is not allowed: the loss threshold must be a finite number > 0")
    margin, clean, steps = _source(source, clean, steps)
    # at log 2: identity 7, without the rounding of l near margin = 0
    sel = fitted(margin) if threshold == LOG2 else sample_losses(margin.ravel()).reshape(margin.shape) < threshold
    noisy = ~clean
    selected = sel.sum(axis=1).astype(np.int64)
    tp = sel[:, clean].sum(axis=1).astype(np.int64)
    n_clean, n_noisy = int(clean.sum()), int(noisy.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(selected > 0, tp / np.maximum(selected, 1), math.nan)
        recall = np.full(steps.size, math.nan) if n_clean == 0 else tp / n_clean
        noisy_rej = np.full(steps.size, math.nan) if n_noisy == 0 else (n_noisy - sel[:, noisy].sum(axis=1)) / n_noisy
    return Selection(
        steps=steps,
        threshold=float(threshold),
        selected=selected,
        true_positives=tp,
        precision=np.asarray(precision, dtype=np.float64),
        recall=np.asarray(recall, np.float64),
        noisy_rejected=np.asarray(noisy_rej, dtype=np.float64),
    )
