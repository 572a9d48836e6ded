"""The coefficient-space engine (SPEC.md section 4) against the weight engine, and its determinism rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lnref
from lnref.config import ConfigError
from lnref.data.gram import sample_gram
from lnref.engines import from_config
from lnref.kernels import coefficients as KC

# Agreement tolerance between the engines: rtol 1e-10, plus an absolute floor of 1e-10 times the array's largest
# magnitude (entries that cancel to near zero carry the rounding of the large terms they came from).
RTOL = 1e-10


def _lane_tables(P0, b0, Gn, cA, cB, pad=0):
    """The kernels' tables with the signal as lane n (lnref.kernels.coefficients): P = [P0 | b0],
    Gn = [Gn | cB | pad columns of garbage the kernels must not read], cA = [cA | 1]."""
    n = Gn.shape[0]
    G = np.full((n, n + 1 + pad), np.nan)
    G[:, :n] = Gn
    G[:, n] = cB
    return np.hstack([P0, b0[:, None]]), G, np.append(cA, 1.0)


def close(a, b, what):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = float(np.nanmax(np.abs(a))) if a.size and np.any(np.isfinite(a)) else 0.0
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale, equal_nan=True, err_msg=what)


SMALL = dict(n=8, d=40, m=3, steps=1000, log_every=100, n_test=40, sigma_p=0.5, mu_norm=2.0, seed=11)
CASES = [
    dict(q=1.0, noise="orthogonal", tau=0.2, algorithm="gd"),
    dict(q=1.0, noise="isotropic", tau=0.0, algorithm="gd", test="spurious"),
    dict(q=1.0, noise="orthogonal", tau=0.25, algorithm="label_noise_gd", p=0.2, test_flipped_labels=True),
    dict(q=2.0, noise="isotropic", tau=0.2, algorithm="label_noise_gd", eta=0.3),
    dict(q=2.0, noise="orthogonal", tau=0.0, algorithm="gd", eta=0.3),
    dict(q=3.0, noise="orthogonal", tau=0.2, algorithm="gd", eta=0.05, sigma0=0.1),
    dict(q=3.0, noise="isotropic", tau=0.2, algorithm="label_noise_gd", eta=0.05, sigma0=0.1),
    dict(q=1.0, noise="isotropic", mu_norm=0.0, tau=0.2, algorithm="gd"),
    dict(q=1.0, noise="orthogonal", mu_norm=0.0, tau=0.2, algorithm="gd"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_engines_agree_over_1000_steps(case):
    cfg = lnref.Config(**{**SMALL, **case})
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    rw = lnref.train(cfg, data, W0, threads=1)
    rc = lnref.train(cfg.replace(engine="coefficients"), data, W0, threads=1)
    assert rc.steps_done == rw.steps_done == cfg.steps
    # the run must move (otherwise agreement would be trivial)
    assert np.max(np.abs(rw.rho)) > 0.1
    assert set(rw.history) == set(rc.history)
    for key in rw.history:
        close(rc.history[key], rw.history[key], f"history[{key!r}]")
    close(rc.gamma, rw.gamma, "gamma")
    close(rc.rho, rw.rho, "rho")
    close(rc.trace["rho"], rw.trace["rho"], "trace rho")
    close(rc.trace["margin"], rw.trace["margin"], "trace margin")
    close(rc.W, rw.W, "reconstructed W")
    np.testing.assert_array_equal(rc.W0, rw.W0)


def test_first_step_outputs_bit_identical_to_weight_engine():
    # P0, b0 come from the weight engine's own kernel, so f(W(0)) is the same to the last bit.
    cfg = lnref.Config(**{**SMALL, "steps": 0})
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    np.testing.assert_array_equal(from_config(cfg, data, W0).forward(), lnref.forward(W0, data, cfg.q))


def _gram_run(threads, **kw):
    cfg = lnref.Config(
        n=240,
        d=10**6,
        m=10,
        steps=30,
        log_every=10,
        n_test=300,
        engine="coefficients",
        sampling="gram",
        tau=0.2,
        seed=4,
        **kw,
    )
    assert 2 * cfg.m * cfg.n**2 >= lnref.data.gram_stats.PARALLEL_WORK  # the parallel kernels are the ones tested
    return lnref.train(cfg, threads=threads)


@pytest.mark.parametrize("algorithm", ["gd", "label_noise_gd"])
def test_thread_counts_bit_identical(algorithm):
    r1 = _gram_run(1, algorithm=algorithm)
    r2 = _gram_run(2, algorithm=algorithm)
    np.testing.assert_array_equal(r1.gamma, r2.gamma)
    np.testing.assert_array_equal(r1.rho, r2.rho)
    for key in r1.history:
        np.testing.assert_array_equal(r1.history[key], r2.history[key], err_msg=key)


@pytest.mark.parametrize("n", [40, 80])  # below and above KC.PAIR_SAMPLES (one filter or two per pass)
def test_parallel_and_serial_kernels_bit_identical(n):
    assert (n < KC.PAIR_SAMPLES) == (n == 40)
    rng = np.random.default_rng(0)
    F, m = 6, 3
    gamma, rho = rng.normal(size=F), rng.normal(size=(F, n)) * (rng.random((F, n)) < 0.7)
    P0, b0 = rng.normal(size=(F, n)), rng.normal(size=F)
    Gn, cA, cB, y = rng.normal(size=(n, n)), rng.normal(size=n), rng.normal(size=n), np.sign(rng.normal(size=n))
    bias = rng.normal(size=F) * 0.1
    outs = []
    P, G, cA1 = _lane_tables(P0, b0, Gn, cA, cB, pad=3)
    for kern in (KC.outputs, KC.outputs_serial):
        A, B, f = np.empty((F, n + 1)), np.empty(F), np.empty(n)
        kern(gamma, rho, bias, P, G, cA1, y, 1.5, m, float(m), A, B, f, np.empty((F, n), dtype=np.int64))
        outs.append((A, B, f))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    mults = np.sign(rng.normal(size=(5, n)))
    xi_sq = rng.random(n) + 1.0
    # the logistic loss, and ELR (code 8: per-sample state updated inside the parallel region) with period 2
    for code, lp in ((0, np.zeros(3)), (8, np.array([3.0, 0.7, 2.0]))):
        res = []
        for kern in (KC.advance, KC.advance_serial):
            g, r, b = gamma.copy(), rho.copy(), bias.copy()
            target = np.zeros((2, n))
            done = kern(
                5,
                mults,
                2.0,
                m,
                1.7,
                0.1,
                3.0,
                xi_sq,
                P,
                G,
                cA1,
                y,
                g,
                r,
                b,
                np.empty(F),
                np.empty((F, n)),
                np.empty(F),
                np.empty((F, n + 1)),
                np.empty(F),
                np.empty(n),
                np.empty(n),
                np.empty(F),
                np.empty(F),
                np.empty((F, n)),
                np.zeros(F, dtype=np.int64),
                np.empty((F, n), dtype=np.int64),
                True,
                code,
                lp,
                target,
                np.empty((2, n)),
                0,
            )
            res.append((done, g, r, b, target))
        assert res[0][0] == res[1][0] == 5
        for a, b in zip(res[0][1:], res[1][1:]):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(res[0][3], bias)  # the biases were trained
        assert (res[0][4] != 0).all() == (code == 8)  # ELR's targets were updated (steps 0, 2, 4)


@pytest.mark.parametrize("n", [23, 70])  # below and above KC.PAIR_SAMPLES
def test_inner_product_sums_are_serial_sums_in_index_order(n):
    """The kernels sum 32 outputs at a time in vector registers, two filters per pass over the rows
    (lnref.kernels.lanes); that must be the plain serial sum a += t_i over the non-zero terms in index order, bit
    for bit (SPEC.md section 4's inner products).  F = 6: pairs of filters and a block's odd one out."""
    rng = np.random.default_rng(1)
    assert (n < KC.PAIR_SAMPLES) == (n == 23)
    F, m = 6, 3  # pairs of filters, each with its own non-zero terms
    gamma, rho = rng.normal(size=F), rng.normal(size=(F, n)) * (rng.random((F, n)) < 0.6)
    P0, b0 = rng.normal(size=(F, n)), rng.normal(size=F)
    Gn, cA, cB, y = rng.normal(size=(n, n)), rng.normal(size=n), rng.normal(size=n), np.sign(rng.normal(size=n))
    A, B, f = np.empty((F, n + 1)), np.empty(F), np.empty(n)
    P, G, cA1 = _lane_tables(P0, b0, Gn, cA, cB, pad=5)
    KC.outputs_serial(
        gamma, rho, np.zeros(F), P, G, cA1, y, 1.0, m, float(m), A, B, f, np.empty((F, n), dtype=np.int64)
    )
    for fi in range(F):
        g = (1.0 if fi < m else -1.0) * float(gamma[fi])
        for k in range(n):
            acc = float(P0[fi, k]) + g * float(cA[k])
            for i in range(n):
                if rho[fi, i] != 0.0:
                    acc = acc + float(rho[fi, i]) * float(Gn[i, k])
            assert A[fi, k] == acc, (fi, k)
        # <w_f, mu> = <w_f(0), mu> + s_j gamma_f + sum_i rho_{f,i} <xi_i, mu>/||xi_i||^2 (SPEC.md section 4), serial
        acc = float(b0[fi]) + g
        for i in range(n):
            if rho[fi, i] != 0.0:
                acc = acc + float(rho[fi, i]) * float(cB[i])
        assert B[fi] == acc == A[fi, n], fi
    Y = rng.normal(size=(5, 9)) * (rng.random((5, 9)) < 0.7)
    Z = rng.normal(size=(11, 9))
    out = lnref.data.gram_stats.cross_t(Y, Z.T)
    for a in range(5):
        for t in range(11):
            acc = 0.0
            for c in range(9):
                if Y[a, c] != 0.0:
                    acc = acc + float(Y[a, c]) * float(Z[t, c])
            assert out[a, t] == acc, (a, t)


_NOJIT_SCRIPT = """
import json, sys, numpy as np, lnref
cfg = lnref.Config(n=6, d=50, m=2, steps=30, log_every=10, n_test=20, engine='coefficients', sampling='gram',
                   algorithm='label_noise_gd', tau=0.2, noise='isotropic', seed=5)
r = lnref.train(cfg, threads=1)
json.dump({'gamma': r.gamma.tolist(), 'rho': r.rho.tolist(),
           'hist': {k: v.tolist() for k, v in r.history.items()}}, sys.stdout)
"""


def test_jit_equals_pure_python():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run(
        [sys.executable, "-c", _NOJIT_SCRIPT], env=env, capture_output=True, text=True, check=True, timeout=300
    )
    py = json.loads(out.stdout)
    env.pop("NUMBA_DISABLE_JIT")
    jit = json.loads(
        subprocess.run(
            [sys.executable, "-c", _NOJIT_SCRIPT], env=env, capture_output=True, text=True, check=True, timeout=300
        ).stdout
    )
    assert py["gamma"] == jit["gamma"]
    assert py["rho"] == jit["rho"]
    for key in jit["hist"]:
        np.testing.assert_array_equal(
            np.array(py["hist"][key], dtype=float), np.array(jit["hist"][key], dtype=float), err_msg=key
        )


def test_advance_in_chunks_equals_one_call():
    cfg = lnref.Config(n=10, d=10**4, m=3, steps=0, n_test=0, engine="coefficients", sampling="gram", seed=2)
    e1 = from_config(cfg)
    e2 = from_config(cfg, e1.data)
    assert e1.advance(50, None) == 50
    for _ in range(5):
        assert e2.advance(10, None) == 10
    np.testing.assert_array_equal(e1.gamma, e2.gamma)
    np.testing.assert_array_equal(e1.rho, e2.rho)


def test_divergence_keeps_last_finite_state():
    cfg = lnref.Config(
        n=8, d=40, m=3, q=3.0, eta=50.0, sigma0=0.3, steps=200, log_every=0, n_test=0, engine="coefficients", seed=1
    )
    with pytest.raises(lnref.DivergedError) as info:
        lnref.train(cfg)
    res = info.value.result
    assert 0 < res.steps_done < cfg.steps
    assert np.all(np.isfinite(res.gamma)) and np.all(np.isfinite(res.rho))
    # the kept state is exactly the state after steps_done steps, and advance reports the same count
    e1 = from_config(cfg)
    e2 = from_config(cfg, e1.data, e1.W0)
    assert e1.advance(cfg.steps, None) == res.steps_done
    assert e2.advance(res.steps_done, None) == res.steps_done
    for e in (e1, e2):
        np.testing.assert_array_equal(e.gamma, res.gamma)
        np.testing.assert_array_equal(e.rho, res.rho)


def test_sign_identities_hold_in_gram_runs():
    # SPEC.md section 5, identity 3: rho_{j,r,i} >= 0 when j = y_obs_i, <= 0 otherwise (plain GD);
    # identity 4 without label noise: gamma never decreases.
    cfg = lnref.Config(
        n=30, d=3000, m=4, steps=100, log_every=5, n_test=0, engine="coefficients", sampling="gram", tau=0.2, seed=8
    )
    r = lnref.train(cfg)
    s = np.array([1.0, -1.0])[:, None, None]
    assert np.all(s * r.data.y_obs[None, None, :] * r.trace["rho"] >= 0.0)
    assert np.any(r.trace["rho"] != 0.0)
    r0 = lnref.train(cfg.replace(tau=0.0))
    assert np.all(np.diff(r0.trace["gamma"], axis=0) >= 0.0) and r0.gamma.max() > 0


def test_bad_inputs_are_refused():
    gcfg = lnref.Config(n=6, d=30, m=2, steps=3, n_test=0, engine="coefficients", sampling="gram")
    ecfg = gcfg.replace(sampling="explicit")
    with pytest.raises(ConfigError, match="W0"):
        lnref.train(gcfg, W0=lnref.init_weights(ecfg))
    with pytest.raises(ConfigError, match="sampling='gram'"):
        lnref.train(gcfg, data=lnref.make_data(ecfg))
    with pytest.raises(ConfigError, match=r"\(n, m\)"):
        lnref.train(gcfg, data=sample_gram(gcfg.replace(n=7)))
    with pytest.raises(ConfigError, match="Dataset"):
        lnref.train(ecfg, data=sample_gram(gcfg))
    with pytest.raises(ConfigError, match="d=1 is not allowed with noise='orthogonal'"):
        sample_gram(gcfg.replace(d=1))
    with pytest.raises(ConfigError, match="weights"):
        from_config(gcfg, sample_gram(gcfg)).weights()
    r = lnref.train(gcfg)
    assert r.W is None and r.W0 is None and r.steps_done == 3
