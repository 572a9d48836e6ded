"""The papers' figures and the methods' figures (matplotlib is imported only when drawing): Han et al. (2025)
Figure 1 (:func:`han_figure`), small-loss selection (:func:`selection_figure`), Huang et al. (2025) Figure 2
(:func:`huang_figure`), the training methods side by side (:func:`methods_figure`) and per method over tau x SNR
(:func:`methods_phase_figure`).  :mod:`lnref.plotting` documents them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .basic import (
    FONT,
    accuracy_curves,
    cell_edges_scaled,
    coefficient_curves,
    mark_stages,
    plain_ticks,
    positive,
    pyplot,
    shade_stages,
    time_axis,
)

__all__ = ["han_figure", "selection_figure", "huang_figure", "methods_figure", "methods_phase_figure", "METHOD_PANELS"]


def han_figure(panels: Sequence[Mapping[str, Any]]):
    """Han et al. (2025) Figure 1 style: one column per run.

    Parameters
    ----------
    panels : sequence of mappings with ``title`` (str), ``history`` (dict of (L,) arrays), ``stages``
        (Stages, or None for a run without stages, e.g. tau = 0: no shading, no stage lines), and optionally
        ``spread``: the histories of every seed (same logged steps), drawn as min-to-max bands behind the lines.

    Returns
    -------
    matplotlib.figure.Figure
        Top row: signal learning max_{j,r} gamma and noise memorisation (max_{i} max_{j,r} rho_bar and
        mean_i max_{j,r} rho over clean and over mislabelled samples) on a log scale shared by the columns, so
        that Stage I, where all of them are small, is visible.  Bottom row: training accuracy w.r.t. the observed
        labels (overall, clean, mislabelled) and iid test accuracy, same 0-1 scale.  Stage I and Stage II shaded
        and named, their boundaries as vertical lines (legend in the bottom panel).
    """
    plt = pyplot()
    cols = len(panels)
    fig, axes = plt.subplots(2, cols, figsize=(6.6 * cols, 9.6), squeeze=False, sharex="col", sharey="row")
    for c, panel in enumerate(panels):
        h, st = panel["history"], panel.get("stages")
        spread = panel.get("spread")
        t_end = float(h["step"][-1])
        ax = axes[0, c]
        coefficient_curves(ax, h, spread=spread)
        shade_stages(ax, st, t_end)
        mark_stages(ax, st, label=False)
        title = panel["title"]
        if spread and len(spread) > 1:
            title += f"\nlines: seed 0; bands: min to max over {len(spread)} seeds"
        ax.set_title(title, fontsize=FONT + 2, pad=16)
        time_axis(ax, t_end)
        ax.set_xlabel("")
        ax.legend(fontsize=FONT, loc="lower right", framealpha=0.9)
        ax.tick_params(labelleft=True)
        ax = axes[1, c]
        accuracy_curves(ax, h, spread=spread)
        shade_stages(ax, st, t_end)
        mark_stages(ax, st, label=True)
        time_axis(ax, t_end)
        ax.legend(fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
        ax.tick_params(labelleft=True)
    fig.tight_layout()
    return fig


def selection_figure(
    history: Mapping[str, np.ndarray], selection: Any, stages: Any, test_columns: Mapping[str, str], title: str = ""
):
    """Small-loss selection and early stopping over training.

    Parameters
    ----------
    history : dict of (L,) arrays
    selection : :class:`lnref.training.stages.Selection`
    stages : :class:`lnref.training.stages.Stages`
    test_columns : mapping label -> history column (e.g. {"iid": "test_acc", "spurious": "test_acc_spurious"})

    Returns
    -------
    matplotlib.figure.Figure
        Left: precision and recall of "loss < threshold" as a detector of clean samples, and the fraction of
        mislabelled samples rejected; right: test accuracies.  Both on the same 0-1 scale, stages shaded.
    """
    plt = pyplot()
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    t = selection.steps
    t_end = float(t[-1])
    a0.plot(t, selection.precision, color="tab:blue", label="precision (clean among selected)")
    a0.plot(t, selection.recall, color="tab:green", label="recall (selected among clean)")
    a0.plot(t, selection.noisy_rejected, color="tab:red", ls=":", label="mislabelled rejected")
    a0.set_title(rf"small-loss selection, $\ell < {selection.threshold:.4g}$ ($\log 2$)", fontsize=FONT + 2, pad=16)
    shade_stages(a0, stages, t_end)
    mark_stages(a0, stages, label=True)
    a0.set_ylim(-0.03, 1.03)
    a0.set_ylabel("fraction")
    time_axis(a0, t_end)
    a0.legend(fontsize=FONT, loc="lower left", framealpha=0.9)
    for (label, col), color in zip(test_columns.items(), ("tab:gray", "tab:purple", "tab:brown", "tab:olive")):
        a1.plot(history["step"], history[col], color=color, label=f"test accuracy ({label})")
    shade_stages(a1, stages, t_end)
    mark_stages(a1, stages, label=False)
    a1.set_title(title or "test accuracy", fontsize=FONT + 2, pad=16)
    a1.set_ylabel("test accuracy")
    a1.tick_params(labelleft=True)
    time_axis(a1, t_end)
    a1.legend(fontsize=FONT, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    return fig


def huang_figure(
    histories: Mapping[str, Mapping[str, np.ndarray]],
    ratio_key: str = "memorisation_ratio",
    loss_levels: Mapping[str, float] | None = None,
):
    """Plain GD against label-noise GD (Huang et al. 2025, Figure 2 style).

    Parameters
    ----------
    histories : mapping label -> history; each history also holds ``ratio_key`` (L,) and, for label-noise GD,
        ``label_noise_loss`` (L,), the flipped-label loss averaged over the flips (drawn dashed)
    loss_levels : mapping label -> value, horizontal reference lines in the loss panel

    Returns
    -------
    matplotlib.figure.Figure
        Left: max_{i,j,r} rho_bar / max_{j,r} gamma (log scale); middle: training loss on the observed labels
        (solid) and on the flipped labels (dashed; log scale); right: iid test accuracy.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    colors = ("tab:blue", "tab:red", "tab:green", "tab:purple")
    for (label, h), color in zip(histories.items(), colors):
        t = h["step"]
        axes[0].plot(t, h[ratio_key], color=color, label=label)
        axes[1].plot(t, positive(h["loss"]), color=color, label=f"{label}: observed labels")
        if "label_noise_loss" in h and "label-noise" in label:
            axes[1].plot(t, h["label_noise_loss"], color=color, ls="--", label=f"{label}: flipped labels (mean)")
        axes[2].plot(t, h["test_acc"], color=color, label=label)
    for (label, v), (ls, col) in zip(
        (loss_levels or {}).items(), ((":", "tab:purple"), (":", "0.3"), ("-.", "0.3"), ("--", "0.5"))
    ):
        axes[1].axhline(v, color=col, ls=ls, lw=1.2, label=f"{label} = {v:.3g}")
    axes[0].set_title("noise memorisation / signal learning", fontsize=FONT + 2)
    axes[0].set_ylabel(r"$\mathrm{max}_{i,j,r}\,\bar\rho_{j,r,i}\;/\;\mathrm{max}_{j,r}\,\gamma_{j,r}$")
    axes[0].set_yscale("log")
    axes[1].set_title("training loss", fontsize=FONT + 2)
    axes[1].set_ylabel("mean logistic loss over the n samples (log scale)")
    axes[1].set_yscale("log")
    axes[2].set_title("test accuracy (iid)", fontsize=FONT + 2)
    axes[2].set_ylabel("test accuracy")
    axes[2].set_ylim(0.4, 1.02)
    for ax in axes:
        ax.set_xlabel(r"GD step $t$")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=FONT - 1 if ax is axes[1] else FONT, framealpha=0.9)
    fig.tight_layout()
    return fig


#: the panels of :func:`methods_figure`: (history column, y label, log scale, plotted as error = 1 - column)
METHOD_PANELS = (
    ("train_acc_clean", "training accuracy, clean samples", False, False),
    ("train_acc_noisy", "mislabelled samples fitted\n(accuracy w.r.t. observed labels)", False, False),
    ("true_acc_noisy", "mislabelled samples predicted\nas their TRUE label", False, False),
    ("rho_bar_max_noisy", r"$\mathrm{max}_{i\in S_f,\,j,r}\,\bar\rho_{j,r,i}$ (memorised noise)", True, False),
    ("test_acc_spurious", "test error, spurious test distribution", False, True),
    ("test_acc", "test error, iid test distribution", False, True),
)


def methods_figure(steps: Any, series: Sequence[Mapping[str, Any]], title: str = ""):
    """Training methods side by side: six panels over the GD step (symlog), one line per method.

    Parameters
    ----------
    steps : (L,) the logged steps (the same for every run)
    series : one dict per method: ``label``; ``values``: history column -> (K, L) array over K seeds (the columns
        of :data:`METHOD_PANELS`); ``t1`` (a step or None) marked by a dot on each of the method's curves
    title : str

    Returns
    -------
    Figure; lines are the mean over the seeds, bands +- one standard error.
    """
    plt = pyplot()
    t = np.asarray(steps, dtype=np.float64)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.2), layout="constrained")
    cmap = plt.get_cmap("tab10")
    styles = ("-", "--", "-.", ":")
    for ax, (col, ylabel, log, error) in zip(axes.flat, METHOD_PANELS):
        for i, s in enumerate(series):
            v = np.asarray(s["values"][col], dtype=np.float64)
            if error:
                v = 1.0 - v
            mean = v.mean(axis=0)
            se = v.std(axis=0, ddof=1) / np.sqrt(v.shape[0]) if v.shape[0] > 1 else np.zeros_like(mean)
            color, ls = cmap(i % 10), styles[(i // 10) % len(styles)] if i < 10 else ":"
            lw = 2.2 if i == 0 else 1.4
            y = positive(mean) if log else mean
            ax.plot(t, y, color=color, ls=ls, lw=lw, label=s["label"], zorder=3 if i == 0 else 2)
            lo, hi = mean - se, mean + se
            ax.fill_between(t, positive(lo) if log else lo, positive(hi) if log else hi, color=color, alpha=0.12, lw=0)
            t1 = s.get("t1")
            if t1 is not None:
                j = int(np.argmin(np.abs(t - t1)))
                ax.plot([t[j]], [y[j]], "o", color=color, ms=5, mec="k", mew=0.6)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.03, 1.03)
        time_axis(ax, float(t[-1]))
        ax.set_ylabel(ylabel, fontsize=FONT + 1)
        plain_ticks(ax)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    import matplotlib.lines as mlines

    handles.append(mlines.Line2D([], [], color="0.5", marker="o", ls="", mec="k", mew=0.6))
    labels.append("T1 of the method (median over seeds)")
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=FONT + 1, frameon=False)
    if title:
        fig.suptitle(title, fontsize=FONT + 3)
    return fig


def methods_phase_figure(
    labels: Sequence[str],
    taus: Any,
    snrs: Any,
    values: Any,
    *,
    cbar_label: str,
    vmax: float = 1.0,
    cmap: str = "viridis",
    title: str = "",
    hlines=(),
    ncols: int = 5,
):
    """One panel per method (``labels``; ``ncols`` per row) over tau (x) and SNR (y, log scale) of one quantity
    ``values[k]`` (len(taus), len(snrs)), on one colour scale [0, vmax] with the label ``cbar_label``.
    ``hlines``: [(snr, label)] drawn as dashed white lines (e.g. n SNR^2 = 1)."""
    plt = pyplot()
    k = len(labels)
    ncols = min(ncols, k)
    nrows = -(-k // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(3.0 * ncols + 1.2, 2.9 * nrows + 0.6),
        layout="constrained",
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    taus, snrs = np.asarray(taus, dtype=np.float64), np.asarray(snrs, dtype=np.float64)
    xe, ye = cell_edges_scaled(taus, "linear"), cell_edges_scaled(snrs, "log")
    vals = np.asarray(values, dtype=np.float64)
    mesh = None
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.set_visible(False)
            continue
        mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(vals[i].T), cmap=cmap, vmin=0.0, vmax=vmax, shading="flat")
        for y, text in hlines:
            ax.axhline(y, color="w", ls="--", lw=1.0)
            if i == 0:
                ax.text(xe[0] + 0.01, y * 1.05, text, color="w", fontsize=FONT, va="bottom")
        ax.set_yscale("log")
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        plain_ticks(ax)
        ax.set_title(labels[i], fontsize=FONT + 1)
        if i // ncols == nrows - 1 or i + ncols >= k:
            ax.set_xlabel(r"label-flip rate $\tau$", fontsize=FONT + 1)
            ax.xaxis.set_tick_params(labelbottom=True)
        if i % ncols == 0:
            ax.set_ylabel("SNR", fontsize=FONT + 1)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), label=cbar_label, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=FONT + 3)
    return fig
