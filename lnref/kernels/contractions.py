"""The weight engine's two contractions over d (SPEC.md sections 3 and 4), blocked for speed with a fixed summation
order: the inner products A[f, i] = <w_f, xi_i>, B[f] = <w_f, mu> of explicit weights (:func:`inner_group`, one
work group of filters) and the gradients of a range of filters as d-dimensional vectors (:func:`gradient_rows`,
which calls :func:`lnref.kernels.equations.filter_update` for the filters' terms and step).  The parallel loops
that call them are in :mod:`lnref.kernels.weights`.

Same rules as every kernel (docs/DESIGN.md "Numerics"): every output's summation order is fixed (written in each
docstring) and does not depend on the blocking, the work groups or the thread count, so the bits are the same for
every thread count and with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

from .equations import filter_update, gradient_scale, kernel
from .lane_blocks import lane_quads

__all__ = ["FILTER_BLOCK", "K_TILE", "GRAD_K_TILE", "work_units", "unit_rows", "inner_group", "gradient_rows"]

# Filters handled together by the inner-product kernel (each X^T row is loaded once per block: the four filters of
# lnref.kernels.lane_blocks.lane_quads).  Not a numerical choice: the summation order of every output is the same
# whatever the block (see inner_group).
FILTER_BLOCK = 4
# Rows of X^T per cache tile of inner_products (a multiple of 4): all filters of a thread sweep one tile while it
# sits in L2, so X^T is read from memory once per thread and step.  Not a numerical choice.
K_TILE = 256


@kernel(inline="always")
def _dot4_tail(A, W, XT, f, d4, d):
    """A[f] += W[f, k] X^T[k] for the k = d4..d-1 left over by the groups of four, one k at a time."""
    a = A[f]
    w = W[f]
    n = XT.shape[1]
    for k in range(d4, d):
        xk = XT[k]
        b = w[k]
        for i in range(n):
            a[i] += b * xk[i]


@kernel(inline="always")
def work_units(F):
    """Work units of the inner products: F // FILTER_BLOCK blocks of four filters, then the left-over ones."""
    nfull = F // FILTER_BLOCK
    return nfull + (F - nfull * FILTER_BLOCK)


@kernel(inline="always")
def unit_rows(F, u0, u1):
    """The filter rows [f_first, f_last) of the units u0 <= u < u1 (see :func:`work_units`)."""
    nfull = F // FILTER_BLOCK
    f_first = u0 * FILTER_BLOCK if u0 < nfull else nfull * FILTER_BLOCK + (u0 - nfull)
    f_last = u1 * FILTER_BLOCK if u1 <= nfull else nfull * FILTER_BLOCK + (u1 - nfull)
    return f_first, f_last


@kernel
def inner_group(W, mu, XT, A, B, u0, u1):
    """The inner products of :func:`lnref.kernels.weights.inner_products` for the filters of units u0 <= u < u1
    (one work group)."""
    F, d = W.shape
    n = XT.shape[1]
    d4 = d - d % 4
    f_first, f_last = unit_rows(F, u0, u1)
    for f in range(f_first, f_last):
        for i in range(n):
            A[f, i] = 0.0
    for k0 in range(0, d4, K_TILE):
        lane_quads(A, W, XT, f_first, f_last, k0, min(k0 + K_TILE, d4), 0, n)
    for f in range(f_first, f_last):
        _dot4_tail(A, W, XT, f, d4, d)
        s = 0.0
        for k in range(d):
            s += W[f, k] * mu[k]
        B[f] = s


# Columns k of G per tile of gradient_rows: every filter of a range takes a tile in turn, so the tile of each noise
# vector it reads (n x GRAD_K_TILE doubles) is mostly read from cache (bench/profile_weights.py: 15-20% faster than
# untiled at (n, d) = (200, 2000) and (100, 10000)).  Not a numerical choice.
GRAD_K_TILE = 1024


@kernel
def gradient_rows(
    f0,
    f1,
    A,
    B,
    bias,
    lpm,
    lpy,
    y,
    mu,
    X,
    q,
    m,
    div,
    rate,
    gscale,
    bscale,
    gamma,
    rho,
    gamma_new,
    rho_new,
    bias_new,
    G,
    S,
    Sb,
    C,
    bad,
    with_bias,
    active,
    nactive,
):
    """The body of :func:`lnref.kernels.weights.gradient` for the filters f0 <= f < f1: S[f], C[f], Sb[f], the new
    coefficients (:func:`lnref.kernels.equations.filter_update`) and G[f] = (s_j/(n div)) (S[f] mu + sum_i C[f, i]
    xi_i).  active (F, n) and nactive (F,) int64 are work space (the samples with C[f, i] != 0, in order).

    Summation order of each G[f, k] (fixed, the same for any range, tiling and thread count): the active samples in
    increasing i in groups of four, each group summed as ``(t0 + t1) + (t2 + t3)`` and added to the running sum,
    then the (count mod 4) last ones one at a time.  Two consecutive groups are added in one pass as
    ``(g + group1) + group2``, the same roundings as two passes with half the loads and stores of g (as
    :func:`lnref.kernels.equations.chain_rows` does).  Inactive ReLU units cost nothing.  Speed only: the sums run
    over tiles of GRAD_K_TILE columns that every filter of the range takes in turn, so the tile of X stays in cache.
    """
    d = G.shape[1]
    n = X.shape[0]
    filter_update(
        f0,
        f1,
        m,
        A,
        B,
        bias,
        y,
        lpm,
        lpy,
        q,
        rate,
        gscale,
        bscale,
        gamma,
        rho,
        gamma_new,
        rho_new,
        bias_new,
        S,
        Sb,
        C,
        bad,
        with_bias,
    )
    for f in range(f0, f1):
        na = 0
        for i in range(n):
            if C[f, i] != 0.0:
                active[f, na] = i
                na += 1
        nactive[f] = na
        for k in range(d):
            G[f, k] = 0.0
    for k0 in range(0, d, GRAD_K_TILE):
        k1 = min(d, k0 + GRAD_K_TILE)
        for f in range(f0, f1):
            _tile_sum(G[f, k0:k1], C[f], X, active[f], nactive[f], k0, k1)
    for f in range(f0, f1):
        sj = 1.0 if f < m else -1.0
        s = S[f]
        g = G[f]
        scale = gradient_scale(sj, n, div)
        for k in range(d):
            g[k] = scale * (s * mu[k] + g[k])


@kernel(inline="always")
def _tile_sum(g, c, X, act, na, k0, k1):
    """g[k - k0] += sum over the active i of c[i] X[i, k] for k0 <= k < k1, in the order of :func:`gradient_rows`."""
    w = k1 - k0
    na4 = na - na % 4
    na8 = na4 - na4 % 8
    for j in range(0, na8, 8):
        i0 = act[j]
        i1 = act[j + 1]
        i2 = act[j + 2]
        i3 = act[j + 3]
        i4 = act[j + 4]
        i5 = act[j + 5]
        i6 = act[j + 6]
        i7 = act[j + 7]
        c0 = c[i0]
        c1 = c[i1]
        c2 = c[i2]
        c3 = c[i3]
        c4 = c[i4]
        c5 = c[i5]
        c6 = c[i6]
        c7 = c[i7]
        x0 = X[i0, k0:k1]
        x1 = X[i1, k0:k1]
        x2 = X[i2, k0:k1]
        x3 = X[i3, k0:k1]
        x4 = X[i4, k0:k1]
        x5 = X[i5, k0:k1]
        x6 = X[i6, k0:k1]
        x7 = X[i7, k0:k1]
        for k in range(w):
            g[k] = (g[k] + ((c0 * x0[k] + c1 * x1[k]) + (c2 * x2[k] + c3 * x3[k]))) + (
                (c4 * x4[k] + c5 * x5[k]) + (c6 * x6[k] + c7 * x7[k])
            )
    for j in range(na8, na4, 4):
        i0 = act[j]
        i1 = act[j + 1]
        i2 = act[j + 2]
        i3 = act[j + 3]
        c0 = c[i0]
        c1 = c[i1]
        c2 = c[i2]
        c3 = c[i3]
        x0 = X[i0, k0:k1]
        x1 = X[i1, k0:k1]
        x2 = X[i2, k0:k1]
        x3 = X[i3, k0:k1]
        for k in range(w):
            g[k] += (c0 * x0[k] + c1 * x1[k]) + (c2 * x2[k] + c3 * x3[k])
    for j in range(na4, na):
        c0 = c[act[j]]
        x0 = X[act[j], k0:k1]
        for k in range(w):
            g[k] += c0 * x0[k]
