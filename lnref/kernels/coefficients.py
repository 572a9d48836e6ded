"""Numba kernels of the coefficient-space engine (SPEC.md sections 4 and 7, "Inner products in coefficients").

Every equation is computed by the one function of :mod:`lnref.kernels.equations` that implements it: the outputs, one
filter's GD step (:func:`~lnref.kernels.equations.filter_update`) and the inner products from coefficients
(:func:`~lnref.kernels.equations.coefficient_inner`, for the training noise patches, explicit and virtual test sets);
the kernels here only arrange them into loops over filters, samples and steps.

Same rules as :mod:`lnref.kernels.weights` (docs/DESIGN.md "Numerics"): preallocated outputs, no random numbers, no
module globals (block sizes are constants frozen at compile time), no fastmath, ``error_model="numpy"``, q passed as
float64; ``prange`` only over independent outputs
(filters or samples), every reported sum a serial loop in index order, so results are bit-identical for any
thread count and with ``NUMBA_DISABLE_JIT=1``.  No BLAS.

Every kernel with a ``prange`` is compiled twice from the same source: ``name`` (``parallel=True``) and
``name_serial`` (plain loops).  The two give identical bits (the ``prange`` bodies are independent); the serial
one avoids the threading layer's start-up cost on the tiny problems of parameter sweeps.  Compilation is lazy,
so a process only pays for the variant it uses; both are cached on disk (:func:`lnref.kernels.cache.both`).

Layouts: filters are flattened to ``F = 2m`` rows, row ``f = j_index * m + r`` (j_index 0 is j = +1).
Gram statistics (see :class:`lnref.engines.coefficients.GramStats`), with ``xi_sq[i] = ||xi_i||^2``:

* ``Gn[i, k] = <xi_i, xi_k> / ||xi_i||^2``      (n, >= n + 1)   the Gram matrix with row i scaled, and in
  column n ``Gn[i, n] = <xi_i, mu> / ||xi_i||^2`` (rows padded to whole cache lines; the kernels read n + 1 columns)
* ``cA[k] = <xi_k, mu> / ||mu||^2``              (n + 1,)  (0 when mu = 0), and ``cA[n] = 1``
* ``P[f, k] = <w_f(0), xi_k>``, ``P[f, n] = <w_f(0), mu>``   (F, n + 1)
* ``A[f, k] = <w_f, xi_k>``, ``A[f, n] = B[f] = <w_f, mu>``  (F, n + 1), the inner products of the current state

The signal is lane n of the noise patches' sums (:func:`lnref.kernels.gram.engine_scalings` builds the tables):
<w_f, mu> = <w_f(0), mu> + s_j gamma_f + sum_i rho_{f,i} <xi_i, mu>/||xi_i||^2 (SPEC.md section 4) is exactly
P[f, n] + g cA[n] + sum_i rho_{f,i} Gn[i, n] with g = s_j gamma_f and g * 1 = g, the same operations in the same
order as :func:`~lnref.kernels.equations.coefficient_inner` computes for lane k < n.  So one vector sum gives both,
and the signal's serial sum no longer runs alone (a chain of dependent additions: 12% of a step at n = 20).

``bias`` (F,) holds the filters' biases (zeros for the paper's network, which changes no bit) and ``div`` is
1/(output_scale c_p), float(m) for the paper (SPEC.md section 7).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .cache import both, inline
from .equations import (
    coefficient_inner,
    coefficient_inner_pair,
    count_nonfinite,
    filter_update,
    gather_nonzero,
    outputs_range,
    over_mu_sq,
    step_scalings,
    weight_row,
)
from .losses import elr_update_due, sample_scalars, undo_target_update

# Filters whose inner products are computed together (cache blocking; not a numerical choice).
FILTER_BLOCK = 4
# samples whose outputs are computed together (vectorisation and parallel grain; not a numerical choice)
SAMPLE_BLOCK = 64
# From this many samples on, the inner products of two filters share each pass over the rows of Gn (a row is then
# read from L2 once for both); below it one filter at a time is faster (n = 20: 1.1 against 1.7 us per step; n =
# 100: 30 against 33 us; bench/README.md, issue 25).  Not a numerical choice: the same bits either way.
PAIR_SAMPLES = 64


@inline
def _block_inner(blk, m, gamma, rho, P, Gn, cA, A, B, nz):
    """A[f, :n] = <w_f, xi_k> and B[f] = A[f, n] = <w_f, mu> from the coefficients (SPEC.md section 4) for the filters
    of block ``blk``: :func:`~lnref.kernels.equations.coefficient_inner` over the n + 1 lanes of the tables (the
    signal is lane n, module docstring); nz (F, n) int64 is work space (row f: the indices i with rho_{f,i} != 0)."""
    F, n = rho.shape
    f0 = blk * FILTER_BLOCK
    f1 = min(f0 + FILTER_BLOCK, F)
    if n < PAIR_SAMPLES:
        for f in range(f0, f1):
            g = (1.0 if f < m else -1.0) * gamma[f]
            cnt = gather_nonzero(rho[f], nz[f])
            coefficient_inner(A[f], P[f], g, cA, rho[f], Gn, nz[f], cnt)
            B[f] = A[f, n]
        return
    for f in range(f0, f1, 2):  # two filters per pass over the rows of Gn (same bits as one at a time)
        h = f + 1 if f + 1 < f1 else f  # an odd last filter pairs with itself (computed twice, same values)
        g = (1.0 if f < m else -1.0) * gamma[f]
        gh = (1.0 if h < m else -1.0) * gamma[h]
        cnt = gather_nonzero(rho[f], nz[f])
        cnth = gather_nonzero(rho[h], nz[h])
        coefficient_inner_pair(A[f], P[f], g, rho[f], nz[f], cnt, A[h], P[h], gh, rho[h], nz[h], cnth, cA, Gn)
        B[f] = A[f, n]
        B[h] = A[h, n]


def _outputs(gamma, rho, bias, P, Gn, cA, y, q, m, div, A, B, out, nz):
    """Inner products A (F, n + 1), B (F,) and outputs out (n,) of the current coefficients (SPEC.md 2, 4 and 7).

    nz (F, n) int64: work space of :func:`_block_inner`."""
    F = rho.shape[0]
    n = out.shape[0]
    for blk in prange((F + FILTER_BLOCK - 1) // FILTER_BLOCK):
        _block_inner(blk, m, gamma, rho, P, Gn, cA, A, B, nz)
    acc = np.empty((2, n))
    for sb in prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        outputs_range(A, B, bias, y, q, m, div, sb * SAMPLE_BLOCK, min(n, (sb + 1) * SAMPLE_BLOCK), acc, out)


outputs, outputs_serial = both(_outputs)


def _advance(
    k,
    mults,
    q,
    m,
    div,
    eta,
    mu_sq,
    xi_sq,
    P,
    Gn,
    cA,
    y,
    gamma,
    rho,
    bias,
    gamma_new,
    rho_new,
    bias_new,
    A,
    B,
    f,
    lpm,
    S,
    Sb,
    C,
    bad,
    nz,
    with_bias,
    code,
    lp,
    target,
    target_old,
    t0,
):
    """Take up to k GD steps in coefficient space; return the number taken (SPEC.md sections 3, 4 and 7).

    mults (k, n) or (1, n): row s multiplies the labels at step s (y_obs, or eps(s) y_obs for label-noise GD);
    a single row is used at every step.  Per step: f from A, B and the biases
    (:func:`~lnref.kernels.equations.outputs_range`); lpm_i = g(mult_i f_i) mult_i with g the method's (``code``,
    parameters ``lp``; l' for the logistic loss), after ELR's target update (2, n) where it is due at step t0 + s
    (:func:`~lnref.kernels.losses.sample_scalars`; target_old undoes a rejected step's update); then every filter's
    step, :func:`~lnref.kernels.equations.filter_update` (the same function the weight engine runs).
    Stops before a step whose outputs are non-finite, or whose new coefficients or biases would be non-finite,
    leaving the state at the last finite step.  gamma_new, rho_new, bias_new, A, B, f, lpm, S, Sb (F,), C (F, n),
    bad (F,) int64 and nz (F, n) int64 are work arrays.

    Two parallel regions per step: over samples (outputs, l') and over blocks of filters (the update of the
    block's filters, then the inner products A[f, :], B[f] of their new coefficients, which only those
    filters' next updates read).  The state and the next state trade arrays at every accepted step (gamma, rho,
    bias and gamma_new, rho_new, bias_new; a copy of rho per step cost 7% of a step at n = 20), so a rejected step
    leaves the state untouched; on exit the state is copied back into gamma, rho, bias if it is in the others.
    """
    F, n = rho.shape
    nblocks = (F + FILTER_BLOCK - 1) // FILTER_BLOCK
    rate, gscale, bscale = step_scalings(xi_sq, eta, mu_sq, div)  # once per call, as the weight engine
    lpy = np.empty(n)  # l'_i mult_i y_i
    done = k
    acc = np.empty((2, n))
    nsb = (n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK
    # the state and the next state: the arrays trade roles at every accepted step (no copy); ``flipped`` says the
    # state is in the caller's gamma_new, rho_new (and bias_new with a bias), copied back on exit
    g_cur, r_cur, b_cur = gamma, rho, bias
    g_nxt, r_nxt, b_nxt = gamma_new, rho_new, bias_new
    flipped = False
    # s = -1 only computes the inner products of the entry state (one _block_inner site keeps compiling short)
    update = False
    for s in range(-1, k):
        if s >= 0:
            row = s if mults.shape[0] > 1 else 0
            update = elr_update_due(code, lp, t0 + s)
            mrow = mults[row]
            for sb in prange(nsb):
                i0 = sb * SAMPLE_BLOCK
                i1 = min(n, i0 + SAMPLE_BLOCK)
                outputs_range(A, B, b_cur, y, q, m, div, i0, i1, acc, f)
                sample_scalars(f, mrow, y, code, lp, target, target_old, update, i0, i1, lpm, lpy)
            finite = True
            for i in range(n):
                if not math.isfinite(f[i]):
                    finite = False
            if not finite:
                if update:
                    undo_target_update(target, target_old)
                done = s
                break
        g_src = g_nxt if s >= 0 else g_cur
        r_src = r_nxt if s >= 0 else r_cur
        for blk in prange(nblocks):
            f0 = blk * FILTER_BLOCK
            f1 = min(f0 + FILTER_BLOCK, F)
            if s >= 0:
                filter_update(
                    f0,
                    f1,
                    m,
                    A,
                    B,
                    b_cur,
                    y,
                    lpm,
                    lpy,
                    q,
                    rate,
                    gscale,
                    bscale,
                    g_cur,
                    r_cur,
                    g_nxt,
                    r_nxt,
                    b_nxt,
                    S,
                    Sb,
                    C,
                    bad,
                    with_bias,
                )
            # the inner products of this block's filters in the new state, which only their next updates read
            # (garbage if a value is non-finite; the step is then rejected below and A, B are recomputed by the
            # caller); for s = -1, of the entry state
            _block_inner(blk, m, g_src, r_src, P, Gn, cA, A, B, nz)
        if s < 0:
            continue
        if count_nonfinite(bad) != 0:
            if update:
                undo_target_update(target, target_old)
            done = s
            break
        g_cur, g_nxt = g_nxt, g_cur  # the step is taken: the next state is the state
        r_cur, r_nxt = r_nxt, r_cur
        if with_bias:  # without one the biases stay (filter_update does not write b_nxt)
            b_cur, b_nxt = b_nxt, b_cur
        flipped = not flipped
    if flipped:
        for fi in prange(F):
            gamma[fi] = g_cur[fi]
            for i in range(n):
                rho[fi, i] = r_cur[fi, i]
            if with_bias:
                bias[fi] = b_cur[fi]
    return done


advance, advance_serial = both(_advance)


def _test_inner(gamma, rho, Pt, Gtn, ct_mu, m, At):
    """At[f, t] = <w_f, xi_t> for test noise patches from their Gram statistics (SPEC.md section 4):
    :func:`~lnref.kernels.equations.coefficient_inner` with Pt (F, T) = <w_f(0), xi_t>, Gtn (n, T) = <xi_i,
    xi_t>/||xi_i||^2, ct_mu (T,) = <mu, xi_t>/||mu||^2."""
    F, n = rho.shape
    for f in prange(F):
        g = (1.0 if f < m else -1.0) * gamma[f]
        nz = np.empty(n, dtype=np.int64)
        coefficient_inner(At[f], Pt[f], g, ct_mu, rho[f], Gtn, nz, gather_nonzero(rho[f], nz))


test_inner, test_inner_serial = both(_test_inner)


def _test_outputs(At, B, bias, y_test, q, m, div, out):
    """out[t] = f on test sample t = [y_t mu, xi_t] from At (F, T), B (F,) and the biases (SPEC.md sections 2, 7)."""
    T = out.shape[0]
    acc = np.empty((2, T))
    for sb in prange((T + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        outputs_range(At, B, bias, y_test, q, m, div, sb * SAMPLE_BLOCK, min(T, (sb + 1) * SAMPLE_BLOCK), acc, out)


test_outputs, test_outputs_serial = both(_test_outputs)


def _reconstruct(W0, gamma, rho, mu, X, mu_sq, xi_sq, m, W):
    """W[f] = W0[f] + s_j gamma_f mu/||mu||^2 + sum_i rho_{f,i} xi_i/||xi_i||^2 (SPEC.md section 4).

    W0, W (F, d); mu (d,); X (n, d).  :func:`~lnref.kernels.equations.weight_row` per filter (the sum over i serial in
    index order; mu = 0 contributes nothing).
    """
    F = W.shape[0]
    for f in prange(F):
        sj = 1.0 if f < m else -1.0
        weight_row(W[f], W0[f], over_mu_sq(sj * gamma[f], mu_sq), mu, rho[f], xi_sq, X)


reconstruct, reconstruct_serial = both(_reconstruct)
