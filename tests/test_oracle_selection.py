"""The oracle and the selection algorithms of SPEC.md section 9 ('select_retrain', 'truncated_gce'): fixtures record
the mask, the step-size factor and the reset of every step exactly as lnref.train takes them, the NumPy replay
reproduces lnref, an independent implementation written from the fixture's masks (tests/oracle_impl.py) passes
every check (and `lnref compare`), and forgetting the mask or averaging over n instead of |S| is caught and named.
Co-teaching's two networks: tests/test_oracle_coteaching.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.oracle.catalogue import applicable
from lnref.oracle.fixtures import FIXTURE_SCHEMA, FixtureError, load_fixture, save_fixture
from lnref.oracle.replay import Problem, simulate, step_gradient
from lnref.testing import check_gradient, check_step, compare_trajectory, make_fixture
from oracle_impl import SELECTION_BUGS, selection_gradient_fn, selection_step_fn, train_selection

BASE = lnref.Config(n=20, d=60, m=3, tau=0.2, flips="exact", steps=30, eta=1.0, n_test=0, seed=5)
CK = [0, 1, 5, 6, 12, 30]
ALGORITHMS = {
    "continue": {"algorithm": "select_retrain", "select_at": 5},
    "retrain": {"algorithm": "select_retrain", "select_at": 5, "select_then": "retrain"},
    "T1": {"algorithm": "select_retrain"},
    "gce": {"algorithm": "truncated_gce", "loss": "gce", "trunc_start": 3, "trunc_every": 4},
}


@pytest.fixture(scope="module")
def sel():
    return {k: make_fixture(BASE.replace(**v), CK) for k, v in ALGORITHMS.items()}


@pytest.mark.parametrize("key", list(ALGORITHMS))
def test_fixture_records_the_masks_lnref_train_takes(key, sel):
    fx = sel[key]
    res = lnref.train(fx.config, fx.data, fx.W0, keep_rho=False)
    steps = np.asarray(res.history["step"], dtype=int)
    assert steps.tolist() == list(range(BASE.steps + 1))  # every step logged: every mask compared
    assert np.array_equal(fx.mask, res.trace["mask"])
    assert np.array_equal(fx.W[-1], res.W)
    size = fx.mask.sum(axis=1)
    assert size.min() < BASE.n  # some step trains on a strict subset
    if fx.config.algorithm == "select_retrain":
        want = np.where(size < BASE.n, BASE.n / size, 1.0)
        assert np.array_equal(fx.step_scale, want)
        assert fx.reset_step == (5 if key == "retrain" else -1)
    else:
        assert np.all(fx.step_scale == 1.0) and fx.reset_step == -1
        assert np.all(fx.mask[:3] == 1.0) and not np.all(fx.mask[3] == 1.0)  # the first refresh at trunc_start
    # the replay (the project's second implementation) reproduces lnref's trajectory
    P = Problem.of(fx)
    run = simulate(P, fx.steps, P.base)
    for k, t in enumerate(fx.steps):
        assert np.max(np.abs(run[int(t)] - fx.W[k])) <= 1e-12 * np.max(np.abs(fx.W[k]))
        W, _ = fx.start(k)
        G = step_gradient(W, P, int(t), P.base)[0]
        assert np.max(np.abs(G - fx.grad[k])) <= 1e-12 * np.max(np.abs(fx.grad[k]))


def test_retrain_fixture_gradient_is_the_reset_steps(sel):
    fx = sel["retrain"]
    k = fx.index(5)
    from lnref.model import gradients

    Gm = gradients(fx.W0, fx.data, 1.0, mask=fx.mask[5])[0] * fx.step_scale[5]
    assert np.array_equal(fx.grad[k], Gm)  # at W0: the state step 5 starts from
    assert not np.allclose(fx.W[k], fx.W0)  # W(5) is the state before the reset
    assert np.allclose(fx.W[k + 1], fx.W0 - fx.config.eta * fx.grad[k], rtol=0, atol=1e-13)


@pytest.mark.parametrize("key", ["continue", "gce"])
def test_fixture_round_trips(key, sel, tmp_path):
    fx = sel[key]
    back = load_fixture(save_fixture(fx, tmp_path / "f.npz"))
    assert back.meta["fixture_schema"] == FIXTURE_SCHEMA == 6
    for name, a in fx.arrays().items():
        assert np.array_equal(back.arrays()[name], a), name
    assert back.reset_step == fx.reset_step and back.config == fx.config
    assert compare_trajectory(train_selection(back), back).passed


@pytest.mark.parametrize("key", list(ALGORITHMS))
def test_correct_implementation_passes_every_check(key, sel):
    fx = sel[key]
    rep = compare_trajectory(train_selection(fx), fx)
    assert rep.passed, rep.text()
    rep = check_gradient(selection_gradient_fn(fx.config), fx)
    assert rep.passed, rep.text()
    rep = check_step(selection_step_fn(fx.config), fx)
    assert rep.passed, rep.text()


@pytest.mark.parametrize("bug", SELECTION_BUGS)
@pytest.mark.parametrize("key", ["continue", "retrain"])
def test_selection_mistakes_are_caught_and_named(bug, key, sel):
    fx = sel[key]
    rep = compare_trajectory(train_selection(fx, bug), fx)
    assert not rep.passed and "MISMATCH" in rep.text()
    assert rep.mistakes == [bug], rep.text()
    rep = check_gradient(selection_gradient_fn(fx.config, bug), fx)
    assert not rep.passed and rep.mistakes == [bug], rep.text()
    rep = check_step(selection_step_fn(fx.config, bug), fx)
    assert not rep.passed and rep.mistakes == [bug], rep.text()


def test_mask_ignored_caught_for_truncated_gce_and_mean_entry_only_where_it_differs(sel):
    fx = sel["gce"]
    keys = {e.key for e in applicable(fx, "trajectory")}
    assert "selection_mask_ignored" in keys and "selection_mean_over_n" not in keys  # truncated GCE: mean over n
    rep = compare_trajectory(train_selection(fx, "selection_mask_ignored"), fx)
    assert not rep.passed and rep.mistakes == ["selection_mask_ignored"], rep.text()
    plain = make_fixture(BASE.replace(steps=3), measure=False)
    assert not {e.key for e in applicable(plain, "trajectory")} & set(SELECTION_BUGS)


def test_cli_export_and_compare_select_retrain(tmp_path, capsys):
    out = tmp_path / "sel.npz"
    args = [
        "export",
        "--n",
        "20",
        "--d",
        "60",
        "--m",
        "3",
        "--steps",
        "30",
        "--checkpoints",
        "0,1,5,6,12",
        "--n-test",
        "0",
        "--tau",
        "0.2",
        "--flips",
        "exact",
        "--seed",
        "5",
        "--algorithm",
        "select_retrain",
        "--select-at",
        "5",
        "--select-then",
        "retrain",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    fx = load_fixture(out)
    assert fx.reset_step == 5 and fx.mask.shape == (31, 20)
    W = train_selection(fx)
    np.savez(tmp_path / "good.npz", step=np.array(sorted(W)), W=np.stack([W[t] for t in sorted(W)]))
    capsys.readouterr()
    assert main(["compare", str(out), str(tmp_path / "good.npz")]) == 0
    assert "MATCH" in capsys.readouterr().out
    bad = train_selection(fx, "selection_mean_over_n")
    np.savez(tmp_path / "bad.npz", step=np.array(sorted(bad)), W=np.stack([bad[t] for t in sorted(bad)]))
    assert main(["compare", str(out), str(tmp_path / "bad.npz")]) == 1
    assert "|S|" in capsys.readouterr().out


def test_coteaching_with_a_method_and_masked_elr_are_refused_clearly():
    """Co-teaching is exported (tests/test_oracle_coteaching.py) with the logistic loss; with a training method
    (whose second network's state is not recorded) it is refused, as is ELR under any selection mask."""
    with pytest.raises(lnref.ConfigError, match=r"'coteaching' with loss='gce' is not allowed in a fixture yet"):
        make_fixture(BASE.replace(algorithm="coteaching", loss="gce", steps=3))
    assert make_fixture(BASE.replace(algorithm="coteaching", steps=3), measure=False).coteaching
    with pytest.raises(lnref.ConfigError, match="loss='elr' is not allowed in a fixture yet"):
        make_fixture(BASE.replace(algorithm="select_retrain", loss="elr", steps=3))


def test_selection_arrays_are_validated(sel, tmp_path):
    fx = sel["continue"]
    a = dict(
        config=fx.config,
        data=fx.data,
        W0=fx.W0,
        steps=fx.steps,
        W=fx.W,
        gamma=fx.gamma,
        rho=fx.rho,
        loss=fx.loss,
        grad=fx.grad,
    )
    with pytest.raises(lnref.ConfigError, match="needs the arrays 'mask'"):
        type(fx)(**a)
    bad = fx.mask.copy()
    bad[3, 0] = 0.5
    with pytest.raises(lnref.ConfigError, match="only 0 and 1"):
        type(fx)(**a, mask=bad, step_scale=fx.step_scale)
    with pytest.raises(lnref.ConfigError, match="reset_step"):
        type(fx)(**a, mask=fx.mask, step_scale=fx.step_scale, reset_step=4)  # select_then='continue'
    plain = make_fixture(BASE.replace(steps=3), measure=False)
    with pytest.raises(lnref.ConfigError, match="selection arrays"):
        type(plain)(
            plain.config,
            plain.data,
            plain.W0,
            plain.steps,
            plain.W,
            plain.gamma,
            plain.rho,
            plain.loss,
            plain.grad,
            mask=np.ones((4, 20)),
            step_scale=np.ones(4),
        )


def test_old_schema_cannot_claim_a_selection_algorithm(sel, tmp_path):
    """A schema-4 file (before masks were recorded) holding a selection config is refused; a schema-4 GD fixture
    still loads."""
    import hashlib
    import io

    from lnref.oracle.fixture_file import meta_sha as _meta_sha

    def rewrite(fx, path):
        save_fixture(fx, path)
        z = dict(np.load(path, allow_pickle=False))
        meta = json.loads(str(z.pop("__meta__")))
        meta["fixture_schema"] = 4
        for k in ("mask", "step_scale", "reset_step"):
            z.pop(k, None)
            meta["arrays"].pop(k, None)
        meta["meta_sha256"] = _meta_sha(meta)
        buf = io.BytesIO()
        np.savez(buf, __meta__=np.array(json.dumps(meta)), **z)
        path.write_bytes(buf.getvalue())
        return hashlib.sha256(buf.getvalue()).hexdigest()

    rewrite(sel["continue"], tmp_path / "old_sel.npz")
    with pytest.raises(FixtureError, match="schema-4 fixture cannot hold algorithm='select_retrain'"):
        load_fixture(tmp_path / "old_sel.npz")
    plain = make_fixture(BASE.replace(steps=3), measure=True)
    rewrite(plain, tmp_path / "old_gd.npz")
    back = load_fixture(tmp_path / "old_gd.npz")
    assert back.meta["fixture_schema"] == 4 and back.mask is None and np.array_equal(back.W, plain.W)
