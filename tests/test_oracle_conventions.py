"""The oracle with the implementation conventions of SPEC.md section 7 (bias, torch initialisation, mean over
patches, output scale): fixtures carry them (b0, b, grad_b), the checks take biases, and the catalogue's replays run
on top of them - mistakes injected into an independent NumPy implementation of a Conv1d-style network are named."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.oracle.catalogue import CATALOGUE, CONVENTION_NEEDS, applicable
from lnref.oracle.fixtures import FIXTURE_SCHEMA, FixtureError, load_fixture, make_fixture, save_fixture
from lnref.testing import check_gradient, check_step, compare_trajectory

CONV = lnref.Config(
    n=12,
    d=40,
    m=3,
    q=1.0,
    eta=0.2,
    steps=20,
    n_test=0,
    noise="isotropic",
    sigma_p=1.0,
    mu_norm=2.0,
    tau=0.25,
    flips="exact",
    bias=True,
    init="torch",
    patch_reduce="mean",
    output_scale=1.0,
    seed=4,
)
CK = [0, 1, 2, 5, 20]

#: mistakes injected below; with the catalogue's convention entries they cover every entry that needs a convention
BUGS = (
    "sum_over_patches",
    "output_scale_1_over_m",
    "bias_missing",
    "bias_not_trained",
    "weight_decay",
    "logistic_wrong_argument",
    "momentum",
)


@pytest.fixture(scope="module")
def fx():
    return make_fixture(CONV, CK, exercise=True)


# ------------------------------------------------------------------ an independent Conv1d-style implementation
class ConvNet:
    """Written from SPEC.md section 7, the way a Conv1d model computes: channels c = j_index * m + r, weight (2m, d),
    bias (2m,), ReLU per patch, mean over the two patches, the filters of each class summed into two logits,
    cross-entropy on the two logits (= the logistic loss of f = logit_0 - logit_1), SGD."""

    def __init__(self, W0, b0, bug=None):
        m, d = W0.shape[1], W0.shape[2]
        self.m = m
        self.w = W0.reshape(2 * m, d).copy()
        self.b = b0.reshape(2 * m).copy()
        self.bug = bug

    def grads(self, mu, xi, y, labels):
        """(loss, dw (2m, d), db (2m,)) of the mean cross-entropy with ``labels`` (+-1)."""
        m, n, bug = self.m, xi.shape[0], self.bug
        b = np.zeros_like(self.b) if bug == "bias_missing" else self.b
        patches = [y[:, None] * mu[None, :], xi]  # (n, d) each
        z = [p @ self.w.T + b for p in patches]  # (n, 2m) per patch
        red = 1.0 if bug == "sum_over_patches" else 0.5
        h = red * (np.maximum(z[0], 0) + np.maximum(z[1], 0))  # (n, 2m)
        scale = 1.0 / m if bug == "output_scale_1_over_m" else 1.0
        logits = scale * np.stack([h[:, :m].sum(1), h[:, m:].sum(1)], axis=1)
        f = logits[:, 0] - logits[:, 1]
        loss = np.mean(np.logaddexp(0, -labels * f))
        if bug == "logistic_wrong_argument":
            dl = -labels / (1 + np.exp(-labels * f)) / n
        else:
            dl = -labels / (1 + np.exp(labels * f)) / n
        sign = np.concatenate([np.ones(m), -np.ones(m)])
        dh = (dl[:, None] * sign[None, :]) * scale * red  # (n, 2m)
        dw = np.zeros_like(self.w)
        db = np.zeros_like(self.b)
        for p, zp in zip(patches, z):
            g = dh * (zp > 0)
            dw += g.T @ p
            db += g.sum(0)
        return loss, dw, db


def run(fx, bug=None, value=None):
    """SGD from the fixture's W0, b0: (dict step -> W, dict step -> b)."""
    net = ConvNet(fx.W0, fx.b0, bug)
    d = fx.data
    eta = fx.config.eta
    keep = {int(s) for s in fx.steps}
    Ws, bs = {}, {}
    bufw = bufb = None
    for t in range(fx.total_steps + 1):
        if t in keep:
            Ws[t], bs[t] = net.w.reshape(2, fx.m, fx.d).copy(), net.b.reshape(2, fx.m).copy()
        if t == fx.total_steps:
            break
        _, dw, db = net.grads(d.mu, d.xi, d.y, fx.mult(t))
        if bug == "weight_decay":  # torch.optim.SGD(weight_decay=lambda) decays every parameter
            dw, db = dw + value * net.w, db + value * net.b
        if bug == "momentum":
            bufw = dw if bufw is None else value * bufw + dw
            bufb = db if bufb is None else value * bufb + db
            dw, db = bufw, bufb
        net.w = net.w - eta * dw
        if bug not in ("bias_not_trained", "bias_missing"):
            net.b = net.b - eta * db
    return Ws, bs


def grad_fn(bug=None):
    def grad(W, mu, xi, y, y_obs, q, b):
        _, dw, db = ConvNet(W, b, bug).grads(mu, xi, y, y_obs)
        return dw.reshape(W.shape), db.reshape(2, W.shape[1])

    return grad


# ------------------------------------------------------------------ fixtures
def test_fixture_with_conventions_equals_train(fx):
    assert fx.has_bias and fx.b0.shape == (2, 3) and fx.b.shape == (5, 2, 3) and fx.grad_b.shape == (5, 2, 3)
    res = lnref.train(CONV.replace(log_every=1), lnref.make_data(CONV), fx.W0, b0=fx.b0)
    np.testing.assert_array_equal(fx.W[-1], res.W)
    np.testing.assert_array_equal(fx.b[-1], res.b)
    for k, t in enumerate(CK):
        np.testing.assert_array_equal(fx.b[k], res.trace["bias"][t])
        gW, gb = lnref.gradients(fx.W[k], fx.data, 1.0, b=fx.b[k], output_scale=1.0, patch_reduce="mean")
        np.testing.assert_array_equal(fx.grad[k], gW)
        np.testing.assert_array_equal(fx.grad_b[k], gb)
        assert fx.loss[k] == lnref.loss(fx.W[k], fx.data, 1.0, b=fx.b[k], output_scale=1.0, patch_reduce="mean")
    # b0 is lnref.init_bias(cfg) (torch law) except the exercised filters, zeroed with their signal coordinate
    b0 = lnref.init_bias(CONV)
    np.testing.assert_array_equal(fx.b0[:, :-1], b0[:, :-1])
    assert np.all(fx.b0[:, -1] == 0) and np.all(fx.W0[:, -1, 0] == 0) and "b0[:, 2] = 0" in fx.meta["w0_edit"]
    assert np.all(np.abs(b0) <= 1 / np.sqrt(CONV.d)) and np.any(b0 != 0)
    # the spread covers b and is rounding-sized
    assert np.all(fx.spread[:, :2] < 1e-13)


def test_paper_fixture_has_no_bias_arrays():
    f = make_fixture(CONV.replace(bias=False, patch_reduce="sum", output_scale=None, steps=2), [0, 1])
    assert not f.has_bias and {"b0", "b", "grad_b"}.isdisjoint(f.arrays())
    with pytest.raises(lnref.ConfigError, match="b0 was given but the config has bias=False"):
        make_fixture(CONV.replace(bias=False, steps=2), [0, 1], b0=np.zeros((2, 3)))


def test_roundtrip_and_integrity_of_bias_arrays(fx, tmp_path):
    path = save_fixture(fx, tmp_path / "c.npz")
    back = load_fixture(path)
    for name in ("b0", "b", "grad_b"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fx, name))
    assert back.config == fx.config and back.meta["fixture_schema"] == FIXTURE_SCHEMA

    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["b"] = arrays["b"] + 1e-9
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(FixtureError, match="'b' does not match its SHA-256"):
        load_fixture(tmp_path / "edited.npz")

    from lnref.oracle.fixture_file import meta_sha as _meta_sha

    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    for name in ("b0", "b", "grad_b"):
        del arrays[name], meta["arrays"][name]
    meta["meta_sha256"] = _meta_sha(meta)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "nob.npz", **arrays)
    with pytest.raises(FixtureError, match="needs the arrays b0"):
        load_fixture(tmp_path / "nob.npz")
    meta["fixture_schema"] = 1
    meta["meta_sha256"] = _meta_sha(meta)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(FixtureError, match="fixture_schema=1; this lnref reads schemas 2, 3"):
        load_fixture(tmp_path / "old.npz")


# ------------------------------------------------------------------ checks
def test_correct_conv_implementation_passes_and_b_is_compared(fx):
    Ws, bs = run(fx)
    rep = compare_trajectory(Ws, fx, biases=bs)
    assert rep.passed, rep.text()
    assert all(r.b_rel_err < 1e-12 for r in rep.rows) and "b rel" in rep.text()
    assert "same bound as W" in rep.text()
    # b alone wrong at one checkpoint fails there, with the b column naming it
    bad = dict(bs)
    bad[5] = bs[5] + 1e-6 * np.abs(fx.b).max()
    rep = compare_trajectory(Ws, fx, biases=bad)
    assert not rep.passed and rep.first_failure == 5
    assert [r.ok for r in rep.rows] == [True, True, True, False, True]
    assert "their biases b differ at step 5" in "\n".join(rep.findings)
    # float32 tier: b too, at the same bound
    Ws32 = {t: W.astype(np.float32) for t, W in Ws.items()}
    bs32 = {t: b.astype(np.float32) for t, b in bs.items()}
    assert compare_trajectory(Ws32, fx, biases=bs32, tier="float32").passed
    # an array (K, 2, m) aligned with the fixture's steps works as well
    assert compare_trajectory(np.stack([Ws[t] for t in CK]), fx, biases=np.stack([bs[t] for t in CK])).passed


def test_biases_are_required_exactly_when_the_fixture_has_them(fx):
    Ws, bs = run(fx)
    with pytest.raises(lnref.ConfigError, match="pass their biases too"):
        compare_trajectory(Ws, fx)
    with pytest.raises(lnref.ConfigError, match=r"expected \(2, m\)"):
        compare_trajectory(Ws, fx, biases={t: b.T for t, b in bs.items()})
    with pytest.raises(lnref.ConfigError, match="missing step"):
        compare_trajectory(Ws, fx, biases={0: bs[0]})
    paper = make_fixture(CONV.replace(bias=False, patch_reduce="sum", output_scale=None, steps=2), [0, 1])
    with pytest.raises(lnref.ConfigError, match="has no bias"):
        compare_trajectory({1: paper.W[1]}, paper, biases={1: np.zeros((2, 3))})


def test_b0_not_copied_is_diagnosed(fx):
    Ws, bs = run(fx)
    zero = {t: (np.zeros_like(b) if t == 0 else b) for t, b in bs.items()}
    rep = compare_trajectory(Ws, fx, biases=zero)
    assert rep.first_failure == 0 and "start from the fixture's biases (array 'b0'" in "\n".join(rep.diagnosis)


@pytest.mark.parametrize("bug", BUGS)
def test_catalogue_diagnoses_on_top_of_the_conventions(bug, fx):
    """The catalogue's replays run on the fixture's conventions: weight decay, the wrong logistic derivative,
    momentum and the departures from bias / mean / output scale are each named alone."""
    value = {"weight_decay": 3e-3, "momentum": 0.5}.get(bug)
    Ws, bs = run(fx, bug, value)
    rep = compare_trajectory(Ws, fx, biases=bs)
    assert not rep.passed
    assert rep.mistakes == [bug], rep.text()
    if value is not None:
        assert rep.fitted[bug] == pytest.approx(value, rel=1e-6)
    text = "\n".join(rep.diagnosis)
    assert "not in lnref's catalogue" not in text
    if bug != "bias_missing":  # the replay has biases: it must reproduce theirs as well
        assert f"the replay of {bug} also reproduces their biases b" in text, text


def test_a_cause_that_explains_w_but_not_b_says_so(fx):
    """Weight decay on W and b (PyTorch's SGD) is named; the named cause's replay is also checked on b."""
    Ws, bs = run(fx, "weight_decay", 3e-3)
    bad = {t: b * (1 + 1e-6) if t == 20 else b for t, b in bs.items()}
    rep = compare_trajectory(Ws, fx, biases=bad)
    assert rep.mistakes == ["weight_decay"]
    assert "the replay of weight_decay does NOT reproduce their biases b" in "\n".join(rep.diagnosis)


def test_every_convention_entry_is_injected(fx):
    conv_entries = {e.key for e in CATALOGUE if set(e.needs) & CONVENTION_NEEDS}
    assert conv_entries <= set(BUGS)
    keys = {e.key for e in applicable(fx, "trajectory")}
    # the fixture's own conventions are not mistakes; their absence is
    assert {"mean_over_patches", "bias", "model_missing_1_over_m"}.isdisjoint(keys)
    assert conv_entries <= keys


def test_gradient_check_takes_pairs(fx):
    rep = check_gradient(grad_fn(), fx)
    assert rep.passed, rep.text()
    assert "loss rel" not in rep.text() and "b rel" in rep.text() and "nan" not in rep.text()
    rep = check_gradient(grad_fn("sum_over_patches"), fx)
    assert rep.mistakes == ["sum_over_patches"], rep.text()
    rep = check_gradient(grad_fn("logistic_wrong_argument"), fx)
    assert rep.mistakes == ["logistic_wrong_argument"], rep.text()
    good = grad_fn()
    rep = check_gradient(lambda *a, b: (good(*a, b)[0], 2.0 * good(*a, b)[1]), fx)
    assert not rep.passed and "only the bias part differs" in "\n".join(rep.findings)
    with pytest.raises(lnref.ConfigError, match=r"must return a pair \(grad_W, grad_b\)"):
        check_gradient(lambda *a, b: good(*a, b)[0], fx)


def test_step_check_takes_pairs(fx):
    good = grad_fn()

    def step(W, mu, xi, y, y_obs, q, eta, b, decay=0.0):
        gW, gb = good(W, mu, xi, y, y_obs, q, b)
        return W - eta * (gW + decay * W), b - eta * (gb + decay * b)

    assert check_step(step, fx).passed
    rep = check_step(lambda *a, b: step(*a, b, decay=1e-2), fx)
    assert rep.mistakes == ["weight_decay"] and rep.fitted["weight_decay"] == pytest.approx(1e-2, rel=1e-6)


def test_cli_export_and_compare_with_conventions(tmp_path, capsys):
    out = tmp_path / "conv.npz"
    args = [
        "export",
        "--bias",
        "true",
        "--init",
        "torch",
        "--patch-reduce",
        "mean",
        "--output-scale",
        "1",
        "--noise",
        "isotropic",
        "--n",
        "8",
        "--d",
        "20",
        "--m",
        "2",
        "--eta",
        "0.2",
        "--steps",
        "4",
        "--checkpoints",
        "0,1,3",
        "--n-test",
        "0",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "bias=True, init=torch, patch_reduce=mean, output_scale=1" in capsys.readouterr().out
    f = load_fixture(out)
    assert f.has_bias and f.config.patch_reduce == "mean" and f.config.output_scale == 1.0
    Ws, bs = run(f)
    steps = sorted(Ws)
    np.savez(
        tmp_path / "good.npz",
        step=np.array(steps),
        W=np.stack([Ws[t] for t in steps]),
        b=np.stack([bs[t] for t in steps]),
    )
    assert main(["compare", str(out), str(tmp_path / "good.npz")]) == 0
    assert "MATCH" in capsys.readouterr().out
    Ws, bs = run(f, "sum_over_patches")
    np.savez(
        tmp_path / "bad.npz",
        step=np.array(steps),
        W=np.stack([Ws[t] for t in steps]),
        b=np.stack([bs[t] for t in steps]),
    )
    assert main(["compare", str(out), str(tmp_path / "bad.npz")]) == 1
    assert "the mean over the two patches is missing" in capsys.readouterr().out
    np.savez(tmp_path / "nob.npz", step=np.array(steps), W=np.stack([Ws[t] for t in steps]))
    assert main(["compare", str(out), str(tmp_path / "nob.npz")]) == 2
    assert "lacks the array 'b'" in capsys.readouterr().err
