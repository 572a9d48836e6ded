"""Implementation conventions (SPEC.md section 7): bias, initialisation law, patch reduction, output scale.

The paper's network is one point of a family f = output_scale c_p sum_{r,p} [sigma(<w_{+1,r}, x_p> + b_{+1,r}) -
sigma(<w_{-1,r}, x_p> + b_{-1,r})]; these tests check the family's exact identities, its gradients, and that both
engines run it with the same dynamics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lnref
from lnref.config import ConfigError
from lnref.model import gradients

BASE = dict(n=8, d=30, m=4, steps=100, log_every=10, n_test=50, sigma_p=1.0, mu_norm=2.0, seed=5, eta=0.5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), q=st.sampled_from([1.0, 2.0, 3.0]), n=st.integers(2, 9))
def test_mean_over_patches_without_1_over_m_is_the_paper_network_at_cW(seed, q, n):
    # output_scale = 1, patch mean, no bias equals f(cW) in the paper's normalisation with c^q = m/2 (SPEC.md
    # section 7); with m = 4 and q = 1, c = 2 is a power of two, so the equality is exact.  For other q compare
    # with the homogeneity identity f(cW) = c^q f(W) instead, to rounding.
    m = 4
    cfg = lnref.Config(n=n, d=12, m=m, q=q, n_test=0, seed=seed, noise="isotropic")
    data = lnref.make_data(cfg)
    W = lnref.init_weights(cfg) * 10.0
    f_conv = lnref.forward(W, data, q, output_scale=1.0, patch_reduce="mean")
    if q == 1.0:
        assert f_conv.tobytes() == lnref.forward(2.0 * W, data, q).tobytes()
    np.testing.assert_allclose(f_conv, (m / 2) * lnref.forward(W, data, q), rtol=1e-13, atol=1e-300)
    # output_scale = 1/m with patch sums is the paper's network, bit for bit
    assert lnref.forward(W, data, q, output_scale=1.0 / 4.0).tobytes() == lnref.forward(W, data, q).tobytes()
    # a zero bias changes no bit
    assert lnref.forward(W, data, q, b=np.zeros((2, m))).tobytes() == lnref.forward(W, data, q).tobytes()


def test_bias_shifts_every_pre_activation():
    # one filter per class, hand-computed: f = F_{+1} - F_{-1} with F_j = (1/m) sum_p relu(<w_j, x_p> + b_j)
    data = lnref.Dataset(mu=np.array([1.0, 0.0]), xi=np.array([[0.0, 2.0]]), y=np.array([1.0]), y_obs=np.array([1.0]))
    W = np.array([[[0.5, 1.0]], [[-0.5, 0.25]]])
    b = np.array([[0.25], [-0.75]])
    f = lnref.forward(W, data, 1.0, b=b)
    expected = (max(0.5 + 0.25, 0) + max(2.0 + 0.25, 0)) - (max(-0.5 - 0.75, 0) + max(0.5 - 0.75, 0))
    assert f[0] == expected
    assert lnref.forward(W, data, 1.0, b=b, patch_reduce="mean", output_scale=3.0)[0] == 3.0 * expected / 2.0


def finite_differences(fun, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (fun(xp) - fun(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("q", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("reduce,scale", [("sum", None), ("mean", 1.0)])
def test_weight_and_bias_gradients_equal_finite_differences(q, reduce, scale):
    cfg = lnref.Config(n=6, d=7, m=2, q=q, n_test=0, seed=3, noise="isotropic", mu_norm=1.3, tau=0.2)
    data = lnref.make_data(cfg)
    rng = np.random.default_rng(int(q * 10))
    W = rng.standard_normal((2, 2, 7)) * 0.6
    b = rng.standard_normal((2, 2)) * 0.4
    conv = dict(output_scale=scale, patch_reduce=reduce)
    gW, gb = gradients(W, data, q, b=b, **conv)
    assert gb is not None and np.max(np.abs(gb)) > 1e-3 and np.max(np.abs(gW)) > 1e-3
    np.testing.assert_allclose(
        gW, finite_differences(lambda w: lnref.loss(w, data, q, b=b, **conv), W), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(
        gb, finite_differences(lambda bb: lnref.loss(W, data, q, b=bb, **conv), b), rtol=1e-6, atol=1e-8
    )
    # without biases the second output is None and the weight gradient is the paper's one (scale aside)
    assert gradients(W, data, q, **conv)[1] is None


CONVENTION_CASES = [
    dict(bias=True, init="torch", output_scale=1.0, patch_reduce="mean", noise="isotropic", eta=0.1),
    dict(bias=True, q=2.0, eta=0.2),
    dict(bias=True, init="torch", algorithm="label_noise_gd", p=0.2, tau=0.1),
    dict(output_scale=0.3, patch_reduce="mean"),
]


@pytest.mark.parametrize("case", CONVENTION_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_engines_agree_with_the_conventions(case):
    cfg = lnref.Config(**{**BASE, **case})
    rw = lnref.train(cfg, threads=1)
    rc = lnref.train(cfg.replace(engine="coefficients"), rw.data, rw.W0, b0=rw.b0, threads=1)
    assert rw.steps_done == rc.steps_done == cfg.steps
    assert np.max(np.abs(rw.rho)) > 0.05  # the run moves
    scale = np.max(np.abs(rw.W))
    np.testing.assert_allclose(rc.W, rw.W, rtol=1e-10, atol=1e-10 * scale)
    for key in ("loss", "train_acc", "test_acc", "gamma_max", "rho_bar_max_noisy"):
        np.testing.assert_allclose(rc.history[key], rw.history[key], rtol=1e-10, atol=1e-12, err_msg=key)
    if cfg.bias:
        assert rw.b is not None and not np.array_equal(rw.b, rw.b0)  # the biases were trained
        np.testing.assert_allclose(rc.b, rw.b, rtol=1e-10, atol=1e-10 * np.max(np.abs(rw.b)))
        assert rw.trace["bias"].shape == (len(rw.history["step"]), 2, cfg.m)
    else:
        assert rw.b is None and rc.b is None


@pytest.mark.parametrize("case", CONVENTION_CASES[:2], ids=["torch-mean-bias", "bias-q2"])
def test_weights_stay_in_the_span_with_a_bias(case):
    # SPEC.md section 7: the weights' gradient still lies in span{mu, xi_i}, so identity 1 (reconstruction and
    # decomposition) holds unchanged for W
    cfg = lnref.Config(**{**BASE, **case})
    res = lnref.train(cfg)
    gamma, rho = lnref.decompose(res.W, res.W0, res.data)
    scale = max(np.max(np.abs(res.rho)), np.max(np.abs(res.gamma)))
    np.testing.assert_allclose(gamma, res.gamma, rtol=1e-8, atol=1e-9 * scale)
    np.testing.assert_allclose(rho, res.rho, rtol=1e-8, atol=1e-9 * scale)
    np.testing.assert_allclose(lnref.reconstruct(res.W0, res.gamma, res.rho, res.data), res.W, rtol=1e-10, atol=1e-12)


def test_one_step_with_a_bias_is_a_gradient_step():
    cfg = lnref.Config(**{**BASE, **CONVENTION_CASES[0], "steps": 1})
    res = lnref.train(cfg)
    gW, gb = gradients(res.W0, res.data, cfg.q, b=res.b0, output_scale=1.0, patch_reduce="mean")
    np.testing.assert_allclose(res.W, res.W0 - cfg.eta * gW, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(res.b, res.b0 - cfg.eta * gb, rtol=1e-14, atol=1e-16)


def test_torch_init_law_and_its_own_bias_stream():
    cfg = lnref.Config(n=4, d=400, m=50, init="torch", bias=True, seed=9)
    W0, b0 = lnref.init_weights(cfg), lnref.init_bias(cfg)
    a = 1 / math.sqrt(cfg.d)
    assert np.all(np.abs(W0) <= a) and np.all(np.abs(b0) <= a)
    # uniform on +-a: variance a^2/3 (40 000 draws: the sample variance is within 3 % at 5 standard errors)
    assert abs(W0.var() / (a * a / 3) - 1) < 0.03
    # turning the bias on changes neither the data nor W0 (stream 6 is the bias's own)
    off = cfg.replace(bias=False)
    assert np.array_equal(lnref.init_weights(off), W0)
    assert np.array_equal(lnref.make_data(off).xi, lnref.make_data(cfg).xi)
    assert np.all(lnref.init_bias(off) == 0) and np.all(lnref.init_bias(cfg.replace(init="gaussian")) == 0)


def test_bad_convention_inputs_are_refused():
    with pytest.raises(ConfigError, match="patch_reduce"):
        lnref.Config(patch_reduce="max")
    with pytest.raises(ConfigError, match="output_scale"):
        lnref.Config(output_scale=0.0)
    with pytest.raises(ConfigError, match="init"):
        lnref.Config(init="xavier")
    with pytest.raises(ConfigError, match="bias"):
        lnref.Config(bias="yes")
    cfg = lnref.Config(**{**BASE, "steps": 1})
    with pytest.raises(ConfigError, match="bias=False"):
        lnref.train(cfg, b0=np.ones((2, cfg.m)))
    with pytest.raises(ConfigError, match=r"shape \(2, m\)"):
        lnref.train(cfg.replace(bias=True), b0=np.ones(3))


@pytest.mark.parametrize("engine", ["weights", "coefficients"])
def test_resume_with_biases_is_bit_identical(engine, tmp_path):
    from lnref.training.runs import load_checkpoint, save_checkpoint

    cfg = lnref.Config(**{**BASE, **CONVENTION_CASES[0], "engine": engine, "steps": 40, "log_every": 5})
    full = lnref.train(cfg)
    path = tmp_path / "checkpoint.npz"
    states = []
    lnref.train(cfg, checkpoint_every=15, on_checkpoint=lambda s: (states.append(s["step"]), save_checkpoint(path, s)))
    assert states and 0 < states[-1] < cfg.steps
    resumed = lnref.train(cfg, resume=load_checkpoint(path))
    assert resumed.b.tobytes() == full.b.tobytes()
    assert resumed.rho.tobytes() == full.rho.tobytes()
    for key in full.trace:
        assert resumed.trace[key].tobytes() == full.trace[key].tobytes(), key
