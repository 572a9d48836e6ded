"""Figures (matplotlib, optional: ``pip install 'lnref[plot]'``).

Every function takes logged histories (``Result.history``; column meanings in
:data:`lnref.model.metrics.HISTORY_COLUMNS`) or arrays and returns a matplotlib Figure; :func:`plot_history` also saves
when given a path, the others leave saving to the caller (:func:`lnref.reproduce.common.save_figure`).  Time axes
are symlog (linear below step 1, logarithmic above) starting at step 0, so step 0 and log-spaced steps both show.

Functions
---------
plot_history(result, path=None)
    One run at a glance (``lnref run`` draws it): training loss overall / clean / mislabelled, accuracies (training
    w.r.t. the observed labels, test), signal max gamma against the memorised noise max rho_bar on clean and on
    mislabelled samples (log scale); the two stages shaded and named when the run has mislabelled samples.
han_figure(panels)
    Han et al. (2025) Figure 1: one column per run; coefficients on a log scale (so Stage I, where they are small,
    is visible), accuracies below; stages shaded and named, boundaries as vertical lines; shared y scales.
selection_figure(history, selection, stages, test_columns, title="")
    Small-loss selection (precision, recall, mislabelled rejected) and test accuracies over training.
huang_figure(histories, ratio_key="memorisation_ratio", loss_levels=None)
    Plain GD against label-noise GD (Huang et al. 2025 Figure 2): memorisation/signal ratio, training losses
    (observed labels; flipped labels for label-noise GD) with reference levels, test accuracy.
methods_figure(steps, series, title="")
    Training methods side by side (``lnref reproduce methods``): per method the mean over seeds (+- SE band) of
    clean / mislabelled training accuracy, mislabelled predicted as their true label, max rho_bar over mislabelled
    samples (log scale), spurious and iid test error; each method's T1 marked.
methods_phase_figure(labels, taus, snrs, values, cbar_label=..., vmax=1, title="", hlines=())
    One panel per method over tau x SNR of one quantity (final fraction of mislabelled samples fitted, test error).
heatmap(values, x, y, xlabel=..., ylabel=..., title=..., cbar_label=..., nan_label=...)
    A grid of one metric with mathematical axis labels (:func:`math_label`), a colour bar label, and NaN cells
    hatched grey with a legend entry explaining them (e.g. "no mislabelled sample (tau = 0)").  For the
    reproductions' and sweeps' heatmaps.
math_label(name)
    Mathtext label of a Config field or metric name ("mu_norm" -> r"$\\|\\mu\\|$", "label_noise_gd" ->
    "label-noise GD", ...); unknown names are returned unchanged.
shade_stages(ax, stages, t_end), mark_stages(ax, stages)
    Stage I ([0, T1]) / Stage II ([T1, T2]) shading with their names, and the lines T1 (end of Stage I = start
    of Stage II), first mislabelled sample fitted (inside Stage II), T2 (end of Stage II).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_history",
    "han_figure",
    "selection_figure",
    "huang_figure",
    "heatmap",
    "math_label",
    "methods_figure",
    "methods_phase_figure",
    "mark_stages",
    "shade_stages",
    "MATH_LABELS",
]

#: mathtext labels of Config fields, metrics and algorithm names (the words match Config's field names: ``p`` is
#: label-noise GD's flip probability, ``tau`` the training-label flip rate)
MATH_LABELS: dict[str, str] = {
    "mu_norm": r"$\|\mu\|$",
    "d": r"$d$",
    "n": r"$n$",
    "m": r"$m$",
    "q": r"$q$",
    "eta": r"$\eta$",
    "sigma0": r"$\sigma_0$",
    "sigma_p": r"$\sigma_p$",
    "tau": r"label-flip rate $\tau$",
    "tau_plus": r"$\tau_+$",
    "tau_minus": r"$\tau_-$",
    "p": r"label-noise GD flip rate $p$",
    "snr": "SNR",
    "SNR": "SNR",
    "n_snr2": r"$n\,\mathrm{SNR}^2$",
    "n_snr3": r"$n\,\mathrm{SNR}^3$",
    "steps": "GD steps",
    "test_error": "test error",
    "test_acc": "test accuracy",
    "train_acc": "training accuracy",
    "train_acc_noisy": "fraction of mislabelled samples fitted",
    "train_acc_clean": "fraction of clean samples fitted",
    "loss": "training loss",
    "gd": "plain GD",
    "label_noise_gd": "label-noise GD",
    "gamma_max": r"$\mathrm{max}_{j,r}\,\gamma_{j,r}$",
    "rho_bar_max_clean": r"$\mathrm{max}_{i\in S_c,\,j,r}\,\bar\rho_{j,r,i}$",
    "rho_bar_max_noisy": r"$\mathrm{max}_{i\in S_f,\,j,r}\,\bar\rho_{j,r,i}$",
}

#: the stage lines: Stage I is [0, T1], Stage II is [T1, T2]; the first fit of a mislabelled sample lies inside
#: Stage II (lnref.training.stages documents the definitions)
_LINES = {
    "t1": ("T1: end of Stage I = start of Stage II", "tab:green", "--"),
    "first_noisy_fit": ("first mislabelled sample fitted (inside Stage II)", "tab:orange", ":"),
    "t2": ("T2: all mislabelled fitted = end of Stage II", "tab:red", "--"),
}
_FONT = 9


def math_label(name: str) -> str:
    """The mathtext label of a Config field / metric / algorithm name (:data:`MATH_LABELS`), else ``name``."""
    return MATH_LABELS.get(name, name)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _time_axis(ax, t_end: float | None = None, plain: bool = False) -> None:
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlim(0, t_end)  # no negative margin: no "-10^0" tick
    ax.set_xlabel("GD step t" if plain else r"GD step $t$")
    ax.grid(True, alpha=0.3)


def _plain_ticks(ax) -> None:
    """Plain-text tick labels ("0.001", "1e+04") on log and symlog axes instead of mathtext powers of ten, and no
    minor ticks: the figure of every ``lnref run`` drew ~50 labels and ~200 minor ticks, and laying out mathtext
    cost ~0.8 s of a 2.5 s tiny run, the minor ticks ~0.05 s (measured)."""
    import matplotlib.ticker as mticker

    plain = mticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale in ("log", "symlog"):
            axis.set_major_formatter(plain)
            axis.set_minor_locator(mticker.NullLocator())
    if ax.get_yscale() == "log":
        # a log axis spanning about a decade (a training loss from 0.69 to 0.1) would get one or two labels: label
        # 1, 2 and 5 of each decade there, and every decade of wider ranges
        lo, hi = ax.get_ylim()
        if lo > 0 and hi / lo < 10**3.2:
            ax.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))


def mark_stages(ax, stages: Any, label: bool = True, plain: bool = False) -> None:
    """Vertical lines at the detected t1, first_noisy_fit and t2 of a :class:`lnref.training.stages.Stages` (None:
    skipped), labelled with what each one is (T1 starts Stage II; the first mislabelled fit lies inside it);
    ``plain``: labels without mathtext."""
    if stages is None:
        return
    for key, (text, color, style) in _LINES.items():
        v = getattr(stages, key)
        if v is not None:
            name = f"{text}: t = {v}" if plain else f"{text}: $t$ = {v}"
            ax.axvline(v, color=color, ls=style, lw=1.2, label=name if label else None)


def shade_stages(ax, stages: Any, t_end: float) -> None:
    """Shade Stage I ([0, T1]) and Stage II ([T1, T2], or to t_end; only with mislabelled samples) and write their
    names at the top."""
    if stages is None or stages.t1 is None:
        return
    import matplotlib.transforms as mtransforms

    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    t1 = stages.t1
    t2 = stages.t2 if stages.t2 is not None else t_end
    spans = [("Stage I", 0.0, t1, "tab:green")]
    if stages.n_noisy > 0:
        spans.append(("Stage II", t1, t2, "tab:orange"))
    for name, a, b, color in spans:
        ax.axvspan(a, b, color=color, alpha=0.10, lw=0)
        # the middle of the span on the symlog axis
        mid = float(np.sqrt(max(a, 0.5) * b)) if b > 1 else 0.5 * (a + b)
        ax.text(
            mid,
            1.005,
            name,
            transform=trans,
            ha="center",
            va="bottom",
            fontsize=_FONT,
            color=color,
            fontweight="bold",
            clip_on=False,
        )


def _positive(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return np.where(v > 0, v, np.nan)


def _has(h: Mapping[str, np.ndarray], key: str) -> bool:
    return key in h and np.any(np.isfinite(np.asarray(h[key], dtype=np.float64)))


#: the coefficient curves' labels, in mathtext and in plain Unicode (the one-run figure of every ``lnref run`` uses
#: the plain ones: setting up matplotlib's mathtext parser costs ~0.3 s, a tenth of a tiny run)
_COEF_LABELS = {
    "gamma_max": (r"signal $\mathrm{max}_{j,r}\,\gamma_{j,r}$", "signal max γ"),
    "rho_bar_max_clean": (
        r"clean: $\mathrm{max}_{i\in S_c,\,j,r}\,\bar\rho_{j,r,i}$",
        "clean: max ρ̄ (max over i, j, r)",
    ),
    "rho_max_mean_clean": (
        r"clean: $\mathrm{mean}_{i\in S_c}\,\mathrm{max}_{j,r}\,\rho_{j,r,i}$",
        "clean: mean over i of max over j, r of ρ",
    ),
    "rho_bar_max_noisy": (
        r"mislabelled: $\mathrm{max}_{i\in S_f,\,j,r}\,\bar\rho_{j,r,i}$",
        "mislabelled: max ρ̄ (max over i, j, r)",
    ),
    "rho_max_mean_noisy": (
        r"mislabelled: $\mathrm{mean}_{i\in S_f}\,\mathrm{max}_{j,r}\,\rho_{j,r,i}$",
        "mislabelled: mean over i of max over j, r of ρ",
    ),
}


def _band(
    ax, t: np.ndarray, spread: Sequence[Mapping[str, np.ndarray]] | None, key: str, color: str, positive: bool = False
) -> None:
    """The range (min to max) of ``key`` over the histories in ``spread`` at each logged step, shaded."""
    if not spread or len(spread) < 2:
        return
    rows = [np.asarray(h[key], dtype=np.float64) for h in spread if key in h and len(h[key]) == len(t)]
    if len(rows) < 2:
        return
    v = np.vstack(rows)
    if positive:
        v = np.where(v > 0, v, np.nan)
    if not np.isfinite(v).any():
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (e.g. no mislabelled sample)
        lo, hi = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
    ax.fill_between(t, lo, hi, color=color, alpha=0.18, lw=0)


def _coefficients(
    ax, h: Mapping[str, np.ndarray], plain: bool = False, spread: Sequence[Mapping[str, np.ndarray]] | None = None
) -> None:
    t = h["step"]
    style = {
        "gamma_max": ("k", "-", 2),
        "rho_bar_max_clean": ("tab:blue", "--", None),
        "rho_max_mean_clean": ("tab:blue", "-", None),
        "rho_bar_max_noisy": ("tab:red", "--", None),
        "rho_max_mean_noisy": ("tab:red", "-", None),
    }
    for key, (color, ls, lw) in style.items():
        if key == "gamma_max" or _has(h, key):
            _band(ax, t, spread, key, color, positive=True)
            ax.plot(t, _positive(h[key]), color=color, ls=ls, lw=lw, label=_COEF_LABELS[key][int(plain)])
    ax.set_yscale("log")
    ax.set_ylabel("coefficient (log scale)")


def _accuracies(ax, h: Mapping[str, np.ndarray], spread: Sequence[Mapping[str, np.ndarray]] | None = None) -> None:
    t = h["step"]
    _band(ax, t, spread, "train_acc", "k")
    ax.plot(t, h["train_acc"], color="k", lw=2, label="training, all samples")
    if _has(h, "train_acc_clean"):
        _band(ax, t, spread, "train_acc_clean", "tab:blue")
        ax.plot(t, h["train_acc_clean"], color="tab:blue", label="training, clean samples")
    if _has(h, "train_acc_noisy"):
        _band(ax, t, spread, "train_acc_noisy", "tab:red")
        ax.plot(t, h["train_acc_noisy"], color="tab:red", label="training, mislabelled (fitted to the flipped label)")
    if _has(h, "test_acc"):
        _band(ax, t, spread, "test_acc", "tab:gray")
        ax.plot(t, h["test_acc"], color="tab:gray", ls="-.", label="test (iid, true labels)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("accuracy (training: w.r.t. observed labels)")


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
    plt = _plt()
    cols = len(panels)
    fig, axes = plt.subplots(2, cols, figsize=(6.6 * cols, 9.6), squeeze=False, sharex="col", sharey="row")
    for c, panel in enumerate(panels):
        h, st = panel["history"], panel.get("stages")
        spread = panel.get("spread")
        t_end = float(h["step"][-1])
        ax = axes[0, c]
        _coefficients(ax, h, spread=spread)
        shade_stages(ax, st, t_end)
        mark_stages(ax, st, label=False)
        title = panel["title"]
        if spread and len(spread) > 1:
            title += f"\nlines: seed 0; bands: min to max over {len(spread)} seeds"
        ax.set_title(title, fontsize=_FONT + 2, pad=16)
        _time_axis(ax, t_end)
        ax.set_xlabel("")
        ax.legend(fontsize=_FONT, loc="lower right", framealpha=0.9)
        ax.tick_params(labelleft=True)
        ax = axes[1, c]
        _accuracies(ax, h, spread=spread)
        shade_stages(ax, st, t_end)
        mark_stages(ax, st, label=True)
        _time_axis(ax, t_end)
        ax.legend(fontsize=_FONT, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
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
    plt = _plt()
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    t = selection.steps
    t_end = float(t[-1])
    a0.plot(t, selection.precision, color="tab:blue", label="precision (clean among selected)")
    a0.plot(t, selection.recall, color="tab:green", label="recall (selected among clean)")
    a0.plot(t, selection.noisy_rejected, color="tab:red", ls=":", label="mislabelled rejected")
    a0.set_title(rf"small-loss selection, $\ell < {selection.threshold:.4g}$ ($\log 2$)", fontsize=_FONT + 2, pad=16)
    shade_stages(a0, stages, t_end)
    mark_stages(a0, stages, label=True)
    a0.set_ylim(-0.03, 1.03)
    a0.set_ylabel("fraction")
    _time_axis(a0, t_end)
    a0.legend(fontsize=_FONT, loc="lower left", framealpha=0.9)
    for (label, col), color in zip(test_columns.items(), ("tab:gray", "tab:purple", "tab:brown", "tab:olive")):
        a1.plot(history["step"], history[col], color=color, label=f"test accuracy ({label})")
    shade_stages(a1, stages, t_end)
    mark_stages(a1, stages, label=False)
    a1.set_title(title or "test accuracy", fontsize=_FONT + 2, pad=16)
    a1.set_ylabel("test accuracy")
    a1.tick_params(labelleft=True)
    _time_axis(a1, t_end)
    a1.legend(fontsize=_FONT, loc="lower left", framealpha=0.9)
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
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    colors = ("tab:blue", "tab:red", "tab:green", "tab:purple")
    for (label, h), color in zip(histories.items(), colors):
        t = h["step"]
        axes[0].plot(t, h[ratio_key], color=color, label=label)
        axes[1].plot(t, _positive(h["loss"]), color=color, label=f"{label}: observed labels")
        if "label_noise_loss" in h and "label-noise" in label:
            axes[1].plot(t, h["label_noise_loss"], color=color, ls="--", label=f"{label}: flipped labels (mean)")
        axes[2].plot(t, h["test_acc"], color=color, label=label)
    for (label, v), (ls, col) in zip(
        (loss_levels or {}).items(), ((":", "tab:purple"), (":", "0.3"), ("-.", "0.3"), ("--", "0.5"))
    ):
        axes[1].axhline(v, color=col, ls=ls, lw=1.2, label=f"{label} = {v:.3g}")
    axes[0].set_title("noise memorisation / signal learning", fontsize=_FONT + 2)
    axes[0].set_ylabel(r"$\mathrm{max}_{i,j,r}\,\bar\rho_{j,r,i}\;/\;\mathrm{max}_{j,r}\,\gamma_{j,r}$")
    axes[0].set_yscale("log")
    axes[1].set_title("training loss", fontsize=_FONT + 2)
    axes[1].set_ylabel("mean logistic loss over the n samples (log scale)")
    axes[1].set_yscale("log")
    axes[2].set_title("test accuracy (iid)", fontsize=_FONT + 2)
    axes[2].set_ylabel("test accuracy")
    axes[2].set_ylim(0.4, 1.02)
    for ax in axes:
        ax.set_xlabel(r"GD step $t$")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=_FONT - 1 if ax is axes[1] else _FONT, framealpha=0.9)
    fig.tight_layout()
    return fig


def cell_edges_scaled(c: np.ndarray, scale: str) -> np.ndarray:
    """Edges of the cells centred on the sorted values c, on a linear or a log ('log') axis."""
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] * 0.9, c[0] * 1.1]) if scale == "log" else np.array([c[0] - 0.5, c[0] + 0.5])
    v = np.log(c) if scale == "log" else c
    mid = 0.5 * (v[1:] + v[:-1])
    e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return np.exp(e) if scale == "log" else e


def heatmap(
    values: Any,
    x: Any,
    y: Any,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    cbar_label: str = "",
    nan_label: str = "no value",
    ax=None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    xscale: str = "linear",
    yscale: str = "linear",
):
    """A heatmap of one metric over a two-parameter grid, with NaN cells explained.

    Parameters
    ----------
    values : array (len(y), len(x))   the metric; NaN where it has no value
    x, y : 1-D arrays                 the grid's centres (columns, rows)
    xlabel, ylabel : str              axis labels; pass Config field names through :func:`math_label`
                                      (e.g. ``math_label("mu_norm")`` -> r"$\\|\\mu\\|$")
    title, cbar_label : str           the title and the colour bar's label (say what the colour is)
    nan_label : str                   the legend entry for NaN cells, e.g. "no mislabelled sample (tau = 0)";
                                      drawn only when some cell is NaN
    ax : matplotlib Axes or None      draw into this axes (else a new figure)
    xscale, yscale : "linear" | "log"

    Returns
    -------
    (fig, ax) : the figure and the axes (add the theory's boundary with ``ax.plot``)

    NaN cells are drawn hatched grey (not the colour map's white), with a legend entry below the axes.
    """
    import matplotlib.patches as mpatches

    plt = _plt()
    vals = np.asarray(values, dtype=np.float64)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if vals.shape != (y.size, x.size):
        raise ValueError(f"values has shape {vals.shape}; expected (len(y), len(x)) = ({y.size}, {x.size})")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 5.2))
    else:
        fig = ax.figure
    xe, ye = cell_edges_scaled(x, xscale), cell_edges_scaled(y, yscale)
    nan = ~np.isfinite(vals)
    if nan.any():
        ax.add_patch(
            mpatches.Rectangle(
                (xe[0], ye[0]),
                xe[-1] - xe[0],
                ye[-1] - ye[0],
                facecolor="0.85",
                edgecolor="0.5",
                hatch="///",
                lw=0,
                zorder=0,
            )
        )
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(vals), cmap=cmap, vmin=vmin, vmax=vmax, shading="flat", zorder=1)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(xlabel, fontsize=_FONT + 2)
    ax.set_ylabel(ylabel, fontsize=_FONT + 2)
    if title:
        ax.set_title(title, fontsize=_FONT + 2)
    cb = fig.colorbar(mesh, ax=ax)
    if cbar_label:
        cb.set_label(cbar_label, fontsize=_FONT + 1)
    if nan.any():
        patch = mpatches.Patch(facecolor="0.85", edgecolor="0.5", hatch="///", label=nan_label)
        ax.legend(handles=[patch], fontsize=_FONT, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return fig, ax


#: the panels of :func:`methods_figure`: (history column, y label, log scale, plotted as error = 1 - column)
_METHOD_PANELS = (
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
        of :data:`_METHOD_PANELS`); ``t1`` (a step or None) marked by a dot on each of the method's curves
    title : str

    Returns
    -------
    Figure; lines are the mean over the seeds, bands +- one standard error.
    """
    plt = _plt()
    t = np.asarray(steps, dtype=np.float64)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.2), layout="constrained")
    cmap = plt.get_cmap("tab10")
    styles = ("-", "--", "-.", ":")
    for ax, (col, ylabel, log, error) in zip(axes.flat, _METHOD_PANELS):
        for i, s in enumerate(series):
            v = np.asarray(s["values"][col], dtype=np.float64)
            if error:
                v = 1.0 - v
            mean = v.mean(axis=0)
            se = v.std(axis=0, ddof=1) / np.sqrt(v.shape[0]) if v.shape[0] > 1 else np.zeros_like(mean)
            color, ls = cmap(i % 10), styles[(i // 10) % len(styles)] if i < 10 else ":"
            lw = 2.2 if i == 0 else 1.4
            y = _positive(mean) if log else mean
            ax.plot(t, y, color=color, ls=ls, lw=lw, label=s["label"], zorder=3 if i == 0 else 2)
            lo, hi = mean - se, mean + se
            ax.fill_between(
                t, _positive(lo) if log else lo, _positive(hi) if log else hi, color=color, alpha=0.12, lw=0
            )
            t1 = s.get("t1")
            if t1 is not None:
                j = int(np.argmin(np.abs(t - t1)))
                ax.plot([t[j]], [y[j]], "o", color=color, ms=5, mec="k", mew=0.6)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.03, 1.03)
        _time_axis(ax, float(t[-1]))
        ax.set_ylabel(ylabel, fontsize=_FONT + 1)
        _plain_ticks(ax)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    import matplotlib.lines as mlines

    handles.append(mlines.Line2D([], [], color="0.5", marker="o", ls="", mec="k", mew=0.6))
    labels.append("T1 of the method (median over seeds)")
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=_FONT + 1, frameon=False)
    if title:
        fig.suptitle(title, fontsize=_FONT + 3)
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
    plt = _plt()
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
                ax.text(xe[0] + 0.01, y * 1.05, text, color="w", fontsize=_FONT, va="bottom")
        ax.set_yscale("log")
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        _plain_ticks(ax)
        ax.set_title(labels[i], fontsize=_FONT + 1)
        if i // ncols == nrows - 1 or i + ncols >= k:
            ax.set_xlabel(r"label-flip rate $\tau$", fontsize=_FONT + 1)
            ax.xaxis.set_tick_params(labelbottom=True)
        if i % ncols == 0:
            ax.set_ylabel("SNR", fontsize=_FONT + 1)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), label=cbar_label, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=_FONT + 3)
    return fig


def plot_history(result: Any, path: str | Path | None = None):
    """One run's history: loss, accuracies, signal against memorised noise; saved as PNG when ``path`` is given.

    Parameters
    ----------
    result : :class:`lnref.Result` (or a history dict, then without stage detection)
    path : file to write (PNG), or None; when given the figure is saved (and not registered with pyplot, so
        nothing needs closing; it is still returned)

    Returns
    -------
    matplotlib.figure.Figure
        Left: training loss on the observed labels, overall and over clean / mislabelled samples, and for
        label-noise GD the flipped-label loss averaged over the flips (log scale).  Middle: training accuracy
        w.r.t. the observed labels (all, clean, mislabelled) and test accuracy.  Right: max_{j,r} gamma against
        max_{i,j,r} rho_bar over clean and over mislabelled samples (log scale).  With mislabelled samples and
        a detectable Stage I, the stages are shaded and named in every panel.
    """
    h = result.history if hasattr(result, "history") else result
    cfg = getattr(result, "config", None)
    stages = None
    if (
        hasattr(result, "trace")
        and "margin" in getattr(result, "trace", {})
        and result.data is not None
        and not bool(np.all(result.data.clean))
    ):
        from .training.stages import detect_stages

        stages = detect_stages(result)
    t = np.asarray(h["step"])
    t_end = float(t[-1]) if t.size and t[-1] > 0 else 1.0  # (a run stopped at step 0: an axis up to 1)
    if path is not None:  # saved, not shown: a Figure outside pyplot (importing pyplot costs ~0.15 s more)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(17, 6.6))
        axes = fig.subplots(1, 3)
    else:
        fig, axes = _plt().subplots(1, 3, figsize=(17, 6.6))
    ax = axes[0]
    ax.plot(t, _positive(h["loss"]), color="k", lw=2, label="all samples")
    if _has(h, "loss_clean") and _has(h, "loss_noisy"):
        ax.plot(t, _positive(h["loss_clean"]), color="tab:blue", label="clean samples")
        ax.plot(t, _positive(h["loss_noisy"]), color="tab:red", label="mislabelled samples")
    if cfg is not None and cfg.algorithm == "label_noise_gd" and "margin" in getattr(result, "trace", {}):
        from .model.metrics import sample_losses

        mg = np.ascontiguousarray(result.trace["margin"], dtype=np.float64)
        flipped = (
            ((1 - cfg.p) * sample_losses(mg.ravel()) + cfg.p * sample_losses(-mg.ravel()))
            .reshape(mg.shape)
            .mean(axis=1)
        )
        ax.plot(t, flipped, color="tab:purple", ls="--", label=f"flipped labels, mean over the flips (p = {cfg.p:g})")
    ax.set_yscale("log")
    ax.set_ylabel("mean logistic loss (log scale)")
    ax.set_title("training loss", fontsize=_FONT + 2, pad=16)
    ax = axes[1]
    _accuracies(ax, h)
    ax.set_title("accuracy", fontsize=_FONT + 2, pad=16)
    ax = axes[2]
    _coefficients(ax, h, plain=True)
    ax.set_title("signal learning and noise memorisation", fontsize=_FONT + 2, pad=16)
    for i, ax in enumerate(axes):
        shade_stages(ax, stages, t_end)
        mark_stages(ax, stages, label=(i == 1), plain=True)
        _time_axis(ax, t_end, plain=True)
        # below the panel, never over the curves
        ax.legend(fontsize=_FONT, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False, ncol=1)
    if cfg is not None:
        fig.suptitle(
            f"lnref run: n={cfg.n}, d={cfg.d}, m={cfg.m}, q={cfg.q:g}, tau={cfg.tau_plus:g}/"
            f"{cfg.tau_minus:g}, algorithm={cfg.algorithm}, eta={cfg.eta:g}, seed={cfg.seed}",
            fontsize=_FONT + 1,
        )
    for ax in axes:
        _plain_ticks(ax)
    # fixed margins instead of tight_layout and bbox_inches="tight": saving draws the figure once instead of three
    # layout passes (about 0.5 s of a tiny `lnref run`, measured)
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.36, top=0.88, wspace=0.2)
    if path is not None:  # atomically: an interrupted save leaves no half-written PNG
        import io as _io

        from .io import atomic_write

        buf = _io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        with atomic_write(path, "wb") as fh:
            fh.write(buf.getvalue())
    return fig
