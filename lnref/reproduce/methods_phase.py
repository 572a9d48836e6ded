"""``lnref reproduce methods-phase``: the training methods over tau x SNR (SPEC.md section 9; issue 22).

A phase map per method: the losses of :data:`lnref.reproduce.methods.METHODS` in one sweep over (loss, tau, SNR)
(:func:`phase_grid`), each selection algorithm of :data:`lnref.reproduce.methods.SELECTION_METHODS` in a sweep of its
own over the same cells (:func:`phase_sweeps`; an algorithm sets other fields than ``loss``), all with the
coefficient engine and Gram sampling through :func:`lnref.sweep` (tidy ``sweep.csv`` in each sweep's folder, and
``methods_phase.csv`` with every run of every method; an interrupted run resumes the finished rows of each sweep
when the same command runs again; ``--dask ADDRESS`` runs them on a cluster).  It draws, per method, the final
fraction of mislabelled samples fitted (memorisation prevented where it is small) and the spurious test error, next
to plain GD; the report judges the rows of :func:`phase_checks`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import Config
from ..io import OutputError, write_json, write_text
from .common import Check, Context, have_matplotlib, register, save_figure, sweep_executor
from .han2025 import default_config
from .methods import ALL_METHODS, METHODS, SELECTION_METHODS, method_config, method_key
from .methods_predictions import BASELINE, MEM_LEVEL

__all__ = [
    "phase_base",
    "phase_grid",
    "phase_sweeps",
    "phase_checks",
    "prevention_boundary",
    "run_methods_phase",
    "PHASE_SWEEP",
    "SELECTION_CLAIMS",
]


# ----------------------------------------------------------------------------------------------- phase map
PHASE_SWEEP = "methods_phase_sweep"
PHASE_REPLICATES = 3  # replicates per cell by default (--seeds); bench/README.md has the wall time
PHASE_METRICS = ("test_error", "train_acc_noisy", "train_acc_clean", "true_acc_noisy")


def phase_base(quick: bool = False) -> Config:
    """Han's regime at han2025's ``--quick`` sizes (:func:`lnref.reproduce.han2025.default_config` with
    ``quick=True``: n = 100, d = 1000, m = 10, 150 steps; the same n/d, so the same n SNR^2, as the full default)
    as a sweep cell: coefficient engine, Gram sampling, nothing logged but the end, the spurious test distribution
    on a fresh virtual test set of n_test samples drawn at the final weights (``virtual_test='fresh'``).  The full
    sizes cost about 10 times more per run (0.06 s against 0.008 s on one core), too much for 20 x 20 cells x 12
    methods x replicates in 10 minutes on 2 cores.  ``quick`` only shrinks the grid (:func:`phase_grid`)."""
    base = default_config(True, engine="coefficients")
    return base.replace(sampling="gram", log_every=0, log_points=0, test="spurious", virtual_test="fresh", seed=2022)


def phase_grid(quick: bool = False) -> dict[str, list]:
    """tau 0.02..0.40 (step 0.02) x SNR log-spaced 0.04..0.4 (as mu_norm = SNR sigma_p sqrt(d)): 20 x 20 cells, so
    n SNR^2 spans 0.3..32 around Han's regime; quick: 4 x 4 cells.  Every method of :data:`METHODS` (the grid field
    ``loss``); the selection algorithms sweep the same tau x mu_norm cells (:func:`phase_sweeps`)."""
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


def phase_sweeps(quick: bool = False) -> list[tuple[str, Config, dict[str, list]]]:
    """The sweeps of the map, as (folder, base config, grid): the losses of :data:`METHODS` in one sweep over
    (loss, tau, mu_norm) (:func:`phase_grid`), then each selection algorithm of :data:`SELECTION_METHODS` in its own
    sweep over (tau, mu_norm) of the same cells, its base being :func:`phase_base` with the method's overrides
    (an algorithm sets other fields than ``loss``, e.g. truncated GCE needs loss='gce')."""
    base, grid = phase_base(quick), phase_grid(quick)
    cells = {"tau": list(grid["tau"]), "mu_norm": list(grid["mu_norm"])}
    out = [(PHASE_SWEEP, base, grid)]
    for e in SELECTION_METHODS:
        out.append((f"{PHASE_SWEEP}_{method_key(e)}", method_config(base, e), dict(cells)))
    return out


def _criterion_text(reps: int) -> str:
    return f"final fraction of mislabelled samples fitted <= {MEM_LEVEL:g} (mean over {reps} replicates)"


def phase_checks(
    grid: Mapping[str, Sequence[Any]], fit: np.ndarray, err: np.ndarray, reps: int, *, n: int, d: int, sigma_p: float
) -> list[Check]:
    """Rows of methods-phase from the per-cell means ``fit`` (final fraction of mislabelled samples fitted) and
    ``err`` (spurious test error), both (methods, tau, mu_norm); ``grid``: ``method`` (or ``loss``) -> the method
    keys in the order of the first axis, ``tau``, ``mu_norm``; ``n``, ``d``, ``sigma_p`` of the base config give
    the SNR = mu_norm / (sigma_p sqrt(d)).  Pure: tests feed fabricated tables."""
    keys = list(grid["method"] if "method" in grid else grid["loss"])
    labels = {method_key(e): e["label"] for e in ALL_METHODS}
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
    snr = np.asarray(grid["mu_norm"], float) / (sigma_p * math.sqrt(d))
    learned = np.broadcast_to(n * snr[None, :] ** 2 >= 1.0, fit[b].shape)  # Han's regime: Stage I exists

    def prevents(i: int, claim: str) -> Check:
        share = float(np.mean(fit[i][learned] <= MEM_LEVEL)) if learned.any() else math.nan
        other = float(np.mean(fit[i][~learned] <= MEM_LEVEL)) if (~learned).any() else math.nan
        return Check(
            claim,
            f"prevented in {100 * share:.0f}% of the {int(learned.sum())} cells with n SNR^2 >= 1 (mean fraction "
            f"fitted {float(np.mean(fit[i][learned])) if learned.any() else math.nan:.3f}); in "
            f"{100 * other:.0f}% of the {int((~learned).sum())} cells below",
            bool(learned.any()) and share >= 0.9,
            source=src,
            criterion=f"{_criterion_text(reps)} in at least 90% of the cells with n SNR^2 >= 1",
            tolerance="10% of the cells",
        )

    def lowers_error(i: int, claim: str) -> Check:
        gain = float(np.mean(err[b] - err[i]))
        return Check(
            claim,
            f"mean over cells of (GD - {labels.get(keys[i], keys[i])}) {gain:.3f}",
            gain >= 0.05,
            source=src,
            criterion="mean over the cells of (plain GD's - the method's spurious test error) >= 0.05",
            tolerance="0.05",
        )

    if "elr" in keys:
        e = keys.index("elr")
        checks.append(
            prevents(
                e,
                "ELR (lam = 3, period 1) prevents memorisation wherever the signal is learned first (n SNR^2 >= 1, "
                "so that its targets are formed by T1)",
            )
        )
        checks.append(lowers_error(e, "ELR lowers the spurious test error against plain GD over the grid"))
    for k, claim in SELECTION_CLAIMS.items():
        if k in keys:
            checks.append(prevents(keys.index(k), claim))
            checks.append(
                lowers_error(
                    keys.index(k), f"{labels.get(k, k)} lowers the spurious test error against plain GD over the grid"
                )
            )
    for k in keys:
        if k in (BASELINE, "elr") or k in SELECTION_CLAIMS:
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


#: the selection algorithms' rows of the map (SPEC.md section 9, "Selection algorithms"): where Stage I exists
#: (n SNR^2 >= 1) the small-loss samples at T1 are the clean ones, so each algorithm keeps the mislabelled samples
#: out of the gradient from then on (truncated GCE only from its first refresh, step 40)
SELECTION_CLAIMS: dict[str, str] = {
    "select_retrain": "selection at T1 (loss < log 2), then retraining from W0 on the selected samples, prevents "
    "memorisation wherever the signal is learned first (n SNR^2 >= 1, so that T1 exists)",
    "truncated_gce": "truncated GCE (k = 1/2, refreshed every 10 steps from step 40) prevents memorisation wherever "
    "the signal is learned first (n SNR^2 >= 1)",
    "coteaching": "co-teaching (forget rate = the flip rate tau, full-batch GD) prevents memorisation wherever the "
    "signal is learned first (n SNR^2 >= 1: the (1 - tau) n smallest losses are the clean samples)",
}


def _run_one_sweep(ctx: Context, name: str, base: Config, grid: dict, reps: int, ex):
    """One sweep of the map into the sub-folder ``name``, resuming its finished rows when its sweep.csv exists
    (an earlier sweep of another grid there is replaced)."""
    from ..sweeps import sweep

    folder = ctx.path_dir(name)
    kw = dict(replicates=reps, executor=ex, out=folder, progress=True, metrics=PHASE_METRICS, plot=False)
    resume = (folder / "sweep.csv").is_file()
    try:
        return sweep(base, grid, resume=resume, force=not resume, **kw)
    except OutputError as exc:
        if not resume:
            raise
        ctx.log(f"methods-phase: the earlier sweep in {folder} is another one ({exc}); starting afresh")
        return sweep(base, grid, force=True, **kw)


def _tidy_rows(key_of, res, snr_of) -> list[str]:
    return [
        f"{key_of(r)},{r['tau']!r},{r['mu_norm']!r},{snr_of(r['mu_norm'])!r},{r['replicate']},{r['seed']},"
        + ",".join(repr(float(r[m])) for m in PHASE_METRICS)
        for r in res.rows
    ]


@register(
    "methods-phase",
    "Training methods against label noise: phase map over tau x SNR",
    default_seeds=PHASE_REPLICATES,
    quick_seeds=1,
)
def run_methods_phase(ctx: Context) -> list[Check]:
    """Every training method of SPEC.md section 9 (official defaults; the corrections assume tau = 0.2 whatever the
    data's tau; co-teaching forgets the data's flip rate) over the flip rate tau x the SNR, on Han's default config
    otherwise (printed below as run): where memorisation is prevented (the final fraction of mislabelled samples
    fitted w.r.t. their observed labels) and the spurious test error, next to plain GD.  The losses and each
    selection algorithm are separate sweeps over the same cells.  ``--seeds`` is the number of replicates per
    cell."""
    _phase_entries_ok()
    sweeps = phase_sweeps(ctx.quick)
    base, grid = sweeps[0][1], sweeps[0][2]
    reps = int(ctx.seeds)
    runs = 0
    for _, b, g in sweeps:
        for values in itertools.product(*g.values()):
            ctx.ran(b.replace(**dict(zip(g, values))), runs=reps)
        runs += reps * math.prod(len(v) for v in g.values())
    keys = list(grid["loss"]) + [method_key(e) for e in SELECTION_METHODS]
    ctx.log(
        f"methods-phase: {runs} runs ({len(keys)} methods x {len(grid['tau'])} tau x {len(grid['mu_norm'])} SNR x "
        f"{reps} replicates)"
    )
    ex, close = sweep_executor(ctx, runs)
    results = []
    try:
        for name, b, g in sweeps:
            results.append(_run_one_sweep(ctx, name, b, g, reps, ex))
    finally:
        close()
    wall = sum(r.wall_seconds for r in results)
    skipped = sum(r.skipped for r in results)
    if skipped:
        ctx.notes.append(
            f"Resumed: {skipped} of {runs} runs were read from an earlier, interrupted run's sweep.csv files "
            f"({', '.join(name + '/sweep.csv' for name, _, _ in sweeps)})."
        )
    ctx.log(f"methods-phase: done in {wall:.1f}s")
    # (methods, tau, mu): the losses' sweep has the method axis first, each selection sweep one method
    fit, err = (
        np.concatenate([results[0].values(m).mean(axis=-1)] + [r.values(m).mean(axis=-1)[None] for r in results[1:]])
        for m in ("train_acc_noisy", "test_error")
    )
    snr = np.array(grid["mu_norm"]) / (base.sigma_p * math.sqrt(base.d))
    snr_of = lambda mu: float(mu) / (base.sigma_p * math.sqrt(base.d))  # noqa: E731
    tidy = [_tidy_rows(lambda r: r["loss"], results[0], snr_of)]
    for res, key in zip(results[1:], keys[len(grid["loss"]) :]):
        tidy.append(_tidy_rows(lambda r, key=key: key, res, snr_of))
    write_text(
        ctx.path("methods_phase.csv"),
        "method,tau,mu_norm,snr,replicate,seed,"
        + ",".join(PHASE_METRICS)
        + "\n"
        + "".join(line + "\n" for part in tidy for line in part),
    )
    write_json(
        ctx.path("methods_phase.json"),
        {
            "base_config": base.to_dict(),
            "grid": grid,
            "methods": keys,
            "sweeps": [
                {"folder": name, "base_config": b.to_dict(), "grid": g, "wall_seconds": r.wall_seconds}
                for (name, b, g), r in zip(sweeps, results)
            ],
            "replicates": reps,
            "snr": snr,
            "wall_seconds": wall,
            "resumed_runs": skipped,
            "sweep_folder": PHASE_SWEEP,
        },
    )
    checks = phase_checks(
        {"method": keys, "tau": grid["tau"], "mu_norm": grid["mu_norm"]},
        fit,
        err,
        reps,
        n=base.n,
        d=base.d,
        sigma_p=base.sigma_p,
    )
    failed = [c.claim for c in checks if c.holds is False]
    ctx.notes.append(
        "Predictions that do not hold in this run: "
        + ("; ".join(f"**{c}**" for c in failed) if failed else "none")
        + ".  Each is lnref's reading of the method's forces (SPEC.md section 9), not a published theorem; the "
        "boundaries below say where each method does prevent memorisation."
    )
    ctx.notes.append(
        f"Grid: {len(grid['tau'])} tau x {len(grid['mu_norm'])} SNR cells x {reps} replicates per method, "
        f"{base.steps} GD steps, coefficient engine with Gram sampling; the test error is measured once, at the end, "
        f"on {base.n_test} fresh samples of the spurious test distribution (virtual_test='fresh').  Rows are judged "
        "on the per-cell means over the replicates.  The losses are one sweep over (loss, tau, SNR) in "
        f"{PHASE_SWEEP}/; each selection algorithm one sweep over (tau, SNR) in "
        f"{', '.join(name + '/' for name, _, _ in sweeps[1:])} (its fields differ from the losses' base: "
        "algorithm, select_then, loss); every run is the final row of lnref.train of its config.  "
        "methods_phase.csv holds every run of every method (one row per run, tidy); running the same command again "
        f"after an interruption resumes the finished rows of each sweep; the sweeps took {wall:.1f} s."
    )
    for k in ("elr", *SELECTION_CLAIMS):
        if k in keys:
            bound = prevention_boundary(fit[keys.index(k)], base.n * snr**2)
            ctx.notes.append(
                f"Where {({method_key(e): e['label'] for e in ALL_METHODS})[k]} prevents memorisation: per tau, the "
                "smallest n SNR^2 of the grid from which on every cell has at most half of the mislabelled samples "
                "fitted: "
                + "; ".join(
                    f"tau {t:g}: {'none' if not math.isfinite(v) else f'{v:.2f}'}" for t, v in zip(grid["tau"], bound)
                )
                + "."
            )
    if have_matplotlib():
        _figures(ctx, keys, grid, snr, fit, err, base, reps)
    return checks


def _figures(ctx: Context, keys, grid, snr, fit, err, base: Config, reps: int) -> None:
    from ..plotting import methods_phase_figure

    names = {method_key(e): e["label"] for e in ALL_METHODS}
    labels = [names[k] for k in keys]
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
            ncols=4,
        )
        save_figure(fig, ctx, name)
    n_loss = len(grid["loss"])
    sel = ", ".join(labels[n_loss:])
    ctx.captions["methods_phase_memorisation.png"] = (
        f"Per method (plain GD first, then the other losses, then the selection algorithms: {sel}), over the flip "
        "rate tau and the SNR (log scale): the final fraction of mislabelled samples fitted to their wrong (observed) "
        "label; dark = memorisation prevented.  Dashed: n SNR^2 = 1.  Mean over the replicates per cell."
    )
    ctx.captions["methods_phase_test_error.png"] = (
        "The same runs: the final test error under the spurious test distribution (where memorised noise "
        "hurts), on one colour scale from 0 to 0.5.  Dashed: n SNR^2 = 1."
    )
