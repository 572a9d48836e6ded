"""Kernel-level exactness (docs/DESIGN.md "Numerics"): thread counts and JIT on/off give identical arrays;
the gradient matches central finite differences; ``lnref.gd_step`` is one step of ``lnref.train`` bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import lnref
from lnref.data import label_noise_signs, stream

# Configurations exercised for exactness: plain and label-noise GD, ReLU and a non-integer q, both noise
# models, 2m > FILTER_BLOCK filters so that several prange blocks run.
EXACT_CASES = [
    dict(q=1.0, algorithm="gd", noise="orthogonal"),
    dict(q=2.5, algorithm="label_noise_gd", noise="isotropic", p=0.3),
]


def result_arrays(res: lnref.Result) -> dict[str, np.ndarray]:
    out = {"W": res.W, "gamma": res.gamma, "rho": res.rho, "xi": res.data.xi, "y_obs": res.data.y_obs}
    out.update({f"hist_{k}": v for k, v in res.history.items()})
    out.update({f"trace_{k}": v for k, v in res.trace.items()})
    return out


def assert_bit_identical(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs (max |diff| {np.nanmax(np.abs(a[k] - b[k]))})"


def exact_config(**kw):
    base = dict(n=9, d=23, m=3, steps=12, log_every=1, n_test=5, seed=7, sigma0=0.2, eta=0.8, tau=0.3)
    base.update(kw)
    return lnref.Config(**base)


SUBPROCESS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import lnref
    cfg = lnref.Config(**json.loads(sys.argv[1]))
    res = lnref.train(cfg, threads=int(sys.argv[3]))
    arrays = {"W": res.W, "gamma": res.gamma, "rho": res.rho, "xi": res.data.xi, "y_obs": res.data.y_obs}
    arrays.update({f"hist_{k}": v for k, v in res.history.items()})
    arrays.update({f"trace_{k}": v for k, v in res.trace.items()})
    np.savez(sys.argv[2], **arrays)
""")


def train_in_subprocess(cfg: lnref.Config, tmp_path, threads: int, **env) -> dict[str, np.ndarray]:
    out = tmp_path / f"run_{threads}_{'_'.join(env)}.npz"
    proc = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_SCRIPT, json.dumps(cfg.to_dict()), str(out), str(threads)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("case", EXACT_CASES, ids=lambda c: f"q{c['q']}-{c['algorithm']}")
def test_results_bit_identical_for_one_and_two_threads(case, tmp_path):
    cfg = exact_config(**case)
    one = result_arrays(lnref.train(cfg, threads=1))
    if numba.config.NUMBA_NUM_THREADS >= 2:
        two = result_arrays(lnref.train(cfg, threads=2))
    else:  # a one-core machine: ask numba for two threads in a fresh process
        two = train_in_subprocess(cfg, tmp_path, 2, NUMBA_NUM_THREADS="2")
    assert_bit_identical(one, two)


def test_jit_disabled_equals_jitted_bit_for_bit(tmp_path):
    # tiny sizes: with NUMBA_DISABLE_JIT=1 every kernel runs as plain Python
    for case in EXACT_CASES:
        cfg = exact_config(n=5, d=9, m=3, steps=4, n_test=3, **case)
        jitted = result_arrays(lnref.train(cfg, threads=1))
        pure = train_in_subprocess(cfg, tmp_path, 1, NUMBA_DISABLE_JIT="1")
        assert_bit_identical(jitted, pure)


# ------------------------------------------------------------------ gradient vs finite differences
def finite_difference_gradient(W, data, q, eps=None, h=1e-6):
    G = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        Wp = W.copy()
        Wm = W.copy()
        Wp[idx] += h
        Wm[idx] -= h
        G[idx] = (lnref.loss(Wp, data, q, eps=eps) - lnref.loss(Wm, data, q, eps=eps)) / (2 * h)
    return G


def min_kink_distance(W, data) -> float:
    """Smallest |<w, x>| over all filters and patches x in {y_i mu, xi_i}, relative to max|x|."""
    z_noise = np.einsum("jrd,id->jri", W, data.xi) / np.max(np.abs(data.xi))
    z_signal = np.einsum("jrd,d->jr", W, data.mu)[..., None] * data.y / np.max(np.abs(data.mu))
    return float(min(np.min(np.abs(z_noise)), np.min(np.abs(z_signal))))


@pytest.mark.parametrize("q", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("label_noise", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_central_finite_differences(q, label_noise, seed):
    cfg = lnref.Config(n=5, d=8, m=2, q=q, seed=seed, n_test=0, tau=0.2, noise="isotropic", mu_norm=1.5)
    data = lnref.make_data(cfg)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((2, cfg.m, cfg.d)) * 0.5
    eps = np.where(rng.random(cfg.n) < 0.4, -1.0, 1.0) if label_noise else None
    h = 1e-6
    if q == 1.0:
        # away from kinks: no inner product is within the finite-difference stencil of 0
        assert min_kink_distance(W, data) > 100 * h
    G = lnref.gradient(W, data, q, eps=eps)
    G_fd = finite_difference_gradient(W, data, q, eps, h)
    assert np.max(np.abs(G)) > 1e-3  # not vacuous
    # central differences: truncation O(h^2 |L'''|), rounding O(ulp(L)/h) ~ 1e-10
    np.testing.assert_allclose(G, G_fd, rtol=1e-6, atol=1e-8)


def test_relu_gradient_at_a_kink_uses_indicator_of_positive_part():
    # sigma'(0) = 0 for q = 1 (SPEC.md section 2): a filter with <w, xi_0> = 0 gets no gradient from xi_0
    xi = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    data = lnref.Dataset(mu=np.array([1.0, 0.0, 0.0]), xi=xi, y=np.array([1.0, -1.0]), y_obs=np.array([1.0, -1.0]))
    W = np.zeros((2, 1, 3))
    W[0, 0] = [0.5, 0.0, -0.2]  # <w, xi_0> = 0 (kink), <w, xi_1> < 0, <w, mu> > 0
    W[1, 0] = [-0.5, 0.3, 0.4]  # <w, mu> < 0, active on both noise patches
    G = lnref.gradient(W, data, 1.0)
    # filter (+1, 1): only the signal patch of sample 0 (y=+1, <w, mu> > 0) is active -> gradient along mu only
    assert G[0, 0, 1] == 0.0 and G[0, 0, 2] == 0.0 and G[0, 0, 0] != 0.0
    assert np.all(G[1, 0] != 0.0)


# ------------------------------------------------------------------ gd_step vs train
@pytest.mark.parametrize("algorithm", ["gd", "label_noise_gd"])
@pytest.mark.parametrize("q", [1.0, 2.5])
def test_gd_step_equals_one_step_of_train_bit_for_bit(algorithm, q):
    cfg = lnref.Config(
        n=11, d=30, m=3, q=q, steps=1, log_every=1, n_test=0, seed=4, algorithm=algorithm, p=0.3, sigma0=0.1
    )
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    res = lnref.train(cfg, data, W0)
    eps = None
    if algorithm == "label_noise_gd":
        eps = label_noise_signs(stream(cfg.seed, "label_noise"), (cfg.n,), cfg.p)
    W1 = lnref.gd_step(W0, data, cfg.eta, q, eps=eps)
    assert not np.array_equal(W1, W0)
    assert W1.tobytes() == res.W.tobytes()
    # and a second step from there equals a 2-step run
    res2 = lnref.train(cfg.replace(steps=2), data, W0)
    if eps is not None:
        rng = stream(cfg.seed, "label_noise")
        eps = label_noise_signs(rng, (2, cfg.n), cfg.p)[1]
    W2 = lnref.gd_step(W1, data, cfg.eta, q, eps=eps)
    assert W2.tobytes() == res2.W.tobytes()


def test_gradient_rows_sum_in_the_documented_order():
    """G[f] of lnref.kernels.contractions.gradient_rows (blocked over k-tiles, two groups of four per pass) equals,
    bit for bit, the order its docstring states, written plainly: the active samples in increasing i in groups of
    four summed as (t0 + t1) + (t2 + t3) and added to the running sum, then the rest one at a time; then
    (s_j/(n div)) (S_f mu + sum).  Sizes: several k-tiles with a remainder, active counts with 8-groups, a
    4-group and single terms, a filter range not starting at 0."""
    from lnref.kernels import contractions as KX
    from lnref.kernels.equations import step_scalings

    rng = np.random.default_rng(3)
    n, d, m = 45, 2 * KX.GRAD_K_TILE + 37, 3
    F = 2 * m
    A = rng.standard_normal((F, n))
    B = rng.standard_normal(F)
    X = rng.standard_normal((n, d))
    mu = rng.standard_normal(d)
    y = rng.choice([-1.0, 1.0], n)
    lpm = rng.standard_normal(n)
    lpy = lpm * y
    xi_sq = np.einsum("ij,ij->i", X, X)
    div, eta = float(m), 0.3
    rate, gscale, bscale = step_scalings(xi_sq, eta, float(mu @ mu), div)
    zF, znF = np.zeros(F), np.zeros((F, n))
    out = dict(gamma_new=np.empty(F), rho_new=np.empty((F, n)), bias_new=np.empty(F))
    G, S, Sb, C = np.zeros((F, d)), np.empty(F), np.empty(F), np.empty((F, n))
    bad = np.zeros(F, dtype=np.int64)
    active, nactive = np.empty((F, n), dtype=np.int64), np.empty(F, dtype=np.int64)
    f0 = 1
    KX.gradient_rows(
        f0, F, A, B, zF, lpm, lpy, y, mu, X, 1.0, m, div, rate, gscale, bscale, zF, znF,
        out["gamma_new"], out["rho_new"], out["bias_new"], G, S, Sb, C, bad, False, active, nactive,
    )  # fmt: skip
    counts = set()
    for f in range(f0, F):
        act = [i for i in range(n) if C[f, i] != 0.0]
        counts.add(len(act))
        g = np.zeros(d)
        n4 = len(act) - len(act) % 4
        for j in range(0, n4, 4):
            c0, c1, c2, c3 = (C[f, act[j + t]] for t in range(4))
            x0, x1, x2, x3 = (X[act[j + t]] for t in range(4))
            g = g + ((c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3))
        for j in range(n4, len(act)):
            g = g + C[f, act[j]] * X[act[j]]
        sj = 1.0 if f < m else -1.0
        want = (sj / (n * div)) * (S[f] * mu + g)
        assert G[f].tobytes() == want.tobytes(), f"filter {f}: max |diff| {np.max(np.abs(G[f] - want))}"
    assert any(c % 8 >= 4 and c >= 8 for c in counts) and any(c % 4 for c in counts), counts
