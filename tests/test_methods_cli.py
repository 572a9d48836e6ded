"""The training methods (SPEC.md section 9) from the command line: --loss, --loss-param, a TOML [loss] table, the
run folder's record of the method, and sweeps over the method (a categorical grid field)."""

from __future__ import annotations

import json

import pytest

from lnref.cli import main

TINY = ["--n", "20", "--d", "40", "--m", "3", "--steps", "6", "--n-test", "0", "--quiet"]


def _config(out):
    return json.loads((out / "config.json").read_text())


def test_loss_and_its_parameters_from_flags_are_recorded(tmp_path):
    out = tmp_path / "run"
    assert (
        main(["run", *TINY, "--loss", "elr", "--loss-param", "lam=2", "--loss-param", "period=3", "--out", str(out)])
        == 0
    )
    cfg = _config(out)
    assert cfg["loss"] == "elr"
    assert cfg["loss_params"] == {"lam": 2.0, "beta": 0.7, "period": 3}  # beta: the official default
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "method_loss" in header and "loss" in header


def test_toml_loss_table_and_a_flag_that_changes_the_method(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[loss]\nname = "gce"\nq = 0.5\n')
    out = tmp_path / "a"
    assert main(["run", *TINY, "--config", str(toml), "--out", str(out)]) == 0
    assert _config(out)["loss"] == "gce" and _config(out)["loss_params"] == {"q": 0.5}
    out = tmp_path / "b"  # --loss replaces the file's method: the file's q is not carried to ELR
    assert main(["run", *TINY, "--config", str(toml), "--loss", "elr", "--out", str(out)]) == 0
    assert _config(out)["loss_params"] == {"lam": 3.0, "beta": 0.7, "period": 1}


@pytest.mark.parametrize(
    "args, words",
    [
        (["--loss", "focal"], ["loss='focal'", "'elr'"]),
        (["--loss", "gce", "--loss-param", "lam=3"], ["lam", "'elr'", "q in (0, 1]"]),
        (["--loss", "elr", "--loss-param", "lam=-1"], ["loss_params.lam=-1.0", ">= 0"]),
        (["--loss", "label_smoothing", "--loss-param", "eps=1"], ["loss_params.eps=1.0", "[0, 1)"]),
        (["--loss", "bootstrap_soft", "--loss-param", "beta=1.5"], ["loss_params.beta=1.5", "[0, 1]"]),
        (["--loss", "elr", "--loss-param", "period=0"], ["loss_params.period=0", ">= 1"]),
        (["--loss", "backward", "--loss-param", "tau=0.5"], ["loss_params.tau=0.5", "[0, 1/2)"]),
        (["--loss", "elr", "--loss-param", "lam"], ["is not NAME=VALUE"]),
        (["--loss", "elr", "--loss-param", "lam=1", "--loss-param", "lam=2"], ["lam", "more than once"]),
    ],
)
def test_bad_method_input_is_refused_before_any_work(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    try:
        code = main(["run", *TINY, *args, "--out", str(out)])
    except SystemExit as exc:  # argparse's own errors (a malformed NAME=VALUE) exit 2 too
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert not out.exists()


def test_toml_loss_table_without_a_name_is_refused(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("[loss]\nlam = 3\n")
    assert main(["run", *TINY, "--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    assert "name" in capsys.readouterr().err


def test_sweep_over_the_method_draws_a_categorical_heatmap(tmp_path):
    pytest.importorskip("matplotlib", reason="the heatmap needs matplotlib: pip install 'lnref[plot]'")
    out = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                "--n",
                "16",
                "--d",
                "40",
                "--m",
                "2",
                "--steps",
                "20",
                "--n-test",
                "50",
                "--engine",
                "coefficients",
                "--sampling",
                "gram",
                "--grid",
                "loss=logistic,elr",
                "--grid",
                "tau=0.1,0.2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "heatmap_train_acc_noisy.png").stat().st_size > 0
    rows = (out / "sweep_mean.csv").read_text().splitlines()
    assert rows[0].startswith("cell,loss,tau") and len(rows) == 5
    # sweep.csv holds the field 'loss' (the method) once; the default metrics leave out the metric 'loss'
    header = (out / "sweep.csv").read_text().splitlines()[0].split(",")
    assert header.count("loss") == 1
    assert {line.split(",")[3] for line in (out / "sweep.csv").read_text().splitlines()[1:]} == {"logistic", "elr"}
