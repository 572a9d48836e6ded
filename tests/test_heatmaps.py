"""Heatmap reproductions (Kou 2023, Cao 2022, Huang 2025) at reduced size; SPEC.md section 6."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lnref.reproduce import Context, load_all, run_reproduction
from lnref.reproduce.heatmaps import (cao_base, fit_boundary_constant, huang_base, kou_base, kou_grid,
                                      switch_points)
from lnref.sweeps import SerialExecutor, sweep


def test_registered():
    reps = load_all()
    assert {"kou2023-heatmap", "huang2025-heatmap", "cao2022-heatmap"} <= set(reps)


def test_kou_grid_is_the_papers():
    g = kou_grid(quick=False)
    assert len(g["mu_norm"]) == 100 and g["mu_norm"][0] == 0.0 and g["mu_norm"][-1] == 9.9
    assert g["d"] == list(range(100, 1091, 10))
    base = kou_base()
    # their eta 0.1 with f_theirs(W) = f(c W), c = m/2: eta * c^2 here
    assert base.eta == pytest.approx(0.1 * (base.m / 2) ** 2)
    assert base.test_flipped_labels and base.n == 20 and base.steps == 100


def test_switch_points_and_boundary_fit_recover_a_known_boundary():
    """Synthetic errors with a sharp switch at mu*(d) = (C d / n)^(1/4): the fit returns C."""
    n, C = 20, 3.0
    mus = np.linspace(0.1, 9.9, 99)
    ds = np.arange(100, 1091, 90, dtype=float)
    mu_star = (C * ds / n) ** 0.25
    err = np.where(mus[:, None] >= mu_star[None, :], 0.1, 0.5)
    found = switch_points(mus, err, 0.3)
    assert np.all(np.abs(found - mu_star) <= mus[1] - mus[0])
    assert fit_boundary_constant(n * found ** 4 / ds) == pytest.approx(C, rel=0.1)
    assert math.isnan(switch_points(mus, np.full((99, 1), 0.5), 0.3)[0])
    assert switch_points(np.array([1.0, 2.0]), np.array([[0.5], [0.1]]), 0.3)[0] == pytest.approx(1.5)


def test_kou_quick_reproduction_end_to_end(tmp_path):
    ctx = Context(out=tmp_path, quick=True, seeds=2, log=lambda s: None)
    checks = run_reproduction("kou2023-heatmap", ctx)
    assert len(checks) == 3 and all(c.holds for c in checks), checks
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reproduction"] == "kou2023-heatmap" and len(summary["checks"]) == 3
    assert (tmp_path / "report.md").exists() and (tmp_path / "kou2023_heatmap_mean.csv").exists()
    assert (tmp_path / "kou2023_heatmap.png").stat().st_size > 1000
    boundary = json.loads((tmp_path / "kou2023_boundary.json").read_text())
    assert boundary["C"] > 0


def test_cao_benign_and_harmful_corners():
    """q = 3: n SNR^3 far above 1 is benign (error <= 0.1), far below is harmful (>= 0.3); 3 seeds each."""
    d, sp = cao_base().d, cao_base().sigma_p
    base = cao_base(n_test=300, seed=11)
    grid = {"mu_norm": [0.03 * sp * math.sqrt(d), 0.8 * sp * math.sqrt(d)], "n": [10, 160]}
    res = sweep(base, grid, replicates=3, executor=SerialExecutor())
    err = res.mean("test_error")
    n_snr3 = np.array(grid["n"])[None, :] * (np.array([0.03, 0.8]) ** 3)[:, None]
    assert n_snr3[0, 0] < 1e-3 and n_snr3[1, 1] > 50
    assert err[0, 0] >= 0.3   # harmful: n SNR^3 ~ 3e-4
    assert err[1, 1] <= 0.1   # benign: n SNR^3 ~ 80
    assert not res.values("diverged").any()


def test_huang_label_noise_gd_beats_plain_gd_at_low_snr():
    """SNR = 0.1, n = 60 (n SNR^2 = 0.6): over 2 seeds LN-GD's test error is lower by at least 0.1."""
    base = huang_base(n=60, steps=300, n_test=300, seed=5)
    mu = 0.1 * base.sigma_p * math.sqrt(base.d)
    res = sweep(base, {"algorithm": ["gd", "label_noise_gd"], "mu_norm": [mu]}, replicates=2,
                executor=SerialExecutor())
    err = res.mean("test_error")[:, 0]
    assert err[1] <= err[0] - 0.1, err
