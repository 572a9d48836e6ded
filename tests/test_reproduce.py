"""`lnref reproduce`: command-line behaviour, a smoke run of han2025 --quick, and Huang's claim at small sizes."""
import json

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.reproduce import DEFAULT, load_all
from lnref.reproduce.huang2025 import label_noise_loss, memorisation_ratio


def test_registry_lists_the_reproductions(capsys):
    reps = load_all()
    assert {"han2025", "han2025-selection", "huang2025"} <= set(reps)
    assert DEFAULT == "han2025"
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "han2025" in out and "(default)" in out and "huang2025" in out


def test_unknown_name_is_bad_input(tmp_path, capsys):
    assert main(["reproduce", "no-such-paper", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no-such-paper" in err and "han2025" in err
    assert not (tmp_path / "o").exists()          # refused before any work


def test_non_empty_out_is_refused_without_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["reproduce", "han2025", "--quick", "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--threads", "0"]])
def test_bad_numbers_are_bad_input(tmp_path, argv):
    code = None
    try:
        code = main(["reproduce", "han2025", "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:      # argparse rejects --seeds 0 itself
        code = exc.code
    assert code == 2


def test_han2025_quick_smoke(tmp_path, capsys):
    out = tmp_path / "han"
    assert main(["reproduce", "han2025", "--quick", "--out", str(out), "--threads", "1"]) == 0
    stdout = capsys.readouterr().out
    assert "predictions hold" in stdout
    for name in ("report.md", "summary.json", "stages.json", "metrics_tau0.2_seed0.csv", "metrics_tau0_seed0.csv",
                 "han2025_figure1.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    checks = summary["checks"]
    assert len(checks) >= 5
    assert all(isinstance(c["holds"], bool) and c["measured"] and c["claim"] for c in checks)
    report = (out / "report.md").read_text()
    held = sum(c["holds"] for c in checks)
    assert f"{held} of {len(checks)} predictions hold" in report
    # the CSV holds one row per logged step with the history columns
    header, *rows = (out / "metrics_tau0.2_seed0.csv").read_text().strip().splitlines()
    assert header.startswith("step,") and "train_acc_noisy" in header
    assert len(rows) == len(lnref.Config(steps=150, log_every=0, log_points=50).log_steps())
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert stages["tau0_seed0"]["stage2_start"] is None


def test_memorisation_ratio_and_label_noise_loss_by_hand():
    h = {"rho_bar_max_clean": np.array([0.0, 2.0, 3.0]), "rho_bar_max_noisy": np.array([np.nan, 4.0, 1.0]),
         "gamma_max": np.array([0.0, 2.0, 1.5])}
    r = memorisation_ratio(h)
    assert np.isnan(r[0]) and r[1] == 2.0 and r[2] == 2.0
    m = np.array([[0.0, 0.0], [50.0, -50.0]])
    got = label_noise_loss(m, 0.1)
    assert got[0] == pytest.approx(np.log(2.0), rel=1e-15)
    # l(50) ~ 2e-22, l(-50) ~ 50: mean of (0.9 l(50) + 0.1 l(-50)) and (0.9 l(-50) + 0.1 l(50)) = 0.5 * 50
    assert got[1] == pytest.approx(25.0, rel=1e-12)


def test_label_noise_gd_keeps_memorisation_below_plain_gd():
    # Huang's setting at reduced size (q=2, ||mu||=2, sigma_p=0.5, n/d = 0.1 so n SNR^2 = 1.6 as in their run),
    # 3 seeds, same data and W0 for both algorithms.  Stated margins: label-noise GD's final max rho_bar is below
    # half of plain GD's, and its test accuracy is at least plain GD's, in every seed.
    for seed in range(3):
        cfg = lnref.Config(n=50, d=500, m=5, q=2.0, eta=0.5, p=0.1, mu_norm=2.0, sigma_p=0.5, tau=0.0, steps=400,
                           log_every=50, n_test=300, seed=seed)
        data, W0 = lnref.make_data(cfg), lnref.init_weights(cfg)
        gd = lnref.train(cfg, data, W0, threads=1, keep_rho=False).history
        ln = lnref.train(cfg.replace(algorithm="label_noise_gd"), data, W0, threads=1, keep_rho=False).history
        rho_gd = np.fmax(gd["rho_bar_max_clean"], gd["rho_bar_max_noisy"])[-1]
        rho_ln = np.fmax(ln["rho_bar_max_clean"], ln["rho_bar_max_noisy"])[-1]
        assert rho_ln < 0.5 * rho_gd, (seed, rho_ln, rho_gd)
        assert memorisation_ratio(ln)[-1] < memorisation_ratio(gd)[-1]
        assert ln["test_acc"][-1] >= gd["test_acc"][-1]
