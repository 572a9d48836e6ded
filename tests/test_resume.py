"""Checkpoints and resume: an interrupted run continued from its last checkpoint equals the uninterrupted run."""

import json

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.training.runs import CHECKPOINT, load_checkpoint, load_run, save_checkpoint


class Interrupt(Exception):
    pass


def _interrupted_state(cfg, after: int, every: int):
    """Run until the ``after``-th checkpoint, then stop (as a kill would); return that checkpoint's state."""
    seen = []

    def keep(state):
        seen.append({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()})
        if len(seen) == after:
            raise Interrupt

    with pytest.raises(Interrupt):
        lnref.train(cfg, threads=1, checkpoint_every=every, on_checkpoint=keep)
    return seen[-1]


@pytest.mark.parametrize(
    "engine,algorithm", [("weights", "gd"), ("weights", "label_noise_gd"), ("coefficients", "label_noise_gd")]
)
def test_resumed_run_is_bit_identical(tmp_path, engine, algorithm):
    cfg = lnref.Config(
        n=12, d=40, m=3, steps=60, log_every=5, n_test=50, tau=0.2, engine=engine, algorithm=algorithm, seed=3
    )
    full = lnref.train(cfg, threads=1)
    state = _interrupted_state(cfg, after=2, every=20)
    assert 0 < state["step"] < cfg.steps
    save_checkpoint(tmp_path / "c.npz", state)  # through the file format, as the CLI does
    resumed = lnref.train(cfg, threads=1, resume=load_checkpoint(tmp_path / "c.npz"))
    np.testing.assert_array_equal(resumed.gamma, full.gamma)
    np.testing.assert_array_equal(resumed.rho, full.rho)
    if engine == "weights":
        np.testing.assert_array_equal(resumed.W, full.W)
    assert resumed.history.keys() == full.history.keys()
    for k in full.history:
        np.testing.assert_array_equal(resumed.history[k], full.history[k], err_msg=k)
    for k in full.trace:
        np.testing.assert_array_equal(resumed.trace[k], full.trace[k], err_msg=k)


def test_resume_refuses_another_config():
    cfg = lnref.Config(n=8, d=20, m=2, steps=30, log_every=5, n_test=0)
    state = _interrupted_state(cfg, after=1, every=10)
    with pytest.raises(lnref.ConfigError, match="different config"):
        lnref.train(cfg.replace(eta=0.1), resume=state)


def test_cli_checkpoint_and_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = [
        "run",
        "--n",
        "10",
        "--d",
        "30",
        "--m",
        "2",
        "--steps",
        "50",
        "--log-every",
        "5",
        "--n-test",
        "20",
        "--quiet",
        "--threads",
        "1",
    ]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0

    import lnref.training.runs as runs

    calls = []

    def save_then_die(path, state):
        save_checkpoint(path, state)
        calls.append(state["step"])
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_checkpoint", save_then_die)
    assert main([*args, "--out", str(out), "--checkpoint-every", "10"]) == 130
    monkeypatch.undo()
    assert (out / CHECKPOINT).exists() and (out / "config.json").exists()
    assert not (out / "metrics.csv").exists()  # nothing half-written: the run's files come at the end
    assert load_checkpoint(out / CHECKPOINT)["step"] == calls[-1]

    assert main(["run", "--out", str(out), "--resume", "--n", "11"]) == 2  # config flags refused with --resume
    assert "--resume takes the config" in capsys.readouterr().err
    assert main(["run", "--out", str(out), "--resume", "--quiet", "--threads", "1"]) == 0
    assert not (out / CHECKPOINT).exists()
    assert json.loads((out / "meta.json").read_text())["resumed_from_step"] == calls[-1]
    assert (out / "metrics.csv").read_text() == (tmp_path / "full" / "metrics.csv").read_text()
    _, a = load_run(out)
    _, b = load_run(tmp_path / "full")
    for k in ("W", "gamma", "rho", "trace_rho", "trace_margin"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert main(["run", "--out", str(out), "--resume"]) == 2  # nothing left to resume


# --------------------------------------------------------------------------------- issue 14
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(resume={}), "resume lacks 'step'"),
        (dict(resume=5), "resume=5 is not allowed"),
        (dict(checkpoint_every="10", on_checkpoint=print), "checkpoint_every='10' is not allowed"),
        (dict(checkpoint_every=-1), "checkpoint_every=-1"),
        (dict(checkpoint_every=True), "checkpoint_every=True"),
        (dict(checkpoint_every=10), "needs on_checkpoint"),
        (dict(progress=5), "progress=5 is not allowed"),
        (dict(on_checkpoint="save"), "on_checkpoint='save' is not allowed"),
        (dict(keep_rho="yes"), "keep_rho='yes'"),
        (dict(extra_tests=[1]), r"extra_tests=\[1\] is not allowed"),
        (dict(extra_tests={"a b": None}), "use a Python identifier"),
        (dict(extra_tests={"ood": 3}), r"extra_tests\['ood'\] must be an lnref.TestSet"),
    ],
)
def test_check_train_options_refuses_api_misuse(kwargs, match):
    from lnref.training.runs import check_train_options

    with pytest.raises(lnref.ConfigError, match=match):
        check_train_options(**kwargs)


def test_check_train_options_accepts_real_states():
    from lnref.training.runs import check_train_options

    cfg = lnref.Config(n=8, d=20, m=2, steps=30, log_every=5, n_test=0, algorithm="label_noise_gd")
    state = _interrupted_state(cfg, after=1, every=10)
    check_train_options(
        resume=state,
        checkpoint_every=10,
        on_checkpoint=print,
        progress=None,
        keep_rho=False,
        extra_tests={"iid": lnref.make_test(cfg, lnref.make_data(cfg), n_test=5)},
    )
    # a damaged state inside a checkpoint file is refused as the file's problem
    bad = dict(state, step=-3)
    with pytest.raises(lnref.ConfigError, match=r"resume\['step'\]=-3"):
        check_train_options(resume=bad)


def test_loaders_refuse_fifos_without_blocking(tmp_path):
    import os

    from lnref.io import InputError

    fifo = tmp_path / "checkpoint.npz"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        load_checkpoint(fifo)
    with pytest.raises(InputError, match="FIFO"):
        lnref.Dataset.load(fifo)
    with pytest.raises(InputError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_cli_resume_refuses_a_fifo_checkpoint_and_an_incomplete_folder_is_no_result(tmp_path, capsys):
    """Regression (issue 14): a FIFO named checkpoint.npz hung `lnref run --resume` forever."""
    import os

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(lnref.Config(n=8, d=16, m=2, steps=5, n_test=0).to_dict()))
    os.mkfifo(out / CHECKPOINT)
    assert main(["run", "--out", str(out), "--resume", "--quiet"]) == 2
    assert "FIFO" in capsys.readouterr().err
    with pytest.raises(lnref.ConfigError, match="not a complete run folder"):
        load_run(out)


def test_interrupted_run_is_incomplete_until_resumed(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = [
        "run",
        "--n",
        "8",
        "--d",
        "16",
        "--m",
        "2",
        "--steps",
        "40",
        "--log-every",
        "5",
        "--n-test",
        "4",
        "--quiet",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    import lnref.training.runs as runs

    real = runs.save_checkpoint

    def save_then_die(path, state):
        real(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_checkpoint", save_then_die)
    assert main([*args, "--checkpoint-every", "10"]) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert runs.run_status(out) == "resumable"
    with pytest.raises(lnref.ConfigError, match="interrupted"):
        load_run(out)
    assert main(args) == 2  # a fresh run into it is refused, pointing at --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["run", "--out", str(out), "--resume", "--quiet", "--force"]) == 2
    assert main(["run", "--out", str(out), "--resume", "--quiet", "--threads", "1"]) == 0
    assert runs.run_status(out) == "complete"
    load_run(out)
    assert main(["run", "--out", str(out), "--resume"]) == 2
    assert "complete" in capsys.readouterr().err
