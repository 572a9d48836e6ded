"""Gram sampling (lnref.data.gram) against explicit sampling: labels exactly, everything else in distribution.

Statistical checks state their margin: a sample mean must lie within Z standard errors of the exact value (or of
the other sampler's mean, with the two standard errors combined).  Seeds are fixed, so the tests are
deterministic; Z is chosen so that a correct sampler would fail with probability < 1e-5 per check.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lnref
from lnref.data.gram import coordinates, sample_gram, virtual_test
from lnref.engines import from_config
from lnref.training import num_threads

Z = 5.0  # standard errors allowed for a single statistical comparison


def within(sample, expected, what, z=Z):
    sample = np.asarray(sample, dtype=np.float64)
    se = sample.std(ddof=1) / math.sqrt(sample.size)
    assert abs(sample.mean() - expected) <= z * se, (what, sample.mean(), expected, se)


def same_mean(a, b, what, z=Z):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) <= z * se + 1e-300, (what, a.mean(), b.mean(), se)


@pytest.mark.parametrize("noise", ["orthogonal", "isotropic"])
@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_labels_equal_explicit_sampling(noise, tau):
    for seed in range(5):
        cfg = lnref.Config(
            n=25,
            d=30,
            m=2,
            noise=noise,
            tau=tau,
            flips="exact" if seed % 2 else "independent",
            n_test=0,
            seed=seed,
            engine="coefficients",
        )
        g = sample_gram(cfg.replace(sampling="gram"))
        e = lnref.make_data(cfg)
        np.testing.assert_array_equal(g.y, e.y)
        np.testing.assert_array_equal(g.y_obs, e.y_obs)
        np.testing.assert_array_equal(g.noisy, e.noisy)


def test_same_seed_same_draw_and_shapes():
    cfg = lnref.Config(n=7, d=10**9, m=3, n_test=11, engine="coefficients", sampling="gram", seed=3)
    a, b, c = sample_gram(cfg), sample_gram(cfg), sample_gram(cfg.replace(seed=4))
    for name in ("G", "c", "P0", "b0", "W0W0", "xi_sq"):
        np.testing.assert_array_equal(getattr(a.stats, name), getattr(b.stats, name))
    assert not np.array_equal(a.stats.G, c.stats.G)
    np.testing.assert_array_equal(a.test.Pt, b.test.Pt)
    assert a.coords.shape == (7 + 6, 7 + 6) and a.test.Pt.shape == (6, 11) and a.test.Gt.shape == (7, 11)
    # d = 10^9: ||xi_i||^2 / (sigma_p^2 (d - 1)) ~ chi^2_{d-1}/(d-1), sd sqrt(2/(d-1)) = 4.5e-5
    ratio = a.stats.xi_sq / (cfg.sigma_p**2 * (cfg.d - 1))
    assert np.all(np.abs(ratio - 1.0) < 6 * math.sqrt(2.0 / (cfg.d - 1)))
    np.testing.assert_array_equal(a.stats.G, a.stats.G.T)


# d = 12: Bartlett branch (k = n + 2m = 5 <= d - 1); d = 4: direct branch (k > d - 1 = 3)
@pytest.mark.parametrize("d", [12, 4])
@pytest.mark.parametrize("noise", ["orthogonal", "isotropic"])
def test_gram_moments_match_the_exact_law(d, noise):
    sp, s0, mu = 0.7, 0.3, 2.0
    N = 3000
    dd = d - 1 if noise == "orthogonal" else d  # dimension the noise lives in
    base = lnref.Config(
        n=3, d=d, m=1, sigma_p=sp, sigma0=s0, mu_norm=mu, noise=noise, n_test=0, engine="coefficients", sampling="gram"
    )
    draws = [sample_gram(base.replace(seed=s)).stats for s in range(N)]
    G = np.array([st.G for st in draws])
    P0 = np.array([st.P0 for st in draws])
    b0 = np.array([st.b0 for st in draws])
    c = np.array([st.c for st in draws])
    WW = np.array([st.W0W0 for st in draws])
    # <xi, xi>: mean sp^2 dd, variance 2 sp^4 dd
    within(G[:, 0, 0], sp**2 * dd, "E G00")
    within((G[:, 1, 1] - sp**2 * dd) ** 2, 2 * sp**4 * dd, "Var G11")
    # <xi_1, xi_2>: mean 0, variance sp^4 dd; third mixed moment E[G01 G12 G20] = sp^6 dd
    within(G[:, 0, 1], 0.0, "E G01")
    within(G[:, 0, 1] ** 2, sp**4 * dd, "Var G01")
    within(G[:, 0, 1] * G[:, 1, 2] * G[:, 2, 0], sp**6 * dd, "E G01 G12 G20")
    # <w0, xi>: variance s0^2 sp^2 dd; <w0, mu>: variance s0^2 mu^2; <w0, w0>: mean s0^2 d
    within(P0[:, 1, 2] ** 2, s0**2 * sp**2 * dd, "Var P0")
    within(P0[:, 0, 0] * P0[:, 1, 0] * G[:, 0, 0], 0.0, "E P0 P0' G")  # independent filters
    within(b0[:, 0] ** 2, s0**2 * mu**2, "Var b0")
    within(WW[:, 0, 0], s0**2 * d, "E |w0|^2")
    within(WW[:, 0, 1] ** 2, s0**4 * d, "Var <w0, w0'>")
    if noise == "isotropic":
        within(c[:, 0] ** 2, sp**2 * mu**2, "Var c")
        # <w0, xi> and <w0, mu><xi, mu> share the e_1 coordinate: E[P0 b0 c] = s0^2 sp^2 mu^2
        within(P0[:, 0, 1] * b0[:, 0] * c[:, 1], s0**2 * sp**2 * mu**2, "E P0 b0 c")
    else:
        assert np.all(c == 0.0)


@pytest.mark.parametrize("noise", ["orthogonal", "isotropic"])
def test_gram_matches_explicit_sampling_beyond_moments(noise):
    # log det of the (n + 2m)-square Gram matrix of [xi; w0] (a non-polynomial statistic of the joint law)
    N = 600
    base = lnref.Config(
        n=3, d=8, m=1, sigma_p=0.7, sigma0=0.3, mu_norm=2.0, noise=noise, n_test=0, engine="coefficients"
    )

    def logdet(st):
        top = np.hstack([st.G, st.P0.T])
        bottom = np.hstack([st.P0, st.W0W0])
        return np.linalg.slogdet(np.vstack([top, bottom]))[1]

    g = [logdet(sample_gram(base.replace(sampling="gram", seed=s)).stats) for s in range(N)]
    e = []
    for s in range(N):
        cfg = base.replace(seed=s)
        xi, W0 = lnref.make_data(cfg).xi, lnref.init_weights(cfg).reshape(2, -1)
        e.append(np.linalg.slogdet(np.vstack([xi, W0]) @ np.vstack([xi, W0]).T)[1])
    same_mean(g, e, "E log det")
    # and the spread
    same_mean((np.array(g) - np.mean(g)) ** 2, (np.array(e) - np.mean(e)) ** 2, "Var log det")


def test_mean_training_curves_match_explicit_sampling():
    seeds = range(40)
    base = lnref.Config(
        n=12,
        d=80,
        m=3,
        sigma_p=0.5,
        mu_norm=1.5,
        eta=1.0,
        tau=0.2,
        steps=60,
        log_every=15,
        n_test=100,
        engine="coefficients",
    )
    curves = {"gram": [], "explicit": []}
    for sampling in curves:
        for s in seeds:
            h = lnref.train(base.replace(sampling=sampling, seed=s), threads=1).history
            curves[sampling].append(np.stack([h["loss"], h["train_acc_clean"], h["gamma_max"], h["test_acc"]]))
    g, e = np.array(curves["gram"]), np.array(curves["explicit"])
    assert g.shape == e.shape == (40, 4, 5)
    assert np.mean(g[:, 0, -1]) < 0.9 * math.log(2)  # the runs learn something
    for k, name in enumerate(["loss", "train_acc_clean", "gamma_max", "test_acc"]):
        for t in range(1, g.shape[2]):
            same_mean(g[:, k, t], e[:, k, t], f"{name} at log point {t}")


@pytest.mark.parametrize(
    "kind,noise,flipped", [("iid", "orthogonal", False), ("iid", "isotropic", True), ("spurious", "isotropic", False)]
)
def test_virtual_test_set_matches_explicit_test_set(kind, noise, flipped):
    # Train on explicit data, then score the same state on a large explicit test set and on a virtual one
    # drawn through Gram coordinates of the same vectors; accuracies and mean outputs agree within MC error.
    T = 20000
    cfg = lnref.Config(
        n=10,
        d=60,
        m=3,
        sigma_p=0.5,
        mu_norm=1.2,
        eta=1.0,
        tau=0.1,
        steps=10,
        n_test=0,
        noise=noise,
        test=kind,
        sigma_zeta=0.3,
        test_flipped_labels=flipped,
        engine="coefficients",
        seed=6,
    )
    data, W0 = lnref.make_data(cfg), lnref.init_weights(cfg)
    eng = from_config(cfg, data, W0)
    assert eng.advance(cfg.steps, None) == cfg.steps
    explicit = lnref.make_test(cfg, data, n_test=T)
    coords, e1 = coordinates(data, W0)
    virtual = virtual_test(cfg, coords, e1, eng.stats, data.y, rng=np.random.default_rng(123), n_test=T)
    acc_e, acc_v = eng.test_accuracy(explicit), eng.test_accuracy(virtual)
    assert 0.55 < acc_e < 0.98  # informative regime
    p = 0.5 * (acc_e + acc_v)
    assert abs(acc_e - acc_v) <= Z * math.sqrt(p * (1 - p) * 2 / T), (acc_e, acc_v)
    fe = eng.test_outputs(explicit).copy()
    fv = eng.test_outputs(virtual).copy()
    same_mean(fe * explicit.y, fv * virtual.y, "mean y f")
    same_mean(fe**2, fv**2, "mean f^2")


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_normals_use_numpys_words_and_agree_with_numpys_values(seed):
    """lnref.kernels.normals runs NumPy's ziggurat over blocks of raw words: same words used, same accept/reject
    decisions, values equal up to table rounding, and the stream continues where NumPy's would."""
    from lnref.kernels.normals import TAIL_R, standard_normal

    ref_rng, rng = lnref.data.stream(seed, "test"), lnref.data.stream(seed, "test")
    ref = ref_rng.standard_normal((1000, 1000))
    got = standard_normal(rng, (1000, 1000))
    assert got.shape == ref.shape and got.dtype == np.float64
    assert np.all(np.sign(got) == np.sign(ref))
    # table rounding only: 1e-12 relative (a different word, layer or tail draw would give O(1) differences)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0.0)
    assert np.count_nonzero(np.abs(ref) > TAIL_R) > 100  # the tail path ran
    assert rng.random(5).tolist() == ref_rng.random(5).tolist()  # same number of words used
    # the transposed layout holds the same draws (bit for bit) and uses the same words
    rng_t, rng_c = lnref.data.stream(seed, "test"), lnref.data.stream(seed, "test")
    got_t = standard_normal(rng_t, (300, 7), transposed=True)
    assert got_t.shape == (7, 300) and got_t.flags.c_contiguous
    assert np.array_equal(got_t, standard_normal(rng_c, (300, 7)).T)
    assert rng_t.random(3).tolist() == rng_c.random(3).tolist()
    # a small block; the kernel reports the words it used, and the generator is then where random_raw of that
    # many words leaves it
    small_ref = lnref.data.stream(seed, "gram").standard_normal(3)
    np.testing.assert_allclose(standard_normal(lnref.data.stream(seed, "gram"), 3), small_ref, rtol=1e-12)
    from lnref.kernels.normals import ZIG_F, ZIG_K, ZIG_W, pcg64_words, ziggurat_fill

    _, words_state = pcg64_words(lnref.data.stream(seed, "gram").bit_generator)
    used = ziggurat_fill(words_state, ZIG_K, ZIG_W, ZIG_F, TAIL_R, np.empty((50, 1)))
    assert 50 <= used <= 60
    ref_bg = lnref.data.stream(seed, "gram").bit_generator
    ref_bg.random_raw(used)
    assert np.array_equal(words_state, pcg64_words(ref_bg)[1])


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    T=st.integers(0, 301),
    span=st.one_of(st.just(1), st.just(2), st.integers(3, 40), st.integers(2**31, 2**32 - 1), st.just(3 * 2**30)),
)
def test_bounded_integers_are_numpys_integers(seed, T, span):
    """The labels and training indices of a fresh virtual test set are NumPy's ``integers(0, span, T)``: Lemire's
    method on buffered 32-bit halves, rejections included (a span near 2^32, or 3 * 2^30, rejects up to half the
    draws), and the next 64-bit words are the ones NumPy would use next (the normals follow)."""
    from lnref.kernels.normals import bounded_integers, pcg64_words

    rng = np.random.Generator(np.random.PCG64(seed))
    _, words_state = pcg64_words(np.random.Generator(np.random.PCG64(seed)).bit_generator)
    got = np.empty(T, dtype=np.int64)
    bounded_integers(words_state, span, got)
    assert np.array_equal(got, rng.integers(0, span, T))
    after = rng.bit_generator
    assert np.array_equal(words_state[:2], pcg64_words(after)[1][:2])  # the same 128-bit state: the same next word


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), skip=st.integers(0, 3), n=st.integers(1, 300))
def test_pcg64_words_in_numba_are_numpys_random_raw(seed, skip, n):
    """The PCG64 step the normals kernel runs (an i128 multiply-add and the XSL-RR output) gives NumPy's words,
    and the state it writes back continues NumPy's stream (also after a 32-bit draw buffered a half word)."""
    import numba

    from lnref.kernels.normals import next_word, pcg64_words, set_pcg64_words

    @numba.njit
    def words(st, out):
        for i in range(out.shape[0]):
            out[i] = next_word(st)

    rng, ref = np.random.Generator(np.random.PCG64(seed)), np.random.Generator(np.random.PCG64(seed))
    for g in (rng, ref):
        g.integers(0, 2**32, skip, dtype=np.uint32)  # odd skip: a buffered 32-bit half word
    state, words_state = pcg64_words(rng.bit_generator)
    got = np.empty(n, dtype=np.uint64)
    words(words_state, got)
    set_pcg64_words(rng.bit_generator, state, words_state)
    assert np.array_equal(got, ref.bit_generator.random_raw(n))
    assert rng.bit_generator.state == ref.bit_generator.state
    assert rng.integers(0, 2**32, 3, dtype=np.uint32).tolist() == ref.integers(0, 2**32, 3, dtype=np.uint32).tolist()


def test_fast_normals_have_the_standard_normal_law():
    from lnref.kernels.normals import standard_normal

    x = standard_normal(lnref.data.stream(3, "test"), 400_000)
    within(x, 0.0, "mean")
    within(x * x, 1.0, "variance")
    within(x**4, 3.0, "fourth moment")
    within((x > 2.5).astype(float), 0.006209665325776132, "upper tail P(X > 2.5)")
    within((x < -3.7).astype(float), 1.0779973347738824e-4, "lower tail P(X < -3.7)")


# ---------------------------------------------------------------------------------------------- init='torch'
# Uniform W0 has no Wishart law: sample_gram draws W0 explicitly (lnref.init_weights, stream 'init') and only the
# noise through its Gram law.  d = 9 > 2m + 1 (a Bartlett complement of dimension d - 1 - 2m = 4 >= n);
# d = 5: complement 0 (d - 1 = 2m, the noise lives entirely on W0's span); d = 7: complement 2 < n (direct draw);
# d = 4: d - 1 < 2m (W0's rows span all of e_1's complement: the QR branch instead of the Cholesky one).
@pytest.mark.parametrize("d", [9, 5, 7, 4])
@pytest.mark.parametrize("noise", ["orthogonal", "isotropic"])
def test_torch_init_gram_moments_match_explicit_sampling(d, noise):
    N = 1500
    base = lnref.Config(
        n=3, d=d, m=2, sigma_p=0.7, mu_norm=2.0, noise=noise, n_test=0, init="torch", engine="coefficients"
    )
    g = [sample_gram(base.replace(sampling="gram", seed=s)).stats for s in range(N)]
    e = []
    with num_threads(1):  # make_data's projection kernel is parallel: thread start-up would dominate at d = 9
        for s in range(N):
            cfg = base.replace(seed=s)
            data, W0 = lnref.make_data(cfg), lnref.init_weights(cfg).reshape(4, d)
            e.append((data.xi @ data.xi.T, W0 @ data.xi.T, W0 @ data.mu, data.xi @ data.mu))
    G, P0, b0, c = (
        np.array([st.G for st in g]),
        np.array([st.P0 for st in g]),
        np.array([st.b0 for st in g]),
        np.array([st.c for st in g]),
    )
    Ge, P0e, b0e, ce = (np.array([x[k] for x in e]) for k in range(4))
    a2 = 1.0 / (3.0 * d)  # variance of one uniform(+-1/sqrt(d)) entry
    dd = d - 1 if noise == "orthogonal" else d
    # ||xi_i||^2 and <xi_i, xi_k>: first and second moments
    same_mean(G[:, 0, 0], Ge[:, 0, 0], "E ||xi||^2")
    within(G[:, 0, 0], 0.49 * dd, "E ||xi||^2 exact")
    same_mean((G[:, 1, 1] - 0.49 * dd) ** 2, (Ge[:, 1, 1] - 0.49 * dd) ** 2, "Var ||xi||^2")
    same_mean(G[:, 0, 1] ** 2, Ge[:, 0, 1] ** 2, "E <xi, xi'>^2")
    # <w_f(0), xi_i>: second and fourth moments (the fourth sees the uniform law's kurtosis) and a mixed moment
    same_mean(P0[:, 1, 2] ** 2, P0e[:, 1, 2] ** 2, "E <w, xi>^2")
    within(P0[:, 1, 2] ** 2, 0.49 * a2 * dd, "E <w, xi>^2 exact")
    same_mean(P0[:, 3, 0] ** 4, P0e[:, 3, 0] ** 4, "E <w, xi>^4")
    same_mean(
        P0[:, 0, 0] * P0[:, 0, 1] * G[:, 0, 1],
        P0e[:, 0, 0] * P0e[:, 0, 1] * Ge[:, 0, 1],
        "E <w, xi1><w, xi2><xi1, xi2>",
    )
    # <w_f(0), mu>: the filters are the explicit path's own numbers
    np.testing.assert_array_equal(b0, b0e)
    if noise == "isotropic":
        same_mean(P0[:, 2, 1] * b0[:, 2] * c[:, 1], P0e[:, 2, 1] * b0e[:, 2] * ce[:, 1], "E <w, xi><w, mu><xi, mu>")
    else:
        assert np.all(c == 0.0)


def test_torch_init_filters_and_biases_are_the_explicit_ones():
    cfg = lnref.Config(
        n=4, d=40, m=3, init="torch", bias=True, n_test=5, engine="coefficients", sampling="gram", seed=11
    )
    g = sample_gram(cfg)
    W0 = lnref.init_weights(cfg).reshape(6, 40)
    np.testing.assert_allclose(g.stats.W0W0, W0 @ W0.T, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(g.stats.b0, cfg.mu_norm * W0[:, 0])
    np.testing.assert_array_equal(g.bias0, lnref.init_bias(cfg))
    assert np.all(np.abs(g.bias0) <= 1 / math.sqrt(40)) and np.any(g.bias0 != 0.0)
    np.testing.assert_array_equal(sample_gram(cfg.replace(bias=False)).bias0, np.zeros((2, 3)))
    # the Gaussian path's biases are zeros too, and its draws did not change (test_same_seed... checks the bits)
    np.testing.assert_array_equal(sample_gram(cfg.replace(init="gaussian")).bias0, np.zeros((2, 3)))


def test_torch_init_refuses_what_it_cannot_draw():
    cfg = lnref.Config(n=4, d=10**9, m=3, init="torch", n_test=0, engine="coefficients", sampling="gram")
    with pytest.raises(lnref.ConfigError, match="draws W0 explicitly"):
        sample_gram(cfg)


@pytest.mark.parametrize("noise,flipped", [("isotropic", True), ("orthogonal", False)])
def test_torch_init_virtual_test_set_matches_explicit_test_set(noise, flipped):
    # Gram-sample a torch-initialised run, embed its coordinates isometrically into R^d (x_a = [e1_a, coords_a, 0]),
    # train on that explicit copy, then score the trained state on an explicit test set (make_test: fresh noise in
    # all d coordinates) and on the virtual test set of the Gram coordinates: same accuracy within MC error.
    T = 20000
    cfg = lnref.Config(
        n=10,
        d=40,
        m=3,
        sigma_p=0.5,
        mu_norm=1.2,
        eta=1.0,
        tau=0.1,
        steps=10,
        n_test=0,
        noise=noise,
        test_flipped_labels=flipped,
        init="torch",
        engine="coefficients",
        seed=6,
    )
    g = sample_gram(cfg.replace(sampling="gram"))
    n, F, r = cfg.n, 2 * cfg.m, g.coords.shape[1]
    assert r <= cfg.d - 1
    V = np.zeros((n + F, cfg.d))
    V[:, 0], V[:, 1 : 1 + r] = g.e1, g.coords
    mu = np.zeros(cfg.d)
    mu[0] = cfg.mu_norm
    data = lnref.Dataset(mu, V[:n], g.y, g.y_obs)
    W0 = V[n:].reshape(2, cfg.m, cfg.d)
    eng = from_config(cfg, data, W0)
    np.testing.assert_allclose(eng.stats.G, g.stats.G, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eng.stats.P0, g.stats.P0, rtol=1e-12, atol=1e-12)
    assert eng.advance(cfg.steps, None) == cfg.steps
    explicit = lnref.make_test(cfg, data, n_test=T)
    virtual = virtual_test(cfg, g.coords, g.e1, g.stats, g.y, rng=np.random.default_rng(5), n_test=T)
    acc_e, acc_v = eng.test_accuracy(explicit), eng.test_accuracy(virtual)
    assert 0.55 < acc_e < 0.98, acc_e  # informative regime
    p = 0.5 * (acc_e + acc_v)
    assert abs(acc_e - acc_v) <= Z * math.sqrt(p * (1 - p) * 2 / T), (acc_e, acc_v)
    same_mean(eng.test_outputs(explicit).copy() * explicit.y, eng.test_outputs(virtual).copy() * virtual.y, "mean y f")


def test_torch_init_with_bias_trained_runs_match_explicit_sampling():
    # Kou et al.'s conventions (uniform init with biases, mean over patches, filters summed): the final loss, test
    # accuracy and biases of Gram-sampled runs have the law of explicitly sampled ones (40 seeds each).
    base = lnref.Config(
        n=12,
        d=60,
        m=4,
        q=1.0,
        eta=0.1,
        init="torch",
        bias=True,
        patch_reduce="mean",
        output_scale=1.0,
        sigma_p=1.0,
        mu_norm=2.0,
        tau=0.1,
        noise="isotropic",
        steps=40,
        log_every=0,
        n_test=200,
        test_flipped_labels=True,
        engine="coefficients",
    )
    out = {"gram": [], "explicit": []}
    for sampling in out:
        for s in range(40):
            r = lnref.train(base.replace(sampling=sampling, seed=s), threads=1)
            h = r.history
            out[sampling].append([h["loss"][-1], h["test_acc"][-1], float(np.mean(r.b)), float(np.std(r.b))])
    g, e = np.array(out["gram"]), np.array(out["explicit"])
    assert np.mean(e[:, 1]) > 0.6  # the runs learn the signal
    for k, name in enumerate(["loss", "test_acc", "mean bias", "sd of biases"]):
        same_mean(g[:, k], e[:, k], name)


def _numpy_bartlett(rng, k, dof):
    """The Bartlett coordinates as NumPy's array calls draw them (written independently of the kernels)."""
    if k > dof:
        return rng.standard_normal((k, dof))
    T = np.zeros((k, k))
    T[np.arange(k), np.arange(k)] = np.sqrt(rng.chisquare(dof - np.arange(k, dtype=np.float64)))
    rows, cols = np.tril_indices(k, -1)
    T[rows, cols] = rng.standard_normal(rows.size)
    return T


def _numpy_gram_coordinates(cfg, rng, W=None, wcoords=None):
    """coords and e1 of stream gram in the documented draw order (lnref.data.gram), with NumPy's array draws."""
    n, F, d = cfg.n, 2 * cfg.m, cfg.d
    iso = cfg.noise == "isotropic"
    e1 = np.empty(n + F)
    if W is None:
        e1[n:] = cfg.sigma0 * rng.standard_normal(F)
        e1[:n] = cfg.sigma_p * rng.standard_normal(n) if iso else 0.0
        coords = _numpy_bartlett(rng, n + F, d - 1)
        coords[:n] *= cfg.sigma_p
        coords[n:] *= cfg.sigma0
        return coords, e1
    s = wcoords.shape[1]
    e1[n:] = W[:, 0]
    e1[:n] = cfg.sigma_p * rng.standard_normal(n) if iso else 0.0
    on_span = rng.standard_normal((n, s))
    rest = _numpy_bartlett(rng, n, d - 1 - s) if d - 1 - s > 0 else np.zeros((n, 0))
    coords = np.zeros((n + F, s + rest.shape[1]))
    coords[:n, :s] = on_span
    coords[:n, s:] = rest
    coords[:n] *= cfg.sigma_p
    coords[n:, :s] = wcoords
    return coords, e1


@pytest.mark.parametrize(
    "changes",
    [
        dict(d=200),
        dict(d=200, noise="orthogonal"),
        dict(d=9),  # n + 2m > d - 1: the vectors themselves
        dict(d=200, init="torch", bias=True),
        dict(d=200, init="torch", noise="orthogonal"),
        dict(d=13, init="torch"),  # d - 1 - 2m = 4 < n: a short Bartlett factor
        dict(d=5, init="torch"),  # 2m > d - 1: W0's QR, no complement
    ],
)
def test_compiled_gram_draws_are_numpys_array_draws(changes):
    """lnref.kernels.gram's draws of stream gram (numba's Generator methods) equal NumPy's array calls in the
    documented order, bit for bit, and leave the generator in the same state."""
    from lnref.data import stream
    from lnref.data.gram import gram_draws
    from lnref.kernels import gram as KG

    for seed in (1, 2, 3):
        cfg = lnref.Config(n=10, m=3, sigma0=0.3, sigma_p=1.5, noise="isotropic", seed=seed).replace(**changes)
        _, _, coords, e1 = gram_draws(cfg)
        rng = stream(cfg.seed, "gram")
        if cfg.init == "torch":
            W = lnref.init_weights(cfg).reshape(2 * cfg.m, cfg.d)
            s = min(2 * cfg.m, cfg.d - 1)
            wc = np.linalg.cholesky(W[:, 1:] @ W[:, 1:].T) if s == 2 * cfg.m else np.linalg.qr(W[:, 1:].T, mode="r").T
            exp_coords, exp_e1 = _numpy_gram_coordinates(cfg, rng, W, wc[:, :s])
            rng2 = stream(cfg.seed, "gram")
            KG.torch_gram_coordinates(
                rng2, W, np.ascontiguousarray(wc[:, :s]), cfg.n, cfg.d - 1, 1.5, cfg.noise == "isotropic"
            )
        else:
            exp_coords, exp_e1 = _numpy_gram_coordinates(cfg, rng)
            rng2 = stream(cfg.seed, "gram")
            KG.gaussian_gram_coordinates(rng2, cfg.n, 2 * cfg.m, cfg.d - 1, 1.5, 0.3, cfg.noise == "isotropic")
        np.testing.assert_array_equal(coords, exp_coords)
        np.testing.assert_array_equal(e1, exp_e1)
        assert coords.tobytes() == exp_coords.tobytes() and e1.tobytes() == exp_e1.tobytes()  # signs of zeros too
        assert rng2.bit_generator.state == rng.bit_generator.state  # the generator left where NumPy leaves it


def test_the_reused_gram_generator_is_the_fresh_stream_in_every_thread():
    """gram_draws reuses one Generator per thread (numba reads its ctypes interface, built once per generator), set
    to stream gram's fresh state: the same draws as a new stream, for any seed, and threads do not share it."""
    import threading

    from lnref.data import stream
    from lnref.data.gram import _gram_generator

    for seed in (0, 7, 2**64 - 1, 2**64 + 3):
        a = _gram_generator(seed)
        draws = (a.standard_normal(3), a.random(2), a.integers(0, 2**31, 3))  # and a buffered 32-bit half left over
        b = stream(seed, "gram")
        expected = (b.standard_normal(3), b.random(2), b.integers(0, 2**31, 3))
        for x, e in zip(draws, expected):
            np.testing.assert_array_equal(x, e)
    assert _gram_generator(1) is _gram_generator(2)
    other = []
    t = threading.Thread(target=lambda: other.append(_gram_generator(1)))
    t.start()
    t.join()
    assert other[0] is not _gram_generator(1)
    np.testing.assert_array_equal(_gram_generator(5).random(4), stream(5, "gram").random(4))  # reset after use
