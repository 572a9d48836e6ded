"""The command line never guesses (issue 23, item 5): no abbreviations, other frameworks' names mapped to lnref's,
one-line errors, ``None`` for fields whose default is None, plain help texts, the compile notice of
``lnref reproduce``, and an ETA that excludes the compile."""

from __future__ import annotations

import io
import re

import pytest

import lnref
from lnref.cli import args as cliargs
from lnref.cli import build_parser, main
from lnref.cli.args import Progress, config_from_args
from lnref.config import config_from_mapping, config_values_from_toml


def _error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_abbreviations_are_refused_in_every_subcommand(capsys, tmp_path):
    # argparse would take --seed for --seeds and overwrite runs/han2025 with a 3-seed run
    err = _error(capsys, ["reproduce", "--seed", "3", "--out", str(tmp_path / "r")])
    assert "unrecognized arguments: --seed" in err and "did you mean --seeds?" in err
    assert not (tmp_path / "r").exists()
    err = _error(capsys, ["run", "--ste", "3", "--out", str(tmp_path / "x")])
    assert "unrecognized arguments: --ste" in err
    err = _error(capsys, ["run", "--chec", "3", "--out", str(tmp_path / "x")])  # --checkpoint-every
    assert "unrecognized arguments: --chec" in err
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert parser.allow_abbrev is False
    assert all(p.allow_abbrev is False for p in subs.choices.values())


@pytest.mark.parametrize(
    ("flag", "want"),
    [
        ("--lr", "--eta"),
        ("--learning-rate", "--eta"),
        ("--width", "--m"),
        ("--channels", "--m"),
        ("--epochs", "--steps"),
    ],
)
def test_pytorch_vocabulary_gets_lnref_names(capsys, tmp_path, flag, want):
    err = _error(capsys, ["run", flag, "3", "--out", str(tmp_path / "x")])
    assert f"{flag}: did you mean {want}?" in err
    assert "lnref's name for" in err


def test_unknown_flag_is_one_line_without_the_usage_block(capsys, tmp_path):
    err = _error(capsys, ["run", "--lr", "0.1", "--out", str(tmp_path / "x")])
    assert "usage:" not in err
    assert err.count("\n") == 1 and err.startswith("lnref run: error:") and "lnref run --help" in err


def test_toml_keys_get_the_same_suggestions(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("lr = 0.1\nepochs = 3\nchannels = 4\n")
    with pytest.raises(lnref.ConfigError) as exc:
        config_from_mapping(config_values_from_toml(cliargs.read_toml(toml), "c.toml"))
    msg = str(exc.value)
    assert "'lr' (did you mean 'eta'?)" in msg and "'epochs' (did you mean 'steps'?)" in msg
    assert "'channels' (did you mean 'm'?)" in msg


def test_output_scale_none_is_accepted():
    args = build_parser().parse_args(["run", "--output-scale", "None", "--out", "x"])
    assert config_from_args(args).output_scale is None
    args = build_parser().parse_args(["run", "--output-scale", "1", "--out", "x"])
    assert config_from_args(args).output_scale == 1.0


def test_none_overrides_a_toml_file(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("output_scale = 2.0\n")
    args = build_parser().parse_args(["run", "--config", str(toml), "--output-scale", "none", "--out", "x"])
    assert config_from_args(args).output_scale is None


def _help(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    return capsys.readouterr().out


def test_help_has_no_sphinx_markup_no_repeated_default_and_distinct_flip_rates(capsys):
    text = _help(capsys)
    assert not re.search(r":(func|mod|class|data|meth|attr):", text) and "``" not in text
    flat = " ".join(text.split())
    for block in re.split(r"\n  --", text)[1:]:
        assert len(re.findall(r"\bdefault\b", " ".join(block.split()), re.IGNORECASE)) <= 1, block
    plus = flat.split("--tau-plus FLOAT, --tau_plus FLOAT")[1].split("--tau-minus")[0]
    minus = flat.split("--tau-minus FLOAT, --tau_minus FLOAT")[1].split("--tau FLOAT")[0]
    assert plus != minus and "y = +1)" in plus and "y = -1)" in minus


def test_reproduce_prints_the_compile_notice(capsys, tmp_path, monkeypatch):
    import lnref.kernels.cache as cache
    import lnref.reproduce as rep

    monkeypatch.setattr(cache, "kernels_warm", lambda kind: False)
    monkeypatch.setattr(rep, "run_reproduction", lambda name, ctx: [])
    assert main(["reproduce", "--out", str(tmp_path / "r")]) == 0
    assert "compiling the coefficients engine's numba kernels" in capsys.readouterr().err


def test_eta_excludes_the_compile(monkeypatch):
    clock = iter(
        [
            0.0,  # Progress() created
            0.1,  # step 0 logged (nothing run yet)
            60.0,  # step 1: the first GD step compiled the kernels (60 s)
            60.01,  # step 2
            60.02,
        ]
    )  # step 3
    monkeypatch.setattr(cliargs.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    p = Progress("lnref run", every=0.0, after=0.0, stream=out)
    for step in range(4):
        p(step, 200)
    lines = out.getvalue().splitlines()
    assert "measuring" in lines[1]  # one timed step after the compile is not yet a rate
    left = [float(m) for m in re.findall(r"left ~(\d+)s", out.getvalue())]
    assert left and max(left) <= 3, lines  # 0.01 s per step x 197 steps, not 60 s x 197


# ------------------------------------------------------------------------------------------ item 6: API traps
def test_submodules_are_attributes_without_importing_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, lnref\n"
        "assert 'matplotlib' not in sys.modules and 'lnref.training.stages' not in sys.modules\n"
        "assert callable(lnref.training.stages.detect_stages) and callable(lnref.testing.load_fixture)\n"
        "assert callable(lnref.training.runs.load_run) and callable(lnref.plotting.plot_history)\n"
        "assert 'matplotlib' not in sys.modules\n"
        "assert {'training', 'testing', 'reproduce', 'kernels'} <= set(dir(lnref))\n"
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from lnref.stages import detect_stages  # the 0.1 name: still imports, with a warning\n"
        "    assert lnref.runs.load_run is lnref.training.runs.load_run\n"
        "assert detect_stages is lnref.training.stages.detect_stages\n"
        "assert [str(x.message).split(' moved')[0] for x in w] == ['lnref.stages', 'lnref.runs'], w\n"
        "# the module keeps its own spec, so its relative imports resolve in its new package (no ImportWarning)\n"
        "assert sys.modules['lnref.stages'].__spec__.name == 'lnref.training.stages'\n"
        "warnings.simplefilter('error', ImportWarning)\n"
        "exec('from . import state', dict(vars(sys.modules['lnref.stages'])))  # a relative import in its globals\n"
        "try:\n    lnref.no_such_thing\nexcept AttributeError as e:\n    print('ok', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ok module 'lnref' has no attribute 'no_such_thing'" in proc.stdout


def test_gradient_docs_say_compare_normwise():
    import numpy as np

    assert "normwise" in lnref.gradient.__doc__ and "assert_allclose" in lnref.gradient.__doc__
    readme = lnref.spec_path().parent.parent / "README.md"
    if readme.exists():  # a source checkout
        text = " ".join(readme.read_text().split())
        assert "normwise, `max|g - g_lnref| / max|g_lnref|`" in text
    # the documented comparison holds for independent float64 code (BLAS order of the sums)
    cfg = lnref.Config(n=20, d=60, m=4, tau=0.2)
    data, W = lnref.make_data(cfg), lnref.init_weights(cfg)
    g = lnref.gradient(W, data)
    X = np.stack([data.y[:, None] * data.mu[None], data.xi], 1)
    Z = X @ W.reshape(8, 60).T
    f = (np.maximum(Z, 0).sum(1)[:, :4].sum(1) - np.maximum(Z, 0).sum(1)[:, 4:].sum(1)) / 4
    lp = -1 / (1 + np.exp(data.y_obs * f))
    C = (lp * data.y_obs)[:, None, None] * (Z > 0) * np.r_[np.ones(4), -np.ones(4)] / (20 * 4)
    G = (C.reshape(40, 8).T @ X.reshape(40, 60)).reshape(2, 4, 60)
    assert np.abs(G - g).max() / np.abs(g).max() < 1e-14
