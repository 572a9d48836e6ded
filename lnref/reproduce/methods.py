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

The predictions and how a run is judged live in :mod:`lnref.reproduce.methods_predictions` (re-exported here);
``lnref reproduce methods-phase``, the phase map over tau x SNR of the same methods, in
:mod:`lnref.reproduce.methods_phase`.

Adding a method is one entry of :data:`METHODS` (a loss) or :data:`SELECTION_METHODS` (another algorithm, e.g.
``{"label": "select at T1 + retrain", "algorithm": "select_retrain"}``): a label and the Config overrides (the phase
map sweeps both lists); a prediction about it is one entry of :data:`PREDICTIONS` (its kind is one of :data:`KINDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import Config
from ..data import make_data, make_test
from ..io import write_json, write_text
from ..training import train
from ..training.stages import detect_stages
from .common import Check, Context, have_matplotlib, register, save_figure
from .han2025 import ENGINE, TAU, default_config
from .methods_predictions import (
    BASELINE,
    KINDS,
    MEM_LEVEL,
    MIN_RATE,
    PREDICTIONS,
    method_checks,
    methods_table,
    run_summary,
)

__all__ = [
    "METHODS",
    "SELECTION_METHODS",
    "ALL_METHODS",
    "PREDICTIONS",
    "KINDS",
    "BASELINE",
    "method_key",
    "method_config",
    "method_params",
    "run_summary",
    "method_checks",
    "methods_table",
    "run_methods",
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
#: methods`` beside the losses, and in the phase map as one sweep each (they set other fields than ``loss``).
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
DEFAULT_SEEDS = 20


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
        "official code's Adam (its rows are network 1's). The phase map (methods-phase) sweeps every "
        "method over tau x SNR."
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
