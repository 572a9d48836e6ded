"""lnref.testing / lnref.fixtures / `lnref export`, `lnref compare`: the toolkit catches real mistakes.

The "implementations" below are plain NumPy written independently of lnref (one with a switchable bug each);
every assertion is about what lnref reports on them.
"""
from __future__ import annotations

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.fixtures import load_fixture, make_fixture, save_fixture
from lnref.io import OutputError
from lnref.testing import (TIERS, Tolerance, assert_gradient_matches, assert_step_matches,
                           assert_trajectory_matches, check_gradient, check_step, compare_trajectory,
                           resolve_tolerance)


def their_gradient(W, mu, xi, y, y_obs, q, bug=None, dtype=np.float64):
    """grad of (1/n) sum_i log(1 + exp(-y_obs_i f_i)) written from SPEC.md, with an optional bug."""
    W, mu, xi, y, y_obs = (np.asarray(a, dtype) for a in (W, mu, xi, y, y_obs))
    m, n = W.shape[1], xi.shape[0]
    y_signal = y_obs if bug == "observed_label" else y
    z_sig = np.einsum("jrd,d->jr", W, mu)[:, :, None] * y_signal          # (2, m, n)
    z_noi = np.einsum("jrd,id->jri", W, xi)                               # (2, m, n)
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    if bug == "relu_grad_at_zero":
        dsig = lambda z: (z >= 0).astype(dtype)  # noqa: E731
    else:
        dsig = lambda z: (z > 0) * q * relu(z) ** (q - 1)  # noqa: E731
    F = (relu(z_sig) ** q + relu(z_noi) ** q).sum(axis=1) / m
    f = F[0] - F[1]
    c = -1 / (1 + np.exp(y_obs * f)) * y_obs
    s = np.array([1, -1], dtype)[:, None, None]
    G = s * ((dsig(z_sig) * c * y_signal).sum(-1)[:, :, None] * mu + np.einsum("jri,i,id->jrd", dsig(z_noi), c, xi))
    G = G / (n * (1 if bug == "missing_1_over_m" else m))
    if bug == "j_swapped":
        G = G[::-1]
    if bug == "layout_m2d":
        G = G.transpose(1, 0, 2)
    return np.ascontiguousarray(G)


def their_step(W, mu, xi, y, y_obs, q, eta, bug=None):
    return W - eta * their_gradient(W, mu, xi, y, y_obs, q, bug)


def their_trajectory(fx, bug=None, dtype=np.float64):
    W = fx.W0.astype(dtype)
    out = {0: W.copy()}
    for t in range(fx.total_steps):
        G = their_gradient(W, fx.data.mu, fx.data.xi, fx.data.y, fx.mult(t), fx.config.q, bug, dtype)
        W = (W - dtype(fx.config.eta) * G).astype(dtype)
        if t + 1 in fx.steps:
            out[t + 1] = W.copy()
    return out


CFG = lnref.Config(n=12, d=40, m=3, tau=0.25, flips="exact", steps=10, sigma_p=1.0, mu_norm=3.0, eta=0.5,
                   n_test=0, seed=3)


@pytest.fixture(scope="module")
def fx():
    return make_fixture(CFG, [0, 1, 3, 10])


@pytest.fixture(scope="module")
def fx_zero_row():
    """W0 with filter (j=+1, r=1) exactly zero: every inner product of that filter is exactly 0."""
    W0 = lnref.init_weights(CFG)
    W0[0, 1] = 0.0
    return make_fixture(CFG, [0, 1, 3, 10], W0=W0)


# ------------------------------------------------------------------------- fixtures equal lnref.train
@pytest.mark.parametrize("algorithm", ["gd", "label_noise_gd"])
def test_fixture_equals_train(algorithm):
    cfg = CFG.replace(algorithm=algorithm, p=0.2, steps=6)
    fx = make_fixture(cfg, [0, 2, 5])
    res = lnref.train(cfg.replace(log_every=1))
    for k, t in enumerate(fx.steps):
        row = int(np.flatnonzero(res.history["step"] == t)[0])
        np.testing.assert_array_equal(fx.gamma[k], res.trace["gamma"][row])
        np.testing.assert_array_equal(fx.rho[k], res.trace["rho"][row])
        assert fx.loss[k] == pytest.approx(res.history["loss"][row], rel=1e-15, abs=0)
    np.testing.assert_array_equal(fx.W[-1], res.W)
    # the gradient stored at each checkpoint is the step actually taken: W(t+1) = W(t) - eta grad
    fx1 = make_fixture(cfg, range(0, 7))
    for k in range(6):
        np.testing.assert_array_equal(fx1.W[k + 1], fx1.W[k] - cfg.eta * fx1.grad[k])
    if algorithm == "label_noise_gd":
        assert fx.eps.shape == (7, cfg.n) and np.any(fx.eps == -1.0)


def test_fixture_roundtrip_and_corruption(fx, tmp_path):
    path = save_fixture(fx, tmp_path / "f.npz")
    back = load_fixture(path)
    for name, a in fx.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], a)
    assert back.config == fx.config
    with pytest.raises(OutputError, match="exists"):
        save_fixture(fx, path)
    save_fixture(fx, path, force=True)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["W"] = arrays["W"] + 1e-3
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(OutputError, match="'W' does not match its SHA-256"):
        load_fixture(tmp_path / "edited.npz")
    np.savez(tmp_path / "plain.npz", W=fx.W)
    with pytest.raises(lnref.ConfigError, match="not an lnref fixture"):
        load_fixture(tmp_path / "plain.npz")


# ------------------------------------------------------------------------- a correct implementation passes
def test_correct_numpy_implementation_passes(fx):
    assert_gradient_matches(their_gradient, fx)
    assert_step_matches(their_step, fx)
    rep = assert_trajectory_matches(their_trajectory(fx), fx)
    assert rep.passed and rep.first_failure is None and len(rep.rows) == 4
    assert max(r.rel_err for r in rep.rows) < 1e-13


def test_check_gradient_from_config_and_label_noise():
    cfg = CFG.replace(algorithm="label_noise_gd", p=0.3, steps=2)
    rep = check_gradient(their_gradient, cfg)
    assert rep.passed, rep.text()
    # ignoring eps (passing plain y_obs) is caught and named
    fx = make_fixture(cfg, [0, 1, 2])
    y_obs = fx.data.y_obs
    rep = check_gradient(lambda W, mu, xi, y, yo, q: their_gradient(W, mu, xi, y, y_obs, q), fx)
    assert not rep.passed
    assert "label_noise_ignored" in rep.mistakes and "eps" in rep.text()


# ------------------------------------------------------------------------- the toolkit catches mistakes
def test_missing_one_over_m_is_named(fx):
    rep = check_gradient(lambda *a: their_gradient(*a, bug="missing_1_over_m"), fx)
    assert not rep.passed and rep.first_failure == 0
    assert rep.mistakes == ["missing_1_over_m"]
    assert "1/m" in rep.text() and f"m = {CFG.m} times" in rep.text()
    with pytest.raises(AssertionError, match="1/m"):
        assert_gradient_matches(lambda *a: their_gradient(*a, bug="missing_1_over_m"), fx)
    traj = compare_trajectory(their_trajectory(fx, "missing_1_over_m"), fx)
    assert traj.first_failure == 1 and traj.rows[0].ok
    assert "missing_1_over_m" in traj.mistakes and "1/m" in "\n".join(traj.diagnosis)


def test_relu_derivative_at_zero_needs_and_finds_an_exact_zero(fx, fx_zero_row):
    bug = lambda *a: their_gradient(*a, bug="relu_grad_at_zero")  # noqa: E731
    # without an exactly-zero inner product the convention is invisible, and lnref says so
    quiet = check_gradient(bug, fx)
    assert quiet.passed
    rep = check_gradient(bug, fx_zero_row)
    assert not rep.passed
    assert rep.mistakes == ["relu_derivative_one_at_zero"]
    text = rep.text()
    assert "sigma'(0)" in text
    # the decomposition points at the zero filter (j=+1, r=1) and no other for gamma
    assert "gamma differ at 1 of 6 filters: (j=+1, r=1)" in text
    assert "filters of j = +1;" in text
    traj = compare_trajectory(their_trajectory(fx_zero_row, "relu_grad_at_zero"), fx_zero_row)
    assert "relu_derivative_one_at_zero" in traj.mistakes


def test_observed_label_in_signal_patch_names_gamma_and_mislabelled(fx):
    n_noisy = int(fx.data.noisy.sum())
    assert 0 < n_noisy < CFG.n
    rep = check_gradient(lambda *a: their_gradient(*a, bug="observed_label"), fx)
    assert rep.mistakes == ["signal_patch_observed_label"]
    text = rep.text()
    assert "signal coefficients gamma differ" in text
    # rho moves only for mislabelled samples (through their loss derivative), never for clean ones
    assert f"{n_noisy} of {n_noisy} mislabelled, 0 of {CFG.n - n_noisy} clean" in text
    assert "OBSERVED label" in text and "mislabelled" in "\n".join(rep.diagnosis)
    traj = compare_trajectory(their_trajectory(fx, "observed_label"), fx)
    assert traj.mistakes == ["signal_patch_observed_label"]
    assert "signal coefficients gamma differ" in traj.text()


def test_swapped_and_transposed_layouts(fx):
    rep = check_gradient(lambda *a: their_gradient(*a, bug="j_swapped"), fx)
    assert rep.mistakes == ["j_swapped"] and "j = +1 and j = -1 are swapped" in rep.text()
    rep = check_gradient(lambda *a: their_gradient(*a, bug="layout_m2d"), fx)
    assert not rep.passed and "(m, 2, d)" in rep.text()
    assert "transposed" in "\n".join(rep.diagnosis) and "their values match" in "\n".join(rep.diagnosis)
    step = check_step(lambda *a: their_step(*a, bug="j_swapped"), fx)
    assert "j_swapped" in step.mistakes
    traj = compare_trajectory(their_trajectory(fx, "j_swapped"), fx)
    assert "j_swapped" in traj.mistakes
    W = {int(t): w.transpose(1, 0, 2) for t, w in zip(fx.steps, fx.W)}
    with pytest.raises(lnref.ConfigError, match=r"looks like \(m, 2, d\)"):
        compare_trajectory(W, fx)


def test_float32_drift_is_diagnosed_and_passes_float32_tier(fx):
    traj32 = their_trajectory(fx, dtype=np.float32)
    rep = compare_trajectory(traj32, fx, tier="float64")
    assert not rep.passed and not rep.mistakes
    assert "float32" in "\n".join(rep.diagnosis)
    ok = compare_trajectory(traj32, fx, tier="float32")
    assert ok.passed, ok.text()
    # float32 arithmetic, float64 storage: still recognised as single-precision rounding
    traj32_64 = {t: W.astype(np.float64) + 0.0 for t, W in traj32.items() if t > 0}
    rep = compare_trajectory(traj32_64, fx)
    assert "float32" in "\n".join(rep.diagnosis)
    # the float32 tier still rejects a real mistake
    bad = compare_trajectory(their_trajectory(fx, "missing_1_over_m", np.float32), fx, tier="float32")
    assert not bad.passed and "missing_1_over_m" in bad.mistakes


def test_a_scalar_factor_is_reported_without_a_catalogue_entry(fx):
    rep = check_gradient(lambda *a: 2.0 * their_gradient(*a), fx)
    assert not rep.passed and not rep.mistakes
    assert "exactly 2 = 2 times lnref's" in rep.text()


def test_tolerances_grow_with_step_and_can_be_overridden(fx):
    assert TIERS["float64"].at(0) == TIERS["float64"].rtol and TIERS["float64"].at(9) == 10 * TIERS["float64"].rtol
    traj = their_trajectory(fx)
    W = {t: w * (1 + 1e-9) for t, w in traj.items()}
    assert not compare_trajectory(W, fx).passed
    assert compare_trajectory(W, fx, rtol=1e-8).passed
    assert resolve_tolerance("float32", rtol=1e-3).rtol == 1e-3
    with pytest.raises(lnref.ConfigError, match="tier='float16' is not allowed"):
        resolve_tolerance("float16")
    with pytest.raises(lnref.ConfigError, match="rtol=-1"):
        Tolerance("x", rtol=-1)


def test_unusable_trajectories_are_refused(fx):
    with pytest.raises(lnref.ConfigError, match="step\\(s\\) \\[2\\] are not checkpoints"):
        compare_trajectory({2: fx.W[0]}, fx)
    with pytest.raises(lnref.ConfigError, match="NaN"):
        compare_trajectory({1: fx.W[1] * np.nan}, fx)
    with pytest.raises(lnref.ConfigError, match="shape"):
        compare_trajectory(fx.W[:, :, :, :-1], fx)


# ------------------------------------------------------------------------- CLI
def test_cli_export_and_compare(tmp_path, capsys):
    out = tmp_path / "fx.npz"
    args = ["export", "--n", "8", "--d", "20", "--m", "2", "--steps", "4", "--checkpoints", "0,1,3",
            "--n-test", "0", "--tau", "0.25", "--flips", "exact", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    fx = load_fixture(out)
    assert fx.steps.tolist() == [0, 1, 3, 4]
    traj = their_trajectory(fx)
    np.savez(tmp_path / "good.npz", step=np.array(sorted(traj)), W=np.stack([traj[t] for t in sorted(traj)]))
    capsys.readouterr()
    assert main(["compare", str(out), str(tmp_path / "good.npz")]) == 0
    assert "MATCH" in capsys.readouterr().out
    bad = their_trajectory(fx, "missing_1_over_m")
    np.savez(tmp_path / "bad.npz", step=np.array(sorted(bad)), W=np.stack([bad[t] for t in sorted(bad)]))
    assert main(["compare", str(out), str(tmp_path / "bad.npz")]) == 1
    assert "1/m" in capsys.readouterr().out
    np.savez(tmp_path / "nostep.npz", W=fx.W)
    assert main(["compare", str(out), str(tmp_path / "nostep.npz")]) == 2
    assert "lacks the array(s) 'step'" in capsys.readouterr().err
    np.savez(tmp_path / "shape.npz", step=fx.steps, W=fx.W[:, :, :, :5])
    assert main(["compare", str(out), str(tmp_path / "shape.npz")]) == 2
    assert "shape" in capsys.readouterr().err
    np.savez(tmp_path / "nan.npz", step=fx.steps, W=fx.W * np.nan)
    assert main(["compare", str(out), str(tmp_path / "nan.npz")]) == 2
    assert "NaN" in capsys.readouterr().err
    np.savez(tmp_path / "int.npz", step=fx.steps, W=np.zeros(fx.W.shape, dtype=np.int64))
    assert main(["compare", str(out), str(tmp_path / "int.npz")]) == 2
    assert "float64 or float32" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.npz"), str(tmp_path / "good.npz")]) == 2
    assert main(["export", "--steps", "3", "--checkpoints", "0,5", "--out", str(tmp_path / "x.npz")]) == 2
    assert "every checkpoint must be in [0, steps=3]" in capsys.readouterr().err
