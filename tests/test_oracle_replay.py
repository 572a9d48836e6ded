"""lnref.oracle.replay: the ONE NumPy reference of the dynamics equals lnref, and its switches do what they say."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lnref
from lnref.oracle.replay import EXACT, Problem, Variant, dsigma, gradient, outputs, sigma, simulate
from lnref.testing import make_fixture

CFG = lnref.Config(
    n=10, d=30, m=3, tau=0.2, flips="exact", steps=12, sigma_p=1.0, mu_norm=3.0, eta=0.5, n_test=0, seed=7
)


@pytest.mark.parametrize("changes", [{}, {"q": 2.0, "eta": 0.2}, {"algorithm": "label_noise_gd", "p": 0.3}])
def test_exact_replay_equals_lnref(changes):
    fx = make_fixture(CFG.replace(**changes), [0, 1, 5, 12], exercise=True, measure=False)
    P = Problem.of(fx)
    run = simulate(P, fx.steps)
    for k, t in enumerate(fx.steps):
        assert np.max(np.abs(run[int(t)] - fx.W[k])) <= 1e-13 * np.max(np.abs(fx.W[k]))
        G = gradient(fx.W[k], P, fx.mult(int(t)))[0]
        np.testing.assert_allclose(G, fx.grad[k], rtol=0, atol=1e-14 * np.max(np.abs(fx.grad[k])))
    f = outputs(fx.W[-1], P)
    np.testing.assert_allclose(f, lnref.forward(fx.W[-1], fx.data, fx.config.q), rtol=1e-13, atol=1e-15)


def test_activation_defined_once_with_its_conventions():
    z = np.array([-2.0, 0.0, 1.5])
    np.testing.assert_array_equal(sigma(z, 1.0), [0.0, 0.0, 1.5])
    np.testing.assert_array_equal(dsigma(z, 1.0), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(dsigma(z, 1.0, at_zero=1.0), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(dsigma(z, 3.0), [0.0, 0.0, 3 * 1.5**2])
    np.testing.assert_array_equal(dsigma(z, 3.0, clamp=False), [12.0, 0.0, 3 * 1.5**2])


def test_switches():
    fx = make_fixture(CFG, [0, 12], measure=False)
    P = Problem.of(fx)
    W = fx.W[-1]
    assert Variant(output_scale=1 / 3).changes() == {"output_scale": 1 / 3}
    np.testing.assert_allclose(outputs(W, P, Variant(output_scale=1 / 3)), outputs(W, P), rtol=1e-15)
    np.testing.assert_allclose(outputs(W, P, Variant(patch_reduce="mean")), 0.5 * outputs(W, P), rtol=1e-15)
    np.testing.assert_allclose(outputs(W, P, Variant(orientation=-1)), -outputs(W, P), rtol=1e-15)
    np.testing.assert_allclose(outputs(W, P, Variant(output_scale=1.0)), 3 * outputs(W, P), rtol=1e-14)
    G = gradient(W, P, fx.data.y_obs)[0]
    np.testing.assert_array_equal(gradient(W, P, fx.data.y_obs, Variant(grad_j_swapped=True))[0], G[::-1])
    # a bias at 0 leaves the first step unchanged; momentum too
    one = simulate(P, [1])[1]
    for v in (Variant(bias=True), Variant(momentum=0.9)):
        np.testing.assert_array_equal(simulate(P, [1], v)[1], one)
    assert not np.array_equal(simulate(P, [2], Variant(momentum=0.9))[2], simulate(P, [2])[2])


def test_label_noise_sign_modes():
    fx = make_fixture(CFG.replace(algorithm="label_noise_gd", p=0.4), [0, 12], measure=False)
    P = Problem.of(fx)
    yo = fx.data.y_obs
    np.testing.assert_array_equal(P.labels(3), fx.eps[3] * yo)
    np.testing.assert_array_equal(P.labels(3, Variant(eps_mode="frozen")), fx.eps[0] * yo)
    np.testing.assert_array_equal(P.labels(3, Variant(eps_mode="shifted")), fx.eps[4] * yo)
    np.testing.assert_array_equal(P.labels(3, Variant(eps_mode="accumulated")), fx.eps[:4].prod(axis=0) * yo)
    np.testing.assert_array_equal(P.labels(3, Variant(eps_mode="ignored")), yo)


def test_float32_replay_and_divergence_are_quiet():
    fx = make_fixture(CFG, [0, 12], measure=False)
    P = Problem.of(fx)
    r32 = simulate(P, [12], dtype=np.float32)[12]
    assert r32.dtype == np.float32
    d = np.max(np.abs(r32 - fx.W[-1])) / np.max(np.abs(fx.W[-1]))
    assert 1e-9 < d < 1e-5
    big = Problem(P.mu, P.xi * 1e3, P.y, P.y_obs, P.W0, 3.0, 1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = simulate(big, [1, 5, 12], Variant(grad_scale=-1.0))
    assert np.all(np.isnan(run[12]))


def test_replay_covers_the_conv1d_conventions():
    """A Conv1d-style model (bias initialised at b0, mean over patches, output scale 1) written in plain NumPy
    follows the replay's base variant; the paper's convention is the default base."""
    fx = make_fixture(CFG, [0, 6], measure=False)
    d = fx.data
    rng = np.random.default_rng(0)
    b0 = rng.normal(0, 0.01, (2, 3))
    base = Variant(bias=True, patch_reduce="mean", output_scale=1.0)
    P = Problem(d.mu, d.xi, d.y, d.y_obs, fx.W0, 1.0, 0.1, None, b0, base)
    assert Problem.of(fx).base == EXACT
    W, b = fx.W0.copy(), b0.copy()
    s = np.array([1.0, -1.0])
    for _ in range(6):
        z1 = np.einsum("jrd,d->jr", W, d.mu)[:, :, None] * d.y + b[:, :, None]
        z2 = np.einsum("jrd,nd->jrn", W, d.xi) + b[:, :, None]
        f = np.einsum("j,jrn->n", s, (np.maximum(z1, 0) + np.maximum(z2, 0)) / 2)
        g = -d.y_obs / (1 + np.exp(d.y_obs * f)) / d.n  # dL/df_i
        c = s[:, None, None] * g / 2
        a1, a2 = c * (z1 > 0), c * (z2 > 0)
        gW = np.einsum("jrn,n->jr", a1, d.y)[:, :, None] * d.mu + np.einsum("jrn,nd->jrd", a2, d.xi)
        gb = a1.sum(-1) + a2.sum(-1)
        W, b = W - 0.1 * gW, b - 0.1 * gb
    run = simulate(P, [6], base)[6]
    assert np.max(np.abs(run - W)) <= 1e-14 * np.max(np.abs(W))
    assert np.max(np.abs(simulate(P, [6], EXACT)[6] - W)) > 1e-6 * np.max(np.abs(W))
