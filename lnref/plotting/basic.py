"""The basic figures and the drawing helpers every figure shares (matplotlib is imported only when drawing).

:func:`plot_history` (one run at a glance), :func:`heatmap` (one metric over a two-parameter grid), the stage marks
(:func:`shade_stages`, :func:`mark_stages`), :func:`math_label`, and the helpers :mod:`lnref.plotting.papers` draws
with (time axes, plain tick labels, the coefficient and accuracy curves).  :mod:`lnref.plotting` documents them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_history",
    "heatmap",
    "cell_edges_scaled",
    "math_label",
    "mark_stages",
    "shade_stages",
    "MATH_LABELS",
    "STAGE_LINES",
    "COEF_LABELS",
    "FONT",
    "pyplot",
    "time_axis",
    "plain_ticks",
    "positive",
    "has_column",
    "band",
    "coefficient_curves",
    "accuracy_curves",
]

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
STAGE_LINES = {
    "t1": ("T1: end of Stage I = start of Stage II", "tab:green", "--"),
    "first_noisy_fit": ("first mislabelled sample fitted (inside Stage II)", "tab:orange", ":"),
    "t2": ("T2: all mislabelled fitted = end of Stage II", "tab:red", "--"),
}
FONT = 9


def math_label(name: str) -> str:
    """The mathtext label of a Config field / metric / algorithm name (:data:`MATH_LABELS`), else ``name``."""
    return MATH_LABELS.get(name, name)


def pyplot():
    """matplotlib.pyplot with the Agg backend (imported here, on first drawing)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def time_axis(ax, t_end: float | None = None, plain: bool = False) -> None:
    """A symlog GD-step axis from step 0 (to ``t_end``), with its label and a light grid."""
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlim(0, t_end)  # no negative margin: no "-10^0" tick
    ax.set_xlabel("GD step t" if plain else r"GD step $t$")
    ax.grid(True, alpha=0.3)


def plain_ticks(ax) -> None:
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
    for key, (text, color, style) in STAGE_LINES.items():
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
            fontsize=FONT,
            color=color,
            fontweight="bold",
            clip_on=False,
        )


def positive(v: np.ndarray) -> np.ndarray:
    """``v`` as float64 with the values <= 0 replaced by NaN (for log axes)."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v > 0, v, np.nan)


def has_column(h: Mapping[str, np.ndarray], key: str) -> bool:
    """Whether history ``h`` has column ``key`` with at least one finite value."""
    return key in h and np.any(np.isfinite(np.asarray(h[key], dtype=np.float64)))


#: the coefficient curves' labels, in mathtext and in plain Unicode (the one-run figure of every ``lnref run`` uses
#: the plain ones: setting up matplotlib's mathtext parser costs ~0.3 s, a tenth of a tiny run)
COEF_LABELS = {
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


def band(
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


def coefficient_curves(
    ax, h: Mapping[str, np.ndarray], plain: bool = False, spread: Sequence[Mapping[str, np.ndarray]] | None = None
) -> None:
    """The signal and memorised-noise curves of history ``h`` (log scale), with ``spread`` bands."""
    t = h["step"]
    style = {
        "gamma_max": ("k", "-", 2),
        "rho_bar_max_clean": ("tab:blue", "--", None),
        "rho_max_mean_clean": ("tab:blue", "-", None),
        "rho_bar_max_noisy": ("tab:red", "--", None),
        "rho_max_mean_noisy": ("tab:red", "-", None),
    }
    for key, (color, ls, lw) in style.items():
        if key == "gamma_max" or has_column(h, key):
            band(ax, t, spread, key, color, positive=True)
            ax.plot(t, positive(h[key]), color=color, ls=ls, lw=lw, label=COEF_LABELS[key][int(plain)])
    ax.set_yscale("log")
    ax.set_ylabel("coefficient (log scale)")


def accuracy_curves(ax, h: Mapping[str, np.ndarray], spread: Sequence[Mapping[str, np.ndarray]] | None = None) -> None:
    """The training (all, clean, mislabelled) and test accuracy curves of history ``h``, with ``spread`` bands."""
    t = h["step"]
    band(ax, t, spread, "train_acc", "k")
    ax.plot(t, h["train_acc"], color="k", lw=2, label="training, all samples")
    if has_column(h, "train_acc_clean"):
        band(ax, t, spread, "train_acc_clean", "tab:blue")
        ax.plot(t, h["train_acc_clean"], color="tab:blue", label="training, clean samples")
    if has_column(h, "train_acc_noisy"):
        band(ax, t, spread, "train_acc_noisy", "tab:red")
        ax.plot(t, h["train_acc_noisy"], color="tab:red", label="training, mislabelled (fitted to the flipped label)")
    if has_column(h, "test_acc"):
        band(ax, t, spread, "test_acc", "tab:gray")
        ax.plot(t, h["test_acc"], color="tab:gray", ls="-.", label="test (iid, true labels)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("accuracy (training: w.r.t. observed labels)")


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

    plt = pyplot()
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
    ax.set_xlabel(xlabel, fontsize=FONT + 2)
    ax.set_ylabel(ylabel, fontsize=FONT + 2)
    if title:
        ax.set_title(title, fontsize=FONT + 2)
    cb = fig.colorbar(mesh, ax=ax)
    if cbar_label:
        cb.set_label(cbar_label, fontsize=FONT + 1)
    if nan.any():
        patch = mpatches.Patch(facecolor="0.85", edgecolor="0.5", hatch="///", label=nan_label)
        ax.legend(handles=[patch], fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return fig, ax


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
        from ..training.stages import detect_stages

        stages = detect_stages(result)
    t = np.asarray(h["step"])
    t_end = float(t[-1]) if t.size and t[-1] > 0 else 1.0  # (a run stopped at step 0: an axis up to 1)
    if path is not None:  # saved, not shown: a Figure outside pyplot (importing pyplot costs ~0.15 s more)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(17, 6.6))
        axes = fig.subplots(1, 3)
    else:
        fig, axes = pyplot().subplots(1, 3, figsize=(17, 6.6))
    ax = axes[0]
    ax.plot(t, positive(h["loss"]), color="k", lw=2, label="all samples")
    if has_column(h, "loss_clean") and has_column(h, "loss_noisy"):
        ax.plot(t, positive(h["loss_clean"]), color="tab:blue", label="clean samples")
        ax.plot(t, positive(h["loss_noisy"]), color="tab:red", label="mislabelled samples")
    if cfg is not None and cfg.algorithm == "label_noise_gd" and "margin" in getattr(result, "trace", {}):
        from ..model.metrics import sample_losses

        mg = np.ascontiguousarray(result.trace["margin"], dtype=np.float64)
        flipped = (
            ((1 - cfg.p) * sample_losses(mg.ravel()) + cfg.p * sample_losses(-mg.ravel()))
            .reshape(mg.shape)
            .mean(axis=1)
        )
        ax.plot(t, flipped, color="tab:purple", ls="--", label=f"flipped labels, mean over the flips (p = {cfg.p:g})")
    ax.set_yscale("log")
    ax.set_ylabel("mean logistic loss (log scale)")
    ax.set_title("training loss", fontsize=FONT + 2, pad=16)
    ax = axes[1]
    accuracy_curves(ax, h)
    ax.set_title("accuracy", fontsize=FONT + 2, pad=16)
    ax = axes[2]
    coefficient_curves(ax, h, plain=True)
    ax.set_title("signal learning and noise memorisation", fontsize=FONT + 2, pad=16)
    for i, ax in enumerate(axes):
        shade_stages(ax, stages, t_end)
        mark_stages(ax, stages, label=(i == 1), plain=True)
        time_axis(ax, t_end, plain=True)
        # below the panel, never over the curves
        ax.legend(fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False, ncol=1)
    if cfg is not None:
        fig.suptitle(
            f"lnref run: n={cfg.n}, d={cfg.d}, m={cfg.m}, q={cfg.q:g}, tau={cfg.tau_plus:g}/"
            f"{cfg.tau_minus:g}, algorithm={cfg.algorithm}, eta={cfg.eta:g}, seed={cfg.seed}",
            fontsize=FONT + 1,
        )
    for ax in axes:
        plain_ticks(ax)
    # fixed margins instead of tight_layout and bbox_inches="tight": saving draws the figure once instead of three
    # layout passes (about 0.5 s of a tiny `lnref run`, measured)
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.36, top=0.88, wspace=0.2)
    if path is not None:  # atomically: an interrupted save leaves no half-written PNG
        import io as _io

        from ..io import atomic_write

        buf = _io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        with atomic_write(path, "wb") as fh:
            fh.write(buf.getvalue())
    return fig
