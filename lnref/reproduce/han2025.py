"""Han et al. (2025): the two stages of feature learning under label noise (SPEC.md section 6).

``lnref reproduce han2025`` (the default reproduction) trains one config twice, with label noise (tau = 0.2)
and without (tau = 0), and draws Han's Figure 1: signal learning and noise memorisation (top), training accuracy
overall / clean / mislabelled (bottom), the detected stage boundaries as vertical lines.
``lnref reproduce han2025-selection`` adds early stopping and small-loss selection on the same config, with the
test accuracy under the ``iid`` and the ``spurious`` test distributions.

Default config (Han's regime n SNR^2 = Theta(1); SPEC.md's suggestion, kept after exploring)::

    n=200, d=2000, m=20, q=1 (ReLU), sigma0=0.01, sigma_p=0.5, mu_norm=4, eta=0.5, tau=0.2 (exact flips),
    orthogonal noise, 200 GD steps, 60 log-spaced logged steps, 500 iid test samples.

SNR = 4 / (0.5 sqrt(2000)) = 0.179 and n SNR^2 = 6.4.  Han's T1 ~ n m / (eta sigma_p^2 d) = 16 (up to log
factors).  With seed 0 the run fits every clean sample while no mislabelled one is fitted at t = 7 (T1), the first
mislabelled sample is fitted at t = 23 and all of them by t = 140 (T2): the stages are separated by a factor of
~3 on the log time axis; over seeds 0-4, T1 = 4.2 +- 0.9, first mislabelled fit 26 +- 2, T2 = 134 +- 8
(runs/han2025/report.md has the numbers of the last run).  Smaller ||mu|| (3) shortens the gap between T1 and the
first mislabelled fit; larger sigma0 blurs Stage I (random features fit some mislabelled samples at initialisation
for longer).
``--quick`` halves n, d and m (same n/d, so the same n SNR^2) and runs 150 steps; report.md prints the config
as run (from the runs' ``Result.config``).

Seeds: 20 by default (3 with ``--quick``; ``--seeds K``).  Every report row states a criterion with its tolerance
(the module constants below: ``STAGE_GAP``, ``SIGNAL_GAP``, ``LOSS_DROP``, ``GAMMA_KEEP``,
``CLEAN_ACC``, ``SEL_MIN``, ``IID_DROP``, ``ES_GAIN``), is judged in every seed, and holds when it holds in at least
``MIN_RATE`` = 80% of the seeds (:func:`lnref.reproduce.common.seed_check`, rule ``"rate"``); the holds column gives
the count and the one-sided 95% Clopper-Pearson lower bound on the per-seed rate, the measured column mean +-
standard error over the seeds.  Why a rate: Han et al.'s statements hold with high probability at finite n and d.
Over seeds 0-39 of the default config, seed 6 has no T1: one of its 40 mislabelled samples starts with a positive
margin from the random features of W0 and its memorised noise keeps it fitted, so it is never predicted as its
true label (with sigma0 = 0.003 or 0.001 no seed of 0-39 lacks T1); seeds 6 and 10 have no T2 by step 200 (a last
mislabelled sample still unfitted).  With "every seed must hold" the headline was 9 of 9 at 5 seeds and 1 of 9 at
8, 12 and 20 seeds; as a rate, the same 9 of 9 rows hold at 5, 8, 12 and 20 seeds (and han2025-selection's 5 of 5
likewise).  The default of 20 seeds is the smallest of those at which the 95% lower bound on a row's per-seed
rate can reach the 80% criterion (20 of 20 seeds: 0.86; 5 of 5 seeds only shows a rate above 0.55); it costs
about twice the wall time of 5 seeds (most of a run is start-up).

Authors' code: Han et al.'s public repository (zzp1012/label-noise-theory) holds their CIFAR-10 experiments only,
no script for the synthetic Figure 1, so this reproduction follows the paper's text and SPEC.md section 6.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import Config
from ..data import make_data, make_test
from ..io import write_json, write_text
from ..training import train
from ..training.runs import metrics_csv
from ..training.stages import LOG2, detect_stages, early_stopping, small_loss_selection
from .common import AUTHORS_CODE, Check, Context, fmt_mean_se, have_matplotlib, register, save_figure, seed_check

__all__ = ["default_config", "ENGINE", "theory_t1"]

TAU = 0.2
# the tolerances of the report's criteria (stated in every row; module docstring)
STAGE_GAP = 2.0  # first mislabelled fit at least this many times T1
SIGNAL_GAP = 1.25  # at T1, max gamma at least this many times the mislabelled samples' max rho_bar
LOSS_DROP = 0.5  # Stage II: final loss at most this fraction of the loss at T1
GAMMA_KEEP = 0.5  # Stage II: max gamma never below this fraction of its value at T1
CLEAN_ACC = 0.9  # tau = 0: final iid test accuracy at least this
SEL_MIN = 0.95  # selection: precision and recall at least this at Han's time scale
IID_DROP = 0.05  # selection: iid best minus final accuracy below this
ES_GAIN = 0.05  # selection: spurious accuracy at T1 minus final at least this
# Every row is a rate over the seeds: it holds when its criterion holds in at least this fraction of them (the
# theorems hold with high probability at finite n and d, not in every draw; see the module docstring).
MIN_RATE = 0.8
# default number of seeds of han2025 (see the module docstring for how it was chosen)
DEFAULT_SEEDS = 20


def default_config(quick: bool = False, seed: int = 0, engine: str = "weights") -> Config:
    """The documented default config (module docstring); ``quick`` halves n, d, m."""
    shared = dict(q=1.0, sigma0=0.01, sigma_p=0.5, mu_norm=4.0, eta=0.5, tau=TAU, flips="exact", log_every=0)
    if quick:
        sizes = dict(n=100, d=1000, m=10, steps=150, log_points=50, n_test=300)
    else:
        sizes = dict(n=200, d=2000, m=20, steps=200, log_points=60, n_test=500)
    return Config(**shared, **sizes, seed=seed, engine=engine)


def theory_t1(cfg: Config) -> float:
    """Han's Stage I time scale n m / (eta sigma_p^2 d), without the log factors (SPEC.md section 6)."""
    return cfg.n * cfg.m / (cfg.eta * cfg.sigma_p**2 * cfg.d)


# The reproductions run the coefficient engine: exact GD whose cost per step does not depend on d (it agrees with
# the weight engine to rtol 1e-10 over 1000 steps: tests/test_coefficients.py).
ENGINE = "coefficients"


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def _seq(vals) -> str:
    return ", ".join(_fmt(v) for v in vals)


def _at(history: dict, column: str, step: int | None) -> float:
    if step is None:
        return math.nan
    idx = np.flatnonzero(history["step"] == step)
    return float(history[column][idx[0]]) if idx.size else math.nan


def _runs(ctx: Context, taus: tuple[float, ...], spurious: bool) -> tuple[Config, dict]:
    """Train the default config for every seed and tau; returns {(tau, seed): (Result, Stages)}."""
    engine = ENGINE
    base = default_config(ctx.quick, engine=engine)
    ctx.log(
        f"han2025: engine={engine}, n={base.n}, d={base.d}, m={base.m}, steps={base.steps}, "
        f"n SNR^2={base.n * base.snr**2:.3g}, seeds={ctx.seeds}"
    )
    out = {}
    for seed in range(ctx.seeds):
        for tau in taus:
            cfg = base.replace(seed=seed, tau=tau)
            extra = None
            if spurious:
                data = make_data(cfg)
                extra = {"spurious": make_test(cfg, data, kind="spurious")}
                res = train(cfg, data, threads=ctx.threads, extra_tests=extra, keep_rho=False)
            else:
                res = train(cfg, threads=ctx.threads, keep_rho=False)
            st = detect_stages(res)
            ctx.ran(res.config)
            ctx.log(
                f"  seed {seed} tau {tau}: t1={st.t1} first_noisy_fit={st.first_noisy_fit} t2={st.t2} "
                f"({res.timings['train']:.1f}s)"
            )
            out[(tau, seed)] = (res, st)
    return base, out


def _write_histories(ctx: Context, runs: dict, prefix: str) -> None:
    for (tau, seed), (res, _) in runs.items():
        write_text(ctx.path(f"{prefix}_tau{tau:g}_seed{seed}.csv"), metrics_csv(res.history))


SOURCE = "Han et al. 2025 (ICML), Section 4 and Figure 1; SPEC.md section 6"


def _check(claim: str, **kw) -> Check:
    """A row judged as a rate over the seeds: it holds when its criterion holds in at least MIN_RATE of them."""
    return seed_check(claim, rule="rate", min_rate=MIN_RATE, **kw)


def han_checks(base: Config, noisy: list, clean_runs: list) -> list[Check]:
    """The report rows of ``han2025`` from logged histories, one entry per seed.

    Parameters
    ----------
    base : Config          the config (n, m, eta, sigma_p, d, steps give the theory scale and the last step)
    noisy : list of (history, Stages)        the runs with label noise (tau > 0), one per seed
    clean_runs : list of (history, Stages)   the runs without label noise (tau = 0), one per seed

    Returns
    -------
    list of Check, judged seed by seed (:func:`lnref.reproduce.common.seed_check`).  Pure: tests feed it
    synthetic histories that violate a criterion.
    """
    t_th = theory_t1(base)
    checks: list[Check] = []
    t1s = [st.t1 for _, st in noisy]
    starts = [st.first_noisy_fit for _, st in noisy]
    t2s = [st.t2 for _, st in noisy]
    steps_logged = noisy[0][0]["step"]
    t_near = int(steps_logged[int(np.argmin(np.abs(steps_logged - t_th)))])
    in_stage1 = [t1 is not None and t1 <= t_near and (s2 is None or t_near < s2) for t1, s2 in zip(t1s, starts)]
    checks.append(
        _check(
            "Han 2025, Stage I: with label noise, on Han's time scale every clean sample is fitted while every "
            "mislabelled sample is still predicted as its true label",
            source=SOURCE,
            criterion=f"the Stage I condition holds at the logged step {t_near} nearest the theory "
            f"scale n m/(eta sigma_p^2 d) = {t_th:.3g}: T1 <= {t_near} < first mislabelled fit",
            tolerance="the scale without its log factors; the window [T1, first mislabelled fit)",
            per_seed=in_stage1,
            measured=f"T1 = {fmt_mean_se(t1s)}; first mislabelled fit {fmt_mean_se(starts)}",
        )
    )
    gaps = [None if (a is None or b is None) else b / a for a, b in zip(t1s, starts)]
    checks.append(
        _check(
            "Han 2025, the stages are separated: mislabelled samples start being fitted only well after T1",
            source=SOURCE,
            criterion=f"first mislabelled fit >= {STAGE_GAP:g} x T1 (a gap on the log time axis)",
            tolerance=f"factor {STAGE_GAP:g}",
            per_seed=[g is not None and g >= STAGE_GAP for g in gaps],
            measured=f"first mislabelled fit {fmt_mean_se(starts)}; ratio to T1 {fmt_mean_se(gaps)}",
        )
    )
    checks.append(
        _check(
            "Han 2025, Stage II: the noise of the mislabelled samples is memorised until all of them are fitted (T2)",
            source=SOURCE,
            criterion=f"every mislabelled sample fitted by the last step ({base.steps}), after the "
            "first mislabelled fit",
            tolerance="none (all of them)",
            per_seed=[t is not None and a is not None and t >= a for t, a in zip(t2s, starts)],
            measured=f"T2 = {fmt_mean_se(t2s)}; final fraction of mislabelled fitted "
            f"{fmt_mean_se([float(h['train_acc_noisy'][-1]) for h, _ in noisy])}",
        )
    )
    g_t1 = [_at(h, "gamma_max", st.t1) for h, st in noisy]
    r_t1 = [_at(h, "rho_bar_max_noisy", st.t1) for h, st in noisy]
    ratio = [g / r if r > 0 else (math.inf if g > 0 else math.nan) for g, r in zip(g_t1, r_t1)]
    checks.append(
        _check(
            "Han 2025, at T1 the signal exceeds every mislabelled sample's memorised noise",
            source=SOURCE,
            criterion=f"max_{{j,r}} gamma >= {SIGNAL_GAP:g} x max_{{i in S_f, j, r}} rho_bar at T1",
            tolerance=f"a margin of {100 * (SIGNAL_GAP - 1):.0f}%",
            per_seed=[x >= SIGNAL_GAP for x in ratio],
            measured=f"max gamma {fmt_mean_se(g_t1)}; max rho_bar (mislabelled) {fmt_mean_se(r_t1)}; "
            f"ratio {fmt_mean_se(ratio)}",
        )
    )
    test_t1 = [1 - _at(h, "test_acc", st.t1) for h, st in noisy]
    checks.append(
        _check(
            "Han 2025, the test error at T1 is small",
            source=SOURCE,
            criterion=f"iid test error at T1 < tau/2 = {TAU / 2:g}",
            tolerance=f"tau/2 = {TAU / 2:g}",
            per_seed=[e < TAU / 2 for e in test_t1],
            measured=f"iid test error at T1 {fmt_mean_se(test_t1)}",
        )
    )
    stay, falls, keep, loss_ratio, g_ratio = [], [], [], [], []
    for h, st in noisy:
        if st.t1 is None:
            stay.append(False), falls.append(False), keep.append(False)
            loss_ratio.append(math.nan), g_ratio.append(math.nan)
            continue
        after = h["step"] >= st.t1
        stay.append(bool(np.all(st.clean_fitted[after] == st.n_clean)))
        loss = h["loss"][after]
        loss_ratio.append(float(loss[-1] / loss[0]))
        falls.append(bool(np.all(np.diff(loss) < 0)) and loss[-1] <= LOSS_DROP * loss[0])
        g = h["gamma_max"][after]
        g_ratio.append(float(g.min() / g[0]))
        keep.append(bool(np.all(g >= GAMMA_KEEP * g[0])))
    checks.append(
        _check(
            "Han 2025, Stage II: the clean samples stay fitted after T1",
            source=SOURCE,
            criterion="every clean sample fitted at every logged step >= T1",
            tolerance="none (no clean sample lost)",
            per_seed=stay,
            measured=f"{sum(stay)} of {len(stay)} seeds keep every clean sample fitted",
        )
    )
    checks.append(
        _check(
            "Han 2025, Stage II: the training loss keeps falling",
            source=SOURCE,
            criterion=f"loss strictly decreasing over the logged steps >= T1 and final loss <= {LOSS_DROP:g} x loss "
            "at T1",
            tolerance=f"factor {LOSS_DROP:g}",
            per_seed=falls,
            measured=f"final / T1 loss {fmt_mean_se(loss_ratio)}; final loss "
            f"{fmt_mean_se([float(h['loss'][-1]) for h, _ in noisy])}",
        )
    )
    checks.append(
        _check(
            "Han 2025, Stage II: the signal may shrink but is not lost",
            source=SOURCE,
            criterion=f"max_{{j,r}} gamma at every logged step >= T1 is >= {GAMMA_KEEP:g} x its value at T1",
            tolerance=f"factor {GAMMA_KEEP:g}",
            per_seed=keep,
            measured=f"min over steps >= T1 of max gamma, over its value at T1: {fmt_mean_se(g_ratio)}",
        )
    )
    # tau = 0: one stage.  After T1 (every sample fitted) no sample is lost and the signal stays ahead of every
    # sample's memorised noise; with label noise the mislabelled samples' rho_bar overtakes gamma in Stage II
    # (the same criterion fails on the tau > 0 runs: tests/test_reproduce.py).
    one, lead, acc0 = [], [], []
    for h, st in clean_runs:
        acc0.append(float(h["test_acc"][-1]))
        if st.t1 is None:
            one.append(False), lead.append(math.nan)
            continue
        after = h["step"] >= st.t1
        rho = np.fmax(h["rho_bar_max_clean"][after], h["rho_bar_max_noisy"][after])
        ratio_t = h["gamma_max"][after] / rho
        lead.append(float(np.nanmin(ratio_t)))
        kept = bool(np.all(st.clean_fitted[after] + st.noisy_fitted[after] == st.n_clean + st.n_noisy))
        one.append(kept and bool(np.all(ratio_t >= SIGNAL_GAP)))
    checks.append(
        _check(
            "Han 2025, without label noise (tau = 0): one stage; once every sample is fitted none is lost, no "
            "memorisation stage follows (the signal stays ahead of every sample's memorised noise) and the network "
            "generalises",
            source=SOURCE,
            criterion=f"at every logged step >= T1 every sample is fitted and max_{{j,r}} gamma >= {SIGNAL_GAP:g} x "
            f"max_{{i, j, r}} rho_bar; final iid test accuracy >= {CLEAN_ACC:g}",
            tolerance=f"a margin of {100 * (SIGNAL_GAP - 1):.0f}%; accuracy {CLEAN_ACC:g}",
            per_seed=[a and c >= CLEAN_ACC for a, c in zip(one, acc0)],
            measured=f"all fitted at step {fmt_mean_se([st.t1 for _, st in clean_runs])}; min over steps >= T1 of "
            f"max gamma / max rho_bar {fmt_mean_se(lead)} (with label noise it falls below 1 in Stage II); final iid "
            f"test accuracy {fmt_mean_se(acc0)}",
        )
    )

    return checks


def seed_notes(base: Config, noisy: list) -> list[str]:
    """Markdown notes on the seeds with label noise where T1 or T2 does not exist, with what happened there,
    computed from the runs (``noisy``: (Result, Stages) per seed, in seed order)."""
    no_t1, no_t2 = [], []
    for seed, (res, st) in enumerate(noisy):
        fit = res.trace["margin"] > 0
        clean = res.data.clean
        if st.t1 is None:
            always = int(np.all(fit[:, ~clean], axis=0).sum())
            never_all = not bool(np.any(fit[:, clean].all(axis=1)))
            why = []
            if always:
                why.append(
                    f"{always} mislabelled sample{'s' if always != 1 else ''} fitted at every logged step "
                    "from the random initialisation on (never predicted as its true label)"
                )
            if never_all:
                why.append("the clean samples are never all fitted at once")
            no_t1.append(f"seed {seed} ({'; '.join(why) or 'clean and mislabelled samples fitted together'})")
        elif st.t2 is None:
            left = res.trace["margin"][-1][~clean]
            left = left[left <= 0]
            no_t2.append(
                f"seed {seed} ({left.size} mislabelled sample{'s' if left.size != 1 else ''} not yet "
                f"fitted at step {base.steps}, margin {_seq(np.round(left, 3))})"
            )
    notes = []
    if no_t1:
        notes.append(
            f"Seeds without T1 ({len(no_t1)} of {len(noisy)}): {'; '.join(no_t1)}.  This is a finite-sample event "
            "of the initialisation that the theory allows, not a definition that misses Stage I: such a sample "
            "starts with a positive margin from the random features of W0 (sigma0 = "
            f"{base.sigma0:g}), the growing signal pulls its margin down but its own memorised noise lifts it "
            "again before it crosses 0, so it is never predicted as its true label.  Han et al.'s theorems hold "
            "with high probability for a small enough initialisation; with sigma0 = 0.003 or 0.001 no seed of "
            "0-39 lacks T1 (measured), at sigma0 = 0.01 seed 6 of 0-39 does.  The rows that need T1 count "
            "such a seed as not holding."
        )
    if no_t2:
        notes.append(
            f"Seeds with T1 but without T2 ({len(no_t2)} of {len(noisy)}): {'; '.join(no_t2)}: the run ends "
            "before the last mislabelled sample is fitted (a finite horizon, not a missing Stage II)."
        )
    return notes


IID_NOTE = (
    "Why the iid test accuracy stays near 1 through Stage II: the mislabelled samples are fitted by memorising "
    "their own noise vectors xi_i, which are nearly orthogonal to the noise of a fresh sample (|<xi_i, xi>| is "
    "of order sigma_p^2 sqrt(d), against ||xi_i||^2 of order sigma_p^2 d), so the memorised noise barely moves the "
    "predictions on new iid samples, while the signal gamma, which decides them, stays large (the rows above).  "
    "The harm that Han et al.'s headline is about shows where a test sample's noise overlaps the training noise: "
    "the spurious test distribution (SPEC.md section 1), whose error rises to about the flip rate in Stage II, "
    "and early stopping near T1 avoids it.  `lnref reproduce han2025-selection` measures both (its rows on the "
    "spurious test error and on stopping at T1)."
)

RATE_NOTE = (
    "Each row is a rate over the seeds: it holds when its criterion holds in at least {pct}% of the {k} seeds, "
    "and the holds column gives the count and the one-sided 95% Clopper-Pearson lower bound on the per-seed rate. "
    "Han et al.'s statements hold with high probability at finite n and d, not in every draw; a rule that every "
    "seed must hold makes the verdict depend on the number of seeds (each added seed is one more chance of a "
    "rare event)."
)


@register(
    "han2025",
    "Han et al. 2025: two stages of GD under label noise (Figure 1)",
    default_seeds=DEFAULT_SEEDS,
    quick_seeds=3,
)
def run_han2025(ctx: Context) -> list[Check]:
    """Han et al. (2025), Figure 1: with label noise (tau > 0) GD first fits the clean samples while every
    mislabelled sample is still predicted as its true label (Stage I, up to T1), then memorises the noise of
    the mislabelled samples until they are fitted too (Stage II, from T1 to T2); without label noise (tau = 0)
    there is one stage.  The config (Han's regime n SNR^2 = Theta(1), lnref.reproduce.han2025) is printed below
    as it was run; the figure shows seed 0 and the range over the seeds."""
    base, runs = _runs(ctx, (TAU, 0.0), spurious=False)
    _write_histories(ctx, runs, "metrics")
    seeds = range(ctx.seeds)
    noisy = [runs[(TAU, s)] for s in seeds]
    clean_runs = [runs[(0.0, s)] for s in seeds]
    t_th = theory_t1(base)
    summary = {
        "config": base.to_dict(),
        "engine": base.engine,
        "theory_t1": t_th,
        "stages": {f"tau{tau:g}_seed{s}": st.summary() for (tau, s), (_, st) in runs.items()},
    }
    write_json(ctx.path("stages.json"), summary)

    checks = han_checks(base, [(r.history, st) for r, st in noisy], [(r.history, st) for r, st in clean_runs])
    ctx.notes.append(RATE_NOTE.format(pct=f"{100 * MIN_RATE:.0f}", k=ctx.seeds))
    ctx.notes.extend(seed_notes(base, noisy))
    ctx.notes.append(IID_NOTE)
    ctx.notes.append(f"Authors' code: {AUTHORS_CODE['han2025']}")

    if have_matplotlib():
        from ..plotting import han_figure

        k = ctx.seeds
        panels = [
            {
                "title": rf"label noise $\tau$ = {TAU:g}",
                "history": runs[(TAU, 0)][0].history,
                "stages": runs[(TAU, 0)][1],
                "spread": [r.history for r, _ in noisy],
            },
            {
                "title": r"no label noise, $\tau$ = 0",
                "history": runs[(0.0, 0)][0].history,
                "stages": None,
                "spread": [r.history for r, _ in clean_runs],
            },
        ]
        save_figure(han_figure(panels), ctx, "han2025_figure1.png")
        ctx.captions["han2025_figure1.png"] = (
            f"Han et al.'s Figure 1 on lnref's default config, with label noise (left, tau = {TAU:g}) and without "
            f"(right).  Lines: seed 0; shaded bands: the range (min to max) over the {k} seed"
            f"{'s' if k != 1 else ''} at each logged step.  Top: signal learning max gamma and noise memorisation "
            "(max rho_bar, and the mean over samples of max rho) on clean and on mislabelled samples, log scale. "
            "Bottom: training accuracy with respect to the observed labels (all, clean, mislabelled) and iid test "
            "accuracy.  Stage I is shaded green up to T1 (seed 0), Stage II orange from T1 to T2; the dotted line "
            "inside Stage II is the first fit of a mislabelled sample, not the start of Stage II."
        )
    else:
        ctx.log("han2025: matplotlib is not installed; no figure (data written)")
    return checks


@register(
    "han2025-selection",
    "Han et al. 2025: early stopping and small-loss selection",
    default_seeds=DEFAULT_SEEDS,
    quick_seeds=3,
)
def run_han2025_selection(ctx: Context) -> list[Check]:
    """Han et al. (2025): small-loss selection (loss < log 2) as a detector of the clean samples over training,
    test accuracy under the iid and the spurious test distributions, and the early-stopping step against the
    final step.  Same config as han2025 with label noise (printed below as run); the figure shows seed 0."""
    base, runs = _runs(ctx, (TAU,), spurious=True)
    ctx.uses.add("sigma_zeta")  # the extra spurious test set reads it although the config's test is iid
    _write_histories(ctx, runs, "metrics")
    seeds = range(ctx.seeds)
    t_theory = theory_t1(base)
    rows, checks = [], []
    per_seed = []
    for s in seeds:
        res, st = runs[(TAU, s)]
        h = res.history
        sel = small_loss_selection(res)
        steps = h["step"]
        # the logged step nearest Han's time scale n m/(eta sigma_p^2 d)
        i_th = int(np.argmin(np.abs(steps - t_theory)))
        at_th = sel.at(int(steps[i_th]))
        es_iid = early_stopping(steps, h["test_acc"], st.t1)
        es_sp = early_stopping(steps, h["test_acc_spurious"], st.t1)
        per_seed.append(
            dict(
                seed=s,
                stages=st.summary(),
                selection_at_theory_t1=at_th,
                selection_at_t1=None if st.t1 is None else sel.at(st.t1),
                early_stopping_iid=es_iid.summary(),
                early_stopping_spurious=es_sp.summary(),
            )
        )
        for i in range(steps.size):
            rows.append(
                f"{s},{int(steps[i])},{sel.selected[i]},{sel.precision[i]!r},{sel.recall[i]!r},"
                f"{sel.noisy_rejected[i]!r},{h['test_acc'][i]!r},{h['test_acc_spurious'][i]!r}"
            )
        if s == 0:
            fig_args = (h, sel, st)
    write_text(
        ctx.path("selection.csv"),
        "seed,step,selected,precision,recall,noisy_rejected,test_acc_iid,test_acc_spurious\n" + "\n".join(rows) + "\n",
    )
    write_json(
        ctx.path("selection.json"),
        {"config": base.to_dict(), "threshold": LOG2, "theory_t1": t_theory, "per_seed": per_seed},
    )

    sel_src = "Han et al. 2025 (ICML), Section 5 (sample selection, early stopping); SPEC.md section 6"
    pr = [(p["selection_at_theory_t1"]["precision"], p["selection_at_theory_t1"]["recall"]) for p in per_seed]
    checks.append(
        _check(
            "Han 2025, small-loss selection (loss < log 2) separates clean from mislabelled samples in Stage I",
            source=sel_src,
            criterion=f"at the logged step nearest n m/(eta sigma_p^2 d) = {t_theory:.3g}: precision "
            f">= {SEL_MIN:g} and recall >= {SEL_MIN:g} of 'loss < log 2' as a detector of clean samples",
            tolerance=f"{SEL_MIN:g}",
            per_seed=[a >= SEL_MIN and b >= SEL_MIN for a, b in pr],
            measured=f"precision {fmt_mean_se([a for a, _ in pr])}; recall {fmt_mean_se([b for _, b in pr])}",
        )
    )
    es_best = [(p["early_stopping_spurious"]["best_step"], p["stages"]["first_noisy_fit"]) for p in per_seed]
    checks.append(
        _check(
            "Han 2025, early stopping: the best step by spurious-test accuracy lies in Stage I",
            source=sel_src,
            criterion="best step (first step of the highest spurious-test accuracy) < first mislabelled fit",
            tolerance="none (strictly before)",
            per_seed=[b is not None and a < b for a, b in es_best],
            measured=f"best step {fmt_mean_se([a for a, _ in es_best])}; first mislabelled fit "
            f"{fmt_mean_se([b for _, b in es_best])}",
        )
    )
    floor = 0.5 * min(base.tau_plus, base.tau_minus)
    sp_final = [1 - p["early_stopping_spurious"]["final_accuracy"] for p in per_seed]
    sp_stop = [1 - p["early_stopping_spurious"]["stop_accuracy"] for p in per_seed]
    checks.append(
        _check(
            "Han 2025, Stage II: under the spurious test distribution the test error rises",
            source=sel_src,
            criterion=f"spurious test error at the last step >= 0.5 min(tau_plus, tau_minus) = {floor:g}",
            tolerance=f"half the flip rate ({floor:g})",
            per_seed=[e >= floor for e in sp_final],
            measured=f"spurious test error at T1 {fmt_mean_se(sp_stop)}; at the last step {fmt_mean_se(sp_final)}",
        )
    )
    iid_drop = [p["early_stopping_iid"]["gain"] for p in per_seed]
    checks.append(
        _check(
            "Han 2025 (with SPEC.md's iid test set): the iid test accuracy does not fall by much in Stage II",
            source=sel_src,
            criterion=f"best minus final iid test accuracy < {IID_DROP:g}",
            tolerance=f"{IID_DROP:g}",
            per_seed=[g < IID_DROP for g in iid_drop],
            measured=f"best - final {fmt_mean_se(iid_drop)}; final iid accuracy "
            f"{fmt_mean_se([p['early_stopping_iid']['final_accuracy'] for p in per_seed])}",
        )
    )
    es_gain = [
        p["early_stopping_spurious"]["stop_accuracy"] - p["early_stopping_spurious"]["final_accuracy"] for p in per_seed
    ]
    checks.append(
        _check(
            "Han 2025, stopping at T1 beats training to the end (spurious test distribution)",
            source=sel_src,
            criterion=f"spurious test accuracy at T1 minus at the last step >= {ES_GAIN:g}",
            tolerance=f"{ES_GAIN:g}",
            per_seed=[g >= ES_GAIN for g in es_gain],
            measured=f"accuracy at T1 - final {fmt_mean_se(es_gain)}",
        )
    )

    ctx.notes.append(RATE_NOTE.format(pct=f"{100 * MIN_RATE:.0f}", k=ctx.seeds))
    ctx.notes.extend(seed_notes(base, [runs[(TAU, s)] for s in seeds]))
    if have_matplotlib():
        from ..plotting import selection_figure

        h, sel, st = fig_args
        fig = selection_figure(
            h,
            sel,
            st,
            {"iid": "test_acc", "spurious": "test_acc_spurious"},
            title=rf"test accuracy, label noise $\tau$ = {TAU:g} (seed 0)",
        )
        save_figure(fig, ctx, "han2025_selection.png")
        ctx.captions["han2025_selection.png"] = (
            "Seed 0 with label noise.  Left: small-loss selection (loss < log 2, i.e. the fitted samples) as a "
            "detector of the clean samples: precision, recall and the fraction of mislabelled samples rejected.  "
            "Right: test accuracy under the iid and the spurious test distributions.  Stage I is shaded green up to "
            "T1, Stage II orange from T1 to T2; the dotted line inside Stage II is the first fit of a mislabelled "
            "sample."
        )
    else:
        ctx.log("han2025-selection: matplotlib is not installed; no figure (data written)")
    return checks
