"""The interface every GD engine implements; :func:`lnref.train` drives it."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class CoefficientViews:
    """``gamma`` (2, m) and ``rho`` (2, m, n) as views of an engine's flat state ``_gamma`` (2m,), ``_rho`` (2m, n)
    (filters flattened as f = j_index * m + r); shared by both engines."""

    m: int
    _gamma: np.ndarray
    _rho: np.ndarray

    @property
    def gamma(self) -> np.ndarray:
        return self._gamma.reshape(2, self.m)

    @property
    def rho(self) -> np.ndarray:
        return self._rho.reshape(2, self.m, -1)


class Engine(Protocol):
    """One full-batch GD trajectory.

    Attributes
    ----------
    gamma : ndarray (2, m) float64, the signal coefficients gamma_{j,r}(t) (SPEC.md section 4)
    rho : ndarray (2, m, n) float64, the noise coefficients rho_{j,r,i}(t)
    """

    gamma: np.ndarray
    rho: np.ndarray

    def forward(self) -> np.ndarray:
        """f(W(t), x_i) for the training samples, shape (n,); caches what :meth:`step` needs."""

    has_weights: bool  # whether weights() can return W

    def test_accuracy(self, test) -> float:
        """Test accuracy of the current state: fraction of test samples with y_score * f > 0."""

    def advance(self, k: int, mults: np.ndarray | None) -> int:
        """Take up to k GD steps on (1/n) sum_i l(mult_i f_i) from the current state.

        ``mults`` (k, n): row s is y_obs (plain GD) or eps(s) * y_obs (label-noise GD); None means y_obs at every
        step.  Stops early, keeping the last finite state, when the outputs or the next state would be
        non-finite; returns the number of steps taken.
        """

    def weights(self) -> np.ndarray:
        """W(t), shape (2, m, d)."""
