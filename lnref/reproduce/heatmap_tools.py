"""Shared tools of the phase-diagram reproductions (:mod:`lnref.reproduce.heatmaps`): the sweep settings, running a
sweep into the reproduction's folder, boundaries of an error table (switch points and log-log slopes), standard
errors over the replicates, and the heatmap panels."""

from __future__ import annotations

import math

import numpy as np

from ..config import Config
from ..io import write_json, write_text
from .common import Context, have_matplotlib, save_figure, sweep_executor

__all__ = [
    "FAST",
    "switch_points",
    "fit_boundary_constant",
    "log_slope",
    "boundary_slope",
    "jackknife_se",
    "cells_mean_se",
    "pm",
    "run_sweep",
    "heatmap_panels",
    "power_line",
]

#: the sweep settings of every phase diagram: exact GD in span coordinates, cost independent of d, final metrics only
FAST = dict(engine="coefficients", sampling="gram", log_every=0, log_points=0)


# ----------------------------------------------------------------------------------------------- analysis
def switch_points(x: np.ndarray, err: np.ndarray, level: float) -> np.ndarray:
    """For each column of ``err`` (len(x), k), the first x at which err falls to ``level`` or below
    (linear interpolation between grid points; NaN when it never does, x[0] when it starts there)."""
    out = np.full(err.shape[1], math.nan)
    for j in range(err.shape[1]):
        e = err[:, j]
        below = np.flatnonzero(e <= level)
        if below.size == 0:
            continue
        i = below[0]
        if i == 0:
            out[j] = x[0]
        else:
            out[j] = x[i - 1] + (e[i - 1] - level) / (e[i - 1] - e[i]) * (x[i] - x[i - 1])
    return out


def fit_boundary_constant(values: np.ndarray) -> float:
    """Geometric mean of per-point constants (the least-squares fit of log C)."""
    v = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.mean(np.log(v)))) if v.size else math.nan


def log_slope(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def boundary_slope(x: np.ndarray, y: np.ndarray, err: np.ndarray, level: float) -> tuple[np.ndarray, float]:
    """The boundary of an error table ``err`` (len(x), len(y)): the switch points x*(y) (first x with error <=
    ``level``, :func:`switch_points`) and the least-squares slope of log x* against log y (points with a
    positive, finite x*).  The same fit for lnref's table and a published one."""
    star = switch_points(np.asarray(x, float), np.asarray(err, float), level)
    return star, log_slope(np.asarray(y, float), star)


def jackknife_se(stat, values: np.ndarray) -> float:
    """Jackknife standard error over the replicates (last axis of ``values``) of ``stat(mean over replicates)``."""
    k = values.shape[-1]
    if k < 2:
        return math.nan
    loo = np.array([stat(np.delete(values, i, axis=-1).mean(axis=-1)) for i in range(k)])
    loo = loo[np.isfinite(loo)]
    if loo.size < 2:
        return math.nan
    return float(math.sqrt((k - 1) / k * np.sum((loo - loo.mean()) ** 2)))


def cells_mean_se(values: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Mean over the cells in ``mask`` (all cells if None) of ``values`` (cells..., replicates), and its standard
    error over the replicates (std(ddof=1)/sqrt(k) of the per-replicate means; NaN for k < 2)."""
    per_rep = values[mask] if mask is not None else values.reshape(-1, values.shape[-1])
    per_rep = per_rep.reshape(-1, values.shape[-1]).mean(axis=0)
    k = per_rep.size
    se = float(per_rep.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
    return float(per_rep.mean()), se


def pm(mean: float, se: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" + ("" if not math.isfinite(se) else f" +- {se:.{digits}f}")


def run_sweep(ctx: Context, prefix: str, base: Config, grid: dict, replicates: int):
    from ..sweeps import sweep

    runs = replicates * int(np.prod([len(v) for v in grid.values()]))
    ctx.log(f"{prefix}: {runs} runs ({' x '.join(f'{len(v)} {k}' for k, v in grid.items())} x {replicates} replicates)")
    import itertools

    for values in itertools.product(*grid.values()):  # the config of every cell (replicates vary the seed only)
        ctx.ran(base.replace(**dict(zip(grid, values))), runs=replicates)
    ex, close = sweep_executor(ctx, runs)  # --dask ADDRESS, else local (a pool only for many runs)
    try:
        res = sweep(base, grid, replicates=replicates, executor=ex, progress=True)
    finally:
        close()
    write_text(ctx.path(f"{prefix}.csv"), res.tidy_csv())
    write_text(ctx.path(f"{prefix}_mean.csv"), res.mean_csv())
    write_json(
        ctx.path(f"{prefix}.json"),
        {
            "base_config": base.to_dict(),
            "grid": res.grid,
            "replicates": replicates,
            "root_seed": base.seed,
            "wall_seconds": res.wall_seconds,
        },
    )
    ctx.log(f"{prefix}: done in {res.wall_seconds:.1f}s")
    return res


def heatmap_panels(
    ctx: Context, name: str, panels: list[dict], xlabel: str, ylabel: str, xlog: bool = False, ylog: bool = False
) -> None:
    """One heatmap per panel.  A panel: ``title``, ``xs``, ``ys``, ``z`` (len(xs), len(ys)); optional ``lines``
    [(x, y, matplotlib format, label)], ``cmap``, ``vmin``, ``vmax``, ``cbar``."""
    if not have_matplotlib():
        return
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..sweeps.results import cell_edges as _edges

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), squeeze=False, layout="constrained")
    for ax, panel in zip(axes[0], panels):
        xs, ys = np.asarray(panel["xs"], float), np.asarray(panel["ys"], float)
        ex = np.exp(_edges(np.log(xs))) if xlog else _edges(xs)
        ey = np.exp(_edges(np.log(ys))) if ylog else _edges(ys)
        im = ax.pcolormesh(
            ex,
            ey,
            np.asarray(panel["z"]).T,
            shading="flat",
            cmap=panel.get("cmap", "viridis"),
            vmin=panel.get("vmin", 0.0),
            vmax=panel.get("vmax", 0.6),
        )
        fig.colorbar(im, ax=ax, label=panel.get("cbar", "test error (mean over replicates)"))
        lines = panel.get("lines", [])
        for lx, ly, fmt, label in lines:
            lx, ly = np.asarray(lx, float), np.asarray(ly, float)
            ok = np.isfinite(lx) & np.isfinite(ly) & (ly >= ey[0]) & (ly <= ey[-1]) & (lx >= ex[0]) & (lx <= ex[-1])
            ax.plot(lx[ok], ly[ok], fmt, lw=2, ms=3, label=label)
        if lines:
            ax.legend(loc="lower right", fontsize=8)
        ax.set(title=panel["title"], xlabel=xlabel, ylabel=ylabel, xlim=(ex[0], ex[-1]), ylim=(ey[0], ey[-1]))
        if xlog:
            ax.set_xscale("log")
        if ylog:
            ax.set_yscale("log")
    save_figure(fig, ctx, name)


def power_line(x: np.ndarray, y: np.ndarray, star: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """The fitted boundary x* = A y^slope as (x, y) points for drawing (A: least squares in log space)."""
    ok = np.isfinite(star) & (star > 0)
    if not math.isfinite(slope) or ok.sum() < 2:
        return np.empty(0), np.empty(0)
    logA = float(np.mean(np.log(star[ok]) - slope * np.log(y[ok])))
    yy = np.linspace(float(y[0]), float(y[-1]), 200)
    return np.exp(logA) * yy**slope, yy
