"""Sums run eight output lanes at a time, with the running sums held in vector registers for the whole sum.

Four primitives, each the exact operations of a scalar loop, lane by lane:

- ``lane_sums(o, coef, rows, idx, cnt, t0, w)``: for every lane t0 <= t < t0 + w,
  o[t] = (((o[t] + coef[i_0] rows[i_0, t]) + coef[i_1] rows[i_1, t]) + ...) + coef[i_{cnt-1}] rows[i_{cnt-1}, t]
  with i_p = idx[p]: the serial sum in the order of ``idx``.  :func:`lnref.kernels.equations.chain_rows` is this
  (the coefficient engine's inner products, SPEC.md section 4, and the Gram draws' sums).
- ``start_sums(o, P, g, c, coef, rows, idx, cnt, t0, w)``: the same sums started from P[t] + g c[t] (one IEEE
  multiplication, then one addition) instead of from o[t]: the start is made in the registers that hold the sums,
  not stored to o and loaded back (a vector load of values just stored by narrower stores waits for them to
  retire: 7% of a coefficient step at n = 20).  :func:`lnref.kernels.equations.coefficient_inner` is this.
- ``start_sums2``: the same for two outputs with their own P, g, coefficients and indices over the same c and rows,
  in one pass (each row is read once for both while it is in the L1 cache;
  :func:`lnref.kernels.equations.coefficient_inner_pair`).
- ``lane_quads(A, W, XT, f0, f1, k0, k1, t0, w)``: the weight engine's inner products, groups of four terms summed
  pairwise and added in increasing k (:func:`lnref.kernels.contractions.inner_group`).

One IEEE multiplication and one IEEE addition per operation of the scalar loop, in its order (no fused
multiply-add, no reassociation), so the same bits (docs/DESIGN.md "Numerics").

Why this module exists: numba's loop vectoriser keeps a running sum in memory, so a sum over many rows loads and
stores every output once per term (once per eight terms in the unrolled loop this replaced), and it cannot keep a
short row (n = 20 in Kou et al.'s sweeps) in whole vectors.  Here the sums of up to :data:`LANE_CHUNK` lanes (a
call takes its lanes in chunks) stay in vector registers (``<8 x double>``) for the whole sum, and a row's last
partial vector is read and written with masked loads and stores.  The compiled form is LLVM IR written through
numba's documented extension API (``numba.extending.intrinsic``) and reached from the kernels through an
``overload``; with ``NUMBA_DISABLE_JIT=1`` the plain Python functions below run instead, the same loops.  A CPU
without 512-bit vectors runs each ``<8 x double>`` operation as two or four narrower ones: the same operations
lane by lane, the same bits.  Arguments that are not all C-contiguous (float64 arrays, int64 indices) get the
scalar loops compiled, the same sums.

tests/test_lanes.py checks every width, chunk offset, count, alignment and layout against the scalar loops, bit
for bit.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

__all__ = [
    "LANES",
    "LANE_CHUNK",
    "QUAD_CHUNK",
    "lane_sums",
    "start_sums",
    "start_sums2",
    "lane_quads",
    "relu_signal_sums4",
]

# doubles per vector (one 512-bit register)
LANES = 8
# lanes per call: four vectors of running sums (enough independent additions to hide their latency)
LANE_CHUNK = 32


def lane_sums(o, coef, rows, idx, cnt, t0, w):
    """o[t] += coef[idx[p]] * rows[idx[p], t] for p = 0 .. cnt-1 in order, for t0 <= t < t0 + w (module docs)."""
    for t in range(t0, t0 + w):
        s = o[t]
        for p in range(cnt):
            i = idx[p]
            s = s + coef[i] * rows[i, t]
        o[t] = s


def start_sums(o, P, g, c, coef, rows, idx, cnt, t0, w):
    """:func:`lane_sums` after o[t] = P[t] + g c[t] for t0 <= t < t0 + w: the start is made in the registers that
    hold the sums (module docs), not written to o and read back."""
    for t in range(t0, t0 + w):
        o[t] = P[t] + g * c[t]
    lane_sums(o, coef, rows, idx, cnt, t0, w)


def start_sums2(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w):
    """:func:`start_sums` for two outputs (o1 with P1, g1, coef1, idx1, cnt1; o2 with P2, g2, ...) over the same
    c and rows, in one pass."""
    start_sums(o1, P1, g1, c, coef1, rows, idx1, cnt1, t0, w)
    start_sums(o2, P2, g2, c, coef2, rows, idx2, cnt2, t0, w)


def relu_signal_sums4(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    """For the four filters f = fb .. fb + 3, with d_{f,i} = 1 if y_i B[f] + bias[f] > 0 else 0 (the ReLU's
    derivative): S[f] = sum_i lpy_i d_{f,i} and Sb[f] = sum_i (lpm_i d_{f,i} + C[f, i]) (0 without a bias), each a
    serial sum in index order (:func:`lnref.kernels.equations.filter_update`'s signal sums for q = 1)."""
    for f in range(fb, fb + 4):
        s = 0.0
        t = 0.0
        for i in range(y.shape[0]):
            d = 1.0 if y[i] * B[f] + bias[f] > 0.0 else 0.0
            s += lpy[i] * d
            if with_bias:
                t += lpm[i] * d + C[f, i]
        S[f] = s
        Sb[f] = t


def lane_quads(A, W, XT, f0, f1, k0, k1, t0, w):
    """A[f, t] += ((W[f, k] XT[k, t] + W[f, k+1] XT[k+1, t]) + (W[f, k+2] XT[k+2, t] + W[f, k+3] XT[k+3, t])) for
    k = k0, k0 + 4, ... < k1 in increasing order (k1 - k0 a multiple of 4), for the filters f0 <= f < f1 (at most
    four) and the lanes t0 <= t < t0 + w: the weight engine's inner products A[f, i] = <w_f, xi_i> with XT = X^T
    (:func:`lnref.kernels.contractions.inner_group`, SPEC.md section 3)."""
    _quads_scalar(A, W, XT, f0, f1, k0, k1, t0, w)


def _quads_scalar(A, W, XT, f0, f1, k0, k1, t0, w):
    """:func:`lane_quads` as plain loops (its Python form, and its compiled form for strided arrays)."""
    for f in range(f0, f1):
        for t in range(t0, t0 + w):
            s = A[f, t]
            for k in range(k0, k1, 4):
                s = s + (
                    (W[f, k] * XT[k, t] + W[f, k + 1] * XT[k + 1, t])
                    + (W[f, k + 2] * XT[k + 2, t] + W[f, k + 3] * XT[k + 3, t])
                )
            A[f, t] = s


# ----------------------------------------------------------------------------------------------- LLVM IR
_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I8P = ir.IntType(8).as_pointer()
_VEC = ir.VectorType(_F64, LANES)
_VECP = _VEC.as_pointer()
_MASK = ir.VectorType(ir.IntType(1), LANES)
_LANE_IDX = ir.VectorType(_I64, LANES)


def _splat(builder, value, vector_type):
    first = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, first, ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


class _Emitter:
    """The IR of one call: V vectors of lanes t0 .. t0 + w - 1, the last one masked to the lanes below w."""

    def __init__(self, context, builder, nvec, w):
        self.context, self.builder, self.nvec = context, builder, nvec
        module = builder.module
        self.mload = cgutils.get_or_insert_function(
            module, ir.FunctionType(_VEC, [_VECP, _I32, _MASK, _VEC]), "llvm.masked.load.v8f64.p0v8f64"
        )
        self.mstore = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [_VEC, _VECP, _I32, _MASK]), "llvm.masked.store.v8f64.p0v8f64"
        )
        last = ir.Constant(_LANE_IDX, [LANES * (nvec - 1) + k for k in range(LANES)])
        self.mask = builder.icmp_signed("<", last, _splat(builder, w, _LANE_IDX))
        self.zero = ir.Constant(_VEC, [0.0] * LANES)

    def _vptr(self, base, v):
        return self.builder.bitcast(self.builder.gep(base, [ir.Constant(_I64, LANES * v)]), _VECP)

    def load(self, base, v):
        ptr = self._vptr(base, v)
        if v < self.nvec - 1:
            return self.builder.load(ptr, align=8)
        return self.builder.call(self.mload, [ptr, ir.Constant(_I32, 8), self.mask, self.zero])

    def store(self, value, base, v):
        ptr = self._vptr(base, v)
        if v < self.nvec - 1:
            self.builder.store(value, ptr, align=8)
        else:
            self.builder.call(self.mstore, [value, ptr, ir.Constant(_I32, 8), self.mask])

    def loop(self, lo, hi, step, carried, body):
        """for p = lo, lo + step, ... < hi: carried = body(p, carried); returns the final carried vectors (a flat
        list; the loop runs zero times when lo >= hi)."""
        builder = self.builder
        entry = builder.basic_block
        head = builder.append_basic_block("lanes.head")
        block = builder.append_basic_block("lanes.body")
        done = builder.append_basic_block("lanes.done")
        builder.branch(head)
        builder.position_at_end(head)
        p = builder.phi(_I64)
        p.add_incoming(lo, entry)
        phis = []
        for value in carried:
            phi = builder.phi(_VEC)
            phi.add_incoming(value, entry)
            phis.append(phi)
        builder.cbranch(builder.icmp_signed("<", p, hi), block, done)
        builder.position_at_end(block)
        new = body(p, phis)
        for phi, value in zip(phis, new):
            phi.add_incoming(value, builder.basic_block)
        p.add_incoming(builder.add(p, ir.Constant(_I64, step)), builder.basic_block)
        builder.branch(head)
        builder.position_at_end(done)
        return list(phis)

    def terms(self, lo, hi, streams, row_at):
        """for p in [lo, hi): every stream's sums += coef[idx[p]] * row idx[p] (lanes), in order."""
        builder, nvec = self.builder, self.nvec

        def body(p, sums):
            new = []
            for k, stream in enumerate(streams):
                i = builder.load(builder.gep(stream["idx"], [p]))
                c = _splat(builder, builder.load(builder.gep(stream["coef"], [i])), _VEC)
                base = row_at(i)
                new += [builder.fadd(sums[k * nvec + v], builder.fmul(c, self.load(base, v))) for v in range(nvec)]
            return new

        out = self.loop(lo, hi, 1, [x for stream in streams for x in stream["sums"]], body)
        for k, stream in enumerate(streams):
            stream["sums"] = out[k * nvec : (k + 1) * nvec]


def _as_i64(context, builder, value, ty):
    return context.cast(builder, value, ty, types.int64)


def _row_at(builder, array, t0):
    """&rows[i, t0] for a 2-d C-contiguous array (its row stride in bytes)."""
    stride = builder.extract_value(array.strides, 0)

    def at(i):
        start = builder.gep(builder.bitcast(array.data, _I8P), [builder.mul(i, stride)])
        return builder.gep(builder.bitcast(start, _F64.as_pointer()), [t0])

    return at


def _make_sums(nvec, pairs=False, start=False):
    """The intrinsic of :func:`lane_sums` (the sums start from o) or, with ``start``, of :func:`start_sums`
    (pairs=False) / :func:`start_sums2` (pairs=True) (they start from P + g c), with nvec vectors."""

    def codegen(context, builder, sig, args):
        arr = [
            context.make_array(ty)(context, builder, value) if isinstance(ty, types.Array) else None
            for ty, value in zip(sig.args, args)
        ]
        ints = [
            _as_i64(context, builder, value, ty) if isinstance(ty, types.Integer) else None
            for ty, value in zip(sig.args, args)
        ]
        # argument positions: (o, coef, idx, cnt, P, g) per output (P, g: None without a start), then rows, t0, w
        # and the start's c
        if start and pairs:
            outs = [(0, 3, 4, 5, 1, 2), (6, 9, 10, 11, 7, 8)]
            rows_at, t0, w, c_at = 13, ints[14], ints[15], 12
        elif start:
            outs = [(0, 4, 6, 7, 1, 2)]
            rows_at, t0, w, c_at = 5, ints[8], ints[9], 3
        else:
            outs = [(0, 1, 3, 4, None, None)]
            rows_at, t0, w, c_at = 2, ints[5], ints[6], None
        emit = _Emitter(context, builder, nvec, w)
        c_base = None if c_at is None else builder.gep(arr[c_at].data, [t0])
        streams = []
        for o_at, coef_at, idx_at, cnt_at, p_at, g_at in outs:
            base = builder.gep(arr[o_at].data, [t0])
            if p_at is None:
                sums = [emit.load(base, v) for v in range(nvec)]
            else:  # P[t] + g c[t]: one IEEE multiplication, then one addition, as the scalar loop
                p_base = builder.gep(arr[p_at].data, [t0])
                g = _splat(builder, args[g_at], _VEC)
                sums = [builder.fadd(emit.load(p_base, v), builder.fmul(g, emit.load(c_base, v))) for v in range(nvec)]
            streams.append(
                {"base": base, "coef": arr[coef_at].data, "idx": arr[idx_at].data, "cnt": ints[cnt_at], "sums": sums}
            )
        row_at = _row_at(builder, arr[rows_at], t0)
        zero = ir.Constant(_I64, 0)
        if len(streams) == 1:
            emit.terms(zero, streams[0]["cnt"], streams, row_at)
        else:
            a, b = streams
            both = builder.select(builder.icmp_signed("<", a["cnt"], b["cnt"]), a["cnt"], b["cnt"])
            emit.terms(zero, both, streams, row_at)
            emit.terms(both, a["cnt"], [a], row_at)
            emit.terms(both, b["cnt"], [b], row_at)
        for stream in streams:
            for v in range(nvec):
                emit.store(stream["sums"][v], stream["base"], v)
        return context.get_dummy_value()

    def typer(typingctx, *args):
        return types.void(*args), codegen

    # intrinsic() reads the typing function's arguments: give it explicit ones
    if start and pairs:

        def starts2(typingctx, o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w):
            return typer(typingctx, o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w)

        return intrinsic(starts2)
    if start:

        def starts(typingctx, o, P, g, c, coef, rows, idx, cnt, t0, w):
            return typer(typingctx, o, P, g, c, coef, rows, idx, cnt, t0, w)

        return intrinsic(starts)
    assert not pairs, "pairs of sums start from P + g c (start_sums2)"

    def sums(typingctx, o, coef, rows, idx, cnt, t0, w):
        return typer(typingctx, o, coef, rows, idx, cnt, t0, w)

    return intrinsic(sums)


def _make_quads(nf, nvec):
    """The intrinsic of :func:`lane_quads` for nf filters and nvec vectors of lanes."""

    def codegen(context, builder, sig, args):
        A, W, XT = (context.make_array(ty)(context, builder, value) for ty, value in zip(sig.args[:3], args[:3]))
        f0, k0, k1, t0, w = (_as_i64(context, builder, v, ty) for ty, v in zip(sig.args[3:], args[3:]))
        emit = _Emitter(context, builder, nvec, w)
        a_at = _row_at(builder, A, t0)
        x_at = _row_at(builder, XT, t0)
        w_at = _row_at(builder, W, ir.Constant(_I64, 0))
        bases = [a_at(builder.add(f0, ir.Constant(_I64, j))) for j in range(nf)]
        sums = [emit.load(base, v) for base in bases for v in range(nvec)]
        wrows = [w_at(builder.add(f0, ir.Constant(_I64, j))) for j in range(nf)]

        def body(k, acc):
            ks = [k] + [builder.add(k, ir.Constant(_I64, r)) for r in (1, 2, 3)]
            x = [[emit.load(x_at(kr), v) for v in range(nvec)] for kr in ks]  # x[r][v]: row k + r of X^T
            new = []
            for j in range(nf):
                b, c, e, g = (_splat(builder, builder.load(builder.gep(wrows[j], [kr])), _VEC) for kr in ks)
                for v in range(nvec):
                    left = builder.fadd(builder.fmul(b, x[0][v]), builder.fmul(c, x[1][v]))
                    right = builder.fadd(builder.fmul(e, x[2][v]), builder.fmul(g, x[3][v]))
                    new.append(builder.fadd(acc[j * nvec + v], builder.fadd(left, right)))
            return new

        sums = emit.loop(k0, k1, 4, sums, body)
        for j, base in enumerate(bases):
            for v in range(nvec):
                emit.store(sums[j * nvec + v], base, v)
        return context.get_dummy_value()

    def quads(typingctx, A, W, XT, f0, k0, k1, t0, w):
        return types.void(A, W, XT, f0, k0, k1, t0, w), codegen

    return intrinsic(quads)


# the intrinsics for 1-4 vectors: lane_sums (_S), start_sums (_T), start_sums2 (_U)
_S1, _S2, _S3, _S4 = (_make_sums(v) for v in range(1, 5))
_T1, _T2, _T3, _T4 = (_make_sums(v, start=True) for v in range(1, 5))
_U1, _U2, _U3, _U4 = (_make_sums(v, pairs=True, start=True) for v in range(1, 5))


def _contiguous(*arrays):
    """Whether every (array type, dtype) pair is a C-contiguous, element-aligned array of that dtype (the vector
    forms' loads assume both)."""
    return all(isinstance(a, types.Array) and a.layout == "C" and a.aligned and a.dtype == t for a, t in arrays)


def _passes(o, coef, rows, idx, cnt, t0, w):
    """The compiled form for arguments that are not all C-contiguous float64/int64 arrays: the same serial sums,
    eight consecutive terms per pass as (((o + c0 r0) + c1 r1) + ...) + c7 r7 (the same sequence of roundings with
    an eighth of the loads and stores of o), the cnt mod 8 last terms one at a time."""
    c8 = cnt - cnt % 8
    for p in range(0, c8, 8):
        v0 = coef[idx[p]]
        v1 = coef[idx[p + 1]]
        v2 = coef[idx[p + 2]]
        v3 = coef[idx[p + 3]]
        v4 = coef[idx[p + 4]]
        v5 = coef[idx[p + 5]]
        v6 = coef[idx[p + 6]]
        v7 = coef[idx[p + 7]]
        r0 = rows[idx[p]]
        r1 = rows[idx[p + 1]]
        r2 = rows[idx[p + 2]]
        r3 = rows[idx[p + 3]]
        r4 = rows[idx[p + 4]]
        r5 = rows[idx[p + 5]]
        r6 = rows[idx[p + 6]]
        r7 = rows[idx[p + 7]]
        for j in range(w):
            t = t0 + j
            u = (((o[t] + v0 * r0[t]) + v1 * r1[t]) + v2 * r2[t]) + v3 * r3[t]
            o[t] = (((u + v4 * r4[t]) + v5 * r5[t]) + v6 * r6[t]) + v7 * r7[t]
    for p in range(c8, cnt):
        v = coef[idx[p]]
        r0 = rows[idx[p]]
        for j in range(w):
            o[t0 + j] += v * r0[t0 + j]


@overload(lane_sums, inline="always", jit_options={"error_model": "numpy"})
def _lane_sums_compiled(o, coef, rows, idx, cnt, t0, w):
    if not _contiguous((o, types.float64), (coef, types.float64), (rows, types.float64), (idx, types.int64)):
        return _passes

    def vector(o, coef, rows, idx, cnt, t0, w):
        for c0 in range(t0, t0 + w, LANE_CHUNK):
            left = t0 + w - c0
            if left > 24:
                _S4(o, coef, rows, idx, cnt, c0, left)
            elif left > 16:
                _S3(o, coef, rows, idx, cnt, c0, left)
            elif left > 8:
                _S2(o, coef, rows, idx, cnt, c0, left)
            else:
                _S1(o, coef, rows, idx, cnt, c0, left)

    return vector


def _start_scalar(o, P, g, c, coef, rows, idx, cnt, t0, w):
    """:func:`start_sums` for arguments the vector form does not take: the start, then :func:`lane_sums`."""
    for t in range(t0, t0 + w):
        o[t] = P[t] + g * c[t]
    lane_sums(o, coef, rows, idx, cnt, t0, w)


@overload(start_sums, inline="always", jit_options={"error_model": "numpy"})
def _start_sums_compiled(o, P, g, c, coef, rows, idx, cnt, t0, w):
    if not _contiguous(
        (o, types.float64), (P, types.float64), (c, types.float64), (coef, types.float64), (rows, types.float64)
    ) or not _contiguous((idx, types.int64)):
        return _start_scalar

    def vector(o, P, g, c, coef, rows, idx, cnt, t0, w):
        for c0 in range(t0, t0 + w, LANE_CHUNK):
            left = t0 + w - c0
            if left > 24:
                _T4(o, P, g, c, coef, rows, idx, cnt, c0, left)
            elif left > 16:
                _T3(o, P, g, c, coef, rows, idx, cnt, c0, left)
            elif left > 8:
                _T2(o, P, g, c, coef, rows, idx, cnt, c0, left)
            else:
                _T1(o, P, g, c, coef, rows, idx, cnt, c0, left)

    return vector


@overload(start_sums2, inline="always", jit_options={"error_model": "numpy"})
def _start_sums2_compiled(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w):
    if not _contiguous(
        (o1, types.float64),
        (P1, types.float64),
        (coef1, types.float64),
        (idx1, types.int64),
        (o2, types.float64),
        (P2, types.float64),
        (coef2, types.float64),
        (idx2, types.int64),
        (c, types.float64),
        (rows, types.float64),
    ):

        def two(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w):
            start_sums(o1, P1, g1, c, coef1, rows, idx1, cnt1, t0, w)
            start_sums(o2, P2, g2, c, coef2, rows, idx2, cnt2, t0, w)

        return two

    def vector(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, t0, w):
        for c0 in range(t0, t0 + w, LANE_CHUNK):
            left = t0 + w - c0
            if left > 24:
                _U4(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, c0, left)
            elif left > 16:
                _U3(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, c0, left)
            elif left > 8:
                _U2(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, c0, left)
            else:
                _U1(o1, P1, g1, coef1, idx1, cnt1, o2, P2, g2, coef2, idx2, cnt2, c, rows, c0, left)

    return vector


_V4 = ir.VectorType(_F64, 4)


@intrinsic
def _relu_signal4(typingctx, fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    """:func:`relu_signal_sums4` with the four filters' running sums in the lanes of two <4 x double> (S and Sb):
    per i one IEEE multiplication and addition per operation of the scalar loop, in its order."""

    def codegen(context, builder, sig, args):
        arr = [
            context.make_array(ty)(context, builder, value) if isinstance(ty, types.Array) else None
            for ty, value in zip(sig.args, args)
        ]
        f0 = _as_i64(context, builder, args[0], sig.args[0])
        n = builder.extract_value(arr[3].shape, 0)
        vp = _V4.as_pointer()

        def at4(a):  # &a[f0] as <4 x double>*
            return builder.bitcast(builder.gep(arr[a].data, [f0]), vp)

        b = builder.load(at4(1), align=8)
        c = builder.load(at4(2), align=8)
        bias_on = builder.icmp_unsigned("!=", args[7], ir.Constant(args[7].type, 0))
        crow = _row_at(builder, arr[6], ir.Constant(_I64, 0))
        rows = [crow(builder.add(f0, ir.Constant(_I64, j))) for j in range(4)]
        one, zero = ir.Constant(_V4, [1.0] * 4), ir.Constant(_V4, [0.0] * 4)
        entry = builder.basic_block
        head = builder.append_basic_block("sig.head")
        body = builder.append_basic_block("sig.body")
        done = builder.append_basic_block("sig.done")
        builder.branch(head)
        builder.position_at_end(head)
        i = builder.phi(_I64)
        s = builder.phi(_V4)
        t = builder.phi(_V4)
        i.add_incoming(ir.Constant(_I64, 0), entry)
        s.add_incoming(zero, entry)
        t.add_incoming(zero, entry)
        builder.cbranch(builder.icmp_signed("<", i, n), body, done)
        builder.position_at_end(body)

        def splat_at(a):
            return _splat4(builder, builder.load(builder.gep(arr[a].data, [i])))

        z = builder.fadd(builder.fmul(splat_at(3), b), c)  # y_i B[f] + bias[f]
        d = builder.select(builder.fcmp_ordered(">", z, zero), one, zero)
        s_new = builder.fadd(s, builder.fmul(splat_at(5), d))
        cv = zero
        for j in range(4):
            cv = builder.insert_element(cv, builder.load(builder.gep(rows[j], [i])), ir.Constant(_I32, j))
        t_new = builder.fadd(t, builder.fadd(builder.fmul(splat_at(4), d), cv))
        t_new = builder.select(bias_on, t_new, t)
        i.add_incoming(builder.add(i, ir.Constant(_I64, 1)), builder.basic_block)
        s.add_incoming(s_new, builder.basic_block)
        t.add_incoming(t_new, builder.basic_block)
        builder.branch(head)
        builder.position_at_end(done)
        builder.store(s, builder.bitcast(builder.gep(arr[8].data, [f0]), vp), align=8)
        builder.store(t, builder.bitcast(builder.gep(arr[9].data, [f0]), vp), align=8)
        return context.get_dummy_value()

    return types.void(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb), codegen


def _splat4(builder, value):
    first = builder.insert_element(ir.Constant(_V4, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, first, ir.Constant(ir.VectorType(_I32, 4), [0] * 4))


@overload(relu_signal_sums4, inline="always", jit_options={"error_model": "numpy"})
def _relu_signal_sums4_compiled(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    if not _contiguous(
        (B, types.float64),
        (bias, types.float64),
        (y, types.float64),
        (lpm, types.float64),
        (lpy, types.float64),
        (C, types.float64),
        (S, types.float64),
        (Sb, types.float64),
    ) or not isinstance(with_bias, types.Boolean):

        def scalar(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
            for f in range(fb, fb + 4):
                s = 0.0
                t = 0.0
                for i in range(y.shape[0]):
                    d = 1.0 if y[i] * B[f] + bias[f] > 0.0 else 0.0
                    s += lpy[i] * d
                    if with_bias:
                        t += lpm[i] * d + C[f, i]
                S[f] = s
                Sb[f] = t

        return scalar

    def vector(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
        _relu_signal4(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb)

    return vector


# lane_quads: (filters, vectors) -> intrinsic; 16 lanes per call (two vectors: four filters' sums, eight rows of
# X^T and the broadcast weights fit the 32 vector registers)
QUAD_CHUNK = 16
_Q = {(nf, v): _make_quads(nf, v) for nf in (1, 2, 3, 4) for v in (1, 2)}
_Q41, _Q42, _Q31, _Q32 = _Q[4, 1], _Q[4, 2], _Q[3, 1], _Q[3, 2]
_Q21, _Q22, _Q11, _Q12 = _Q[2, 1], _Q[2, 2], _Q[1, 1], _Q[1, 2]


@overload(lane_quads, inline="always", jit_options={"error_model": "numpy"})
def _lane_quads_compiled(A, W, XT, f0, f1, k0, k1, t0, w):
    if not _contiguous((A, types.float64), (W, types.float64), (XT, types.float64)):
        return _quads_scalar

    def vector(A, W, XT, f0, f1, k0, k1, t0, w):
        for c0 in range(t0, t0 + w, QUAD_CHUNK):
            left = t0 + w - c0
            f = f0
            while f < f1:
                nf = min(4, f1 - f)
                if nf == 4:
                    if left > 8:
                        _Q42(A, W, XT, f, k0, k1, c0, left)
                    else:
                        _Q41(A, W, XT, f, k0, k1, c0, left)
                elif nf == 3:
                    if left > 8:
                        _Q32(A, W, XT, f, k0, k1, c0, left)
                    else:
                        _Q31(A, W, XT, f, k0, k1, c0, left)
                elif nf == 2:
                    if left > 8:
                        _Q22(A, W, XT, f, k0, k1, c0, left)
                    else:
                        _Q21(A, W, XT, f, k0, k1, c0, left)
                elif left > 8:
                    _Q12(A, W, XT, f, k0, k1, c0, left)
                else:
                    _Q11(A, W, XT, f, k0, k1, c0, left)
                f += nf

    return vector
