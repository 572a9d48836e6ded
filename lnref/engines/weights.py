"""The weight-space engine: explicit W, the ground truth (SPEC.md sections 2-4 and 7)."""

from __future__ import annotations

import numba
import numpy as np

from ..config import Config, ConfigError
from ..kernels import weights as K
from ..model.metrics import accuracy
from .base import CoefficientViews, RunInputs, TestCache, aligned_rows, prepare_inputs

#: the weight engine's work arrays, in the order of the ``work`` group of :func:`lnref.kernels.weights.advance`
WORK_ARRAYS = ("A", "B", "f", "lpm", "G", "S", "Sb", "C", "gamma_new", "rho_new", "bias_new", "bad")


class WeightEngine(CoefficientViews):
    """Exact full-batch GD on W (2, m, d) (and the biases), with the coefficient recursions of SPEC.md section 4
    alongside.

    Build it with :meth:`from_config` (validates and draws the inputs); the constructor takes validated inputs.
    """

    name = "weights"
    has_weights = True

    def __init__(self, cfg: Config, inputs: RunInputs):
        data, W0 = inputs.data, inputs.W0
        self.q = float(cfg.q)
        self.eta = float(cfg.eta)
        self.div = float(cfg.output_divisor)
        self.with_bias = bool(cfg.bias)
        self.data = data
        _two, self.m, d = W0.shape
        n = data.n
        F = 2 * self.m
        self.W = np.array(W0, dtype=np.float64, order="C").reshape(F, d)
        self.X = data.xi
        self.XT = aligned_rows(d, n)
        K.transpose(self.X, self.XT)
        self.mu = data.mu
        sq = np.empty(1)
        K.row_sq_norms(self.mu.reshape(1, -1), sq)
        self.mu_sq = float(sq[0])
        self.xi_sq = np.empty(n)
        K.row_sq_norms(self.X, self.xi_sq)
        self.y = data.y
        self._y_obs_row = np.ascontiguousarray(data.y_obs, dtype=np.float64).reshape(1, n)
        self._gamma = np.zeros(F)
        self._rho = np.zeros((F, n))
        self._bias = np.array(inputs.b0, dtype=np.float64).reshape(F)
        self._work = dict(
            A=aligned_rows(F, n),
            B=np.empty(F),
            f=np.empty(n),
            lpm=np.empty(n),
            G=np.empty((F, d)),
            S=np.empty(F),
            Sb=np.empty(F),
            C=np.empty((F, n)),
            gamma_new=np.empty(F),
            rho_new=np.empty((F, n)),
            bias_new=np.empty(F),
            bad=np.zeros(F, dtype=np.int64),
        )
        self._tests = TestCache()
        self._init_method(cfg, n)

    @classmethod
    def from_config(cls, cfg: Config, data=None, W0=None, b0=None) -> WeightEngine:
        """Validate (or draw) the inputs of ``cfg`` and build the engine (:func:`lnref.engines.from_config`)."""
        return cls(cfg, prepare_inputs(cfg, data, W0, b0))

    def weights(self) -> np.ndarray:
        return self.W.reshape(2, self.m, -1)

    def load_state(self, gamma, rho, bias, W=None, *, step: int = 0, target=None) -> None:
        self.gamma[...] = gamma
        self.rho[...] = rho
        self.bias[...] = bias
        self.weights()[...] = W
        self.t = int(step)
        self.target[...] = 0.0 if target is None else target

    def _outputs(self, XT: np.ndarray, y: np.ndarray, A: np.ndarray, B: np.ndarray, out: np.ndarray) -> np.ndarray:
        K.inner_products(self.W, self.mu, XT, A, B)
        K.forward(A, B, self._bias, y, self.q, self.m, self.div, out)
        return out

    def forward(self) -> np.ndarray:
        """f(W(t), x_i) for the training samples, shape (n,) (SPEC.md sections 2 and 7)."""
        w = self._work
        return self._outputs(self.XT, self.y, w["A"], w["B"], w["f"])

    def advance(self, k: int, mults: np.ndarray | None) -> int:
        """Take up to k GD steps in one kernel call (row s of ``mults`` multiplies the labels at step s;
        None: y_obs at every step).

        Stops early, keeping the last finite state, when the outputs or the next weights, coefficients or biases
        would be non-finite; returns the number of steps taken.
        """
        mults = self._y_obs_row if mults is None else np.ascontiguousarray(mults, dtype=np.float64)
        w = self._work
        code, lp, target, target_old, t0 = self._method_args()
        done = int(
            K.advance(
                (self.W, self._gamma, self._rho, self._bias),
                (self.X, self.XT, self.mu, self.y, mults, self.xi_sq),
                tuple(w[name] for name in WORK_ARRAYS),
                (code, lp, target, target_old),
                (self.q, self.m, self.div, self.eta, self.mu_sq, numba.get_num_threads(), self.with_bias),
                int(k),
                t0,
            )
        )
        self.t += done
        return done

    def _prepare_test(self, test) -> np.ndarray:
        XT = np.empty((test.xi.shape[1], test.xi.shape[0]))
        K.transpose(test.xi, XT)
        return XT

    def test_outputs(self, test) -> np.ndarray:
        """f on every sample of an explicit test set, shape (n_test,)."""
        XT = self._tests.get(test, self._prepare_test)
        F, T = self.W.shape[0], XT.shape[1]
        return self._outputs(XT, test.y, np.empty((F, T)), np.empty(F), np.empty(T))

    def test_accuracy(self, test) -> float:
        return accuracy(self.test_outputs(test), test.y_score)

    def virtual_test_accuracy(self, step: int | None = None) -> float:
        """Refused: a virtual test set needs Gram-sampled data, which only the coefficient engine runs."""
        raise ConfigError(
            "virtual_test_accuracy needs Gram-sampled data (sampling='gram', engine='coefficients'); "
            "this is the weight engine"
        )
