"""lnref.oracle.fixtures: fixtures equal lnref.train, carry their measured spread, and every damaged, edited or
unusual file is refused with a FixtureError naming the file (exit 2 from the CLI, no traceback)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.io import OutputError
from lnref.oracle.fixtures import FixtureError, load_fixture, make_fixture, save_fixture

CFG = lnref.Config(
    n=12, d=40, m=3, tau=0.25, flips="exact", steps=10, sigma_p=1.0, mu_norm=3.0, eta=0.5, n_test=0, seed=3
)


@pytest.fixture(scope="module")
def fx():
    return make_fixture(CFG, [0, 1, 3, 10], exercise=True)


@pytest.mark.parametrize("algorithm", ["gd", "label_noise_gd"])
def test_fixture_equals_train(algorithm):
    cfg = CFG.replace(algorithm=algorithm, p=0.2, steps=6)
    fx = make_fixture(cfg, [0, 2, 5], exercise=True)
    res = lnref.train(cfg.replace(log_every=1), lnref.make_data(cfg), fx.W0)
    for k, t in enumerate(fx.steps):
        row = int(np.flatnonzero(res.history["step"] == t)[0])
        np.testing.assert_array_equal(fx.gamma[k], res.trace["gamma"][row])
        np.testing.assert_array_equal(fx.rho[k], res.trace["rho"][row])
    np.testing.assert_array_equal(fx.W[-1], res.W)
    fx1 = make_fixture(cfg, range(0, 7))
    for k in range(6):
        np.testing.assert_array_equal(fx1.W[k + 1], fx1.W[k] - cfg.eta * fx1.grad[k])


def test_a_gram_config_with_a_fresh_virtual_test_set_exports_the_explicit_fixture(fx):
    """Fixtures are explicit weight-engine runs: a config asking for Gram sampling and a fresh virtual test set
    gives the same fixture as the plain config (the test-set choice does not apply), not a refusal."""
    gram = CFG.replace(engine="coefficients", sampling="gram", virtual_test="fresh")
    other = make_fixture(gram, [0, 1, 3, 10], exercise=True)
    assert other.config == fx.config and other.config.virtual_test == "fixed"
    np.testing.assert_array_equal(other.W, fx.W)


def test_exercised_w0_has_exact_zero_signal_inner_products(fx):
    assert fx.meta["w0_edit"] and np.all(fx.W0[:, -1, 0] == 0.0)
    assert np.all(np.einsum("kjd,d->kj", fx.W[:, :, -1, :], fx.data.mu) == 0.0)  # they stay exactly 0
    W0 = lnref.init_weights(CFG)
    np.testing.assert_array_equal(fx.W0[:, :-1], W0[:, :-1])


def test_spread_is_measured_and_small_for_a_tame_trajectory(fx):
    assert fx.spread.shape == (4, 3)
    assert np.all(fx.spread[:, :2] < 1e-14) and np.all(fx.spread[1:, 2] > 1e-9)  # float32 replay is float32


def _rewrite(path, out, edit):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    edit(arrays, meta)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    return out


def _rehash(meta):
    from lnref.oracle.fixture_file import meta_sha as _meta_sha

    meta["meta_sha256"] = _meta_sha(meta)


def test_roundtrip_and_integrity(fx, tmp_path):
    path = save_fixture(fx, tmp_path / "f.npz")
    back = load_fixture(path)
    for name, a in fx.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], a)
    assert back.config == fx.config
    with pytest.raises(OutputError, match="exists"):
        save_fixture(fx, path)

    def edit_w(arrays, meta):
        arrays["W"] = arrays["W"] + 1e-3

    with pytest.raises(FixtureError, match="'W' does not match its SHA-256"):
        load_fixture(_rewrite(path, tmp_path / "e1.npz", edit_w))

    def omit_w(arrays, meta):  # edited W and the hash list no longer mentions it
        arrays["W"] = arrays["W"] + 1e-3
        del meta["arrays"]["W"]
        _rehash(meta)

    with pytest.raises(FixtureError, match="'W' are not listed"):
        load_fixture(_rewrite(path, tmp_path / "e2.npz", omit_w))

    def edit_cfg(arrays, meta):  # the config edited, hashes untouched
        meta["config"]["eta"] = 0.25

    with pytest.raises(FixtureError, match="metadata does not match its SHA-256"):
        load_fixture(_rewrite(path, tmp_path / "e3.npz", edit_cfg))

    from lnref.oracle.fixture_file import array_sha as _sha

    for name, dtype in (("xi", np.complex128), ("W", np.float16)):

        def retype(arrays, meta, name=name, dtype=dtype):
            arrays[name] = arrays[name].astype(dtype)
            meta["arrays"][name]["sha256"] = _sha(arrays[name])
            _rehash(meta)

        with pytest.raises(FixtureError, match=f"'{name}' must be float64, got {np.dtype(dtype)}"):
            load_fixture(_rewrite(path, tmp_path / f"t_{name}.npz", retype))
    np.savez(tmp_path / "plain.npz", W=fx.W)
    with pytest.raises(FixtureError, match="not an lnref fixture"):
        load_fixture(tmp_path / "plain.npz")


def test_damaged_files_give_clean_errors(fx, tmp_path, capsys):
    good = save_fixture(fx, tmp_path / "f.npz")
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "garbage.npz").write_bytes(os.urandom(2000))
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "folder.npz").mkdir()
    for name, msg in (
        ("trunc.npz", "damaged"),
        ("garbage.npz", "damaged"),
        ("fifo.npz", "is a FIFO"),
        ("folder.npz", "is a folder"),
        ("missing.npz", "does not exist"),
    ):
        p = tmp_path / name
        with pytest.raises(FixtureError, match=msg) as info:
            load_fixture(p)
        assert str(p) in str(info.value)
        assert isinstance(info.value, lnref.ConfigError)
        capsys.readouterr()
        assert main(["compare", str(p), str(good)]) == 2  # a fixture that is not one: exit 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and name in err
        assert main(["compare", str(good), str(p)]) == 2  # their file damaged: exit 2
        assert name in capsys.readouterr().err


def test_export_checks_the_output_before_the_work(tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise AssertionError("make_fixture ran before the output path was checked")

    monkeypatch.setattr("lnref.oracle.fixtures.make_fixture", boom)
    (tmp_path / "dir").mkdir()
    args = ["export", "--n", "8", "--d", "20", "--m", "2", "--steps", "4", "--n-test", "0"]
    assert main([*args, "--out", str(tmp_path / "dir"), "--force"]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "f.npz").write_bytes(b"x")
    assert main([*args, "--out", str(tmp_path / "f.npz")]) == 2
    assert "exists" in capsys.readouterr().err
    (tmp_path / "file").write_bytes(b"x")
    assert main([*args, "--out", str(tmp_path / "file" / "f.npz"), "--force"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_export_refuses_a_chaotic_fixture_and_says_what_to_change(tmp_path, capsys):
    """The README's old example with --q 3 at eta 0.5: lnref against itself from W0 perturbed by 4 ulps differs
    by ~1e-1 at step 100, so it cannot judge; the message names the last step that can and eta."""
    out = tmp_path / "q3.npz"
    args = [
        "export",
        "--n",
        "20",
        "--d",
        "60",
        "--m",
        "4",
        "--tau",
        "0.2",
        "--q",
        "3",
        "--steps",
        "100",
        "--checkpoints",
        "0,1,10,100",
        "--n-test",
        "0",
        "--out",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "chaotic" in err and "--steps" in err and "--eta" in err and not out.exists()
    last = int(err.split("judges up to step ")[1].split(")")[0])
    assert 10 <= last < 100
    assert main([*args[:-1], str(out), "--eta", "0.1"]) == 0 and out.exists()
