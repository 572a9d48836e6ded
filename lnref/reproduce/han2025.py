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
~3 on the log time axis (runs/han2025/report.md has the numbers of the last run).  Smaller ||mu|| (3) shortens the gap between T1 and the first mislabelled fit;
larger sigma0 blurs Stage I (random features fit some mislabelled samples at initialisation for longer).
``--quick`` halves n, d and m (same n/d, so the same n SNR^2) and runs 150 steps.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np

from ..config import Config
from ..data import make_data, make_test
from ..io import write_json, write_text
from ..runs import metrics_csv
from ..stages import LOG2, detect_stages, early_stopping, small_loss_selection
from ..training import train
from .common import Check, Context, have_matplotlib, register, save_figure

__all__ = ["default_config", "choose_engine", "theory_t1"]

TAU = 0.2


def default_config(quick: bool = False, seed: int = 0, engine: str = "weights") -> Config:
    """The documented default config (module docstring); ``quick`` halves n, d, m."""
    if quick:
        return Config(n=100, d=1000, m=10, q=1.0, sigma0=0.01, sigma_p=0.5, mu_norm=4.0, eta=0.5, tau=TAU,
                      flips="exact", steps=150, log_every=0, log_points=50, n_test=300, seed=seed, engine=engine)
    return Config(n=200, d=2000, m=20, q=1.0, sigma0=0.01, sigma_p=0.5, mu_norm=4.0, eta=0.5, tau=TAU,
                  flips="exact", steps=200, log_every=0, log_points=60, n_test=500, seed=seed, engine=engine)


def theory_t1(cfg: Config) -> float:
    """Han's Stage I time scale n m / (eta sigma_p^2 d), without the log factors (SPEC.md section 6)."""
    return cfg.n * cfg.m / (cfg.eta * cfg.sigma_p ** 2 * cfg.d)


_ENGINE_CACHE: dict[str, str] = {}


def choose_engine() -> str:
    """'coefficients' when lnref.engines.coefficients exists and agrees with 'weights' on a tiny run, else 'weights'.

    The coefficient engine's cost does not depend on d, so for d >> n it is the faster one; the agreement check
    (margins within 1e-8 relative after 20 steps) keeps a half-built engine from producing a report.
    """
    if "engine" in _ENGINE_CACHE:
        return _ENGINE_CACHE["engine"]
    choice = "weights"
    if importlib.util.find_spec("lnref.engines.coefficients") is not None:
        try:
            tiny = Config(n=12, d=40, m=3, steps=20, n_test=0, tau=0.2, seed=1)
            a = train(tiny, threads=1).trace["margin"]
            b = train(tiny.replace(engine="coefficients"), threads=1).trace["margin"]
            if a.shape == b.shape and np.allclose(a, b, rtol=1e-8, atol=1e-10):
                choice = "coefficients"
        except Exception:  # noqa: BLE001 - any failure means: not usable yet
            choice = "weights"
    _ENGINE_CACHE["engine"] = choice
    return choice


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
    engine = choose_engine()
    base = default_config(ctx.quick, engine=engine)
    ctx.log(f"han2025: engine={engine}, n={base.n}, d={base.d}, m={base.m}, steps={base.steps}, "
            f"n SNR^2={base.n * base.snr ** 2:.3g}, seeds={ctx.seeds}")
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
            ctx.log(f"  seed {seed} tau {tau}: t1={st.t1} stage2_start={st.stage2_start} t2={st.t2} "
                    f"({res.timings['train']:.1f}s)")
            out[(tau, seed)] = (res, st)
    return base, out


def _write_histories(ctx: Context, runs: dict, prefix: str) -> None:
    for (tau, seed), (res, _) in runs.items():
        write_text(ctx.path(f"{prefix}_tau{tau:g}_seed{seed}.csv"), metrics_csv(res.history))


@register("han2025", "Han et al. 2025: two stages of GD under label noise (Figure 1)")
def run_han2025(ctx: Context) -> list[Check]:
    """Han et al. (2025), Figure 1: with label noise (tau=0.2) GD first fits the clean samples while every
    mislabelled sample is still predicted as its true label (Stage I, up to T1), then memorises the noise of
    the mislabelled samples until they are fitted too (Stage II, up to T2); without label noise there is one
    stage.  Config: see lnref.reproduce.han2025 (n=200, d=2000, m=20, ReLU, sigma_p=0.5, ||mu||=4, eta=0.5,
    n SNR^2 = 6.4)."""
    base, runs = _runs(ctx, (TAU, 0.0), spurious=False)
    _write_histories(ctx, runs, "metrics")
    seeds = range(ctx.seeds)
    noisy = [runs[(TAU, s)] for s in seeds]
    clean_runs = [runs[(0.0, s)] for s in seeds]
    summary = {"config": base.to_dict(), "engine": base.engine, "theory_t1": theory_t1(base),
               "stages": {f"tau{tau:g}_seed{s}": st.summary() for (tau, s), (_, st) in runs.items()}}
    write_json(ctx.path("stages.json"), summary)

    checks: list[Check] = []
    t1s = [st.t1 for _, st in noisy]
    starts = [st.stage2_start for _, st in noisy]
    t2s = [st.t2 for _, st in noisy]
    checks.append(Check(
        "Han 2025, Stage I: with label noise a step T1 exists at which every clean sample is fitted while every "
        "mislabelled sample is predicted as its true label",
        f"T1 per seed: {_seq(t1s)} (theory scale n m/(eta sigma_p^2 d) = {theory_t1(base):.3g})",
        all(t is not None for t in t1s)))
    checks.append(Check(
        "Han 2025, Stage II follows Stage I: mislabelled samples start being fitted only after T1",
        f"first mislabelled fit per seed: {_seq(starts)}; T1: {_seq(t1s)}",
        all(st.two_stages for _, st in noisy)))
    checks.append(Check(
        "Han 2025, Stage II: the noise of the mislabelled samples is memorised until all of them are fitted (T2)",
        f"T2 per seed: {_seq(t2s)}; final fraction of mislabelled fitted: "
        f"{_seq([float(r.history['train_acc_noisy'][-1]) for r, _ in noisy])}",
        all(t is not None for t in t2s)))
    g_vs_r = [(_at(r.history, "gamma_max", st.t1), _at(r.history, "rho_bar_max_noisy", st.t1)) for r, st in noisy]
    checks.append(Check(
        "Han 2025, at T1 the signal exceeds every mislabelled sample's memorised noise: "
        "max gamma > max_{i in S_f} rho_bar_i",
        "(max gamma, max rho_bar noisy) at T1: " + "; ".join(f"({_fmt(a)}, {_fmt(b)})" for a, b in g_vs_r),
        all(a > b for a, b in g_vs_r)))
    test_t1 = [_at(r.history, "test_acc", st.t1) for r, st in noisy]
    checks.append(Check(
        f"Han 2025, test error at T1 is small (below tau/2 = {TAU / 2:g})",
        f"iid test error at T1: {_seq([1 - a for a in test_t1])}",
        all(1 - a < TAU / 2 for a in test_t1)))
    stay, loss_falls, gpos = [], [], []
    for r, st in noisy:
        if st.t1 is None:
            stay.append(False), loss_falls.append(False), gpos.append(math.nan)
            continue
        after = r.history["step"] >= st.t1
        stay.append(bool(np.all(st.clean_fitted[after] == st.n_clean)))
        loss = r.history["loss"][after]
        loss_falls.append(bool(np.all(np.diff(loss) < 0)))
        gpos.append(float(np.min(r.history["gamma_max"][after])))
    checks.append(Check(
        "Han 2025, Stage II: clean samples stay fitted after T1",
        f"every clean sample fitted at every logged step >= T1: {_seq(stay)}", all(stay)))
    checks.append(Check(
        "Han 2025, Stage II: the training loss keeps falling",
        f"loss strictly decreasing over logged steps >= T1: {_seq(loss_falls)}; final loss "
        f"{_seq([float(r.history['loss'][-1]) for r, _ in noisy])}", all(loss_falls)))
    checks.append(Check(
        "Han 2025, Stage II: the signal may shrink but stays positive",
        f"min over steps >= T1 of max gamma: {_seq(gpos)}", all(g > 0 for g in gpos)))
    no_stage2 = [st.stage2_start is None and st.n_noisy == 0 for _, st in clean_runs]
    mono = [bool(np.all(np.diff(r.history["gamma_min"]) >= 0)) for r, _ in clean_runs]
    checks.append(Check(
        "Han 2025, without label noise: one stage (every sample fitted, no Stage II; gamma never decreases, "
        "SPEC.md identity 4)",
        f"T1 (all fitted) per seed: {_seq([st.t1 for _, st in clean_runs])}; min gamma non-decreasing: "
        f"{_seq(mono)}; final iid test acc {_seq([float(r.history['test_acc'][-1]) for r, _ in clean_runs])}",
        all(no_stage2) and all(mono) and all(st.t1 is not None for _, st in clean_runs)))

    if have_matplotlib():
        from ..plotting import han_figure
        panels = [{"title": f"label noise tau={TAU:g} (seed 0)", "history": runs[(TAU, 0)][0].history,
                   "stages": runs[(TAU, 0)][1]},
                  {"title": "no label noise, tau=0 (seed 0)", "history": runs[(0.0, 0)][0].history,
                   "stages": runs[(0.0, 0)][1]}]
        save_figure(han_figure(panels), ctx, "han2025_figure1.png")
    else:
        ctx.log("han2025: matplotlib is not installed; no figure (data written)")
    return checks


@register("han2025-selection", "Han et al. 2025: early stopping and small-loss selection")
def run_han2025_selection(ctx: Context) -> list[Check]:
    """Han et al. (2025): small-loss selection (loss < log 2) as a detector of the clean samples over training,
    test accuracy under the iid and the spurious test distributions, and the early-stopping step against the
    final step.  Same config as han2025 with tau = 0.2."""
    base, runs = _runs(ctx, (TAU,), spurious=True)
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
        per_seed.append(dict(seed=s, stages=st.summary(), selection_at_theory_t1=at_th,
                             selection_at_t1=None if st.t1 is None else sel.at(st.t1),
                             early_stopping_iid=es_iid.summary(), early_stopping_spurious=es_sp.summary()))
        for i in range(steps.size):
            rows.append(f"{s},{int(steps[i])},{sel.selected[i]},{sel.precision[i]!r},{sel.recall[i]!r},"
                        f"{sel.noisy_rejected[i]!r},{h['test_acc'][i]!r},{h['test_acc_spurious'][i]!r}")
        if s == 0:
            fig_args = (h, sel, st)
    write_text(ctx.path("selection.csv"), "seed,step,selected,precision,recall,noisy_rejected,test_acc_iid,"
               "test_acc_spurious\n" + "\n".join(rows) + "\n")
    write_json(ctx.path("selection.json"), {"config": base.to_dict(), "threshold": LOG2, "theory_t1": t_theory,
                                            "per_seed": per_seed})

    pr = [(p["selection_at_theory_t1"]["precision"], p["selection_at_theory_t1"]["recall"]) for p in per_seed]
    checks.append(Check(
        f"Han 2025, small-loss selection (loss < log 2) separates clean from mislabelled exactly in Stage I, "
        f"here at the logged step nearest n m/(eta sigma_p^2 d) = {t_theory:.3g}",
        "(precision, recall) per seed: " + "; ".join(f"({_fmt(a)}, {_fmt(b)})" for a, b in pr),
        all(a == 1.0 and b == 1.0 for a, b in pr)))
    es_best = [(p["early_stopping_spurious"]["best_step"], p["stages"]["stage2_start"]) for p in per_seed]
    checks.append(Check(
        "Han 2025, early stopping: the best step by spurious-test accuracy lies in Stage I (before the first "
        "mislabelled fit)",
        "(best step, first mislabelled fit) per seed: " + "; ".join(f"({a}, {_fmt(b)})" for a, b in es_best),
        all(b is not None and a < b for a, b in es_best)))
    floor = 0.5 * min(base.tau_plus, base.tau_minus)
    sp_final = [1 - p["early_stopping_spurious"]["final_accuracy"] for p in per_seed]
    sp_stop = [1 - p["early_stopping_spurious"]["stop_accuracy"] for p in per_seed]
    checks.append(Check(
        f"Han 2025, Stage II: under the spurious test distribution the test error rises to at least "
        f"0.5 min(tau+, tau-) = {floor:g}",
        f"spurious test error at T1: {_seq(sp_stop)}; at the final step: {_seq(sp_final)}",
        all(e >= floor for e in sp_final)))
    iid_drop = [p["early_stopping_iid"]["gain"] for p in per_seed]
    checks.append(Check(
        "Han 2025 (with SPEC.md's iid test set): the iid test accuracy does not fall by much in Stage II "
        "(best minus final < 0.05)",
        f"iid best - final accuracy: {_seq(iid_drop)}; final iid accuracy "
        f"{_seq([p['early_stopping_iid']['final_accuracy'] for p in per_seed])}",
        all(g < 0.05 for g in iid_drop)))
    es_gain = [p["early_stopping_spurious"]["stop_accuracy"] - p["early_stopping_spurious"]["final_accuracy"]
               for p in per_seed]
    checks.append(Check(
        "Han 2025, early stopping near T1 is best: stopping at T1 beats training to the end (spurious test)",
        f"spurious accuracy at T1 minus final: {_seq(es_gain)}",
        all(g > 0 for g in es_gain)))

    if have_matplotlib():
        from ..plotting import selection_figure
        h, sel, st = fig_args
        fig = selection_figure(h, sel, st, {"iid": "test_acc", "spurious": "test_acc_spurious"},
                               title=f"test accuracy, tau={TAU:g} (seed 0)")
        save_figure(fig, ctx, "han2025_selection.png")
    else:
        ctx.log("han2025-selection: matplotlib is not installed; no figure (data written)")
    return checks
