"""Numba kernels of the weight-space reference engine (SPEC.md sections 2-4 and 7).

Every equation is computed by the one function of :mod:`lnref.kernels.equations` that implements it (sigma, sigma',
the loss, the outputs, one filter's GD step); this module holds what only the weight engine does: inner products
of explicit weights with explicit vectors, the gradient as a d-dimensional vector, and the step on W.

Rules (docs/DESIGN.md "Numerics"): kernels take preallocated outputs, draw no random numbers and read no module
globals; ``prange`` runs only over independent outputs (filters, samples) and every reported sum is a serial
loop in index order, so results are bit-identical for any thread count and with ``NUMBA_DISABLE_JIT=1``.
No fastmath, ``error_model="numpy"``, the exponent q is a float64 (``pow``).

Layouts: filters are flattened to ``F = 2m`` rows, row ``f = j_index * m + r`` (j_index 0 is j = +1).
``X`` is (n, d) row-major, ``XT`` is its transpose (d, n) row-major.  ``bias`` (F,) holds the filters' biases
(zeros for the paper's network, which changes no bit: see :mod:`lnref.kernels.equations`); ``div`` is
1/(output_scale c_p), float(m) for the paper.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from .cache import CACHE, both, kernel
from .contractions import FILTER_BLOCK, gradient_rows, inner_group, unit_rows, work_units
from .equations import count_nonfinite, outputs_range, step_scalings
from .losses import (
    LOSS_ELR,
    elr_update_due,
    label_targets,
    logistic_dloss,
    logistic_loss,
    method_loss,
    sample_scalars,
    undo_target_update,
)

__all__ = [
    "CACHE",
    "inner_products",
    "forward",
    "losses",
    "method_scalars",
    "gradient",
    "advance",
    "project_out",
    "row_sq_norms",
    "transpose",
    "FILTER_BLOCK",
    "SAMPLE_BLOCK",
]

njit = kernel
# samples whose outputs are computed together (vectorisation and parallel grain; not a numerical choice)
SAMPLE_BLOCK = 64


def _project_out(G, u):
    """G[r] <- G[r] - <G[r], u> u for every row (u a unit vector); exact when u = e_1."""
    rows, d = G.shape
    for r in prange(rows):
        c = 0.0
        for k in range(d):
            c += G[r, k] * u[k]
        for k in range(d):
            G[r, k] = G[r, k] - c * u[k]


# the serial variant for small arrays (a parallel region costs more than it saves there, most of all on a busy
# machine); the same bits
project_out, project_out_serial = both(_project_out)


@njit(parallel=True)
def _inner_products(W, mu, XT, A, B, groups):
    """A[f, i] = <W[f], X[i]> and B[f] = <W[f], mu> (the kernel of :func:`inner_products`; ``groups`` is the
    number of parallel work groups, a speed choice only).

    W (F, d), mu (d,), XT (d, n) -> A (F, n), B (F,).

    Summation order (fixed, the same for every thread count, tiling and with NUMBA_DISABLE_JIT=1): the terms
    W[f, k] X[i, k] are taken in groups of four consecutive k, each group summed as ``(t0 + t1) + (t2 + t3)`` and
    added to the running sum in increasing k; the d mod 4 last terms are then added one at a time.  B is a plain
    serial sum over k.

    Blocking (speed only): FILTER_BLOCK filters share every load of four rows of X^T, each vector lane is one
    sample's own sum, and the running sums of 16 samples of four filters stay in vector registers over a whole
    tile of K_TILE rows of X^T (:func:`lnref.kernels.lane_blocks.lane_quads`); each thread takes a contiguous range of
    filter blocks and sweeps them over the tiles, so X^T is streamed from memory once per thread.
    """
    units = work_units(W.shape[0])
    groups = max(1, min(units, groups))
    for g in prange(groups):
        inner_group(W, mu, XT, A, B, (units * g) // groups, (units * (g + 1)) // groups)


def inner_products(W, mu, XT, A, B):
    """A[f, i] = <W[f], X[i]> (F, n) and B[f] = <W[f], mu> (F,) from W (F, d), mu (d,), XT (d, n).

    One work group per numba thread (passed to the kernel, which then reads no dynamic global and can be
    cached on disk).  The summation order is fixed (see :func:`_inner_products`)."""
    _inner_products(W, mu, XT, A, B, numba.get_num_threads())


@njit(parallel=True)
def forward(A, B, bias, y, q, m, div, out):
    """out[i] = f_i (SPEC.md sections 2 and 7) from A (2m, n) = <w_f, xi_i>, B (2m,) = <w_f, mu>, bias (2m,),
    y (n,) true labels (the signal patch is y_i mu): :func:`lnref.kernels.equations.outputs_range` over blocks of
    samples."""
    n = out.shape[0]
    acc = np.empty((2, n))
    for sb in prange((n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
        outputs_range(A, B, bias, y, q, m, div, sb * SAMPLE_BLOCK, min(n, (sb + 1) * SAMPLE_BLOCK), acc, out)


@njit
def losses(f, mult, loss_out, dloss_out):
    """loss_out[i] = l(mult_i f_i), dloss_out[i] = l'(mult_i f_i) (SPEC.md section 3).

    Serial: O(n) work never repays a parallel region's start-up, and a serial kernel compiles faster."""
    for i in range(f.shape[0]):
        z = mult[i] * f[i]
        loss_out[i] = logistic_loss(z)
        dloss_out[i] = logistic_dloss(z)


@njit
def method_scalars(f, mult, y, code, lp, target, update, loss_out, lpm_out):
    """The method's per-sample loss and scalar at outputs f (SPEC.md section 9), as one GD step evaluates them.

    With ``update`` ELR's targets (2, n) are first updated in place from f; then loss_out[i] = l(mult_i f_i) and
    lpm_out[i] = g(mult_i f_i) mult_i (:func:`lnref.kernels.losses.sample_scalars`, the code GD runs), with a, b the
    target of the label sign(mult_i) and of the other class.  Serial (O(n) work)."""
    n = f.shape[0]
    lpy = np.empty(n)
    old = np.empty_like(target)
    sample_scalars(f, mult, y, code, lp, target, old, update, 0, n, lpm_out, lpy)
    for i in range(n):
        a = 0.0
        b = 0.0
        if code == LOSS_ELR:
            a, b = label_targets(target[0, i], target[1, i], mult[i])
        loss_out[i] = method_loss(mult[i] * f[i], code, lp, a, b)


@njit(parallel=True)
def gradient(
    A,
    B,
    bias,
    lpm,
    y,
    mu,
    X,
    q,
    m,
    div,
    eta,
    mu_sq,
    xi_sq,
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
):
    """The gradient of L at W (SPEC.md sections 3 and 7) and the coefficients after a step of size eta.

    lpm[i] = l'_i * mult_i with mult_i = y_obs_i (plain GD) or eps_i y_obs_i (label-noise GD).  For each filter f,
    :func:`lnref.kernels.equations.filter_update` gives S[f], C[f, :], Sb[f] and the new gamma, rho and bias (into
    gamma_new, rho_new, bias_new; bad[f] counts their non-finite values), then
      G[f] = (s_j/(n div)) * (S[f] mu + sum_i C[f, i] xi_i)
    and the bias gradient is (s_j/(n div)) Sb[f].

    Summation order of sum_i C[f, i] xi_i (fixed; the same for every thread count and with NUMBA_DISABLE_JIT=1):
    the samples with C[f, i] != 0 (the others add nothing), in increasing i, are taken in groups of four, each
    group summed as ``(t0 + t1) + (t2 + t3)`` and added to the running sum; the last (count mod 4) one at a
    time (:func:`lnref.kernels.contractions.gradient_rows`, over blocks of FILTER_BLOCK filters).
    """
    F = G.shape[0]
    rate, gscale, bscale = step_scalings(xi_sq, eta, mu_sq, div)
    lpy = lpm * y
    nblk = (F + FILTER_BLOCK - 1) // FILTER_BLOCK
    active = np.empty((F, X.shape[0]), dtype=np.int64)
    nactive = np.empty(F, dtype=np.int64)
    for blk in prange(nblk):
        gradient_rows(
            blk * FILTER_BLOCK,
            min(F, (blk + 1) * FILTER_BLOCK),
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
        )


@njit(parallel=True)
def row_sq_norms(X, out):
    """out[i] = ||X[i]||^2, serial over k."""
    n, d = X.shape
    for i in prange(n):
        s = 0.0
        for k in range(d):
            s += X[i, k] * X[i, k]
        out[i] = s


@njit(parallel=True)
def transpose(X, XT):
    """XT[k, i] = X[i, k] (blocked copy)."""
    n, d = X.shape
    for k in prange(d):
        for i in range(n):
            XT[k, i] = X[i, k]


@njit(inline="always")
def _commit_row(fi, W, G, gamma, rho, bias, gamma_new, rho_new, bias_new, with_bias):
    """Accept the pending step for filter fi: W[fi] <- the candidate in G[fi], and its coefficients and bias."""
    for k in range(W.shape[1]):
        W[fi, k] = G[fi, k]
    gamma[fi] = gamma_new[fi]
    for i in range(rho.shape[1]):
        rho[fi, i] = rho_new[fi, i]
    if with_bias:
        bias[fi] = bias_new[fi]


@njit(parallel=True)
def advance(state, inputs, work, method, scalars, k, t0):
    """Take up to k GD steps in one call (the weight engine's loop; SPEC.md sections 3, 4 and 7).

    Arguments in five groups: ``state`` = (W, gamma, rho, bias), updated in place; ``inputs`` = (X, XT, mu, y,
    mults, xi_sq); ``work`` = (A, B, f, lpm, G, S, Sb, C, gamma_new, rho_new, bias_new, bad), preallocated work
    arrays (A, B hold the inner products of the entry state and f the outputs on return); ``method`` = (code, lp,
    target, target_old); ``scalars`` = (q, m, div, eta, mu_sq, groups, with_bias).  Then k and t0, the step of
    the entry state.

    Step s uses the label multipliers ``mults[s]`` (or ``mults[0]`` for every step when mults has one row):
    y_obs for plain GD, eps * y_obs for label-noise GD.  The per-sample scalar of the loss is the method's
    (``code``, parameters ``lp``; :func:`lnref.kernels.losses.sample_scalars`); ELR's targets (2, n) are updated in
    place at the steps t0 + s it is due (target_old is work space to undo a rejected step's update).  Stops before
    a step whose outputs or new weights, coefficients or biases would be non-finite, leaving the last finite state;
    returns the number of steps taken.

    Two parallel regions per step (each region ends in a barrier, which a thread descheduled by another program
    holds up; fewer regions keep the default threads fast on a busy machine):
      (a) over blocks of samples: the outputs f (:func:`lnref.kernels.equations.outputs_range`); then, serially, the
          finiteness check, the method's g (l' for the logistic loss) and lpm;
      (b) over the work groups of the inner products: for each filter of the group, accept the pending step
          (W, gamma, rho, b), then their gradients and new coefficients
          (:func:`~lnref.kernels.contractions.gradient_rows`), the candidates
          W - eta G (kept in G) and its non-finite count; then the inner products of the
          group's candidate rows, which only those filters' next updates read.
    A step whose candidate has a non-finite value is not accepted.  The same operations in the same order as one
    call each of inner_products, forward, losses and gradient per step, then W - eta G: the same bits.
    """
    W, gamma, rho, bias = state  # the run's state, updated in place
    X, XT, mu, y, mults, xi_sq = inputs
    A, B, f, lpm, G, S, Sb, C, gamma_new, rho_new, bias_new, bad = work  # preallocated by the engine
    code, lp, target, target_old = method  # the loss and ELR's targets (2, n)
    q, m, div, eta, mu_sq, groups, with_bias = scalars
    n = X.shape[0]
    F, d = W.shape
    units = work_units(F)
    groups = max(1, min(units, groups))
    nsb = (n + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK
    acc = np.empty((2, n))
    for g in prange(groups):  # the entry state's inner products
        inner_group(W, mu, XT, A, B, (units * g) // groups, (units * (g + 1)) // groups)
    rate, gscale, bscale = step_scalings(xi_sq, eta, mu_sq, div)  # once per call
    lpy = np.empty(n)
    active = np.empty((F, n), dtype=np.int64)  # work space of gradient_rows
    nactive = np.empty(F, dtype=np.int64)
    pending = False
    done = k
    for s in range(k):
        row = s if mults.shape[0] > 1 else 0
        b_src = bias_new if (pending and with_bias) else bias
        for sb in prange(nsb):
            outputs_range(A, B, b_src, y, q, m, div, sb * SAMPLE_BLOCK, min(n, (sb + 1) * SAMPLE_BLOCK), acc, f)
        finite = True
        for i in range(n):
            if not math.isfinite(f[i]):
                finite = False
        if not finite:
            done = s
            break
        update = elr_update_due(code, lp, t0 + s)
        sample_scalars(f, mults[row], y, code, lp, target, target_old, update, 0, n, lpm, lpy)
        for g in prange(groups):
            u0 = (units * g) // groups
            u1 = (units * (g + 1)) // groups
            f_first, f_last = unit_rows(F, u0, u1)
            if pending:
                for fi in range(f_first, f_last):
                    _commit_row(fi, W, G, gamma, rho, bias, gamma_new, rho_new, bias_new, with_bias)
            gradient_rows(
                f_first,
                f_last,
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
            )
            for fi in range(f_first, f_last):
                cnt = bad[fi]
                for kk in range(d):
                    v = W[fi, kk] - eta * G[fi, kk]
                    G[fi, kk] = v
                    if not math.isfinite(v):
                        cnt += 1
                bad[fi] = cnt
            inner_group(G, mu, XT, A, B, u0, u1)
        if count_nonfinite(bad) != 0:
            # the rows committed in this region were the previous step's: W, gamma, rho, b hold step s
            if update:
                undo_target_update(target, target_old)
            pending = False
            done = s
            break
        pending = True
    if pending:
        for fi in range(F):
            _commit_row(fi, W, G, gamma, rho, bias, gamma_new, rho_new, bias_new, with_bias)
    return done
