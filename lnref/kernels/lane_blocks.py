"""Blocks of filters in the lanes of vectors: the weight engine's inner products (``lane_quads``) and the signal
sums of a step for the ReLU (``relu_signal_sums4``), with the IR toolkit of :mod:`lnref.kernels.lanes`.

- ``lane_quads(A, W, XT, f0, f1, k0, k1, t0, w)``: the weight engine's inner products, groups of four terms summed
  pairwise and added in increasing k (:func:`lnref.kernels.contractions.inner_group`), the sums of 16 samples of
  four filters held in registers over a tile of X^T.
- ``relu_signal_sums4(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb)``: :func:`lnref.kernels.equations.filter_update`'s
  serial sums S_f and Sb_f for q = 1, four filters in the lanes of one ``<4 x double>`` each (every lane the serial
  sum in index order).

The same rules as :mod:`lnref.kernels.lanes`: one IEEE multiplication and one addition per operation of the scalar
loop, in its order; plain Python under ``NUMBA_DISABLE_JIT=1``; the scalar loops compiled for strided arguments;
tests/test_lanes.py checks them against independently written loops, bit for bit.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .lanes import F64, I32, I64, VEC, Emitter, as_i64, contiguous, row_at, splat

__all__ = ["QUAD_CHUNK", "lane_quads", "relu_signal_sums4"]


def relu_signal_sums4(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    """For the four filters f = fb .. fb + 3, with d_{f,i} = 1 if y_i B[f] + bias[f] > 0 else 0 (the ReLU's
    derivative): S[f] = sum_i lpy_i d_{f,i} and Sb[f] = sum_i (lpm_i d_{f,i} + C[f, i]) (0 without a bias), each a
    serial sum in index order (:func:`lnref.kernels.equations.filter_update`'s signal sums for q = 1)."""
    _relu_signal_scalar(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb)


def _relu_signal_scalar(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    """:func:`relu_signal_sums4` as plain loops (its Python form, and its compiled form for strided arguments)."""
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


def _make_quads(nf, nvec):
    """The intrinsic of :func:`lane_quads` for nf filters and nvec vectors of lanes."""

    def codegen(context, builder, sig, args):
        A, W, XT = (context.make_array(ty)(context, builder, value) for ty, value in zip(sig.args[:3], args[:3]))
        f0, k0, k1, t0, w = (as_i64(context, builder, v, ty) for ty, v in zip(sig.args[3:], args[3:]))
        emit = Emitter(context, builder, nvec, w)
        a_at = row_at(builder, A, t0)
        x_at = row_at(builder, XT, t0)
        w_at = row_at(builder, W, ir.Constant(I64, 0))
        bases = [a_at(builder.add(f0, ir.Constant(I64, j))) for j in range(nf)]
        sums = [emit.load(base, v) for base in bases for v in range(nvec)]
        wrows = [w_at(builder.add(f0, ir.Constant(I64, j))) for j in range(nf)]

        def body(k, acc):
            ks = [k] + [builder.add(k, ir.Constant(I64, r)) for r in (1, 2, 3)]
            x = [[emit.load(x_at(kr), v) for v in range(nvec)] for kr in ks]  # x[r][v]: row k + r of X^T
            new = []
            for j in range(nf):
                b, c, e, g = (splat(builder, builder.load(builder.gep(wrows[j], [kr])), VEC) for kr in ks)
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


_V4 = ir.VectorType(F64, 4)


@intrinsic
def _relu_signal4(typingctx, fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    """:func:`relu_signal_sums4` with the four filters' running sums in the lanes of two <4 x double> (S and Sb):
    per i one IEEE multiplication and addition per operation of the scalar loop, in its order."""

    def codegen(context, builder, sig, args):
        arr = [
            context.make_array(ty)(context, builder, value) if isinstance(ty, types.Array) else None
            for ty, value in zip(sig.args, args)
        ]
        f0 = as_i64(context, builder, args[0], sig.args[0])
        n = builder.extract_value(arr[3].shape, 0)
        vp = _V4.as_pointer()

        def at4(a):  # &a[f0] as <4 x double>*
            return builder.bitcast(builder.gep(arr[a].data, [f0]), vp)

        b = builder.load(at4(1), align=8)
        c = builder.load(at4(2), align=8)
        bias_on = builder.icmp_unsigned("!=", args[7], ir.Constant(args[7].type, 0))
        crow = row_at(builder, arr[6], ir.Constant(I64, 0))
        rows = [crow(builder.add(f0, ir.Constant(I64, j))) for j in range(4)]
        one, zero = ir.Constant(_V4, [1.0] * 4), ir.Constant(_V4, [0.0] * 4)
        entry = builder.basic_block
        head = builder.append_basic_block("sig.head")
        body = builder.append_basic_block("sig.body")
        done = builder.append_basic_block("sig.done")
        builder.branch(head)
        builder.position_at_end(head)
        i = builder.phi(I64)
        s = builder.phi(_V4)
        t = builder.phi(_V4)
        i.add_incoming(ir.Constant(I64, 0), entry)
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
            cv = builder.insert_element(cv, builder.load(builder.gep(rows[j], [i])), ir.Constant(I32, j))
        t_new = builder.fadd(t, builder.fadd(builder.fmul(splat_at(4), d), cv))
        t_new = builder.select(bias_on, t_new, t)
        i.add_incoming(builder.add(i, ir.Constant(I64, 1)), builder.basic_block)
        s.add_incoming(s_new, builder.basic_block)
        t.add_incoming(t_new, builder.basic_block)
        builder.branch(head)
        builder.position_at_end(done)
        builder.store(s, builder.bitcast(builder.gep(arr[8].data, [f0]), vp), align=8)
        builder.store(t, builder.bitcast(builder.gep(arr[9].data, [f0]), vp), align=8)
        return context.get_dummy_value()

    return types.void(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb), codegen


def _splat4(builder, value):
    first = builder.insert_element(ir.Constant(_V4, ir.Undefined), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(first, first, ir.Constant(ir.VectorType(I32, 4), [0] * 4))


@overload(relu_signal_sums4, inline="always", jit_options={"error_model": "numpy"})
def _relu_signal_sums4_compiled(fb, B, bias, y, lpm, lpy, C, with_bias, S, Sb):
    if not contiguous(
        (B, types.float64),
        (bias, types.float64),
        (y, types.float64),
        (lpm, types.float64),
        (lpy, types.float64),
        (C, types.float64),
        (S, types.float64),
        (Sb, types.float64),
    ) or not isinstance(with_bias, types.Boolean):
        return _relu_signal_scalar

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
    if not contiguous((A, types.float64), (W, types.float64), (XT, types.float64)):
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
