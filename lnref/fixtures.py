"""Fixtures: self-describing .npz files of an lnref trajectory that other implementations check themselves against.

A fixture holds the training data, the initial weights, the config and, at a few checkpoint steps, the weights,
the coefficients, the loss and the gradient, all computed by the weight engine (the ground truth; bit-identical
to :func:`lnref.train`).  The file format (``lnref export`` writes it, :func:`load_fixture` reads it):

================  ==============  ================================================================================
array             shape, dtype    meaning
================  ==============  ================================================================================
``mu``            (d,) f8         signal vector
``xi``            (n, d) f8       noise patches
``y``             (n,) f8         true labels (+-1); the signal patch of sample i is y_i * mu
``y_obs``         (n,) f8         observed labels (+-1), the labels the loss uses
``W0``            (2, m, d) f8    initial weights; index 0 holds j = +1
``steps``         (K,) i8         checkpoint steps, increasing, the first may be 0
``W``             (K, 2, m, d)    W(t) at each checkpoint
``gamma``         (K, 2, m)       signal coefficients gamma_{j,r}(t) (SPEC.md section 4)
``rho``           (K, 2, m, n)    noise coefficients rho_{j,r,i}(t)
``loss``          (K,) f8         L(W(t)) = (1/n) sum_i l(y_obs_i f(W(t), x_i)) (observed labels, no eps)
``grad``          (K, 2, m, d)    gradient of the objective of step t -> t+1 at W(t): grad L for plain GD, the
                                  label-noise loss with eps[t] for label-noise GD
``eps``           (T + 1, n) f8   label-noise GD only: eps[t] (+-1) multiplies y_obs at step t -> t+1; row T is
                                  the draw the next step would use (it defines ``grad`` at t = T)
================  ==============  ================================================================================

The ``__meta__`` entry is JSON: ``kind`` = "lnref.fixture", ``fixture_schema``, the resolved ``config``, ``seed``,
``total_steps`` T, the package ``versions`` and the dtype, shape and SHA-256 of every array.
No pickles: ``np.load(path, allow_pickle=False)`` reads everything.

To replay label-noise GD elsewhere, use ``eps[t] * y_obs`` in place of ``y_obs`` at step t (the label-noise loss
l(eps_i y_obs_i f_i) is the plain loss with those labels).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .config import Config, ConfigError
from .data import Dataset, init_weights, label_noise_signs, make_data, stream
from .io import OutputError, load_npz, save_npz
from .model import check_weights, gradient, loss

__all__ = ["Fixture", "make_fixture", "save_fixture", "load_fixture", "FIXTURE_KIND", "FIXTURE_SCHEMA",
           "parse_checkpoints"]

FIXTURE_KIND = "lnref.fixture"
FIXTURE_SCHEMA = 1


@dataclass(frozen=True, eq=False)
class Fixture:
    """An lnref trajectory at a few checkpoints (see the module docstring for every array).

    Attributes
    ----------
    config : Config                  the run (engine 'weights', explicit sampling)
    data : Dataset                   mu (d,), xi (n, d), y (n,), y_obs (n,), no test set
    W0 : ndarray (2, m, d) float64
    steps : ndarray (K,) int64       checkpoint steps, strictly increasing
    W : ndarray (K, 2, m, d)         weights at the checkpoints
    gamma : ndarray (K, 2, m)        signal coefficients at the checkpoints
    rho : ndarray (K, 2, m, n)       noise coefficients at the checkpoints
    loss : ndarray (K,)              training loss at the checkpoints (observed labels)
    grad : ndarray (K, 2, m, d)      gradient of the step objective at the checkpoints
    eps : ndarray (T + 1, n) or None label-noise GD signs (None for plain GD)
    meta : dict                      the JSON metadata (versions, schema, ...)
    """

    config: Config
    data: Dataset
    W0: np.ndarray
    steps: np.ndarray
    W: np.ndarray
    gamma: np.ndarray
    rho: np.ndarray
    loss: np.ndarray
    grad: np.ndarray
    eps: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def total_steps(self) -> int:
        """T, the last checkpoint step."""
        return int(self.steps[-1])

    @property
    def n(self) -> int:
        return self.data.n

    @property
    def m(self) -> int:
        return self.W0.shape[1]

    @property
    def d(self) -> int:
        return self.data.d

    def mult(self, t: int) -> np.ndarray:
        """Labels of step t -> t+1: ``y_obs`` (plain GD) or ``eps[t] * y_obs`` (label-noise GD), shape (n,)."""
        if self.eps is None:
            return self.data.y_obs
        return self.eps[t] * self.data.y_obs

    def eps_at(self, t: int) -> np.ndarray | None:
        return None if self.eps is None else self.eps[t]

    def index(self, step: int) -> int:
        """Position of checkpoint ``step`` in :attr:`steps`."""
        hits = np.flatnonzero(self.steps == step)
        if hits.size == 0:
            raise ConfigError(f"step {step} is not a checkpoint of this fixture; its checkpoints are "
                              f"{self.steps.tolist()}")
        return int(hits[0])

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"mu": self.data.mu, "xi": self.data.xi, "y": self.data.y, "y_obs": self.data.y_obs,
               "W0": self.W0, "steps": self.steps, "W": self.W, "gamma": self.gamma, "rho": self.rho,
               "loss": self.loss, "grad": self.grad}
        if self.eps is not None:
            out["eps"] = self.eps
        return out


def _f64(name: str, a: Any, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.float64:
        raise ConfigError(f"fixture array {name!r} must be float64, got {a.dtype}")
    if a.shape != shape:
        raise ConfigError(f"fixture array {name!r} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"fixture array {name!r} contains NaN or infinite values")
    return np.ascontiguousarray(a)


def _validate(fx: Fixture) -> None:
    if not isinstance(fx.config, Config):
        raise ConfigError(f"fixture config must be an lnref.Config, got {type(fx.config).__name__}")
    if not isinstance(fx.data, Dataset):
        raise ConfigError(f"fixture data must be an lnref.Dataset, got {type(fx.data).__name__}")
    cfg, n, d = fx.config, fx.data.n, fx.data.d
    fx.data.check_for(cfg)
    m = cfg.m
    steps = np.asarray(fx.steps)
    if steps.ndim != 1 or steps.size == 0 or steps.dtype.kind not in "iu":
        raise ConfigError(f"fixture array 'steps' must be a non-empty 1-D integer array, got {steps.dtype} "
                          f"shape {steps.shape}")
    if steps[0] < 0 or np.any(np.diff(steps) <= 0):
        raise ConfigError(f"fixture steps must be >= 0 and strictly increasing, got {steps.tolist()}")
    K = steps.size
    s = object.__setattr__
    s(fx, "steps", steps.astype(np.int64))
    s(fx, "W0", _f64("W0", fx.W0, (2, m, d)))
    s(fx, "W", _f64("W", fx.W, (K, 2, m, d)))
    s(fx, "gamma", _f64("gamma", fx.gamma, (K, 2, m)))
    s(fx, "rho", _f64("rho", fx.rho, (K, 2, m, n)))
    s(fx, "loss", _f64("loss", fx.loss, (K,)))
    s(fx, "grad", _f64("grad", fx.grad, (K, 2, m, d)))
    T = int(steps[-1])
    if cfg.algorithm == "label_noise_gd":
        if fx.eps is None:
            raise ConfigError("a label-noise GD fixture needs the array 'eps' of shape (T + 1, n)")
        eps = _f64("eps", fx.eps, (T + 1, n))
        if not np.all((eps == 1.0) | (eps == -1.0)):
            raise ConfigError("fixture array 'eps' must contain only +1 and -1")
        s(fx, "eps", eps)
    elif fx.eps is not None:
        raise ConfigError("fixture has an 'eps' array but its config says algorithm='gd'")


def parse_checkpoints(text: str | Iterable[int], steps: int) -> np.ndarray:
    """Checkpoint steps from "0,1,10,100" (or a sequence); ``steps`` (T) is always included.

    Raises ConfigError for non-integers, negatives or values above T.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"checkpoints={text!r} is not allowed: give comma-separated integers such as "
                              "0,1,10,100") from None
    else:
        vals = [int(v) for v in text]
    bad = [v for v in vals if v < 0 or v > steps]
    if bad:
        raise ConfigError(f"checkpoints {bad} are not allowed: every checkpoint must be in [0, steps={steps}]")
    return np.array(sorted(set(vals) | {steps}), dtype=np.int64)


def make_fixture(cfg: Config, checkpoints: Sequence[int] | str | None = None, *, data: Dataset | None = None,
                 W0: np.ndarray | None = None) -> Fixture:
    """Run GD with the weight engine for ``cfg.steps`` steps and record the checkpoints.

    Parameters
    ----------
    cfg : Config
        The run; the fixture always uses the weight engine with explicit data.
    checkpoints : sequence of int or "0,1,10", optional
        Steps to record (``cfg.steps`` is always added); default 0, 1 and ``cfg.steps``.
    data : Dataset, optional
        Training data (default ``make_data(cfg)``, without its test set).
    W0 : array (2, m, d), optional
        Initial weights (default ``init_weights(cfg)``).

    Returns
    -------
    Fixture

    Raises
    ------
    FloatingPointError
        When GD diverges before the last checkpoint.

    Notes
    -----
    GD and label-noise GD of SPEC.md section 3, coefficients of section 4 (the recursions, as in ``lnref.train``).
    The label-noise signs come from stream 4 of the data contract, so the trajectory equals ``lnref.train(cfg)``.
    """
    from .engines import from_config

    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg must be an lnref.Config, got {type(cfg).__name__}")
    cfg = cfg.replace(engine="weights", sampling="explicit")
    T = cfg.steps
    if checkpoints is None:
        checkpoints = [c for c in (0, 1) if c <= T]
    ck = parse_checkpoints(checkpoints, T)
    if data is None:
        data = make_data(cfg.replace(n_test=0))
    if isinstance(data, Dataset):
        data = Dataset(data.mu, data.xi, data.y, data.y_obs)
    engine = from_config(cfg, data, W0)  # validates data and W0
    data = engine.data
    W0 = engine.weights().copy()
    eps = None
    if cfg.algorithm == "label_noise_gd":
        eps = label_noise_signs(stream(cfg.seed, "label_noise"), (T + 1, cfg.n), cfg.p)
    K = ck.size
    Ws = np.empty((K, 2, cfg.m, cfg.d))
    grads = np.empty_like(Ws)
    gammas = np.empty((K, 2, cfg.m))
    rhos = np.empty((K, 2, cfg.m, cfg.n))
    losses = np.empty(K)
    t = 0
    for k, target in enumerate(ck):
        target = int(target)
        if target > t:
            mults = None if eps is None else eps[t:target] * data.y_obs
            done = engine.advance(target - t, mults)
            if done < target - t:
                raise FloatingPointError(f"GD diverged at step {t + done} before checkpoint {target}: the weights "
                                         f"became non-finite (try a smaller eta, now {cfg.eta})")
            t = target
        W = engine.weights().copy()
        Ws[k] = W
        gammas[k] = engine.gamma
        rhos[k] = engine.rho
        e = None if eps is None else eps[t]
        losses[k] = loss(W, data, cfg.q)
        grads[k] = gradient(W, data, cfg.q, e)
    meta = {"kind": FIXTURE_KIND, "fixture_schema": FIXTURE_SCHEMA, "config": cfg.to_dict(), "seed": cfg.seed,
            "total_steps": T, "producer": "lnref weight engine"}
    return Fixture(cfg, data, W0, ck, Ws, gammas, rhos, losses, grads, eps, meta)


def save_fixture(fixture: Fixture, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``fixture`` to ``path`` (.npz) atomically; refuse an existing file unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputError(f"{path} exists; choose another file or pass --force (force=True) to overwrite it")
    if path.exists() and path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name such as fixture.npz")
    meta = {"kind": FIXTURE_KIND, "fixture_schema": FIXTURE_SCHEMA, "config": fixture.config.to_dict(),
            "seed": fixture.config.seed, "total_steps": fixture.total_steps,
            "producer": fixture.meta.get("producer", "lnref weight engine")}
    save_npz(path, fixture.arrays(), meta=meta)
    return path


_REQUIRED = ("mu", "xi", "y", "y_obs", "W0", "steps", "W", "gamma", "rho", "loss", "grad")


def load_fixture(path: str | os.PathLike) -> Fixture:
    """Read and validate a fixture written by ``lnref export`` / :func:`save_fixture`.

    Every array's SHA-256 is checked; shapes, dtypes, labels and the config are validated.

    Raises
    ------
    ConfigError
        The file is not a valid fixture (the message says what is wrong).
    OutputError
        An array does not match its SHA-256.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"fixture file {path} does not exist")
    try:
        arrays, meta = load_npz(path)
    except OutputError:
        raise
    except Exception as exc:  # not an npz, or a pickle inside
        raise ConfigError(f"{path} is not a readable .npz fixture: {exc}") from None
    if meta.get("kind") != FIXTURE_KIND:
        raise ConfigError(f"{path} is not an lnref fixture (metadata kind={meta.get('kind')!r}, expected "
                          f"{FIXTURE_KIND!r}); write one with `lnref export`")
    if meta.get("fixture_schema") != FIXTURE_SCHEMA:
        raise ConfigError(f"{path} has fixture_schema={meta.get('fixture_schema')!r}; this lnref reads schema "
                          f"{FIXTURE_SCHEMA}")
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise ConfigError(f"{path} lacks the fixture array(s) {', '.join(missing)}")
    cfg = Config.from_dict(meta["config"])
    data = Dataset(arrays["mu"], arrays["xi"], arrays["y"], arrays["y_obs"])
    return Fixture(cfg, data, arrays["W0"], arrays["steps"], arrays["W"], arrays["gamma"], arrays["rho"],
                   arrays["loss"], arrays["grad"], arrays.get("eps"), meta)
