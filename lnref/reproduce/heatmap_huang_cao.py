"""Huang et al. 2025's (plain GD against label-noise GD over SNR x n) and Cao et al. 2022's (SNR x n, q = 3)
phase diagrams: ``lnref reproduce huang2025-heatmap`` and ``cao2022-heatmap``.  :mod:`lnref.reproduce.heatmaps`
documents the phase diagrams and the sources."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import Config
from ..io import write_json
from .common import AUTHORS_CODE, Check, Context, register
from .heatmap_tools import (
    FAST,
    boundary_slope,
    cells_mean_se,
    fit_boundary_constant,
    heatmap_panels,
    jackknife_se,
    pm,
    run_sweep,
)

__all__ = ["huang_base", "huang_grid", "cao_base", "cao_grid", "huang_heatmap", "cao_heatmap"]


def huang_base(**changes: Any) -> Config:
    """Huang et al. 2025's heatmap runs: squared ReLU, d = 2000, m = 20, sigma_p = 0.5, eta = 1.0, p = 0.1,
    clean training labels (label noise enters only through label-noise GD)."""
    base = dict(
        n=200,
        d=2000,
        m=20,
        q=2.0,
        eta=1.0,
        sigma0=0.01,
        sigma_p=0.5,
        tau=0.0,
        p=0.1,
        steps=1000,
        n_test=1000,
        mu_norm=2.0,
        **FAST,
    )
    base.update(changes)
    return Config(**base)


def huang_grid(quick: bool) -> dict[str, list]:
    """SNR 0.03..0.10 (as mu_norm = SNR sigma_p sqrt(d)) x n 100..700, plain GD and label-noise GD."""
    d, sp = huang_base().d, huang_base().sigma_p
    snrs = [0.03, 0.065, 0.10] if quick else [round(0.03 + 0.01 * k, 2) for k in range(8)]
    ns = [60, 160] if quick else list(range(100, 701, 100))
    return {
        "algorithm": ["gd", "label_noise_gd"],
        "mu_norm": [float(f"{s * sp * math.sqrt(d):.12g}") for s in snrs],
        "n": ns,
    }


def cao_base(**changes: Any) -> Config:
    """Cao et al. 2022's setting with q = 3 (no label noise): d = 1000, m = 10, sigma_p = 1, sigma0 = 0.01,
    eta = 0.05 (eta = 1 or sigma0 = 0.05 diverge: the ReLU^3 increments of rho scale like eta ||xi||^2 z^2/(nm)).
    No public code of theirs was found (module docstring): the paper's conventions."""
    base = dict(
        n=40,
        d=1000,
        m=10,
        q=3.0,
        eta=0.05,
        sigma0=0.01,
        sigma_p=1.0,
        tau=0.0,
        steps=300,
        n_test=1000,
        mu_norm=2.0,
        **FAST,
    )
    base.update(changes)
    return Config(**base)


def cao_grid(quick: bool) -> dict[str, list]:
    """SNR from 0.03 to 0.8 (log-spaced, as mu_norm) x n from 10 to 160: n SNR^3 spans both sides of 1."""
    d, sp = cao_base().d, cao_base().sigma_p
    snrs = np.geomspace(0.03, 0.8, 6 if quick else 15)
    ns = [10, 40, 160] if quick else [10, 15, 20, 30, 40, 60, 80, 120, 160]
    return {"mu_norm": [float(f"{s * sp * math.sqrt(d):.6g}") for s in snrs], "n": ns}


# ----------------------------------------------------------------------------------------------- Huang
@register(
    "huang2025-heatmap",
    "Huang et al. 2025: plain GD vs label-noise GD over SNR x n (squared ReLU)",
    default_seeds=3,
    quick_seeds=2,
)
def huang_heatmap(ctx: Context) -> list[Check]:
    """Huang et al. 2025's heatmap (SPEC.md section 6): SNR 0.03..0.10 x n 100..700, 1000 steps, eta = 1.0,
    squared ReLU, plain GD against label-noise GD (p = 0.1), clean labels (tau = 0, so the Bayes error is 0).
    Boundary drawn: n SNR^2 = C with C = 1 (stated, not fitted).  lnref's reading of the paper (no public code
    was found: module docstring)."""
    base = huang_base(seed=2025, **({"steps": 300} if ctx.quick else {}))
    grid = huang_grid(ctx.quick)
    reps = int(ctx.seeds)
    res = run_sweep(ctx, "huang2025_heatmap", base, grid, reps)
    vals = res.values("test_error")  # (alg, mu, n, reps)
    err = vals.mean(axis=-1)
    snr = np.array(grid["mu_norm"]) / (base.sigma_p * math.sqrt(base.d))
    ns = np.array(grid["n"], dtype=float)
    C = 1.0
    xx = np.linspace(snr[0], snr[-1], 200)
    panels = [
        {
            "title": f"Huang 2025: {alg} ({base.steps} steps, {reps} reps)",
            "xs": snr,
            "ys": ns,
            "z": err[a],
            "lines": [(xx, C / xx**2, "r--", f"n SNR^2 = {C:g}")],
        }
        for a, alg in enumerate(grid["algorithm"])
    ]
    heatmap_panels(ctx, "huang2025_heatmap.png", panels, "SNR", "n")
    tau = base.tau_plus
    gd, lngd = vals[0], vals[1]
    nsnr2 = ns[None, :] * snr[:, None] ** 2
    lo = np.unravel_index(np.argmin(nsnr2), nsnr2.shape)
    hi = np.unravel_index(np.argmax(nsnr2), nsnr2.shape)
    h_mean, h_se = cells_mean_se(gd[lo][None])
    b_mean, b_se = cells_mean_se(gd[hi][None])
    gain_mean, gain_se = cells_mean_se(gd - lngd)
    harmful = err[0] >= 0.2
    hg_mean, hg_se = cells_mean_se((gd - lngd), harmful) if harmful.any() else (math.nan, math.nan)
    src = "Huang et al. 2025 (arXiv 2510.17526), Theorems 3.2-3.3 and the SNR x n heatmap; SPEC.md section 6"
    ctx.notes.append(
        f"Authors' code: {AUTHORS_CODE['huang2025']}  Rows are judged on the mean over the "
        "replicates (standard errors over the replicates)."
    )
    return [
        Check(
            f"Huang 2025: plain GD overfits harmfully at the smallest n SNR^2 ({nsnr2[lo]:.2g}: SNR "
            f"{snr[lo[0]]:.3g}, n {int(ns[lo[1]])})",
            f"{pm(h_mean, h_se)} (SE over {reps} replicates)",
            h_mean >= tau + 0.1,
            source=src,
            criterion=f"plain GD's error >= tau + 0.1 = {tau + 0.1:.1f}",
            tolerance="none",
        ),
        Check(
            f"Huang 2025: plain GD is benign at the largest n SNR^2 ({nsnr2[hi]:.2g}: SNR {snr[hi[0]]:.3g}, n "
            f"{int(ns[hi[1]])})",
            f"{pm(b_mean, b_se)}",
            abs(b_mean - tau) <= 0.03,
            source=src,
            criterion=f"abs(plain GD's error - tau) <= 0.03, tau = {tau:g}",
            tolerance="0.03",
        ),
        Check(
            "Huang 2025: label-noise GD lowers the test error over the grid",
            f"{pm(gain_mean, gain_se)} (SE over replicates)",
            gain_mean >= 0.05,
            source=src,
            criterion="mean over the cells of (GD error - LN-GD error) >= 0.05",
            tolerance="0.05",
        ),
        Check(
            "Huang 2025: where plain GD overfits harmfully (mean error >= 0.2), label-noise GD does better",
            f"{pm(hg_mean, hg_se)} over {int(harmful.sum())} cells",
            bool(harmful.any()) and hg_mean >= 0.1,
            source=src,
            criterion="mean over those cells of (GD error - LN-GD error) >= 0.1",
            tolerance="0.1",
        ),
    ]


# ----------------------------------------------------------------------------------------------- Cao
@register(
    "cao2022-heatmap",
    "Cao et al. 2022: benign vs harmful overfitting with ReLU^3 (SNR x n)",
    default_seeds=5,
    quick_seeds=2,
)
def cao_heatmap(ctx: Context) -> list[Check]:
    """Cao et al. 2022 (q = 3, no label noise): test error over SNR x n on both sides of n SNR^q = Theta(1).
    Boundary: the first SNR with test error <= 0.25 at each n; the theory (n SNR^3 = C) gives a log-log slope of
    -1/3.  No public code of the authors was found (module docstring): the paper's conventions."""
    base = cao_base(seed=2022)
    grid = cao_grid(ctx.quick)
    reps = int(ctx.seeds)
    res = run_sweep(ctx, "cao2022_heatmap", base, grid, reps)
    vals = res.values("test_error")  # (mu, n, reps)
    err = vals.mean(axis=-1)
    snr = np.array(grid["mu_norm"]) / (base.sigma_p * math.sqrt(base.d))
    ns = np.array(grid["n"], dtype=float)
    level = 0.25
    snr_star, slope = boundary_slope(snr, ns, err, level)
    slope_se = jackknife_se(lambda e: boundary_slope(snr, ns, e, level)[1], vals)
    C = fit_boundary_constant(ns * snr_star**base.q)
    write_json(
        ctx.path("cao2022_boundary.json"),
        {
            "n": ns,
            "snr_switch": snr_star,
            "level": level,
            "C": C,
            "slope_log_snr_vs_log_n": slope,
            "slope_se_jackknife": slope_se,
        },
    )
    xx = np.geomspace(snr[0], snr[-1], 200)
    heatmap_panels(
        ctx,
        "cao2022_heatmap.png",
        [
            {
                "title": f"Cao 2022 (q={base.q:g}, d={base.d}, {reps} reps)",
                "xs": snr,
                "ys": ns,
                "z": err,
                "lines": [
                    (snr_star, ns, "r.", f"error = {level}"),
                    (xx, C / xx**base.q, "r--", f"n SNR^3 = {C:.3g} (fitted)"),
                ],
            }
        ],
        "SNR",
        "n",
        xlog=True,
        ylog=True,
    )
    tau = base.tau_plus
    nsnr = ns[None, :] * snr[:, None] ** base.q
    big, small = nsnr >= 10 * max(C, 1e-12), nsnr <= 0.1 * max(C, 1e-12)
    e_big, se_big = cells_mean_se(vals, big) if big.any() else (math.nan, math.nan)
    e_small, se_small = cells_mean_se(vals, small) if small.any() else (math.nan, math.nan)
    src = "Cao et al. 2022 (arXiv 2202.06526), benign/harmful overfitting theorems; SPEC.md section 6"
    ctx.notes.append(
        f"Authors' code: {AUTHORS_CODE['cao2022']}  Rows are judged on the mean over the replicates "
        "(standard errors over the replicates; the slope's by the jackknife)."
    )
    return [
        Check(
            "Cao 2022: benign overfitting where n SNR^3 >= 10 C",
            f"{pm(e_big, se_big)} over {int(big.sum())} cells (SE over {reps} replicates)",
            bool(big.any()) and abs(e_big - tau) <= 0.03,
            source=src,
            criterion=f"abs(mean error - tau) <= 0.03, tau = {tau:g}",
            tolerance="0.03",
        ),
        Check(
            "Cao 2022: harmful overfitting where n SNR^3 <= C / 10",
            f"{pm(e_small, se_small)} over {int(small.sum())} cells",
            bool(small.any()) and e_small >= tau + 0.1,
            source=src,
            criterion=f"mean error >= tau + 0.1 = {tau + 0.1:.1f}",
            tolerance="none",
        ),
        Check(
            "Cao 2022: the switch SNR (first SNR with error <= 0.25) scales as n^(-1/3)",
            f"slope {pm(slope, slope_se)} (jackknife SE over replicates); C = {C:.3g}",
            math.isfinite(slope) and abs(slope + 1.0 / 3.0) <= 0.1,
            source=src,
            criterion="log-log slope of SNR* against n within 0.1 of -1/3",
            tolerance="0.1",
        ),
    ]
