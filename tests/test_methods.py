"""Training methods against label noise (issue 21; SPEC.md section 9): both engines, g(z) = dl/dz, the identities,
input checks and resume.

The independent check of each method against its official code's two-logit form (autograd) is in
tests/test_methods_torch.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

import lnref
from lnref.config import LOSSES, ConfigError
from lnref.engines import from_config
from lnref.kernels import losses as E
from lnref.training.runs import load_checkpoint, save_checkpoint

METHODS = [name for name in LOSSES if name != "logistic"]
# one non-default set per method (ELR: period 5, so a target update is not every step)
NONDEFAULT = {
    "gce": {"q": 0.3},
    "sce": {"alpha": 0.5, "beta": 0.4, "A": -4.0},
    "label_smoothing": {"eps": 0.4},
    "bootstrap_soft": {"beta": 0.3},
    "bootstrap_hard": {"beta": 0.5},
    "forward": {"tau": 0.35},
    "backward": {"tau": 0.1},
    "elr": {"lam": 0.5, "beta": 0.9, "period": 5},
}
assert set(NONDEFAULT) == set(METHODS)

# ------------------------------------------------------------------------------------------------ helpers
RTOL = 1e-10


def close(a, b, what, rtol=RTOL):
    """assert_allclose at rtol, with an absolute floor of rtol times the array's largest magnitude (entries that
    cancel to near zero carry the rounding of the large terms they came from; as tests/test_coefficients.py)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = float(np.nanmax(np.abs(b))) if b.size and np.any(np.isfinite(b)) else 0.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)


def normwise(a, b) -> float:
    """||a - b|| / ||b||."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


@njit
def _g_and_l(z, code, lp, a, b, g_out, l_out):
    for k in range(z.shape[0]):
        g_out[k] = E.method_dloss(z[k], code, lp, a, b)
        l_out[k] = E.method_loss(z[k], code, lp, a, b)


def g_and_l(loss, params, z, a=0.0, b=0.0):
    """(g(z), l(z)) of a method, elementwise, from lnref's numba functions (the ones GD runs)."""
    cfg = lnref.Config(loss=loss, loss_params=params)
    z = np.ascontiguousarray(z, dtype=np.float64)
    g, lo = np.empty_like(z), np.empty_like(z)
    _g_and_l(z, cfg.loss_code, cfg.loss_vector(), float(a), float(b), g, lo)
    return g, lo


# ------------------------------------------------------------------------------------------------ 1a. engines
SMALL = dict(n=30, d=80, m=4, steps=1000, log_every=50, n_test=40, tau=0.2, mu_norm=2.0, sigma_p=0.5, seed=11)
ENGINE_CASES = (
    [(m, None, "gd") for m in METHODS]
    + [(m, NONDEFAULT[m], "gd") for m in METHODS]
    + [("gce", None, "label_noise_gd"), ("elr", {"period": 3}, "label_noise_gd")]
)


@pytest.mark.parametrize(
    "loss,params,algorithm",
    ENGINE_CASES,
    ids=[f"{m}-{'default' if p is None else 'custom'}-{a}" for m, p, a in ENGINE_CASES],
)
def test_engines_agree_over_1000_steps(loss, params, algorithm):
    cfg = lnref.Config(**SMALL, loss=loss, loss_params=params, algorithm=algorithm, p=0.2)
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    rw = lnref.train(cfg, data, W0, threads=1)
    rc = lnref.train(cfg.replace(engine="coefficients"), data, W0, threads=1)
    assert rw.steps_done == rc.steps_done == cfg.steps
    assert np.max(np.abs(rw.rho)) > 0.1  # the run moves (agreement is not trivial)
    assert set(rw.history) == set(rc.history) and "method_loss" in rw.history
    for key in rw.history:
        close(rc.history[key], rw.history[key], f"history[{key!r}]")
    close(rc.gamma, rw.gamma, "gamma")
    close(rc.rho, rw.rho, "rho")
    close(rc.trace["gamma"], rw.trace["gamma"], "trace gamma")
    close(rc.trace["rho"], rw.trace["rho"], "trace rho")
    close(rc.trace["margin"], rw.trace["margin"], "trace margin")
    close(rc.W, rw.W, "reconstructed W")
    if loss == "elr":
        assert set(rw.trace) == set(rc.trace) and "target" in rw.trace
        close(rc.trace["target"], rw.trace["target"], "trace target")
        np.testing.assert_array_equal(rw.trace["target"][0], 0.0)  # zeros at start
        assert np.all(rw.trace["target"][1:] > 0.0)  # updated from step 0 on
        # a target is a convex mix of probability vectors scaled by 1 - beta^k: its entries sum to <= 1
        assert np.all(rw.trace["target"].sum(axis=1) <= 1.0 + 1e-12)
    else:
        assert "target" not in rw.trace
    # the method changes the run (a method silently run as the logistic loss would fail here)
    plain = lnref.train(cfg.replace(loss="logistic", steps=50, log_every=10), data, W0, threads=1)
    assert not np.allclose(plain.trace["rho"][-1], rw.trace["rho"][1], rtol=1e-6)


def test_elr_target_state_follows_its_update_rule():
    """Result.trace['target'] at logged step t is the state after t steps (before step t's update): from the traced
    margins, t(s+1) = beta t(s) + (1 - beta) p_hat(s) / sum p_hat(s) at update steps s, unchanged otherwise."""
    for period in (1, 5):
        cfg = lnref.Config(
            **{**SMALL, "steps": 40, "log_every": 1}, loss="elr", loss_params={"period": period, "beta": 0.6}
        )
        r = lnref.train(cfg, threads=1)
        y_obs = r.data.y_obs
        T = r.trace["target"]
        tgt = np.zeros((2, cfg.n))
        for s in range(cfg.steps):
            np.testing.assert_allclose(T[s], tgt, rtol=1e-14, atol=1e-15, err_msg=f"period {period} step {s}")
            if s % period == 0:
                f = y_obs * r.trace["margin"][s]
                p = np.clip(np.stack([1 / (1 + np.exp(-f)), 1 / (1 + np.exp(f))]), 1e-4, 1 - 1e-4)
                tgt = 0.6 * tgt + 0.4 * p / p.sum(axis=0)
        np.testing.assert_allclose(T[cfg.steps], tgt, rtol=1e-14, atol=1e-15)


GRAM_CASES = [
    ("gce", None),
    ("label_smoothing", {"eps": 0.2}),
    ("bootstrap_soft", None),
    ("backward", None),
    ("elr", {"period": 2}),
]


@pytest.mark.parametrize("loss,params", GRAM_CASES, ids=[c[0] for c in GRAM_CASES])
def test_gram_sampling_runs(loss, params):
    """Gram sampling (d = 10^9, nothing d-dimensional drawn) runs every family, and the method matters."""
    cfg = lnref.Config(
        n=40,
        d=10**9,
        m=4,
        steps=300,
        log_every=50,
        n_test=200,
        tau=0.2,
        mu_norm=40.0,
        sigma_p=0.01,
        eta=1.0,
        engine="coefficients",
        sampling="gram",
        seed=3,
        loss=loss,
        loss_params=params,
    )
    r = lnref.train(cfg)
    assert r.steps_done == cfg.steps
    for key in ("loss", "method_loss", "train_acc", "test_acc"):
        assert np.all(np.isfinite(r.history[key])), key
    plain = lnref.train(cfg.replace(loss="logistic"), r.data)
    assert not np.allclose(plain.rho, r.rho, rtol=1e-6)
    if loss == "elr":
        assert np.all(r.trace["target"][1:] > 0)


# ------------------------------------------------------------------------------------------------ 1b. g = dl/dz
# the clamps' boundaries in z: p = 1e-7 (GCE, SCE's RCE, the Keras clip) and p = 1e-4 (ELR)
Z7 = math.log((1 - 1e-7) / 1e-7)  # 16.118...
Z4 = math.log((1 - 1e-4) / 1e-4)  # 9.2102...


def _grid():
    z = np.concatenate([np.linspace(-30.0, 30.0, 601) + 0.0123, [-40.0, -25.0, 25.0, 40.0]])
    away = np.ones(z.size, dtype=bool)
    for edge in (Z7, Z4, 0.0):  # 0: bootstrap_hard's kink
        away &= np.abs(np.abs(z) - edge) > 0.05
    return z[away]


ZGRID = _grid()


def _fd(loss, params, z, a=0.0, b=0.0, h=1e-5):
    return (g_and_l(loss, params, z + h, a, b)[1] - g_and_l(loss, params, z - h, a, b)[1]) / (2 * h)


def _check_fd(loss, params, a=0.0, b=0.0):
    z = ZGRID
    g, lo = g_and_l(loss, params, z, a, b)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(lo))
    fd = _fd(loss, params, z, a, b)
    # error of the central difference: h^2 |l'''|/6 (<= 1e-10 here) + the rounding of l over h: eps |l|, and for
    # ELR eps lam / (1 - <t, p>) (the cancellation in 1 - <t, p> near a target of 1)
    cond = np.maximum(1.0, np.abs(lo))
    if loss == "elr":
        s = np.clip(1 / (1 + np.exp(-z)), 1e-4, 1 - 1e-4)
        cond = cond + lnref.Config(loss="elr", loss_params=params).loss_params["lam"] / (1 - a * s - b * (1 - s))
    tol = 1e-8 * np.maximum(1.0, np.abs(g)) + 3e-16 * cond / 1e-5
    bad = np.abs(fd - g) > tol
    assert not bad.any(), (loss, params, a, b, z[bad][:5], g[bad][:5], fd[bad][:5])


@pytest.mark.parametrize("loss", ["logistic", *METHODS])
@pytest.mark.parametrize("custom", [False, True], ids=["default", "custom"])
def test_g_is_the_derivative_of_l(loss, custom):
    params = NONDEFAULT.get(loss) if custom else None
    if loss == "elr":
        rng = np.random.default_rng(7 + custom)
        for _ in range(20):
            a, b = rng.random(2)
            s = a + b
            if s > 1:  # a target sums to at most 1
                a, b = a / s * rng.random(), b / s * rng.random()
            _check_fd(loss, params, a, b)
        _check_fd(loss, params, 0.0, 0.0)
    else:
        _check_fd(loss, params)


def test_g_is_the_derivative_of_l_for_extreme_targets():
    for a, b in ((1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.999, 0.0)):
        for lam in (0.0, 3.0, 10.0):
            _check_fd("elr", {"lam": lam}, a, b)


def test_g_matches_the_section_9_formulas():
    """Inside the clamps, g(z) is the closed form of SPEC.md section 9 (written here with NumPy)."""
    z = ZGRID[np.abs(ZGRID) < Z4 - 0.05]
    s = 1.0 / (1.0 + np.exp(-z))
    oms = 1.0 - s
    forms = {
        ("gce", 0.7): (-(s**0.7) * oms, {}),
        ("sce", 0): (-oms * (0.1 + 1.0 * -math.log(1e-4) * s), {}),
        ("label_smoothing", 0.3): (s - 1 + 0.15, {"eps": 0.3}),
        ("bootstrap_soft", 0.8): (-0.8 * oms - 0.2 * z * s * oms, {"beta": 0.8}),
        ("bootstrap_hard", 0.6): (np.where(z >= 0, -oms, s - 0.6), {"beta": 0.6}),
        ("forward", 0.3): (-(0.4) * s * oms / (0.7 * s + 0.3 * oms), {"tau": 0.3}),
        ("backward", 0.3): (-oms - 0.3 / 0.4, {"tau": 0.3}),
    }
    for (loss, _), (ref, params) in forms.items():
        g, _ = g_and_l(loss, params, z)
        np.testing.assert_allclose(g, ref, rtol=1e-9, atol=1e-15, err_msg=loss)
    a, b, lam = 0.6, 0.3, 2.0
    g, _ = g_and_l("elr", {"lam": lam}, z, a, b)
    np.testing.assert_allclose(g, -oms - lam * (a - b) * s * oms / (1 - a * s - b * oms), rtol=1e-9, atol=1e-15)


def test_clamps_pass_no_gradient():
    """Where the official code clamps (torch.clamp / Keras clip), the clamped term contributes nothing to g."""
    lo7 = np.array([-40.0, -25.0, -Z7 - 0.05])  # s < 1e-7
    hi7 = -lo7  # 1 - s < 1e-7
    both7 = np.concatenate([lo7, hi7])
    # GCE clamps p_label >= 1e-7 (no upper clamp)
    assert np.all(g_and_l("gce", None, lo7)[0] == 0.0)
    assert np.all(g_and_l("gce", None, hi7)[0] < 0.0)
    # SCE (the authors' Keras code): the CE term clips p_label >= 1e-7, so where s < 1e-7 only the (unclipped) RCE
    # term beta A s (1 - s) is left; where 1 - s < 1e-7 both terms stay
    g_lo, _ = g_and_l("sce", None, lo7)
    s_lo = 1.0 / (1.0 + np.exp(-lo7))
    np.testing.assert_allclose(g_lo, 1.0 * np.log(1e-4) * s_lo * (1.0 - s_lo), rtol=1e-12)
    lg = g_and_l("logistic", None, hi7)[0]
    s_hi = 1.0 / (1.0 + np.exp(-hi7))
    np.testing.assert_allclose(g_and_l("sce", None, hi7)[0], 0.1 * lg + np.log(1e-4) * s_hi * -lg, rtol=1e-12)
    # the Keras codes (bootstraps, forward, backward) clip p to [1e-7, 1 - 1e-7]: zero gradient outside
    for loss in ("bootstrap_soft", "bootstrap_hard", "forward", "backward"):
        np.testing.assert_array_equal(g_and_l(loss, None, both7)[0], 0.0, err_msg=loss)
        assert np.all(g_and_l(loss, None, np.array([-Z7 + 0.05, Z7 - 0.05]))[0] != 0.0), loss
    # label smoothing has no clamp
    assert np.all(g_and_l("label_smoothing", None, both7)[0] != 0.0)
    # ELR: the lam term is 0 where p is clamped to [1e-4, 1 - 1e-4] (|z| > ln 9999); CE stays
    z = np.array([-30.0, -Z4 - 0.05, Z4 + 0.05, 30.0])
    np.testing.assert_array_equal(g_and_l("elr", None, z, 0.7, 0.2)[0], g_and_l("logistic", None, z)[0])
    z_in = np.array([-Z4 + 0.05, Z4 - 0.05])
    assert np.all(g_and_l("elr", None, z_in, 0.7, 0.2)[0] != g_and_l("logistic", None, z_in)[0])


def test_sample_scalars_is_g_times_the_label():
    """lnref.model.sample_scalars (the public per-step quantities) gives l(mult_i f_i) and g(mult_i f_i) mult_i,
    ELR reading a = the target of the label sign(mult_i)."""
    cfg = lnref.Config(n=25, d=60, m=3, tau=0.3, seed=4)
    data = lnref.make_data(cfg)
    rng = np.random.default_rng(0)
    f = rng.normal(scale=6.0, size=cfg.n)
    eps = np.where(rng.random(cfg.n) < 0.3, -1.0, 1.0)
    mult = eps * data.y_obs
    for loss in METHODS:
        params = NONDEFAULT[loss] if loss != "elr" else None
        target = None
        if loss == "elr":
            target = rng.random((2, cfg.n)) * 0.5
        lo, lpm, used = lnref.model.sample_scalars(
            f, data, eps, loss=loss, loss_params=params, target=target, target_update=False
        )
        for i in range(cfg.n):
            a = b = 0.0
            if loss == "elr":
                a, b = (used[0, i], used[1, i]) if mult[i] > 0 else (used[1, i], used[0, i])
            g, li = g_and_l(loss, params, np.array([mult[i] * f[i]]), a, b)
            assert lo[i] == li[0] and lpm[i] == g[0] * mult[i], (loss, i)
        if loss == "elr":
            np.testing.assert_array_equal(used, target)  # no update asked
            _, _, upd = lnref.model.sample_scalars(f, data, eps, loss="elr", target=target)
            p = np.clip(np.stack([1 / (1 + np.exp(-f)), 1 / (1 + np.exp(f))]), 1e-4, 1 - 1e-4)
            np.testing.assert_allclose(upd, 0.7 * target + 0.3 * p / p.sum(axis=0), rtol=1e-14)


# ------------------------------------------------------------------------------------------------ 1c. identities
def _problem(seed, n, d, m, q, tau):
    cfg = lnref.Config(n=n, d=d, m=m, q=q, tau=tau, seed=seed, sigma0=0.3, mu_norm=3.0, sigma_p=1.0)
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    return cfg, data, W0


def _dact(z, q):
    return np.where(z > 0, q * np.maximum(z, 0.0) ** (q - 1.0), 0.0)


def numpy_gradient(W, data, q, scalars):
    """grad_W (1/n) sum_i l_i for per-sample dl_i/df_i = scalars_i, in NumPy (SPEC.md section 3)."""
    m = W.shape[1]
    sig = np.einsum("jrd,d->jr", W, data.mu)[:, :, None] * data.y[None, None, :]  # <w_jr, y_i mu>
    noi = np.einsum("jrd,id->jri", W, data.xi)
    sj = np.array([1.0, -1.0])[:, None, None]
    c = sj * scalars[None, None, :] / (data.n * m)
    G = np.einsum("jri,i,d->jrd", c * _dact(sig, q), data.y, data.mu) + np.einsum(
        "jri,id->jrd", c * _dact(noi, q), data.xi
    )
    return G


SHAPES = dict(
    seed=st.integers(0, 10**6),
    n=st.integers(2, 12),
    d=st.integers(13, 40),
    m=st.integers(1, 4),
    q=st.sampled_from([1.0, 2.0, 3.0]),
    tau=st.sampled_from([0.0, 0.2, 0.4]),
)


def _sig(z):
    """(s, 1 - s) = (sigma(z), sigma(-z)), each computed without cancellation."""
    return 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(z))


def assert_grad_close(G, G_ref, W, data, q, scalars, rtol=1e-12):
    """||G - G_ref|| <= rtol * ||the gradient with |scalars|||: the scale of the terms summed (a gradient that
    cancels to near 0 keeps the rounding of its terms)."""
    scale = np.linalg.norm(numpy_gradient(W, data, q, np.abs(scalars))) + 1e-300
    assert np.linalg.norm(G - G_ref) <= rtol * scale, (np.linalg.norm(G - G_ref), scale)


@given(**SHAPES, beta=st.floats(0.0, 1.0))
def test_detached_soft_bootstrap_is_beta_times_ce(seed, n, d, m, q, tau, beta):
    _cfg, data, W0 = _problem(seed, n, d, m, q, tau)
    f = lnref.forward(W0, data, q)
    z = data.y_obs * f
    s, oms = _sig(z)
    # soft bootstrap with the target t = beta e_y + (1 - beta) p DETACHED: l = -t_y log s - t_-y log(1 - s),
    # dl/dz = -t_y (1 - s) + t_-y s at the fixed t
    t_y, t_m = beta + (1 - beta) * s, (1 - beta) * oms
    detached = -t_y * oms + t_m * s
    G_detached = numpy_gradient(W0, data, q, detached * data.y_obs)
    G_ce = lnref.gradient(W0, data, q)
    assert_grad_close(G_detached, beta * G_ce, W0, data, q, oms)
    # lnref's soft bootstrap keeps the target's gradient (Keras): beta x CE plus -(1 - beta) z s (1 - s), with no
    # gradient where the clip acts (|z| > 16.1)
    inside = (s >= 1e-7) & (oms >= 1e-7)
    soft = np.where(inside, -beta * oms - (1 - beta) * z * s * oms, 0.0)
    G_soft = lnref.gradient(W0, data, q, loss="bootstrap_soft", loss_params={"beta": beta})
    assert_grad_close(G_soft, numpy_gradient(W0, data, q, soft * data.y_obs), W0, data, q, np.abs(soft) + oms)
    # the detached form is a different method (a mistake the oracle names), wherever a gradient flows at all; the
    # two differ by (1 - beta) z s (1 - s), below rounding as beta -> 1 (Hypothesis found beta = 1 - 2^-53)
    if 0.0 < beta < 1.0 - 1e-3 and inside.all() and np.linalg.norm(G_ce) > 0.0:
        assert np.linalg.norm(G_soft - beta * G_ce) > 1e-6 * np.linalg.norm(G_ce)


@given(**SHAPES, p=st.floats(0.0, 0.49))
def test_label_smoothing_at_2p_is_the_expected_label_noise_gd_step(seed, n, d, m, q, tau, p):
    _cfg, data, W0 = _problem(seed, n, d, m, q, tau)
    G_ls = lnref.gradient(W0, data, q, loss="label_smoothing", loss_params={"eps": 2 * p})
    G_keep = lnref.gradient(W0, data, q, eps=np.ones(n))
    G_flip = lnref.gradient(W0, data, q, eps=-np.ones(n))
    expected = (1 - p) * G_keep + p * G_flip  # E over eps_i iid (P(eps_i = -1) = p): linear in the scalars
    assert_grad_close(G_ls, expected, W0, data, q, np.ones(n))


@given(**SHAPES, tau_c=st.floats(0.0, 0.45))
def test_backward_correction_is_label_smoothing_at_negative_eps(seed, n, d, m, q, tau, tau_c):
    _cfg, data, W0 = _problem(seed, n, d, m, q, tau)
    f = lnref.forward(W0, data, q)
    z = data.y_obs * f
    eps = -2 * tau_c / (1 - 2 * tau_c)
    s, oms = _sig(z)
    inside = (s >= 1e-7) & (oms >= 1e-7)  # the identity holds inside the Keras clip; outside g = 0
    assert inside.any()
    # label smoothing's g(z) = s - 1 + eps/2 (SPEC.md section 9) at an eps < 0 that Config refuses
    ls = np.where(inside, -oms + eps / 2, 0.0)
    G_bw = lnref.gradient(W0, data, q, loss="backward", loss_params={"tau": tau_c})
    assert_grad_close(G_bw, numpy_gradient(W0, data, q, ls * data.y_obs), W0, data, q, oms - eps / 2)
    # and lnref's own label smoothing at eps >= 0 is the same NumPy form (the reference is lnref's LS)
    G_ls_lnref = lnref.gradient(W0, data, q, loss="label_smoothing", loss_params={"eps": 0.3})
    assert_grad_close(G_ls_lnref, numpy_gradient(W0, data, q, (-oms + 0.15) * data.y_obs), W0, data, q, oms + 0.15)


SPAN_CASES = [(m, None) for m in METHODS] + [(m, NONDEFAULT[m]) for m in METHODS]


@pytest.mark.parametrize(
    "loss,params", SPAN_CASES, ids=[f"{m}-{'default' if p is None else 'custom'}" for m, p in SPAN_CASES]
)
def test_span_identity_holds_for_every_method(loss, params):
    """SPEC.md section 5: W(t) - W(0) = s_j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2 (the weight engine
    steps W itself and carries gamma, rho alongside), and decompose() recovers the coefficients."""
    cfg = lnref.Config(
        n=12,
        d=60,
        m=3,
        steps=300,
        log_every=100,
        n_test=0,
        tau=0.2,
        mu_norm=3.0,
        sigma_p=1.0,
        seed=5,
        loss=loss,
        loss_params=params,
        algorithm="label_noise_gd" if loss in ("sce", "elr") else "gd",
    )
    data = lnref.make_data(cfg)
    W0 = lnref.init_weights(cfg)
    r = lnref.train(cfg, data, W0, threads=1)
    assert np.max(np.abs(r.rho)) > 0.1
    dW = r.W - W0
    W_rec = lnref.reconstruct(W0, r.gamma, r.rho, data)
    assert np.linalg.norm(W_rec - r.W) <= 1e-12 * np.linalg.norm(dW)
    gamma, rho = lnref.decompose(r.W, W0, data)
    close(gamma, r.gamma, "gamma", rtol=1e-9)
    close(rho, r.rho, "rho", rtol=1e-9)
    # at the intermediate logged steps too: W(t) by stepping lnref.train to t
    for li, t in enumerate(cfg.log_steps()[1:-1], start=1):
        rt = lnref.train(cfg.replace(steps=int(t), log_every=0), data, W0, threads=1)
        assert np.linalg.norm(
            lnref.reconstruct(W0, r.trace["gamma"][li], r.trace["rho"][li], data) - rt.W
        ) <= 1e-12 * np.linalg.norm(rt.W - W0)


LAW_CASES = [("gce", None), ("label_smoothing", {"eps": 0.3}), ("elr", {"lam": 3.0, "period": 2})]


@pytest.mark.parametrize("loss,params", LAW_CASES, ids=[c[0] for c in LAW_CASES])
def test_gram_sampling_agrees_in_law_with_explicit_data(loss, params):
    """Mean final train_acc_noisy and test_acc over 36 seeds: Gram sampling vs explicit data (same engine), within
    4 standard errors of the difference."""
    base = lnref.Config(
        n=30,
        d=400,
        m=4,
        steps=120,
        log_every=0,
        n_test=200,
        tau=0.2,
        mu_norm=6.0,
        sigma_p=0.5,
        eta=1.0,
        engine="coefficients",
        loss=loss,
        loss_params=params,
    )
    out = {}
    for sampling in ("explicit", "gram"):
        rows = [lnref.train(base.replace(sampling=sampling, seed=s), threads=1).history for s in range(36)]
        out[sampling] = {k: np.array([h[k][-1] for h in rows]) for k in ("train_acc_noisy", "test_acc")}
    for key in ("train_acc_noisy", "test_acc"):
        a, b = out["explicit"][key], out["gram"][key]
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert se > 0, key
        assert abs(a.mean() - b.mean()) <= 4 * se, (key, a.mean(), b.mean(), se)


# ------------------------------------------------------------------------------------------------ 1d. bad input
BAD = [
    (dict(loss="focal"), ["loss='focal'", "'elr'", "'gce'"]),
    (dict(loss="gce", loss_params={"eps": 0.1}), ["'eps'", "loss='gce'", "'label_smoothing'", "q in (0, 1]"]),
    (dict(loss="elr", loss_params={"tau": 0.1}), ["'tau'", "loss='elr'", "lam >= 0"]),
    (dict(loss="logistic", loss_params={"q": 0.5}), ["'q'", "loss='logistic'", "no parameters"]),
    (dict(loss="elr", loss_params={"lam": -0.5}), ["loss_params.lam=-0.5", ">= 0"]),
    (dict(loss="label_smoothing", loss_params={"eps": 1.0}), ["loss_params.eps=1", "[0, 1)"]),
    (dict(loss="label_smoothing", loss_params={"eps": -0.1}), ["loss_params.eps=-0.1", "[0, 1)"]),
    (dict(loss="bootstrap_soft", loss_params={"beta": 1.5}), ["loss_params.beta=1.5", "[0, 1]"]),
    (dict(loss="bootstrap_hard", loss_params={"beta": -0.1}), ["loss_params.beta=-0.1", "[0, 1]"]),
    (dict(loss="elr", loss_params={"beta": 1.01}), ["loss_params.beta=1.01", "[0, 1]"]),
    (dict(loss="elr", loss_params={"period": 0}), ["loss_params.period=0", "integer >= 1"]),
    (dict(loss="elr", loss_params={"period": 2.5}), ["loss_params.period=2.5", "integer >= 1"]),
    (dict(loss="forward", loss_params={"tau": 0.5}), ["loss_params.tau=0.5", "[0, 1/2)"]),
    (dict(loss="backward", loss_params={"tau": 0.7}), ["loss_params.tau=0.7", "[0, 1/2)"]),
    (dict(loss="gce", loss_params={"q": 0.0}), ["loss_params.q=0", "(0, 1]"]),
    (dict(loss="sce", loss_params={"A": 4.0}), ["loss_params.A=4", "< 0"]),
    (dict(loss="gce", loss_params=[("q", 0.5)]), ["loss_params=", "mapping"]),
]


@pytest.mark.parametrize("kwargs,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_method_input_is_refused_naming_field_value_and_allowed(kwargs, words, monkeypatch):
    with pytest.raises(ConfigError) as info:
        lnref.Config(n=10, d=20, m=2, **kwargs)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    # lnref.gradient / loss refuse the same, before any work (no kernel is called)
    cfg = lnref.Config(n=10, d=20, m=2)
    data, W = lnref.make_data(cfg), lnref.init_weights(cfg)
    import lnref.model as model

    def no_work(*a, **k):
        raise AssertionError("work started before the input was checked")

    for fn in ("forward", "gradient", "losses", "method_scalars"):
        monkeypatch.setattr(model.K, fn, no_work)
    for api in (lnref.gradient, lnref.loss):
        with pytest.raises(ConfigError) as info:
            api(W, data, **kwargs)
        for w in words:
            assert w in str(info.value), (w, str(info.value))


def test_bad_method_input_refused_by_train_before_any_work(monkeypatch):
    import lnref.engines as engines

    def no_work(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(engines, "from_config", no_work)
    with pytest.raises(ConfigError, match=r"loss_params\.lam=-1"):
        lnref.train(lnref.Config(n=10, d=20, m=2, loss="elr", loss_params={"lam": -1}))


@pytest.mark.parametrize(
    "target,match",
    [
        (np.zeros((2, 9)), r"shape \(2, n\) = \(2, 10\).*got shape \(2, 9\)"),
        (np.zeros((10, 2)), r"shape \(2, n\) = \(2, 10\).*got shape \(10, 2\)"),
        (np.zeros(20), r"got shape \(20,\)"),
        (np.full((2, 10), np.nan), "finite"),
        ("abc", "target must be a real array"),
    ],
)
def test_gradient_refuses_a_bad_target(target, match):
    cfg = lnref.Config(n=10, d=20, m=2)
    data, W = lnref.make_data(cfg), lnref.init_weights(cfg)
    with pytest.raises(ConfigError, match=match):
        lnref.gradient(W, data, loss="elr", target=target)
    with pytest.raises(ConfigError, match="loss='gce' has none"):
        lnref.gradient(W, data, loss="gce", target=np.zeros((2, 10)))


# ------------------------------------------------------------------------------------------------ 1e. resume
class Interrupt(Exception):
    pass


def _interrupted_state(cfg, after: int, every: int):
    seen = []

    def keep(state):
        seen.append({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()})
        if len(seen) == after:
            raise Interrupt

    with pytest.raises(Interrupt):
        lnref.train(cfg, threads=1, checkpoint_every=every, on_checkpoint=keep)
    return seen[-1]


@pytest.mark.parametrize(
    "engine,algorithm,period",
    [
        ("weights", "gd", 1),
        ("weights", "gd", 3),
        ("coefficients", "label_noise_gd", 3),
        ("weights", "label_noise_gd", 3),
    ],
)
def test_elr_resume_is_bit_identical(tmp_path, engine, algorithm, period):
    cfg = lnref.Config(
        n=12,
        d=40,
        m=3,
        steps=60,
        log_every=5,
        n_test=50,
        tau=0.2,
        engine=engine,
        algorithm=algorithm,
        seed=3,
        loss="elr",
        loss_params={"period": period, "lam": 2.0},
    )
    full = lnref.train(cfg, threads=1)
    state = _interrupted_state(cfg, after=2, every=20)
    t = state["step"]
    assert 0 < t < cfg.steps
    if period == 3:
        assert t % period != 0  # the checkpoint falls between two target updates
    assert state["target"].shape == (2, cfg.n) and np.all(state["target"] > 0)
    np.testing.assert_array_equal(state["target"], full.trace["target"][state["rows"] - 1])
    save_checkpoint(tmp_path / "c.npz", state)  # through the file format, as the CLI does
    loaded = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded["target"], state["target"])
    resumed = lnref.train(cfg, threads=1, resume=loaded)
    np.testing.assert_array_equal(resumed.gamma, full.gamma)
    np.testing.assert_array_equal(resumed.rho, full.rho)
    np.testing.assert_array_equal(resumed.W, full.W)
    assert resumed.history.keys() == full.history.keys()
    for k in full.history:
        np.testing.assert_array_equal(resumed.history[k], full.history[k], err_msg=k)
    assert resumed.trace.keys() == full.trace.keys()
    for k in full.trace:
        np.testing.assert_array_equal(resumed.trace[k], full.trace[k], err_msg=k)


def test_elr_resume_needs_the_targets():
    cfg = lnref.Config(n=8, d=20, m=2, steps=30, log_every=5, n_test=0, loss="elr")
    state = _interrupted_state(cfg, after=1, every=10)
    state["target"] = None
    with pytest.raises(ConfigError, match="no ELR targets"):
        lnref.train(cfg, resume=state)


def test_engine_advance_in_chunks_equals_one_call_for_elr():
    """The step count that times ELR's updates survives between advance calls (period 3, chunks of 2)."""
    for engine in ("weights", "coefficients"):
        cfg = lnref.Config(
            n=10, d=50, m=3, steps=0, n_test=0, engine=engine, seed=2, loss="elr", loss_params={"period": 3}
        )
        data, W0 = lnref.make_data(cfg), lnref.init_weights(cfg)
        e1 = from_config(cfg, data, W0)
        e2 = from_config(cfg, data, W0)
        assert e1.advance(12, None) == 12
        for _ in range(6):
            assert e2.advance(2, None) == 2
        np.testing.assert_array_equal(e1.gamma, e2.gamma)
        np.testing.assert_array_equal(e1.rho, e2.rho)
        np.testing.assert_array_equal(e1.target, e2.target)


def test_elr_example_without_torch_says_what_to_install():
    """python -m lnref.examples.elr_torch with torch hidden: one line naming the install command, exit 2."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, runpy; sys.modules['torch'] = None; "
        "runpy.run_module('lnref.examples.elr_torch', run_name='__main__')"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "this example needs PyTorch: pip install torch"
