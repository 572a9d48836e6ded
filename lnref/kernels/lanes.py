"""Sums run eight output lanes at a time, with the running sums held in vector registers for the whole sum.

Three primitives, each the exact operations of a scalar loop, lane by lane:

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
Blocks of filters in lanes (the weight engine's inner products, a step's signal sums for the ReLU) are in
:mod:`lnref.kernels.lane_blocks`, built with this module's IR toolkit (:class:`Emitter`, :func:`row_at`, ...).

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
    "lane_sums",
    "start_sums",
    "start_sums2",
    # the IR toolkit (lnref.kernels.lane_blocks builds on it)
    "F64",
    "I32",
    "I64",
    "VEC",
    "Emitter",
    "as_i64",
    "contiguous",
    "row_at",
    "splat",
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


F64 = ir.DoubleType()
I64 = ir.IntType(64)
I32 = ir.IntType(32)
_I8P = ir.IntType(8).as_pointer()
VEC = ir.VectorType(F64, LANES)
_VECP = VEC.as_pointer()
_MASK = ir.VectorType(ir.IntType(1), LANES)
_LANE_IDX = ir.VectorType(I64, LANES)


def splat(builder, value, vector_type):
    first = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(first, first, ir.Constant(ir.VectorType(I32, LANES), [0] * LANES))


class Emitter:
    """The IR of one call: V vectors of lanes t0 .. t0 + w - 1, the last one masked to the lanes below w."""

    def __init__(self, context, builder, nvec, w):
        self.context, self.builder, self.nvec = context, builder, nvec
        module = builder.module
        self.mload = cgutils.get_or_insert_function(
            module, ir.FunctionType(VEC, [_VECP, I32, _MASK, VEC]), "llvm.masked.load.v8f64.p0v8f64"
        )
        self.mstore = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [VEC, _VECP, I32, _MASK]), "llvm.masked.store.v8f64.p0v8f64"
        )
        last = ir.Constant(_LANE_IDX, [LANES * (nvec - 1) + k for k in range(LANES)])
        self.mask = builder.icmp_signed("<", last, splat(builder, w, _LANE_IDX))
        self.zero = ir.Constant(VEC, [0.0] * LANES)

    def _vptr(self, base, v):
        return self.builder.bitcast(self.builder.gep(base, [ir.Constant(I64, LANES * v)]), _VECP)

    def load(self, base, v):
        ptr = self._vptr(base, v)
        if v < self.nvec - 1:
            return self.builder.load(ptr, align=8)
        return self.builder.call(self.mload, [ptr, ir.Constant(I32, 8), self.mask, self.zero])

    def store(self, value, base, v):
        ptr = self._vptr(base, v)
        if v < self.nvec - 1:
            self.builder.store(value, ptr, align=8)
        else:
            self.builder.call(self.mstore, [value, ptr, ir.Constant(I32, 8), self.mask])

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
        p = builder.phi(I64)
        p.add_incoming(lo, entry)
        phis = []
        for value in carried:
            phi = builder.phi(VEC)
            phi.add_incoming(value, entry)
            phis.append(phi)
        builder.cbranch(builder.icmp_signed("<", p, hi), block, done)
        builder.position_at_end(block)
        new = body(p, phis)
        for phi, value in zip(phis, new):
            phi.add_incoming(value, builder.basic_block)
        p.add_incoming(builder.add(p, ir.Constant(I64, step)), builder.basic_block)
        builder.branch(head)
        builder.position_at_end(done)
        return list(phis)

    def terms(self, lo, hi, streams, rows_of):
        """for p in [lo, hi): every stream's sums += coef[idx[p]] * row idx[p] (lanes), in order."""
        builder, nvec = self.builder, self.nvec

        def body(p, sums):
            new = []
            for k, stream in enumerate(streams):
                i = builder.load(builder.gep(stream["idx"], [p]))
                c = splat(builder, builder.load(builder.gep(stream["coef"], [i])), VEC)
                base = rows_of(i)
                new += [builder.fadd(sums[k * nvec + v], builder.fmul(c, self.load(base, v))) for v in range(nvec)]
            return new

        out = self.loop(lo, hi, 1, [x for stream in streams for x in stream["sums"]], body)
        for k, stream in enumerate(streams):
            stream["sums"] = out[k * nvec : (k + 1) * nvec]


def as_i64(context, builder, value, ty):
    return context.cast(builder, value, ty, types.int64)


def row_at(builder, array, t0):
    """&rows[i, t0] for a 2-d C-contiguous array (its row stride in bytes)."""
    stride = builder.extract_value(array.strides, 0)

    def at(i):
        start = builder.gep(builder.bitcast(array.data, _I8P), [builder.mul(i, stride)])
        return builder.gep(builder.bitcast(start, F64.as_pointer()), [t0])

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
            as_i64(context, builder, value, ty) if isinstance(ty, types.Integer) else None
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
        emit = Emitter(context, builder, nvec, w)
        c_base = None if c_at is None else builder.gep(arr[c_at].data, [t0])
        streams = []
        for o_at, coef_at, idx_at, cnt_at, p_at, g_at in outs:
            base = builder.gep(arr[o_at].data, [t0])
            if p_at is None:
                sums = [emit.load(base, v) for v in range(nvec)]
            else:  # P[t] + g c[t]: one IEEE multiplication, then one addition, as the scalar loop
                p_base = builder.gep(arr[p_at].data, [t0])
                g = splat(builder, args[g_at], VEC)
                sums = [builder.fadd(emit.load(p_base, v), builder.fmul(g, emit.load(c_base, v))) for v in range(nvec)]
            streams.append(
                {"base": base, "coef": arr[coef_at].data, "idx": arr[idx_at].data, "cnt": ints[cnt_at], "sums": sums}
            )
        rows_of = row_at(builder, arr[rows_at], t0)
        zero = ir.Constant(I64, 0)
        if len(streams) == 1:
            emit.terms(zero, streams[0]["cnt"], streams, rows_of)
        else:
            a, b = streams
            both = builder.select(builder.icmp_signed("<", a["cnt"], b["cnt"]), a["cnt"], b["cnt"])
            emit.terms(zero, both, streams, rows_of)
            emit.terms(both, a["cnt"], [a], rows_of)
            emit.terms(both, b["cnt"], [b], rows_of)
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


# the intrinsics for 1-4 vectors: lane_sums (_S), start_sums (_T), start_sums2 (_U)
_S1, _S2, _S3, _S4 = (_make_sums(v) for v in range(1, 5))
_T1, _T2, _T3, _T4 = (_make_sums(v, start=True) for v in range(1, 5))
_U1, _U2, _U3, _U4 = (_make_sums(v, pairs=True, start=True) for v in range(1, 5))


def contiguous(*arrays):
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
    if not contiguous((o, types.float64), (coef, types.float64), (rows, types.float64), (idx, types.int64)):
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
    if not contiguous(
        (o, types.float64), (P, types.float64), (c, types.float64), (coef, types.float64), (rows, types.float64)
    ) or not contiguous((idx, types.int64)):
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
    if not contiguous(
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
