"""Standard normal draws from a PCG64 stream, NumPy's numbers made in numba for large blocks (and the
bounded integers of a fresh virtual test set, :func:`bounded_integers`).

Used for the virtual test sets of :mod:`lnref.data.gram` (20 000 normals per run of Kou's phase diagram with its fresh
test set, 40 000 with a fixed one).  The method is NumPy's ziggurat for ``Generator.standard_normal`` (Marsaglia & Tsang
2000 with 256 layers, the variant of NumPy's ``random_standard_normal``), run in one numba loop that also runs
the stream's PCG64 generator, instead of one C call per word:

* word u: layer ``idx = u & 0xff``; then ``u >>= 8``, sign bit ``u & 1``, ``rabs = (u >> 1) & (2^52 - 1)``,
  ``x = +-rabs * w[idx]``; accept when ``rabs < k[idx]``;
* otherwise, idx = 0 (the base layer): the tail beyond r by Marsaglia's exponential method, with two uniforms
  ``(word >> 11) * 2^-53`` per attempt; idx > 0: one uniform U, accept when
  ``(f[idx-1] - f[idx]) U + f[idx] < exp(-x^2/2)``; a rejected word is followed by a fresh word.

The words are PCG64's (NumPy's ``pcg64_next64``: the 128-bit LCG step state * MULT + inc, as one LLVM i128
multiply, then the XSL-RR output), produced in the loop from the generator's state, which is read before and
written back after: the same words ``bit_generator.random_raw`` gives, exactly as many as were used, so the
stream continues exactly after the last word used (tests/test_gram.py checks the words against ``random_raw``).
The layer tables are computed here (:func:`tables`) from the standard recursion for the layer edges; they agree
with NumPy's to a few ulps, so the draws agree with NumPy's to a few ulps and consume the same words
(tests/test_gram.py checks both on 10^6 draws).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .equations import kernel

__all__ = [
    "tables",
    "standard_normal",
    "bounded_integers",
    "uniform_fill",
    "pcg64_words",
    "set_pcg64_words",
    "next_word",
    "ZIG_K",
    "ZIG_W",
    "ZIG_F",
]

LAYERS = 256
TAIL_R = 3.6541528853610087963519472518  # right edge of the base layer (the tail starts there)
LAYER_AREA = 0.0049286732339746519  # area of each layer under exp(-x^2/2)


def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ziggurat tables (k (256,) uint64, w (256,), f (256,)) for exp(-x^2/2) with 256 equal-area layers.

    Edges x_0 = 0 < x_1 < ... < x_255 = r with exp(-x_{i-1}^2/2) = exp(-x_i^2/2) + A/x_i (area A each);
    layer i >= 1 lies between heights f(x_i) and f(x_{i-1}), layer 0 is the base strip plus the tail.
    k_i = round(2^52 x_{i-1}/x_i) (accept without the density test), w_i = x_i / 2^52, f_i = exp(-x_i^2/2);
    base: k_0 = round(2^52 r f(r) / A), w_0 = A / f(r) / 2^52.
    """

    def dens(t):
        return np.exp(-0.5 * t * t)

    down = np.zeros(LAYERS)  # edges from r down to 0
    down[0] = TAIL_R
    for i in range(1, LAYERS - 1):
        down[i] = np.sqrt(-2.0 * np.log(dens(down[i - 1]) + LAYER_AREA / down[i - 1]))
    edges = down[::-1].copy()
    k = np.zeros(LAYERS, dtype=np.uint64)
    k[1:] = np.round(edges[:-1] / edges[1:] * 2.0**52).astype(np.uint64)
    k[0] = np.uint64(np.round(TAIL_R * dens(TAIL_R) / LAYER_AREA * 2.0**52))
    w = edges.copy()
    w[0] = LAYER_AREA / dens(TAIL_R)
    w = w / 2.0**52
    return k, w, dens(edges)


# the ziggurat's tables (layer limits, widths, densities), as the kernels of lnref.kernels.coefficients take them
ZIG_K, ZIG_W, ZIG_F = tables()


# PCG64 (NumPy's default bit generator): a 128-bit LCG, state <- state * MULT + inc (mod 2^128), and the XSL-RR
# output of the new state, rotr64(hi ^ lo, hi >> 58) (numpy/random/src/pcg64/pcg64.h, pcg64_next64)
_PCG64_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_MASK64 = (1 << 64) - 1


@intrinsic
def _lcg128_step(typingctx, s_hi, s_lo, i_hi, i_lo):
    """(hi, lo) of state * MULT + inc mod 2^128, the state and increment given as 64-bit halves (LLVM i128)."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        i64 = ir.IntType(64)
        sixty_four = ir.Constant(i128, 64)

        def join(hi, lo):
            return builder.or_(builder.shl(builder.zext(hi, i128), sixty_four), builder.zext(lo, i128))

        new = builder.add(builder.mul(join(args[0], args[1]), ir.Constant(i128, _PCG64_MULT)), join(args[2], args[3]))
        hi = builder.trunc(builder.lshr(new, sixty_four), i64)
        return context.make_tuple(builder, signature.return_type, [hi, builder.trunc(new, i64)])

    return sig, codegen


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 (tests run the kernels as Python): the same step on Python ints

    def _lcg128_step(s_hi, s_lo, i_hi, i_lo):  # replaces the intrinsic, which needs the compiler
        v = (((int(s_hi) << 64) | int(s_lo)) * _PCG64_MULT + ((int(i_hi) << 64) | int(i_lo))) & ((1 << 128) - 1)
        return np.uint64(v >> 64), np.uint64(v & _MASK64)


@kernel(inline="always")
def _xsl_rr(hi, lo):
    """PCG64's 64-bit output of the 128-bit state (hi, lo): rotr64(hi ^ lo, hi >> 58)."""
    x = hi ^ lo
    rot = hi >> np.uint64(58)
    return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@kernel(inline="always")
def next_word(st):
    """The next 64-bit output of the PCG64 state st = (state_hi, state_lo, inc_hi, inc_lo) (uint64), advancing it."""
    hi, lo = _lcg128_step(st[0], st[1], st[2], st[3])
    st[0] = hi
    st[1] = lo
    return _xsl_rr(hi, lo)


@kernel
def ziggurat_fill(st, k, w, f, r, out):
    """Fill out (P, Q) column by column with standard normals made from the words of the PCG64 state ``st``
    (uint64 (4,): state_hi, state_lo, inc_hi, inc_lo), advancing it by the words used.

    Draw j goes to out[j % P, j // P], so out (N, 1) receives draws 0..N-1 in order, and out (r, T) receives
    the draws of a C-order (T, r) array transposed.  Returns the number of words used.
    """
    P, Q = out.shape
    flat = out.reshape(-1)  # out[row, col] is flat[pos], pos = row * Q + col
    inv_r = 1.0 / r
    to_unit = 1.0 / 9007199254740992.0  # 2^-53
    p = 0
    # the generator's state in locals for the whole loop (next_word on st would store and reload it for every word:
    # the stores to out might alias it), written back at the end
    s_hi = st[0]
    s_lo = st[1]
    i_hi = st[2]
    i_lo = st[3]
    for col in range(Q):
        for row in range(P):
            pos = row * Q + col
            while True:
                s_hi, s_lo = _lcg128_step(s_hi, s_lo, i_hi, i_lo)
                u = _xsl_rr(s_hi, s_lo)
                p += 1
                idx = np.int64(u & np.uint64(0xFF))
                u = u >> np.uint64(8)
                negative = (u & np.uint64(1)) != np.uint64(0)
                rabs = (u >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
                x = np.float64(np.int64(rabs)) * w[idx]  # rabs < 2^52: exact via the signed conversion
                if negative:
                    x = -x
                if rabs < k[idx]:
                    flat[pos] = x
                    break
                if idx == 0:  # tail beyond r
                    while True:
                        s_hi, s_lo = _lcg128_step(s_hi, s_lo, i_hi, i_lo)
                        xx = -inv_r * np.log1p(-(np.float64(_xsl_rr(s_hi, s_lo) >> np.uint64(11)) * to_unit))
                        s_hi, s_lo = _lcg128_step(s_hi, s_lo, i_hi, i_lo)
                        yy = -np.log1p(-(np.float64(_xsl_rr(s_hi, s_lo) >> np.uint64(11)) * to_unit))
                        p += 2
                        if yy + yy > xx * xx:
                            break
                    flat[pos] = -(r + xx) if ((rabs >> np.uint64(8)) & np.uint64(1)) != np.uint64(0) else r + xx
                    break
                s_hi, s_lo = _lcg128_step(s_hi, s_lo, i_hi, i_lo)
                uni = np.float64(_xsl_rr(s_hi, s_lo) >> np.uint64(11)) * to_unit
                p += 1
                if (f[idx - 1] - f[idx]) * uni + f[idx] < np.exp(-0.5 * x * x):
                    flat[pos] = x
                    break
    st[0] = s_hi
    st[1] = s_lo
    return p


@kernel
def uniform_fill(st, low, span, out):
    """out[i] = u_i span + low for i in order, u_i = ``random()`` of a Generator on the PCG64 state ``st`` (advanced):
    NumPy's double, (word >> 11) 2^-53.  The numbers of :func:`lnref.data.uniform` (``random(shape)``, then
    ``*= span``, ``+= low``) with span = high - low, made from the same words in the same order (out 1-d)."""
    to_unit = 1.0 / 9007199254740992.0  # 2^-53
    for i in range(out.shape[0]):
        u = np.float64(next_word(st) >> np.uint64(11)) * to_unit
        u *= span
        out[i] = u + low


@kernel
def bounded_integers(st, span, out):
    """out[:] = ``integers(0, span, out.size)`` of a Generator on the PCG64 state ``st`` with no buffered 32-bit
    half (a fresh stream), for 1 <= span < 2^32: the same numbers, made from st's words (advanced) as NumPy makes
    them.  Lemire's method on 32-bit values: v = (u span) >> 32, the product redrawn while its low 32 bits are
    below (2^32 - span) mod span; the 32-bit values are the halves of the 64-bit words, low half first, and an
    unused high half is dropped at the end (NumPy keeps it for a later 32-bit draw; the callers draw none).
    span = 1 draws nothing (NumPy returns zeros).  tests/test_gram.py compares with NumPy, rejections included."""
    n = out.shape[0]
    if span == 1:
        for t in range(n):
            out[t] = 0
        return
    s = np.uint64(span)
    threshold = (np.uint64(4294967296) - s) % s
    low32 = np.uint64(0xFFFFFFFF)
    have_half = False
    half = np.uint64(0)
    for t in range(n):
        while True:
            if have_half:
                u32 = half
                have_half = False
            else:
                word = next_word(st)
                u32 = word & low32
                half = word >> np.uint64(32)
                have_half = True
            prod = u32 * s
            if (prod & low32) >= threshold:
                break
        out[t] = np.int64(prod >> np.uint64(32))


def pcg64_words(bitgen: np.random.PCG64) -> tuple[dict, np.ndarray]:
    """(NumPy's state dict, its 128-bit state and increment as uint64 (4,): state_hi, state_lo, inc_hi, inc_lo)."""
    state = bitgen.state
    s, inc = state["state"]["state"], state["state"]["inc"]
    return state, np.array((s >> 64, s & _MASK64, inc >> 64, inc & _MASK64), dtype=np.uint64)


def set_pcg64_words(bitgen: np.random.PCG64, state: dict, st: np.ndarray) -> None:
    """Put the advanced 128-bit state ``st`` back into ``bitgen`` (the increment and the buffered 32-bit word of
    ``state`` are unchanged: 64-bit draws leave them alone)."""
    state["state"]["state"] = (int(st[0]) << 64) | int(st[1])
    bitgen.state = state


def standard_normal(rng: np.random.Generator, shape, transposed: bool = False) -> np.ndarray:
    """Standard normals of the given shape from ``rng`` (a PCG64 Generator), leaving it after the words used.

    Parameters
    ----------
    rng : numpy.random.Generator on a PCG64 bit generator (lnref.data.stream)
    shape : int or tuple
    transposed : bool
        Return the transpose, C-contiguous, of the (2-d) C-order array of draws (the same numbers, in the layout
        a kernel reading one coordinate of many samples at a time wants).

    Returns
    -------
    ndarray of float64, C order: ``shape``, or ``shape[::-1]`` if transposed
    """
    bitgen = rng.bit_generator
    if not isinstance(bitgen, np.random.PCG64):
        raise TypeError(f"lnref.kernels.normals needs a PCG64 stream, got {type(bitgen).__name__}")
    if transposed:
        if len(shape) != 2:
            raise ValueError(f"transposed draws need a 2-d shape, got {shape!r}")
        out = np.empty((shape[1], shape[0]))
        fill = out
    else:
        out = np.empty(shape)
        fill = out.reshape(-1, 1)
    need = out.size
    if need == 0:
        return out
    state, st = pcg64_words(bitgen)
    ziggurat_fill(st, ZIG_K, ZIG_W, ZIG_F, TAIL_R, fill)
    set_pcg64_words(bitgen, state, st)
    return out
