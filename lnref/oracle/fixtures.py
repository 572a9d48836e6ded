"""Fixtures: self-describing .npz files of an lnref trajectory that other implementations check themselves against.

A fixture holds the training data, the initial weights (and biases), the config and, at a few checkpoint steps,
the weights (and biases), the coefficients, the loss and the gradient, all computed by the weight engine (the
ground truth; bit-identical to :func:`lnref.train`).  The file format (``lnref export`` writes it,
:func:`load_fixture` reads it):

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
                                  label-noise loss with eps[t] for label-noise GD; with a training method (config
                                  ``loss`` != 'logistic', SPEC.md section 9) the method's loss of step t (ELR: with
                                  the targets after step t's update, if t is an update step)
``method_loss``   (K,) f8         config ``loss`` != 'logistic' only: the method's mean loss of step t at W(t),
                                  observed labels (as ``history["method_loss"]``; ELR: after step t's target
                                  update); ``loss``
                                  stays the plain logistic L(W(t)), so fixtures of different methods compare
``target``        (K, 2, n) f8    ``loss='elr'`` only: ELR's targets at each checkpoint BEFORE step t's update (row
                                  0: class +1, row 1: class -1; zeros at step 0; updated at t = 0, period, ...)
``spread``        (K, 3) f8       the trajectory's measured sensitivity: relative distance max|W' - W| / max|W| at
                                  each checkpoint of lnref's NumPy replay (float64), of a rerun from W0 perturbed
                                  by 4 ulps, and of a float32 replay (:mod:`lnref.oracle.tolerances`)
``eps``           (T + 1, n) f8   label-noise GD only: eps[t] (+-1) multiplies y_obs at step t -> t+1; row T is
                                  the draw the next step would use (it defines ``grad`` at t = T)
``b0``            (2, m) f8       bias=True only: initial biases b_{j,r}(0), laid out like W0 (SPEC.md section 7)
``b``             (K, 2, m) f8    bias=True only: the biases at each checkpoint
``grad_b``        (K, 2, m) f8    bias=True only: dL/db at each checkpoint (same objective as ``grad``)
``mask``          (T + 1, n) f8   selection algorithms only ('select_retrain', 'truncated_gce'; SPEC.md section 9):
                                  mask[t] (0/1) is the sample mask S of step t -> t+1 (a sample outside S gets the
                                  label multiplier 0; all ones before a selection); row T is the mask the next step
                                  would use (it defines ``grad`` at t = T)
``step_scale``    (T + 1,) f8     selection algorithms only: the step-size factor of step t -> t+1, n/|S| for a mean
                                  over |S| ('select_retrain' after its selection), else 1 ('truncated_gce', whose
                                  mean stays over n; an empty S); the step is W - eta step_scale[t] grad_n, grad_n
                                  the masked mean over n
``reset_step``    (1,) i8         'select_retrain' only: the step whose update starts from W0 (and b0) again
                                  (select_then='retrain': the selection step), -1 when there is none; W at that
                                  checkpoint is the state before the reset
================  ==============  ================================================================================

The network is the config's (SPEC.md section 7): ``bias``, ``patch_reduce`` and ``output_scale`` are config fields
(the papers' network: no bias, patch sum, output scale 1/m), and ``loss``, ``grad`` and ``grad_b`` are those of
that network (lnref.loss / lnref.gradients with b=, output_scale=, patch_reduce=).  A Conv1d-style model with
bias, PyTorch's initialisation, the mean over patches and summed filters is the config ``bias=True, init='torch',
patch_reduce='mean', output_scale=1``; ``init`` only decides how W0 and b0 were drawn.

The ``__meta__`` entry is JSON: ``kind`` = "lnref.fixture", ``fixture_schema``, the resolved ``config``, ``seed``,
``total_steps`` T, ``w0_edit`` (how W0 differs from ``init_weights(config)``, if it does), the package
``versions``, the dtype, shape and SHA-256 of every array (every array must be listed), and ``meta_sha256``, the
SHA-256 of the metadata itself (canonical JSON without that key), so an edited config or hash list is detected.
No pickles: ``np.load(path, allow_pickle=False)`` reads everything.  Only regular files are opened.

By default the export zeroes the signal coordinate of the last filter of each class in W0 (mu is along e_1): its
inner products with every signal patch are then exactly 0 and stay 0 under the exact dynamics, so an
implementation with sigma'(0) != 0 shows (SPEC.md section 2).  With biases the export also zeroes those filters'
b0, so their signal pre-activations are exactly 0 at step 0 (later the bias moves them off 0).

To replay label-noise GD elsewhere, use ``eps[t] * y_obs`` in place of ``y_obs`` at step t (the label-noise loss
l(eps_i y_obs_i f_i) is the plain loss with those labels).

To replay a selection algorithm elsewhere, train step t on the samples with ``mask[t] == 1`` only, with the mean
over |S| (``step_scale[t]`` = n/|S|) or over n (``step_scale[t]`` = 1): W(t+1) = W(t) - eta step_scale[t]
(1/n) sum_{i: mask[t, i] = 1} grad l_i; at ``reset_step`` the step starts from W0 (and b0).  ``grad`` at a
checkpoint is that step's gradient, step_scale[t] times the masked mean over n, at the state the step starts from
(W0 at ``reset_step``).  Co-teaching (two networks) is not exported yet.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import stat
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..data import Dataset, init_bias, init_weights, label_noise_signs, make_data, stream
from ..io import OutputError, atomic_write, versions
from ..model import check_weights, gradients, loss
from .replay import Problem, simulate
from .tolerances import PERTURBATION

__all__ = [
    "Fixture",
    "FixtureError",
    "make_fixture",
    "save_fixture",
    "load_fixture",
    "FIXTURE_KIND",
    "FIXTURE_SCHEMA",
    "READABLE_SCHEMAS",
    "parse_checkpoints",
    "measure_spread",
    "check_regular_file",
    "check_out_path",
    "bias_scale",
]

FIXTURE_KIND = "lnref.fixture"
FIXTURE_SCHEMA = 5
#: schemas this lnref reads: 5 (selection algorithms of SPEC.md section 9: arrays mask, step_scale, reset_step),
#: 4 (training methods of SPEC.md section 9: arrays method_loss, and target for ELR),
#: 3 (the conventions of SPEC.md section 7, arrays b0/b/grad_b with bias=True) and 2 (the
#: papers' network only; the same arrays otherwise)
READABLE_SCHEMAS = (2, 3, 4, 5)
#: the selection algorithms a fixture records (their masks); 'coteaching' (two networks) is not exported yet
FIXTURE_SELECTION = ("select_retrain", "truncated_gce")


_COTEACHING = (
    "algorithm='coteaching' is not allowed in a fixture yet: its two networks (W0_2, W_2 and both "
    "masks) are not recorded and the oracle judges one trajectory; export 'select_retrain' or "
    "'truncated_gce' (their masks are recorded), or 'gd' / 'label_noise_gd'"
)


class FixtureError(ConfigError):
    """A fixture (or a submission file) cannot be used: missing, not a regular file, damaged, edited, invalid."""


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
    spread : ndarray (K, 3) or None  measured sensitivity (see the module docstring); None: not measured
    meta : dict                      the JSON metadata (versions, schema, ...)
    b0 : ndarray (2, m) or None      initial biases (``config.bias`` only; None without biases)
    b : ndarray (K, 2, m) or None    biases at the checkpoints
    grad_b : ndarray (K, 2, m) or None  dL/db of the step objective at the checkpoints
    method_loss : ndarray (K,) or None  the method's mean loss (config loss != 'logistic' only)
    target : ndarray (K, 2, n) or None  ELR's targets before each checkpoint's update (loss='elr' only)
    mask : ndarray (T + 1, n) or None   selection algorithms: the 0/1 sample mask of every step
    step_scale : ndarray (T + 1,) or None  selection algorithms: the step-size factor of every step (n/|S| or 1)
    reset_step : int                 'select_retrain': the step that starts from W0 again (-1: none)
    """

    def __repr__(self) -> str:
        """A one-line summary (the arrays are large; ``fixture.arrays()`` lists them)."""
        cfg = self.config
        steps = ", ".join(str(int(s)) for s in self.steps[:6]) + (", ..." if len(self.steps) > 6 else "")
        extra = "".join(
            f", {k}={v}"
            for k, v in (("loss", repr(cfg.loss)), ("algorithm", repr(cfg.algorithm)))
            if not (k == "loss" and cfg.loss == "logistic") and not (k == "algorithm" and v == "'gd'")
        )
        return (
            f"<lnref Fixture n={cfg.n}, d={cfg.d}, m={cfg.m}, q={cfg.q:g}, {len(self.steps)} checkpoints at steps "
            f"[{steps}] of {self.total_steps}{extra}, bias={cfg.bias}>"
        )

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
    spread: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    b0: np.ndarray | None = None
    b: np.ndarray | None = None
    grad_b: np.ndarray | None = None
    method_loss: np.ndarray | None = None
    target: np.ndarray | None = None
    mask: np.ndarray | None = None
    step_scale: np.ndarray | None = None
    reset_step: int = -1

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

    @property
    def selection(self) -> bool:
        """True for a selection algorithm's fixture (arrays mask, step_scale; SPEC.md section 9)."""
        return self.mask is not None

    def mask_at(self, t: int) -> np.ndarray | None:
        """The 0/1 sample mask of step t -> t+1 (None without a selection algorithm)."""
        return None if self.mask is None else self.mask[t]

    def scale_at(self, t: int) -> float:
        """The step-size factor of step t -> t+1: n/|S| for a mean over |S|, else 1."""
        return 1.0 if self.step_scale is None else float(self.step_scale[t])

    def start(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(W, b) the step from checkpoint index ``k`` starts from: (W0, b0) at ``reset_step`` ('select_retrain'
        with select_then='retrain'), else the checkpoint's (W(t), b(t))."""
        if int(self.steps[k]) == self.reset_step:
            return self.W0, self.b0
        return self.W[k], None if self.b is None else self.b[k]

    def selection_kwargs(self, k: int) -> dict:
        """Keyword arguments a gradient or step function of a selection fixture receives at checkpoint index
        ``k``: ``mask`` (n,) 0/1 and ``scale`` (n/|S| or 1); empty for the other algorithms."""
        if self.mask is None:
            return {}
        t = int(self.steps[k])
        return {"mask": self.mask[t].copy(), "scale": self.scale_at(t)}

    @property
    def has_bias(self) -> bool:
        """True when the network has trained biases (``config.bias``; arrays b0, b, grad_b)."""
        return self.b0 is not None

    def conventions(self, k: int | None = None) -> dict:
        """Keyword arguments of :func:`lnref.loss` / :func:`lnref.gradients` for this fixture's network (SPEC.md
        section 7): ``output_scale``, ``patch_reduce`` and, with biases, ``b`` at checkpoint index ``k`` (b0 when
        ``k`` is None)."""
        kw = {"output_scale": self.config.output_scale, "patch_reduce": self.config.patch_reduce}
        if self.has_bias:
            kw["b"] = self.b0 if k is None else self.b[k]
        return kw

    def index(self, step: int) -> int:
        """Position of checkpoint ``step`` in :attr:`steps`."""
        hits = np.flatnonzero(self.steps == step)
        if hits.size == 0:
            raise ConfigError(
                f"step {step} is not a checkpoint of this fixture; its checkpoints are {self.steps.tolist()}"
            )
        return int(hits[0])

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "mu": self.data.mu,
            "xi": self.data.xi,
            "y": self.data.y,
            "y_obs": self.data.y_obs,
            "W0": self.W0,
            "steps": self.steps,
            "W": self.W,
            "gamma": self.gamma,
            "rho": self.rho,
            "loss": self.loss,
            "grad": self.grad,
        }
        if self.spread is not None:
            out["spread"] = self.spread
        if self.eps is not None:
            out["eps"] = self.eps
        if self.b0 is not None:
            out["b0"], out["b"], out["grad_b"] = self.b0, self.b, self.grad_b
        if self.method_loss is not None:
            out["method_loss"] = self.method_loss
        if self.target is not None:
            out["target"] = self.target
        if self.mask is not None:
            out["mask"], out["step_scale"] = self.mask, self.step_scale
        if self.config.algorithm == "select_retrain":
            out["reset_step"] = np.array([self.reset_step], dtype=np.int64)
        return out

    def method_kwargs(self, k: int) -> dict:
        """Keyword arguments of :func:`lnref.loss` / :func:`lnref.gradients` for the training method of checkpoint
        index ``k`` (SPEC.md section 9): ``loss``, ``loss_params`` and, for ELR, ``target`` (before step t's update)
        and ``target_update`` (t % period == 0); empty for the logistic loss."""
        cfg = self.config
        if cfg.loss == "logistic":
            return {}
        kw = {"loss": cfg.loss, "loss_params": dict(cfg.loss_params)}
        if cfg.loss == "elr":
            kw["target"] = self.target[k]
            kw["target_update"] = int(self.steps[k]) % int(cfg.loss_params["period"]) == 0
        return kw


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
        raise ConfigError(
            f"fixture array 'steps' must be a non-empty 1-D integer array, got {steps.dtype} shape {steps.shape}"
        )
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
        raise ConfigError(f"fixture has an 'eps' array but its config says algorithm={cfg.algorithm!r}")
    if cfg.algorithm == "coteaching":
        raise ConfigError(_COTEACHING)
    if cfg.algorithm in FIXTURE_SELECTION:
        if fx.mask is None or fx.step_scale is None:
            raise ConfigError(
                f"a fixture of algorithm={cfg.algorithm!r} needs the arrays 'mask' (T + 1, n) and 'step_scale' (T + 1,)"
            )
        mask = _f64("mask", fx.mask, (T + 1, n))
        if not np.all((mask == 0.0) | (mask == 1.0)):
            raise ConfigError("fixture array 'mask' must contain only 0 and 1")
        sc = _f64("step_scale", fx.step_scale, (T + 1,))
        if np.any(sc <= 0):
            raise ConfigError("fixture array 'step_scale' must be > 0")
        s(fx, "mask", mask)
        s(fx, "step_scale", sc)
        r = np.asarray(fx.reset_step).reshape(-1)
        if r.size != 1 or r.dtype.kind not in "iu" or not -1 <= int(r[0]) <= T:
            raise ConfigError(f"fixture 'reset_step' must be one integer in [-1, T={T}], got {fx.reset_step!r:.60}")
        r = int(r[0])
        if r >= 0 and not (cfg.algorithm == "select_retrain" and cfg.select_then == "retrain"):
            raise ConfigError(
                "fixture has a reset_step but its config is not select_retrain with select_then='retrain'"
            )
        s(fx, "reset_step", r)
    elif fx.mask is not None or fx.step_scale is not None or np.any(np.asarray(fx.reset_step) != -1):
        raise ConfigError(
            f"fixture has selection arrays (mask, step_scale, reset_step) but its config says "
            f"algorithm={cfg.algorithm!r}"
        )
    else:
        s(fx, "reset_step", -1)
    given = [k for k in ("b0", "b", "grad_b") if getattr(fx, k) is not None]
    if cfg.bias:
        if len(given) != 3:
            missing = [k for k in ("b0", "b", "grad_b") if k not in given]
            raise ConfigError(
                f"a fixture of a network with biases (config bias=True) needs the arrays b0 (2, m), "
                f"b (K, 2, m) and grad_b (K, 2, m); missing: {', '.join(missing)}"
            )
        s(fx, "b0", _f64("b0", fx.b0, (2, m)))
        s(fx, "b", _f64("b", fx.b, (K, 2, m)))
        s(fx, "grad_b", _f64("grad_b", fx.grad_b, (K, 2, m)))
    elif given:
        raise ConfigError(f"fixture has the bias array(s) {', '.join(given)} but its config says bias=False")
    if cfg.loss == "logistic":
        if fx.method_loss is not None or fx.target is not None:
            raise ConfigError("fixture has the method array(s) method_loss/target but its config says loss='logistic'")
    else:
        if fx.method_loss is None:
            raise ConfigError(f"a fixture of the training method loss={cfg.loss!r} needs the array 'method_loss' (K,)")
        s(fx, "method_loss", _f64("method_loss", fx.method_loss, (K,)))
    if cfg.loss == "elr":
        if fx.target is None:
            raise ConfigError(
                "an ELR fixture (config loss='elr') needs the array 'target' (K, 2, n): the targets "
                "before each checkpoint's update"
            )
        s(fx, "target", _f64("target", fx.target, (K, 2, n)))
    elif fx.target is not None:
        raise ConfigError(f"fixture has an ELR 'target' array but its config says loss={cfg.loss!r}")
    if fx.spread is not None:
        sp = _f64("spread", fx.spread, (K, 3))
        if np.any(sp < 0):
            raise ConfigError("fixture array 'spread' must be >= 0")
        s(fx, "spread", sp)


def parse_checkpoints(text: str | Iterable[int], steps: int) -> np.ndarray:
    """Checkpoint steps from "0,1,10,100" (or a sequence); ``steps`` (T) is always included.

    Raises ConfigError for non-integers, negatives or values above T.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(
                f"checkpoints={text!r} is not allowed: give comma-separated integers such as 0,1,10,100"
            ) from None
    else:
        vals = [int(v) for v in text]
    bad = [v for v in vals if v < 0 or v > steps]
    if bad:
        raise ConfigError(f"checkpoints {bad} are not allowed: every checkpoint must be in [0, steps={steps}]")
    return np.array(sorted(set(vals) | {steps}), dtype=np.int64)


def exercise_w0(W0: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, str | None]:
    """W0 with the signal coordinate of the last filter of each class zeroed (when mu lies along one axis).

    Every inner product of those filters with a signal patch y_i mu is then exactly 0, so sigma'(0) is exercised
    (SPEC.md section 2).  Returns (W0, description of the edit or None when mu is not axis-aligned).  With biases
    the caller also zeroes those filters' b0 (:func:`make_fixture`).
    """
    nz = np.flatnonzero(mu)
    if nz.size != 1:
        return W0, None
    W0 = W0.copy()
    W0[:, -1, nz[0]] = 0.0
    return W0, (
        f"W0[:, {W0.shape[1] - 1}, {int(nz[0])}] = 0: the last filter of each class is orthogonal to mu, "
        "so its signal inner products are exactly 0 (sigma'(0) is exercised)"
    )


def measure_spread(
    problem: Problem, steps: Sequence[int], reference: np.ndarray, reference_b: np.ndarray | None = None
) -> np.ndarray:
    """Relative distances (K, 3) to ``reference`` (K, 2, m, d) at ``steps``: NumPy float64 replay, rerun from W0
    perturbed by 4 ulps (relative), float32 replay (see :mod:`lnref.oracle.tolerances`).

    With biases (``reference_b`` (K, 2, m)) each entry is the larger of the W distance and the b distance
    (max|db| / the largest |b| over the checkpoints, the scale the comparisons use), so the bounds cover both.
    """
    steps = [int(t) for t in steps]
    rng = np.random.default_rng(12345)
    W0p = problem.W0 * (1.0 + PERTURBATION * rng.choice([-1.0, 1.0], problem.W0.shape))
    v = problem.base
    runs = (
        simulate(problem, steps, v, with_bias=True),
        simulate(problem, steps, v, W0=W0p, with_bias=True),
        simulate(problem, steps, v, dtype=np.float32, with_bias=True),
    )
    bscale = bias_scale(reference_b) if reference_b is not None else 1.0
    out = np.empty((len(steps), 3))

    def dist(a, ref, scale):
        diff = np.abs(a.astype(np.float64) - ref)
        return float(np.max(diff)) / scale if np.all(np.isfinite(diff)) else np.inf

    for k, t in enumerate(steps):
        scale = float(np.max(np.abs(reference[k]))) or 1.0
        for c, run in enumerate(runs):
            W, b = run[t]
            out[k, c] = dist(W, reference[k], scale)
            if reference_b is not None and b is not None:
                out[k, c] = max(out[k, c], dist(b, reference_b[k], bscale))
    return np.minimum(out, 1e300)


def bias_scale(b: np.ndarray, b0: np.ndarray | None = None) -> float:
    """The scale biases are compared at: the largest |b| over the checkpoints (and b0), or 1 when all are 0."""
    s = float(np.max(np.abs(b))) if np.size(b) else 0.0
    if b0 is not None:
        s = max(s, float(np.max(np.abs(b0))))
    return s or 1.0


def make_fixture(
    cfg: Config,
    checkpoints: Sequence[int] | str | None = None,
    *,
    data: Dataset | None = None,
    W0: np.ndarray | None = None,
    b0: np.ndarray | None = None,
    exercise: bool = False,
    measure: bool = True,
) -> Fixture:
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
    b0 : array (2, m), optional
        Initial biases (default ``init_bias(cfg)``); only with ``cfg.bias`` (SPEC.md section 7).
    exercise : bool
        Zero the signal coordinate of the last filter of each class in W0 (:func:`exercise_w0`; ``lnref export``
        does), so sigma'(0) is exercised; with biases those filters' b0 are zeroed too.
    measure : bool
        Measure the trajectory's sensitivity (:func:`measure_spread`) and store it as ``spread``.

    Returns
    -------
    Fixture

    Raises
    ------
    FloatingPointError
        When GD diverges before the last checkpoint.

    Notes
    -----
    GD and label-noise GD of SPEC.md section 3, coefficients of section 4 (the recursions, as in ``lnref.train``),
    for the network of the config's conventions (SPEC.md section 7: bias, patch_reduce, output_scale).  The
    label-noise signs come from stream 4 of the data contract, so the trajectory equals ``lnref.train(cfg)`` (with
    the same W0 and b0).
    """
    from ..engines import from_config
    from ..training import run_loop

    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg must be an lnref.Config, got {type(cfg).__name__}")
    if cfg.algorithm == "coteaching":
        raise ConfigError(_COTEACHING)
    if cfg.algorithm in FIXTURE_SELECTION and cfg.loss == "elr":
        raise ConfigError(
            f"algorithm={cfg.algorithm!r} with loss='elr' is not allowed in a fixture yet: ELR's "
            "targets under a sample mask are not replayed; export another loss with it, or ELR with "
            "algorithm 'gd' or 'label_noise_gd'"
        )
    # fixtures are explicit weight-engine runs; a virtual test set (Gram sampling's) does not apply to them
    cfg = cfg.replace(engine="weights", sampling="explicit", virtual_test="fixed")
    T = cfg.steps
    if checkpoints is None:
        checkpoints = [c for c in (0, 1) if c <= T]
    ck = parse_checkpoints(checkpoints, T)
    if data is None:
        data = make_data(cfg.replace(n_test=0))
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be an lnref.Dataset, got {type(data).__name__}")
    data.check_for(cfg)
    data = Dataset(data.mu, data.xi, data.y, data.y_obs)
    W0 = check_weights(init_weights(cfg) if W0 is None else W0, d=cfg.d, m=cfg.m, name="W0").copy()
    if b0 is not None and not cfg.bias:
        raise ConfigError("b0 was given but the config has bias=False: set bias=True to train biases, or leave b0 out")
    if cfg.bias:
        from ..engines.base import check_bias

        b0 = check_bias(init_bias(cfg) if b0 is None else b0, cfg.m).copy()
    edit = None
    if exercise:
        W0, edit = exercise_w0(W0, data.mu)
        if edit is not None and b0 is not None:
            b0[:, -1] = 0.0
            edit += f"; b0[:, {cfg.m - 1}] = 0, so those signal pre-activations are exactly 0 at step 0"
    eps = None
    lnoise = None
    if cfg.algorithm == "label_noise_gd":
        eps = label_noise_signs(stream(cfg.seed, "label_noise"), (T + 1, cfg.n), cfg.p)
        lnoise = stream(cfg.seed, "label_noise")  # the loop draws the same signs, chunk by chunk
    engine = from_config(cfg, data, W0, b0)
    algo = rec = None
    if cfg.algorithm in FIXTURE_SELECTION:
        algo, rec = _recording_algorithm(cfg, engine)
    K = ck.size
    Ws = np.empty((K, 2, cfg.m, cfg.d))
    grads = np.empty_like(Ws)
    bs = np.empty((K, 2, cfg.m)) if cfg.bias else None
    gbs = np.empty((K, 2, cfg.m)) if cfg.bias else None
    conv = {"output_scale": cfg.output_scale, "patch_reduce": cfg.patch_reduce}
    gammas = np.empty((K, 2, cfg.m))
    rhos = np.empty((K, 2, cfg.m, cfg.n))
    losses = np.empty(K)
    method = cfg.loss != "logistic"
    mlosses = np.empty(K) if method else None
    targets = np.empty((K, 2, cfg.n)) if cfg.loss == "elr" else None
    logged: list[int] = []

    def log_row(t: int, f: np.ndarray, final: bool) -> None:
        k = len(logged)
        if k >= K or t != int(ck[k]):
            return  # the step a diverged run stopped at (reported below)
        W = engine.weights().copy()
        b = engine.bias.copy() if cfg.bias else None
        Ws[k] = W
        gammas[k] = engine.gamma
        rhos[k] = engine.rho
        losses[k] = loss(W, data, cfg.q, b=b, **conv)
        mkw = {}
        if method:
            mkw = {"loss": cfg.loss, "loss_params": dict(cfg.loss_params)}
            if targets is not None:  # the state of step t: targets before its update (SPEC.md section 9)
                targets[k] = engine.target
                mkw.update(target=engine.target.copy(), target_update=t % int(cfg.loss_params["period"]) == 0)
            mlosses[k] = loss(W, data, cfg.q, b=b, **conv, **mkw)  # observed labels, as history["method_loss"]
        grads[k], gb = gradients(W, data, cfg.q, None if eps is None else eps[t], b=b, **conv, **mkw)
        if cfg.bias:
            bs[k], gbs[k] = b, gb
        logged.append(t)

    # the training loop of lnref.train (SPEC.md section 3), logging at the checkpoints
    t, _diverged, _ = run_loop(engine, cfg, ck, 0, data.y_obs, lnoise, log_row, algo=algo)
    if len(logged) < K:
        nxt = int(ck[len(logged)])
        raise FloatingPointError(
            f"GD diverged at step {t} before checkpoint {nxt}: the weights or outputs became "
            f"non-finite (try a smaller eta, now {cfg.eta})"
        )
    mask = scale = None
    reset = -1
    if rec is not None:
        mask, scale, reset = rec.finish(T)
        # each checkpoint's gradient is that of its step's objective: the masked mean over n times step_scale[t], at
        # the state the step starts from (W0 and b0 at the reset of select_then='retrain')
        for k, t_k in enumerate(ck):
            t_k = int(t_k)
            W = W0 if t_k == reset else Ws[k]
            b = (b0 if t_k == reset else bs[k]) if cfg.bias else None
            mkw = {"loss": cfg.loss, "loss_params": dict(cfg.loss_params)} if method else {}
            G, gb = gradients(W, data, cfg.q, None, b=b, **conv, **mkw, mask=mask[t_k])
            grads[k] = G * scale[t_k] if scale[t_k] != 1.0 else G
            if cfg.bias:
                gbs[k] = gb * scale[t_k] if scale[t_k] != 1.0 else gb
    meta = {
        "kind": FIXTURE_KIND,
        "fixture_schema": FIXTURE_SCHEMA,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "total_steps": T,
        "producer": "lnref weight engine",
        "w0_edit": edit,
    }
    spread = None
    if measure:
        from .replay import base_variant

        base = base_variant(cfg)
        P = Problem(data.mu, data.xi, data.y, data.y_obs, W0, cfg.q, cfg.eta, eps, b0, base, T, mask, scale, reset)
        spread = measure_spread(P, ck, Ws, bs)
    return Fixture(
        cfg,
        data,
        W0,
        ck,
        Ws,
        gammas,
        rhos,
        losses,
        grads,
        eps,
        spread,
        meta,
        b0,
        bs,
        gbs,
        mlosses,
        targets,
        mask,
        scale,
        reset,
    )


class _Recorder:
    """The mask, step-size factor and reset of every step a selection algorithm takes (wrapped around its hook,
    which keeps deciding everything: the fixture records, never recomputes, lnref's choices)."""

    def __init__(self, cfg: Config, algo) -> None:
        self.cfg, self.algo = cfg, algo
        self.mask = np.ones((cfg.steps + 1, cfg.n))
        self.scale = np.ones(cfg.steps + 1)
        self.reset = -1
        self.last: tuple[np.ndarray, float] | None = None

    def finish(self, T: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Fill row T with what the step from T would use (as the hook decides it at T) and return the arrays."""
        a, cfg = self.algo, self.cfg
        f = a.engine.forward()
        if cfg.algorithm == "truncated_gce":
            if a._due(T):
                a._prepare(T, f)
            if a.refreshed >= 0:
                self.mask[T] = a.mask
        else:
            if a.select_step < 0 and (cfg.select_at == "T1" or cfg.select_at == T):
                a._prepare(T, f)
            if a.select_step >= 0:
                self.mask[T] = a.mask
                size = int((a.mask > 0.0).sum())
                self.scale[T] = a.n / size if size > 0 else 1.0
                if cfg.select_then == "retrain" and not a.restarted:
                    self.reset = T
        return self.mask, self.scale, self.reset


def _recording_algorithm(cfg: Config, engine):
    """The selection hook of ``cfg`` around ``engine`` (as lnref.train makes it) and its :class:`_Recorder`."""
    from ..training.selection import make_algorithm

    algo = make_algorithm(cfg, engine)
    rec = _Recorder(cfg, algo)
    step_masked, advance = algo._step_masked, algo.advance

    def recorded_step_masked(k, mask, mean_over_selected, engine=None):
        size = int((mask > 0.0).sum())
        rec.last = (mask.copy(), algo.n / size if (mean_over_selected and size > 0) else 1.0)
        return step_masked(k, mask, mean_over_selected, engine)

    def recorded_advance(t, k):
        rec.last = None
        restarted = bool(getattr(algo, "restarted", False))
        tried, taken = advance(t, k)
        if rec.last is not None:
            rec.mask[t : t + tried], rec.scale[t : t + tried] = rec.last
        if not restarted and getattr(algo, "restarted", False):
            rec.reset = int(t)
        return tried, taken

    algo._step_masked, algo.advance = recorded_step_masked, recorded_advance
    return algo, rec


# ----------------------------------------------------------------------------------------------------- files
def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _meta_sha(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_out_path(path: str | os.PathLike, force: bool) -> Path:
    """Refuse an output file path that cannot be written, before any work: a folder, an existing file without
    ``force``, a missing or non-folder parent."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name such as {path / 'fixture.npz'}")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputError(f"{path} exists; choose another file or pass --force (force=True) to overwrite it")
        if not path.is_file():
            raise OutputError(f"{path} exists and is not a regular file; choose another file name")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a folder")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {parent} is not writable")
    return path


def save_fixture(fixture: Fixture, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``fixture`` to ``path`` (.npz) atomically; refuse an existing file unless ``force``."""
    path = check_out_path(path, force)
    arrays = {k: np.ascontiguousarray(v) for k, v in fixture.arrays().items()}
    meta = {
        "kind": FIXTURE_KIND,
        "fixture_schema": FIXTURE_SCHEMA,
        "config": fixture.config.to_dict(),
        "seed": fixture.config.seed,
        "total_steps": fixture.total_steps,
        "producer": fixture.meta.get("producer", "lnref weight engine"),
        "w0_edit": fixture.meta.get("w0_edit"),
        "versions": versions(),
        "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": _sha(v)} for k, v in arrays.items()},
    }
    meta["meta_sha256"] = _meta_sha(meta)
    buf = _io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


_REQUIRED = ("mu", "xi", "y", "y_obs", "W0", "steps", "W", "gamma", "rho", "loss", "grad", "spread")
_OPTIONAL = ("eps", "b0", "b", "grad_b", "method_loss", "target", "mask", "step_scale", "reset_step")


def check_regular_file(path: str | os.PathLike, what: str) -> Path:
    """Refuse a path that does not exist or is not a regular file (a FIFO, a device, a folder) before opening."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FixtureError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise FixtureError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        )
        raise FixtureError(f"{what} {path} is {kind}; give a .npz file")
    return path


def read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """All arrays of a .npz (no pickles), or FixtureError naming the file and the problem."""
    path = check_regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            if fh.read(6) == b"\x93NUMPY":  # a bare .npy: refused without reading its (claimed) array
                raise ValueError("it holds a single array (.npy), not a .npz archive")
            fh.seek(0)
            z = np.load(fh, allow_pickle=False)
            if not hasattr(z, "files"):
                raise ValueError("it holds a single array, not a .npz archive")
            with z:
                for k in z.files:
                    _check_member_size(z, k)
                return {k: z[k] for k in z.files}
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        UnicodeError,
        zipfile.LargeZipFile,
        RuntimeError,
        SyntaxError,
    ) as exc:
        raise FixtureError(
            f"{what} {path} is damaged or not a .npz of plain arrays ({type(exc).__name__}: {exc})"
        ) from None
    except MemoryError:
        raise FixtureError(f"{what} {path} is damaged or too large: its arrays do not fit in memory") from None


def _check_member_size(z, key: str) -> None:
    """Refuse an array whose header claims more data than its member of the archive holds (a damaged or forged
    header would otherwise make NumPy allocate that much: 10^12 elements claimed by a 300-byte file)."""
    name = key if key in z.zip.namelist() else f"{key}.npy"
    info = z.zip.getinfo(name)
    with z.zip.open(name) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        header = member.tell()
    need = math.prod(shape) * dtype.itemsize
    if need > info.file_size - header:
        raise ValueError(
            f"array {key!r} claims shape {tuple(shape)} of {dtype} ({need} bytes) but holds "
            f"{info.file_size - header} bytes"
        )


def load_fixture(path: str | os.PathLike) -> Fixture:
    """Read and validate a fixture written by ``lnref export`` / :func:`save_fixture`.

    Checked before anything is used: a regular file, a readable .npz without pickles, the metadata's own
    SHA-256, every array listed in the metadata with a matching SHA-256 (and no unlisted array), float64 arrays
    (complex, float16, ... refused), then shapes, labels and the config.

    Raises
    ------
    FixtureError (an lnref.ConfigError)
        The file is not a usable fixture (the message names the file and says what is wrong).
    """
    path = Path(path)
    arrays = read_npz(path, "fixture file")
    if "__meta__" not in arrays:
        raise FixtureError(f"{path} is not an lnref fixture (no metadata); write one with `lnref export`")
    try:
        raw = arrays.pop("__meta__")
        if raw.dtype.kind != "U" or raw.shape != ():
            raise ValueError("not a JSON string")
        meta = json.loads(str(raw))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (ValueError, TypeError) as exc:
        raise FixtureError(f"{path}: the fixture metadata is damaged ({exc})") from None
    if meta.get("kind") != FIXTURE_KIND:
        raise FixtureError(
            f"{path} is not an lnref fixture (metadata kind={meta.get('kind')!r}, expected "
            f"{FIXTURE_KIND!r}); write one with `lnref export`"
        )
    if meta.get("fixture_schema") not in READABLE_SCHEMAS:
        raise FixtureError(
            f"{path} has fixture_schema={meta.get('fixture_schema')!r}; this lnref reads schemas "
            f"{', '.join(map(str, READABLE_SCHEMAS))}: export the fixture again with this lnref"
        )
    if meta.get("meta_sha256") != _meta_sha(meta):
        raise FixtureError(
            f"{path}: the fixture metadata does not match its SHA-256 (config or hash list edited, "
            "or the file is damaged); export the fixture again"
        )
    listed = meta.get("arrays")
    if not isinstance(listed, dict):
        raise FixtureError(f"{path}: the fixture metadata lists no arrays")
    unlisted = sorted(set(arrays) - set(listed))
    if unlisted:
        raise FixtureError(
            f"{path}: array(s) {', '.join(map(repr, unlisted))} are not listed in the metadata's "
            "hash list (file edited)"
        )
    for k, info in listed.items():
        if k not in arrays:
            raise FixtureError(f"{path}: array {k!r} listed in the metadata is missing")
        a = arrays[k]
        want = "int64" if k in ("steps", "reset_step") else "float64"
        if a.dtype != np.dtype(want):
            raise FixtureError(f"{path}: fixture array {k!r} must be {want}, got {a.dtype}")
        if not isinstance(info, dict) or _sha(a) != info.get("sha256"):
            raise FixtureError(f"{path}: array {k!r} does not match its SHA-256 (file corrupted or edited)")
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise FixtureError(f"{path} lacks the fixture array(s) {', '.join(missing)}")
    try:
        cfg = Config.from_dict(meta["config"])
        data = Dataset(arrays["mu"], arrays["xi"], arrays["y"], arrays["y_obs"])
        if meta["fixture_schema"] < 3 and not cfg.paper_network:
            raise ConfigError("a schema-2 fixture can only hold the papers' network; export it again")
        if meta["fixture_schema"] < 4 and cfg.loss != "logistic":
            raise ConfigError(
                f"a schema-{meta['fixture_schema']} fixture can only hold the logistic loss; export it again"
            )
        if meta["fixture_schema"] < 5 and cfg.algorithm not in ("gd", "label_noise_gd"):
            raise ConfigError(
                f"a schema-{meta['fixture_schema']} fixture cannot hold algorithm={cfg.algorithm!r}; export it again"
            )
        reset = arrays.get("reset_step", -1)
        return Fixture(
            cfg,
            data,
            arrays["W0"],
            arrays["steps"],
            arrays["W"],
            arrays["gamma"],
            arrays["rho"],
            arrays["loss"],
            arrays["grad"],
            arrays.get("eps"),
            arrays["spread"],
            meta,
            arrays.get("b0"),
            arrays.get("b"),
            arrays.get("grad_b"),
            arrays.get("method_loss"),
            arrays.get("target"),
            arrays.get("mask"),
            arrays.get("step_scale"),
            reset,
        )
    except (ConfigError, KeyError, TypeError) as exc:
        raise FixtureError(f"{path}: invalid fixture: {exc}") from None
