"""`lnref reproduce methods` and `methods-phase` (issue 22): they run and write their files, their rows can fail,
the phase map's CSV is tidy and resumable, and a method is one entry of a list."""

import csv
import json
import math

import numpy as np
import pytest

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
    method_checks,
    method_config,
    method_key,
)
from lnref.reproduce.methods_phase import phase_base, phase_checks, phase_grid


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


def test_methods_phase_quick_is_tidy_and_resumes(tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["reproduce", "methods-phase", "--quick", "--out", str(out), "--threads", "1"]
    assert main(argv) == 0
    folder = out / "methods_phase_sweep"
    rows = _sweep_rows(folder)
    grid = phase_grid(True)
    cells = len(grid["loss"]) * len(grid["tau"]) * len(grid["mu_norm"])
    assert len(rows) == cells  # one row per run (1 replicate with --quick)
    assert {"cell", "replicate", "seed", "loss", "tau", "mu_norm", "train_acc_noisy", "test_error"} <= set(rows[0])
    assert {r["loss"] for r in rows} == set(grid["loss"])
    assert all(0.0 <= float(r["train_acc_noisy"]) <= 1.0 for r in rows)
    assert json.loads((out / "reproduction.json").read_text())["dirs"] == ["methods_phase_sweep"]
    # interrupted: half the rows lost; the same command resumes the rest and gives the same rows
    lines = (folder / "sweep.csv").read_text().splitlines(keepends=True)
    keep = 1 + cells // 2
    (folder / "sweep.csv").write_text("".join(lines[:keep]))
    assert main(argv) == 0
    again = _sweep_rows(folder)
    key = lambda r: (int(r["cell"]), int(r["replicate"]))  # noqa: E731
    assert sorted(again, key=key) == sorted(rows, key=key)
    report = (out / "report.md").read_text()
    assert f"Resumed: {keep - 1} of {cells} runs" in report
    for f in ("methods_phase.json", "report.md"):
        assert (out / f).is_file()


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
