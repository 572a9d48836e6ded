"""Numba kernels of the weight-space reference engine (SPEC.md sections 2-4).

Rules (DESIGN.md "Numerics"): kernels take preallocated outputs, draw no random numbers and read no module
globals; ``prange`` runs only over independent outputs (filters, samples) and every reported sum is a serial
loop in index order, so results are bit-identical for any thread count and with ``NUMBA_DISABLE_JIT=1``.
No fastmath, ``error_model="numpy"``, the exponent q is a float64 (``pow``).

Layouts: filters are flattened to ``F = 2m`` rows, row ``f = j_index * m + r`` (j_index 0 is j = +1).
``X`` is (n, d) row-major, ``XT`` is its transpose (d, n) row-major.
"""
from __future__ import annotations

import math
import os

import numpy as np
import numba
from numba import njit, prange

# Disk caching of compiled kernels is opt-in (DESIGN.md): LNREF_CACHE=1 stores them next to the package (or in
# NUMBA_CACHE_DIR), so later processes skip the first-call compile.
CACHE = os.environ.get("LNREF_CACHE", "").strip().lower() in ("1", "true", "yes", "on")
_opts = dict(cache=CACHE, error_model="numpy", fastmath=False)
# Filters handled together by the inner-product kernel (each X^T row is loaded once per block; the block size is
# written out in the kernel's unrolled body).  Not a numerical choice: the summation order of every output is
# the same whatever the block (see inner_products).
FILTER_BLOCK = 4


@njit(inline="always", **_opts)
def act(z, q):
    """sigma(z) = max(0, z)**q (SPEC.md section 2)."""
    if z > 0.0:
        return z ** q
    return 0.0


@njit(inline="always", **_opts)
def dact(z, q):
    """sigma'(z) = q max(0, z)**(q - 1), and 0 for z <= 0 (SPEC.md section 2)."""
    if z > 0.0:
        return q * z ** (q - 1.0)
    return 0.0


@njit(inline="always", **_opts)
def logistic_loss(z):
    """l(z) = log(1 + exp(-z)) without overflow for any finite z (SPEC.md section 3)."""
    if z > 0.0:
        return math.log1p(math.exp(-z))
    return -z + math.log1p(math.exp(z))


@njit(inline="always", **_opts)
def logistic_dloss(z):
    """l'(z) = -1/(1 + exp(z)) = -sigmoid(-z), in (-1, 0), without overflow (SPEC.md section 3)."""
    if z >= 0.0:
        e = math.exp(-z)
        return -e / (1.0 + e)
    return -1.0 / (1.0 + math.exp(z))


@njit(parallel=True, **_opts)
def project_out(G, u):
    """G[r] <- G[r] - <G[r], u> u for every row (u a unit vector); exact when u = e_1."""
    rows, d = G.shape
    for r in prange(rows):
        c = 0.0
        for k in range(d):
            c += G[r, k] * u[k]
        for k in range(d):
            G[r, k] = G[r, k] - c * u[k]


@njit(inline="always", **_opts)
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


@njit(inline="always", **_opts)
def _block4_rows(A, W, XT, f0, k0, k1):
    """Add the terms k0 <= k < k1 (k0, k1 multiples of 4) to the running sums A[f0..f0+3] (see inner_products)."""
    n = XT.shape[1]
    a0 = A[f0]
    a1 = A[f0 + 1]
    a2 = A[f0 + 2]
    a3 = A[f0 + 3]
    w0 = W[f0]
    w1 = W[f0 + 1]
    w2 = W[f0 + 2]
    w3 = W[f0 + 3]
    for k in range(k0, k1, 4):
        xp = XT[k]
        xq = XT[k + 1]
        xr = XT[k + 2]
        xs = XT[k + 3]
        b0, c0, e0, g0 = w0[k], w0[k + 1], w0[k + 2], w0[k + 3]
        b1, c1, e1, g1 = w1[k], w1[k + 1], w1[k + 2], w1[k + 3]
        b2, c2, e2, g2 = w2[k], w2[k + 1], w2[k + 2], w2[k + 3]
        b3, c3, e3, g3 = w3[k], w3[k + 1], w3[k + 2], w3[k + 3]
        for i in range(n):
            p = xp[i]
            q = xq[i]
            r = xr[i]
            s = xs[i]
            a0[i] += (b0 * p + c0 * q) + (e0 * r + g0 * s)
            a1[i] += (b1 * p + c1 * q) + (e1 * r + g1 * s)
            a2[i] += (b2 * p + c2 * q) + (e2 * r + g2 * s)
            a3[i] += (b3 * p + c3 * q) + (e3 * r + g3 * s)


@njit(inline="always", **_opts)
def _single_row(A, W, XT, f, k0, k1):
    """The same as _block4_rows for one filter (the F mod 4 left over), same summation order."""
    n = XT.shape[1]
    a = A[f]
    w = W[f]
    for k in range(k0, k1, 4):
        xp = XT[k]
        xq = XT[k + 1]
        xr = XT[k + 2]
        xs = XT[k + 3]
        b, c, e, g = w[k], w[k + 1], w[k + 2], w[k + 3]
        for i in range(n):
            a[i] += (b * xp[i] + c * xq[i]) + (e * xr[i] + g * xs[i])


# Rows of X^T per cache tile of inner_products (a multiple of 4): all filters of a thread sweep one tile while it
# sits in L2, so X^T is read from memory once per thread and step.  Not a numerical choice.
K_TILE = 256


@njit(parallel=True, **_opts)
def inner_products(W, mu, XT, A, B):
    """A[f, i] = <W[f], X[i]> and B[f] = <W[f], mu>.

    W (F, d), mu (d,), XT (d, n) -> A (F, n), B (F,).

    Summation order (fixed, the same for every thread count, tiling and with NUMBA_DISABLE_JIT=1): the terms
    W[f, k] X[i, k] are taken in groups of four consecutive k, each group summed as ``(t0 + t1) + (t2 + t3)`` and
    added to the running sum in increasing k; the d mod 4 last terms are then added one at a time.  B is a plain
    serial sum over k.

    Blocking (speed only): FILTER_BLOCK filters share every load of four rows of X^T and the loop over samples i
    vectorises (each lane is one sample's own sum), so a running-sum load and store is paid once per four
    multiply-adds; each thread takes a contiguous range of filter blocks and sweeps them over tiles of K_TILE
    rows of X^T, so X^T is streamed from memory once per thread.
    """
    F = W.shape[0]
    units = _units(F)
    groups = min(units, numba.get_num_threads())
    for g in prange(groups):
        u0 = (units * g) // groups
        u1 = (units * (g + 1)) // groups
        _inner_group(W, mu, XT, A, B, u0, u1)


@njit(inline="always", **_opts)
def _units(F):
    """Work units of :func:`inner_products`: F // FILTER_BLOCK blocks of four filters, then the left-over ones."""
    nfull = F // FILTER_BLOCK
    return nfull + (F - nfull * FILTER_BLOCK)


@njit(inline="always", **_opts)
def _unit_rows(F, u0, u1):
    """The filter rows [f_first, f_last) of the units u0 <= u < u1 (see :func:`_units`)."""
    nfull = F // FILTER_BLOCK
    f_first = u0 * FILTER_BLOCK if u0 < nfull else nfull * FILTER_BLOCK + (u0 - nfull)
    f_last = u1 * FILTER_BLOCK if u1 <= nfull else nfull * FILTER_BLOCK + (u1 - nfull)
    return f_first, f_last


@njit(**_opts)  # a called function, not inlined: the parallel kernels using it compile faster
def _inner_group(W, mu, XT, A, B, u0, u1):
    """The body of :func:`inner_products` for the units u0 <= u < u1: A[f], B[f] of their filter rows."""
    F, d = W.shape
    n = XT.shape[1]
    d4 = d - d % 4
    nfull = F // FILTER_BLOCK
    f_first, f_last = _unit_rows(F, u0, u1)
    for f in range(f_first, f_last):
        for i in range(n):
            A[f, i] = 0.0
    for k0 in range(0, d4, K_TILE):
        k1 = min(k0 + K_TILE, d4)
        for u in range(u0, u1):
            if u < nfull:
                _block4_rows(A, W, XT, u * FILTER_BLOCK, k0, k1)
            else:
                _single_row(A, W, XT, nfull * FILTER_BLOCK + (u - nfull), k0, k1)
    for f in range(f_first, f_last):
        _dot4_tail(A, W, XT, f, d4, d)
        s = 0.0
        for k in range(d):
            s += W[f, k] * mu[k]
        B[f] = s


@njit(parallel=True, **_opts)
def forward(A, B, y, q, m, out):
    """f_i = F_{+1} - F_{-1}, F_j = (1/m) sum_r [sigma(<w_jr, y_i mu>) + sigma(<w_jr, xi_i>)] (SPEC.md section 2).

    A (2m, n) noise inner products, B (2m,) <w, mu>, y (n,) true labels (the signal patch is y_i mu) -> out (n,).
    """
    n = A.shape[1]
    for i in prange(n):
        _forward_sample(A, B, y, q, m, out, i)


@njit(**_opts)  # a called function, not inlined: the parallel kernels using it compile faster
def _forward_sample(A, B, y, q, m, out, i):
    """The body of :func:`forward` for sample i."""
    fp = 0.0
    fm = 0.0
    for r in range(m):
        fp += act(y[i] * B[r], q) + act(A[r, i], q)
    for r in range(m):
        fm += act(y[i] * B[m + r], q) + act(A[m + r, i], q)
    out[i] = fp / m - fm / m


@njit(**_opts)
def losses(f, mult, loss_out, dloss_out):
    """loss_out[i] = l(mult_i f_i), dloss_out[i] = l'(mult_i f_i).

    Serial: O(n) work never repays a parallel region's start-up, and a serial kernel compiles faster."""
    for i in range(f.shape[0]):
        z = mult[i] * f[i]
        loss_out[i] = logistic_loss(z)
        dloss_out[i] = logistic_dloss(z)


@njit(parallel=True, **_opts)
def gradient(A, B, lpm, y, mu, X, q, m, G, S, C):
    """Gradient of L at W from the inner products (SPEC.md section 3).

    lpm[i] = l'_i * mult_i with mult_i = y_obs_i (plain GD) or eps_i y_obs_i (label-noise GD).
    Outputs, for each filter f = (j, r) with sign s_j:
      S[f]    = sum_i lpm_i y_i sigma'(y_i <w_f, mu>)               (serial over i)
      C[f, i] = lpm_i sigma'(<w_f, xi_i>)                            (noise coefficient)
      G[f]    = (s_j/(n m)) * (S[f] mu + sum_i C[f, i] xi_i)

    Summation order of sum_i C[f, i] xi_i (fixed; the same for every thread count and with NUMBA_DISABLE_JIT=1):
    the samples with C[f, i] != 0 (the others add nothing), in increasing i, are taken in groups of four, each
    group summed as ``(t0 + t1) + (t2 + t3)`` and added to the running sum; the last (count mod 4) one at a
    time.  Inactive ReLU units cost nothing, and a running-sum load and store is paid once per four terms.
    """
    F = G.shape[0]
    for f in prange(F):
        _gradient_row(A, B, lpm, y, mu, X, q, m, G, S, C, f)


@njit(**_opts)  # a called function, not inlined: the parallel kernels using it compile faster
def _gradient_row(A, B, lpm, y, mu, X, q, m, G, S, C, f):
    """The body of :func:`gradient` for filter f: S[f], C[f], G[f]."""
    d = G.shape[1]
    n = X.shape[0]
    sj = 1.0 if f < m else -1.0
    s = 0.0
    for i in range(n):
        s += lpm[i] * y[i] * dact(y[i] * B[f], q)
    S[f] = s
    g = G[f]
    for k in range(d):
        g[k] = 0.0
    active = np.empty(n, dtype=np.int64)
    na = 0
    for i in range(n):
        c = lpm[i] * dact(A[f, i], q)
        C[f, i] = c
        if c != 0.0:
            active[na] = i
            na += 1
    na4 = na - na % 4
    for j in range(0, na4, 4):
        i0 = active[j]
        i1 = active[j + 1]
        i2 = active[j + 2]
        i3 = active[j + 3]
        c0 = C[f, i0]
        c1 = C[f, i1]
        c2 = C[f, i2]
        c3 = C[f, i3]
        x0 = X[i0]
        x1 = X[i1]
        x2 = X[i2]
        x3 = X[i3]
        for k in range(d):
            g[k] += (c0 * x0[k] + c1 * x1[k]) + (c2 * x2[k] + c3 * x3[k])
    for j in range(na4, na):
        c = C[f, active[j]]
        x = X[active[j]]
        for k in range(d):
            g[k] += c * x[k]
    scale = sj / (n * m)
    for k in range(d):
        g[k] = scale * (s * mu[k] + g[k])


@njit(parallel=True, **_opts)
def descend(W, G, eta):
    """W <- W - eta G (SPEC.md section 3), elementwise, only if every new entry is finite.

    Returns the number of entries that would be non-finite (0 means the step was taken; otherwise W is
    left unchanged).  The count is an integer reduction, exact for any thread count.
    """
    F, d = W.shape
    bad = 0
    for f in prange(F):
        cnt = 0
        for k in range(d):
            v = W[f, k] - eta * G[f, k]
            if not math.isfinite(v):
                cnt += 1
        bad += cnt
    if bad == 0:
        for f in prange(F):
            for k in range(d):
                W[f, k] = W[f, k] - eta * G[f, k]
    return bad


@njit(parallel=True, **_opts)
def update_coefficients(gamma, rho, S, C, mu_sq, xi_sq, eta, m):
    """The recursions of SPEC.md section 4 from one step's S and C (see :func:`gradient`).

    gamma[f] -= (eta ||mu||^2/(n m)) S[f];  rho[f, i] -= (eta ||xi_i||^2/(n m)) s_j C[f, i].
    """
    F, n = rho.shape
    for f in prange(F):
        sj = 1.0 if f < m else -1.0
        gamma[f] = gamma[f] - (eta * mu_sq / (n * m)) * S[f]
        for i in range(n):
            rho[f, i] = rho[f, i] - (eta * xi_sq[i] / (n * m)) * (sj * C[f, i])


@njit(parallel=True, **_opts)
def row_sq_norms(X, out):
    """out[i] = ||X[i]||^2, serial over k."""
    n, d = X.shape
    for i in prange(n):
        s = 0.0
        for k in range(d):
            s += X[i, k] * X[i, k]
        out[i] = s


@njit(parallel=True, **_opts)
def transpose(X, XT):
    """XT[k, i] = X[i, k] (blocked copy)."""
    n, d = X.shape
    for k in prange(d):
        for i in range(n):
            XT[k, i] = X[i, k]


@njit(parallel=True, **_opts)
def advance(W, gamma, rho, X, XT, mu, y, mults, q, m, eta, mu_sq, xi_sq, A, B, f, loss, dloss, lpm, G, S, C, k):
    """Take up to k GD steps in one call (the weight engine's loop; SPEC.md sections 3-4).

    Step s uses the label multipliers ``mults[s]`` (or ``mults[0]`` for every step when mults has one row):
    y_obs for plain GD, eps * y_obs for label-noise GD.  Each step: inner products, outputs, l', gradient,
    W <- W - eta G, then the coefficient recursions.  Stops before a step whose outputs or new weights would
    be non-finite, leaving the last finite state; returns the number of steps taken.

    The same arithmetic as :func:`inner_products`, :func:`forward`, :func:`losses`, :func:`gradient`,
    :func:`descend` and :func:`update_coefficients` in turn (same bits), in two parallel regions per step
    (issue 13: every region ends in a barrier, and a barrier costs a time slice when a thread is descheduled):

    1. over samples: the outputs f (:func:`forward`);
    2. over groups of filters (the partition of :func:`inner_products`): for each filter of the group, commit the
       previous step's accepted candidate (W[f] <- G[f]; gamma[f], rho[f] from that step's S[f], C[f]), then
       this step's gradient (S[f], C[f], G[f]) and the candidate W[f] - eta G[f], kept in G[f]; then the inner
       products A, B of the group's candidate rows, which only those filters' next gradients read.
    The candidate is accepted when no entry of any filter is non-finite (an exact integer count over the
    filters after the region), and committed at the start of the next filter region or on exit, so a rejected
    step leaves W, gamma, rho untouched.  A and B are then those of the rejected candidate (the engine
    recomputes them in ``forward``).
    """
    F, d = W.shape
    n = X.shape[0]
    units = _units(F)
    groups = min(units, numba.get_num_threads())
    bad = np.zeros(F, dtype=np.int64)
    gscale = eta * mu_sq / (n * m)
    pending = False  # G, S, C hold an accepted step not yet written into W, gamma, rho
    done = k
    inner_products(W, mu, XT, A, B)  # of the entry state (once per call; an already compiled kernel)
    for s in range(k):
        row = s if mults.shape[0] > 1 else 0
        for i in prange(n):
            _forward_sample(A, B, y, q, m, f, i)
        finite = True
        for i in range(n):
            if not math.isfinite(f[i]):
                finite = False
        if not finite:
            done = s
            break
        losses(f, mults[row], loss, dloss)
        for i in range(n):
            lpm[i] = dloss[i] * mults[row, i]
        for g in prange(groups):
            u0 = (units * g) // groups
            u1 = (units * (g + 1)) // groups
            f_first, f_last = _unit_rows(F, u0, u1)
            for fi in range(f_first, f_last):
                if pending:
                    _commit_row(W, gamma, rho, G, S, C, gscale, eta, xi_sq, m, fi)
                _gradient_row(A, B, lpm, y, mu, X, q, m, G, S, C, fi)
                cnt = 0
                for kk in range(d):
                    v = W[fi, kk] - eta * G[fi, kk]
                    G[fi, kk] = v
                    if not math.isfinite(v):
                        cnt += 1
                bad[fi] = cnt
            _inner_group(G, mu, XT, A, B, u0, u1)
        nbad = 0
        for fi in range(F):
            nbad += bad[fi]
        if nbad != 0:
            pending = False
            done = s
            break
        pending = True
    if pending:  # once per call: serial (one parallel region less to compile)
        for fi in range(F):
            _commit_row(W, gamma, rho, G, S, C, gscale, eta, xi_sq, m, fi)
    return done


@njit(**_opts)  # a called function, not inlined: the parallel kernels using it compile faster
def _commit_row(W, gamma, rho, Wnew, S, C, gscale, eta, xi_sq, m, f):
    """Accept one filter's step: W[f] <- Wnew[f], and the recursions of :func:`update_coefficients` for row f."""
    F, d = W.shape
    n = rho.shape[1]
    for kk in range(d):
        W[f, kk] = Wnew[f, kk]
    sj = 1.0 if f < m else -1.0
    gamma[f] = gamma[f] - gscale * S[f]
    for i in range(n):
        rho[f, i] = rho[f, i] - (eta * xi_sq[i] / (n * m)) * (sj * C[f, i])
