"""The PyTorch example (lnref/examples/torch_model.py) agrees with lnref within the documented tiers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lnref  # noqa: E402
from lnref.examples import torch_model  # noqa: E402
from lnref.testing import (  # noqa: E402
    assert_gradient_matches,
    assert_trajectory_matches,
    compare_trajectory,
    make_fixture,
    save_fixture,
)

CFG = lnref.Config(
    n=10, d=30, m=3, tau=0.2, flips="exact", sigma_p=1.0, mu_norm=3.0, eta=0.5, steps=20, n_test=0, seed=5
)


@pytest.fixture(scope="module")
def fx():
    return make_fixture(CFG, [0, 1, 5, 20], exercise=True)


def test_torch_float64_gradient_and_trajectory_match(fx):
    assert_gradient_matches(torch_model.gradient, fx, tier="float64")
    Ws, losses = torch_model.train(fx, torch.float64)
    rep = assert_trajectory_matches(Ws, fx, tier="float64", loss=losses)
    assert max(r.rel_err for r in rep.rows) < 1e-12


def test_torch_float32_matches_float32_tier_only(fx):
    Ws, losses = torch_model.train(fx, torch.float32)
    assert all(W.dtype == np.float32 for W in Ws.values())
    assert_trajectory_matches(Ws, fx, tier="float32", loss=losses)
    strict = compare_trajectory(Ws, fx, tier="float64")
    assert not strict.passed and "float32" in "\n".join(strict.diagnosis)


def test_torch_relu_convention_at_zero():
    """sigma'(0) = 0 in the example, checked on a W0 with an all-zero filter (every inner product exactly 0)."""
    W0 = lnref.init_weights(CFG)
    W0[1, 2] = 0.0
    fz = make_fixture(CFG.replace(steps=2), [0, 1], W0=W0)
    assert_gradient_matches(torch_model.gradient, fz)


def test_torch_label_noise_gd_replays_eps():
    cfg = CFG.replace(algorithm="label_noise_gd", p=0.2, steps=8)
    fz = make_fixture(cfg, [0, 1, 8])
    Ws, losses = torch_model.train(fz, torch.float64)
    assert_trajectory_matches(Ws, fz, loss=losses)


def test_torch_example_command(fx, tmp_path, capsys):
    path = save_fixture(fx, tmp_path / "fx.npz")
    assert torch_model.main(["--fixture", str(path)]) == 0
    out = capsys.readouterr().out
    assert "matches lnref within tier 'float64'" in out
    # every printed cell means something: the gradient table has no loss column (issue 15: 'nan' in "loss rel")
    assert "nan" not in out and out.count("loss rel") == 1
    assert torch_model.main(["--fixture", str(path), "--dtype", "float32"]) == 0
    assert "matches lnref within tier 'float32'" in capsys.readouterr().out
    conv = make_fixture(CFG.replace(bias=True, patch_reduce="mean", output_scale=1.0, steps=2), [0, 1])
    assert torch_model.main(["--fixture", str(save_fixture(conv, tmp_path / "conv.npz"))]) == 2
    assert "lnref.examples.conv1d_model" in capsys.readouterr().err
