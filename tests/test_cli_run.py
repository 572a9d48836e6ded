"""`lnref run`: the run folder (config.json, meta.json, metrics.csv, arrays.npz), --force, TOML, exit codes."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.training.runs import load_run

SMALL = [
    "--n",
    "6",
    "--d",
    "10",
    "--m",
    "2",
    "--steps",
    "5",
    "--n-test",
    "4",
    "--seed",
    "3",
    "--tau",
    "0.2",
    "--q",
    "2",
]
SMALL_CFG = dict(n=6, d=10, m=2, steps=5, n_test=4, seed=3, tau=0.2, q=2.0)
FILES = ("config.json", "meta.json", "metrics.csv", "arrays.npz")


def run_cli(out, *extra, capsys=None):
    code = main(["run", "--out", str(out), "--quiet", "--threads", "1", *extra])
    return code


def read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    return {c: np.array([float(r[k]) for r in body]) for k, c in enumerate(header)}


def test_run_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(out, *SMALL) == 0
    assert "wrote" in capsys.readouterr().out
    assert set(FILES) <= {p.name for p in out.iterdir()} <= set(FILES) | {"history.png"}  # (plot extra)
    cfg = lnref.Config(**SMALL_CFG)
    # config.json round-trips into the same Config
    assert lnref.Config.from_dict(json.loads((out / "config.json").read_text())) == cfg
    # metrics.csv equals the history of the same run (floats written with repr precision)
    res = lnref.train(cfg, threads=1)
    table = read_csv(out / "metrics.csv")
    assert list(table) == list(res.history)
    for k, v in res.history.items():
        np.testing.assert_array_equal(table[k], v.astype(np.float64), err_msg=k)
    # arrays.npz: final state, trace and labels, SHA-256 verified by load_run
    cfg2, arrays = load_run(out)
    assert cfg2 == cfg
    for k, v in (
        ("W", res.W),
        ("W0", res.W0),
        ("gamma", res.gamma),
        ("rho", res.rho),
        ("y", res.data.y),
        ("y_obs", res.data.y_obs),
        ("trace_gamma", res.trace["gamma"]),
        ("trace_rho", res.trace["rho"]),
        ("trace_margin", res.trace["margin"]),
        ("step", res.history["step"]),
    ):
        assert arrays[k].tobytes() == v.tobytes(), k
    meta = json.loads((out / "meta.json").read_text())
    assert meta["diverged"] is False and meta["steps_done"] == 5 and meta["seed"] == 3 and meta["threads"] == 1
    assert meta["versions"]["lnref"] == lnref.__version__


def test_non_empty_folder_is_refused_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(out, *SMALL) == 0
    before = {f: (out / f).read_bytes() for f in FILES}
    capsys.readouterr()
    # a different run into the same folder: refused, nothing overwritten
    assert run_cli(out, *SMALL, "--q", "3") == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err
    assert {f: (out / f).read_bytes() for f in FILES} == before
    # a folder with any unrelated file is non-empty too
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert run_cli(other, *SMALL) == 2
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    # --force overwrites
    assert run_cli(out, *SMALL, "--q", "3", "--force") == 0
    assert json.loads((out / "config.json").read_text())["q"] == 3.0


@pytest.mark.parametrize("table", [False, True])
def test_toml_config_file_and_flags_override_it(tmp_path, table):
    toml = tmp_path / "cfg.toml"
    body = (
        'n = 6\nd = 10\nm = 2\nsteps = 3\nn_test = 0\nq = 2.0\nnoise = "isotropic"\ntau_plus = 0.1\ntau_minus = 0.3\n'
    )
    toml.write_text(("[config]\n" if table else "") + body)
    out = tmp_path / "run"
    assert run_cli(out, "--config", str(toml), "--q", "3", "--steps", "4") == 0
    cfg = lnref.Config.from_dict(json.loads((out / "config.json").read_text()))
    assert cfg == lnref.Config(n=6, d=10, m=2, steps=4, n_test=0, q=3.0, noise="isotropic", tau_plus=0.1, tau_minus=0.3)


@pytest.mark.parametrize(
    "args,field,value",
    [
        (["--tau", "0.7"], "tau", "0.7"),
        (["--q", "0.5"], "q", "0.5"),
        (["--eta", "-1"], "eta", "-1"),
        (["--noise", "pink"], "noise", "pink"),
        (["--sigma0", "nan"], "sigma0", "nan"),
        (["--n", "0"], "n", "0"),
    ],
)
def test_bad_input_exits_2_naming_the_field(tmp_path, capsys, args, field, value):
    out = tmp_path / "run"
    assert run_cli(out, *SMALL, *args) == 2
    err = capsys.readouterr().err
    assert f"{field}=" in err and value in err, err
    assert not out.exists() or not any(out.iterdir())


def test_bad_toml_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("n = 6\nlearning_rate = 0.1\n")
    assert run_cli(tmp_path / "a", "--config", str(bad)) == 2
    assert "learning_rate" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("n = = 6\n")
    assert run_cli(tmp_path / "b", "--config", str(broken)) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert run_cli(tmp_path / "c", "--config", str(tmp_path / "missing.toml")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unparsable_flag_is_an_argparse_error_with_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(tmp_path / "run", "--n", "six")
    assert exc.value.code == 2
    assert "--n" in capsys.readouterr().err


def test_diverging_run_exits_1_and_still_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(
        out,
        "--n",
        "6",
        "--d",
        "10",
        "--m",
        "2",
        "--steps",
        "30",
        "--n-test",
        "0",
        "--q",
        "3",
        "--sigma0",
        "1",
        "--eta",
        "1e100",
    )
    assert code == 1
    assert "diverged" in capsys.readouterr().err
    assert set(FILES) <= {p.name for p in out.iterdir()} <= set(FILES) | {"history.png"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["diverged"] is True and meta["steps_done"] < 30 and "diverged" in meta["message"]
    _cfg, arrays = load_run(out)
    assert np.all(np.isfinite(arrays["W"]))
    table = read_csv(out / "metrics.csv")
    # the history ends at the step of the saved (finite) weights; every row before it is finite, the last
    # one may hold the non-finite outputs that stopped the run
    assert table["step"][-1] == meta["steps_done"]
    assert all(math.isfinite(v) for v in table["loss"][:-1])
    np.testing.assert_array_equal(arrays["step"], table["step"])


def test_python_m_lnref_help():
    proc = subprocess.run([sys.executable, "-m", "lnref", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout and "usage" in proc.stdout.lower()
    proc = subprocess.run([sys.executable, "-m", "lnref", "run", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--force" in proc.stdout and "--tau-plus" in proc.stdout


# --------------------------------------------------------------------------------- issue 14: refusals are clean
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_refused_force_run_leaves_the_finished_run_untouched(tmp_path, capsys):
    """Regression (issue 14): `--threads 0 --force` on a finished run rewrote config.json before refusing."""
    out = tmp_path / "run"
    assert run_cli(out, *SMALL) == 0
    before = _snapshot(out)
    for bad in (["--threads", "0"], ["--checkpoint-every", "-1"], ["--d", "1000000000000"]):
        capsys.readouterr()
        code = main(["run", "--out", str(out), "--quiet", *SMALL, "--q", "3", "--force", *bad])
        assert code == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("lnref run: error:") and err.count("\n") == 1, err
        assert _snapshot(out) == before, bad
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left


def test_force_replaces_the_folder_only_when_the_new_run_is_complete(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert run_cli(out, *SMALL) == 0
    before = _snapshot(out)
    import errno

    import lnref.io as lio

    real = lio.save_npz

    def disk_full(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(lio, "save_npz", disk_full)
    monkeypatch.setattr("lnref.training.runs.save_npz", disk_full)
    assert run_cli(out, *SMALL, "--q", "3", "--force") == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "unchanged" in err, err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # a fresh run stopped by a full disk leaves nothing that looks like a result
    fresh = tmp_path / "fresh"
    assert run_cli(fresh, *SMALL) == 2
    assert not fresh.exists()
    monkeypatch.setattr("lnref.training.runs.save_npz", real)
    assert run_cli(out, *SMALL, "--q", "3", "--force") == 0
    assert json.loads((out / "config.json").read_text())["q"] == 3.0
    assert json.loads((out / "meta.json").read_text())["complete"] is True


def test_toml_mixing_top_level_fields_and_a_config_table_is_refused(tmp_path, capsys):
    """Regression (issue 14): the top-level keys were silently ignored (the run used the defaults)."""
    toml = tmp_path / "mixed.toml"
    toml.write_text("n = 6\nd = 10\n[config]\nm = 2\n")
    out = tmp_path / "run"
    assert run_cli(out, "--config", str(toml)) == 2
    err = capsys.readouterr().err
    assert "top level" in err and "[config]" in err and "d, n" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "content,match",
    [
        ("config = 5\n", "'config' must be a table"),
        (b"n = 6\n# caf\xe9\n", "not UTF-8"),
        ("n = 1e300\n", "memory"),
        ("stpes = 5\n", "did you mean 'steps'"),
        ("n = [1, 2]\n", "n=[1, 2] is not allowed"),
        ("[config]\nn = {a = 1}\n", "n={'a': 1} is not allowed"),
    ],
)
def test_unusable_toml_exits_2_with_one_line(tmp_path, capsys, content, match):
    toml = tmp_path / "c.toml"
    (toml.write_bytes if isinstance(content, bytes) else toml.write_text)(content)
    out = tmp_path / "run"
    assert run_cli(out, "--config", str(toml)) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_unusable_paths_exit_2(tmp_path, capsys):
    import os

    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "fifo.toml")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    cases = [
        (["--config", str(tmp_path / "folder")], tmp_path / "o1", "is a folder"),
        (["--config", str(tmp_path / "fifo.toml")], tmp_path / "o2", "FIFO"),  # would block on open
        ([], tmp_path / "afile" / "sub", "a part of its path is a file"),
        ([], tmp_path / "afile", "not a folder"),
        ([], tmp_path / "loop_a" / "x", "symbolic links"),
        ([], "/proc/lnref-test/run", "cannot create"),
    ]
    for extra, out, match in cases:
        assert run_cli(out, *SMALL, *extra) == 2, out
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1, err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):  # (root can write anyway)
            assert run_cli(ro / "run", *SMALL) == 2
            assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    "flag,value,match",
    [
        ("--d", "1000000000000", "--engine coefficients --sampling gram"),
        ("--steps", "1000000000000", "--log-every"),
        ("--n", "1000000000000", "--n"),
    ],
)
def test_memory_estimate_refuses_before_allocating(tmp_path, capsys, flag, value, match):
    out = tmp_path / "run"
    assert run_cli(out, *SMALL, flag, value) == 2
    err = capsys.readouterr().err
    assert "memory" in err and match in err, err
    assert not out.exists()


def test_output_files_respect_the_umask(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        assert run_cli(tmp_path / "run", *SMALL) == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert modes and all(m == 0o640 for m in modes.values()), modes


def test_help_shows_field_meanings_and_typos_get_suggestions(capsys):
    from lnref.config import FIELD_DOCS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Label-noise GD flip probability" in text and "'orthogonal', 'isotropic'" in text
    for name in ("steps", "noise", "tau_plus"):
        assert " ".join(FIELD_DOCS[name].split())[:40] in text, name
    with pytest.raises(SystemExit) as exc:
        main(["run", "--stpes", "5", "--out", "x"])
    assert exc.value.code == 2
    assert "did you mean --steps?" in capsys.readouterr().err
    from lnref.cli import suggest

    assert suggest("han2052", ["han2025", "kou2023", "huang2025"]) == ["han2025"]
    assert suggest("zzzz", ["han2025"]) == []


def test_api_words_become_flags_in_cli_messages():
    from lnref.cli import to_cli_words

    assert to_cli_words("pass resume=True (or force=True) to go on") == "pass --resume (or --force) to go on"
    assert (
        to_cli_words("replicates=0 is not allowed; lower replicates= or")
        == "--replicates 0 is not allowed; lower --replicates or"
    )
    assert to_cli_words("tau=0.7 is not allowed") == "tau=0.7 is not allowed"  # config fields keep their names
