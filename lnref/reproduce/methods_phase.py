"""``lnref reproduce methods-phase``: the training methods over tau x SNR (SPEC.md section 9; issue 22).

A phase map per method: :func:`phase_grid` sweeps tau x SNR for every method with the coefficient engine and Gram
sampling through :func:`lnref.sweep` (tidy ``sweep.csv`` in the folder ``methods_phase_sweep``; an interrupted run
resumes its finished rows when the same command runs again; ``--dask ADDRESS`` runs it on a cluster) and draws, per
method, the final fraction of mislabelled samples fitted (memorisation prevented where it is small) and the
spurious test error, next to plain GD.  The methods are those of :mod:`lnref.reproduce.methods`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import Config
from ..io import OutputError, write_json
from .common import Check, Context, have_matplotlib, register, save_figure, sweep_executor
from .han2025 import default_config
from .methods import METHODS, method_config, method_key
from .methods_predictions import BASELINE, MEM_LEVEL

__all__ = ["phase_base", "phase_grid", "phase_checks", "prevention_boundary", "run_methods_phase", "PHASE_SWEEP"]


# ----------------------------------------------------------------------------------------------- phase map
PHASE_SWEEP = "methods_phase_sweep"
PHASE_REPLICATES = 3  # replicates per cell by default (--seeds); bench/README.md has the wall time
PHASE_METRICS = ("test_error", "train_acc_noisy", "train_acc_clean", "true_acc_noisy")


def phase_base(quick: bool = False) -> Config:
    """Han's regime at han2025's ``--quick`` sizes (:func:`lnref.reproduce.han2025.default_config` with
    ``quick=True``: n = 100, d = 1000, m = 10, 150 steps; the same n/d, so the same n SNR^2, as the full default)
    as a sweep cell: coefficient engine, Gram sampling, nothing logged but the end, the spurious test distribution
    on a fresh virtual test set of n_test samples drawn at the final weights (``virtual_test='fresh'``).  The full
    sizes cost about 10 times more per run (0.06 s against 0.008 s on one core), too much for 20 x 20 cells x 9
    methods x replicates in 10 minutes on 2 cores.  ``quick`` only shrinks the grid (:func:`phase_grid`)."""
    base = default_config(True, engine="coefficients")
    return base.replace(sampling="gram", log_every=0, log_points=0, test="spurious", virtual_test="fresh", seed=2022)


def phase_grid(quick: bool = False) -> dict[str, list]:
    """tau 0.02..0.40 (step 0.02) x SNR log-spaced 0.04..0.4 (as mu_norm = SNR sigma_p sqrt(d)): 20 x 20 cells, so
    n SNR^2 spans 0.3..32 around Han's regime; quick: 4 x 4 cells.  Every method of :data:`METHODS` (the grid field
    ``loss``; entries with other overrides need their own sweep)."""
    base = phase_base(quick)
    taus = [0.05, 0.15, 0.25, 0.35] if quick else [round(0.02 * k, 2) for k in range(1, 21)]
    snrs = np.geomspace(0.04, 0.4, 4 if quick else 20)
    mus = [float(f"{s * base.sigma_p * math.sqrt(base.d):.6g}") for s in snrs]
    return {"loss": [method_key(e) for e in METHODS], "tau": taus, "mu_norm": mus}


def _phase_entries_ok() -> None:
    """The phase map sweeps the field ``loss``: every method entry must differ from the base only in ``loss``
    (and the official defaults), else it needs its own sweep."""
    for e in METHODS:
        extra = {k for k in e if k not in ("label", "key", "loss")}
        if extra and not (
            extra == {"loss_params"}
            and e["loss"] == "elr"
            and dict(method_config(phase_base(), e).loss_params) == dict(phase_base().replace(loss="elr").loss_params)
        ):
            raise ValueError(
                f"method {e['label']!r} sets {sorted(extra)}: the phase map sweeps the field 'loss' "
                "only; give it its own sweep"
            )


def prevention_boundary(fit: np.ndarray, nsnr2: np.ndarray) -> np.ndarray:
    """Per tau (rows of ``fit``, (tau, snr) with snr increasing), the smallest n SNR^2 of the grid from which on
    every cell has at most ``MEM_LEVEL`` of the mislabelled samples fitted (NaN: not even the largest)."""
    out = np.full(fit.shape[0], math.nan)
    for i, row in enumerate(np.asarray(fit)):
        ok = row <= MEM_LEVEL
        tail = np.logical_and.accumulate(ok[::-1])[::-1]  # prevented here and at every larger SNR
        if tail.any():
            out[i] = float(nsnr2[int(np.argmax(tail))])
    return out


def phase_checks(
    grid: Mapping[str, Sequence[Any]], fit: np.ndarray, err: np.ndarray, reps: int, *, n: int, d: int, sigma_p: float
) -> list[Check]:
    """Rows of methods-phase from the per-cell means ``fit`` (final fraction of mislabelled samples fitted) and
    ``err`` (spurious test error), both (methods, tau, mu_norm); ``n``, ``d``, ``sigma_p`` of the base config give
    the SNR = mu_norm / (sigma_p sqrt(d)).  Pure: tests feed fabricated tables."""
    keys = list(grid["loss"])
    labels = {method_key(e): e["label"] for e in METHODS}
    b = keys.index(BASELINE)
    src = "SPEC.md section 9 (predictions derived from the forces); Han et al. 2025 for plain GD"
    checks = []
    share_b = float(np.mean(fit[b] >= MEM_LEVEL))
    checks.append(
        Check(
            "plain GD memorises across the tau x SNR grid (Han et al.: all mislabelled samples are eventually fitted)",
            f"{100 * share_b:.0f}% of the {fit[b].size} cells; mean fraction fitted {float(np.mean(fit[b])):.3f}",
            share_b >= 0.9,
            source=src,
            criterion=f"final fraction of mislabelled samples fitted >= {MEM_LEVEL:g} (mean "
            f"over {reps} replicates) in at least 90% of the cells",
            tolerance="10% of the cells",
        )
    )
    if "elr" in keys:
        e = keys.index("elr")
        snr = np.asarray(grid["mu_norm"], float) / (sigma_p * math.sqrt(d))
        learned = np.broadcast_to(n * snr[None, :] ** 2 >= 1.0, fit[e].shape)  # Han's regime: Stage I exists
        share = float(np.mean(fit[e][learned] <= MEM_LEVEL)) if learned.any() else math.nan
        other = float(np.mean(fit[e][~learned] <= MEM_LEVEL)) if (~learned).any() else math.nan
        checks.append(
            Check(
                "ELR (lam = 3, period 1) prevents memorisation wherever the signal is learned first (n SNR^2 >= 1, "
                "so that its targets are formed by T1)",
                f"prevented in {100 * share:.0f}% of the {int(learned.sum())} cells with n SNR^2 >= 1 (mean fraction "
                f"fitted {float(np.mean(fit[e][learned])) if learned.any() else math.nan:.3f}); in "
                f"{100 * other:.0f}% of the {int((~learned).sum())} cells below",
                bool(learned.any()) and share >= 0.9,
                source=src,
                criterion=f"final fraction of mislabelled samples fitted <= {MEM_LEVEL:g} (mean over {reps} "
                "replicates) in at least 90% of the cells with n SNR^2 >= 1",
                tolerance="10% of the cells",
            )
        )
        gain = float(np.mean(err[b] - err[e]))
        checks.append(
            Check(
                "ELR lowers the spurious test error against plain GD over the grid",
                f"mean over cells of (GD - ELR) {gain:.3f}",
                gain >= 0.05,
                source=src,
                criterion="mean over the cells of (plain GD's - ELR's spurious test error) >= 0.05",
                tolerance="0.05",
            )
        )
    for k in keys:
        if k in (BASELINE, "elr"):
            continue
        i = keys.index(k)
        share = float(np.mean(fit[i] <= MEM_LEVEL))
        checks.append(
            Check(
                f"{labels.get(k, k)} does not prevent memorisation (SPEC.md section 9: it memorises, later or to a "
                "bounded margin)",
                f"prevented in {100 * share:.0f}% of the {fit[i].size} cells; mean fraction fitted "
                f"{float(np.mean(fit[i])):.3f}",
                share <= 0.5,
                source=src,
                criterion=f"final fraction of mislabelled samples fitted <= {MEM_LEVEL:g} in at most half of the cells",
                tolerance="half of the cells",
            )
        )
    return checks


@register(
    "methods-phase",
    "Training methods against label noise: phase map over tau x SNR",
    default_seeds=PHASE_REPLICATES,
    quick_seeds=1,
)
def run_methods_phase(ctx: Context) -> list[Check]:
    """Every training method of SPEC.md section 9 (official defaults; the corrections assume tau = 0.2 whatever the
    data's tau) over the flip rate tau x the SNR, on Han's default config otherwise (printed below as run): where
    memorisation is prevented (the final fraction of mislabelled samples fitted w.r.t. their observed labels) and
    the spurious test error, next to plain GD.  ``--seeds`` is the number of replicates per cell."""
    from ..sweeps import sweep

    _phase_entries_ok()
    base, grid = phase_base(ctx.quick), phase_grid(ctx.quick)
    reps = int(ctx.seeds)
    for k in grid["loss"]:
        for tau in grid["tau"]:
            for mu in grid["mu_norm"]:
                ctx.ran(base.replace(loss=k, tau=tau, mu_norm=mu), runs=reps)
    runs = reps * int(np.prod([len(v) for v in grid.values()]))
    ctx.log(f"methods-phase: {runs} runs ({' x '.join(f'{len(v)} {k}' for k, v in grid.items())} x {reps} replicates)")
    folder = ctx.path_dir(PHASE_SWEEP)
    ex, close = sweep_executor(ctx, runs)
    try:
        resume = (folder / "sweep.csv").is_file()
        try:
            res = sweep(
                base,
                grid,
                replicates=reps,
                executor=ex,
                out=folder,
                resume=resume,
                progress=True,
                metrics=PHASE_METRICS,
                plot=False,
                force=not resume,
            )
        except OutputError as exc:
            if not resume:
                raise
            ctx.log(f"methods-phase: the earlier sweep in {folder} is another one ({exc}); starting afresh")
            res = sweep(
                base,
                grid,
                replicates=reps,
                executor=ex,
                out=folder,
                progress=True,
                metrics=PHASE_METRICS,
                plot=False,
                force=True,
            )
    finally:
        close()
    if res.skipped:
        ctx.notes.append(
            f"Resumed: {res.skipped} of {runs} runs were read from an earlier, interrupted run's "
            f"{PHASE_SWEEP}/sweep.csv."
        )
    ctx.log(f"methods-phase: done in {res.wall_seconds:.1f}s")
    fit = res.values("train_acc_noisy").mean(axis=-1)  # (loss, tau, mu)
    err = res.values("test_error").mean(axis=-1)
    snr = np.array(grid["mu_norm"]) / (base.sigma_p * math.sqrt(base.d))
    write_json(
        ctx.path("methods_phase.json"),
        {
            "base_config": base.to_dict(),
            "grid": grid,
            "replicates": reps,
            "snr": snr,
            "wall_seconds": res.wall_seconds,
            "resumed_runs": res.skipped,
            "sweep_folder": PHASE_SWEEP,
        },
    )
    checks = phase_checks(grid, fit, err, reps, n=base.n, d=base.d, sigma_p=base.sigma_p)
    ctx.notes.append(
        f"Grid: {len(grid['tau'])} tau x {len(grid['mu_norm'])} SNR cells x {reps} replicates per method, "
        f"{base.steps} GD steps, coefficient engine with Gram sampling; the test error is measured once, at the end, "
        f"on {base.n_test} fresh samples of the spurious test distribution (virtual_test='fresh').  Rows are judged "
        "on the per-cell means over the replicates.  The tidy CSV is "
        f"{PHASE_SWEEP}/sweep.csv (one row per run); running the same command again after an interruption resumes "
        f"its finished rows; the sweep took {res.wall_seconds:.1f} s."
    )
    if "elr" in grid["loss"]:
        bound = prevention_boundary(fit[list(grid["loss"]).index("elr")], base.n * snr**2)
        ctx.notes.append(
            "Where ELR prevents memorisation: per tau, the smallest n SNR^2 of the grid from which on "
            "every cell has at most half of the mislabelled samples fitted: "
            + "; ".join(
                f"tau {t:g}: {'none' if not math.isfinite(b) else f'{b:.2f}'}" for t, b in zip(grid["tau"], bound)
            )
            + "."
        )
    if have_matplotlib():
        from ..plotting import methods_phase_figure

        labels = [{method_key(e): e["label"] for e in METHODS}[k] for k in grid["loss"]]
        line = [(1.0 / math.sqrt(base.n), "n SNR$^2$ = 1")]
        sub = f"{base.steps} GD steps, n = {base.n}, mean over {reps} replicate{'s' if reps != 1 else ''} per cell"
        for name, vals, vmax, cmap, cbar, what in (
            (
                "methods_phase_memorisation.png",
                fit,
                1.0,
                "viridis",
                "final fraction of mislabelled samples fitted\n(accuracy w.r.t. the observed labels)",
                "memorisation",
            ),
            (
                "methods_phase_test_error.png",
                err,
                0.5,
                "magma",
                "final test error\n(spurious test distribution)",
                "test error",
            ),
        ):
            fig = methods_phase_figure(
                labels,
                np.array(grid["tau"]),
                snr,
                vals,
                cbar_label=cbar,
                vmax=vmax,
                cmap=cmap,
                title=f"Training methods over tau x SNR: {what} ({sub})",
                hlines=line,
            )
            save_figure(fig, ctx, name)
        ctx.captions["methods_phase_memorisation.png"] = (
            "Per method (plain GD first), over the flip rate tau and the SNR (log scale): the final fraction of "
            "mislabelled samples fitted to their wrong (observed) label; dark = memorisation prevented.  Dashed: "
            "n SNR^2 = 1.  Mean over the replicates per cell."
        )
        ctx.captions["methods_phase_test_error.png"] = (
            "The same runs: the final test error under the spurious test distribution (where memorised noise "
            "hurts), on one colour scale from 0 to 0.5.  Dashed: n SNR^2 = 1."
        )
    return checks
