"""Numba kernels of Gram sampling and of the coefficient engine's test sets (SPEC.md section 4, "Gram sampling" and
"Virtual test sets"): the cross products of sampled coordinates, the Gram statistics of a run, the engine's scaled
statistics, and the accuracy on a virtual or a fresh test set computed from the coefficients.

Every equation is computed by the one function of :mod:`lnref.kernels.equations` that implements it (the outputs,
the inner products from coefficients, the weights from coefficients, the Cholesky factor); the kernels here only
arrange them into loops.  Same rules as :mod:`lnref.kernels.coefficients` (docs/DESIGN.md "Numerics"):
preallocated outputs, random numbers only from a PCG64 state passed in (:mod:`lnref.kernels.normals`), every sum a
serial loop in index order; kernels with a ``prange`` are compiled twice (``name`` and ``name_serial``, the same
bits).  Layouts and the Gram statistics' names as in :mod:`lnref.kernels.coefficients`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .cache import both, inline, kernel
from .equations import (
    chain_rows,
    coefficient_inner,
    gather_nonzero,
    outputs_range,
    over_mu_sq,
    over_xi_sq,
    psd_cholesky,
    weight_row,
)
from .normals import bounded_integers, next_word, ziggurat_fill

__all__ = [
    "cross",
    "cross_serial",
    "gram_stats",
    "gram_stats_serial",
    "virtual_test_correct",
    "fresh_test_factor",
    "fresh_test_correct",
    "engine_scalings",
    "training_labels",
    "TEST_BLOCK",
    "PSD_TOL",
]


def _cross(Y, ZT, out):
    """out[a, t] = <Y[a], Z[t]> = sum_c Y[a, c] ZT[c, t] (Y (k, r), ZT (r, T)), serial over c in index order.

    Written as axpy updates of the row out[a, :] (vectorised over t, eight terms per pass,
    :func:`~lnref.kernels.equations.chain_rows`); zero entries of Y (the upper triangle of a Bartlett factor) are
    skipped. With ZT = Y^T the result is exactly symmetric (same products, same order).
    """
    k, r = Y.shape
    T = ZT.shape[1]
    for a in prange(k):
        for t in range(T):
            out[a, t] = 0.0
        nz = np.empty(r, dtype=np.int64)
        chain_rows(out[a], Y[a], ZT, nz, gather_nonzero(Y[a], nz), T)


cross, cross_serial = both(_cross)


# test points evaluated together by virtual_test_correct (cache blocking; not a numerical choice)
TEST_BLOCK = 128


@kernel
def virtual_test_correct(
    coords,
    ZT,
    scale,
    e1,
    a_t,
    isotropic,
    idx,
    G,
    P0,
    xi_sq,
    ct_mu,
    gamma,
    rho,
    B,
    bias,
    y_t,
    y_score,
    q,
    m,
    div,
    block=TEST_BLOCK,
):
    """Number of virtual test samples with y_score * f > 0, fused: the same bits as lnref.data.gram.virtual_test
    followed by CoefficientEngine.test_accuracy, without their (k, T) and (F, T) intermediate arrays.

    coords (k, r), ZT (r, T): the test coordinates as drawn, transposed (column t = z_t; lnref.kernels.normals draws
    them in this layout); per test sample t and training vector a:
      fresh[a, t] = scale * sum_c coords[a, c] ZT[c, t]       (serial in c, zero coords skipped, as :func:`cross`)
                    [+ e1[a] a_t[t] if isotropic] [+ G[a, idx[t]] or P0[a - n, idx[t]] if idx is not empty]
      Gtn[i, t] = fresh[i, t] / xi_sq[i] (i < n), Pt[f, t] = fresh[n + f, t],
      At[f, t] = Pt[f, t] + s_j gamma_f ct_mu[t] + sum_i rho_{f,i} Gtn[i, t]   (as :func:`test_inner`),
    then f_t from At and B as :func:`test_outputs`.  Every value is computed with the same operations in the
    same order as those functions, so the count equals theirs bit for bit (the serial sums run four terms per
    pass, :func:`~lnref.kernels.equations.chain_rows`, which is the same sequence of roundings); the inner products
    from coefficients are :func:`~lnref.kernels.equations.coefficient_inner` and the outputs
    :func:`~lnref.kernels.equations.outputs_range`, as for every other set of samples.  Serial (one call per run in
    sweeps). SPEC.md sections 1, 2 and 4.
    """
    k, r = coords.shape
    F, n = rho.shape
    T = ZT.shape[1]
    spurious = idx.shape[0] > 0
    fresh = np.empty((k, block))
    At = np.empty((F, block))
    Zb = np.empty((r, block))  # the block's columns of ZT (reading ZT in place is 2x slower: cache conflicts)
    nzc = np.empty((k, r), dtype=np.int64)  # non-zero coordinates of each training vector, in index order
    cntc = np.empty(k, dtype=np.int64)
    for a in range(k):
        cntc[a] = gather_nonzero(coords[a], nzc[a])
    nzi = np.empty((F, n), dtype=np.int64)  # non-zero rho of each filter, in index order
    cnti = np.empty(F, dtype=np.int64)
    for f in range(F):
        cnti[f] = gather_nonzero(rho[f], nzi[f])
    acc = np.empty((2, block))
    outb = np.empty(block)
    count = 0
    for t0 in range(0, T, block):
        nb = min(block, T - t0)
        for c in range(r):
            for tb in range(nb):
                Zb[c, tb] = ZT[c, t0 + tb]
        for a in range(k):
            for tb in range(nb):
                fresh[a, tb] = 0.0
            chain_rows(fresh[a], coords[a], Zb, nzc[a], cntc[a], nb)
            for tb in range(nb):
                fresh[a, tb] *= scale
            if isotropic:
                for tb in range(nb):
                    fresh[a, tb] += e1[a] * a_t[t0 + tb]
            if spurious:
                if a < n:
                    for tb in range(nb):
                        fresh[a, tb] += G[a, idx[t0 + tb]]
                else:
                    for tb in range(nb):
                        fresh[a, tb] += P0[a - n, idx[t0 + tb]]
            if a < n:
                for tb in range(nb):
                    fresh[a, tb] = over_xi_sq(fresh[a, tb], xi_sq[a])
        for f in range(F):
            g = (1.0 if f < m else -1.0) * gamma[f]
            coefficient_inner(At[f, :nb], fresh[n + f, :nb], g, ct_mu[t0 : t0 + nb], rho[f], fresh, nzi[f], cnti[f])
        outputs_range(At, B, bias, y_t[t0 : t0 + nb], q, m, div, 0, nb, acc, outb)
        for tb in range(nb):
            if y_score[t0 + tb] * outb[tb] > 0:
                count += 1
    return count


# pivots at most this fraction of the largest variance are zero-variance directions
# (lnref.kernels.equations.psd_cholesky)
PSD_TOL = 1e-12


@kernel
def fresh_test_factor(coords, e1, mu_norm, isotropic, gamma, rho, xi_sq, m, L):
    """L (F, F), lower triangular with L L^T = K, K[f, g] = <w_f, Sigma w_g> for the current state: the covariance
    of <w_f, xi> for xi ~ N(0, Sigma) (virtual_test='fresh'; SPEC.md section 4, "Virtual test sets").

    coords (k, r), e1 (k,): the training vectors' coordinates as :func:`lnref.data.gram.sample_gram` draws them (rows
    xi_i, then w_f(0)).  V[f] = the coordinates of w_f, [e_1-orthogonal part | e_1 part]
    (:func:`~lnref.kernels.equations.weight_row` on [coords | e1], with mu = ||mu|| e_1); K[f, g] = <V[f], V[g]>
    over the e_1-orthogonal coordinates, plus the e_1 part if isotropic (Sigma = I; else Sigma = I - e_1 e_1^T),
    serial in the coordinate index; L = :func:`~lnref.kernels.equations.psd_cholesky` (K)
    with tolerance PSD_TOL max_f K[f, f].
    """
    k, r = coords.shape
    F, n = rho.shape
    R = r + 1
    C1 = np.empty((k, R))  # [coords | e1]
    for a in range(k):
        for c in range(r):
            C1[a, c] = coords[a, c]
        C1[a, r] = e1[a]
    mu = np.zeros(R)
    mu[r] = mu_norm
    mu_sq = mu_norm * mu_norm
    V = np.empty((F, R))
    for f in range(F):
        sj = 1.0 if f < m else -1.0
        weight_row(V[f], C1[n + f], over_mu_sq(sj * gamma[f], mu_sq), mu, rho[f], xi_sq, C1[:n])
    used = R if isotropic else r
    K = np.empty((F, F))
    kmax = 0.0
    for f in range(F):
        for g in range(f + 1):
            v = 0.0
            for c in range(used):
                v += V[f, c] * V[g, c]
            K[f, g] = v
            K[g, f] = v
        kmax = max(kmax, K[f, f])
    psd_cholesky(K, L, PSD_TOL * kmax)


@kernel
def fresh_test_correct(
    L,
    st,
    zk,
    zw,
    zf,
    tail_r,
    T,
    n_pick,
    y_train,
    scale,
    A,
    B,
    bias,
    flipped,
    tau_plus,
    tau_minus,
    q,
    m,
    div,
    block=TEST_BLOCK,
):
    """Number of samples with y_score * f > 0 in a fresh virtual test set of T samples (virtual_test='fresh';
    SPEC.md section 4, "Virtual test sets"), drawn here from the PCG64 state ``st`` of its stream (advanced).

    The draws are those of :func:`lnref.data.gram.fresh_test_accuracy`'s docstring, in its order, made from the
    stream's words as NumPy makes them: the labels ``integers(0, 2, T)`` (iid; n_pick = 0) or the training indices
    ``integers(0, n_pick, T)`` (spurious, label y_train[k_t]): Lemire's method on 32-bit halves of the words, low
    half first (NumPy's buffered 32-bit draws); then u_t, 2m standard normals per sample, sample by sample
    (:func:`lnref.kernels.normals.ziggurat_fill` with the tables zk, zw, zf, tail_r, on blocks of samples); then, if
    ``flipped``, one double U_t = (word >> 11) 2^-53 per sample (``random``), the label scored being -y_t when
    U_t < tau_{y_t}.  With L from :func:`fresh_test_factor`:
      At[f, t] = sum_{g <= f} (scale L[f, g]) u_t[g]  (serial in g, :func:`~lnref.kernels.equations.chain_rows`)
                 [+ A[f, k_t] for spurious test samples, xi_t = xi_k + zeta],
    then f_t from At, B and the biases (:func:`~lnref.kernels.equations.outputs_range`).  Serial; A (F, n) and B (F,)
    are the current state's (CoefficientEngine after forward()).
    """
    F = L.shape[0]
    spurious = n_pick > 0
    # the labels (or training indices): NumPy's integers, Lemire's method on buffered 32-bit halves
    picks = np.empty(T, dtype=np.int64)
    bounded_integers(st, n_pick if spurious else 2, picks)
    y_t = np.empty(T)
    for t in range(T):
        y_t[t] = y_train[picks[t]] if spurious else 2.0 * picks[t] - 1.0
    # the normals, block by block, and the outputs
    Ls = np.empty((F, F))
    nzl = np.empty((F, F), dtype=np.int64)  # the non-zero entries of each row of scale * L, in index order
    cntl = np.empty(F, dtype=np.int64)
    for f in range(F):
        for g in range(F):
            Ls[f, g] = scale * L[f, g]
        cntl[f] = gather_nonzero(Ls[f], nzl[f])
    At = np.empty((F, block))
    Ub = np.empty((F, block))  # u of the block's samples, column by column
    Ub_last = np.empty((F, T % block))
    acc = np.empty((2, block))
    fout = np.empty(T)
    for t0 in range(0, T, block):
        nb = min(block, T - t0)
        U = Ub if nb == block else Ub_last
        ziggurat_fill(st, zk, zw, zf, tail_r, U)
        for f in range(F):
            for tb in range(nb):
                At[f, tb] = 0.0
            chain_rows(At[f], Ls[f], U, nzl[f], cntl[f], nb)
            if spurious:
                for tb in range(nb):
                    At[f, tb] += A[f, picks[t0 + tb]]
        outputs_range(At, B, bias, y_t[t0 : t0 + nb], q, m, div, 0, nb, acc, fout[t0 : t0 + nb])
    # the flips of the scored labels (NumPy's random(): the top 53 bits of a word), and the count
    to_unit = 1.0 / 9007199254740992.0  # 2^-53
    count = 0
    for t in range(T):
        ys = y_t[t]
        if flipped:
            uni = np.float64(next_word(st) >> np.uint64(11)) * to_unit
            if uni < (tau_plus if ys > 0 else tau_minus):
                ys = -ys
        if ys * fout[t] > 0:
            count += 1
    return count


def _gram_stats(coords, e1, mu_norm, ZT, full, G, xi_sq, P0, b0, c):
    """Gram statistics from Gram-sampled coordinates (:func:`lnref.data.gram.stats_from_coordinates`).

    full (k, k) = cross(coords, coords) + outer(e1, e1) (ZT (r, k) = coords.T is work space), G = full[:n, :n],
    xi_sq = diag(G), P0 = full[n:, :n], c = ||mu|| e1[:n], b0 = ||mu|| e1[n:]; each entry of full a serial sum
    in index order, as :func:`cross`.  SPEC.md section 4.
    """
    k, r = coords.shape
    n = G.shape[0]
    for j in prange(r):
        for a in range(k):
            ZT[j, a] = coords[a, j]
    for a in prange(k):
        for b in range(k):
            full[a, b] = 0.0
        nzc = np.empty(r, dtype=np.int64)
        chain_rows(full[a], coords[a], ZT, nzc, gather_nonzero(coords[a], nzc), k)
        for b in range(k):
            full[a, b] = full[a, b] + e1[a] * e1[b]
    for i in range(n):
        for j in range(n):
            G[i, j] = full[i, j]
        xi_sq[i] = full[i, i]
        c[i] = mu_norm * e1[i]
    for fi in range(k - n):
        for j in range(n):
            P0[fi, j] = full[n + fi, j]
        b0[fi] = mu_norm * e1[n + fi]


gram_stats, gram_stats_serial = both(_gram_stats)


@kernel
def engine_scalings(G, xi_sq, c, mu_sq, P0, b0, Gn, cA, P):
    """The coefficient engine's precomputed tables (module docstring of :mod:`lnref.kernels.coefficients`), with the
    signal as lane n: Gn (n, >= n + 1) = [G / xi_sq[:, None] | c / xi_sq] (the columns after n untouched),
    cA (n + 1,) = [c / ||mu||^2 (0 when mu = 0) | 1], P (2m, n + 1) = [P0 | b0].  SPEC.md section 4."""
    n = G.shape[0]
    for i in range(n):
        for j in range(n):
            Gn[i, j] = over_xi_sq(G[i, j], xi_sq[i])
        Gn[i, n] = over_xi_sq(c[i], xi_sq[i])
        cA[i] = over_mu_sq(c[i], mu_sq)
    cA[n] = 1.0
    for f in range(P0.shape[0]):
        for j in range(n):
            P[f, j] = P0[f, j]
        P[f, n] = b0[f]


@kernel
def training_labels(st_data, st_flips, tau_plus, tau_minus, y, y_obs):
    """The labels of Gram sampling from the PCG64 states of streams data and flips (fresh, advanced): y = 2 b - 1 with
    b = ``integers(0, 2, n)`` (:func:`~lnref.kernels.normals.bounded_integers`), then the independent flips of
    :func:`lnref.data.flip_labels`, u = ``random(n)``, y_obs_i = -y_i if u_i < (tau_plus if y_i > 0 else tau_minus)
    else y_i: the numbers :func:`lnref.data.gram.gram_draws` draws with NumPy, from the same words (SPEC.md 1)."""
    n = y.shape[0]
    b = np.empty(n, dtype=np.int64)
    bounded_integers(st_data, 2, b)
    to_unit = 1.0 / 9007199254740992.0  # 2^-53
    for i in range(n):
        y[i] = 2.0 * np.float64(b[i]) - 1.0
    for i in range(n):
        u = np.float64(next_word(st_flips) >> np.uint64(11)) * to_unit
        y_obs[i] = -y[i] if u < (tau_plus if y[i] > 0 else tau_minus) else y[i]


# ----------------------------------------------------------------------------------- the Gram draws (stream gram)
@inline
def _bartlett_rows(rng, k, dof, scale, out, c0):
    """out[a, c0 + b] = scale T[a, b] for the coordinates T (k, min(k, dof)) of k standard normal vectors in R^dof
    (:mod:`lnref.data.gram`'s docstring), drawn from the NumPy Generator ``rng`` as ``Generator.chisquare`` and
    ``standard_normal`` draw them: for k <= dof the Bartlett factor, its diagonal sqrt(chi^2_{dof - a}) first
    (a = 0..k-1), then the entries below it row by row (the entries above stay as they are: zeros); for k > dof the
    vectors themselves, row by row.  numba's Generator methods are NumPy's algorithms on the same bit generator:
    the same numbers, the generator left in the same state (tests/test_gram.py)."""
    if k > dof:
        for a in range(k):
            for b in range(dof):
                out[a, c0 + b] = scale * rng.standard_normal()
        return
    for a in range(k):
        out[a, c0 + a] = scale * np.sqrt(rng.chisquare(np.float64(dof) - np.float64(a)))
    for a in range(1, k):
        for b in range(a):
            out[a, c0 + b] = scale * rng.standard_normal()


@kernel
def gaussian_gram_coordinates(rng, n, F, dof, sigma_p, sigma0, isotropic):
    """coords (n + F, min(n + F, dof)) and e1 (n + F,) for init='gaussian' (:func:`lnref.data.gram.gram_draws`),
    from stream gram's Generator ``rng``, in the order of the module docstring of :mod:`lnref.data.gram`: the
    filters' e_1 coordinates (``standard_normal(F)``, times sigma0), the noise's (isotropic only, times sigma_p),
    then the Bartlett coordinates of all n + F vectors in R^dof (dof = d - 1), rows scaled by sigma_p (noise) and
    sigma0 (filters)."""
    k = n + F
    e1 = np.empty(k)
    for f in range(F):
        e1[n + f] = sigma0 * rng.standard_normal()
    for i in range(n):
        e1[i] = sigma_p * rng.standard_normal() if isotropic else 0.0
    coords = np.zeros((k, min(k, dof)))
    _bartlett_rows(rng, k, dof, 1.0, coords, 0)
    for a in range(k):
        scale = sigma_p if a < n else sigma0
        for b in range(coords.shape[1]):
            coords[a, b] *= scale
    return coords, e1


@kernel
def torch_gram_coordinates(rng, W0, wcoords, n, dof, sigma_p, isotropic):
    """coords (n + F, s + r2) and e1 (n + F,) for init='torch' (:func:`lnref.data.gram.gram_draws`): W0 (F, d) the
    explicit filters, wcoords (F, s) their e_1-orthogonal parts in an orthonormal basis of their span (s = min(F,
    dof), dof = d - 1); from stream gram's Generator ``rng``, in the order of :mod:`lnref.data.gram`'s docstring:
    the noise's e_1 coordinates (isotropic only), its coordinates on the span (``standard_normal((n, s))``), then
    the Bartlett coordinates of the noise in the span's complement (dimension dof - s, r2 = min(n, dof - s) columns;
    none when dof = s), every noise coordinate times sigma_p; the filters' rows are [wcoords | 0], their e_1
    coordinates W0[:, 0]."""
    F = W0.shape[0]
    s = wcoords.shape[1]
    rest = dof - s
    r2 = min(n, rest) if rest > 0 else 0
    e1 = np.empty(n + F)
    for f in range(F):
        e1[n + f] = W0[f, 0]
    for i in range(n):
        e1[i] = sigma_p * rng.standard_normal() if isotropic else 0.0
    coords = np.zeros((n + F, s + r2))
    for i in range(n):
        for b in range(s):
            coords[i, b] = sigma_p * rng.standard_normal()
    if rest > 0:
        _bartlett_rows(rng, n, rest, sigma_p, coords, s)
    for f in range(F):
        for b in range(s):
            coords[n + f, b] = wcoords[f, b]
    return coords, e1
