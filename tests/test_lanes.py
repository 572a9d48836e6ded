"""lnref.kernels.lanes: the vector-register sums give the bits of the scalar loops, for every width, offset,
count, alignment and layout (docs/DESIGN.md "Numerics": one summation order, whatever the code that runs it)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from lnref.kernels.lane_blocks import QUAD_CHUNK, lane_quads, relu_signal_sums4
from lnref.kernels.lanes import LANE_CHUNK, lane_sums, start_sums, start_sums2


@njit(error_model="numpy")
def _compiled(o, coef, rows, idx, cnt, t0, w):
    lane_sums(o, coef, rows, idx, cnt, t0, w)


@njit(error_model="numpy")
def _compiled_start(o, P, g, c, coef, rows, idx, cnt, t0, w):
    start_sums(o, P, g, c, coef, rows, idx, cnt, t0, w)


@njit(error_model="numpy")
def _compiled_start2(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w):
    start_sums2(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w)


def _serial(o, coef, rows, idx, cnt, t0, w):
    """The definition, written here independently: for each lane, one term at a time in the order of idx."""
    out = o.copy()
    for t in range(t0, t0 + w):
        s = float(out[t])
        for p in range(cnt):
            s = s + float(coef[idx[p]]) * float(rows[idx[p], t])
        out[t] = s
    return out


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan].view(np.int64), b[~nan].view(np.int64))


def _offset_copy(a, offset):
    """A C-contiguous copy of ``a`` starting ``offset`` doubles into a fresh buffer (alignments 8, 16, ... 64)."""
    buf = np.zeros(a.size + offset + 8)
    out = buf[offset : offset + a.size].reshape(a.shape)
    out[...] = a
    return out


SPECIAL = [0.0, -0.0, 1e-310, -1e-310, 1e300, -1e300, np.inf, -np.inf]


@st.composite
def problems(draw):
    n = draw(st.integers(1, 40))
    T = draw(st.integers(1, 3 * LANE_CHUNK + 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, T)) * 10.0 ** rng.integers(-8, 9, (n, 1))
    if draw(st.booleans()):  # a few special values (signed zeros, subnormals, huge, infinite)
        for _ in range(draw(st.integers(1, 4))):
            rows[rng.integers(n), rng.integers(T)] = SPECIAL[rng.integers(len(SPECIAL))]
    coef = [rng.standard_normal(n), rng.standard_normal(n)]
    idx = []
    for _ in range(2):
        k = draw(st.integers(0, n))
        idx.append(np.sort(rng.choice(n, k, replace=False)).astype(np.int64))
    t0 = draw(st.integers(0, T - 1))
    w = draw(st.integers(0, T - t0))
    outs = [rng.standard_normal(T), rng.standard_normal(T)]
    offsets = [draw(st.integers(0, 7)) for _ in range(3)]
    return rows, coef, idx, t0, w, outs, offsets


@settings(max_examples=150, deadline=None)
@given(problems())
def test_lane_sums_are_the_serial_sums(problem):
    rows, coef, idx, t0, w, outs, (oo, ro, _) = problem
    want = _serial(outs[0], coef[0], rows, idx[0], len(idx[0]), t0, w)
    got = _offset_copy(outs[0], oo)
    _compiled(got, coef[0], _offset_copy(rows, ro), idx[0], len(idx[0]), t0, w)
    assert _same_bits(got, want)
    plain = outs[0].copy()  # the Python form (what NUMBA_DISABLE_JIT=1 runs)
    with np.errstate(all="ignore"):  # inf - inf on NumPy scalars: NaN, as compiled, without a warning
        lane_sums(plain, coef[0], rows, idx[0], len(idx[0]), t0, w)
    assert _same_bits(plain, want)


def _serial_start(o, P, g, c, coef, rows, idx, cnt, t0, w):
    """start_sums' definition, written here independently: o[t] = P[t] + g c[t], then the serial sum."""
    out = o.copy()
    for t in range(t0, t0 + w):
        out[t] = float(P[t]) + float(g) * float(c[t])
    return _serial(out, coef, rows, idx, cnt, t0, w)


G_VALUES = [0.0, -0.0, 1.0, -1.0, 1e-310, 1e300, np.inf]


@settings(max_examples=150, deadline=None)
@given(problems(), st.integers(0, len(G_VALUES)), st.integers(0, len(G_VALUES)))
def test_start_sums_start_from_p_plus_g_c_then_sum_serially(problem, gi, hi):
    """start_sums and start_sums2 (the coefficient engine's inner products: o = P + g c + sum_i coef_i rows_i) are the
    scalar loops' bits, the start included, for special g (signed zeros, subnormal, huge, infinite) too."""
    rows, coef, idx, t0, w, outs, (o1, o2, ro) = problem
    rng = np.random.default_rng(len(idx[0]) * 1000 + t0)
    T = rows.shape[1]
    P1, P2, c = rng.standard_normal(T), rng.standard_normal(T), rng.standard_normal(T)
    c[rng.integers(T)] = SPECIAL[rng.integers(len(SPECIAL))]
    g1 = G_VALUES[gi] if gi < len(G_VALUES) else float(rng.standard_normal())
    g2 = G_VALUES[hi] if hi < len(G_VALUES) else float(rng.standard_normal())
    want1 = _serial_start(outs[0], P1, g1, c, coef[0], rows, idx[0], len(idx[0]), t0, w)
    want2 = _serial_start(outs[1], P2, g2, c, coef[1], rows, idx[1], len(idx[1]), t0, w)
    rows_c, c_c = _offset_copy(rows, ro), _offset_copy(c, o2)
    got = _offset_copy(outs[0], o1)
    _compiled_start(got, _offset_copy(P1, o2), g1, c_c, coef[0], rows_c, idx[0], len(idx[0]), t0, w)
    assert _same_bits(got, want1)
    got1, got2 = _offset_copy(outs[0], o1), _offset_copy(outs[1], o2)
    _compiled_start2(
        got1, P1, g1, coef[0], idx[0], len(idx[0]), got2, P2, g2, coef[1], idx[1], len(idx[1]), c_c, rows_c, t0, w
    )
    assert _same_bits(got1, want1)
    assert _same_bits(got2, want2)
    plain1, plain2 = outs[0].copy(), outs[1].copy()  # the Python forms (what NUMBA_DISABLE_JIT=1 runs)
    with np.errstate(all="ignore"):  # inf * 0 and inf - inf on NumPy scalars: NaN, as compiled, without a warning
        start_sums2(
            plain1, P1, g1, coef[0], idx[0], len(idx[0]), plain2, P2, g2, coef[1], idx[1], len(idx[1]), c, rows, t0, w
        )
    assert _same_bits(plain1, want1) and _same_bits(plain2, want2)
    strided = outs[0].copy()  # a strided argument: the compiled scalar form
    _compiled_start(strided, np.repeat(P1, 2)[::2], g1, c, coef[0], rows, idx[0], len(idx[0]), t0, w)
    assert _same_bits(strided, want1)


def test_strided_arguments_take_the_scalar_form_with_the_same_bits():
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((30, 2 * 70))[:, ::2]  # not C-contiguous
    o = rng.standard_normal(2 * 70)[::2]
    coef = rng.standard_normal(30)
    idx = np.arange(0, 30, 3, dtype=np.int64)
    want = _serial(o, coef, rows, idx, len(idx), 3, 60)
    got = o.copy()
    _compiled(got, coef, rows, idx, len(idx), 3, 60)
    assert _same_bits(got, want)
    assert not _same_bits(o, want)  # the sums changed something


def test_only_the_chosen_lanes_and_counts_are_touched():
    rng = np.random.default_rng(6)
    rows = rng.standard_normal((12, 50))
    coef = rng.standard_normal(12)
    idx = np.arange(12, dtype=np.int64)
    o = rng.standard_normal(50)
    got = o.copy()
    _compiled(got, coef, rows, idx, 7, 9, 21)  # lanes 9..29, the first 7 indices only
    assert _same_bits(got[:9], o[:9]) and _same_bits(got[30:], o[30:])
    assert _same_bits(got, _serial(o, coef, rows, idx, 7, 9, 21))


@njit(error_model="numpy")
def _compiled_quads(A, W, XT, f0, f1, k0, k1, t0, w):
    lane_quads(A, W, XT, f0, f1, k0, k1, t0, w)


def _serial_quads(A, W, XT, f0, f1, k0, k1, t0, w):
    """The weight engine's inner-product order, written here independently: groups of four k summed pairwise."""
    out = A.copy()
    for f in range(f0, f1):
        for t in range(t0, t0 + w):
            s = float(out[f, t])
            for k in range(k0, k1, 4):
                left = float(W[f, k]) * float(XT[k, t]) + float(W[f, k + 1]) * float(XT[k + 1, t])
                right = float(W[f, k + 2]) * float(XT[k + 2, t]) + float(W[f, k + 3]) * float(XT[k + 3, t])
                s = s + (left + right)
            out[f, t] = s
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 24),
    st.integers(1, 2 * QUAD_CHUNK + 9),
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(0, 7), min_size=3, max_size=3),
)
def test_lane_quads_are_the_grouped_sums(F, groups, n, seed, offsets):
    rng = np.random.default_rng(seed)
    d = 4 * groups
    W = rng.standard_normal((F, d)) * 10.0 ** rng.integers(-6, 7, (F, 1))
    XT = rng.standard_normal((d, n))
    A = rng.standard_normal((F, n))
    f0 = int(rng.integers(0, F))
    f1 = int(rng.integers(f0, F + 1))
    k0 = 4 * int(rng.integers(0, groups))
    k1 = 4 * int(rng.integers(k0 // 4, groups + 1))
    t0 = int(rng.integers(0, n))
    w = int(rng.integers(0, n - t0 + 1))
    want = _serial_quads(A, W, XT, f0, f1, k0, k1, t0, w)
    got = _offset_copy(A, offsets[0])
    _compiled_quads(got, _offset_copy(W, offsets[1]), _offset_copy(XT, offsets[2]), f0, f1, k0, k1, t0, w)
    assert _same_bits(got, want)
    plain = A.copy()
    lane_quads(plain, W, XT, f0, f1, k0, k1, t0, w)
    assert _same_bits(plain, want)
    strided = A.copy()
    _compiled_quads(strided, W, np.asfortranarray(XT), f0, f1, k0, k1, t0, w)  # the scalar form
    assert _same_bits(strided, want)


@njit(error_model="numpy")
def _compiled_signal4(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    relu_signal_sums4(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 40),
    st.integers(0, 3),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_relu_signal_sums_are_four_serial_sums(n, fb, with_bias, seed, special):
    """relu_signal_sums4 (filter_update's signal sums for the ReLU, four filters in the lanes of a vector) is the
    scalar loop's bits: d = 1 if y_i B_f + b_f > 0 else 0, S_f = sum_i lpy_i d and Sb_f = sum_i (lpm_i d + C_fi),
    serial in i, for special values too (signed zeros, NaN, inf in B, the biases, the scalars and C)."""
    rng = np.random.default_rng(seed)
    F = fb + 4 + int(rng.integers(0, 3))
    B, bias = rng.standard_normal(F), rng.standard_normal(F) * 0.3
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    lpm, lpy = -rng.random(n), rng.standard_normal(n)
    C = rng.standard_normal((F, n)) * 10.0 ** rng.integers(-5, 6, (F, 1))
    if special:
        for arr in (B, bias, lpm, lpy, C.reshape(-1)):
            if arr.size:
                arr[rng.integers(arr.size)] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-310][rng.integers(6)]
    want_S, want_Sb = np.full(F, 7.0), np.full(F, 7.0)
    for f in range(fb, fb + 4):  # the definition, written here independently
        s, t = 0.0, 0.0
        for i in range(n):
            d = 1.0 if float(y[i]) * float(B[f]) + float(bias[f]) > 0.0 else 0.0
            s = s + float(lpy[i]) * d
            if with_bias:
                t = t + (float(lpm[i]) * d + float(C[f, i]))
        want_S[f], want_Sb[f] = s, t
    got_S, got_Sb = np.full(F, 7.0), np.full(F, 7.0)
    _compiled_signal4(fb, _offset_copy(B, 1), bias, y, lpm, _offset_copy(lpy, 3), C, with_bias, got_S, got_Sb)
    assert _same_bits(got_S, want_S) and _same_bits(got_Sb, want_Sb)
    py_S, py_Sb = np.full(F, 7.0), np.full(F, 7.0)  # the Python form; and a strided C (the compiled scalar form)
    with np.errstate(all="ignore"):
        relu_signal_sums4(fb, B, bias, y, lpm, lpy, C, with_bias, py_S, py_Sb)
    assert _same_bits(py_S, want_S) and _same_bits(py_Sb, want_Sb)
    st_S, st_Sb = np.full(F, 7.0), np.full(F, 7.0)
    _compiled_signal4(fb, B, bias, y, lpm, lpy, np.repeat(C, 2, axis=1)[:, ::2], with_bias, st_S, st_Sb)
    assert _same_bits(st_S, want_S) and _same_bits(st_Sb, want_Sb)
