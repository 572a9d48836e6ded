"""`lnref reproduce`: command-line behaviour, reports generated from the run (config as run, criteria that can
fail, seeds with standard errors), re-running into the same folder, and Huang's claim at small sizes."""

import json
import math
import re

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.io import OutputError
from lnref.reproduce import DEFAULT, load_all
from lnref.reproduce.common import (
    MARKER,
    Check,
    fmt_mean_se,
    mean_se,
    prepare_reproduction_dir,
    rate_lower_bound,
    seed_check,
)
from lnref.reproduce.han2025 import default_config as han_config
from lnref.reproduce.han2025 import han_checks
from lnref.reproduce.huang2025 import default_config as huang_config
from lnref.reproduce.huang2025 import huang_checks, label_noise_loss, memorisation_ratio, stationary_losses
from lnref.training.stages import detect_stages


def test_registry_lists_the_reproductions(capsys):
    reps = load_all()
    assert {"han2025", "han2025-selection", "huang2025"} <= set(reps)
    assert DEFAULT == "han2025"
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "han2025" in out and "(default)" in out and "huang2025" in out
    assert "default 5 seeds" in out  # several seeds by default for the han/huang reproductions


def test_unknown_name_is_bad_input(tmp_path, capsys):
    assert main(["reproduce", "no-such-paper", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no-such-paper" in err and "han2025" in err
    assert not (tmp_path / "o").exists()  # refused before any work


def test_non_empty_out_is_refused_without_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["reproduce", "han2025", "--quick", "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "x" and not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--threads", "0"]])
def test_bad_numbers_are_bad_input(tmp_path, argv):
    code = None
    try:
        code = main(["reproduce", "han2025", "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:  # argparse rejects --seeds 0 itself
        code = exc.code
    assert code == 2


def test_help_says_a_reproduction_replaces_its_own_output(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "replaces its earlier output" in text and "reproduction.json" in text and "--force" in text


# ------------------------------------------------------------------------------------ output folder (no training)
def test_own_output_is_replaced_foreign_content_refused(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"reproduction": "han2025", "files": ["a.csv", "fig.png"]}))
    (out / "a.csv").write_text("old")
    (out / "fig.png").write_text("old")
    assert prepare_reproduction_dir(out, "han2025") == out
    assert not (out / "a.csv").exists() and not (out / "fig.png").exists()  # the old run's files are gone
    # another reproduction's folder, or a folder with files the run did not write: refused, nothing deleted
    (out / "a.csv").write_text("old")
    with pytest.raises(OutputError, match="another reproduction"):
        prepare_reproduction_dir(out, "huang2025")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"notes\.txt"):
        prepare_reproduction_dir(out, "han2025")
    assert (out / "notes.txt").read_text() == "mine" and (out / "a.csv").exists()
    assert prepare_reproduction_dir(out, "han2025", force=True) == out  # --force keeps what is there
    assert (out / "notes.txt").exists()


# ------------------------------------------------------------------------------------ report rows
def test_check_keeps_the_short_constructor_and_normalises_holds():
    c = Check("claim", "1.0", np.bool_(True))
    assert c.holds is True and c.prediction == "claim" and c.criterion == "" and c.n_seeds is None
    assert Check("x", "y", "n/a").holds == "n/a"
    with pytest.raises(ValueError, match="n/a"):
        Check("x", "y", "maybe")


def test_mean_se_and_its_format():
    m, se, k = mean_se([1.0, 2.0, 3.0, None, float("nan")])
    assert (m, k) == (2.0, 3) and se == pytest.approx(1.0 / math.sqrt(3), rel=1e-15)
    assert fmt_mean_se([0.5]) == "0.5 (1 seed)"
    assert fmt_mean_se([1.0, 3.0]) == "2 +- 1 (2 seeds)"
    assert fmt_mean_se([7, None]) == "7 (1 of 2 seeds; 1 none)"
    c = seed_check("p", source="s", criterion="c", tolerance="t", per_seed=[True, False, True], measured="m")
    assert c.holds is False and (c.seeds_held, c.n_seeds) == (2, 3)
    assert (
        seed_check(
            "p", source="s", criterion="c", tolerance="t", per_seed=[True, False, True], measured="m", rule="majority"
        ).holds
        is True
    )


def _synthetic_han():
    """A trace that satisfies every han2025 criterion: n = 10 (8 clean, 2 mislabelled), T1 = 2, first
    mislabelled fit at 32, all fitted at 64; Han's scale n m/(eta sigma_p^2 d) = 10 * 4 / (0.5 * 1 * 8) = 10."""
    base = lnref.Config(n=10, d=8, m=4, sigma_p=1.0, eta=0.5, tau=0.2, flips="exact", steps=64)
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64])
    clean = np.array([True] * 8 + [False] * 2)
    margin = np.empty((steps.size, 10))
    margin[:, :8] = np.array([-1, -0.1, 1, 2, 3, 4, 5, 6])[:, None]  # clean: fitted from step 2
    margin[:, 8:] = np.array([0.2, -0.5, -1, -1, -0.5, -0.1, 0.3, 1])[:, None]  # noisy: one fitted at 0 (random
    margin[6, 8] = -0.1  # init), one at 32, both at 64
    st = detect_stages(margin, clean, steps)
    assert (st.t1, st.first_noisy_fit, st.t2) == (2, 32, 64)
    h = {
        "step": steps,
        "gamma_max": np.array([0, 0.1, 0.4, 0.8, 1.0, 1.1, 1.2, 1.3]),
        "rho_bar_max_noisy": np.array([0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2]),
        "rho_bar_max_clean": np.array([0, 0.03, 0.12, 0.24, 0.3, 0.33, 0.36, 0.39]),
        "test_acc": np.array([0.5, 0.9, 1, 1, 1, 0.95, 0.9, 0.85]),
        "loss": np.array([0.69, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]),
        "train_acc_noisy": np.array([0, 0, 0, 0, 0, 0, 0.5, 1.0]),
        "gamma_min": np.array([0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    }
    clean_margin = np.tile(np.array([-1, 1, 2, 3, 4, 5, 6, 7.0])[:, None], (1, 10))
    st0 = detect_stages(clean_margin, np.ones(10, bool), steps)
    h0 = dict(h, test_acc=np.full(8, 0.99), rho_bar_max_noisy=np.full(8, np.nan))
    return base, h, st, h0, st0


def test_han_rows_hold_on_a_good_trace_and_fail_on_a_violating_one():
    base, h, st, h0, st0 = _synthetic_han()
    good = han_checks(base, [(h, st)] * 2, [(h0, st0)] * 2)
    assert all(c.holds is True for c in good), [c.claim for c in good if not c.holds]
    assert all(c.criterion and c.tolerance and c.source and c.n_seeds == 2 for c in good)
    # Stage II: the signal collapses to 0.2 of its value at T1 in the second seed -> only that row fails
    bad_h = dict(h, gamma_max=h["gamma_max"] * np.array([1, 1, 1, 1, 1, 1, 1, 0.05]))
    bad = han_checks(base, [(h, st), (bad_h, st)], [(h0, st0)] * 2)
    failed = [c for c in bad if not c.holds]
    assert len(failed) == 1 and "not lost" in failed[0].claim and failed[0].seeds_held == 1
    # the loss rising after T1 and memorisation overtaking the signal without label noise each fail their own row
    up = dict(h, loss=h["loss"] * np.array([1, 1, 1, 1, 1, 1, 1, 3.0]))
    second = dict(h0, rho_bar_max_clean=h0["gamma_max"] * np.array([0, 0.3, 0.3, 0.3, 0.3, 0.3, 2, 2]))
    bad = han_checks(base, [(up, st)], [(second, st0)])
    assert sorted(c.claim.split(":")[0] for c in bad if not c.holds) == [
        "Han 2025, Stage II",
        "Han 2025, without label noise (tau = 0)",
    ]


def test_the_one_stage_row_fails_on_runs_with_label_noise():
    """Issue 23 item 3: the tau = 0 row tests something that can fail: given the tau > 0 runs (where the
    mislabelled samples' memorised noise overtakes the signal in Stage II) it fails."""
    base, h, st, h0, st0 = _synthetic_han()
    row = next(c for c in han_checks(base, [(h, st)] * 2, [(h0, st0)] * 2) if "without label noise" in c.claim)
    assert row.holds is True
    row = next(c for c in han_checks(base, [(h, st)] * 2, [(h, st)] * 2) if "without label noise" in c.claim)
    assert row.holds is False and row.seeds_held == 0


def test_rate_rule_and_its_binomial_bound():
    """Issue 23 item 8: a row is a rate over the seeds, with a one-sided Clopper-Pearson lower bound."""
    c = seed_check(
        "p",
        source="s",
        criterion="c",
        tolerance="t",
        per_seed=[True] * 7 + [False],
        measured="m",
        rule="rate",
        min_rate=0.8,
    )
    assert c.holds is True and (c.seeds_held, c.n_seeds, c.min_rate) == (7, 8, 0.8)
    assert 0.5 < c.rate_lower < 0.05 ** (1 / 8)  # below the bound of 8 of 8
    assert (
        seed_check(
            "p",
            source="s",
            criterion="c",
            tolerance="t",
            per_seed=[True] * 3 + [False],
            measured="m",
            rule="rate",
            min_rate=0.8,
        ).holds
        is False
    )
    assert rate_lower_bound(5, 5) == pytest.approx(0.05 ** (1 / 5), rel=1e-12)
    from scipy.stats import binom

    lb = rate_lower_bound(18, 20)  # the p at which 18 or more of 20 has probability 5%
    assert rate_lower_bound(0, 5) == 0.0 and binom.sf(17, 20, lb) == pytest.approx(0.05, rel=1e-9)
    with pytest.raises(ValueError, match="min_rate"):
        seed_check("p", source="s", criterion="c", tolerance="t", per_seed=[True], measured="m", rule="rate")


def test_han_verdicts_do_not_hinge_on_one_seed_without_t1():
    """Issue 23 item 8: one seed of 8 without T1 (a mislabelled sample fitted from the initialisation on) used
    to fail every row that needs T1 ("1 of 9 hold" at --seeds 8); as a rate over the seeds the rows hold."""
    base, h, st, h0, st0 = _synthetic_han()
    margin = np.empty((st.steps.size, 10))
    margin[:, :8] = np.array([-1, -0.1, 1, 2, 3, 4, 5, 6])[:, None]
    margin[:, 8] = 0.2  # fitted at every logged step
    margin[:, 9] = np.array([0.2, -0.5, -1, -1, -0.5, -0.1, 0.3, 1])
    no_t1 = detect_stages(margin, np.array([True] * 8 + [False] * 2), st.steps)
    assert no_t1.t1 is None
    checks = han_checks(base, [(h, st)] * 7 + [(h, no_t1)], [(h0, st0)] * 8)
    assert all(c.holds is True for c in checks), [c.claim for c in checks if not c.holds]
    assert {c.seeds_held for c in checks if c.rule == "rate"} <= {7, 8} and all(c.rule == "rate" for c in checks)
    # ... and two such seeds of 8 (75% < 80%) fail them
    checks = han_checks(base, [(h, st)] * 6 + [(h, no_t1)] * 2, [(h0, st0)] * 8)
    assert sum(not c.holds for c in checks) >= 6


def test_seed_notes_say_what_happened_in_a_seed_without_t1():
    from types import SimpleNamespace

    from lnref.reproduce.han2025 import seed_notes

    base, _h, st, _, _ = _synthetic_han()
    clean = np.array([True] * 8 + [False] * 2)
    margin = np.empty((st.steps.size, 10))
    margin[:, :8] = 1.0
    margin[:, 8] = 0.2
    margin[:, 9] = -0.3
    runs = [
        (
            SimpleNamespace(trace={"margin": margin}, data=SimpleNamespace(clean=clean)),
            detect_stages(margin, clean, st.steps),
        )
    ]
    notes = " ".join(seed_notes(base, runs))
    assert "Seeds without T1 (1 of 1): seed 0 (1 mislabelled sample fitted at every logged step" in notes
    assert "finite-sample event" in notes


def test_huang_rows_fail_when_label_noise_gd_does_not_climb():
    base = lnref.Config(n=10, d=100, m=2, q=2.0, steps=400, p=0.1, tau=0.0)
    steps = np.arange(0, 401, 100)
    gd = {
        "step": steps,
        "memorisation_ratio": np.full(5, 20.0),
        "rho_bar_max": np.full(5, 8.0),
        "test_acc": np.full(5, 0.55),
        "loss": np.array([0.69, 0.1, 0.01, 0.005, 0.001]),
        "label_noise_loss": np.full(5, 0.7),
    }
    ln = {
        "step": steps,
        "memorisation_ratio": np.full(5, 4.0),
        "rho_bar_max": np.full(5, 4.0),
        "test_acc": np.array([0.5, 0.6, 0.7, 0.8, 0.95]),
        "loss": np.full(5, 0.12),
        "label_noise_loss": np.full(5, 0.35),
    }
    assert all(c.holds is True for c in huang_checks(base, [gd], [ln]))
    flat = dict(ln, test_acc=np.full(5, 0.6))
    failed = [c.claim for c in huang_checks(base, [gd], [flat]) if not c.holds]
    assert failed == ["Huang 2025: label-noise GD's test accuracy climbs and beats plain GD's"]
    far = dict(ln, label_noise_loss=np.full(5, 0.2))  # outside 0.5 +- 0.25: the comparison row fails
    assert [c.holds for c in huang_checks(base, [gd], [far])][-1] is False


def test_stationary_point_of_label_noise_gd():
    m, l_obs, l_exp = stationary_losses(0.1)
    assert m == pytest.approx(math.log(9.0), rel=1e-15)
    # the expected flipped-label loss is minimal there, and equals the binary entropy
    grid = np.linspace(m - 0.5, m + 0.5, 101)
    vals = label_noise_loss(grid[:, None], 0.1)
    assert np.argmin(vals) == 50 and vals[50] == pytest.approx(l_exp, rel=1e-12)
    assert l_obs == pytest.approx(-math.log(0.9), rel=1e-12)


# ------------------------------------------------------------------------------------ runs (quick, tiny)
def _report_config(report: str) -> dict:
    table = report.split("## Config as run", 1)[1].split("## Predictions", 1)[0]
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `(\w+)` \| (.*) \|$", table, re.M)}


def _rows(report: str) -> list[list[str]]:
    table = report.split("## Predictions", 1)[1].split("predictions hold", 1)[0]
    lines = [
        ln
        for ln in table.splitlines()
        if ln.startswith("| ") and not ln.startswith("| prediction") and not ln.startswith("| ---")
    ]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]


def test_han2025_quick_report_is_the_run_and_reruns_into_its_own_folder(tmp_path, capsys):
    out = tmp_path / "han"
    assert main(["reproduce", "han2025", "--quick", "--seeds", "2", "--out", str(out), "--threads", "1"]) == 0
    stdout = capsys.readouterr().out
    assert "predictions hold" in stdout and "over 2 seeds" in stdout
    for name in (
        "report.md",
        "summary.json",
        "stages.json",
        "metrics_tau0.2_seed1.csv",
        "metrics_tau0_seed0.csv",
        "han2025_figure1.png",
        MARKER,
    ):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    # the config printed is the config run: --quick sizes (issue 15: it used to print n=200, d=2000, m=20)
    cfg = _report_config(report)
    quick = han_config(quick=True)
    for key in ("n", "d", "m", "steps", "sigma0", "sigma_p", "mu_norm", "eta", "n_test", "log_points"):
        assert cfg[key] == str(getattr(quick, key)), key
    assert (cfg["n"], cfg["d"], cfg["m"], cfg["steps"]) == ("100", "1000", "10", "150")
    assert cfg["seed"] == "varies: 0, 1" and cfg["tau"] == "varies: 0.2, 0.0"
    header, *rows = (out / "metrics_tau0.2_seed0.csv").read_text().strip().splitlines()
    assert header.startswith("step,") and "train_acc_noisy" in header
    assert len(rows) == len(quick.log_steps()) and rows[-1].startswith(f"{quick.steps},")
    # every row states source, criterion and tolerance, and counts seeds
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n"] == 100 and summary["seeds"] == 2
    assert summary["training_runs"] == 4 and "4 training runs of 4 configs" in report  # 2 seeds x 2 label rates
    checks = summary["checks"]
    assert len(checks) >= 8
    for c in checks:
        assert c["criterion"] and c["tolerance"] and re.search(r"SPEC\.md sections? \d", c["source"]), c
        assert isinstance(c["holds"], bool) and c["n_seeds"] == 2 and 0 <= c["seeds_held"] <= 2
    table = _rows(report)
    assert len(table) == len(checks)
    for row, c in zip(table, checks):
        assert "(tolerance: " in row[2] and row[3] == c["measured"] and "of 2 seeds" in row[4]
    held = sum(c["holds"] for c in checks)
    assert f"{held} of {len(checks)} predictions hold" in report
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert stages["tau0_seed0"]["first_noisy_fit"] is None
    # issue 23 item 3: fields the runs do not read are left out and named; the figure is captioned; the report
    # says why the iid accuracy stays high and where the degradation shows
    assert "p" not in cfg and "sigma_zeta" not in cfg and "`p` (algorithm gd" in report
    assert "![han2025_figure1.png](han2025_figure1.png)" in report and "shaded bands: the range" in report
    assert "Why the iid test accuracy stays near 1 through Stage II" in report and "han2025-selection" in report
    # the README's main-job command run twice: the same reproduction replaces its own output, stale files go
    assert main(["reproduce", "han2025", "--quick", "--seeds", "1", "--out", str(out), "--threads", "1"]) == 0
    assert not (out / "metrics_tau0.2_seed1.csv").exists() and (out / "metrics_tau0.2_seed0.csv").is_file()
    assert "--seeds 1 --quick" in (out / "report.md").read_text()
    # ... but not into a folder holding something else
    (out / "mine.txt").write_text("x")
    assert main(["reproduce", "han2025", "--quick", "--out", str(out)]) == 2
    assert "mine.txt" in capsys.readouterr().err
    assert main(["reproduce", "huang2025", "--quick", "--out", str(out)]) == 2


def test_huang2025_quick_report_states_the_steps_run(tmp_path):
    out = tmp_path / "huang"
    assert main(["reproduce", "huang2025", "--quick", "--seeds", "1", "--out", str(out), "--threads", "1"]) == 0
    report = (out / "report.md").read_text()
    cfg = _report_config(report)
    quick = huang_config(quick=True)
    assert cfg["steps"] == str(quick.steps) == "600"  # it used to say 2000 steps and run 600
    assert (cfg["n"], cfg["d"], cfg["m"], cfg["q"]) == ("100", "1000", "10", "2.0")
    assert cfg["algorithm"] == "varies: gd, label_noise_gd"
    rows = _rows(report)
    assert rows and all("(tolerance: " in r[2] and r[1] != "-" for r in rows)
    assert "0.5" in report and "H(p)" in report and "supplementary material" in report


def test_memorisation_ratio_and_label_noise_loss_by_hand():
    h = {
        "rho_bar_max_clean": np.array([0.0, 2.0, 3.0]),
        "rho_bar_max_noisy": np.array([np.nan, 4.0, 1.0]),
        "gamma_max": np.array([0.0, 2.0, 1.5]),
    }
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
        cfg = lnref.Config(
            n=50,
            d=500,
            m=5,
            q=2.0,
            eta=0.5,
            p=0.1,
            mu_norm=2.0,
            sigma_p=0.5,
            tau=0.0,
            steps=400,
            log_every=50,
            n_test=300,
            seed=seed,
        )
        data, W0 = lnref.make_data(cfg), lnref.init_weights(cfg)
        gd = lnref.train(cfg, data, W0, threads=1, keep_rho=False).history
        ln = lnref.train(cfg.replace(algorithm="label_noise_gd"), data, W0, threads=1, keep_rho=False).history
        rho_gd = np.fmax(gd["rho_bar_max_clean"], gd["rho_bar_max_noisy"])[-1]
        rho_ln = np.fmax(ln["rho_bar_max_clean"], ln["rho_bar_max_noisy"])[-1]
        assert rho_ln < 0.5 * rho_gd, (seed, rho_ln, rho_gd)
        assert memorisation_ratio(ln)[-1] < memorisation_ratio(gd)[-1]
        assert ln["test_acc"][-1] >= gd["test_acc"][-1]


def test_the_report_says_how_its_rows_are_judged():
    """The sentence above the predictions describes the rows below it: per seed with every seed required, per seed
    with a rate, or pooled over cells (no seed count) -- never 'every seed' above rows that are not judged so."""
    from lnref.reproduce.checks import Check
    from lnref.reproduce.common import judging_note

    every = Check("a", "1", True, criterion="x > 0", seeds_held=3, n_seeds=3)
    rate = Check("b", "1", True, criterion="x > 0", seeds_held=5, n_seeds=6, rule="rate", min_rate=0.8)
    pooled = Check("c", "1", False, criterion="in 90% of the cells")
    assert "every one of the 3 seeds" in judging_note([every, pooled], 3)
    assert "judged once" in judging_note([every, pooled], 3)
    only_rate = judging_note([rate], 6)
    assert "every one" not in only_rate and "how the seeds combine" in only_rate and "judged once" not in only_rate
    only_pooled = judging_note([pooled], 3)
    assert "seed by seed" not in only_pooled and "judged once" in only_pooled
