"""The Conv1d example (lnref/examples/conv1d_model.py): the common PyTorch model, unchanged, passes lnref's checks
on a fixture with its conventions (SPEC.md section 7) at float64 and, in float32, at the float32 tier; forgetting
the mean over patches is diagnosed; without torch the examples say what to install."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import lnref
from lnref.testing import make_fixture, save_fixture


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="needs torch: pip install torch")


@pytest.fixture(scope="module")
def conv(torch):
    from lnref.examples import conv1d_model

    return conv1d_model


@pytest.fixture(scope="module")
def fx():
    cfg = lnref.Config(
        n=12,
        d=30,
        m=3,
        q=1.0,
        eta=0.2,
        steps=30,
        n_test=0,
        noise="isotropic",
        sigma_p=1.0,
        mu_norm=2.0,
        tau=0.2,
        flips="exact",
        bias=True,
        init="torch",
        patch_reduce="mean",
        output_scale=1.0,
        seed=2,
    )
    return make_fixture(cfg, [0, 1, 5, 30], exercise=True)


def test_float64_matches(conv, fx):
    grad_rep, traj_rep = conv.run(fx, "float64")
    assert grad_rep.passed, grad_rep.text()
    assert traj_rep.passed, traj_rep.text()
    assert max(r.rel_err for r in traj_rep.rows) < 1e-12 and max(r.b_rel_err for r in traj_rep.rows) < 1e-12
    assert np.max(np.abs(fx.W[-1] - fx.W0)) > 1e-2  # the run moves


def test_float32_matches_at_the_float32_tier_only(conv, fx, torch):
    grad_rep, traj_rep = conv.run(fx, "float32")
    assert grad_rep.passed, grad_rep.text()
    assert traj_rep.passed, traj_rep.text()
    Ws, bs, losses = conv.train(fx, torch.float32)
    assert all(W.dtype == np.float32 for W in Ws.values())
    strict = lnref.testing.compare_trajectory(Ws, fx, tier="float64", loss=losses, biases=bs)
    assert not strict.passed


def test_forgetting_the_mean_over_patches_is_diagnosed(conv, fx):
    grad_rep, traj_rep = conv.run(fx, "float64", reduce="sum")
    assert not grad_rep.passed and grad_rep.mistakes == ["sum_over_patches"], grad_rep.text()
    assert not traj_rep.passed and traj_rep.mistakes == ["sum_over_patches"], traj_rep.text()
    assert "the mean over the two patches is missing" in traj_rep.text()


def test_example_command(conv, fx, tmp_path, capsys):
    path = save_fixture(fx, tmp_path / "conv.npz")
    assert conv.main(["--fixture", str(path)]) == 0
    out = capsys.readouterr().out
    assert "matches lnref within tier 'float64'" in out and "b rel" in out and "nan" not in out
    assert conv.main(["--fixture", str(path), "--dtype", "float32"]) == 0
    assert "matches lnref within tier 'float32'" in capsys.readouterr().out
    paper = make_fixture(fx.config.replace(bias=False, patch_reduce="sum", output_scale=None, steps=2), [0, 1])
    other = save_fixture(paper, tmp_path / "paper.npz")
    assert conv.main(["--fixture", str(other)]) == 2
    err = capsys.readouterr().err
    assert "bias=False (needs True)" in err and "--patch-reduce mean" in err


@pytest.mark.parametrize(
    "module,package",
    [
        ("lnref.examples.torch_model", "PyTorch: pip install torch"),
        ("lnref.examples.conv1d_model", "PyTorch: pip install torch"),
        ("lnref.examples.jax_model", "JAX: pip install jax"),
    ],
)
def test_examples_without_their_package_say_what_to_install(module, package):
    """Run as a command with the package hidden: a one-line message and exit 2, no traceback."""
    name = package.split(": ")[0]
    hidden = "torch" if name == "PyTorch" else "jax"
    code = f"import sys, runpy; sys.modules[{hidden!r}] = None; runpy.run_module({module!r}, run_name='__main__')"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"this example needs {package}"
