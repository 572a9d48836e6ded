"""The training loop's state and options: what a checkpoint holds (``make_state``), how a run resumes from one
(``restore_state``, bit-identical to the uninterrupted run), and the checks of :func:`lnref.train`'s options,
which run before any work starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..data import TestSet


def make_state(t: int, li: int, cfg: Config, engine, hist: dict, trace: dict, lnoise, algo=None) -> dict:
    """Everything needed to continue a run from step t (see ``train(on_checkpoint=...)``)."""
    state = {
        "step": t,
        "rows": li,
        "config": cfg.to_dict(),
        "engine": cfg.engine,
        "gamma": engine.gamma,
        "rho": engine.rho,
        "bias": engine.bias,
        "target": engine.target,
        "history": {k: v[:li] for k, v in hist.items()},
        "trace": {k: v[:li] for k, v in trace.items()},
        "label_noise_state": None if lnoise is None else lnoise.bit_generator.state,
    }
    if cfg.engine == "weights":
        state["W"] = engine.weights()
    if algo is not None:
        state["selection"] = algo.state()
    return state


def check_state_arrays(state: Mapping[str, Any], shapes: Mapping[str, tuple]) -> None:
    """Refuse a checkpoint state whose arrays (gamma, rho, bias, W, ELR's target) do not have the shapes the run
    needs or are not finite (a run never checkpoints a non-finite state); ConfigError naming the array."""
    for key, shape in shapes.items():
        if key not in state:
            if key == "W":
                raise ConfigError("the checkpoint has no weights W (the weight engine needs them)")
            continue
        a = np.asarray(state[key])
        if a.shape != tuple(shape):
            raise ConfigError(f"the checkpoint's {key} has shape {a.shape}; this run needs {tuple(shape)}")
        if a.dtype.kind not in "fiu" or not np.isfinite(a).all():
            raise ConfigError(
                f"the checkpoint's {key} holds non-finite values (NaN or inf); a run only checkpoints a finite state"
            )


def restore_state(
    state: Mapping[str, Any], cfg: Config, engine, hist: dict, trace: dict, lnoise, algo=None
) -> tuple[int, int]:
    """Load a checkpoint state into a freshly built engine and the history buffers; returns (step, rows)."""
    if Config.from_dict(state["config"]) != cfg:
        raise ConfigError("the checkpoint was made with a different config; resume with the config it holds")
    t, li = int(state["step"]), int(state["rows"])
    if not 0 <= t <= cfg.steps or li > len(hist["step"]):
        raise ConfigError(f"checkpoint step {t} / rows {li} do not fit a run of {cfg.steps} steps")
    if cfg.loss == "elr" and state.get("target") is None:
        raise ConfigError("the checkpoint holds no ELR targets; it was not made by an ELR run")
    want = {"gamma": engine.gamma.shape, "rho": engine.rho.shape, "bias": engine.bias.shape}
    if cfg.engine == "weights":
        want["W"] = engine.weights().shape
    if cfg.loss == "elr":
        want["target"] = engine.target.shape
    check_state_arrays(state, want)
    engine.load_state(
        state["gamma"],
        state["rho"],
        state.get("bias", engine.bias.copy()),
        state.get("W") if cfg.engine == "weights" else None,
        step=t,
        target=state.get("target"),
    )
    for k in hist:
        if k not in state["history"]:
            raise ConfigError(f"the checkpoint has no history column {k!r}; it was made with other test sets")
        hist[k][:li] = state["history"][k]
    for k in trace:
        if k in state["trace"]:
            trace[k][:li] = state["trace"][k]
    if lnoise is not None:
        lnoise.bit_generator.state = state["label_noise_state"]
    if algo is not None:
        algo.restore(state.get("selection"))
    return t, li


# the scalar entries of a checkpoint state (the arrays are gamma, rho, bias, W, target, history, trace)
STATE_KEYS = ("step", "rows", "config", "engine", "label_noise_state")


def check_train_options(
    resume: Any = None,
    checkpoint_every: Any = 0,
    on_checkpoint: Any = None,
    progress: Any = None,
    keep_rho: Any = True,
    extra_tests: Any = None,
) -> None:
    """Check the keyword options of :func:`lnref.train` before any work (clear ConfigErrors, no bare TypeErrors).

    Parameters
    ----------
    resume : mapping or None
        A state from ``train(on_checkpoint=...)`` or :func:`load_checkpoint`: needs ``step``, ``rows``, ``config``,
        ``engine``, ``gamma``, ``rho``, ``history``, ``trace`` and ``label_noise_state``.
    checkpoint_every : int >= 0
    on_checkpoint, progress : callable or None
    keep_rho : bool
    extra_tests : mapping name -> lnref.TestSet, or None

    Raises
    ------
    ConfigError
        Naming the option, the value given and what is allowed.
    """
    if resume is not None:
        if not isinstance(resume, Mapping):
            raise ConfigError(
                f"resume={short_repr(resume)} is not allowed: give None or the state dict that "
                "on_checkpoint received (or lnref.training.runs.load_checkpoint(path))"
            )
        need = (*STATE_KEYS, "gamma", "rho", "history", "trace")
        missing = [k for k in need if k not in resume]
        if missing:
            raise ConfigError(
                f"resume lacks {', '.join(map(repr, missing))}: give the state dict that on_checkpoint "
                "received (or lnref.training.runs.load_checkpoint(path)), not a dict of your own"
            )
        for key in ("step", "rows"):
            v = resume[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"resume[{key!r}]={short_repr(v)} is not allowed: a step count, an integer >= 0")
        if not isinstance(resume["config"], Mapping):
            raise ConfigError(
                f"resume['config'] must be a dict of Config fields, got {type(resume['config']).__name__}"
            )
        for key in ("gamma", "rho"):
            if not isinstance(resume[key], np.ndarray) or resume[key].dtype != np.float64:
                raise ConfigError(f"resume[{key!r}] must be a float64 array, got {short_repr(resume[key])}")
        for key in ("history", "trace"):
            table = resume[key]
            if not isinstance(table, Mapping) or not all(isinstance(v, np.ndarray) for v in table.values()):
                raise ConfigError(f"resume[{key!r}] must be a dict of arrays, got {short_repr(table)}")
        if resume["label_noise_state"] is not None and not isinstance(resume["label_noise_state"], Mapping):
            raise ConfigError("resume['label_noise_state'] must be None or a NumPy bit-generator state dict")
    if (
        isinstance(checkpoint_every, bool)
        or not isinstance(checkpoint_every, (int, np.integer))
        or checkpoint_every < 0
    ):
        raise ConfigError(f"checkpoint_every={checkpoint_every!r} is not allowed: use an integer >= 0 (0: never)")
    for name, fn in (("on_checkpoint", on_checkpoint), ("progress", progress)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"{name}={short_repr(fn)} is not allowed: give a function or None")
    if checkpoint_every > 0 and on_checkpoint is None:
        raise ConfigError(
            f"checkpoint_every={int(checkpoint_every)} needs on_checkpoint= (a function receiving "
            "each state, e.g. lambda s: lnref.training.runs.save_checkpoint(path, s))"
        )
    if not isinstance(keep_rho, (bool, np.bool_)):
        raise ConfigError(f"keep_rho={short_repr(keep_rho)} is not allowed: use True or False")
    if extra_tests is not None:
        if not isinstance(extra_tests, Mapping):
            raise ConfigError(
                f"extra_tests={short_repr(extra_tests)} is not allowed: give a dict name -> lnref.TestSet"
            )
        for name, t in extra_tests.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(
                    f"extra_tests name {name!r} is not allowed: use a Python identifier "
                    "(it becomes the history column test_acc_<name>)"
                )
            if not isinstance(t, TestSet):
                raise ConfigError(f"extra_tests[{name!r}] must be an lnref.TestSet, got {type(t).__name__}")


def short_repr(v: Any) -> str:
    """repr(v), or <type> when that is longer than 60 characters (error messages)."""
    text = repr(v)
    return text if len(text) <= 60 else f"<{type(v).__name__}>"
