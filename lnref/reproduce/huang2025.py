"""Huang et al. (2025): label-noise GD against plain GD with the squared ReLU in the low-SNR regime.

``lnref reproduce huang2025`` trains Huang's main run (SPEC.md section 6) with plain GD and with label-noise GD
(flip probability p = 0.1 drawn afresh at every step) on the same data and initialisation::

    n=200, n_test=2000, d=2000, m=20, q=2 (squared ReLU), eta=0.5, 2000 steps, p=0.1, mu = [2, 0, ..., 0],
    sigma_p=0.5 (SNR = 0.089, n SNR^2 = 1.6), sigma0=0.01 (not stated by SPEC.md; lnref's default),
    clean training labels (tau = 0: label-noise GD is the regulariser, not a property of the data),
    orthogonal noise, logged every 10 steps.

It records the ratio of noise memorisation to signal learning, max_{i,j,r} rho_bar_{j,r,i} / max_{j,r} gamma_{j,r},
the training loss on the observed labels, the expected label-noise loss (1-p) l(y f) + p l(-y f) (the objective
label-noise GD descends on average) and the iid test accuracy.  ``--quick``: n=100, d=1000, m=10, n_test=500,
600 steps, logged every 10 (same n SNR^2).
"""
from __future__ import annotations

import math

import numpy as np

from ..config import Config
from ..data import init_weights, make_data
from ..io import write_json, write_text
from ..metrics import sample_losses
from ..runs import metrics_csv
from ..training import train
from .common import Check, Context, have_matplotlib, register, save_figure
from .han2025 import _fmt, _seq, choose_engine

__all__ = ["default_config", "memorisation_ratio", "label_noise_loss"]


def default_config(quick: bool = False, seed: int = 0, engine: str = "weights") -> Config:
    """Huang's main run (module docstring); ``quick`` halves n, d, m and runs 600 steps."""
    common = dict(q=2.0, eta=0.5, p=0.1, mu_norm=2.0, sigma_p=0.5, sigma0=0.01, tau=0.0, log_every=10,
                  seed=seed, engine=engine)
    if quick:
        return Config(n=100, n_test=500, d=1000, m=10, steps=600, **common)
    return Config(n=200, n_test=2000, d=2000, m=20, steps=2000, **common)


def memorisation_ratio(history: dict) -> np.ndarray:
    """max_{i,j,r} rho_bar_{j,r,i} / max_{j,r} gamma_{j,r} per logged step (NaN where gamma_max <= 0), shape (L,).

    Notes
    -----
    Noise memorisation over signal learning, in the coefficients of SPEC.md section 4.
    """
    rho = np.fmax(history["rho_bar_max_clean"], history["rho_bar_max_noisy"])  # fmax ignores an empty S_f's NaN
    g = history["gamma_max"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(g > 0, rho / np.where(g > 0, g, 1.0), math.nan)


def label_noise_loss(margin: np.ndarray, p: float) -> np.ndarray:
    """(1/n) sum_i [(1-p) l(m_i) + p l(-m_i)] per logged step, margin (L, n) -> (L,).

    Notes
    -----
    The expectation over eps of the label-noise GD objective of SPEC.md section 3.
    """
    margin = np.ascontiguousarray(margin, dtype=np.float64)
    lp = sample_losses(margin.ravel()).reshape(margin.shape)
    lm = sample_losses(-margin.ravel()).reshape(margin.shape)
    return ((1.0 - p) * lp + p * lm).mean(axis=1)


@register("huang2025", "Huang et al. 2025: label-noise GD vs plain GD (squared ReLU, low SNR)")
def run_huang2025(ctx: Context) -> list[Check]:
    """Huang et al. (2025): with the squared ReLU and SNR = O(n^{-1/2}), plain GD memorises the noise and its test
    error stays high, while label-noise GD (p = 0.1) keeps noise memorisation bounded and its test accuracy
    climbs.  Config: n=200, d=2000, m=20, eta=0.5, 2000 steps, ||mu||=2, sigma_p=0.5 (n SNR^2 = 1.6), clean
    training labels; see lnref.reproduce.huang2025."""
    engine = choose_engine()
    base = default_config(ctx.quick, engine=engine)
    ctx.log(f"huang2025: engine={engine}, n={base.n}, d={base.d}, m={base.m}, steps={base.steps}, "
            f"n SNR^2={base.n * base.snr ** 2:.3g}, seeds={ctx.seeds}")
    runs: dict[tuple[str, int], dict] = {}
    for seed in range(ctx.seeds):
        cfg0 = base.replace(seed=seed)
        data, W0 = make_data(cfg0), init_weights(cfg0)
        for alg in ("gd", "label_noise_gd"):
            cfg = cfg0.replace(algorithm=alg)
            res = train(cfg, data, W0, threads=ctx.threads, keep_rho=False)
            h = dict(res.history)
            h["memorisation_ratio"] = memorisation_ratio(h)
            h["label_noise_loss"] = label_noise_loss(res.trace["margin"], base.p)
            h["rho_bar_max"] = np.fmax(h["rho_bar_max_clean"], h["rho_bar_max_noisy"])
            runs[(alg, seed)] = h
            write_text(ctx.path(f"metrics_{alg}_seed{seed}.csv"), metrics_csv(h))
            ctx.log(f"  seed {seed} {alg}: final test acc {h['test_acc'][-1]:.3f}, ratio "
                    f"{h['memorisation_ratio'][-1]:.3g} ({res.timings['train']:.1f}s)")

    seeds = range(ctx.seeds)
    gd = [runs[("gd", s)] for s in seeds]
    ln = [runs[("label_noise_gd", s)] for s in seeds]

    def last(hs, key):
        return [float(h[key][-1]) for h in hs]

    def second_half_mean(hs, key):
        return [float(np.mean(h[key][h["step"] >= base.steps / 2])) for h in hs]

    summary = {"config": base.to_dict(), "engine": engine, "final": {
        alg: {k: last(hs, k) for k in ("test_acc", "loss", "label_noise_loss", "memorisation_ratio", "rho_bar_max",
                                       "gamma_max")} for alg, hs in (("gd", gd), ("label_noise_gd", ln))}}
    write_json(ctx.path("summary_huang2025.json"), summary)

    checks = []
    checks.append(Check(
        "Huang 2025: plain GD memorises noise (final max rho_bar / max gamma > 1)",
        f"plain GD final ratio per seed: {_seq(last(gd, 'memorisation_ratio'))}",
        all(r > 1 for r in last(gd, "memorisation_ratio"))))
    checks.append(Check(
        "Huang 2025: label-noise GD keeps noise memorisation below plain GD's (final max rho_bar and ratio)",
        f"final max rho_bar GD vs LN-GD: {_seq(last(gd, 'rho_bar_max'))} vs {_seq(last(ln, 'rho_bar_max'))}; "
        f"ratio {_seq(last(gd, 'memorisation_ratio'))} vs {_seq(last(ln, 'memorisation_ratio'))}",
        all(a > b for a, b in zip(last(gd, "rho_bar_max"), last(ln, "rho_bar_max"))) and
        all(a > b for a, b in zip(last(gd, "memorisation_ratio"), last(ln, "memorisation_ratio")))))
    checks.append(Check(
        "Huang 2025: plain GD's test error stays high (final test error >= 0.1)",
        f"plain GD final test error: {_seq([1 - a for a in last(gd, 'test_acc')])}",
        all(1 - a >= 0.1 for a in last(gd, "test_acc"))))
    climbs = [(float(h["test_acc"][np.searchsorted(h["step"], base.steps // 4)]), float(h["test_acc"][-1]))
              for h in ln]
    checks.append(Check(
        "Huang 2025: label-noise GD's test accuracy climbs (final > at a quarter of the steps, and final beats "
        "plain GD by > 0.1)",
        "LN-GD (quarter, final): " + "; ".join(f"({_fmt(a)}, {_fmt(b)})" for a, b in climbs) +
        f"; plain GD final: {_seq(last(gd, 'test_acc'))}",
        all(b > a for a, b in climbs) and all(b - g > 0.1 for (_, b), g in zip(climbs, last(gd, "test_acc")))))
    obs, exp = second_half_mean(ln, "loss"), second_half_mean(ln, "label_noise_loss")
    checks.append(Check(
        "Huang 2025: label-noise GD's training loss hovers near 0.5 (here: mean over the second half of the run "
        "within [0.25, 0.75]; observed-label loss and the expected label-noise loss reported)",
        f"observed-label loss: {_seq(obs)}; expected label-noise loss (1-p) l(yf) + p l(-yf): {_seq(exp)}",
        all(0.25 <= v <= 0.75 for v in obs)))

    if have_matplotlib():
        from ..plotting import huang_figure
        fig = huang_figure({"plain GD": runs[("gd", 0)], f"label-noise GD (p={base.p:g})": runs[("label_noise_gd", 0)]})
        save_figure(fig, ctx, "huang2025.png")
    else:
        ctx.log("huang2025: matplotlib is not installed; no figure (data written)")
    return checks
