"""The oracle and the training methods of SPEC.md section 9: fixtures record the method (gradient of the method's
objective, method_loss, ELR's targets), the NumPy replay reproduces lnref for every method, and each method mistake
of the catalogue, injected into an independent implementation (tests/oracle_impl.py), is named - and the correct
implementation is not accused."""

from __future__ import annotations

import numpy as np
import pytest

import lnref
from lnref.oracle.catalogue import CATALOGUE, applicable
from lnref.oracle.fixtures import load_fixture, save_fixture
from lnref.oracle.replay import Problem, simulate, step_gradient
from lnref.testing import check_gradient, check_step, compare_trajectory, make_fixture
from oracle_impl import METHOD_BUGS, method_gradient_fn, train_method

BASE = lnref.Config(
    n=12, d=40, m=3, tau=0.25, flips="exact", steps=60, sigma_p=1.0, mu_norm=3.0, eta=0.5, n_test=0, seed=3
)
CK = [0, 1, 2, 5, 20, 60]
METHODS = {
    "elr": {"lam": 3},
    "elr3": {"period": 3},
    "sce": None,
    "ls": None,
    "bs": None,
    "gce": None,
    "bootstrap_hard": None,
    "forward": None,
    "backward": None,
}
NAME = {"elr3": "elr", "ls": "label_smoothing", "bs": "bootstrap_soft"}
FIXTURE_OF = {
    "bootstrap_soft_detached": "bs",
    "sce_A_minus_4": "sce",
    "label_smoothing_unnormalised": "ls",
    "elr_target_updated_every_step": "elr3",
}


def _cfg(key):
    return BASE.replace(loss=NAME.get(key, key), loss_params=METHODS[key])


@pytest.fixture(scope="module")
def fixtures():
    return {k: make_fixture(_cfg(k), CK, exercise=True) for k in ("elr", "elr3", "sce", "ls", "bs")}


def test_every_method_entry_has_an_injected_bug():
    keys = [e.key for e in CATALOGUE if set(e.needs) & {"elr", "sce", "bootstrap_soft", "label_smoothing"}]
    assert sorted(keys) == sorted(METHOD_BUGS)


@pytest.mark.parametrize("key", list(METHODS))
def test_replay_reproduces_lnref_for_every_method(key):
    """The NumPy replay (the declared second implementation) runs every method, ELR's state included."""
    cfg = _cfg(key).replace(algorithm="label_noise_gd", p=0.2) if key == "elr3" else _cfg(key)
    fx = make_fixture(cfg, CK, measure=False)
    P = Problem.of(fx)
    run = simulate(P, fx.steps, P.base)
    for k, t in enumerate(fx.steps):
        assert np.max(np.abs(run[int(t)] - fx.W[k])) <= 1e-12 * np.max(np.abs(fx.W[k]))
        G = step_gradient(fx.W[k], P, int(t), P.base, None, None if fx.target is None else fx.target[k])[0]
        assert np.max(np.abs(G - fx.grad[k])) <= 1e-12 * np.max(np.abs(fx.grad[k]))


def test_elr_fixture_records_method_and_state(tmp_path):
    cfg = _cfg("elr3").replace(algorithm="label_noise_gd", p=0.2, steps=20)
    fx = make_fixture(cfg, [0, 1, 4, 6, 20])
    res = lnref.train(cfg)
    assert np.array_equal(fx.method_loss, np.asarray(res.history["method_loss"])[fx.steps])
    assert np.array_equal(fx.target, res.trace["target"][fx.steps]) and not fx.target[0].any()
    k = 2  # step 4: not an update step (period 3)
    G = lnref.gradient(fx.W[k], fx.data, 1.0, fx.eps[4], **fx.method_kwargs(k))
    assert np.array_equal(G, fx.grad[k])
    assert not np.array_equal(G, lnref.gradient(fx.W[k], fx.data, 1.0, fx.eps[4]))  # not the logistic gradient
    assert fx.loss[k] == lnref.loss(fx.W[k], fx.data, 1.0)  # loss stays logistic
    path = save_fixture(fx, tmp_path / "elr.npz")
    back = load_fixture(path)
    assert back.meta["fixture_schema"] >= 4 and np.array_equal(back.target, fx.target)
    assert np.array_equal(back.method_loss, fx.method_loss) and back.config.loss == "elr"


def test_method_fixture_needs_its_arrays(fixtures):
    fx = fixtures["elr"]
    with pytest.raises(lnref.ConfigError, match="needs the array 'target'"):
        type(fx)(
            fx.config, fx.data, fx.W0, fx.steps, fx.W, fx.gamma, fx.rho, fx.loss, fx.grad, method_loss=fx.method_loss
        )
    with pytest.raises(lnref.ConfigError, match="method_loss"):
        type(fx)(fx.config, fx.data, fx.W0, fx.steps, fx.W, fx.gamma, fx.rho, fx.loss, fx.grad, target=fx.target)
    plain = make_fixture(BASE.replace(steps=2), measure=False)
    assert plain.method_loss is None and plain.target is None and "target" not in plain.arrays()


@pytest.mark.parametrize("key", ["elr", "elr3", "sce", "ls", "bs"])
def test_correct_method_implementation_passes(key, fixtures):
    fx = fixtures[key]
    rep = compare_trajectory(train_method(fx), fx)
    assert rep.passed and rep.mistakes == [], rep.text()
    assert check_gradient(method_gradient_fn(fx.config), fx).passed


@pytest.mark.parametrize("bug", METHOD_BUGS)
def test_method_mistake_is_named(bug, fixtures):
    fx = fixtures[FIXTURE_OF.get(bug, "elr")]
    rep = compare_trajectory(train_method(fx, bug), fx)
    assert not rep.passed
    assert rep.mistakes == [bug], rep.text()


@pytest.mark.parametrize(
    "bug",
    [
        "elr_target_updated_after_loss",
        "elr_target_not_detached",
        "elr_no_clamp",
        "bootstrap_soft_detached",
        "sce_A_minus_4",
        "label_smoothing_unnormalised",
    ],
)
def test_gradient_check_names_method_mistake(bug, fixtures):
    fx = fixtures[FIXTURE_OF.get(bug, "elr")]
    rep = check_gradient(method_gradient_fn(fx.config, bug), fx)
    assert rep.mistakes == [bug], rep.text()


def test_step_check_uses_the_method(fixtures):
    fx = fixtures["elr"]
    grad = method_gradient_fn(fx.config)
    eta = fx.config.eta
    rep = check_step(lambda W, mu, xi, y, yo, q, e, **kw: W - e * grad(W, mu, xi, y, yo, q, **kw), fx)
    assert rep.passed, rep.text()
    bad = method_gradient_fn(fx.config, "elr_target_updated_after_loss")
    rep = check_step(lambda W, mu, xi, y, yo, q, e, **kw: W - eta * bad(W, mu, xi, y, yo, q, **kw), fx)
    assert rep.mistakes == ["elr_target_updated_after_loss"], rep.text()


def test_method_entries_apply_only_to_their_method(fixtures):
    keys = {e.key for e in applicable(fixtures["elr"], "trajectory")}
    assert "elr_no_clamp" in keys and "elr_target_updated_every_step" not in keys and "sce_A_minus_4" not in keys
    assert "elr_target_updated_every_step" in {e.key for e in applicable(fixtures["elr3"], "trajectory")}
    plain = make_fixture(BASE.replace(steps=2), measure=False)
    assert not {e.key for e in applicable(plain, "trajectory")} & set(METHOD_BUGS)


def test_coteaching_fixtures_take_the_logistic_loss_only():
    """Co-teaching fixtures record both networks (tests/test_oracle_coteaching.py); with a training method the
    second network's state is not recorded, so it is refused with a message saying what to export instead."""
    import pytest

    import lnref
    from lnref.oracle.fixtures import make_fixture

    with pytest.raises(lnref.ConfigError, match=r"loss='sce' is not allowed in a fixture yet.*loss='logistic'"):
        make_fixture(lnref.Config(n=10, d=20, m=2, steps=5, algorithm="coteaching", loss="sce"))
    fx = make_fixture(lnref.Config(n=10, d=20, m=2, steps=5, algorithm="coteaching"), measure=False)
    assert fx.W_2.shape == (3, 2, 2, 20) and fx.mask_2.shape == (6, 10)
