"""The predictions of SPEC.md section 9 about the training methods, and how a run is judged against them
(``lnref reproduce methods``; :mod:`lnref.reproduce.methods` documents the reproduction): :data:`PREDICTIONS` (each
a report row: the method, the kind of criterion, the claim), :func:`run_summary` (the numbers of one run the rows
read: T1, T_mem, final fractions fitted, test errors, selection precision/recall), :func:`method_checks` (pure:
judged seed by seed) and :func:`methods_table`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import Config
from .checks import Check, fmt_mean_se, seed_check

__all__ = [
    "PREDICTIONS",
    "KINDS",
    "SOURCES",
    "SPEC9",
    "BASELINE",
    "MIN_RATE",
    "MEM_LEVEL",
    "LS_MARGIN_TOL",
    "ELR_TEST_TOL",
    "run_summary",
    "method_checks",
    "methods_table",
]

BASELINE = "logistic"  # the key of plain GD, against which "later" / "earlier" are judged

MIN_RATE = 0.8  # a row holds when its criterion holds in at least this fraction of the seeds
MEM_LEVEL = 0.5  # T_mem: the first logged step at which at least this fraction of mislabelled samples is fitted
LS_MARGIN_TOL = 0.10  # label smoothing: final mislabelled margins at most (1 + this) z*
ELR_TEST_TOL = 0.02  # ELR: final spurious test error at most its value at T1 plus this

SPEC9 = "derived from the forces in SPEC.md section 9 (no published theory of the method in this model)"
SOURCES = {
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
        src = SOURCES.get(key, SPEC9)
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
