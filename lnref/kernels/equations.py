"""One numba function per equation of the network (SPEC.md): every engine, test set and sweep path computes through
these.  The losses (the logistic loss and the training methods') are in :mod:`lnref.kernels.losses`; every name of
that module is importable from here too.

=========================  =====================================================================  ===========
function                   equation                                                               SPEC.md
=========================  =====================================================================  ===========
:func:`act`                sigma(z) = max(0, z)^q                                                 section 2
:func:`dact`               sigma'(z) = q max(0, z)^(q-1), 0 for z <= 0                             section 2
:func:`logistic_loss`      l(z) = log(1 + exp(-z)), in :mod:`lnref.kernels.losses`                section 3
:func:`logistic_dloss`     l'(z) = -1/(1 + exp(z)), in :mod:`lnref.kernels.losses`                section 3
:func:`outputs_range`      f = (1/div) sum_r sum_p [sigma(<w_{+1,r}, x_p> + b) - sigma(<w_{-1,r},   sections 2, 7
                           x_p> + b)], div = 1/(output_scale c_p) (= m for the paper)
:func:`filter_update`      each filter's gradient terms S_f, C_{f,i}, its bias term, and the      sections 3, 4, 7
                           exact recursions gamma, rho, b <- ... of one GD step
:func:`gradient_scale`     s_j/(n div), the factor of a filter's gradient and bias gradient         sections 3, 7
:func:`over_mu_sq`         v/||mu||^2 (0 when mu = 0), v/||xi_i||^2 (:func:`over_xi_sq`): the       section 4
                           scalings of inner products in coefficients (arrays: :func:`scaled_test_inner`)
:func:`coefficient_inner`  <w_f, z_t> = <w_f(0), z_t> + s_j gamma_f <mu, z_t>/||mu||^2             section 4
                           + sum_i rho_{f,i} <xi_i, z_t>/||xi_i||^2 for a row of vectors z_t
                           (training noise patches with mu as one more z, lnref.kernels.coefficients;
                           an explicit or a virtual test set)
:func:`weight_row`         w_f = w_f(0) + s_j gamma_f mu/||mu||^2 + sum_i rho_{f,i} xi_i/||xi_i||^2    section 4
                           (explicit vectors, or their coordinates in Gram sampling)
:func:`psd_cholesky`       L lower triangular with L L^T = K for a positive semi-definite K (the      section 4
                           covariance of a fresh virtual test sample's inner products)
=========================  =====================================================================  ===========

Specialisations live inside the functions: q = 1 (the ReLU) and q = 2 are branches of :func:`act` and
:func:`dact` that give the same bits as the general ``pow`` (pow(z, 1.0) = z and 2 pow(z, 1.0) = 2z exactly);
callers that loop over many terms call them with a literal ``1.0`` under an ``if q == 1.0`` so that numba
folds the branch out of the loop (same bits, no per-term test).

Numerics (docs/DESIGN.md "Numerics"): no fastmath, ``error_model="numpy"``, every sum a serial loop in index order,
so any caller that parallelises over filters or samples gets the same bits for every thread count and with
``NUMBA_DISABLE_JIT=1``.  Adding a zero bias changes no bit: x + 0.0 == x, except -0.0 + 0.0 = +0.0, which
sigma and sigma' map to 0 either way.

Compiled kernels are cached on disk by lnref's own decorators (:mod:`lnref.kernels.cache`: ``kernel``, ``both``,
``inline``, the cache folder and ``lnref cache clear``), re-exported here.
"""

from __future__ import annotations

import math

import numpy as np

from . import losses as _losses
from .cache import CACHE, both, cache_dir, clear_cache, inline, kernel, kernels_warm, mark_warm
from .lane_blocks import relu_signal_sums4
from .lanes import lane_sums, start_sums, start_sums2
from .losses import logistic_dloss, logistic_loss

__all__ = [
    "act",
    "dact",
    "logistic_loss",
    "logistic_dloss",
    "outputs_range",
    "filter_update",
    "step_scalings",
    "gradient_scale",
    "gradient_scale_array",
    "over_mu_sq",
    "over_xi_sq",
    "scaled_test_inner",
    "coefficient_inner",
    "coefficient_inner_pair",
    "weight_row",
    "psd_cholesky",
    "count_nonfinite",
    "gather_nonzero",
    "chain_rows",
    "kernel",
    "both",
    "CACHE",
    "cache_dir",
    "kernels_warm",
    "mark_warm",
    "clear_cache",
]
__all__ += _losses.__all__  # the losses' names, re-exported (module __getattr__ below)


def __getattr__(name: str):
    """The names of :mod:`lnref.kernels.losses` (LOSS_NAMES, method_dloss, sample_scalars, ...), importable from here
    as before the losses had their own module."""
    if name in _losses.__all__:
        return getattr(_losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------- activation
@inline
def act(z, q):
    """sigma(z) = max(0, z)**q (SPEC.md section 2); q = 1 returns z (pow(z, 1.0) is exact: same bits)."""
    if z > 0.0:
        if q == 1.0:
            return z
        return z**q
    return 0.0


@inline
def dact(z, q):
    """sigma'(z) = q max(0, z)**(q - 1) for z > 0 and 0 for z <= 0 (SPEC.md section 2).

    q = 1: 1.0 (= 1 * pow(z, 0.0)); q = 2: 2z (= 2 * pow(z, 1.0)); the same bits as the general formula.
    """
    if z > 0.0:
        if q == 1.0:
            return 1.0
        if q == 2.0:
            return 2.0 * z
        return q * z ** (q - 1.0)
    return 0.0


# ----------------------------------------------------------------------------------- summation helpers
@inline
def gather_nonzero(row, idx):
    """Write the indices of the non-zero entries of ``row`` into ``idx`` (in index order); return their count.

    Without a branch (every index is written, the count moves on only past a non-zero entry): the pattern of
    non-zero coefficients is random, and a mispredicted branch per entry cost 10% of the coefficient engine's
    inner products at n = 20.  idx must hold row.shape[0] entries."""
    cnt = 0
    for i in range(row.shape[0]):
        idx[cnt] = i
        cnt += 1 if row[i] != 0.0 else 0
    return cnt


@inline
def chain_rows(o, coef, rows, idx, cnt, nj):
    """o[j] += coef[i] * rows[i, j] for the cnt indices i = idx[:cnt] in order, for 0 <= j < nj.

    Each output is the serial sum in index order (exactly ``for i: o += c_i rows[i]``), computed by
    :func:`lnref.kernels.lanes.lane_sums`: the sums of 32 outputs at a time held in vector registers, the same
    sequence of roundings.
    """
    lane_sums(o, coef, rows, idx, cnt, 0, nj)


# ----------------------------------------------------------------------------------- the network output
@inline
def _outputs_loop(A, B, bias, y, q, m, div, i0, i1, fp, fm, out):
    # unsigned sample indices: numba adds wraparound arithmetic to every access with a signed index that might be
    # negative (i0 is not a constant), and that kept LLVM from vectorising these loops
    u0 = np.uint64(i0)
    u1 = np.uint64(i1)
    for i in range(u0, u1):
        fp[i] = 0.0
        fm[i] = 0.0
    for r in range(m):
        bp = B[r]
        c = bias[r]
        Ar = A[r]
        for i in range(u0, u1):
            fp[i] += act(y[i] * bp + c, q) + act(Ar[i] + c, q)
    for r in range(m):
        bm = B[m + r]
        c = bias[m + r]
        Ar = A[m + r]
        for i in range(u0, u1):
            fm[i] += act(y[i] * bm + c, q) + act(Ar[i] + c, q)
    for i in range(u0, u1):
        out[i] = fp[i] / div - fm[i] / div


@inline
def outputs_range(A, B, bias, y, q, m, div, i0, i1, acc, out):
    """out[i] = f_i for i0 <= i < i1 (SPEC.md sections 2 and 7).

    f_i = F_{+1} - F_{-1},  F_j = (1/div) sum_r [sigma(y_i <w_{j,r}, mu> + b_{j,r}) + sigma(<w_{j,r}, xi_i> + b_{j,r})]
    from A (2m, >= i1) = <w_f, xi_i>, B (2m,) = <w_f, mu>, the biases (2m,) (zeros for the paper's network) and
    div = 1/(output_scale c_p) (float(m) for the paper).  Each sample's two sums run over r in order, filter by
    filter across the samples (the loops over i vectorise; the same bits as one sample at a time).  acc (2, >= i1)
    is work space.
    """
    # a literal start 0 for a single block of samples (every sweep run): the loops' bounds are then known, 1-3% of a
    # Kou run beyond the unsigned indices alone
    if q == 1.0:
        if i0 == 0:
            _outputs_loop(A, B, bias, y, 1.0, m, div, 0, i1, acc[0], acc[1], out)
        else:
            _outputs_loop(A, B, bias, y, 1.0, m, div, i0, i1, acc[0], acc[1], out)
    elif i0 == 0:
        _outputs_loop(A, B, bias, y, q, m, div, 0, i1, acc[0], acc[1], out)
    else:
        _outputs_loop(A, B, bias, y, q, m, div, i0, i1, acc[0], acc[1], out)


# ----------------------------------------------------------------------------------- one filter's GD step
@inline
def filter_update(
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
):
    """The gradient terms and the exact GD recursions of the filters f0 <= f < f1 (SPEC.md sections 3, 4, 7).

    With lpm_i = l'_i mult_i (mult = y_obs, or eps y_obs for label-noise GD), lpy_i = lpm_i y_i, s_j = +1 for the
    first m filters and -1 for the others, and the pre-activations including the bias b_f:
      S[f]     = sum_i lpy_i sigma'(y_i <w_f, mu> + b_f)                   (signal term, serial over i)
      C[f, i]  = C_{f,i} = lpm_i sigma'(<w_f, xi_i> + b_f)                 (noise terms)
      Sb[f]    = sum_i lpm_i [sigma'(y_i <w_f, mu> + b_f) + sigma'(<w_f, xi_i> + b_f)]   (bias term, if with_bias)
    the gradient is grad_{w_f} L = (s_j/(n div)) (S_f mu + sum_i C_{f,i} xi_i), dL/db_f = (s_j/(n div)) Sb_f, and
      gamma_new[f]   = gamma[f] - gscale S_f                  gscale = eta ||mu||^2/(n div)
      rho_new[f, i]  = rho[f, i] - rate_i (s_j C_{f,i})        rate_i = eta ||xi_i||^2/(n div)
      bias_new[f]    = bias[f] - bscale (s_j Sb_f)             bscale = eta/(n div)   (if with_bias)
    bad[f] is the number of non-finite new values of filter f (0: its step may be taken).  The serial sums S and Sb
    of four filters at a time run interleaved (same bits).  It takes a block of filters, not one: every inlined call
    increments and decrements the reference count of each of its ~20 array arguments, a cost that a call per
    filter and step would pay 2m times per step (the coefficient engine's step is short enough to feel it), and a
    call per block pays once.
    """
    n = lpm.shape[0]
    for fi in range(f0, f1):
        sj = 1.0 if fi < m else -1.0
        c = bias[fi]
        cnt = 0
        if q == 1.0:  # the ReLU: sigma' with a literal q, compiled to a select that vectorises (same bits)
            for i in range(n):
                ci = lpm[i] * dact(A[fi, i] + c, 1.0)
                C[fi, i] = ci
                v = rho[fi, i] - rate[i] * (sj * ci)
                rho_new[fi, i] = v
                cnt += 0 if math.isfinite(v) else 1
        else:
            for i in range(n):
                ci = lpm[i] * dact(A[fi, i] + c, q)
                C[fi, i] = ci
                v = rho[fi, i] - rate[i] * (sj * ci)
                rho_new[fi, i] = v
                cnt += 0 if math.isfinite(v) else 1
        bad[fi] = cnt
    # the serial sums S[f] and Sb[f], with a literal q = 1 where it is one: sigma' for another q calls pow, and a call
    # in the loop made LLVM keep the running sums in memory (13% of a coefficient step at n = 20)
    if q == 1.0:  # groups of four filters in the lanes of a vector (lnref.kernels.lanes), then the rest
        f4 = f1 - (f1 - f0) % 4
        for fb in range(f0, f4, 4):
            relu_signal_sums4(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb)
        _signal_sums(f4, f1, B, bias, y, lpm, lpy, C, 1.0, with_bias, S, Sb)
    else:
        _signal_sums(f0, f1, B, bias, y, lpm, lpy, C, q, with_bias, S, Sb)
    for fi in range(f0, f1):
        sj = 1.0 if fi < m else -1.0
        g = gamma[fi] - gscale * S[fi]
        gamma_new[fi] = g
        cnt = 0 if math.isfinite(g) else 1
        if with_bias:
            b = bias[fi] - bscale * (sj * Sb[fi])
            bias_new[fi] = b
            cnt += 0 if math.isfinite(b) else 1
        bad[fi] += cnt


@inline
def _signal_sums(f0, f1, B, bias, y, lpm, lpy, C, q, with_bias, S, Sb):
    """The serial sums S[f] and Sb[f] of :func:`filter_update` for f0 <= f < f1 (Sb only with a bias, else zeros).

    Four filters at a time, interleaved: each is the same sum in index order (the same bits as one filter at a
    time), but four independent running sums per pass hide the latency of the additions.  One call per block of
    filters (an inlined call with array arguments costs reference counting per call)."""
    n = lpm.shape[0]
    f4 = f1 - (f1 - f0) % 4
    for fb in range(f0, f4, 4):
        b0 = B[fb]
        b1 = B[fb + 1]
        b2 = B[fb + 2]
        b3 = B[fb + 3]
        c0 = bias[fb]
        c1 = bias[fb + 1]
        c2 = bias[fb + 2]
        c3 = bias[fb + 3]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        for i in range(n):  # sigma'(y_i <w_f, mu> + b_f) once for both sums (with_bias is loop-invariant)
            yi = y[i]
            d0 = dact(yi * b0 + c0, q)
            d1 = dact(yi * b1 + c1, q)
            d2 = dact(yi * b2 + c2, q)
            d3 = dact(yi * b3 + c3, q)
            li = lpy[i]
            s0 += li * d0
            s1 += li * d1
            s2 += li * d2
            s3 += li * d3
            if with_bias:
                li = lpm[i]
                t0 += li * d0 + C[fb, i]
                t1 += li * d1 + C[fb + 1, i]
                t2 += li * d2 + C[fb + 2, i]
                t3 += li * d3 + C[fb + 3, i]
        S[fb] = s0
        S[fb + 1] = s1
        S[fb + 2] = s2
        S[fb + 3] = s3
        Sb[fb] = t0  # zeros without a bias (work space then)
        Sb[fb + 1] = t1
        Sb[fb + 2] = t2
        Sb[fb + 3] = t3
    for fi in range(f4, f1):
        bf = B[fi]
        c = bias[fi]
        sig = 0.0
        sb = 0.0
        for i in range(n):
            di = dact(y[i] * bf + c, q)
            sig += lpy[i] * di
            if with_bias:
                sb += lpm[i] * di + C[fi, i]
        S[fi] = sig
        Sb[fi] = sb


@inline
def step_scalings(xi_sq, eta, mu_sq, div):
    """The step sizes of :func:`filter_update`: rate_i = eta ||xi_i||^2/(n div) (n,), gscale = eta ||mu||^2/(n div),
    bscale = eta/(n div) (SPEC.md sections 4 and 7); both engines evaluate them once per call."""
    n = xi_sq.shape[0]
    rate = np.empty(n)
    for i in range(n):
        rate[i] = eta * xi_sq[i] / (n * div)
    return rate, eta * mu_sq / (n * div), eta / (n * div)


def _gradient_scale(sj, n, div):
    """s_j/(n div): the factor of filter f's gradient, grad_{w_f} L = (s_j/(n div)) (S_f mu + sum_i C_{f,i} xi_i),
    and of its bias gradient, dL/db_f = (s_j/(n div)) Sb_f (SPEC.md sections 3 and 7).  Plain Python, so that it
    also takes an array sj (:data:`gradient_scale_array`); the kernels call the inline :func:`gradient_scale`."""
    return sj / (n * div)


gradient_scale = inline(_gradient_scale)
gradient_scale_array = _gradient_scale  # the same source for NumPy callers (model.gradients' bias gradient)


@inline
def count_nonfinite(bad):
    """The sum of the per-filter counts of non-finite new values (``filter_update``'s returns): 0 means the GD step
    is taken, anything else that it is rejected and the run stops at the previous state (SPEC.md section 3)."""
    nbad = 0
    for fi in range(bad.shape[0]):
        nbad += bad[fi]
    return nbad


# ----------------------------------------------------------------------------------- inner products in coefficients
@inline
def coefficient_inner(out_row, P_row, g, c_vec, rho_row, R, idx, cnt):
    """out_row[t] = <w_f, z_t> = P_row[t] + g c_vec[t] + sum_i rho_row[i] R[i, t] (SPEC.md section 4).

    For a filter f with g = s_j gamma_f and a set of vectors z_t: P_row = <w_f(0), z_t>, c_vec = <mu, z_t>/||mu||^2,
    R[i, t] = <xi_i, z_t>/||xi_i||^2.  The training noise patches (z_t = xi_t, R = Gn) with mu itself as the last
    z (<w_f, mu>: c_vec = 1, lnref.kernels.coefficients), an explicit test set and a virtual one all go through
    here.  The sum over i runs over the indices idx[:cnt] of the non-zero rho_row
    entries (the others add nothing) in index order, starting from P_row[t] + g c_vec[t]
    (:func:`lnref.kernels.lanes.start_sums`: the sums of :func:`chain_rows`, started in the registers that hold them).
    :func:`coefficient_inner_pair` is the same for two filters at once.
    """
    start_sums(out_row, P_row, g, c_vec, rho_row, R, idx, cnt, 0, out_row.shape[0])


@kernel
def coefficient_inner_pair(out1, P1, g1, rho1, idx1, cnt1, out2, P2, g2, rho2, idx2, cnt2, c_vec, R):
    """:func:`coefficient_inner` for two filters (1 and 2) over the same vectors z_t, with the same bits: their
    sums run in one pass over the rows of R (:func:`lnref.kernels.lanes.start_sums2`), so each row is read once
    for both."""
    start_sums2(out1, P1, g1, rho1, idx1, cnt1, out2, P2, g2, rho2, idx2, cnt2, c_vec, R, 0, out1.shape[0])


@inline
def over_mu_sq(v, mu_sq):
    """v/||mu||^2, and 0 when mu = 0: how an inner product with mu, or s_j gamma_f, enters the coefficients
    (SPEC.md section 4).  :func:`scaled_test_inner` is its array form."""
    return v / mu_sq if mu_sq > 0.0 else 0.0


@inline
def over_xi_sq(v, xi_sq_i):
    """v/||xi_i||^2: how an inner product with xi_i enters the coefficients (SPEC.md section 4).
    :func:`scaled_test_inner` is its array form."""
    return v / xi_sq_i


def scaled_test_inner(
    ct: np.ndarray, mu_sq: float, Gt: np.ndarray | None = None, xi_sq: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`over_mu_sq` and :func:`over_xi_sq` on arrays, for Python callers (the same IEEE divisions, so the
    same bits): the scaled inner products of a test set that :func:`coefficient_inner` takes (SPEC.md section 4),
    ct_mu (T,) = <mu, xi_t>/||mu||^2 (zeros when mu = 0) from ct (T,) = <mu, xi_t>, and, given Gt (n, T) =
    <xi_i, xi_t> and xi_sq (n,), Gtn (n, T) = <xi_i, xi_t>/||xi_i||^2 (else None).
    tests/test_one_formula.py checks that the two forms agree bit for bit."""
    ct_mu = ct / mu_sq if mu_sq > 0.0 else np.zeros_like(ct)
    if Gt is None:
        return ct_mu, None
    if xi_sq is None:
        raise ValueError("scaled_test_inner: Gt needs xi_sq")
    return ct_mu, Gt / xi_sq[:, None]


@inline
def weight_row(out, w0, g, mu, rho_row, xi_sq, X):
    """out = w_f = w_f(0) + g mu + sum_i (rho_{f,i}/||xi_i||^2) X[i] (SPEC.md section 4), g = s_j gamma_f/||mu||^2
    (0 when mu = 0).

    X (n, D) holds the noise vectors xi_i, or their coordinates (Gram sampling), and w0, mu, out (D,) the same for
    w_f(0) and mu.  Each entry: w0 + g mu first, then the terms of the non-zero rho_{f,i} in index order.
    """
    D = out.shape[0]
    for k in range(D):
        out[k] = w0[k] + g * mu[k]
    for i in range(X.shape[0]):
        r = over_xi_sq(rho_row[i], xi_sq[i])
        if r != 0.0:
            for k in range(D):
                out[k] += r * X[i, k]


@inline
def psd_cholesky(K, L, tol):
    """Fill L (F, F) with the lower-triangular Cholesky factor of the symmetric positive semi-definite K (F, F),
    L L^T = K (SPEC.md section 4, "Virtual test sets"); every sum serial in index order.

    A column whose remaining pivot K_jj - sum_k L_jk^2 is at most ``tol`` (the caller passes 1e-12 max_j K_jj) is
    a direction of (numerically) zero variance, K being singular: it is set to zero instead of dividing by a
    rounding residue, so L L^T = K up to that tolerance.
    """
    F = K.shape[0]
    for j in range(F):
        for i in range(F):
            L[j, i] = 0.0
    for j in range(F):
        d = K[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if d <= tol:
            continue
        ljj = math.sqrt(d)
        L[j, j] = ljj
        for i in range(j + 1, F):
            v = K[i, j]
            for k in range(j):
                v -= L[i, k] * L[j, k]
            L[i, j] = v / ljj
