"""One compiled call for the part of a sweep run after the Gram draws (issue 25, "whole runs in compiled code").

:func:`gram_final_run` does what :func:`lnref.sweeps.worker.final_run` does through the Python engine
(:class:`lnref.engines.coefficients.CoefficientEngine`, :func:`lnref.training.run_loop`) for plain GD in coefficient
space with Gram sampling: the Gram statistics of the draws, the engine's precomputed tables, the outputs and checks at
every logged step, the GD steps in the same chunks, and the final fresh virtual test set.  It calls the very kernels
the engine calls, with the same arguments in the same order, so its state, outputs and test count are the engine's
bit for bit (tests/test_sweep_worker.py compares every column with the Python path and with :func:`lnref.train`).  It
only arranges the calls: no formula is written here, but a change to the engine's set-up or to
:func:`lnref.training.run_loop`'s control flow must be made here too (the tests fail if the two disagree).

It never decides a divergence.  Where the Python path could stop early (a step rejected by the kernel, a
non-finite output, a training loss whose sum might not be finite) it returns :data:`FALLBACK` and the caller runs
the Python path, which then stops with its own message and row.  Its finiteness check is conservative: the sum of
the per-sample losses in index order must be below :data:`SAFE_LOSS_SUM`, so NumPy's pairwise sum of the same
non-negative terms (the Python check) is finite too.
"""

from __future__ import annotations

import math

import numpy as np

from . import coefficients as KC
from .cache import inline, kernel
from .gram import engine_scalings, fresh_test_correct, fresh_test_factor, gram_stats_serial
from .losses import logistic_loss

#: what :func:`gram_final_run` returns as its status when the caller must run the Python path instead
FALLBACK = 1
#: the run reached the last logged step; its state, outputs and test count are filled in
FINISHED = 0
#: a sum of non-negative losses below this is finite in any summation order (each partial sum is at most the
#: total times (1 + n 2^-53))
SAFE_LOSS_SUM = 1e300
# bytes of a cache line, as lnref.engines.base.CACHE_LINE (speed only)
_LINE = 64


@inline
def _line_aligned(rows, width):
    """A zeroed C-contiguous (rows, width) float64 array that starts a cache line (as
    lnref.engines.base.aligned_rows; speed only)."""
    per_line = _LINE // 8
    buf = np.zeros(rows * width + per_line)
    start = ((_LINE - buf.ctypes.data % _LINE) % _LINE) // 8
    return buf[start : start + rows * width].reshape(rows, width)


@inline
def _outputs_safe(f, y_obs):
    """Whether every output is finite and the training loss's sum certainly is (see the module docstring)."""
    total = 0.0
    for i in range(f.shape[0]):
        if not math.isfinite(f[i]):
            return False
        loss = logistic_loss(y_obs[i] * f[i])
        if not (loss >= 0.0):
            return False
        total += loss
    return total < SAFE_LOSS_SUM


@kernel
def gram_final_run(
    coords,
    e1,
    mu_norm,
    y,
    y_obs,
    q,
    m,
    div,
    eta,
    with_bias,
    code,
    lp,
    log_steps,
    chunk,
    test_words,
    n_test,
    n_pick,
    test_scale,
    isotropic,
    flipped,
    tau_plus,
    tau_minus,
    zk,
    zw,
    zf,
    tail_r,
    gamma,
    rho,
    bias,
    f,
):
    """Plain GD of a Gram-sampled run in coefficient space to its last logged step, then its fresh test count.

    In: the Gram draws, coordinates coords (n + 2m, r) and e1 (n + 2m,) (:func:`lnref.data.gram.gram_draws`), and
    mu_norm, whose statistics it computes as :func:`lnref.data.gram.stats_from_coordinates` does (the same kernel);
    the labels y, y_obs (n,); the engine's q, m, div, eta, with_bias and the
    method's code and parameters lp; log_steps (int64, sorted, from 0); chunk (the steps of one advance call, as
    lnref.training's ADVANCE_CHUNK); the fresh test set of the last logged step: its stream's PCG64 state test_words
    (advanced), n_test (0: none), n_pick, test_scale, isotropic, flipped, tau_plus, tau_minus and the ziggurat
    tables, as :func:`lnref.data.gram.fresh_test_accuracy` passes them.  In/out: bias (2m,) the initial biases, then
    the final ones; out: gamma (2m,), rho (2m, n), f (n,), the final state and outputs.

    Returns (status, step, correct): :data:`FINISHED` with the last logged step and the fresh test's count of
    correct samples (0 when n_test = 0), or :data:`FALLBACK` (see the module docstring).
    """
    n = y.shape[0]
    F = 2 * m
    k, r = coords.shape
    # lnref.data.gram.stats_from_coordinates
    G = np.empty((n, n))
    xi_sq = np.empty(n)
    c = np.empty(n)
    P0 = np.empty((F, n))
    b0 = np.empty(F)
    gram_stats_serial(coords, e1, mu_norm, np.empty((r, k)), np.empty((k, k)), G, xi_sq, P0, b0, c)
    for i in range(n):
        if not xi_sq[i] > 0.0:  # the engine refuses such data, with its message
            return FALLBACK, 0, 0
    mu_sq = mu_norm * mu_norm
    # the engine's arrays (lnref.engines.coefficients.CoefficientEngine.__init__)
    Gn = _line_aligned(n, -(-(n + 1) // 8) * 8)  # rows padded to whole lines; the kernels read n + 1 columns
    cA = np.empty(n + 1)
    P = np.empty((F, n + 1))
    engine_scalings(G, xi_sq, c, mu_sq, P0, b0, Gn, cA, P)
    A = _line_aligned(F, n + 1)
    B = np.empty(F)
    mults = y_obs.reshape(1, n)
    gamma_new = np.empty(F)
    rho_new = np.empty((F, n))
    bias_new = np.empty(F)
    lpm = np.empty(n)
    S = np.empty(F)
    Sb = np.empty(F)
    C = np.empty((F, n))
    bad = np.zeros(F, dtype=np.int64)
    nz = np.empty((F, n), dtype=np.int64)
    target = np.zeros((2, n))
    target_old = np.zeros((2, n))
    for fi in range(F):
        gamma[fi] = 0.0
        for i in range(n):
            rho[fi, i] = 0.0
    # lnref.training.run_loop: advance to every logged step (in chunks), the outputs and their check there
    t = 0
    for li in range(log_steps.shape[0]):
        goal = log_steps[li]
        while t < goal:
            k = min(goal - t, chunk)
            done = KC.advance_serial(
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
                t,
            )
            t += done
            if done < k:
                return FALLBACK, t, 0
        KC.outputs_serial(gamma, rho, bias, P, Gn, cA, y, q, m, div, A, B, f, nz)
        if not _outputs_safe(f, y_obs):
            return FALLBACK, t, 0
    if n_test == 0:
        return FINISHED, t, 0
    # lnref.data.gram.fresh_test_accuracy at the last logged step
    L = np.empty((F, F))
    fresh_test_factor(coords, e1, mu_norm, isotropic, gamma, rho, xi_sq, m, L)
    correct = fresh_test_correct(
        L,
        test_words,
        zk,
        zw,
        zf,
        tail_r,
        n_test,
        n_pick,
        y,
        test_scale,
        A,
        B,
        bias,
        flipped,
        tau_plus,
        tau_minus,
        q,
        m,
        div,
    )
    return FINISHED, t, correct
