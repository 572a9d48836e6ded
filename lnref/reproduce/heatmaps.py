"""Phase diagrams (SPEC.md section 6): Kou et al. 2023, Cao et al. 2022, Huang et al. 2025, as sweeps.

Every reproduction runs :func:`lnref.sweep` over a two-field grid (Huang: per algorithm), writes the tidy and
aggregated CSVs, draws the mean test error as a heatmap with the theory's boundary on top, and returns checks
computed from the data.  The runs use ``engine='coefficients', sampling='gram'`` (exact GD in span coordinates,
cost independent of d).  ``ctx.quick`` runs a coarse grid.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..config import Config
from ..io import write_json, write_text
from .common import Check as _Check, Context, have_matplotlib, register, save_figure

__all__ = ["kou_base", "huang_base", "cao_base", "kou_grid", "huang_grid", "cao_grid", "switch_points",
           "fit_boundary_constant"]

def Check(claim: str, measured: str, holds: Any) -> _Check:
    """A :class:`lnref.reproduce.common.Check` with ``holds`` as a plain bool (NumPy bools are not JSON)."""
    return _Check(claim, measured, bool(holds))


_FAST = dict(engine="coefficients", sampling="gram", log_every=0, log_points=0)


# ----------------------------------------------------------------------------------------------- settings
def kou_base(**changes: Any) -> Config:
    """Kou et al. 2023's phase-diagram run in lnref's normalisation (SPEC.md section 6).

    Their network sums the filters without 1/m and averages the two patches: f_theirs(W) = f(c W), c = m/2 = 5
    for the ReLU.  Their step 0.1 is eta = 0.1 c^2 = 2.5 here; their initial scale (taken as 0.01) is
    sigma0 = 0.01 c = 0.05 here.  Test labels are flipped with the training rate (Bayes error 0.1); flips are
    'exact' as in their code; the noise is orthogonal to mu.
    """
    base = dict(n=20, m=10, q=1.0, eta=2.5, sigma0=0.05, sigma_p=1.0, tau=0.1, flips="exact", steps=100,
                n_test=1000, test_flipped_labels=True, noise="orthogonal", d=100, mu_norm=1.0, **_FAST)
    base.update(changes)
    return Config(**base)


def kou_grid(quick: bool) -> dict[str, list]:
    """||mu|| 0..9.9 step 0.1 x d 100..1090 step 10: 100 x 100 cells, as in their experiment (at ||mu|| = 0 the
    noise stays orthogonal to e_1, see Config.noise)."""
    if quick:
        return {"mu_norm": [round(0.5 + k, 1) for k in range(10)], "d": [100, 300, 500, 700, 900, 1090]}
    return {"mu_norm": [round(0.1 * k, 1) for k in range(100)], "d": list(range(100, 1091, 10))}


def huang_base(**changes: Any) -> Config:
    """Huang et al. 2025's heatmap runs: squared ReLU, d = 2000, m = 20, sigma_p = 0.5, eta = 1.0, p = 0.1,
    clean training labels (label noise enters only through label-noise GD)."""
    base = dict(n=200, d=2000, m=20, q=2.0, eta=1.0, sigma0=0.01, sigma_p=0.5, tau=0.0, p=0.1, steps=1000,
                n_test=1000, mu_norm=2.0, **_FAST)
    base.update(changes)
    return Config(**base)


def huang_grid(quick: bool) -> dict[str, list]:
    """SNR 0.03..0.10 (as mu_norm = SNR sigma_p sqrt(d)) x n 100..700, plain GD and label-noise GD."""
    d, sp = huang_base().d, huang_base().sigma_p
    snrs = [0.03, 0.065, 0.10] if quick else [round(0.03 + 0.01 * k, 2) for k in range(8)]
    ns = [60, 160] if quick else list(range(100, 701, 100))
    return {"algorithm": ["gd", "label_noise_gd"], "mu_norm": [float(f"{s * sp * math.sqrt(d):.12g}") for s in snrs],
            "n": ns}


def cao_base(**changes: Any) -> Config:
    """Cao et al. 2022's setting with q = 3 (no label noise): d = 1000, m = 10, sigma_p = 1, sigma0 = 0.01,
    eta = 0.05 (eta = 1 or sigma0 = 0.05 diverge: the ReLU^3 increments of rho scale like eta ||xi||^2 z^2/(nm))."""
    base = dict(n=40, d=1000, m=10, q=3.0, eta=0.05, sigma0=0.01, sigma_p=1.0, tau=0.0, steps=300, n_test=1000,
                mu_norm=2.0, **_FAST)
    base.update(changes)
    return Config(**base)


def cao_grid(quick: bool) -> dict[str, list]:
    """SNR from 0.03 to 0.8 (log-spaced, as mu_norm) x n from 10 to 160: n SNR^3 spans both sides of 1."""
    d, sp = cao_base().d, cao_base().sigma_p
    snrs = np.geomspace(0.03, 0.8, 6 if quick else 15)
    ns = [10, 40, 160] if quick else [10, 15, 20, 30, 40, 60, 80, 120, 160]
    return {"mu_norm": [float(f"{s * sp * math.sqrt(d):.6g}") for s in snrs], "n": ns}


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


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def _executor(ctx: Context, runs: int):
    from ..sweeps import SerialExecutor, process_executor
    # a process pool pays a numba compile per worker: only worth it for many runs
    return SerialExecutor() if ctx.quick or runs < 200 else process_executor()


def _run_sweep(ctx: Context, prefix: str, base: Config, grid: dict, replicates: int):
    from ..sweeps import sweep
    runs = replicates * int(np.prod([len(v) for v in grid.values()]))
    ctx.log(f"{prefix}: {runs} runs ({' x '.join(f'{len(v)} {k}' for k, v in grid.items())} x {replicates} "
            f"replicates)")
    ex = _executor(ctx, runs)
    try:
        res = sweep(base, grid, replicates=replicates, executor=ex, progress=True)
    finally:
        ex.shutdown()
    write_text(ctx.path(f"{prefix}.csv"), res.tidy_csv())
    write_text(ctx.path(f"{prefix}_mean.csv"), res.mean_csv())
    write_json(ctx.path(f"{prefix}.json"), {"base_config": base.to_dict(), "grid": res.grid,
                                            "replicates": replicates, "root_seed": base.seed,
                                            "wall_seconds": res.wall_seconds})
    ctx.log(f"{prefix}: done in {res.wall_seconds:.1f}s")
    return res


def _figure(ctx: Context, name: str, panels: list[tuple[str, Any, np.ndarray, Callable | None, str]],
            xlabel: str, ylabel: str, xlog: bool = False, ylog: bool = False) -> None:
    """panels: (title, (xs, ys), z of shape (len(xs), len(ys)), boundary y(x) or None, boundary label)."""
    if not have_matplotlib():
        return
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from ..sweeps.results import cell_edges as _edges
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), squeeze=False)
    for ax, (title, (xs, ys), z, boundary, blabel) in zip(axes[0], panels):
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        ex = np.exp(_edges(np.log(xs))) if xlog else _edges(xs)
        ey = np.exp(_edges(np.log(ys))) if ylog else _edges(ys)
        im = ax.pcolormesh(ex, ey, z.T, shading="flat", cmap="viridis", vmin=0.0, vmax=0.6)
        fig.colorbar(im, ax=ax, label="test error (mean over replicates)")
        if boundary is not None:
            xx = np.geomspace(ex[0], ex[-1], 400) if xlog else np.linspace(ex[0], ex[-1], 400)
            yy = boundary(xx)
            ok = np.isfinite(yy) & (yy >= ey[0]) & (yy <= ey[-1])
            ax.plot(xx[ok], yy[ok], "r--", lw=2, label=blabel)
            ax.legend(loc="lower right", fontsize=8)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(ex[0], ex[-1]), ylim=(ey[0], ey[-1]))
        if xlog:
            ax.set_xscale("log")
        if ylog:
            ax.set_yscale("log")
    save_figure(fig, ctx, name)


# ----------------------------------------------------------------------------------------------- Kou
@register("kou2023-heatmap", "Kou et al. 2023: benign vs harmful overfitting of a ReLU CNN (||mu|| x d)")
def kou_heatmap(ctx: Context) -> list[_Check]:
    """Kou et al. 2023's phase diagram (SPEC.md section 6) with eta = 2.5 and sigma0 = 0.05 in lnref's
    normalisation (their eta = 0.1, initial scale 0.01 with the filters summed and the patches averaged).
    Boundary: n ||mu||^4 = C sigma_p^4 d with C fitted to the measured 0.3-error switch points."""
    base = kou_base(seed=2023)
    grid = kou_grid(ctx.quick)
    reps = max(ctx.seeds, 2) if ctx.quick else max(ctx.seeds, 10)
    res = _run_sweep(ctx, "kou2023_heatmap", base, grid, reps)
    err = res.mean("test_error")  # (mu, d)
    mus, ds = np.array(grid["mu_norm"]), np.array(grid["d"], dtype=float)
    flip = base.tau_plus
    level = (0.5 + flip) / 2
    mu_star = switch_points(mus, err, level)  # per d
    C = fit_boundary_constant(base.n * mu_star ** 4 / (base.sigma_p ** 4 * ds))
    slope = _slope(ds, mu_star)
    write_json(ctx.path("kou2023_boundary.json"), {"d": ds, "mu_switch": mu_star, "level": level, "C": C,
                                                   "slope_log_mu_vs_log_d": slope})
    _figure(ctx, "kou2023_heatmap.png",
            [(f"Kou 2023 (n={base.n}, eta={base.eta} lnref = 0.1 theirs, {reps} reps)", (mus, ds), err,
              lambda x: base.n * x ** 4 / (C * base.sigma_p ** 4), f"n ||mu||^4 = {C:.3g} sigma_p^4 d (fitted)")],
            "||mu||", "d")
    benign = err[-1, 0]
    harmful = err[0, -1]
    checks = [
        Check(f"Kou 2023: benign corner (||mu||={mus[-1]}, d={int(ds[0])}) has test error near the flip rate "
              f"{flip} (within 0.05)", f"{benign:.3f}", abs(benign - flip) <= 0.05),
        Check(f"Kou 2023: harmful corner (||mu||={mus[0]}, d={int(ds[-1])}) has test error >= p + 0.1 = "
              f"{flip + 0.1:.1f}", f"{harmful:.3f}", harmful >= flip + 0.1),
        Check(f"Kou 2023: the boundary (first ||mu|| with error <= {level:.2f}) moves right as d grows "
              "(slope of log ||mu||* vs log d > 0; theory 1/4)",
              f"||mu||* = {mu_star[0]:.2f} at d={int(ds[0])}, {mu_star[-1]:.2f} at d={int(ds[-1])}; "
              f"slope {slope:.3f}; fitted C = {C:.3g}", bool(slope > 0) and mu_star[-1] > mu_star[0]),
    ]
    return checks


# ----------------------------------------------------------------------------------------------- Huang
@register("huang2025-heatmap", "Huang et al. 2025: plain GD vs label-noise GD over SNR x n (squared ReLU)")
def huang_heatmap(ctx: Context) -> list[_Check]:
    """Huang et al. 2025's heatmap (SPEC.md section 6): SNR 0.03..0.10 x n 100..700, 1000 steps, eta = 1.0,
    squared ReLU, plain GD against label-noise GD (p = 0.1).  Boundary drawn: n SNR^2 = C with C = 1
    (stated, not fitted)."""
    base = huang_base(seed=2025, **({"steps": 300} if ctx.quick else {}))
    grid = huang_grid(ctx.quick)
    reps = max(ctx.seeds, 1) if ctx.quick else max(ctx.seeds, 3)
    res = _run_sweep(ctx, "huang2025_heatmap", base, grid, reps)
    err = res.mean("test_error")  # (alg, mu, n)
    snr = np.array(grid["mu_norm"]) / (base.sigma_p * math.sqrt(base.d))
    ns = np.array(grid["n"], dtype=float)
    C = 1.0
    panels = [(f"Huang 2025: {alg} ({base.steps} steps)", (snr, ns), err[a], lambda x: C / x ** 2,
               f"n SNR^2 = {C:g}") for a, alg in enumerate(grid["algorithm"])]
    _figure(ctx, "huang2025_heatmap.png", panels, "SNR", "n")
    nsnr2 = ns[None, :] * snr[:, None] ** 2
    gd, lngd = err[0], err[1]
    low = nsnr2 <= np.median(nsnr2)
    gain = float(np.mean(gd - lngd))
    checks = [
        Check("Huang 2025: label-noise GD has lower test error than plain GD on average over the grid",
              f"mean(GD - LN-GD) = {gain:+.3f}", gain > 0),
        Check("Huang 2025: plain GD's test error is higher at small n SNR^2 (lower half) than at large",
              f"{gd[low].mean():.3f} vs {gd[~low].mean():.3f}", gd[low].mean() > gd[~low].mean()),
        Check("Huang 2025: where plain GD is harmful (error >= 0.2), label-noise GD does better in most cells",
              f"{int(np.sum((gd >= 0.2) & (lngd < gd)))} of {int(np.sum(gd >= 0.2))} cells",
              bool(np.sum(gd >= 0.2)) and np.sum((gd >= 0.2) & (lngd < gd)) * 2 > np.sum(gd >= 0.2)),
    ]
    return checks


# ----------------------------------------------------------------------------------------------- Cao
@register("cao2022-heatmap", "Cao et al. 2022: benign vs harmful overfitting with ReLU^3 (SNR x n)")
def cao_heatmap(ctx: Context) -> list[_Check]:
    """Cao et al. 2022 (q = 3, no label noise): test error over SNR x n on both sides of n SNR^q = Theta(1).
    Boundary: n SNR^3 = C with C fitted to the 0.25-error switch points."""
    base = cao_base(seed=2022)
    grid = cao_grid(ctx.quick)
    reps = max(ctx.seeds, 2) if ctx.quick else max(ctx.seeds, 5)
    res = _run_sweep(ctx, "cao2022_heatmap", base, grid, reps)
    err = res.mean("test_error")  # (mu, n)
    snr = np.array(grid["mu_norm"]) / (base.sigma_p * math.sqrt(base.d))
    ns = np.array(grid["n"], dtype=float)
    level = 0.25
    snr_star = switch_points(snr, err, level)
    C = fit_boundary_constant(ns * snr_star ** base.q)
    write_json(ctx.path("cao2022_boundary.json"), {"n": ns, "snr_switch": snr_star, "level": level, "C": C})
    _figure(ctx, "cao2022_heatmap.png",
            [(f"Cao 2022 (q={base.q:g}, d={base.d}, {reps} reps)", (snr, ns), err,
              lambda x: C / x ** base.q, f"n SNR^3 = {C:.3g} (fitted)")], "SNR", "n", xlog=True, ylog=True)
    nsnr = ns[None, :] * snr[:, None] ** base.q
    big, small = nsnr >= 10 * max(C, 1e-12), nsnr <= 0.1 * max(C, 1e-12)
    e_big = float(err[big].mean()) if big.any() else math.nan
    e_small = float(err[small].mean()) if small.any() else math.nan
    return [
        Check("Cao 2022: benign where n SNR^3 >= 10 C (test error <= 0.1)", f"{e_big:.3f} over {int(big.sum())} "
              "cells", bool(big.any()) and e_big <= 0.1),
        Check("Cao 2022: harmful where n SNR^3 <= C / 10 (test error >= 0.3)", f"{e_small:.3f} over "
              f"{int(small.sum())} cells", bool(small.any()) and e_small >= 0.3),
        Check("Cao 2022: the switch SNR falls as n grows (slope of log SNR* vs log n < 0; theory -1/3)",
              f"slope {_slope(ns, snr_star):.3f}; C = {C:.3g}", _slope(ns, snr_star) < 0),
    ]
