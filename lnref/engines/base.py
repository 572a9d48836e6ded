"""What every GD engine shares: the inputs a run needs (validated in one place), the state views, the test cache.

:func:`lnref.engines.from_config` is the one way to build an engine: :func:`lnref.train`, the sweep worker and
the oracle's fixtures all go through it, so every input is checked by :func:`prepare_inputs` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..config import Config, ConfigError
from ..data import Dataset, init_bias, init_weights, make_data
from ..data.gram import GramData, sample_gram
from ..model import check_bias, check_weights

# Bytes of one cache line: the work arrays the compiled loops stream through start on one, so no vector load of
# a row straddles two lines (speed only, never numerical; bench/README.md, issue 25).
CACHE_LINE = 64


def aligned_rows(rows: int, cols: int, *, pad: bool = False) -> np.ndarray:
    """A zeroed C-contiguous float64 array whose first element starts a cache line (:data:`CACHE_LINE`).

    With ``pad=True`` the shape is (rows, cols8), cols8 = cols rounded up to a multiple of 8, so that every row
    starts a cache line too; the extra columns stay 0 and the kernels read only the first ``cols``
    (``lnref.kernels.coefficients``: the scaled Gram matrix ``Gn``).  NumPy aligns to 16 bytes only: a
    (200, 200) array from ``np.empty`` starts 16 bytes into a line, and the coefficient engine's inner products
    then ran 1.2x slower (bench/README.md, issue 25).
    """
    width = -(-cols // 8) * 8 if pad else cols
    size = rows * width
    per_line = CACHE_LINE // 8
    buf = np.zeros(size + per_line)
    start = (-buf.ctypes.data % CACHE_LINE) // 8
    return buf[start : start + size].reshape(rows, width)


@dataclass(frozen=True, eq=False)
class RunInputs:
    """The validated inputs of one run: what :func:`prepare_inputs` returns.

    Attributes
    ----------
    data : Dataset (explicit sampling) or GramData (``sampling='gram'``)
    W0 : ndarray (2, m, d) float64, or None with Gram sampling
    b0 : ndarray (2, m) float64, the initial biases (zeros without ``bias``)
    """

    data: Any
    W0: np.ndarray | None
    b0: np.ndarray


def prepare_inputs(cfg: Config, data=None, W0=None, b0=None) -> RunInputs:
    """Validate, or draw from ``cfg`` where not given, the data, initial weights and biases of a run.

    Parameters
    ----------
    cfg : Config
    data : Dataset (sampling='explicit'), GramData (sampling='gram'), or None to draw it (seed contract)
    W0 : array (2, m, d) (explicit sampling only) or None for :func:`lnref.init_weights`
    b0 : array (2, m) or None for :func:`lnref.init_bias`; only with ``cfg.bias`` (a network without biases
        refuses non-zero ones)

    Returns
    -------
    RunInputs

    Raises
    ------
    ConfigError
        Naming the input, what was wrong and what is allowed, before any GD work.
    """
    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg must be an lnref.Config, got {type(cfg).__name__}")
    if cfg.sampling == "explicit":
        data = make_data(cfg) if data is None else data
        if not isinstance(data, Dataset):
            raise ConfigError(f"data must be an lnref.Dataset with sampling='explicit', got {type(data).__name__}")
        data.check_for(cfg)
        W0 = check_weights(init_weights(cfg) if W0 is None else W0, d=cfg.d, m=cfg.m, name="W0")
    else:
        if W0 is not None:
            raise ConfigError(
                "W0 is not allowed with sampling='gram': the initial filters are drawn with the Gram "
                "statistics; use sampling='explicit' to pass W0"
            )
        if data is None:
            data = sample_gram(cfg)
        elif not isinstance(data, GramData):
            raise ConfigError(
                f"data={type(data).__name__} is not allowed with sampling='gram': pass None or an "
                "lnref.data.gram.GramData from sample_gram (or use sampling='explicit' with a Dataset)"
            )
        if (data.n, data.m) != (cfg.n, cfg.m):
            raise ConfigError(f"GramData has (n, m) = ({data.n}, {data.m}) but the config says ({cfg.n}, {cfg.m})")
        if b0 is None and getattr(data, "bias0", None) is not None:
            b0 = data.bias0
    if b0 is None:
        b0 = init_bias(cfg)
    else:
        b0 = check_bias(b0, cfg.m)
        if not cfg.bias and (b0 != 0.0).any():
            raise ConfigError(
                "b0 has non-zero biases but the config has bias=False; set bias=True to train biases, or leave b0 out"
            )
    return RunInputs(data=data, W0=W0, b0=b0)


class CoefficientViews:
    """``gamma`` (2, m), ``rho`` (2, m, n) and ``bias`` (2, m) as views of an engine's flat state ``_gamma`` (2m,),
    ``_rho`` (2m, n), ``_bias`` (2m,) (filters flattened as f = j_index * m + r); shared by both engines.

    Also the training method's state (SPEC.md section 9), shared by both engines: ``target`` (2, n), ELR's
    per-sample targets (row 0: class +1, row 1: class -1; zeros for the other losses), and ``t``, the number of
    GD steps taken (ELR updates its targets at steps 0, period, 2 period, ...)."""

    m: int
    _gamma: np.ndarray
    _rho: np.ndarray
    _bias: np.ndarray
    target: np.ndarray
    t: int

    def _init_method(self, cfg: Config, n: int) -> None:
        self.loss_code = int(cfg.loss_code)
        self.loss_vector = cfg.loss_vector()
        self.target = np.zeros((2, n))
        self._target_old = np.zeros((2, n))
        self.t = 0

    def set_eta(self, eta: float) -> None:
        """Set the step size of the next :meth:`advance` calls (and nothing else: the step scalings are computed
        from it at each call).  The selection algorithms (lnref.training.selection) take a mean over |S| < n samples as
        the step size eta n/|S| with the other samples' multipliers 0."""
        self.eta = float(eta)

    def _method_args(self) -> tuple:
        """The kernels' trailing arguments: (code, parameters, targets, work space, step of the state)."""
        return self.loss_code, self.loss_vector, self.target, self._target_old, self.t

    @property
    def gamma(self) -> np.ndarray:
        return self._gamma.reshape(2, self.m)

    @property
    def rho(self) -> np.ndarray:
        return self._rho.reshape(2, self.m, -1)

    @property
    def bias(self) -> np.ndarray:
        return self._bias.reshape(2, self.m)


class TestCache:
    """Per-engine cache of prepared test sets, keyed on the test-set object itself.

    An entry holds the object, so its ``id`` cannot be reused by another object while the entry lives (a cache
    keyed on ``id`` alone returns stale entries once the object is freed).  At most ``size`` entries.
    """

    def __init__(self, size: int = 4):
        self.size = size
        self._entries: dict[int, tuple[Any, Any]] = {}

    def get(self, obj, prepare):
        hit = self._entries.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = prepare(obj)
        if len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[id(obj)] = (obj, value)
        return value


class Engine(Protocol):
    """One full-batch GD trajectory.

    Attributes
    ----------
    gamma : ndarray (2, m) float64, the signal coefficients gamma_{j,r}(t) (SPEC.md section 4)
    rho : ndarray (2, m, n) float64, the noise coefficients rho_{j,r,i}(t)
    bias : ndarray (2, m) float64, the biases b_{j,r}(t) (zeros without ``bias``; SPEC.md section 7)
    has_weights : bool, whether :meth:`weights` can return W
    name : str, the engine's name in ``Config.engine``
    data : Dataset (explicit sampling) or GramData (``sampling='gram'``), the validated training data
    t : int, the GD step of the current state
    loss_code : int, the training method's code (``Config.loss_code``)
    target : ndarray (2, n) float64, ELR's targets (zeros for the other methods; SPEC.md section 9)
    """

    name: str
    data: Dataset | GramData
    t: int
    loss_code: int
    target: np.ndarray
    has_weights: bool

    @property
    def gamma(self) -> np.ndarray: ...

    @property
    def rho(self) -> np.ndarray: ...

    @property
    def bias(self) -> np.ndarray: ...

    def forward(self) -> np.ndarray:
        """f(W(t), x_i) for the training samples, shape (n,)."""

    def test_outputs(self, test) -> np.ndarray:
        """f on every sample of a test set, shape (n_test,)."""

    def test_accuracy(self, test) -> float:
        """Test accuracy of the current state: fraction of test samples with y_score * f > 0."""

    def virtual_test_accuracy(self, step: int | None = None) -> float:
        """Accuracy of the current state on the config's virtual test set (Gram sampling; ConfigError otherwise)."""

    def advance(self, k: int, mults: np.ndarray | None) -> int:
        """Take up to k GD steps on (1/n) sum_i l(mult_i f_i) from the current state.

        ``mults`` (k, n): row s is y_obs (plain GD) or eps(s) * y_obs (label-noise GD); None means y_obs at every
        step.  Stops early, keeping the last finite state, when the outputs or the next state would be
        non-finite; returns the number of steps taken.
        """

    def weights(self) -> np.ndarray:
        """W(t), shape (2, m, d)."""

    def load_state(self, gamma, rho, bias, W=None, *, step: int = 0, target=None) -> None:
        """Set the state (to resume a run): coefficients, biases, W (weight engine), the step count and ELR's
        targets (2, n) (zeros when None)."""
