"""Numba kernels of the coefficient-space engine (SPEC.md section 4, "Inner products in coefficients").

Same rules as :mod:`lnref._kernels` (DESIGN.md "Numerics"): preallocated outputs, no random numbers, no module
globals, no fastmath, ``error_model="numpy"``, q passed as float64; ``prange`` only over independent outputs
(filters or samples), every reported sum a serial loop in index order, so results are bit-identical for any
thread count and with ``NUMBA_DISABLE_JIT=1``.  No BLAS.

Every kernel with a ``prange`` is compiled twice from the same source: ``name`` (``parallel=True``) and
``name_serial`` (plain loops).  The two give identical bits (the ``prange`` bodies are independent); the serial
one avoids the threading layer's start-up cost on the tiny problems of parameter sweeps.  Compilation is lazy,
so a process only pays for the variant it uses.

Layouts: filters are flattened to ``F = 2m`` rows, row ``f = j_index * m + r`` (j_index 0 is j = +1).
Gram statistics (see :class:`lnref.engines.coefficients.GramStats`), with ``xi_sq[i] = ||xi_i||^2``:

* ``Gn[i, k] = <xi_i, xi_k> / ||xi_i||^2``      (n, n)   the Gram matrix with row i scaled
* ``cA[k] = <xi_k, mu> / ||mu||^2``              (n,)     (0 when mu = 0)
* ``cB[i] = <xi_i, mu> / ||xi_i||^2``            (n,)
* ``P0[f, k] = <w_f(0), xi_k>``, ``b0[f] = <w_f(0), mu>``
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._kernels import CACHE, logistic_dloss

_opts = dict(cache=False, error_model="numpy", fastmath=False)
# Filters whose inner products are computed together (cache blocking; not a numerical choice).
FILTER_BLOCK = 4


@njit(inline="always", **_opts)
def act(z, q):
    """sigma(z) = max(0, z)**q (SPEC.md section 2); the same bits as :func:`lnref._kernels.act`.

    q = 1 returns z itself: pow(z, 1.0) is exact, so this only skips the pow call (the ReLU's main cost).
    """
    if z > 0.0:
        if q == 1.0:
            return z
        return z ** q
    return 0.0


@njit(inline="always", **_opts)
def dact(z, q):
    """sigma'(z) = q max(0, z)**(q - 1), 0 for z <= 0; the same bits as :func:`lnref._kernels.dact`.

    q = 1: q * pow(z, 0.0) = 1.0 exactly; q = 2: 2 * pow(z, 1.0) = 2 z exactly.
    """
    if z > 0.0:
        if q == 1.0:
            return 1.0
        if q == 2.0:
            return 2.0 * z
        return q * z ** (q - 1.0)
    return 0.0


@njit(inline="always", **_opts)
def relu(z):
    """max(0, z) as a select: :func:`act` with q = 1, bit for bit (z <= 0, -0.0 and NaN give 0.0)."""
    return z if z > 0.0 else 0.0


@njit(inline="always", **_opts)
def relu_step(z):
    """1.0 if z > 0 else 0.0: :func:`dact` with q = 1 as a select."""
    return 1.0 if z > 0.0 else 0.0


def _both(fn):
    """(parallel, serial) compilations of one kernel source.

    With LNREF_CACHE=1 (:data:`lnref._kernels.CACHE`) only the serial variant, the one one-thread sweep workers
    run, is cached on disk: both variants share a source location, which is numba's cache key.
    """
    return njit(parallel=True, **_opts)(fn), njit(**{**_opts, "cache": CACHE})(fn)


@njit(inline="always", **_opts)
def _gather_nonzero(row, idx):
    """Write the indices of the non-zero entries of ``row`` into ``idx`` (in index order); return their count."""
    cnt = 0
    for i in range(row.shape[0]):
        if row[i] != 0.0:
            idx[cnt] = i
            cnt += 1
    return cnt


@njit(inline="always", **_opts)
def _chain_rows(out, t, coef, rows, idx, cnt, nj, off):
    """out[t, j] += coef[t, i] * rows[i, off + j] for the cnt indices i = idx[:cnt] in order, for 0 <= j < nj.

    Each output is updated by the serial sum in index order (exactly the loop ``for i: out += c_i rows[i]``):
    four consecutive terms are added in one pass as (((out + c0 r0) + c1 r1) + c2 r2) + c3 r3, which is the same
    sequence of roundings with a quarter of the loads and stores of ``out`` (speed only, the same bits).
    """
    o = out[t]  # 1-d views: the loops over j then vectorise (the 2-d form defeats LLVM's overlap checks)
    c4 = cnt - cnt % 4
    for p in range(0, c4, 4):
        v0 = coef[t, idx[p]]
        v1 = coef[t, idx[p + 1]]
        v2 = coef[t, idx[p + 2]]
        v3 = coef[t, idx[p + 3]]
        r0 = rows[idx[p]]
        r1 = rows[idx[p + 1]]
        r2 = rows[idx[p + 2]]
        r3 = rows[idx[p + 3]]
        for j in range(nj):
            o[j] = (((o[j] + v0 * r0[off + j]) + v1 * r1[off + j]) + v2 * r2[off + j]) + v3 * r3[off + j]
    for p in range(c4, cnt):
        v = coef[t, idx[p]]
        r0 = rows[idx[p]]
        for j in range(nj):
            o[j] += v * r0[off + j]


@njit(inline="always", **_opts)
def _block_inner(blk, m, gamma, rho, P0, b0, Gn, cA, cB, A, B, nz):
    """A[f, k] = <w_f, xi_k>, B[f] = <w_f, mu> from the coefficients, for the filters of block ``blk``.

    SPEC.md section 4, for f0 <= f < f1 = min(f0 + FILTER_BLOCK, F):
      A[f, k] = P0[f, k] + s_j gamma_f c_k/||mu||^2 + sum_i rho_{f,i} G_ik/||xi_i||^2  (i in index order)
      B[f]    = b0[f]    + s_j gamma_f             + sum_i rho_{f,i} c_i/||xi_i||^2
    Terms with rho_{f,i} = 0 are skipped (adding 0 changes nothing); the sum over i runs as axpy updates of the
    row A[f, :] (the loop over k vectorises), four terms per pass (:func:`_chain_rows`).  nz (F, n) int64 is
    work space (row f: the indices i with rho_{f,i} != 0).
    """
    F, n = rho.shape
    f0 = blk * FILTER_BLOCK
    f1 = min(f0 + FILTER_BLOCK, F)
    for f in range(f0, f1):
        g = (1.0 if f < m else -1.0) * gamma[f]
        bsum = b0[f] + g
        for k in range(n):
            A[f, k] = P0[f, k] + g * cA[k]
        cnt = _gather_nonzero(rho[f], nz[f])
        for p in range(cnt):
            i = nz[f, p]
            bsum += rho[f, i] * cB[i]
        B[f] = bsum
        _chain_rows(A, f, rho, Gn, nz[f], cnt, n, 0)


@njit(inline="always", **_opts)
def _outputs_range(A, B, y, q, m, i0, i1, acc, out):
    """out[i] = f_i = F_{+1} - F_{-1} (SPEC.md section 2) for i0 <= i < i1 from A (F, n) and B (F,).

    Each sample's two sums run over r in the order of :func:`lnref._kernels.forward`; the loops go filter by
    filter across the samples, so the loops over i vectorise (the same bits as one sample at a time).  q = 1
    takes the ReLU with the test hoisted out of the loops (same bits, no per-term branch on q).  acc (2, >= i1)
    is work space."""
    fp = acc[0]
    fm = acc[1]
    for i in range(i0, i1):
        fp[i] = 0.0
        fm[i] = 0.0
    if q == 1.0:
        for r in range(m):
            bp = B[r]
            Ar = A[r]
            for i in range(i0, i1):
                fp[i] += relu(y[i] * bp) + relu(Ar[i])
        for r in range(m):
            bm = B[m + r]
            Ar = A[m + r]
            for i in range(i0, i1):
                fm[i] += relu(y[i] * bm) + relu(Ar[i])
    else:
        for r in range(m):
            bp = B[r]
            Ar = A[r]
            for i in range(i0, i1):
                fp[i] += act(y[i] * bp, q) + act(Ar[i], q)
        for r in range(m):
            bm = B[m + r]
            Ar = A[m + r]
            for i in range(i0, i1):
                fm[i] += act(y[i] * bm, q) + act(Ar[i], q)
    for i in range(i0, i1):
        out[i] = fp[i] / m - fm[i] / m


# samples whose outputs are computed together (vectorisation and parallel grain; not a numerical choice)
SAMPLE_BLOCK = 64


def _outputs(gamma, rho, P0, b0, Gn, cA, cB, y, q, m, A, B, out, nz):
    """Inner products A (F, n), B (F,) and outputs out (n,) of the current coefficients (SPEC.md 2 and 4).

    nz (F, n) int64: work space of :func:`_block_inner`."""
    F = rho.shape[0]
    n = out.shape[0]
    for blk in prange((F + FILTER_BLOCK - 1) // FILTER_BLOCK):
        _block_inner(blk, m, gamma, rho, P0, b0, Gn, cA, cB, A, B, nz)
    acc = np.empty((2, n))
    for sb in prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _outputs_range(A, B, y, q, m, sb * SAMPLE_BLOCK, min(n, (sb + 1) * SAMPLE_BLOCK), acc, out)


outputs, outputs_serial = _both(_outputs)


def _advance(k, mults, q, m, eta, mu_sq, xi_sq, P0, b0, Gn, cA, cB, y,
             gamma, rho, gamma_new, rho_new, A, B, f, lpm, bad, nz):
    """Take up to k GD steps in coefficient space; return the number taken (SPEC.md sections 3-4).

    mults (k, n) or (1, n): row s multiplies the labels at step s (y_obs, or eps(s) y_obs for label-noise GD);
    a single row is used at every step.  Per step: f from A, B; l'_i = l'(mult_i f_i); lpm_i = l'_i mult_i;
    then, exactly as :func:`lnref._kernels.update_coefficients`,
      gamma_f <- gamma_f - (eta ||mu||^2/(n m)) sum_i lpm_i y_i sigma'(y_i <w_f, mu>)
      rho_fi  <- rho_fi  - (eta ||xi_i||^2/(n m)) s_j lpm_i sigma'(<w_f, xi_i>).
    Stops before a step whose outputs are non-finite, or whose new coefficients would be non-finite, leaving
    gamma and rho at the last finite state.  gamma_new, rho_new, A, B, f, lpm, bad (F,), nz (F, n) int64 are work
    arrays.

    Two parallel regions per step: over samples (outputs, l') and over blocks of filters (the update of the
    block's filters, then the inner products A[f, :], B[f] of their new coefficients, which only those
    filters' next updates read).
    The accepted new coefficients are copied into gamma, rho at the start of the next filter region (or on
    exit), so a rejected step leaves the state untouched.
    """
    F, n = rho.shape
    nblocks = (F + FILTER_BLOCK - 1) // FILTER_BLOCK
    relu_net = q == 1.0
    # per-sample step sizes eta ||xi_i||^2 / (n m) (the same expression, evaluated once per call) and l'_i mult_i y_i
    rate = np.empty(n)
    for i in range(n):
        rate[i] = eta * xi_sq[i] / (n * m)
    lpy = np.empty(n)
    pending = False  # gamma_new, rho_new hold the accepted state, not yet copied
    done = k
    acc = np.empty((2, n))
    nsb = (n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK
    # s = -1 only computes the inner products of the entry state (one _block_inner site keeps compiling short)
    for s in range(-1, k):
        if s >= 0:
            row = s if mults.shape[0] > 1 else 0
            for sb in prange(nsb):
                i0 = sb * SAMPLE_BLOCK
                i1 = min(n, i0 + SAMPLE_BLOCK)
                _outputs_range(A, B, y, q, m, i0, i1, acc, f)
                for i in range(i0, i1):
                    mult = mults[row, i]
                    lp = logistic_dloss(mult * f[i]) * mult
                    lpm[i] = lp
                    lpy[i] = lp * y[i]
            finite = True
            for i in range(n):
                if not math.isfinite(f[i]):
                    finite = False
            if not finite:
                done = s
                break
        g_src = gamma_new if s >= 0 else gamma
        r_src = rho_new if s >= 0 else rho
        for blk in prange(nblocks):
            f0 = blk * FILTER_BLOCK
            f1 = min(f0 + FILTER_BLOCK, F)
            for fi in range(f0, f1):
                if s < 0:
                    break
                sj = 1.0 if fi < m else -1.0
                if pending:
                    gamma[fi] = gamma_new[fi]
                    for i in range(n):
                        rho[fi, i] = rho_new[fi, i]
                sig = 0.0
                cnt = 0
                bf = B[fi]
                # relu_step(z) == dact(z, 1.0) exactly, so the q = 1 loops give the same bits as the general ones
                if relu_net:
                    for i in range(n):
                        sig += lpy[i] * relu_step(y[i] * bf)
                    for i in range(n):
                        v = rho[fi, i] - rate[i] * (sj * (lpm[i] * relu_step(A[fi, i])))
                        rho_new[fi, i] = v
                        cnt += 0 if math.isfinite(v) else 1
                else:
                    for i in range(n):
                        sig += lpy[i] * dact(y[i] * bf, q)
                    for i in range(n):
                        v = rho[fi, i] - rate[i] * (sj * (lpm[i] * dact(A[fi, i], q)))
                        rho_new[fi, i] = v
                        cnt += 0 if math.isfinite(v) else 1
                gnew = gamma[fi] - (eta * mu_sq / (n * m)) * sig
                gamma_new[fi] = gnew
                cnt += 0 if math.isfinite(gnew) else 1
                bad[fi] = cnt
            # the inner products of this block's filters in the new state, which only their next updates read
            # (garbage if a value is non-finite; the step is then rejected below and A, B are recomputed by the
            # caller); for s = -1, of the entry state
            _block_inner(blk, m, g_src, r_src, P0, b0, Gn, cA, cB, A, B, nz)
        if s < 0:
            continue
        pending = True
        nbad = 0
        for fi in range(F):
            nbad += bad[fi]
        if nbad != 0:
            pending = False
            done = s
            break
    if pending:
        for fi in prange(F):
            gamma[fi] = gamma_new[fi]
            for i in range(n):
                rho[fi, i] = rho_new[fi, i]
    return done


advance, advance_serial = _both(_advance)


def _test_inner(gamma, rho, Pt, Gtn, ct_mu, m, At):
    """At[f, t] = <w_f, xi_t> for test noise patches from their Gram statistics (SPEC.md section 4).

    Pt (F, T) = <w_f(0), xi_t>, Gtn (n, T) = <xi_i, xi_t>/||xi_i||^2, ct_mu (T,) = <mu, xi_t>/||mu||^2:
    At[f, t] = Pt[f, t] + s_j gamma_f ct_mu[t] + sum_i rho_{f,i} Gtn[i, t], i in index order.
    """
    F, n = rho.shape
    T = Pt.shape[1]
    for f in prange(F):
        g = (1.0 if f < m else -1.0) * gamma[f]
        for t in range(T):
            At[f, t] = Pt[f, t] + g * ct_mu[t]
        nz = np.empty(n, dtype=np.int64)
        _chain_rows(At, f, rho, Gtn, nz, _gather_nonzero(rho[f], nz), T, 0)


test_inner, test_inner_serial = _both(_test_inner)


def _test_outputs(At, B, y_test, q, m, out):
    """out[t] = f on test sample t = [y_t mu, xi_t] from At (F, T) and B (F,) (SPEC.md section 2)."""
    T = out.shape[0]
    acc = np.empty((2, T))
    for sb in prange((T + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        _outputs_range(At, B, y_test, q, m, sb * SAMPLE_BLOCK, min(T, (sb + 1) * SAMPLE_BLOCK), acc, out)


test_outputs, test_outputs_serial = _both(_test_outputs)


def _reconstruct(W0, gamma, rho, mu, X, mu_sq, xi_sq, m, W):
    """W[f] = W0[f] + s_j gamma_f mu/||mu||^2 + sum_i rho_{f,i} xi_i/||xi_i||^2 (SPEC.md section 4).

    W0, W (F, d); mu (d,); X (n, d).  The sum over i is serial in index order; mu = 0 contributes nothing.
    """
    F, d = W.shape
    n = X.shape[0]
    for f in prange(F):
        sj = 1.0 if f < m else -1.0
        g = sj * gamma[f] / mu_sq if mu_sq > 0.0 else 0.0
        for k in range(d):
            W[f, k] = W0[f, k] + g * mu[k]
        for i in range(n):
            r = rho[f, i] / xi_sq[i]
            if r != 0.0:
                for k in range(d):
                    W[f, k] += r * X[i, k]


reconstruct, reconstruct_serial = _both(_reconstruct)


def _cross(Y, ZT, out):
    """out[a, t] = <Y[a], Z[t]> = sum_c Y[a, c] ZT[c, t] (Y (k, r), ZT (r, T)), serial over c in index order.

    Written as axpy updates of the row out[a, :] (vectorised over t, four terms per pass, :func:`_chain_rows`);
    zero entries of Y (the upper triangle of a Bartlett factor) are skipped.  With ZT = Y^T the result is exactly symmetric (same products, same order).
    """
    k, r = Y.shape
    T = ZT.shape[1]
    for a in prange(k):
        for t in range(T):
            out[a, t] = 0.0
        nz = np.empty(r, dtype=np.int64)
        _chain_rows(out, a, Y, ZT, nz, _gather_nonzero(Y[a], nz), T, 0)


cross, cross_serial = _both(_cross)


# test points evaluated together by virtual_test_correct (cache blocking; not a numerical choice)
TEST_BLOCK = 128


@njit(**{**_opts, "cache": CACHE})
def virtual_test_correct(coords, ZT, scale, e1, a_t, isotropic, idx, G, P0, xi_sq, ct_mu, gamma, rho, B, y_t,
                         y_score, q, m, block=TEST_BLOCK):
    """Number of virtual test samples with y_score * f > 0, fused: the same bits as lnref.gram.virtual_test
    followed by CoefficientEngine.test_accuracy, without their (k, T) and (F, T) intermediate arrays.

    coords (k, r), ZT (r, T): the test coordinates as drawn, transposed (column t = z_t; lnref._normals draws
    them in this layout); per test sample t and training vector a:
      fresh[a, t] = scale * sum_c coords[a, c] ZT[c, t]       (serial in c, zero coords skipped, as :func:`cross`)
                    [+ e1[a] a_t[t] if isotropic] [+ G[a, idx[t]] or P0[a - n, idx[t]] if idx is not empty]
      Gtn[i, t] = fresh[i, t] / xi_sq[i] (i < n), Pt[f, t] = fresh[n + f, t],
      At[f, t] = Pt[f, t] + s_j gamma_f ct_mu[t] + sum_i rho_{f,i} Gtn[i, t]   (as :func:`test_inner`),
    then f_t from At and B as :func:`test_outputs`.  Every value is computed with the same operations in the
    same order as those functions, so the count equals theirs bit for bit (the serial sums run four terms per
    pass, :func:`_chain_rows`, which is the same sequence of roundings).  Serial (one call per run in sweeps).
    SPEC.md sections 1, 2 and 4.
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
        cntc[a] = _gather_nonzero(coords[a], nzc[a])
    nzi = np.empty((F, n), dtype=np.int64)  # non-zero rho of each filter, in index order
    cnti = np.empty(F, dtype=np.int64)
    for f in range(F):
        cnti[f] = _gather_nonzero(rho[f], nzi[f])
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
            _chain_rows(fresh, a, coords, Zb, nzc[a], cntc[a], nb, 0)
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
                    fresh[a, tb] = fresh[a, tb] / xi_sq[a]
        for f in range(F):
            g = (1.0 if f < m else -1.0) * gamma[f]
            for tb in range(nb):
                At[f, tb] = fresh[n + f, tb] + g * ct_mu[t0 + tb]
            _chain_rows(At, f, rho, fresh, nzi[f], cnti[f], nb, 0)
        _outputs_range(At, B, y_t[t0:t0 + nb], q, m, 0, nb, acc, outb)
        for tb in range(nb):
            if y_score[t0 + tb] * outb[tb] > 0:
                count += 1
    return count


def _gram_stats(coords, e1, mu_norm, ZT, full, G, xi_sq, P0, b0, c):
    """Gram statistics from Gram-sampled coordinates (:func:`lnref.gram.stats_from_coordinates`).

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
        _chain_rows(full, a, coords, ZT, nzc, _gather_nonzero(coords[a], nzc), k, 0)
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


gram_stats, gram_stats_serial = _both(_gram_stats)


@njit(**{**_opts, "cache": CACHE})
def engine_scalings(G, xi_sq, c, mu_sq, Gn, cA, cB):
    """The coefficient engine's precomputed scalings (module docstring): Gn = G / xi_sq[:, None],
    cA = c / ||mu||^2 (0 when mu = 0), cB = c / xi_sq.  SPEC.md section 4."""
    n = G.shape[0]
    for i in range(n):
        for j in range(n):
            Gn[i, j] = G[i, j] / xi_sq[i]
        cA[i] = c[i] / mu_sq if mu_sq > 0.0 else 0.0
        cB[i] = c[i] / xi_sq[i]
