"""The sweep path's draws made in numba from the streams' PCG64 words equal NumPy's own draws, bit for bit:
the stream states (lnref.kernels.seeding.stream_state), W0 and the biases of init='torch' (uniform_fill) and Gram
sampling's labels (lnref.kernels.gram.training_labels).  SPEC.md section 1 (the seed -> data contract)."""

from __future__ import annotations

import numpy as np
import pytest

from lnref.config import Config
from lnref.data import STREAMS


def numpy_stream(seed: int, key) -> np.random.Generator:
    key = (key,) if isinstance(key, int) else tuple(key)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@pytest.mark.parametrize("seed", [0, 1, 2023, 2**32 - 1, 2**32, 2**63 + 12345, 2**64 - 1, 2**64 + 5])
def test_stream_state_is_numpys_pcg64_state(seed):
    from lnref.kernels.normals import pcg64_words
    from lnref.kernels.seeding import stream_state

    keys = [*STREAMS.values(), (7, 0), (7, 99), (2**32 - 1,), (3, 2**32 - 1)]
    for key in keys:
        ours = stream_state(seed, key)
        ref = pcg64_words(numpy_stream(seed, key).bit_generator)[1]
        assert ours.dtype == np.uint64 and np.array_equal(ours, ref), key


@pytest.mark.parametrize("size", [1, 4095, 4096, 12000])
def test_uniform_leaves_the_generator_where_numpy_does(size):
    from lnref.data import uniform

    ours_rng, ref_rng = numpy_stream(7, 1), numpy_stream(7, 1)
    ref_rng.integers(0, 2, 3)  # a buffered 32-bit half must survive the numba path
    ours_rng.integers(0, 2, 3)
    ours = uniform(ours_rng, -0.3, 0.5, (size,))
    ref = ref_rng.uniform(-0.3, 0.5, size)
    assert np.array_equal(ours, ref)
    assert ours_rng.bit_generator.state == ref_rng.bit_generator.state
    assert np.array_equal(ours_rng.integers(0, 2**31, 5), ref_rng.integers(0, 2**31, 5))


@pytest.mark.parametrize("d", [3, 100, 1090])
def test_torch_init_is_numpys_uniform_of_streams_init_and_bias(d):
    from lnref.data import init_bias, init_weights

    cfg = Config(n=5, d=d, m=3, init="torch", bias=True, seed=2**40 + d)
    a = 1.0 / np.sqrt(d)
    W0 = numpy_stream(cfg.seed, STREAMS["init"]).uniform(-a, a, (2, 3, d))
    b0 = numpy_stream(cfg.seed, STREAMS["bias"]).uniform(-a, a, (2, 3))
    assert np.array_equal(init_weights(cfg), W0)
    assert np.array_equal(init_bias(cfg), b0)


@pytest.mark.parametrize("seed", [0, 5, 2**50 + 3])
@pytest.mark.parametrize("taus", [(0.0, 0.0), (0.1, 0.1), (0.3, 0.05), (0.49, 0.0)])
def test_gram_labels_are_numpys_draws(seed, taus):
    from lnref.data.gram import gram_draws

    n = 37
    cfg = Config(n=n, d=50, m=2, tau_plus=taus[0], tau_minus=taus[1], seed=seed, sampling="gram", engine="coefficients")
    y, y_obs, _, _ = gram_draws(cfg)
    ref_y = 2.0 * numpy_stream(seed, STREAMS["data"]).integers(0, 2, n).astype(np.float64) - 1.0
    u = numpy_stream(seed, STREAMS["flips"]).random(n)
    ref_obs = np.where(u < np.where(ref_y > 0, taus[0], taus[1]), -ref_y, ref_y)
    assert np.array_equal(y, ref_y) and np.array_equal(y_obs, ref_obs)
