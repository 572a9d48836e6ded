"""The named random streams of the data contract, built without ``np.random.SeedSequence``'s per-call overhead.

Stream k of seed s is ``Generator(PCG64(SeedSequence(s, spawn_key=(k,))))`` (:mod:`lnref.data`).  Built the
plain way, SeedSequence's constructor and ``generate_state`` do their few hundred 32-bit operations through NumPy
arrays and error-state contexts, a visible share of a small sweep run, which opens six streams (the figures are
in bench/ and the CHANGELOG).  Here the same arithmetic runs in one small
numba kernel, and PCG64 is seeded from the result through a light :class:`StreamSeed` (a ``SeedSequence``
stand-in that NumPy accepts), so the generator is *the same*: same state, same draws (tests/test_config_data.py
compares the states with NumPy's for many seeds, keys and word counts).

The algorithm is NumPy's ``SeedSequence`` (numpy/random/bit_generator.pyx, O'Neill's seed_seq_fe with a pool of
four 32-bit words): the entropy words (the seed's 32-bit words, least significant first, zero-padded to the
pool size because a spawn key is given, then the spawn key's words) are hashed into the pool
(``hashmix``: value ^= h; h *= MULT_A; value *= h; value ^= value >> 16), every pool word is mixed into every
other (``mix(x, y) = (MIX_L x - MIX_R y) ^ (... >> 16)``), the remaining entropy words are mixed into every
pool word, and the output words cycle over the pool with a second running hash (INIT_B, MULT_B).  All arithmetic
is modulo 2^32.
"""

from __future__ import annotations

import sys

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

from .equations import kernel
from .normals import next_word, pcg64_words

__all__ = ["StreamSeed", "entropy_words", "generate_state", "pcg64_stream", "stream_state", "stream_words"]

_POOL = 4
_LITTLE_ENDIAN = sys.byteorder == "little"


def entropy_words(seed: int, spawn_key: tuple[int, ...]) -> np.ndarray:
    """SeedSequence's assembled entropy for (seed, spawn_key): uint32 words of the seed (least significant first;
    [0] for 0), zero-padded to the pool size when a spawn key is given, then the words of each key entry."""
    if 0 <= seed < 2**64 and all(0 <= k < 2**32 for k in spawn_key):  # lnref's streams: one or two small keys
        return np.array((seed & 0xFFFFFFFF, seed >> 32, 0, 0, *spawn_key), dtype=np.uint32)

    def words(v: int) -> list[int]:
        v = int(v)
        if v < 0:
            raise ValueError(f"seeds and spawn keys must be non-negative integers, got {v}")
        out = [v & 0xFFFFFFFF]
        v >>= 32
        while v:
            out.append(v & 0xFFFFFFFF)
            v >>= 32
        return out

    run = words(seed)
    spawn = [w for k in spawn_key for w in words(k)]
    if spawn and len(run) < _POOL:
        run += [0] * (_POOL - len(run))
    return np.array(run + spawn, dtype=np.uint32)


_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(16)


@kernel(inline="always")
def _hashmix(value, h):
    """SeedSequence's hashmix: (hashed value, next hash constant), modulo 2^32 (scalars, uint64 holding 32 bits)."""
    value ^= h
    h = (h * np.uint64(0x931E8875)) & _MASK
    value = (value * h) & _MASK
    return value ^ (value >> _SHIFT), h


@kernel(inline="always")
def _mix(x, y):
    """SeedSequence's mix of two 32-bit words."""
    r = ((np.uint64(0xCA01F9DD) * x) - (np.uint64(0x4973F715) * y)) & _MASK
    return r ^ (r >> _SHIFT)


@kernel
def _state_words(entropy, n_words32):
    """SeedSequence's pool from ``entropy`` (uint32) and its first ``n_words32`` output words (module docstring)."""
    h = np.uint64(0x43B0D7E5)  # INIT_A
    pool = np.zeros(4, dtype=np.uint64)
    n = entropy.shape[0]
    for i in range(4):
        pool[i], h = _hashmix(np.uint64(entropy[i]) if i < n else np.uint64(0), h)
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                v, h = _hashmix(pool[i_src], h)
                pool[i_dst] = _mix(pool[i_dst], v)
    for i_src in range(4, n):
        for i_dst in range(4):
            v, h = _hashmix(np.uint64(entropy[i_src]), h)
            pool[i_dst] = _mix(pool[i_dst], v)
    out = np.empty(n_words32, dtype=np.uint32)
    hb = np.uint64(0x8B51F9DD)  # INIT_B
    for i in range(n_words32):
        v = pool[i % 4] ^ hb
        hb = (hb * np.uint64(0x58F38DED)) & _MASK
        v = (v * hb) & _MASK
        out[i] = np.uint32(v ^ (v >> _SHIFT))
    return out


@kernel
def _stream_state64(seed_lo, seed_hi, key0, key1, nkeys, n_words64):
    """The uint64 words of ``generate_state(n_words64, np.uint64)`` for a seed below 2^64 and one or two spawn-key
    entries below 2^32 (lnref's streams): the entropy of :func:`entropy_words` assembled here, then
    :func:`_state_words`, its 32-bit words paired least significant first."""
    ent = np.empty(4 + nkeys, dtype=np.uint32)
    ent[0] = seed_lo
    ent[1] = seed_hi
    ent[2] = 0
    ent[3] = 0
    ent[4] = key0
    if nkeys == 2:
        ent[5] = key1
    w = _state_words(ent, 2 * n_words64)
    out = np.empty(n_words64, dtype=np.uint64)
    for i in range(n_words64):
        out[i] = np.uint64(w[2 * i]) | (np.uint64(w[2 * i + 1]) << np.uint64(32))
    return out


@kernel
def spawn_first_words(seed_lo, seed_hi, key0, key1, out):
    """out[j] = ``SeedSequence(seed, spawn_key=(key0[j], key1[j])).generate_state(1, np.uint64)[0]`` for a seed
    below 2^64 (its 32-bit halves seed_lo, seed_hi) and keys below 2^32: :func:`_stream_state64` for many spawn
    keys in one call (a sweep's seeds, :func:`lnref.sweeps.grid.cell_seeds`)."""
    for j in range(out.shape[0]):
        out[j] = _stream_state64(seed_lo, seed_hi, key0[j], key1[j], 2, 1)[0]


def generate_state(seed: int, spawn_key: tuple[int, ...], n_words: int, dtype=np.uint32) -> np.ndarray:
    """``np.random.SeedSequence(seed, spawn_key=spawn_key).generate_state(n_words, dtype)``, the same words."""
    if (
        dtype is np.uint64
        and 0 <= seed < 2**64
        and 1 <= len(spawn_key) <= 2
        and 0 <= spawn_key[0] < 2**32
        and 0 <= spawn_key[-1] < 2**32
    ):  # PCG64 seeding one of lnref's streams
        return _stream_state64(seed & 0xFFFFFFFF, seed >> 32, spawn_key[0], spawn_key[-1], len(spawn_key), int(n_words))
    dt = dtype if dtype is np.uint64 or dtype is np.uint32 else np.dtype(dtype).type  # PCG64 passes np.uint64
    if dt is np.uint32:
        return _state_words(entropy_words(seed, spawn_key), int(n_words))
    if dt is np.uint64:
        w = _state_words(entropy_words(seed, spawn_key), 2 * int(n_words))
        # pairs of 32-bit words, least significant first (SeedSequence's little-endian view)
        return w.view(np.uint64) if _LITTLE_ENDIAN else w.astype("<u4").view("<u8").astype(np.uint64)
    raise TypeError(f"dtype must be uint32 or uint64, got {np.dtype(dtype)}")


class StreamSeed(ISpawnableSeedSequence):
    """A stand-in for ``SeedSequence(entropy, spawn_key=spawn_key)`` that PCG64 accepts as its seed.

    ``generate_state`` gives SeedSequence's words (computed by :func:`generate_state`); ``spawn`` and anything else
    SeedSequence offers go to a real SeedSequence built on first use, so ``Generator.spawn`` and pickling work as
    for a plain stream.
    """

    def __init__(self, entropy: int, spawn_key: tuple[int, ...]):
        self.entropy = int(entropy)
        self.spawn_key = tuple(int(k) for k in spawn_key)
        self.pool_size = _POOL
        self._real = None

    def generate_state(self, n_words, dtype=np.uint32):  # ISeedSequence's API
        return generate_state(self.entropy, self.spawn_key, n_words, dtype)

    def seed_sequence(self) -> np.random.SeedSequence:
        """The equivalent real SeedSequence (built once)."""
        if self._real is None:
            self._real = np.random.SeedSequence(self.entropy, spawn_key=self.spawn_key)
        return self._real

    def spawn(self, n_children):  # ISpawnableSeedSequence's API
        return self.seed_sequence().spawn(n_children)

    @property
    def n_children_spawned(self) -> int:
        return self._real.n_children_spawned if self._real is not None else 0

    def __repr__(self) -> str:
        return f"StreamSeed(entropy={self.entropy}, spawn_key={self.spawn_key})"


def pcg64_stream(seed: int, key: int | tuple[int, ...]) -> np.random.Generator:
    """``Generator(PCG64(SeedSequence(seed, spawn_key=key)))`` (an int key k means (k,)), the same generator, built
    faster."""
    return np.random.Generator(np.random.PCG64(StreamSeed(seed, (key,) if isinstance(key, int) else key)))


@kernel
def stream_words(seed_lo, seed_hi, key0, key1, nkeys):
    """The PCG64 state words (state_hi, state_lo, inc_hi, inc_lo) (uint64 (4,), the layout of
    :func:`lnref.kernels.normals.pcg64_words`) of ``PCG64(SeedSequence(seed, spawn_key=key))`` for a seed below 2^64
    and one or two spawn-key entries below 2^32, without building the generator (a sweep run's streams).

    NumPy's seeding (numpy/random/src/pcg64/pcg64.c, pcg64_set_seed and pcg64_srandom_r): v = generate_state(4,
    uint64), initstate = (v[0] << 64) | v[1], initseq = (v[2] << 64) | v[3]; inc = (initseq << 1) | 1, state = 0;
    one LCG step; state += initstate (mod 2^128); one LCG step.  tests/test_config_data.py compares with NumPy."""
    v = _stream_state64(seed_lo, seed_hi, key0, key1, nkeys, 4)
    st = np.empty(4, dtype=np.uint64)
    st[2] = (v[2] << np.uint64(1)) | (v[3] >> np.uint64(63))
    st[3] = (v[3] << np.uint64(1)) | np.uint64(1)
    st[0] = 0
    st[1] = 0
    next_word(st)  # one LCG step (the output is not used)
    lo = st[1] + v[1]  # mod 2^64, the carry into the high word below
    st[0] = st[0] + v[0] + (np.uint64(1) if lo < st[1] else np.uint64(0))
    st[1] = lo
    next_word(st)
    return st


def stream_state(seed: int, key: int | tuple[int, ...]) -> np.ndarray:
    """:func:`stream_words` for ``pcg64_stream(seed, key)``'s generator: its state words (4,) uint64, fresh (no buffered
    32-bit half), for kernels that draw from them (:mod:`lnref.kernels.normals`)."""
    keys = (key,) if isinstance(key, int) else tuple(key)
    seed = int(seed)
    if not (0 <= seed < 2**64 and 1 <= len(keys) <= 2 and all(0 <= k < 2**32 for k in keys)):
        return pcg64_words(pcg64_stream(seed, keys).bit_generator)[1]
    return stream_words(seed & 0xFFFFFFFF, seed >> 32, keys[0], keys[-1], len(keys))
