"""Virtual test sets (SPEC.md section 4, "Virtual test sets"): test samples drawn through their Gram statistics
(fixed) or as fresh Gaussian inner products at each evaluation (fresh), scored with the same formulas as an
explicit test set.  The draw order is in :mod:`lnref.data.gram`'s docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import Config, ConfigError
from ..kernels import gram as KG
from ..kernels import normals as _normals
from ..kernels.equations import scaled_test_inner
from ..kernels.seeding import stream_state
from . import STREAMS, flip_labels, stream
from .gram_stats import GramData, GramStats, GramTestSet, cross_t


def virtual_test(
    cfg: Config,
    coords: np.ndarray,
    e1: np.ndarray,
    stats: GramStats,
    y: np.ndarray,
    rng: np.random.Generator | None = None,
    kind: str | None = None,
    n_test: int | None = None,
    flipped_labels: bool | None = None,
) -> GramTestSet:
    """Draw a test set through its inner products with the training vectors (exact law; module docstring).

    Parameters
    ----------
    cfg : Config (sigma_p, sigma_zeta, noise, flip rates, defaults for kind / n_test / flipped_labels)
    coords : ndarray (n + 2m, r), e1 : ndarray (n + 2m,)
        Coordinates of the training vectors (:func:`sample_gram` or :func:`coordinates`).
    stats : GramStats of the same vectors; y : ndarray (n,) true training labels
    rng : Generator, default stream 'test' of ``cfg.seed``

    Returns
    -------
    GramTestSet

    Notes
    -----
    SPEC.md section 1 (test distributions): iid xi_t ~ N(0, sigma_p^2 Sigma); spurious xi_t = xi_k + zeta,
    zeta ~ N(0, sigma_zeta^2 Sigma), label y_k.
    """
    kind = cfg.test if kind is None else kind
    n_test = cfg.n_test if n_test is None else int(n_test)
    flipped = cfg.test_flipped_labels if flipped_labels is None else bool(flipped_labels)
    rng = stream(cfg.seed, "test") if rng is None else rng
    n = stats.n
    y_t, idx, scale, zT, a, y_score = _test_draws(cfg, rng, kind, n_test, flipped, coords.shape[1], y)
    fresh = cross_t(coords, zT)
    fresh *= scale
    if cfg.noise == "isotropic":
        fresh += np.multiply.outer(e1, a)
        ct = cfg.mu_norm * a
    else:
        ct = np.zeros(n_test)
    if kind == "spurious":
        fresh[:n] += stats.G[:, idx]
        fresh[n:] += stats.P0[:, idx]
        ct = ct + stats.c[idx]
    return GramTestSet(
        Pt=np.ascontiguousarray(fresh[n:]),
        Gt=np.ascontiguousarray(fresh[:n]),
        ct=np.ascontiguousarray(ct),
        y=y_t,
        y_score=np.ascontiguousarray(y_score),
        name=kind,
    )


def _test_draws(cfg: Config, rng: np.random.Generator, kind: str, n_test: int, flipped: bool, r: int, y: np.ndarray):
    """The draws of a virtual test set, in the order of the module docstring.

    Returns y_t (T,), idx (T,) int64 (spurious; empty for iid), scale, zT (r, T) (the drawn z (T, r)
    transposed), a (T,) (isotropic, already scaled; None otherwise), y_score (T,).
    """
    n = y.shape[0]
    if kind == "iid":
        y_t = 2.0 * rng.integers(0, 2, n_test).astype(np.float64) - 1.0
        idx = np.empty(0, dtype=np.int64)
        scale = cfg.sigma_p
    elif kind == "spurious":
        idx = rng.integers(0, n, n_test)
        y_t = np.ascontiguousarray(y[idx], dtype=np.float64)
        scale = cfg.sigma_zeta
    else:
        raise ConfigError(f"test={kind!r} is not allowed: choose 'iid' or 'spurious'")
    zT = _normals.standard_normal(rng, (n_test, r), transposed=True)
    a = scale * rng.standard_normal(n_test) if cfg.noise == "isotropic" else None
    y_score = flip_labels(rng, y_t, cfg.tau_plus, cfg.tau_minus, "independent") if flipped else y_t
    return y_t, idx, float(scale), zT, a, y_score


def virtual_test_accuracy(
    cfg: Config,
    data: GramData,
    gamma: np.ndarray,
    rho: np.ndarray,
    B: np.ndarray,
    bias: np.ndarray,
    xi_sq: np.ndarray,
    mu_sq: float,
    q: float,
    div: float,
) -> float:
    """Accuracy on the virtual test set of ``cfg`` (stream 'test') of the state (gamma, rho), without building it.

    The same draws and the same floating-point operations as ``CoefficientEngine.test_accuracy(
    virtual_test(cfg, data.coords, data.e1, data.stats, data.y))``, so the same value bit for bit, with less
    memory traffic (one fused kernel, :func:`lnref.kernels.gram.virtual_test_correct`).  For sweeps.

    Parameters
    ----------
    cfg : Config (test fields, sigma_p / sigma_zeta, noise, mu_norm, seed)
    data : GramData from :func:`sample_gram` (``sample_gram(cfg, draw_test=False)`` is enough)
    gamma : ndarray (2m,), rho : ndarray (2m, n)   the state (flattened filters)
    B : ndarray (2m,)   <w_f, mu> of that state (CoefficientEngine.B after forward())
    bias : ndarray (2m,)   the biases of that state (zeros without ``cfg.bias``)
    xi_sq : ndarray (n,), mu_sq : float, q : float, div : float   as the engine holds them

    Returns
    -------
    float   (NaN if n_test = 0)

    Notes
    -----
    SPEC.md sections 1, 2 and 4 (test distributions, network output, inner products in coefficients).
    """
    n_test = cfg.n_test
    if n_test == 0:
        return math.nan
    stats = data.stats
    t = virtual_test_inputs(cfg, data.coords, data.y, stats.c, mu_sq)
    count = KG.virtual_test_correct(
        data.coords,
        t.zT,
        t.scale,
        data.e1,
        t.a,
        t.isotropic,
        t.idx,
        stats.G,
        stats.P0,
        xi_sq,
        t.ct_mu,
        gamma,
        rho,
        B,
        bias,
        t.y_t,
        t.y_score,
        float(q),
        int(stats.m),
        float(div),
    )
    return count / n_test


def fresh_test_accuracy(
    cfg: Config,
    data: GramData,
    step: int,
    gamma: np.ndarray,
    rho: np.ndarray,
    A: np.ndarray,
    B: np.ndarray,
    bias: np.ndarray,
    xi_sq: np.ndarray,
    q: float,
    div: float,
) -> float:
    """Accuracy of the state (gamma, rho) at GD step ``step`` on a fresh virtual test set (``virtual_test='fresh'``).

    Given the weights w_f of the state, a test noise xi ~ N(0, s^2 Sigma) enters the network only through
    <w_f, xi>, f = 1..2m, which are jointly N(0, s^2 K) with K[f, g] = <w_f, Sigma w_g>; so n_test draws of
    s L u (L L^T = K, u ~ N(0, I_2m)) give a test set with exactly the law of an explicit one at this state, at 2m
    normals per sample.  Draws, from stream ``fresh_test`` of step ``step`` (:func:`lnref.data.step_stream`):
    ``integers(0, 2, n_test)`` (iid labels) or ``integers(0, n, n_test)`` (spurious: the training index k_t, label
    y_k, xi_t = xi_k + zeta), then u (n_test, 2m) row by row (:func:`lnref.kernels.normals.standard_normal`), then, if
    test_flipped_labels, ``random(n_test)`` flips as in :func:`lnref.make_test`: the numbers those calls give,
    made from the stream's words by one kernel with the evaluation
    (:func:`lnref.kernels.gram.fresh_test_correct`; L from :func:`fresh_test_factor`).

    Parameters
    ----------
    cfg : Config; data : GramData from :func:`sample_gram`; step : int (the GD step of the state)
    gamma : ndarray (2m,), rho : ndarray (2m, n)   the state (flattened filters)
    A : ndarray (2m, n), B : ndarray (2m,)   <w_f, xi_i> and <w_f, mu> of the state (after forward())
    bias : ndarray (2m,); xi_sq : ndarray (n,); q, div : as the engine holds them

    Returns
    -------
    float   (NaN if n_test = 0)

    Notes
    -----
    SPEC.md sections 1, 2 and 4 ("Virtual test sets").
    """
    n_test = cfg.n_test
    if n_test == 0:
        return math.nan
    spurious = cfg.test == "spurious"  # Config allows 'iid' and 'spurious' only
    # the stream is only read by the kernel, which makes every draw from its words (a fresh generator: no buffered
    # 32-bit half)
    words = stream_state(cfg.seed, (STREAMS["fresh_test"], int(step)))  # step_stream's state, no generator built
    L = fresh_test_factor(cfg, data, gamma, rho, xi_sq)
    count = KG.fresh_test_correct(
        L,
        words,
        _normals.ZIG_K,
        _normals.ZIG_W,
        _normals.ZIG_F,
        _normals.TAIL_R,
        int(n_test),
        data.y.shape[0] if spurious else 0,
        data.y,
        float(cfg.sigma_zeta if spurious else cfg.sigma_p),
        A,
        B,
        bias,
        bool(cfg.test_flipped_labels),
        float(cfg.tau_plus),
        float(cfg.tau_minus),
        float(q),
        int(cfg.m),
        float(div),
    )
    return count / n_test


def fresh_test_factor(cfg: Config, data: GramData, gamma: np.ndarray, rho: np.ndarray, xi_sq: np.ndarray) -> np.ndarray:
    """L (2m, 2m) lower triangular with L L^T = K, K[f, g] = <w_f, Sigma w_g> for the state (gamma, rho) (flattened
    filters): <w_f, xi> for a fresh noise xi ~ N(0, s^2 Sigma) is s L u with u ~ N(0, I_2m)
    (:func:`lnref.kernels.gram.fresh_test_factor`; SPEC.md section 4, "Virtual test sets")."""
    L = np.empty((2 * cfg.m, 2 * cfg.m))
    KG.fresh_test_factor(
        data.coords, data.e1, float(data.mu_norm), cfg.noise == "isotropic", gamma, rho, xi_sq, int(cfg.m), L
    )
    return L


@dataclass(frozen=True, eq=False)
class VirtualTestInputs:
    """The draws of a virtual test set (stream 'test') as :func:`lnref.kernels.gram.virtual_test_correct` takes
    them: zT (r, T), scale, a (T,) (isotropic e_1 parts; zeros otherwise), isotropic, idx (T,) int64 (spurious;
    empty for iid), ct_mu (T,) = <mu, xi_t>/||mu||^2 (zeros if mu = 0), y_t (T,), y_score (T,)."""

    zT: np.ndarray
    scale: float
    a: np.ndarray
    isotropic: bool
    idx: np.ndarray
    ct_mu: np.ndarray
    y_t: np.ndarray
    y_score: np.ndarray


def virtual_test_inputs(
    cfg: Config, coords: np.ndarray, y: np.ndarray, c: np.ndarray, mu_sq: float
) -> VirtualTestInputs:
    """Draw the virtual test set of ``cfg`` (stream 'test', n_test > 0) for training vectors with coordinates
    ``coords``, labels y and <xi_i, mu> = c (n,), ||mu||^2 = mu_sq (the same draws as :func:`virtual_test`)."""
    n_test = cfg.n_test
    kind = cfg.test
    y_t, idx, scale, zT, a, y_score = _test_draws(
        cfg, stream(cfg.seed, "test"), kind, n_test, cfg.test_flipped_labels, coords.shape[1], y
    )
    isotropic = cfg.noise == "isotropic"
    if isotropic:
        ct = cfg.mu_norm * a
    else:
        ct = np.zeros(n_test)
        a = ct
    if kind == "spurious":
        ct = ct + c[idx]
    ct_mu, _ = scaled_test_inner(ct, mu_sq)
    return VirtualTestInputs(
        zT=zT,
        scale=scale,
        a=a,
        isotropic=isotropic,
        idx=idx,
        ct_mu=np.ascontiguousarray(ct_mu),
        y_t=y_t,
        y_score=np.ascontiguousarray(y_score),
    )
