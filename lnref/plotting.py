"""Figures of the reproductions (matplotlib, optional: ``pip install 'lnref[plot]'``).

Every function takes logged histories (``Result.history``, columns in :data:`lnref.metrics.HISTORY_COLUMNS`) and
returns a matplotlib Figure; saving is the caller's job (:func:`lnref.reproduce.common.save_figure`).  The time
axis is symlog (linear below step 1), so step 0 and the log-spaced steps both show.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["han_figure", "selection_figure", "huang_figure", "mark_stages"]

_STAGE_STYLE = {"t1": ("T1 (end of Stage I)", "tab:green", "--"),
                "stage2_start": ("first mislabelled fit", "tab:orange", ":"),
                "t2": ("T2 (all mislabelled fitted)", "tab:red", "--")}


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _time_axis(ax) -> None:
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("GD step t")
    ax.grid(True, alpha=0.3)


def mark_stages(ax, stages: Any, label: bool = True) -> None:
    """Vertical lines at the detected t1, stage2_start and t2 of a :class:`lnref.stages.Stages` (None: skipped)."""
    if stages is None:
        return
    for key, (text, color, style) in _STAGE_STYLE.items():
        v = getattr(stages, key)
        if v is not None:
            ax.axvline(v, color=color, ls=style, lw=1.2, label=f"{text} = {v}" if label else None)


def han_figure(panels: Sequence[Mapping[str, Any]]):
    """Han et al. (2025) Figure 1 style: one column per run.

    Parameters
    ----------
    panels : sequence of mappings with ``title`` (str), ``history`` (dict of (L,) arrays), ``stages``
        (Stages or None).

    Returns
    -------
    matplotlib.figure.Figure
        Top row: signal learning max_{j,r} gamma and noise memorisation max_{j,r} rho_{j,r,i} (mean and max over
        clean and over mislabelled samples).  Bottom row: training accuracy w.r.t. the observed labels, overall,
        clean and mislabelled.  Stage boundaries as vertical lines.
    """
    plt = _plt()
    cols = len(panels)
    fig, axes = plt.subplots(2, cols, figsize=(5.5 * cols, 7.5), squeeze=False, sharex="col")
    for c, panel in enumerate(panels):
        h, st = panel["history"], panel.get("stages")
        t = h["step"]
        ax = axes[0, c]
        ax.plot(t, h["gamma_max"], color="k", lw=2, label=r"signal $\max_{j,r}\gamma_{j,r}$")
        ax.plot(t, h["rho_max_mean_clean"], color="tab:blue", label=r"clean: mean$_i\max_{j,r}\rho_{j,r,i}$")
        ax.plot(t, h["rho_bar_max_clean"], color="tab:blue", ls="--", label=r"clean: max$_i\max_{j,r}\rho_{j,r,i}$")
        if np.any(np.isfinite(h["rho_max_mean_noisy"])):
            ax.plot(t, h["rho_max_mean_noisy"], color="tab:red", label=r"mislabelled: mean$_i\max_{j,r}\rho$")
            ax.plot(t, h["rho_bar_max_noisy"], color="tab:red", ls="--", label=r"mislabelled: max$_i\max_{j,r}\rho$")
        mark_stages(ax, st, label=False)
        ax.set_title(panel["title"])
        ax.set_ylabel("coefficient")
        _time_axis(ax)
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[1, c]
        ax.plot(t, h["train_acc"], color="k", lw=2, label="all samples")
        ax.plot(t, h["train_acc_clean"], color="tab:blue", label="clean")
        if np.any(np.isfinite(h["train_acc_noisy"])):
            ax.plot(t, h["train_acc_noisy"], color="tab:red", label="mislabelled (fitted to the wrong label)")
        if "test_acc" in h and np.any(np.isfinite(h["test_acc"])):
            ax.plot(t, h["test_acc"], color="tab:gray", ls="-.", label="test (iid)")
        mark_stages(ax, st, label=True)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("accuracy w.r.t. observed labels")
        _time_axis(ax)
        ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def selection_figure(history: Mapping[str, np.ndarray], selection: Any, stages: Any,
                     test_columns: Mapping[str, str], title: str = ""):
    """Small-loss selection and early stopping over training.

    Parameters
    ----------
    history : dict of (L,) arrays
    selection : :class:`lnref.stages.Selection`
    stages : :class:`lnref.stages.Stages`
    test_columns : mapping label -> history column (e.g. {"iid": "test_acc", "spurious": "test_acc_spurious"})

    Returns
    -------
    matplotlib.figure.Figure
        Left: precision and recall of "loss < threshold" as a detector of clean samples; right: test accuracies.
    """
    plt = _plt()
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.2))
    t = selection.steps
    a0.plot(t, selection.precision, color="tab:blue", label="precision (clean among selected)")
    a0.plot(t, selection.recall, color="tab:green", label="recall (selected among clean)")
    a0.plot(t, selection.noisy_rejected, color="tab:red", ls=":", label="mislabelled rejected")
    a0.set_title(f"small-loss selection, loss < {selection.threshold:.4g}")
    mark_stages(a0, stages, label=True)
    a0.set_ylim(-0.03, 1.03)
    _time_axis(a0)
    a0.legend(fontsize=7, loc="lower left")
    for (label, col), color in zip(test_columns.items(), ("tab:gray", "tab:purple", "tab:brown", "tab:olive")):
        a1.plot(history["step"], history[col], color=color, label=f"test accuracy ({label})")
    mark_stages(a1, stages, label=False)
    a1.set_title(title or "test accuracy")
    a1.set_ylim(-0.03, 1.03)
    _time_axis(a1)
    a1.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def huang_figure(histories: Mapping[str, Mapping[str, np.ndarray]], ratio_key: str = "memorisation_ratio"):
    """Plain GD against label-noise GD (Huang et al. 2025): memorisation/signal ratio, training loss, test accuracy.

    Parameters
    ----------
    histories : mapping label -> history; each history also holds ``ratio_key`` (L,)

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (label, h), color in zip(histories.items(), ("tab:blue", "tab:red", "tab:green", "tab:purple")):
        t = h["step"]
        axes[0].plot(t, h[ratio_key], color=color, label=label)
        axes[1].plot(t, h["loss"], color=color, label=label)
        axes[2].plot(t, h["test_acc"], color=color, label=label)
    axes[0].set_title(r"noise memorisation / signal: $\max_{i,j,r}\bar\rho_{j,r,i} / \max_{j,r}\gamma_{j,r}$")
    axes[0].set_yscale("log")
    axes[1].set_title("training loss (observed labels)")
    axes[2].set_title("test accuracy (iid)")
    axes[2].set_ylim(0.4, 1.02)
    for ax in axes:
        ax.set_xlabel("GD step t")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
