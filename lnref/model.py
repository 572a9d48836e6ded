"""The network as functions of (W, data): outputs, loss and gradient (SPEC.md sections 2-3).

Each function validates its inputs, allocates outputs and calls the kernels of :mod:`lnref._kernels`, the same
kernels the weight engine runs, so ``W - eta * gradient(W, data)`` is bit-identical to one step of
:func:`lnref.train`.
"""
from __future__ import annotations

import numpy as np

from . import _kernels as K
from .config import ConfigError, _check_float
from .data import Dataset

__all__ = ["forward", "loss", "gradient", "gd_step", "check_weights"]


def check_weights(W, d: int | None = None, m: int | None = None, name: str = "W") -> np.ndarray:
    """Coerce W to a C-contiguous float64 (2, m, d) array; refuse wrong shapes and non-finite entries."""
    try:
        W = np.ascontiguousarray(W, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a float64-convertible array: {exc}") from None
    if W.ndim != 3 or W.shape[0] != 2:
        raise ConfigError(f"{name} must have shape (2, m, d) (index 0 holds j=+1), got {W.shape}")
    if d is not None and W.shape[2] != d:
        raise ConfigError(f"{name} has d={W.shape[2]} but the data has d={d}")
    if m is not None and W.shape[1] != m:
        raise ConfigError(f"{name} has m={W.shape[1]} filters per class but the config says m={m}")
    if not np.all(np.isfinite(W)):
        raise ConfigError(f"{name} contains NaN or infinite values; every entry must be finite")
    return W


def _check_data(data) -> Dataset:
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be an lnref.Dataset, got {type(data).__name__}")
    return data


def _inner(W: np.ndarray, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    F, d = 2 * W.shape[1], W.shape[2]
    XT = np.empty((d, data.n))
    K.transpose(data.xi, XT)
    A = np.empty((F, data.n))
    B = np.empty(F)
    K.inner_products(W.reshape(F, d), data.mu, XT, A, B)
    return A, B


def _mult(data: Dataset, eps) -> np.ndarray:
    if eps is None:
        return data.y_obs
    eps = np.ascontiguousarray(eps, dtype=np.float64)
    if eps.shape != (data.n,) or not np.all((eps == 1.0) | (eps == -1.0)):
        raise ConfigError(f"eps must be an array of +-1 of shape ({data.n},)")
    return eps * data.y_obs


def forward(W, data: Dataset, q: float = 1.0) -> np.ndarray:
    """f(W, x_i) for every training sample.

    Parameters
    ----------
    W : array (2, m, d) float64, index 0 holds j = +1
    data : Dataset
    q : float, activation exponent (>= 1)

    Returns
    -------
    ndarray (n,) float64

    Notes
    -----
    SPEC.md section 2: f = F_{+1} - F_{-1}, F_j = (1/m) sum_r [sigma(<w_jr, y_i mu>) + sigma(<w_jr, xi_i>)].
    """
    data = _check_data(data)
    W = check_weights(W, d=data.d)
    q = _check_float("q", q, low=1.0, allowed="with q >= 1")
    A, B = _inner(W, data)
    out = np.empty(data.n)
    K.forward(A, B, data.y, q, W.shape[1], out)
    return out


def loss(W, data: Dataset, q: float = 1.0, eps=None) -> float:
    """L(W) = (1/n) sum_i l(y_obs_i f(W, x_i)) (SPEC.md section 3); with ``eps`` the label-noise GD loss."""
    f = forward(W, data, q)
    mult = _mult(data, eps)
    lo = np.empty(data.n)
    dl = np.empty(data.n)
    K.losses(f, mult, lo, dl)
    return float(np.mean(lo))


def gradient(W, data: Dataset, q: float = 1.0, eps=None) -> np.ndarray:
    """grad_W L, shape (2, m, d) (SPEC.md section 3); with ``eps`` (n,) of +-1 the label-noise GD gradient.

    Notes
    -----
    grad_{w_jr} L = (1/(n m)) sum_i l'_i s_j y_obs_i [sigma'(<w_jr, y_i mu>) y_i mu + sigma'(<w_jr, xi_i>) xi_i].
    """
    return _gradient_parts(W, data, q, eps)[0]


def _gradient_parts(W, data: Dataset, q: float, eps):
    data = _check_data(data)
    W = check_weights(W, d=data.d)
    q = _check_float("q", q, low=1.0, allowed="with q >= 1")
    m, d = W.shape[1], W.shape[2]
    F = 2 * m
    A, B = _inner(W, data)
    f = np.empty(data.n)
    K.forward(A, B, data.y, q, m, f)
    mult = _mult(data, eps)
    lo = np.empty(data.n)
    dl = np.empty(data.n)
    K.losses(f, mult, lo, dl)
    G = np.empty((F, d))
    S = np.empty(F)
    C = np.empty((F, data.n))
    K.gradient(A, B, dl * mult, data.y, data.mu, data.xi, q, m, G, S, C)
    return G.reshape(2, m, d), S, C


def gd_step(W, data: Dataset, eta: float, q: float = 1.0, eps=None) -> np.ndarray:
    """W - eta * grad L(W): one (label-noise) GD step, bit-identical to a step of :func:`lnref.train`."""
    eta = _check_float("eta", eta, low=0.0, low_open=True, allowed="> 0")
    G = gradient(W, data, q, eps)
    W = check_weights(W)
    return W - eta * G
