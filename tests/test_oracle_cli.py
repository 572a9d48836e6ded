"""lnref.oracle.cli: `lnref export` and `lnref compare`, their exit codes (0 match, 1 mismatch, 2 unusable input)."""

from __future__ import annotations

import numpy as np

from lnref.cli import main
from lnref.testing import load_fixture
from oracle_impl import train


def test_cli_export_and_compare(tmp_path, capsys):
    out = tmp_path / "fx.npz"
    args = [
        "export",
        "--n",
        "8",
        "--d",
        "20",
        "--m",
        "2",
        "--steps",
        "4",
        "--checkpoints",
        "0,1,3",
        "--n-test",
        "0",
        "--tau",
        "0.25",
        "--flips",
        "exact",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "measured spread" in capsys.readouterr().out
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    fx = load_fixture(out)
    assert fx.steps.tolist() == [0, 1, 3, 4]
    W, L = train(fx)
    np.savez(
        tmp_path / "good.npz",
        step=np.array(sorted(W)),
        W=np.stack([W[t] for t in sorted(W)]),
        loss=np.array([L[t] for t in sorted(W)]),
    )
    capsys.readouterr()
    assert main(["compare", str(out), str(tmp_path / "good.npz")]) == 0
    assert "MATCH" in capsys.readouterr().out
    bad, _ = train(fx, "missing_1_over_m")
    np.savez(tmp_path / "bad.npz", step=np.array(sorted(bad)), W=np.stack([bad[t] for t in sorted(bad)]))
    assert main(["compare", str(out), str(tmp_path / "bad.npz")]) == 1
    assert "1/m" in capsys.readouterr().out
    np.savez(tmp_path / "zero.npz", step=np.array([0]), W=fx.W[:1])
    assert main(["compare", str(out), str(tmp_path / "zero.npz")]) == 2
    assert "no GD step beyond 0" in capsys.readouterr().err
    np.savez(tmp_path / "nostep.npz", W=fx.W)
    assert main(["compare", str(out), str(tmp_path / "nostep.npz")]) == 2
    assert "lacks the array(s) 'step'" in capsys.readouterr().err
    for dtype in (np.float16, np.complex64):
        np.savez(tmp_path / "dt.npz", step=fx.steps, W=fx.W.astype(dtype))
        assert main(["compare", str(out), str(tmp_path / "dt.npz")]) == 2
        assert "float64 or float32" in capsys.readouterr().err
    assert main(["export", "--steps", "3", "--checkpoints", "0,5", "--out", str(tmp_path / "x.npz")]) == 2
    assert "every checkpoint must be in [0, steps=3]" in capsys.readouterr().err
