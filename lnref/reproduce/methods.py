"""Training methods against label noise in the exact dynamics (SPEC.md section 9).

``lnref reproduce methods`` trains Han et al.'s default config (:func:`lnref.reproduce.han2025.default_config`,
tau = 0.2) once per method of :data:`METHODS` and seed, and judges each prediction of SPEC.md section 9 seed by
seed (a row holds when its criterion holds in at least ``MIN_RATE`` = 80% of the seeds, with the one-sided 95%
Clopper-Pearson lower bound, as in han2025).  One figure shows, per method (mean over the seeds, +- SE band),
training accuracy on the clean and on the mislabelled samples (w.r.t. the observed labels), the fraction of
mislabelled samples predicted as their TRUE label, max rho_bar over the mislabelled samples and the test error under
the ``spurious`` and the ``iid`` test distributions (the iid error stays near 0 in this regime: han2025's report
says why), with each method's T1 marked; a table gives T_mem (the first logged step at which half / all of the
mislabelled samples are fitted, or "never" within the run) and the test errors at T1 and at the end.

``lnref reproduce methods-phase`` sweeps tau x SNR (:func:`phase_grid`) for every method with the coefficient
engine and Gram sampling through :func:`lnref.sweep` (tidy ``sweep.csv`` in the folder ``methods_phase_sweep``;
an interrupted run resumes its finished rows when the same command runs again; ``--dask ADDRESS`` runs it on a
cluster) and draws, per method, the final fraction of mislabelled samples fitted (memorisation prevented where it
is small) and the spurious test error, next to plain GD.

Adding a method is one entry of :data:`METHODS` (a loss, swept by the phase map too) or :data:`SELECTION_METHODS`
(another algorithm, e.g. ``{"label": "select at T1 + retrain", "algorithm": "select_retrain"}``): a label and the
Config overrides; a prediction about it is one entry of :data:`PREDICTIONS` (its kind is one of :data:`KINDS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import Config
from ..data import make_data, make_test
from ..io import OutputError, write_json, write_text
from ..training import train
from ..training.stages import detect_stages
from .common import Check, Context, fmt_mean_se, have_matplotlib, register, save_figure, seed_check, sweep_executor
from .han2025 import ENGINE, TAU, default_config

__all__ = [
    "METHODS",
    "SELECTION_METHODS",
    "ALL_METHODS",
    "PREDICTIONS",
    "KINDS",
    "method_key",
    "method_config",
    "run_summary",
    "method_checks",
    "methods_table",
    "phase_base",
    "phase_grid",
    "phase_checks",
    "prevention_boundary",
]

#: The methods, each a label and the Config overrides that make it (official defaults unless stated).  ELR's period
#: is stated: period 1 is the official per-epoch target update in full-batch GD (SPEC.md section 9).
METHODS: tuple[dict[str, Any], ...] = (
    {"label": "CE (plain GD)", "loss": "logistic"},
    {"label": "GCE", "loss": "gce"},
    {"label": "SCE", "loss": "sce"},
    {"label": "label smoothing", "loss": "label_smoothing"},
    {"label": "soft bootstrap", "loss": "bootstrap_soft"},
    {"label": "hard bootstrap", "loss": "bootstrap_hard"},
    {"label": "forward correction", "loss": "forward"},
    {"label": "backward correction", "loss": "backward"},
    {"label": "ELR", "loss": "elr", "loss_params": {"lam": 3.0, "beta": 0.7, "period": 1}},
)
#: The selection algorithms (SPEC.md section 9, "Selection algorithms"), at their defaults: in ``lnref reproduce
#: methods`` beside the losses, not in the phase map (which sweeps the field ``loss`` only).
SELECTION_METHODS: tuple[dict[str, Any], ...] = (
    {
        "label": "select at T1, retrain on S",
        "key": "select_retrain",
        "algorithm": "select_retrain",
        "select_then": "retrain",
    },
    {"label": "truncated GCE (k = 1/2)", "algorithm": "truncated_gce", "loss": "gce"},
    {"label": "co-teaching (full-batch GD)", "algorithm": "coteaching"},
)
#: every method ``lnref reproduce methods`` runs
ALL_METHODS: tuple[dict[str, Any], ...] = METHODS + SELECTION_METHODS
BASELINE = "logistic"  # the key of plain GD, against which "later" / "earlier" are judged

MIN_RATE = 0.8  # a row holds when its criterion holds in at least this fraction of the seeds
MEM_LEVEL = 0.5  # T_mem: the first logged step at which at least this fraction of mislabelled samples is fitted
LS_MARGIN_TOL = 0.10  # label smoothing: final mislabelled margins at most (1 + this) z*
ELR_TEST_TOL = 0.02  # ELR: final spurious test error at most its value at T1 plus this
DEFAULT_SEEDS = 20

SPEC9 = "derived from the forces in SPEC.md section 9 (no published theory of the method in this model)"
_SOURCES = {
    "logistic": "Han et al. 2025 (ICML), Section 4; SPEC.md sections 6 and 9",
    "gce": f"Zhang & Sabuncu 2018 (GCE); {SPEC9}",
    "sce": f"Wang et al. 2019 (SCE); {SPEC9}",
    "label_smoothing": f"Szegedy et al. 2016 / PyTorch label_smoothing; {SPEC9}",
    "bootstrap_soft": f"Reed et al. 2015 (bootstrapping); {SPEC9}",
    "bootstrap_hard": f"Reed et al. 2015 (bootstrapping); {SPEC9}",
    "forward": f"Patrini et al. 2017 (loss correction); {SPEC9}",
    "backward": f"Patrini et al. 2017 (loss correction); {SPEC9}",
    "elr": f"Liu et al. 2020 (ELR); {SPEC9}",
}

#: What each prediction kind tests (per seed); the report states it with the numbers.
KINDS = ("memorises_all", "later", "earlier", "bounded_margin", "prevents", "keeps_test")

#: The predictions of SPEC.md section 9, each a report row: the method's key, the kind, and the claim.
PREDICTIONS: tuple[dict[str, str], ...] = (
    {
        "method": "logistic",
        "kind": "memorises_all",
        "claim": "CE (plain GD) memorises: every mislabelled sample is fitted to its wrong label within the run",
    },
    {
        "method": "gce",
        "kind": "later",
        "claim": "GCE (q = 0.7) still memorises, later than CE (its pull is slowed by s^q)",
    },
    {"method": "forward", "kind": "later", "claim": "forward correction (tau = 0.2) still memorises, later than CE"},
    {
        "method": "bootstrap_soft",
        "kind": "later",
        "claim": "soft bootstrap (beta = 0.95) still memorises (it reverses only for beta < 0.218), later than CE",
    },
    {
        "method": "bootstrap_hard",
        "kind": "later",
        "claim": "hard bootstrap (beta = 0.8) still memorises, later than CE",
    },
    {
        "method": "label_smoothing",
        "kind": "bounded_margin",
        "claim": "label smoothing (eps = 0.1) still memorises, to a bounded margin z* = ln((2 - eps)/eps)",
    },
    {
        "method": "sce",
        "kind": "earlier",
        "claim": "SCE (alpha = 0.1, beta = 1) memorises earlier than CE (its pull (1 - s)(alpha + beta |A| s) exceeds "
        "CE's for s > (1 - alpha)/(beta |A|) = 0.098)",
    },
    {
        "method": "backward",
        "kind": "earlier",
        "claim": "backward correction (tau = 0.2) memorises earlier than CE (the naive expectation: its loss is "
        "unbounded below without the clip)",
    },
    {
        "method": "elr",
        "kind": "prevents",
        "claim": "ELR (lam = 3 > 1, period 1) stops memorisation: a mislabelled sample whose target points at its true "
        "class gets g -> (lam - 1)(1 - s) > 0",
    },
    {
        "method": "elr",
        "kind": "keeps_test",
        "claim": "ELR (lam = 3, period 1) keeps the test error near its T1 value (spurious test distribution)",
    },
    {
        "method": "select_retrain",
        "kind": "prevents",
        "claim": "selection at T1 (loss < log 2, Han et al.'s small-loss selection), then retraining from W0 on the "
        "selected samples, stops memorisation",
    },
    {
        "method": "select_retrain",
        "kind": "keeps_test",
        "claim": "selection at T1 then retraining keeps the test error near its T1 value (spurious test distribution)",
    },
    {
        "method": "truncated_gce",
        "kind": "prevents",
        "claim": "truncated GCE with k = 1/2 (the log 2 selection repeated every 10 steps from step 40) stops "
        "memorisation",
    },
)


def method_key(entry: Mapping[str, Any]) -> str:
    """The short name of a method entry: ``entry['key']``, else its non-GD algorithm, else its loss."""
    if "key" in entry:
        return str(entry["key"])
    alg = entry.get("algorithm", "gd")
    return str(alg) if alg != "gd" else str(entry.get("loss", "logistic"))


def method_config(base: Config, entry: Mapping[str, Any]) -> Config:
    """``base`` with the entry's Config overrides (every key but ``label`` and ``key``)."""
    return base.replace(**{k: v for k, v in entry.items() if k not in ("label", "key")})


def method_params(cfg: Config) -> str:
    """The method's hyper-parameters as run, e.g. ``q=0.7`` (empty for the logistic loss)."""
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in dict(cfg.loss_params).items()]
    if cfg.algorithm != "gd":
        parts.insert(0, f"algorithm={cfg.algorithm}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------------- one run
def _first_step(steps: np.ndarray, mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(steps[idx[0]]) if idx.size else None


def _at(steps: np.ndarray, values: np.ndarray, step: int | None) -> float:
    if step is None:
        return math.nan
    idx = np.flatnonzero(steps == step)
    return float(values[idx[0]]) if idx.size else math.nan


def run_summary(history: Mapping[str, np.ndarray], stages: Any, margin_end_noisy: np.ndarray) -> dict[str, Any]:
    """The numbers of one run that the report and the table read.

    Parameters
    ----------
    history : the run's logged history (columns of :data:`lnref.model.metrics.HISTORY_COLUMNS` and
        ``test_acc_spurious``)
    stages : :class:`lnref.training.stages.Stages` of the run
    margin_end_noisy : the mislabelled samples' margins y_obs f at the last logged step

    Returns a dict: ``t1``; ``t_mem`` (first logged step with at least ``MEM_LEVEL`` of the mislabelled samples
    fitted, counted from the logged step with the fewest of them fitted, the end of Stage I: at t = 0 the random
    initialisation fits about half of them; None: never) and ``t_mem_all`` (all of them); ``noisy_fit_end``;
    ``noisy_fit_max_after_t1`` (max over logged steps >= T1, NaN without T1); ``max_margin_noisy_end``;
    spurious and iid test errors at T1 and at the end.
    """
    steps = np.asarray(history["step"])
    k = max(stages.n_noisy, 1)
    noisy_fit = np.asarray(stages.noisy_fitted) / k
    sp = 1.0 - np.asarray(history["test_acc_spurious"], float)
    iid = 1.0 - np.asarray(history["test_acc"], float)
    t1 = stages.t1
    after = steps >= t1 if t1 is not None else np.zeros(steps.size, bool)
    # T_mem counts from the logged step with the fewest mislabelled samples fitted (the end of Stage I): at t = 0
    # the random features of W0 fit about half of them
    counts = np.asarray(stages.noisy_fitted)
    since = np.arange(steps.size) >= int(np.argmin(counts))
    return {
        "t1": t1,
        "t_mem": _first_step(steps, since & (counts >= math.ceil(MEM_LEVEL * stages.n_noisy - 1e-9))),
        "t_mem_all": _first_step(steps, since & (counts >= stages.n_noisy)),
        "noisy_fit_end": float(noisy_fit[-1]),
        "noisy_fit_max_after_t1": float(noisy_fit[after].max()) if after.any() else math.nan,
        "max_margin_noisy_end": float(np.max(margin_end_noisy)) if np.size(margin_end_noisy) else math.nan,
        "test_err_spurious_t1": _at(steps, sp, t1),
        "test_err_spurious_end": float(sp[-1]),
        "test_err_iid_t1": _at(steps, iid, t1),
        "test_err_iid_end": float(iid[-1]),
        # a selection algorithm's last selection against the true clean set (NaN for the losses, and before
        # select_retrain selects)
        "select_precision": _last_finite(history.get("select_precision")),
        "select_recall": _last_finite(history.get("select_recall")),
    }


def _last_finite(values) -> float:
    """The last finite value of a history column (NaN when there is none or no column)."""
    if values is None:
        return math.nan
    v = np.asarray(values, float)
    ok = np.flatnonzero(np.isfinite(v))
    return float(v[ok[-1]]) if ok.size else math.nan


# ----------------------------------------------------------------------------------------------- report rows
def _inf(t: int | None) -> float:
    return math.inf if t is None else float(t)


def _never(values: Sequence[Any]) -> str:
    return fmt_mean_se(values).replace("none", "never")


def method_checks(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    configs: Mapping[str, Config],
    predictions: Sequence[Mapping[str, str]] = PREDICTIONS,
) -> list[Check]:
    """One row per prediction, judged seed by seed (rule ``"rate"``, ``MIN_RATE``).

    ``runs``: method key -> the :func:`run_summary` of each seed (seed order; the same seeds for every method);
    ``configs``: method key -> its config.  Pure: tests feed it fabricated summaries that violate a criterion.
    A prediction whose method (or the baseline it compares with) was not run is left out.
    """
    checks = []
    base = runs.get(BASELINE)
    for p in predictions:
        key, kind = p["method"], p["kind"]
        if key not in runs or (kind in ("later", "earlier") and base is None):
            continue
        rs, cfg = runs[key], configs[key]
        src = _SOURCES.get(key, SPEC9)
        fit_end = [r["noisy_fit_end"] for r in rs]
        t_mem = [r["t_mem"] for r in rs]
        kw: dict[str, Any]
        if kind == "memorises_all":
            kw = dict(
                criterion=f"every mislabelled sample fitted (w.r.t. its observed label) at a logged step "
                f"<= {cfg.steps} (T_mem(all) exists)",
                tolerance="none (all of them)",
                per_seed=[r["t_mem_all"] is not None for r in rs],
                measured=f"T_mem(all) = {_never([r['t_mem_all'] for r in rs])}; final fraction fitted "
                f"{fmt_mean_se(fit_end)}",
            )
        elif kind in ("later", "earlier"):
            tb = [r["t_mem"] for r in base]
            later = kind == "later"
            ok = []
            for r, b in zip(rs, tb):
                if later:  # still memorises (T_mem exists), and after CE (CE never: cannot be later)
                    ok.append(r["t_mem"] is not None and b is not None and r["t_mem"] > b)
                else:
                    ok.append(r["t_mem"] is not None and _inf(r["t_mem"]) < _inf(b))
            crit = (
                f"still memorises: at least {MEM_LEVEL:g} of the mislabelled samples fitted by step {cfg.steps} "
                f"(T_mem exists), and T_mem > T_mem(CE) in the same seed"
                if later
                else f"T_mem < T_mem(CE) in the same seed (T_mem: first logged step with at least {MEM_LEVEL:g} of "
                "the mislabelled samples fitted; never counts as after every step)"
            )
            kw = dict(
                criterion=crit,
                tolerance="none (strict, at the logged steps)",
                per_seed=ok,
                measured=f"T_mem = {_never(t_mem)} vs CE {_never(tb)}; final fraction fitted {fmt_mean_se(fit_end)}",
            )
        elif kind == "bounded_margin":
            eps = float(cfg.loss_params["eps"])
            zstar = math.log((2 - eps) / eps)
            lim = (1 + LS_MARGIN_TOL) * zstar
            mm = [r["max_margin_noisy_end"] for r in rs]
            kw = dict(
                criterion=f"at least {MEM_LEVEL:g} of the mislabelled samples fitted at step {cfg.steps}, and "
                f"max over them of the margin y_obs f <= {1 + LS_MARGIN_TOL:g} z* = {lim:.3g} "
                f"(z* = {zstar:.3g})",
                tolerance=f"{100 * LS_MARGIN_TOL:.0f}% of z*",
                per_seed=[f >= MEM_LEVEL and m <= lim for f, m in zip(fit_end, mm)],
                measured=f"final fraction fitted {fmt_mean_se(fit_end)}; max margin {fmt_mean_se(mm)}",
            )
        elif kind == "prevents":
            mx = [r["noisy_fit_max_after_t1"] for r in rs]
            kw = dict(
                criterion=f"fraction of mislabelled samples fitted (w.r.t. the observed labels) <= {MEM_LEVEL:g} "
                f"at every logged step from T1 to step {cfg.steps}",
                tolerance="none",
                per_seed=[r["t1"] is not None and m <= MEM_LEVEL for r, m in zip(rs, mx)],
                measured=f"max over steps >= T1 {fmt_mean_se(mx)}; at the end {fmt_mean_se(fit_end)}; "
                f"T1 = {fmt_mean_se([r['t1'] for r in rs])}",
            )
        elif kind == "keeps_test":
            e1 = [r["test_err_spurious_t1"] for r in rs]
            e2 = [r["test_err_spurious_end"] for r in rs]
            kw = dict(
                criterion=f"spurious test error at step {cfg.steps} <= its value at T1 + {ELR_TEST_TOL:g}",
                tolerance=f"{ELR_TEST_TOL:g}",
                per_seed=[math.isfinite(a) and b <= a + ELR_TEST_TOL for a, b in zip(e1, e2)],
                measured=f"at T1 {fmt_mean_se(e1)}; at the end {fmt_mean_se(e2)} (CE at the end "
                f"{fmt_mean_se([r['test_err_spurious_end'] for r in base]) if base else 'not run'})",
            )
        else:
            raise ValueError(f"prediction kind {kind!r} is not allowed: use one of {', '.join(KINDS)}")
        checks.append(seed_check(p["claim"], source=src, rule="rate", min_rate=MIN_RATE, **kw))
    return checks


def methods_table(
    labels: Mapping[str, str], params: Mapping[str, str], runs: Mapping[str, Sequence[Mapping[str, Any]]], steps: int
) -> str:
    """The markdown table: per method T1, T_mem (half / all of the mislabelled samples fitted), the final fraction
    fitted, spurious and iid test error at T1 and at the end (mean +- SE over the seeds; never: not within the run)."""
    lines = [
        f"| method | parameters | T1 | T_mem ({MEM_LEVEL:g} of mislabelled fitted) | T_mem (all) | mislabelled "
        f"fitted at step {steps} | spurious test error at T1 | at step {steps} | iid test error at step {steps} | "
        "selection precision / recall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, rs in runs.items():
        cells = [
            labels[key],
            params[key] or "-",
            _never([r["t1"] for r in rs]),
            _never([r["t_mem"] for r in rs]),
            _never([r["t_mem_all"] for r in rs]),
            fmt_mean_se([r["noisy_fit_end"] for r in rs]),
            fmt_mean_se([r["test_err_spurious_t1"] for r in rs]),
            fmt_mean_se([r["test_err_spurious_end"] for r in rs]),
            fmt_mean_se([r["test_err_iid_end"] for r in rs]),
            _precision_recall(rs),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _precision_recall(rs: Sequence[Mapping[str, Any]]) -> str:
    """'precision / recall' of the last selection against the true clean set, mean +- SE over the seeds that
    selected ('-' for the losses)."""
    prec = [r.get("select_precision", math.nan) for r in rs]
    rec = [r.get("select_recall", math.nan) for r in rs]
    if all(math.isnan(p) for p in prec):
        return "-"
    return f"{fmt_mean_se(prec)} / {fmt_mean_se(rec)}"


# ----------------------------------------------------------------------------------------------- methods
CURVES = ("train_acc_clean", "train_acc_noisy", "true_acc_noisy", "rho_bar_max_noisy", "test_acc_spurious", "test_acc")


def _csv_rows(key: str, seed: int, h: Mapping[str, np.ndarray]) -> list[str]:
    return [
        f"{key},{seed},{int(h['step'][i])}," + ",".join(repr(float(h[c][i])) for c in CURVES)
        for i in range(len(h["step"]))
    ]


@register(
    "methods",
    "Training methods against label noise: who memorises, when, and the test error",
    default_seeds=DEFAULT_SEEDS,
    quick_seeds=3,
)
def run_methods(ctx: Context) -> list[Check]:
    """Every training method of SPEC.md section 9 at its official defaults (ELR with its target update every GD
    step, the official per-epoch update in full-batch GD) on Han et al.'s default config with label noise (as
    han2025 runs it; printed below as run), over seeds.  Each prediction of SPEC.md section 9 is a row; the
    figure shows the mean over the seeds per method, the table T_mem and the test errors."""
    base = default_config(ctx.quick, engine=ENGINE)
    ctx.uses.add("sigma_zeta")  # the extra spurious test set reads it although the config's test is iid
    ctx.log(f"methods: {len(ALL_METHODS)} methods x {ctx.seeds} seeds, n={base.n}, d={base.d}, steps={base.steps}")
    keys = [method_key(e) for e in ALL_METHODS]
    labels = dict(zip(keys, (e["label"] for e in ALL_METHODS)))
    configs = {k: method_config(base, e) for k, e in zip(keys, ALL_METHODS)}
    params = {k: method_params(c) for k, c in configs.items()}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    hist: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in keys}
    rows = []
    for seed in range(ctx.seeds):
        data = make_data(base.replace(seed=seed))  # the same data for every method (the loss does not change it)
        extra = {"spurious": make_test(base.replace(seed=seed), data, kind="spurious")}
        for key in keys:
            cfg = configs[key].replace(seed=seed)
            res = train(cfg, data, threads=ctx.threads, extra_tests=extra, keep_rho=False)
            ctx.ran(res.config)
            st = detect_stages(res)
            s = run_summary(res.history, st, res.trace["margin"][-1][~res.data.clean])
            runs[key].append(s)
            hist[key].append(res.history)
            rows += _csv_rows(key, seed, res.history)
        ctx.log(f"  seed {seed}: " + "; ".join(f"{k} T_mem={runs[k][-1]['t_mem']}" for k in keys))
    write_text(
        ctx.path("methods_histories.csv"), "method,seed,step," + ",".join(CURVES) + "\n" + "\n".join(rows) + "\n"
    )
    summary_rows = ["method,seed," + ",".join(runs[keys[0]][0])]
    for k in keys:
        for seed, s in enumerate(runs[k]):
            summary_rows.append(f"{k},{seed}," + ",".join("" if v is None else repr(v) for v in s.values()))
    write_text(ctx.path("methods_summary.csv"), "\n".join(summary_rows) + "\n")
    write_json(
        ctx.path("methods.json"),
        {
            "config": base.to_dict(),
            "methods": [
                {
                    "key": k,
                    "label": labels[k],
                    "overrides": {a: b for a, b in e.items() if a != "label"},
                    "loss_params": dict(configs[k].loss_params),
                    "per_seed": runs[k],
                }
                for k, e in zip(keys, ALL_METHODS)
            ],
        },
    )
    table = methods_table(labels, params, runs, base.steps)
    write_text(ctx.path("methods_table.md"), table)

    checks = method_checks(runs, configs)
    failed = [c.claim for c in checks if c.holds is False]
    ctx.notes.append(
        "Predictions that do not hold in this run: "
        + ("; ".join(f"**{c}**" for c in failed) if failed else "none")
        + "."
    )
    ctx.notes.append(
        f"Per method, mean +- SE over the {ctx.seeds} seeds (T_mem: the first logged step at which "
        f"at least {MEM_LEVEL:g} / all of the mislabelled samples are fitted w.r.t. their observed "
        "labels, counted from the logged step with the fewest of them fitted, since the random "
        "initialisation fits about half of them at t = 0; never: not within the run, the count says in "
        "how many seeds it happened; the steps are "
        f"the {len(hist[keys[0]][0]['step'])} log-spaced logged steps):\n\n" + table
    )
    ctx.notes.append(
        f"Each row holds when its criterion holds in at least {100 * MIN_RATE:.0f}% of the seeds (the holds column "
        "gives the count and the one-sided 95% Clopper-Pearson lower bound on the per-seed rate), as in han2025. "
        "A row that does not hold is a prediction of SPEC.md section 9 that this run contradicts; the predictions "
        "are lnref's reading of each method's per-sample force g(z), not published theorems about this model. "
        "The forward and backward corrections assume tau = 0.2, the data's flip rate here."
    )
    ctx.notes.append(
        "The selection algorithms (SPEC.md section 9): 'select at T1, retrain on S' selects "
        "S = {i : loss_i < log 2} at the run's exact T1 and retrains from W0 on S (mean over |S|; a seed "
        "without T1 selects nothing and trains on every sample); truncated GCE prunes "
        "{i : s_i <= 1/2} every 10 steps from step 40; co-teaching trains two networks, each on the "
        "(1 - R(t)) n samples of smallest loss under the other, with full-batch GD instead of the "
        "official code's Adam (its rows are network 1's). The phase map (methods-phase) sweeps the "
        "losses only."
    )
    if have_matplotlib():
        from ..plotting import methods_figure

        steps = hist[keys[0]][0]["step"]
        series = []
        for k in keys:
            h = hist[k]
            t1s = [r["t1"] for r in runs[k] if r["t1"] is not None]
            series.append(
                {
                    "label": f"{labels[k]}" + (f" ({params[k]})" if params[k] else ""),
                    "t1": float(np.median(t1s)) if t1s else None,
                    "values": {c: np.array([x[c] for x in h], float) for c in CURVES},
                }
            )
        save_figure(
            methods_figure(
                steps,
                series,
                title=rf"Han's default config, label noise $\tau$ = {TAU:g}, "
                f"{ctx.seeds} seed{'s' if ctx.seeds != 1 else ''}",
            ),
            ctx,
            "methods_figure.png",
        )
        ctx.captions["methods_figure.png"] = (
            f"Each method on Han's default config (tau = {TAU:g}), mean over the {ctx.seeds} seeds (band: +- one "
            "standard error).  Training accuracy on the clean samples and on the mislabelled samples w.r.t. their "
            "observed labels (memorisation), the fraction of mislabelled samples predicted as their true label, "
            "max rho_bar over the mislabelled samples (their memorised noise, log scale), and the test error under "
            "the spurious test distribution (where memorisation hurts) and the iid one (near 0 in this regime).  "
            "The dot on each curve marks the method's T1 (median over the seeds)."
        )
    else:
        ctx.log("methods: matplotlib is not installed; no figure (data written)")
    return checks


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
