"""Signal-noise decomposition of weights that came from anywhere (SPEC.md section 4, identity 5.1)."""

from __future__ import annotations

import numpy as np

from ..config import ConfigError
from ..data import Dataset
from ..kernels import coefficients as KC
from ..kernels import weights as K
from . import check_weights

__all__ = ["decompose", "reconstruct"]


def _norms(data: Dataset) -> tuple[float, np.ndarray]:
    """(||mu||^2, ||xi_i||^2 (n,)) by the kernel the coefficient engine uses (serial sums in index order)."""
    xi_sq = np.empty(data.n)
    K.row_sq_norms(data.xi, xi_sq)
    mu_sq = np.empty(1)
    K.row_sq_norms(data.mu.reshape(1, -1), mu_sq)
    return float(mu_sq[0]), xi_sq


def _weights(W0: np.ndarray, gamma: np.ndarray, rho: np.ndarray, data: Dataset, m: int) -> np.ndarray:
    """W0 + s_j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2 for F = W0.shape[0] flattened filters, the first
    m with s_j = +1: :func:`lnref.kernels.equations.weight_row` per filter (the coefficient engine's kernel)."""
    mu_sq, xi_sq = _norms(data)
    W = np.empty_like(W0)
    KC.reconstruct(
        W0,
        np.ascontiguousarray(gamma, dtype=np.float64),
        np.ascontiguousarray(rho, dtype=np.float64),
        data.mu,
        data.xi,
        mu_sq,
        xi_sq,
        m,
        W,
    )
    return W


def _check_basis(data: Dataset) -> None:
    mu_sq, xi_sq = _norms(data)
    if mu_sq == 0.0 or np.any(xi_sq == 0.0):
        raise ConfigError("decompose and reconstruct need mu != 0 and every xi_i != 0")


def _basis(data: Dataset) -> np.ndarray:
    """Columns mu/||mu||^2, xi_1/||xi_1||^2, ..., xi_n/||xi_n||^2, shape (d, n + 1): the weights of unit
    coefficients (gamma = 1, or one rho_i = 1) from W0 = 0, so decompose inverts what reconstruct computes."""
    _check_basis(data)
    k = data.n + 1
    gamma = np.zeros(k)
    gamma[0] = 1.0
    rho = np.zeros((k, data.n))
    rho[np.arange(1, k), np.arange(data.n)] = 1.0
    return _weights(np.zeros((k, data.d)), gamma, rho, data, k).T


def decompose(W, W0, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (gamma, rho) with W - W0 = s_j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2.

    Parameters
    ----------
    W, W0 : array (2, m, d)
    data : Dataset (needs d >= n + 1 for uniqueness)

    Returns
    -------
    gamma : ndarray (2, m)
    rho : ndarray (2, m, n)

    Notes
    -----
    SPEC.md section 4.  Solved by least squares (SciPy, LAPACK gelsd) on the basis matrix, which is better
    conditioned than the normal equations on its Gram matrix and has the same solution.  The part of W - W0
    outside span{mu, xi_i} is discarded; :func:`reconstruct` shows how much there was.
    """
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be an lnref.Dataset, got {type(data).__name__}")
    W = check_weights(W, d=data.d)
    W0 = check_weights(W0, d=data.d, m=W.shape[1], name="W0")
    if data.d < data.n + 1:
        raise ConfigError(f"decompose needs d >= n + 1 for unique coefficients, got d={data.d}, n={data.n}")
    m = W.shape[1]
    basis = _basis(data)
    delta = (W - W0).reshape(2 * m, data.d).T  # (d, 2m)
    import scipy.linalg  # here, not at import: SciPy's import would slow every `import lnref`

    coef, _, rank, _ = scipy.linalg.lstsq(basis, delta, lapack_driver="gelsd")
    if rank < data.n + 1:
        raise ConfigError(
            f"mu, xi_1..xi_n are linearly dependent (rank {rank} < n + 1 = {data.n + 1}); "
            "the coefficients are not unique"
        )
    coef = coef.T.reshape(2, m, data.n + 1)
    s = np.array([1.0, -1.0])[:, None]
    return s * coef[:, :, 0], np.ascontiguousarray(coef[:, :, 1:])


def reconstruct(W0, gamma, rho, data: Dataset) -> np.ndarray:
    """W0 + s_j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2, shape (2, m, d) (SPEC.md section 4).

    Computed by :func:`lnref.kernels.equations.weight_row` (the kernel of ``CoefficientEngine.weights``): the same bits
    as the coefficient engine's weights for the same coefficients."""
    W0 = check_weights(W0, d=data.d, name="W0")
    m = W0.shape[1]
    gamma = np.asarray(gamma, dtype=np.float64)
    rho = np.asarray(rho, dtype=np.float64)
    if gamma.shape != (2, m) or rho.shape != (2, m, data.n):
        raise ConfigError(f"gamma must be (2, {m}) and rho (2, {m}, {data.n}); got {gamma.shape}, {rho.shape}")
    _check_basis(data)
    return _weights(
        np.ascontiguousarray(W0.reshape(2 * m, data.d)), gamma.reshape(2 * m), rho.reshape(2 * m, data.n), data, m
    ).reshape(2, m, data.d)
