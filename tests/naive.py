"""Slow, obviously-correct NumPy references for the tests, written straight from SPEC.md sections 2-4.

Nothing here calls lnref's kernels; loops follow the formulas of SPEC.md one symbol at a time.  Layout as in
lnref: W has shape (2, m, d), index 0 holds j = +1 (sign s_j = +1), index 1 holds j = -1 (s_j = -1).
"""

from __future__ import annotations

import math

import numpy as np

SIGNS = (1.0, -1.0)  # s_j for j index 0, 1


# ------------------------------------------------------------------ section 2: the network
def act(z: float, q: float) -> float:
    """sigma(z) = max(0, z)^q."""
    return max(0.0, z) ** q if z > 0.0 else 0.0


def dact(z: float, q: float) -> float:
    """sigma'(z) = q max(0, z)^(q-1) for z > 0, and 0 for z <= 0."""
    return q * z ** (q - 1.0) if z > 0.0 else 0.0


def output(W: np.ndarray, x1: np.ndarray, x2: np.ndarray, q: float) -> float:
    """f(W, [x1, x2]) = F_{+1} - F_{-1}, F_j = (1/m) sum_r [sigma(<w_jr, x1>) + sigma(<w_jr, x2>)].

    W (2, m, d); x1, x2 (d,).  The two patches are passed explicitly (patch order matters to nobody).
    """
    m = W.shape[1]
    F = [0.0, 0.0]
    for j in range(2):
        for r in range(m):
            F[j] += act(float(np.dot(W[j, r], x1)), q) + act(float(np.dot(W[j, r], x2)), q)
        F[j] /= m
    return F[0] - F[1]


def forward(W: np.ndarray, mu: np.ndarray, xi: np.ndarray, y: np.ndarray, q: float) -> np.ndarray:
    """f(W, x_i) for x_i = [y_i mu, xi_i]; returns (n,)."""
    return np.array([output(W, y[i] * mu, xi[i], q) for i in range(xi.shape[0])])


# ------------------------------------------------------------------ section 3: loss and gradient
def ell(z: float) -> float:
    """l(z) = log(1 + exp(-z)), written to avoid overflow."""
    if z > 0:
        return math.log1p(math.exp(-z))
    return -z + math.log1p(math.exp(z))


def dell(z: float) -> float:
    """l'(z) = -1 / (1 + exp(z)), written to avoid overflow."""
    if z > 0:
        e = math.exp(-z)
        return -e / (1.0 + e)
    return -1.0 / (1.0 + math.exp(z))


def _mult(y_obs: np.ndarray, eps) -> np.ndarray:
    return y_obs if eps is None else eps * y_obs


def loss(W, mu, xi, y, y_obs, q, eps=None) -> float:
    """L(W) = (1/n) sum_i l(y_obs_i f_i); label-noise GD: l(eps_i y_obs_i f_i)."""
    f = forward(W, mu, xi, y, q)
    mult = _mult(y_obs, eps)
    return sum(ell(mult[i] * f[i]) for i in range(len(f))) / len(f)


def dlosses(W, mu, xi, y, y_obs, q, eps=None) -> np.ndarray:
    """l'_i = l'(mult_i f_i) with mult_i = y_obs_i (or eps_i y_obs_i); shape (n,)."""
    f = forward(W, mu, xi, y, q)
    mult = _mult(y_obs, eps)
    return np.array([dell(mult[i] * f[i]) for i in range(len(f))])


def gradient(W, mu, xi, y, y_obs, q, eps=None) -> np.ndarray:
    """grad_{w_jr} L = (1/(nm)) sum_i l'_i s_j mult_i [sigma'(<w_jr, y_i mu>) y_i mu + sigma'(<w_jr, xi_i>) xi_i].

    mult_i = y_obs_i for plain GD, eps_i y_obs_i for label-noise GD.  Returns (2, m, d).
    """
    _, m, d = W.shape
    n = xi.shape[0]
    mult = _mult(y_obs, eps)
    lp = dlosses(W, mu, xi, y, y_obs, q, eps)
    G = np.zeros_like(W)
    for j in range(2):
        for r in range(m):
            g = np.zeros(d)
            for i in range(n):
                sig = dact(float(np.dot(W[j, r], y[i] * mu)), q) * y[i] * mu
                noi = dact(float(np.dot(W[j, r], xi[i])), q) * xi[i]
                g = g + lp[i] * SIGNS[j] * mult[i] * (sig + noi)
            G[j, r] = g / (n * m)
    return G


def gd_step(W, mu, xi, y, y_obs, q, eta, eps=None) -> np.ndarray:
    """W(t+1) = W(t) - eta grad L(W(t))."""
    return W - eta * gradient(W, mu, xi, y, y_obs, q, eps)


# ------------------------------------------------------------------ section 4: coefficient recursions
def coefficient_step(gamma, rho, W, mu, xi, y, y_obs, q, eta, eps=None):
    """One step of the recursions of SPEC.md section 4, from the weights W(t) of the same step.

    gamma (2, m), rho (2, m, n) -> new (gamma, rho).
      gamma_jr += -(eta ||mu||^2/(nm)) sum_i l'_i mult_i y_i sigma'(<w_jr, y_i mu>)
      rho_jri  += -(eta ||xi_i||^2/(nm)) l'_i s_j mult_i sigma'(<w_jr, xi_i>)
    (mult_i = y_obs_i, or eps_i y_obs_i for label-noise GD).
    """
    _, m, _ = W.shape
    n = xi.shape[0]
    mult = _mult(y_obs, eps)
    lp = dlosses(W, mu, xi, y, y_obs, q, eps)
    mu_sq = float(np.dot(mu, mu))
    gamma = gamma.copy()
    rho = rho.copy()
    for j in range(2):
        for r in range(m):
            s = 0.0
            for i in range(n):
                s += lp[i] * mult[i] * y[i] * dact(float(np.dot(W[j, r], y[i] * mu)), q)
            gamma[j, r] -= eta * mu_sq / (n * m) * s
            for i in range(n):
                xi_sq = float(np.dot(xi[i], xi[i]))
                rho[j, r, i] -= (
                    eta * xi_sq / (n * m) * lp[i] * SIGNS[j] * mult[i] * dact(float(np.dot(W[j, r], xi[i])), q)
                )
    return gamma, rho


def run(W0, mu, xi, y, y_obs, q, eta, steps, eps_rows=None):
    """Plain (or label-noise, ``eps_rows`` (steps, n)) GD with the recursions alongside.

    Returns
    -------
    dict with ``W`` (steps+1, 2, m, d), ``gamma`` (steps+1, 2, m), ``rho`` (steps+1, 2, m, n),
    ``loss`` (steps+1,) the loss on the observed labels at each W(t), ``lp`` (steps, n) l'_i used at each step.
    """
    _, m, _ = W0.shape
    n = xi.shape[0]
    W = np.array(W0, dtype=np.float64)
    gamma = np.zeros((2, m))
    rho = np.zeros((2, m, n))
    Ws, gammas, rhos, losses, lps = [W], [gamma], [rho], [loss(W, mu, xi, y, y_obs, q)], []
    for t in range(steps):
        eps = None if eps_rows is None else eps_rows[t]
        lps.append(dlosses(W, mu, xi, y, y_obs, q, eps))
        gamma, rho = coefficient_step(gamma, rho, W, mu, xi, y, y_obs, q, eta, eps)
        W = gd_step(W, mu, xi, y, y_obs, q, eta, eps)
        Ws.append(W)
        gammas.append(gamma)
        rhos.append(rho)
        losses.append(loss(W, mu, xi, y, y_obs, q))
    return {
        "W": np.array(Ws),
        "gamma": np.array(gammas),
        "rho": np.array(rhos),
        "loss": np.array(losses),
        "lp": np.array(lps),
    }


# ------------------------------------------------------------------ section 4: decomposition
def basis(mu, xi) -> np.ndarray:
    """Columns mu/||mu||^2, xi_1/||xi_1||^2, ..., xi_n/||xi_n||^2; shape (d, n+1)."""
    cols = [mu / np.dot(mu, mu)] + [xi[i] / np.dot(xi[i], xi[i]) for i in range(xi.shape[0])]
    return np.column_stack(cols)


def decompose(W, W0, mu, xi):
    """Coefficients by the normal equations (B^T B) c = B^T (w - w0) for every filter.

    Returns gamma (2, m) (with the sign s_j taken out) and rho (2, m, n).
    """
    _, m, _ = W.shape
    n = xi.shape[0]
    B = basis(mu, xi)
    M = B.T @ B
    gamma = np.zeros((2, m))
    rho = np.zeros((2, m, n))
    for j in range(2):
        for r in range(m):
            c = np.linalg.solve(M, B.T @ (W[j, r] - W0[j, r]))
            gamma[j, r] = SIGNS[j] * c[0]
            rho[j, r] = c[1:]
    return gamma, rho


def reconstruct(W0, gamma, rho, mu, xi) -> np.ndarray:
    """W0 + s_j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2."""
    W = np.array(W0, dtype=np.float64)
    _, m, _ = W.shape
    for j in range(2):
        for r in range(m):
            W[j, r] = W[j, r] + SIGNS[j] * gamma[j, r] * mu / np.dot(mu, mu)
            for i in range(xi.shape[0]):
                W[j, r] = W[j, r] + rho[j, r, i] * xi[i] / np.dot(xi[i], xi[i])
    return W
