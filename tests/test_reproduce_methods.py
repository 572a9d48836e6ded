"""`lnref reproduce methods` and `methods-phase` (issue 22): they run and write their files, their rows can fail,
the phase map's CSV is tidy and resumable, and a method is one entry of a list."""

import csv
import json
import math

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.config import ConfigError
from lnref.reproduce import load_all
from lnref.reproduce.common import Context, run_reproduction
from lnref.reproduce.han2025 import default_config
from lnref.reproduce.methods import (
    ALL_METHODS,
    BASELINE,
    METHODS,
    PREDICTIONS,
    SELECTION_METHODS,
    method_checks,
    method_config,
    method_key,
)
from lnref.reproduce.methods_phase import (
    PHASE_SWEEP,
    SELECTION_CLAIMS,
    phase_base,
    phase_checks,
    phase_grid,
    phase_sweeps,
)


def _summary(**kw):
    s = dict(
        t1=5,
        t_mem=30,
        t_mem_all=120,
        noisy_fit_end=1.0,
        noisy_fit_max_after_t1=1.0,
        max_margin_noisy_end=2.0,
        test_err_spurious_t1=0.0,
        test_err_spurious_end=0.2,
        test_err_iid_t1=0.0,
        test_err_iid_end=0.0,
    )
    s.update(kw)
    return s


def _runs(k=5, **per_method):
    """Fabricated per-seed summaries: every method memorises like CE unless overridden."""
    runs = {method_key(e): [_summary() for _ in range(k)] for e in ALL_METHODS}
    for key, kw in per_method.items():
        runs[key] = [_summary(**kw) for _ in range(k)]
    return runs


CONFIGS = {method_key(e): method_config(default_config(True), e) for e in ALL_METHODS}


def _row(checks, claim_start):
    rows = [c for c in checks if c.claim.startswith(claim_start)]
    assert len(rows) == 1, [c.claim for c in checks]
    return rows[0]


def test_a_method_is_one_entry_of_the_list():
    keys = [method_key(e) for e in METHODS]
    assert keys[0] == BASELINE and len(set(keys)) == len(keys)
    assert set(keys) == {
        "logistic",
        "gce",
        "sce",
        "label_smoothing",
        "bootstrap_soft",
        "bootstrap_hard",
        "forward",
        "backward",
        "elr",
    }
    assert method_key({"label": "select at T1 + retrain", "algorithm": "select_retrain"}) == "select_retrain"
    elr = CONFIGS["elr"]
    assert elr.loss == "elr" and dict(elr.loss_params) == {"lam": 3.0, "beta": 0.7, "period": 1}
    assert {p["method"] for p in PREDICTIONS} <= {method_key(e) for e in ALL_METHODS}
    assert [method_key(e) for e in ALL_METHODS[len(METHODS) :]] == ["select_retrain", "truncated_gce", "coteaching"]


def test_rows_hold_on_good_runs_and_each_fails_on_a_violating_one():
    good = _runs(
        gce=dict(t_mem=60),
        forward=dict(t_mem=50),
        bootstrap_soft=dict(t_mem=35),
        bootstrap_hard=dict(t_mem=45),
        sce=dict(t_mem=12),
        backward=dict(t_mem=20),
        elr=dict(t_mem=None, t_mem_all=None, noisy_fit_end=0.0, noisy_fit_max_after_t1=0.0, test_err_spurious_end=0.0),
        select_retrain=dict(
            t_mem=None, t_mem_all=None, noisy_fit_end=0.0, noisy_fit_max_after_t1=0.0, test_err_spurious_end=0.0
        ),
        truncated_gce=dict(t_mem=None, t_mem_all=None, noisy_fit_end=0.0, noisy_fit_max_after_t1=0.0),
    )
    checks = method_checks(good, CONFIGS)
    assert len(checks) == len(PREDICTIONS)
    assert all(c.holds is True for c in checks), [(c.claim, c.measured) for c in checks if not c.holds]
    # each violation turns its own row to "does not hold"
    bad = {
        "ELR (lam = 3 > 1, period 1) stops": dict(elr=dict(noisy_fit_max_after_t1=0.9, noisy_fit_end=0.9)),
        "GCE": dict(gce=dict(t_mem=20)),  # earlier than CE
        "backward correction": dict(backward=dict(t_mem=None)),  # never: not earlier
        "CE (plain GD) memorises": dict(logistic=dict(t_mem_all=None)),
        "label smoothing": dict(label_smoothing=dict(max_margin_noisy_end=5.0)),
        "ELR (lam = 3, period 1) keeps": dict(
            elr=dict(test_err_spurious_t1=0.0, test_err_spurious_end=0.15, noisy_fit_max_after_t1=0.0)
        ),
    }
    for claim, override in bad.items():
        runs = {**good, **{k: [_summary(**{**good[k][0], **v}) for _ in range(5)] for k, v in override.items()}}
        row = _row(method_checks(runs, CONFIGS), claim)
        assert row.holds is False and row.seeds_held == 0, (claim, row.measured)


def test_rate_rule_one_bad_seed_of_five_still_holds_two_do_not():
    for bad_seeds, holds in ((1, True), (2, False)):
        runs = _runs(elr=dict(noisy_fit_max_after_t1=0.0))
        for i in range(bad_seeds):
            runs["elr"][i] = _summary(noisy_fit_max_after_t1=0.9)
        row = _row(method_checks(runs, CONFIGS), "ELR (lam = 3 > 1, period 1) stops")
        assert row.holds is holds and row.seeds_held == 5 - bad_seeds and row.rate_lower is not None


def test_phase_rows_can_fail():
    grid = {"loss": [method_key(e) for e in METHODS], "tau": [0.1, 0.2], "mu_norm": [3.0, 10.0]}
    k = len(grid["loss"])
    fit = np.ones((k, 2, 2))
    err = np.full((k, 2, 2), 0.2)
    e = grid["loss"].index("elr")
    fit[e] = 0.0
    err[e] = 0.0
    kw = dict(n=100, d=1000, sigma_p=0.5)  # SNR = mu/15.8: n SNR^2 = 3.6 and 40 (both >= 1)
    checks = phase_checks(grid, fit, err, 2, **kw)
    assert all(c.holds is True for c in checks)
    fit[e] = 1.0  # ELR memorises everywhere
    err[e] = 0.2
    bad = {c.claim: c.holds for c in phase_checks(grid, fit, err, 2, **kw)}
    assert [c for c, h in bad.items() if h is False] == [c for c in bad if c.startswith("ELR")]
    fit[0] = 0.0  # plain GD memorises nowhere
    assert _row(phase_checks(grid, fit, err, 2, **kw), "plain GD memorises").holds is False


def test_phase_rows_of_the_selection_methods_can_fail():
    keys = [method_key(e) for e in METHODS] + [method_key(e) for e in SELECTION_METHODS]
    grid = {"method": keys, "tau": [0.1, 0.2], "mu_norm": [0.5, 10.0]}
    kw = dict(n=100, d=1000, sigma_p=0.5)  # SNR = mu/15.8: n SNR^2 = 0.1 (below 1) and 40
    fit, err = np.ones((len(keys), 2, 2)), np.full((len(keys), 2, 2), 0.3)
    for k in ("elr", *SELECTION_CLAIMS):
        fit[keys.index(k), :, 1] = 0.0  # prevented where n SNR^2 >= 1 only, and a lower test error
        err[keys.index(k)] = 0.1
    checks = phase_checks(grid, fit, err, 3, **kw)
    assert all(c.holds is True for c in checks), [c.claim for c in checks if not c.holds]
    for k, claim in SELECTION_CLAIMS.items():
        assert _row(checks, claim).criterion.endswith("in at least 90% of the cells with n SNR^2 >= 1")
        bad_fit, bad_err = fit.copy(), err.copy()
        bad_fit[keys.index(k), 0, 1] = 0.9  # one of the two learned cells memorises: 50% < 90%
        bad_err[keys.index(k)] = 0.29  # gain 0.01 < 0.05
        failed = [c.claim for c in phase_checks(grid, bad_fit, bad_err, 3, **kw) if c.holds is False]
        assert len(failed) == 2 and claim in failed, failed


def test_methods_quick_runs_and_writes_its_files(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    ctx = Context(out=out, seeds=2, quick=True, threads=1, log=lambda m: None)
    checks = run_reproduction("methods", ctx)
    assert len(checks) == len(PREDICTIONS)
    for f in (
        "report.md",
        "summary.json",
        "methods_histories.csv",
        "methods_summary.csv",
        "methods.json",
        "methods_table.md",
    ):
        assert (out / f).is_file(), f
    table = (out / "methods_table.md").read_text().splitlines()
    assert len(table) == 2 + len(ALL_METHODS) and table[2].startswith("| CE (plain GD)")
    report = (out / "report.md").read_text()
    assert "Predictions that do not hold in this run" in report and "judged: holds in at least 80%" in report
    with open(out / "methods_histories.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == {method_key(e) for e in ALL_METHODS}
    assert {r["seed"] for r in rows} == {"0", "1"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == 2 and summary["training_runs"] == 2 * len(ALL_METHODS)


def _sweep_rows(folder):
    with open(folder / "sweep.csv") as fh:
        return list(csv.DictReader(fh))


def _phase_rows(out):
    with open(out / "methods_phase.csv") as fh:
        return list(csv.DictReader(fh))


def test_methods_phase_quick_is_tidy_and_resumes(tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["reproduce", "methods-phase", "--quick", "--out", str(out), "--threads", "1"]
    assert main(argv) == 0
    folder = out / PHASE_SWEEP
    rows = _sweep_rows(folder)
    grid = phase_grid(True)
    cells = len(grid["loss"]) * len(grid["tau"]) * len(grid["mu_norm"])
    assert len(rows) == cells  # one row per run (1 replicate with --quick)
    assert {"cell", "replicate", "seed", "loss", "tau", "mu_norm", "train_acc_noisy", "test_error"} <= set(rows[0])
    assert {r["loss"] for r in rows} == set(grid["loss"])
    assert all(0.0 <= float(r["train_acc_noisy"]) <= 1.0 for r in rows)
    sweeps = phase_sweeps(True)
    assert [name for name, _, _ in sweeps] == [PHASE_SWEEP] + [
        f"{PHASE_SWEEP}_{method_key(e)}" for e in SELECTION_METHODS
    ]
    assert sorted(json.loads((out / "reproduction.json").read_text())["dirs"]) == sorted(n for n, _, _ in sweeps)
    # every method of the map, selection algorithms included, in one tidy file: one row per run
    tidy = _phase_rows(out)
    per_method = len(grid["tau"]) * len(grid["mu_norm"])
    keys = [method_key(e) for e in ALL_METHODS]
    assert [r["method"] for r in tidy] == [k for k in keys for _ in range(per_method)]
    assert set(tidy[0]) == {
        "method",
        "tau",
        "mu_norm",
        "snr",
        "replicate",
        "seed",
        "test_error",
        "train_acc_noisy",
        "train_acc_clean",
        "true_acc_noisy",
    }
    # interrupted: half the rows of the losses' sweep and of co-teaching's lost; the same command resumes the rest
    # and gives the same rows
    co = out / f"{PHASE_SWEEP}_coteaching"
    before = {f: _sweep_rows(f) for f in (folder, co)}
    for f, n in ((folder, cells), (co, per_method)):
        lines = (f / "sweep.csv").read_text().splitlines(keepends=True)
        (f / "sweep.csv").write_text("".join(lines[: 1 + n // 2]))
    assert main(argv) == 0
    key = lambda r: (int(r["cell"]), int(r["replicate"]))  # noqa: E731
    for f in (folder, co):
        assert sorted(_sweep_rows(f), key=key) == sorted(before[f], key=key)
    assert _phase_rows(out) == tidy
    report = (out / "report.md").read_text()
    lost = (cells - cells // 2) + (per_method - per_method // 2)  # the other sweeps' rows are all read back
    assert f"Resumed: {len(keys) * per_method - lost} of {len(keys) * per_method} runs" in report
    for claim in SELECTION_CLAIMS.values():
        assert claim in report
    for f in ("methods_phase.json", "report.md"):
        assert (out / f).is_file()
    # a selection method's row is the last row of lnref.train of the same config, bit for bit
    for k in ("select_retrain", "truncated_gce", "coteaching"):
        base = dict((name, b) for name, b, _ in sweeps)[f"{PHASE_SWEEP}_{k}"]
        for r in [r for r in tidy if r["method"] == k][::5]:
            cfg = base.replace(tau=float(r["tau"]), mu_norm=float(r["mu_norm"]), seed=int(r["seed"]))
            h = lnref.train(cfg, keep_rho=False).history
            assert float(r["train_acc_noisy"]) == float(h["train_acc_noisy"][-1])
            assert float(r["test_error"]) == 1.0 - float(h["test_acc"][-1])
            assert float(r["true_acc_noisy"]) == float(h["true_acc_noisy"][-1])


def test_dask_is_only_for_the_sweep_reproductions(tmp_path, capsys):
    assert main(["reproduce", "methods", "--quick", "--dask", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o")]) == 2
    assert "--dask is not allowed with methods" in capsys.readouterr().err
    assert "methods-phase" in load_all() and "methods" in load_all()


def test_phase_base_is_hans_regime_with_gram_sampling():
    base = phase_base()
    assert base.engine == "coefficients" and base.sampling == "gram" and base.test == "spurious"
    assert base.virtual_test == "fresh"
    assert math.isclose(base.n * base.snr**2, default_config().n * default_config().snr ** 2)
    grid = phase_grid()
    assert len(grid["tau"]) >= 20 and len(grid["mu_norm"]) >= 20
    with pytest.raises(ConfigError):
        base.replace(sampling="explicit")  # fresh virtual tests need Gram sampling: the phase map keeps both


def test_prevention_boundary():
    from lnref.reproduce.methods_phase import prevention_boundary

    fit = np.array([[1.0, 0.2, 0.6, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.9], [0.0, 0.0, 0.0, 0.0, 0.0]])
    b = prevention_boundary(fit, np.array([0.5, 1.0, 2.0, 4.0, 8.0]))
    assert b[0] == 4.0 and math.isnan(b[1]) and b[2] == 0.5
