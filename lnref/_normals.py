"""Standard normal draws from a PCG64 stream, ~4x faster than ``Generator.standard_normal`` for large blocks.

Used for the virtual test set of :mod:`lnref.gram` (40 000 normals per run of Kou's phase diagram, the largest
per-run cost of a sweep).  The method is NumPy's ziggurat for ``Generator.standard_normal`` (Marsaglia & Tsang
2000 with 256 layers, the variant of NumPy's ``random_standard_normal``), run in one numba loop over 64-bit words
drawn in a block with ``bit_generator.random_raw``, instead of one C call per word:

* word u: layer ``idx = u & 0xff``; then ``u >>= 8``, sign bit ``u & 1``, ``rabs = (u >> 1) & (2^52 - 1)``,
  ``x = +-rabs * w[idx]``; accept when ``rabs < k[idx]``;
* otherwise, idx = 0 (the base layer): the tail beyond r by Marsaglia's exponential method, with two uniforms
  ``(word >> 11) * 2^-53`` per attempt; idx > 0: one uniform U, accept when
  ``(f[idx-1] - f[idx]) U + f[idx] < exp(-x^2/2)``; a rejected word is followed by a fresh word.

The layer tables are computed here (:func:`tables`) from the standard recursion for the layer edges; they agree
with NumPy's to a few ulps, so the draws agree with NumPy's to a few ulps and consume the same words
(tests/test_gram.py checks both on 10^6 draws).  Unused words of the block are given back with
``PCG64.advance(2^128 - unused)`` (the period is 2^128), so the stream continues exactly after the last word used.

The kernel draws no random numbers: it transforms the words it is given, deterministically.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["tables", "standard_normal"]

LAYERS = 256
TAIL_R = 3.6541528853610087963519472518       # right edge of the base layer (the tail starts there)
LAYER_AREA = 0.0049286732339746519            # area of each layer under exp(-x^2/2)
_WORD_PERIOD = 1 << 128                        # PCG64's period, for rewinding with advance()


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
    k[1:] = np.round(edges[:-1] / edges[1:] * 2.0 ** 52).astype(np.uint64)
    k[0] = np.uint64(np.round(TAIL_R * dens(TAIL_R) / LAYER_AREA * 2.0 ** 52))
    w = edges.copy()
    w[0] = LAYER_AREA / dens(TAIL_R)
    w = w / 2.0 ** 52
    return k, w, dens(edges)


_K, _W, _F = tables()


@njit(error_model="numpy", fastmath=False, cache=False)
def ziggurat_fill(words, k, w, f, r, out):
    """Fill out (P, Q) column by column with standard normals made from ``words`` (uint64) in order.

    Draw j goes to out[j % P, j // P], so out (N, 1) receives draws 0..N-1 in order, and out (r, T) receives
    the draws of a C-order (T, r) array transposed.  Returns the number of words used, or -1 if they ran out
    (the caller then supplies more).
    """
    P, Q = out.shape
    flat = out.reshape(-1)  # out[row, col] is flat[pos], pos = row * Q + col
    n_words = words.shape[0]
    inv_r = 1.0 / r
    to_unit = 1.0 / 9007199254740992.0  # 2^-53
    p = 0
    for col in range(Q):
        for row in range(P):
            pos = row * Q + col
            while True:
                if p >= n_words:
                    return -1
                u = words[p]
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
                        if p + 2 > n_words:
                            return -1
                        xx = -inv_r * np.log1p(-(np.float64(words[p] >> np.uint64(11)) * to_unit))
                        yy = -np.log1p(-(np.float64(words[p + 1] >> np.uint64(11)) * to_unit))
                        p += 2
                        if yy + yy > xx * xx:
                            break
                    flat[pos] = -(r + xx) if ((rabs >> np.uint64(8)) & np.uint64(1)) != np.uint64(0) else r + xx
                    break
                if p >= n_words:
                    return -1
                uni = np.float64(words[p] >> np.uint64(11)) * to_unit
                p += 1
                if (f[idx - 1] - f[idx]) * uni + f[idx] < np.exp(-0.5 * x * x):
                    flat[pos] = x
                    break
    return p


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
        raise TypeError(f"lnref._normals needs a PCG64 stream, got {type(bitgen).__name__}")
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
    # a draw takes 1.022 words on average (measured: 2 044 375 words for 2e6 draws), so 40 000 draws take ~880
    # extra words (sd ~40): a 5% + 64 margin practically never runs out (running out costs a second pass)
    words = bitgen.random_raw(need + need // 20 + 64)
    while True:
        used = ziggurat_fill(words, _K, _W, _F, TAIL_R, fill)
        if used >= 0:
            break
        words = np.concatenate([words, bitgen.random_raw(need // 20 + 64)])
    unused = words.shape[0] - used
    if unused:
        bitgen.advance(_WORD_PERIOD - unused)
    return out
