"""Heatmap reproductions (Kou 2023, Cao 2022, Huang 2025) at reduced size; SPEC.md section 6."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lnref.config import ConfigError
from lnref.reproduce import Context, load_all, run_reproduction
from lnref.reproduce.common import have_matplotlib
from lnref.reproduce.heatmaps import (
    KOU_PUBLISHED_D,
    KOU_PUBLISHED_MU,
    boundary_slope,
    cao_base,
    compare_tables,
    fit_boundary_constant,
    huang_base,
    kou_base,
    kou_grid,
    load_published,
    published_on_grid,
    switch_points,
)
from lnref.sweeps import SerialExecutor, sweep


def test_registered():
    reps = load_all()
    assert {"kou2023-heatmap", "huang2025-heatmap", "cao2022-heatmap"} <= set(reps)


def test_kou_grid_and_config_are_the_authors():
    """syntheticrelu.py of uclaml/Benign_ReLU_CNN (lines cited in heatmaps.KOU_CONVENTIONS)."""
    g = kou_grid(quick=False)
    assert len(g["mu_norm"]) == 100 and g["mu_norm"][0] == 0.0 and g["mu_norm"][-1] == 9.9
    assert g["d"] == list(range(100, 1091, 10))
    quick = kou_grid(quick=True)  # a subset of the published cells, so --published works with --quick
    assert set(quick["mu_norm"]) <= set(KOU_PUBLISHED_MU) and set(quick["d"]) <= set(KOU_PUBLISHED_D)
    base = kou_base()
    assert (base.init, base.bias, base.patch_reduce, base.output_scale) == ("torch", True, "mean", 1.0)
    assert base.eta == 0.1 and base.steps == 100 and base.n == 20 and base.m == 10 and base.n_test == 1000
    assert (base.noise, base.flips, base.tau, base.test_flipped_labels) == ("isotropic", "independent", 0.1, True)
    assert base.sigma_p == 1.0 and base.q == 1.0
    # their class output sums the filters and averages the two patches: divisor 2 (not m)
    assert base.output_divisor == 2.0


def _published_file(path, table_mu_d):
    np.savetxt(path, np.asarray(table_mu_d).T)  # their file: rows d, columns ||mu||
    return path


def test_load_published_reads_their_layout_and_refuses_bad_files(tmp_path):
    mu = np.array(KOU_PUBLISHED_MU)[:, None]
    d = np.array(KOU_PUBLISHED_D, dtype=float)[None, :]
    table = 0.5 * mu / 10 + d / 1e4  # distinct in both directions
    got = load_published(_published_file(tmp_path / "t.csv", table))
    np.testing.assert_allclose(got, table, rtol=1e-15)
    sub = published_on_grid(got, [0.5, 9.9], [100, 1090])
    np.testing.assert_allclose(sub, table[np.ix_([5, 99], [0, 99])], rtol=1e-15)
    with pytest.raises(ConfigError, match="not on the published grid"):
        published_on_grid(got, [0.55], [100])
    with pytest.raises(ConfigError, match="no such file"):
        load_published(tmp_path / "missing.csv")
    np.savetxt(tmp_path / "small.csv", np.zeros((10, 100)))
    with pytest.raises(ConfigError, match="100 x 100"):
        load_published(tmp_path / "small.csv")
    np.savetxt(tmp_path / "big.csv", np.full((100, 100), 1.5))
    with pytest.raises(ConfigError, match=r"outside \[0, 1\]"):
        load_published(tmp_path / "big.csv")
    (tmp_path / "text.csv").write_text("a b c\n")
    with pytest.raises(ConfigError, match="not a whitespace-separated table"):
        load_published(tmp_path / "text.csv")


def test_compare_tables_and_boundary_slope_on_known_tables():
    a = np.array([[0.1, 0.2], [0.3, 0.4]])
    c = compare_tables(a, a + np.array([[0.01, -0.03], [0.0, 0.02]]))
    assert c["mean_abs_diff"] == pytest.approx(0.015) and c["max_abs_diff"] == pytest.approx(0.03)
    assert c["mean_diff"] == pytest.approx(0.0) and 0.9 < c["correlation"] < 1.0
    # a sharp switch at mu*(d) = (C d / n)^(1/4): slope 1/4 (up to the grid's resolution)
    mus = np.round(np.arange(100) * 0.1, 1)
    ds = np.arange(100, 1091, 10, dtype=float)
    star = (3.0 * ds / 20) ** 0.25
    err = np.where(mus[:, None] >= star[None, :], 0.1, 0.5)
    found, slope = boundary_slope(mus, ds, err, 0.3)
    assert np.all(np.abs(found - star) <= 0.1)
    assert abs(slope - 0.25) <= 0.02


def test_switch_points_and_boundary_fit_recover_a_known_boundary():
    """Synthetic errors with a sharp switch at mu*(d) = (C d / n)^(1/4): the fit returns C."""
    n, C = 20, 3.0
    mus = np.linspace(0.1, 9.9, 99)
    ds = np.arange(100, 1091, 90, dtype=float)
    mu_star = (C * ds / n) ** 0.25
    err = np.where(mus[:, None] >= mu_star[None, :], 0.1, 0.5)
    found = switch_points(mus, err, 0.3)
    assert np.all(np.abs(found - mu_star) <= mus[1] - mus[0])
    assert fit_boundary_constant(n * found**4 / ds) == pytest.approx(C, rel=0.1)
    assert math.isnan(switch_points(mus, np.full((99, 1), 0.5), 0.3)[0])
    assert switch_points(np.array([1.0, 2.0]), np.array([[0.5], [0.1]]), 0.3)[0] == pytest.approx(1.5)


def test_kou_quick_reproduction_end_to_end_with_a_published_table(tmp_path):
    # a synthetic "published" table with a sharp boundary n ||mu||^4 = 0.5 d: the comparison rows are computed
    # from it (their verdicts are not asserted: the table is made up), the figure has four panels; the grid is run
    # again with the sum over the patches (KOU_PUBLISHED_VARIANT) and compared with the table too
    mu = np.array(KOU_PUBLISHED_MU)[:, None]
    d = np.array(KOU_PUBLISHED_D, dtype=float)[None, :]
    table = np.where(20 * mu**4 >= 0.5 * d, 0.1, 0.5)
    ctx = Context(out=tmp_path, quick=True, log=lambda s: None)  # the default: 10 replicates, as theirs
    ctx.published = _published_file(tmp_path / "published.csv", table)
    checks = run_reproduction("kou2023-heatmap", ctx)
    assert len(checks) == 7, checks
    assert checks[0].holds and checks[1].holds, checks[:2]  # benign corner, harmful corner
    # the boundary's slope (theory 1/4) from 6 values of d and 10 replicates: SE about 0.03, so only its sign and
    # size are asserted here; the full run's report holds it to 0.05
    boundary = json.loads((tmp_path / "kou2023_boundary.json").read_text())
    assert 0.1 < boundary["slope_log_mu_vs_log_d"] < 0.45, boundary["slope_log_mu_vs_log_d"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reproduction"] == "kou2023-heatmap" and len(summary["checks"]) == 7
    # two grids of 10 x 6 cells x 10 replicates; the report names the runs and the whole command
    assert summary["training_runs"] == 2 * 60 * 10
    report = (tmp_path / "report.md").read_text()
    assert "1200 training runs of 120 configs" in report and f"--published {ctx.published}`" in report
    assert "abs(lnref - published)" in report
    rows = [line for line in report.splitlines() if line.startswith("| Kou 2023")]
    assert len(rows) == 7, rows
    assert all(line.replace("\\|", "").count("|") == 6 for line in rows), rows  # 5 cells, no stray |
    assert summary["seeds"] == 10 and all(c["criterion"] and c["tolerance"] and c["source"] for c in summary["checks"])
    assert "syntheticrelu.py" in report  # the conventions with their lines are in the report's notes
    assert boundary["comparison"]["cells"] == 60 and boundary["C"] > 0
    # the published side's boundary is the same fit, on the published cells of lnref's grid
    g = kou_grid(quick=True)
    sub = published_on_grid(table, g["mu_norm"], g["d"])
    star, slope = boundary_slope(np.array(g["mu_norm"]), np.array(g["d"], float), sub, 0.3)
    assert boundary["published_slope"] == pytest.approx(slope, rel=1e-12)
    np.testing.assert_allclose(boundary["published_mu_switch"], star, rtol=1e-12)
    rows = (tmp_path / "kou2023_vs_published.csv").read_text().splitlines()
    assert rows[0] == "mu_norm,d,published,lnref,lnref_sem,difference" and len(rows) == 61
    assert "syntheticrelu.py" in (tmp_path / "kou2023_conventions.md").read_text()
    # the variant: the same grid, seeds and replicates with patch_reduce='sum' only, its own comparison
    main_run = json.loads((tmp_path / "kou2023_heatmap.json").read_text())
    variant_run = json.loads((tmp_path / "kou2023_heatmap_patch_sum.json").read_text())
    assert variant_run["base_config"] == {**main_run["base_config"], "patch_reduce": "sum"}
    assert main_run["base_config"]["patch_reduce"] == "mean" and variant_run["grid"] == main_run["grid"]
    variant = boundary["published_variant"]
    assert (
        variant["comparison"]["cells"] == 60 and variant["comparison"]["published_slope"] == boundary["published_slope"]
    )
    rows = (tmp_path / "kou2023_patch_sum_vs_published.csv").read_text().splitlines()
    assert rows[0].startswith("mu_norm,d,published,lnref_patch_sum") and len(rows) == 61
    main_err = np.array(
        [float(r.split(",")[3]) for r in (tmp_path / "kou2023_vs_published.csv").read_text().splitlines()[1:]]
    )
    assert not np.array_equal(main_err, np.array([float(r.split(",")[3]) for r in rows[1:]]))  # other runs
    if have_matplotlib():
        assert (tmp_path / "kou2023_heatmap.png").stat().st_size > 1000


def test_published_is_refused_for_other_reproductions(tmp_path):
    from lnref.cli import main

    assert (
        main(
            [
                "reproduce",
                "cao2022-heatmap",
                "--quick",
                "--published",
                str(tmp_path / "x.csv"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


def test_cao_benign_and_harmful_corners():
    """q = 3: n SNR^3 far above 1 is benign (error <= 0.1), far below is harmful (>= 0.3); 3 seeds each."""
    d, sp = cao_base().d, cao_base().sigma_p
    base = cao_base(n_test=300, seed=11)
    grid = {"mu_norm": [0.03 * sp * math.sqrt(d), 0.8 * sp * math.sqrt(d)], "n": [10, 160]}
    res = sweep(base, grid, replicates=3, executor=SerialExecutor())
    err = res.mean("test_error")
    n_snr3 = np.array(grid["n"])[None, :] * (np.array([0.03, 0.8]) ** 3)[:, None]
    assert n_snr3[0, 0] < 1e-3 and n_snr3[1, 1] > 50
    assert err[0, 0] >= 0.3  # harmful: n SNR^3 ~ 3e-4
    assert err[1, 1] <= 0.1  # benign: n SNR^3 ~ 80
    assert not res.values("diverged").any()


def test_huang_label_noise_gd_beats_plain_gd_at_low_snr():
    """SNR = 0.1, n = 60 (n SNR^2 = 0.6): over 2 seeds LN-GD's test error is lower by at least 0.1."""
    base = huang_base(n=60, steps=300, n_test=300, seed=5)
    mu = 0.1 * base.sigma_p * math.sqrt(base.d)
    res = sweep(base, {"algorithm": ["gd", "label_noise_gd"], "mu_norm": [mu]}, replicates=2, executor=SerialExecutor())
    err = res.mean("test_error")[:, 0]
    assert err[1] <= err[0] - 0.1, err
