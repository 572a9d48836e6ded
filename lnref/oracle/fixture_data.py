"""The fixture record: :class:`Fixture` (every array of a fixture, validated on construction) and
:class:`FixtureError`.

The arrays and their meaning are listed in :mod:`lnref.oracle.fixture_file` (the file format); how a fixture is
made from a run is :mod:`lnref.oracle.fixtures` (:func:`~lnref.oracle.fixtures.make_fixture`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..data import Dataset

__all__ = [
    "Fixture",
    "FixtureError",
    "FIXTURE_SELECTION",
    "SECOND_NETWORK",
    "COTEACHING_LOSS_REFUSED",
    "validate_fixture",
]

#: the selection algorithms a fixture records (their masks; co-teaching also its second network)
FIXTURE_SELECTION = ("select_retrain", "truncated_gce", "coteaching")

#: co-teaching's second network: fixture array -> its shape ('K': checkpoints, 'T1': T + 1 steps); the bias arrays
#: only with bias=True
SECOND_NETWORK = {
    "W0_2": ("2", "m", "d"),
    "W_2": ("K", "2", "m", "d"),
    "gamma_2": ("K", "2", "m"),
    "rho_2": ("K", "2", "m", "n"),
    "loss_2": ("K",),
    "grad_2": ("K", "2", "m", "d"),
    "mask_2": ("T1", "n"),
    "b0_2": ("2", "m"),
    "b_2": ("K", "2", "m"),
    "grad_b_2": ("K", "2", "m"),
}

COTEACHING_LOSS_REFUSED = (
    "algorithm='coteaching' with loss={loss!r} is not allowed in a fixture yet: a training method's state and loss "
    "of the second network are not recorded; export co-teaching with loss='logistic' (the official code's "
    "cross-entropy), or that loss with algorithm 'gd'"
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
    W0_2, W_2, gamma_2, rho_2, loss_2, grad_2, mask_2, b0_2, b_2, grad_b_2 : ndarray or None
        'coteaching' only: the second network's arrays, laid out like W0, W, ..., mask, b0, b, grad_b (its mask
        is the one network 2 trains on, chosen by network 1); None for the other algorithms
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
    W0_2: np.ndarray | None = None
    W_2: np.ndarray | None = None
    gamma_2: np.ndarray | None = None
    rho_2: np.ndarray | None = None
    loss_2: np.ndarray | None = None
    grad_2: np.ndarray | None = None
    mask_2: np.ndarray | None = None
    b0_2: np.ndarray | None = None
    b_2: np.ndarray | None = None
    grad_b_2: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate_fixture(self)

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
        for k in SECOND_NETWORK:
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    @property
    def coteaching(self) -> bool:
        """True for a co-teaching fixture (two networks: the arrays W0_2, W_2, ..., mask_2)."""
        return self.W0_2 is not None

    def second(self) -> dict[str, np.ndarray | None]:
        """Network 2's arrays under network 1's names (W0, W, gamma, rho, loss, grad, mask, b0, b, grad_b)."""
        return {k[:-2]: getattr(self, k) for k in SECOND_NETWORK}

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


def f64(name: str, a: Any, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.float64:
        raise ConfigError(f"fixture array {name!r} must be float64, got {a.dtype}")
    if a.shape != shape:
        raise ConfigError(f"fixture array {name!r} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"fixture array {name!r} contains NaN or infinite values")
    return np.ascontiguousarray(a)


def validate_fixture(fx: Fixture) -> None:
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
    s(fx, "W0", f64("W0", fx.W0, (2, m, d)))
    s(fx, "W", f64("W", fx.W, (K, 2, m, d)))
    s(fx, "gamma", f64("gamma", fx.gamma, (K, 2, m)))
    s(fx, "rho", f64("rho", fx.rho, (K, 2, m, n)))
    s(fx, "loss", f64("loss", fx.loss, (K,)))
    s(fx, "grad", f64("grad", fx.grad, (K, 2, m, d)))
    T = int(steps[-1])
    if cfg.algorithm == "label_noise_gd":
        if fx.eps is None:
            raise ConfigError("a label-noise GD fixture needs the array 'eps' of shape (T + 1, n)")
        eps = f64("eps", fx.eps, (T + 1, n))
        if not np.all((eps == 1.0) | (eps == -1.0)):
            raise ConfigError("fixture array 'eps' must contain only +1 and -1")
        s(fx, "eps", eps)
    elif fx.eps is not None:
        raise ConfigError(f"fixture has an 'eps' array but its config says algorithm={cfg.algorithm!r}")
    validate_second(fx, cfg, K, T)
    if cfg.algorithm in FIXTURE_SELECTION:
        if fx.mask is None or fx.step_scale is None:
            raise ConfigError(
                f"a fixture of algorithm={cfg.algorithm!r} needs the arrays 'mask' (T + 1, n) and 'step_scale' (T + 1,)"
            )
        mask = f64("mask", fx.mask, (T + 1, n))
        if not np.all((mask == 0.0) | (mask == 1.0)):
            raise ConfigError("fixture array 'mask' must contain only 0 and 1")
        sc = f64("step_scale", fx.step_scale, (T + 1,))
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
        s(fx, "b0", f64("b0", fx.b0, (2, m)))
        s(fx, "b", f64("b", fx.b, (K, 2, m)))
        s(fx, "grad_b", f64("grad_b", fx.grad_b, (K, 2, m)))
    elif given:
        raise ConfigError(f"fixture has the bias array(s) {', '.join(given)} but its config says bias=False")
    if cfg.loss == "logistic":
        if fx.method_loss is not None or fx.target is not None:
            raise ConfigError("fixture has the method array(s) method_loss/target but its config says loss='logistic'")
    else:
        if fx.method_loss is None:
            raise ConfigError(f"a fixture of the training method loss={cfg.loss!r} needs the array 'method_loss' (K,)")
        s(fx, "method_loss", f64("method_loss", fx.method_loss, (K,)))
    if cfg.loss == "elr":
        if fx.target is None:
            raise ConfigError(
                "an ELR fixture (config loss='elr') needs the array 'target' (K, 2, n): the targets "
                "before each checkpoint's update"
            )
        s(fx, "target", f64("target", fx.target, (K, 2, n)))
    elif fx.target is not None:
        raise ConfigError(f"fixture has an ELR 'target' array but its config says loss={cfg.loss!r}")
    if fx.spread is not None:
        sp = f64("spread", fx.spread, (K, 3))
        if np.any(sp < 0):
            raise ConfigError("fixture array 'spread' must be >= 0")
        s(fx, "spread", sp)


def validate_second(fx: Fixture, cfg: Config, K: int, T: int) -> None:
    """Co-teaching's second network: every array of :data:`SECOND_NETWORK` (the bias ones only with bias=True)
    with its shape, finite, float64; none of them for the other algorithms."""
    given = [k for k in SECOND_NETWORK if getattr(fx, k) is not None]
    if cfg.algorithm != "coteaching":
        if given:
            raise ConfigError(
                f"fixture has co-teaching's second-network array(s) {', '.join(given)} but its config says "
                f"algorithm={cfg.algorithm!r}"
            )
        return
    if cfg.loss != "logistic":
        raise ConfigError(COTEACHING_LOSS_REFUSED.format(loss=cfg.loss))
    need = [k for k in SECOND_NETWORK if cfg.bias or k not in ("b0_2", "b_2", "grad_b_2")]
    missing = [k for k in need if k not in given]
    if missing:
        raise ConfigError(
            f"a co-teaching fixture needs its second network's arrays {', '.join(need)}; missing: {', '.join(missing)}"
        )
    extra = [k for k in given if k not in need]
    if extra:
        raise ConfigError(f"fixture has the bias array(s) {', '.join(extra)} but its config says bias=False")
    sizes = {"2": 2, "m": cfg.m, "d": fx.data.d, "n": fx.data.n, "K": K, "T1": T + 1}
    for k in need:
        object.__setattr__(fx, k, f64(k, getattr(fx, k), tuple(sizes[a] for a in SECOND_NETWORK[k])))
    if not np.all((fx.mask_2 == 0.0) | (fx.mask_2 == 1.0)):
        raise ConfigError("fixture array 'mask_2' must contain only 0 and 1")
