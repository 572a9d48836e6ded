"""lnref against the slow NumPy references of tests/naive.py (docs/DESIGN.md tolerance tier: rtol ~1e-12 per step)."""

from __future__ import annotations

import numpy as np
import pytest

import lnref
import naive
from lnref.data import label_noise_signs, stream

RTOL = 1e-12


def close(actual, expected, rtol=RTOL, what=""):
    """assert_allclose with rtol and an absolute floor of rtol * max|expected| (entries near 0)."""
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def small_config(q, **kw):
    base = dict(
        n=20,
        d=60,
        m=3,
        q=q,
        steps=200,
        log_every=1,
        n_test=0,
        seed=3,
        tau=0.2,
        eta=0.5,
        sigma0=0.05,
        sigma_p=0.5,
        mu_norm=2.0,
    )
    base.update(kw)
    return lnref.Config(**base)


def naive_run(cfg, data, W0, eps_rows=None):
    return naive.run(W0, data.mu, data.xi, data.y, data.y_obs, cfg.q, cfg.eta, cfg.steps, eps_rows)


@pytest.fixture(scope="module", params=[1.0, 2.0, 3.0])
def plain_runs(request):
    q = request.param
    # q = 3 has tiny gradients at sigma0 = 0.05; a larger init makes the 200 steps move the weights
    cfg = small_config(q, sigma0=0.3 if q == 3.0 else 0.05, noise="isotropic" if q == 2.0 else "orthogonal")
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    return cfg, data, W0, lnref.train(cfg, data, W0), naive_run(cfg, data, W0)


def test_plain_gd_matches_naive_weights_and_losses(plain_runs):
    cfg, _data, W0, res, ref = plain_runs
    # the run is non-trivial: the weights moved well beyond rounding and the loss fell
    assert np.max(np.abs(res.W - W0)) > 1e-3 * np.max(np.abs(W0))
    assert ref["loss"][-1] < ref["loss"][0]
    close(res.W, ref["W"][-1], what="final W")
    np.testing.assert_array_equal(res.history["step"], np.arange(cfg.steps + 1))
    close(res.history["loss"], ref["loss"], what="loss at every step")


def test_plain_gd_coefficient_recursions_match_naive(plain_runs):
    _cfg, _data, _W0, res, ref = plain_runs
    close(res.trace["gamma"], ref["gamma"], what="gamma at every step")
    close(res.trace["rho"], ref["rho"], what="rho at every step")
    close(res.gamma, ref["gamma"][-1])
    close(res.rho, ref["rho"][-1])


def test_decompose_returns_the_recursion_coefficients(plain_runs):
    _cfg, data, W0, res, _ref = plain_runs
    gamma, rho = lnref.decompose(res.W, W0, data)
    close(gamma, res.gamma, rtol=1e-8, what="decompose gamma vs recursion")
    close(rho, res.rho, rtol=1e-8, what="decompose rho vs recursion")
    # the naive normal-equation solve agrees as well
    g2, r2 = naive.decompose(res.W, W0, data.mu, data.xi)
    close(gamma, g2, rtol=1e-8)
    close(rho, r2, rtol=1e-8)
    # reconstruct returns W (from the recursion's coefficients and from decompose's)
    close(lnref.reconstruct(W0, res.gamma, res.rho, data), res.W, rtol=1e-10)
    close(lnref.reconstruct(W0, gamma, rho, data), res.W, rtol=1e-10)
    close(naive.reconstruct(W0, res.gamma, res.rho, data.mu, data.xi), res.W, rtol=1e-10)


@pytest.mark.parametrize("q", [1.0, 2.0])
def test_label_noise_gd_matches_naive_step_by_step(q):
    cfg = small_config(q, algorithm="label_noise_gd", p=0.2, steps=60, seed=5)
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    eps_rows = label_noise_signs(stream(cfg.seed, "label_noise"), (cfg.steps, cfg.n), cfg.p)
    assert np.any(eps_rows == -1.0)  # the label noise is really active
    res = lnref.train(cfg, data, W0)
    ref = naive_run(cfg, data, W0, eps_rows)
    close(res.history["loss"], ref["loss"], what="loss at every step")
    close(res.trace["gamma"], ref["gamma"])
    close(res.trace["rho"], ref["rho"])
    close(res.W, ref["W"][-1])
    # the same trajectory without the eps draws differs: the test is sensitive to eps
    plain = naive_run(cfg.replace(algorithm="gd"), data, W0)
    assert not np.allclose(plain["W"][-1], ref["W"][-1], rtol=1e-6, atol=0)


@pytest.mark.parametrize("q", [1.0, 1.5, 2.0, 3.0])
def test_forward_loss_gradient_match_naive_at_random_weights(q):
    cfg = small_config(q, n=7, d=15, m=2, seed=11)
    data = lnref.make_data(cfg)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((2, cfg.m, cfg.d)) * 0.3
    args = (data.mu, data.xi, data.y, data.y_obs, q)
    close(lnref.forward(W, data, q), naive.forward(W, data.mu, data.xi, data.y, q))
    close(lnref.loss(W, data, q), naive.loss(W, *args))
    close(lnref.gradient(W, data, q), naive.gradient(W, *args))
    eps = np.where(rng.random(cfg.n) < 0.3, -1.0, 1.0)
    close(lnref.loss(W, data, q, eps=eps), naive.loss(W, *args, eps=eps))
    close(lnref.gradient(W, data, q, eps=eps), naive.gradient(W, *args, eps=eps))
    close(lnref.gd_step(W, data, 0.7, q, eps=eps), naive.gd_step(W, *args, 0.7, eps=eps))


def test_reconstruct_is_the_coefficient_engines_weights_bit_for_bit():
    """lnref.reconstruct computes W through _equations.weight_row, the kernel of CoefficientEngine.weights
    (SPEC.md section 4): the same bits for the same coefficients."""
    cfg = small_config(1.0, engine="coefficients", steps=20)
    res = lnref.train(cfg)
    W = lnref.reconstruct(res.W0, res.gamma, res.rho, res.data)
    assert np.array_equal(W, res.W)
    gamma, rho = lnref.decompose(W, res.W0, res.data)
    close(gamma, res.gamma, rtol=1e-8)
    close(rho, res.rho, rtol=1e-8)
