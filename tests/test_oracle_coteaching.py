"""The oracle and co-teaching (SPEC.md section 9): a fixture records both networks (W0_2, W_2, ..., mask_2) exactly as
lnref.train takes them, the NumPy replay recomputes both networks' masks from its own outputs and reproduces lnref,
an independent implementation choosing its own masks (tests/oracle_impl.py) passes (and `lnref compare`), and the
planted mistakes - each network on its own small-loss samples, the forget rate without its cap - are caught and
named."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.oracle.catalogue import applicable
from lnref.oracle.fixture_file import meta_sha
from lnref.oracle.fixtures import FIXTURE_SCHEMA, FixtureError, load_fixture, save_fixture
from lnref.oracle.replay import Problem, simulate
from lnref.testing import check_gradient, check_step, compare_trajectory, make_fixture
from lnref.training.runs import load_checkpoint, save_checkpoint
from oracle_impl import COTEACHING_BUGS, selection_gradient_fn, selection_step_fn, train_coteaching

BASE = lnref.Config(
    n=20, d=60, m=3, tau=0.2, flips="exact", steps=30, eta=1.0, n_test=0, seed=5, algorithm="coteaching"
)
CK = [0, 1, 5, 12, 30]


@pytest.fixture(scope="module")
def fx():
    return make_fixture(BASE, CK, exercise=True)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_fixture_records_both_networks_as_lnref_train_takes_them(fx):
    res = lnref.train(fx.config, fx.data, fx.W0, keep_rho=False)
    assert np.asarray(res.history["step"]).tolist() == list(range(BASE.steps + 1))
    assert np.array_equal(fx.mask, res.trace["mask"]) and np.array_equal(fx.mask_2, res.trace["mask_2"])
    assert np.array_equal(fx.W[-1], res.W)
    assert np.array_equal(fx.gamma_2, res.trace["gamma_2"][fx.steps])
    keep = fx.mask.sum(axis=1)
    assert keep[0] == BASE.n and keep[-1] == int((1 - 0.2) * BASE.n)  # R(t) ramps to tau over T_k = 10 steps
    assert np.array_equal(fx.mask_2.sum(axis=1), keep) and not np.array_equal(fx.mask, fx.mask_2)
    assert np.array_equal(fx.step_scale, BASE.n / keep)
    assert not np.allclose(fx.W0_2, fx.W0)  # stream 8: a network of its own
    # each checkpoint's gradient is its network's step objective: the mean over its kept samples
    from lnref.model import gradients

    k = fx.index(12)
    G2 = gradients(fx.W_2[k], fx.data, 1.0, mask=fx.mask_2[12])[0] * fx.step_scale[12]
    assert np.array_equal(fx.grad_2[k], G2)
    np.testing.assert_allclose(fx.W_2[k + 1] - fx.W_2[k], 0.0, atol=1.0)  # finite, recorded
    assert fx.spread is not None and fx.spread.shape == (len(CK), 3)


def test_replay_recomputes_the_masks_and_reproduces_both_networks(fx):
    P = Problem.of(fx)
    run = simulate(P, fx.steps, P.base)
    for k, t in enumerate(fx.steps):
        W = run[int(t)]
        assert W.shape == (4, fx.m, fx.d)
        assert _rel(W[:2], fx.W[k]) <= 1e-12 and _rel(W[2:], fx.W_2[k]) <= 1e-12
    # the replay with the fixture's masks switched for a mistake's leaves lnref's trajectory
    for switch in (dict(coteach_exchange="own"), dict(coteach_cap=False)):
        other = simulate(P, [30], replace(P.base, **switch))[30]
        assert _rel(other[:2], fx.W[-1]) > 1e-3


def test_an_independent_implementation_passes(fx):
    W, W2 = train_coteaching(fx)
    rep = compare_trajectory(W, fx, second=W2)
    assert rep.passed, rep.text()
    assert "net2 rel" in rep.text()
    # the local checks judge network 1 on its recorded masks (mask=, scale=)
    assert check_gradient(selection_gradient_fn(fx.config), fx).passed
    assert check_step(selection_step_fn(fx.config), fx).passed


@pytest.mark.parametrize("bug", COTEACHING_BUGS)
def test_coteaching_mistakes_are_caught_and_named(bug, fx):
    assert bug in {e.key for e in applicable(fx, "trajectory")}
    W, W2 = train_coteaching(fx, bug)
    rep = compare_trajectory(W, fx, second=W2)
    assert not rep.passed and rep.mistakes == [bug], rep.text()
    assert "reproduces their W and W_2" in rep.text()


def test_a_wrong_second_network_alone_fails(fx):
    W, W2 = train_coteaching(fx)
    W2 = {t: w.copy() for t, w in W2.items()}
    W2[12][0, 0, 0] += 1e-6
    rep = compare_trajectory(W, fx, second=W2)
    assert not rep.passed and rep.first_failure == 12
    assert "their W_2 first differs at step 12" in rep.text()
    W2[0] = W2[0] + 1.0
    rep = compare_trajectory(W, fx, second=W2)
    assert "start network 2 from the fixture's array 'W0_2'" in rep.text()


def test_second_network_is_required_exactly_for_coteaching(fx):
    W, _ = train_coteaching(fx)
    with pytest.raises(lnref.ConfigError, match=r"co-teaching's \(two networks"):
        compare_trajectory(W, fx)
    plain = make_fixture(BASE.replace(algorithm="gd", steps=3), measure=False)
    with pytest.raises(lnref.ConfigError, match="this fixture has one network"):
        compare_trajectory({1: plain.W[1]}, plain, second={1: plain.W[1]})
    assert not {e.key for e in applicable(plain, "trajectory")} & set(COTEACHING_BUGS)
    assert "import_reshape" not in {e.key for e in applicable(fx, "trajectory")}


def test_fixture_round_trips_and_resumed_run_equals_it(fx, tmp_path):
    back = load_fixture(save_fixture(fx, tmp_path / "ct.npz"))
    assert back.meta["fixture_schema"] == FIXTURE_SCHEMA == 6 and back.coteaching
    for name, a in fx.arrays().items():
        assert np.array_equal(back.arrays()[name], a), name
    assert {"W0_2", "W_2", "gamma_2", "rho_2", "loss_2", "grad_2", "mask_2"} <= set(back.arrays())
    W, W2 = train_coteaching(back)
    assert compare_trajectory(W, back, second=W2).passed
    # a run of the fixture's config killed at step 10 and resumed from its checkpoint file ends on the fixture
    cfg = back.config

    class Stop(Exception):
        pass

    def stop(state):
        save_checkpoint(tmp_path / "c.npz", state)
        raise Stop

    with pytest.raises(Stop):
        lnref.train(cfg, back.data, back.W0, keep_rho=False, checkpoint_every=10, on_checkpoint=stop)
    res = lnref.train(cfg, back.data, back.W0, keep_rho=False, resume=load_checkpoint(tmp_path / "c.npz"))
    assert np.array_equal(res.W, back.W[-1])
    assert np.array_equal(res.trace["gamma_2"][-1], back.gamma_2[-1])
    assert np.array_equal(res.trace["mask_2"][-1], back.mask_2[-1])


def test_old_schema_cannot_claim_coteaching(fx, tmp_path):
    import io

    path = save_fixture(fx, tmp_path / "ct.npz")
    z = dict(np.load(path, allow_pickle=False))
    meta = json.loads(str(z.pop("__meta__")))
    meta["fixture_schema"] = 5
    meta["meta_sha256"] = meta_sha(meta)
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **z)
    path.write_bytes(buf.getvalue())
    with pytest.raises(FixtureError, match="schema-5 fixture cannot hold algorithm='coteaching'"):
        load_fixture(path)


def test_coteaching_arrays_are_validated(fx):
    a = {k: v for k, v in vars(fx).items() if k not in ("W_2",)}
    with pytest.raises(lnref.ConfigError, match="missing: W_2"):
        type(fx)(**a)
    bad = fx.mask_2.copy()
    bad[2, 0] = 0.5
    with pytest.raises(lnref.ConfigError, match="'mask_2' must contain only 0 and 1"):
        type(fx)(**{**a, "W_2": fx.W_2, "mask_2": bad})
    with pytest.raises(lnref.ConfigError, match=r"'W_2' must have shape \(5, 2, 3, 60\)"):
        type(fx)(**{**a, "W_2": fx.W_2[:, :, :2]})
    with pytest.raises(lnref.ConfigError, match="loss='gce' is not allowed in a fixture yet"):
        make_fixture(BASE.replace(loss="gce", steps=3))


def test_coteaching_with_biases_replays_and_judges_b_2(tmp_path):
    cfg = BASE.replace(bias=True, init="torch", patch_reduce="mean", output_scale=1.0, steps=12, eta=0.5)
    fx = make_fixture(cfg, [0, 1, 5, 12], exercise=True)
    assert fx.b0_2.shape == (2, 3) and fx.b_2.shape == (4, 2, 3) and fx.grad_b_2.shape == (4, 2, 3)
    P = Problem.of(fx)
    run = simulate(P, fx.steps, P.base, with_bias=True)
    for k, t in enumerate(fx.steps):
        W, b = run[int(t)]
        assert _rel(W[2:], fx.W_2[k]) <= 1e-12 and np.max(np.abs(b[2:] - fx.b_2[k])) <= 1e-12
    steps = [int(t) for t in fx.steps]
    own = dict(zip(steps, fx.W)), dict(zip(steps, fx.b)), dict(zip(steps, fx.W_2))
    rep = compare_trajectory(own[0], fx, biases=own[1], second=own[2], second_biases=dict(zip(steps, fx.b_2)))
    assert rep.passed, rep.text()
    b2 = {t: b.copy() for t, b in zip(steps, fx.b_2)}
    b2[5][1, 2] += 1e-6
    rep = compare_trajectory(own[0], fx, biases=own[1], second=own[2], second_biases=b2)
    assert not rep.passed and rep.first_failure == 5 and "W_2 or b_2" in rep.text()
    with pytest.raises(lnref.ConfigError, match="second network's biases too"):
        compare_trajectory(own[0], fx, biases=own[1], second=own[2])


def _export_args(out):
    flags = "--n 20 --d 60 --m 3 --steps 30 --checkpoints 0,1,5,12 --n-test 0 --tau 0.2 --flips exact --seed 5"
    return ["export", *flags.split(" "), "--algorithm", "coteaching", "--out", str(out)]


def test_cli_export_and_compare_coteaching(tmp_path, capsys):
    out = tmp_path / "ct.npz"
    assert main(_export_args(out)) == 0
    fx = load_fixture(out)
    assert fx.coteaching and fx.mask_2.shape == (31, 20)

    def save(name, pair, **extra):
        W, W2 = pair
        st = sorted(W)
        np.savez(tmp_path / name, step=np.array(st), W=np.stack([W[t] for t in st]), **extra)
        if W2 is not None:
            z = dict(np.load(tmp_path / name))
            np.savez(tmp_path / name, **z, W_2=np.stack([W2[t] for t in st]))
        return str(tmp_path / name)

    capsys.readouterr()
    assert main(["compare", str(out), save("good.npz", train_coteaching(fx))]) == 0
    assert "MATCH" in capsys.readouterr().out
    assert main(["compare", str(out), save("bad.npz", train_coteaching(fx, "coteaching_own_selection"))]) == 1
    text = capsys.readouterr().out
    assert "MISMATCH" in text and "OWN small-loss samples" in text
    assert main(["compare", str(out), save("one.npz", (train_coteaching(fx)[0], None))]) == 2
    assert "lacks the array 'W_2'" in capsys.readouterr().err
