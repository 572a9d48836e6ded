"""The weight-space engine: explicit W, the ground truth (SPEC.md sections 2-4)."""
from __future__ import annotations

import numpy as np

from .. import _kernels as K
from ..data import Dataset, TestSet
from ..metrics import accuracy
from .base import CoefficientViews


class WeightEngine(CoefficientViews):
    """Exact full-batch GD on W (2, m, d), with the coefficient recursions of SPEC.md section 4 alongside."""

    name = "weights"

    def __init__(self, q: float, eta: float, data: Dataset, W0: np.ndarray):
        self.q = float(q)
        self.eta = float(eta)
        self.data = data
        two, self.m, d = W0.shape
        n = data.n
        F = 2 * self.m
        self.W = np.array(W0, dtype=np.float64, order="C").reshape(F, d)
        self.X = data.xi
        self.XT = np.empty((d, n))
        K.transpose(self.X, self.XT)
        self.mu = data.mu
        self.mu_sq = _sq(self.mu)
        self.xi_sq = np.empty(n)
        K.row_sq_norms(self.X, self.xi_sq)
        self.y = data.y
        self._gamma = np.zeros(F)
        self._rho = np.zeros((F, n))
        self.A = np.empty((F, n))
        self.B = np.empty(F)
        self.f = np.empty(n)
        self.G = np.empty((F, d))
        self.S = np.empty(F)
        self.C = np.empty((F, n))
        self._loss = np.empty(n)
        self._dloss = np.empty(n)
        self._lpm = np.empty(n)
        self._test_cache: dict[int, np.ndarray] = {}

    def weights(self) -> np.ndarray:
        return self.W.reshape(2, self.m, -1)

    def forward(self) -> np.ndarray:
        K.inner_products(self.W, self.mu, self.XT, self.A, self.B)
        K.forward(self.A, self.B, self.y, self.q, self.m, self.f)
        return self.f

    has_weights = True

    def test_accuracy(self, test: TestSet) -> float:
        return accuracy(self.test_outputs(test), test.y_score)

    def advance(self, k: int, mults: np.ndarray | None) -> int:
        """Take up to k GD steps in one kernel call (row s of ``mults`` multiplies the labels at step s;
        None: y_obs at every step).

        Stops early, keeping the last finite state, when the outputs or the next weights would be non-finite;
        returns the number of steps taken.
        """
        mults = self.data.y_obs.reshape(1, -1) if mults is None else np.ascontiguousarray(mults, dtype=np.float64)
        return int(K.advance(self.W, self._gamma, self._rho, self.X, self.XT, self.mu, self.y, mults, self.q,
                             self.m, self.eta, self.mu_sq, self.xi_sq, self.A, self.B, self.f, self._loss,
                             self._dloss, self._lpm, self.G, self.S, self.C, int(k)))

    def test_outputs(self, test: TestSet) -> np.ndarray:
        key = id(test)
        XT = self._test_cache.get(key)
        if XT is None:
            XT = np.empty((test.xi.shape[1], test.xi.shape[0]))
            K.transpose(test.xi, XT)
            self._test_cache = {key: XT} if len(self._test_cache) > 4 else {**self._test_cache, key: XT}
        A = np.empty((self.W.shape[0], XT.shape[1]))
        B = np.empty(self.W.shape[0])
        K.inner_products(self.W, self.mu, XT, A, B)
        out = np.empty(XT.shape[1])
        K.forward(A, B, test.y, self.q, self.m, out)
        return out


def _sq(v: np.ndarray) -> float:
    out = np.empty(1)
    K.row_sq_norms(v.reshape(1, -1), out)
    return float(out[0])
