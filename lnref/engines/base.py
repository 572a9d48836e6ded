"""The interface every GD engine implements; :func:`lnref.train` drives it."""
from __future__ import annotations

from typing import Protocol

import numpy as np


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

    def test_outputs(self, test) -> np.ndarray:
        """f(W(t), x) for the samples of a test set, shape (n_test,)."""

    def step(self, mult: np.ndarray) -> bool:
        """One GD step on (1/n) sum_i l(mult_i f_i) using the outputs of the last :meth:`forward`.

        ``mult`` is y_obs (plain GD) or eps * y_obs (label-noise GD).  Returns False, and changes nothing,
        when the step would make the state non-finite.
        """

    def weights(self) -> np.ndarray:
        """W(t), shape (2, m, d)."""
