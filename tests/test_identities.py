"""Property tests for the identities 1-10 of SPEC.md section 5, which hold (to rounding) in every finite run.

Every example draws a tiny problem (n 2..8, d n+1..n+12, m 1..3, q in {1, 1.5, 2, 2.5, 3}, both noise models,
with and without label noise, plain or label-noise GD), runs ``lnref.train`` for a few steps with
``log_every=1`` and checks the identity on the Result's trace.  Identities 3 and 4 are checked for plain GD only
(SPEC.md: they do not hold for label-noise GD).  The weights W(t) of the intermediate steps come from
``lnref.gd_step`` (bit-identical to train's steps, see tests/test_kernels.py), checked here against train's
final W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.special
from hypothesis import example, given
from hypothesis import strategies as st

import lnref
import naive
from lnref.data import label_noise_signs, stream
from lnref.kernels import weights as K
from lnref.model.metrics import sample_losses

QS = [1.0, 1.5, 2.0, 2.5, 3.0]


@st.composite
def problems(draw, algorithms=("gd", "label_noise_gd"), noises=("orthogonal", "isotropic")):
    n = draw(st.integers(2, 8))
    return dict(
        n=n,
        d=draw(st.integers(n + 1, n + 12)),
        m=draw(st.integers(1, 3)),
        q=draw(st.sampled_from(QS)),
        noise=draw(st.sampled_from(noises)),
        tau=draw(st.sampled_from([0.0, 0.2, 0.45])),
        flips=draw(st.sampled_from(["independent", "exact"])),
        algorithm=draw(st.sampled_from(algorithms)),
        p=draw(st.sampled_from([0.1, 0.4])),
        seed=draw(st.integers(0, 2**16)),
        steps=draw(st.integers(1, 4)),
        eta=draw(st.floats(0.05, 1.0)),
        sigma0=draw(st.floats(0.01, 0.5)),
        sigma_p=draw(st.floats(0.3, 1.5)),
        mu_norm=draw(st.floats(0.5, 4.0)),
        zero_filter=draw(st.booleans()),
        one_per_class=False,
    )


def edge(**kw):
    """An explicit problem for @example: defaults overridden by ``kw``."""
    base = dict(
        n=4,
        d=7,
        m=2,
        q=1.0,
        noise="orthogonal",
        tau=0.2,
        flips="exact",
        algorithm="gd",
        p=0.1,
        seed=1,
        steps=3,
        eta=0.5,
        sigma0=0.2,
        sigma_p=1.0,
        mu_norm=2.0,
        zero_filter=False,
        one_per_class=False,
    )
    base.update(kw)
    return base


# Edge cases shared by every identity: a q = 1 kink (filter (+1, 1) is zero, so every inner product with it is
# exactly 0), no label noise, one sample per class (n = 2, y = (+1, -1), the second one mislabelled).
EDGES = [
    edge(zero_filter=True),
    edge(tau=0.0, q=2.0),
    edge(n=2, d=3, one_per_class=True, m=1),
    edge(zero_filter=True, algorithm="label_noise_gd", p=0.4, noise="isotropic", q=1.0),
]


def with_edges(test=None, **extra):
    """Add every edge case of EDGES as an @example (``extra``: values of the test's other arguments)."""

    def deco(test):
        for e in EDGES:
            test = example(prob=e, **extra)(test)
        return test

    return deco if test is None else deco(test)


@dataclass
class Run:
    cfg: lnref.Config
    data: lnref.Dataset
    res: lnref.Result
    Ws: np.ndarray  # (steps+1, 2, m, d) W(t)
    eps: np.ndarray  # (steps, n) label-noise signs (all +1 for plain GD)

    @property
    def mults(self) -> np.ndarray:
        """(steps, n): the label multiplying f_i at each step, y_obs or eps * y_obs."""
        return self.eps * self.data.y_obs


def run(prob: dict) -> Run:
    keys = (
        "n",
        "d",
        "m",
        "q",
        "noise",
        "tau",
        "flips",
        "algorithm",
        "p",
        "seed",
        "steps",
        "eta",
        "sigma0",
        "sigma_p",
        "mu_norm",
    )
    cfg = lnref.Config(**{k: prob[k] for k in keys}, log_every=1, n_test=0)
    data = lnref.make_data(cfg)
    if prob["one_per_class"]:
        assert cfg.n == 2
        data = lnref.Dataset(data.mu, data.xi, np.array([1.0, -1.0]), np.array([1.0, 1.0]))
    W0 = lnref.init_weights(cfg)
    if prob["zero_filter"]:
        W0[0, 0] = 0.0
    # one thread: many tiny runs, where a parallel launch costs more than the work (thread counts are
    # tested for bit-identity in tests/test_kernels.py)
    res = lnref.train(cfg, data, W0, threads=1)
    if cfg.algorithm == "label_noise_gd":
        eps = label_noise_signs(stream(cfg.seed, "label_noise"), (cfg.steps, cfg.n), cfg.p)
    else:
        eps = np.ones((cfg.steps, cfg.n))
    Ws = [W0]
    for t in range(cfg.steps):
        Ws.append(lnref.gd_step(Ws[-1], data, cfg.eta, cfg.q, eps=None if cfg.algorithm == "gd" else eps[t]))
    Ws = np.array(Ws)
    assert Ws[-1].tobytes() == res.W.tobytes()
    assert res.trace["gamma"].shape[0] == cfg.steps + 1
    return Run(cfg, data, res, Ws, eps)


def dact(z, q):
    """sigma'(z), vectorised (SPEC.md section 2)."""
    zp = np.maximum(z, 0.0)
    return np.where(z > 0, q * zp ** (q - 1.0), 0.0)


def dloss(z):
    """l'(z) from lnref's kernel (the same one training uses)."""
    z = np.ascontiguousarray(z, dtype=np.float64).ravel()
    lo, dl = np.empty_like(z), np.empty_like(z)
    K.losses(z, np.ones_like(z), lo, dl)
    return dl


def signal_products(W, mu):
    """<w_jr, mu>, shape (..., 2, m)."""
    return np.einsum("...jrd,d->...jr", W, mu)


def noise_products(W, xi):
    """<w_jr, xi_i>, shape (..., 2, m, n)."""
    return np.einsum("...jrd,id->...jri", W, xi)


def tol(*arrays, rel=1e-12):
    return rel * max([1e-300] + [float(np.max(np.abs(a))) for a in arrays])


# ------------------------------------------------------------------ 1. reconstruction
@given(prob=problems())
@with_edges
def test_1_reconstruction_and_decomposition(prob):
    r = run(prob)
    data, W0 = r.data, r.Ws[0]
    for t in range(r.cfg.steps + 1):
        gamma, rho = r.res.trace["gamma"][t], r.res.trace["rho"][t]
        W_rec = lnref.reconstruct(W0, gamma, rho, data)
        np.testing.assert_allclose(W_rec, r.Ws[t], rtol=0, atol=tol(r.Ws[t], r.Ws[t] - W0, rel=1e-11))
    # projecting W(T) - W(0) on the basis returns the recursion's coefficients (conditioning-aware tolerance)
    gamma, rho = lnref.decompose(r.res.W, W0, data)
    cond = np.linalg.cond(
        naive.basis(data.mu, data.xi) * np.sqrt(np.r_[data.mu @ data.mu, np.einsum("ij,ij->i", data.xi, data.xi)])
    )
    scale = tol(r.res.gamma, r.res.rho, rel=1e-11 * cond) + tol(r.res.W, rel=1e-11 * cond) * math.sqrt(
        max(float(data.mu @ data.mu), float(np.max(np.einsum("ij,ij->i", data.xi, data.xi))))
    )
    np.testing.assert_allclose(gamma, r.res.gamma, rtol=0, atol=scale)
    np.testing.assert_allclose(rho, r.res.rho, rtol=0, atol=scale)


# ------------------------------------------------------------------ 2. gradient formula
@given(prob=problems())
@with_edges
def test_2_gradient_equals_the_section_3_formula(prob):
    r = run(prob)
    d = r.data
    for t in (0, r.cfg.steps):
        W = r.Ws[t]
        eps = None if r.cfg.algorithm == "gd" else r.eps[min(t, r.cfg.steps - 1)]
        G = lnref.gradient(W, d, r.cfg.q, eps=eps)
        G_ref = naive.gradient(W, d.mu, d.xi, d.y, d.y_obs, r.cfg.q, eps=eps)
        # terms are bounded by |l'| sigma' |x| / (nm); rounding relative to the largest term
        np.testing.assert_allclose(G, G_ref, rtol=1e-11, atol=tol(G_ref, rel=1e-11))


# ------------------------------------------------------------------ 3. signs of rho (plain GD)
@given(prob=problems(algorithms=("gd",)))
@with_edges
def test_3_rho_signs_and_monotonicity(prob):
    if prob["algorithm"] != "gd":  # the label-noise GD edge example: identity 3 does not apply
        return
    r = run(prob)
    rho = r.res.trace["rho"]  # (L, 2, m, n)
    y_obs = r.data.y_obs
    s = np.array([1.0, -1.0])[:, None, None]  # s_j
    aligned = (s * y_obs[None, None, :]) > 0  # j = y_obs_i, shape (2, 1, n)
    aligned = np.broadcast_to(aligned, rho.shape[1:])
    assert np.all(rho[:, aligned] >= 0.0)
    assert np.all(rho[:, ~aligned] <= 0.0)
    rho_bar, rho_under = np.maximum(rho, 0.0), np.minimum(rho, 0.0)
    assert np.all(np.diff(rho_bar, axis=0) >= 0.0)
    assert np.all(np.diff(rho_under, axis=0) <= 0.0)
    assert np.all(rho_bar * rho_under == 0.0)
    # max_{j,r} rho_{j,r,i} = max_r rho_bar_{y_obs_i, r, i}
    j_obs = np.where(y_obs > 0, 0, 1)
    lhs = rho.max(axis=(1, 2))  # (L, n)
    rhs = np.stack([rho_bar[:, j_obs[i], :, i].max(axis=1) for i in range(r.cfg.n)], axis=1)
    np.testing.assert_array_equal(lhs, rhs)


# ------------------------------------------------------------------ 4. gamma increments (plain GD)
@given(prob=problems(algorithms=("gd",)))
@with_edges
def test_4_gamma_increment_clean_minus_noisy(prob):
    if prob["algorithm"] != "gd":
        return
    r = run(prob)
    cfg, d = r.cfg, r.data
    gamma = r.res.trace["gamma"]
    clean = d.y_obs == d.y
    mu_sq = float(d.mu @ d.mu)
    for t in range(cfg.steps):
        abs_lp = np.abs(dloss(r.res.trace["margin"][t]))  # |l'_i|
        act = dact(signal_products(r.Ws[t], d.mu)[..., None] * d.y, cfg.q)  # (2, m, n) sigma'(<w, y_i mu>)
        # for q = 1 act is the indicator "active"; for q > 1 it weights each active sample by sigma'
        expected = (cfg.eta * mu_sq / (cfg.n * cfg.m)) * (
            (act[..., clean] * abs_lp[clean]).sum(-1) - (act[..., ~clean] * abs_lp[~clean]).sum(-1)
        )
        np.testing.assert_allclose(
            gamma[t + 1] - gamma[t], expected, rtol=1e-10, atol=tol(gamma[t], gamma[t + 1], expected, rel=1e-12)
        )
    if not np.any(~clean):  # no label noise: gamma >= 0 and never decreases, exactly
        assert np.all(gamma >= 0.0)
        assert np.all(np.diff(gamma, axis=0) >= 0.0)


# ------------------------------------------------------------------ 5. increment bounds (per step)
@given(prob=problems())
@with_edges
def test_5_increment_bounds(prob):
    r = run(prob)
    cfg, d = r.cfg, r.data
    gamma, rho = r.res.trace["gamma"], r.res.trace["rho"]
    mu_sq = float(d.mu @ d.mu)
    xi_sq = np.einsum("ij,ij->i", d.xi, d.xi)
    slack = 1.0 + 1e-12
    for t in range(cfg.steps):
        W = r.Ws[t]
        z_noise = noise_products(W, d.xi)  # (2, m, n)
        z_signal = signal_products(W, d.mu)[..., None] * d.y  # (2, m, n)
        # sup sigma' over the active range at this step (= 1 for q = 1 when anything is active)
        sup = float(max(np.max(dact(z_noise, cfg.q)), np.max(dact(z_signal, cfg.q))))
        if cfg.q == 1.0:
            assert sup in (0.0, 1.0)
        lp = dloss(r.mults[t] * (r.res.trace["margin"][t] * d.y_obs))  # l'(mult_i f_i) used at step t
        d_rho = np.abs(rho[t + 1] - rho[t])
        bound_rho = (cfg.eta / (cfg.n * cfg.m)) * xi_sq * np.abs(lp) * sup  # (n,)
        assert np.all(d_rho <= bound_rho * slack + tol(rho[t], rho[t + 1], rel=1e-14))
        d_gamma = np.abs(gamma[t + 1] - gamma[t])
        assert np.all(d_gamma <= (cfg.eta / cfg.m) * mu_sq * sup * slack + tol(gamma[t], rel=1e-14))


# ------------------------------------------------------------------ 6. orthogonal noise: <w, mu> moves by s_j gamma
@given(prob=problems(noises=("orthogonal",)))
@with_edges
def test_6_orthogonal_noise_signal_projection(prob):
    if prob["noise"] != "orthogonal":
        return
    r = run(prob)
    d = r.data
    s = np.array([1.0, -1.0])[:, None]
    B = signal_products(r.Ws, d.mu)  # (L, 2, m)
    gamma = r.res.trace["gamma"]
    np.testing.assert_allclose(B - B[0], s * gamma, rtol=0, atol=tol(B, s * gamma, rel=1e-11))
    # each filter is active on the signal patch of at most one true class at a time
    for t in range(r.cfg.steps + 1):
        active = signal_products(r.Ws[t], d.mu)[..., None] * d.y > 0  # (2, m, n)
        for j in range(2):
            for rr in range(r.cfg.m):
                assert np.unique(d.y[active[j, rr]]).size <= 1


# ------------------------------------------------------------------ 7. small loss at log 2 <=> fitted
@given(prob=problems())
@with_edges
def test_7_loss_below_log2_iff_fitted(prob):
    r = run(prob)
    margin = r.res.trace["margin"]
    losses = sample_losses(margin.ravel()).reshape(margin.shape)
    resolvable = np.abs(margin) > 1e-12  # below that, l(z) rounds to log 2 (z = y_obs f "to rounding" 0)
    assert np.array_equal((losses < math.log(2.0))[resolvable], (margin > 0)[resolvable])
    assert np.all(losses[margin <= 0] >= math.log(2.0))


def test_7_zero_margin_has_loss_log2_and_relu_zero_weights_stay_zero():
    # q = 1 with W0 = 0: every inner product is the kink 0, sigma'(0) = 0, so GD never moves and every margin
    # stays exactly 0 with loss exactly log 2 (not fitted)
    cfg = lnref.Config(n=4, d=9, m=2, q=1.0, steps=3, log_every=1, n_test=0, seed=2)
    res = lnref.train(cfg, W0=np.zeros((2, 2, 9)), threads=1)
    assert np.all(res.W == 0.0) and np.all(res.trace["margin"] == 0.0)
    np.testing.assert_array_equal(res.history["loss"], math.log(2.0))


# ------------------------------------------------------------------ 8. homogeneity
@given(prob=problems(), c=st.floats(0.1, 10.0))
@with_edges(c=2.0)
@example(prob=edge(q=2.5), c=3.0)
def test_8_homogeneity(prob, c):
    r = run(prob)
    d, q = r.data, r.cfg.q
    for W in (r.Ws[0], r.Ws[-1]):
        f, fc = lnref.forward(W, d, q), lnref.forward(c * W, d, q)
        # rounding is relative to the sum of the activations' scales, not to f (which may cancel), and an inner
        # product's rounding to sum_k |w_k x_k| (which <w, x> itself may cancel): the activations of |W| on |x|
        total = (noise_products(np.abs(W), np.abs(d.xi)) ** q).sum(axis=(0, 1)) + (
            signal_products(np.abs(W), np.abs(d.mu))[..., None] ** q
        ).sum(axis=(0, 1))
        np.testing.assert_array_less(np.abs(fc - c**q * f), 1e-12 * c**q * (total / r.cfg.m) + 1e-300)


# ------------------------------------------------------------------ 9. patch-order invariance
@given(prob=problems())
@with_edges
def test_9_patch_order_invariance(prob):
    r = run(prob)
    d, q = r.data, r.cfg.q
    W = r.res.W
    f = lnref.forward(W, d, q)
    swapped = np.array([naive.output(W, d.xi[i], d.y[i] * d.mu, q) for i in range(r.cfg.n)])
    unswapped = np.array([naive.output(W, d.y[i] * d.mu, d.xi[i], q) for i in range(r.cfg.n)])
    np.testing.assert_array_equal(swapped, unswapped)
    total = (np.maximum(noise_products(W, d.xi), 0) ** q).sum(axis=(0, 1)) + (
        np.maximum(signal_products(W, d.mu)[..., None] * d.y, 0) ** q
    ).sum(axis=(0, 1))
    np.testing.assert_array_less(np.abs(f - swapped), 1e-12 * total / r.cfg.m + 1e-300)


# ------------------------------------------------------------------ 10. l' = -sigmoid(-z)
def check_dloss(z):
    lp = dloss(z)
    ref = -scipy.special.expit(-np.ravel(z))
    np.testing.assert_allclose(lp, ref, rtol=1e-14, atol=0)
    assert np.all((lp >= -1.0) & (lp <= 0.0))
    # strictly inside (-1, 0) wherever float64 can represent it (|z| below ~36 for the -1 end)
    inner = np.abs(np.ravel(z)) < 30
    assert np.all((lp[inner] > -1.0) & (lp[inner] < 0.0))


@given(prob=problems())
@with_edges
def test_10_dloss_is_minus_sigmoid_of_minus_margin(prob):
    r = run(prob)
    z = r.mults * (r.res.trace["margin"][:-1] * r.data.y_obs)  # the l' arguments used at each step
    check_dloss(z)
    # and the gradient is built from exactly these l': compare against the formula with l' = -sigmoid(-z)
    t = 0
    W = r.Ws[t]
    eps = r.eps[t]
    G = lnref.gradient(W, r.data, r.cfg.q, eps=None if r.cfg.algorithm == "gd" else eps)
    lp = -scipy.special.expit(-z[t])
    mult = r.mults[t]
    zs = signal_products(W, r.data.mu)[..., None] * r.data.y
    zn = noise_products(W, r.data.xi)
    coef_sig = (lp * mult * r.data.y * dact(zs, r.cfg.q)).sum(-1)  # (2, m)
    coef_noise = lp * mult * dact(zn, r.cfg.q)  # (2, m, n)
    s = np.array([1.0, -1.0])[:, None, None]
    G_ref = s / (r.cfg.n * r.cfg.m) * (coef_sig[..., None] * r.data.mu + coef_noise @ r.data.xi)
    np.testing.assert_allclose(G, G_ref, rtol=1e-10, atol=tol(G_ref, rel=1e-12))


@given(z=st.floats(-1e300, 1e300, allow_nan=False))
@example(z=0.0)
@example(z=-0.0)
@example(z=5e-324)
@example(z=40.0)
@example(z=-40.0)
@example(z=800.0)
@example(z=-800.0)
@example(z=1e300)
@example(z=-1e300)
def test_10_dloss_scalar_range(z):
    check_dloss(np.array([z]))
    lo = sample_losses(np.array([z]))[0]
    assert math.isfinite(lo) and lo >= 0.0
