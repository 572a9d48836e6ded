"""Steps per second of ``lnref.train`` (weight engine, plain GD) against a NumPy/BLAS GD step.

Usage::

    /work/venv/bin/python bench/bench_weights.py [--steps N] [--repeats R] [--sizes n,d,m ...] [--q Q]

Everything runs in ONE process: first a tiny ``lnref.train`` call compiles the kernels (its time is reported as
the first-call compile cost), then for each size the NumPy baseline and ``lnref.train`` (all threads, then one
thread) each run ``--steps`` GD steps ``--repeats`` times on the same data and W0; the minimum time is reported.
lnref's time is ``Result.timings['train']`` (all GD steps; logging only at step 0 and the end, n_test=0).

Before timing, the script checks that the NumPy baseline's final W agrees with lnref's
(``assert_allclose(rtol=1e-10, atol=1e-10 * max|W|)``), so both sides compute the same GD trajectory.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

DEFAULT_SIZES = [(200, 2000, 20), (100, 10000, 20), (20, 1000, 10)]


# ------------------------------------------------------------------ the NumPy/BLAS baseline
def numpy_gd(W0, mu, X, y, y_obs, q, eta, steps):
    """Plain full-batch GD written the way a NumPy user would (matrix products, SPEC.md sections 2-3).

    W0 (2, m, d), mu (d,), X (n, d), y, y_obs (n,) -> final W (2, m, d).
    """
    two, m, d = W0.shape
    n = X.shape[0]
    W = W0.reshape(2 * m, d).copy()
    XT = np.ascontiguousarray(X.T)
    sign = np.repeat([1.0, -1.0], m)[:, None]  # s_j per filter row
    for _ in range(steps):
        A = W @ XT                      # (2m, n) <w, xi_i>
        Bs = (W @ mu)[:, None] * y      # (2m, n) <w, y_i mu>
        pa = np.maximum(A, 0.0)
        pb = np.maximum(Bs, 0.0)
        act = pa ** q + pb ** q
        F = act.reshape(2, m, n).sum(axis=1) / m
        f = F[0] - F[1]
        z = y_obs * f
        lp = -np.exp(-np.logaddexp(0.0, z))  # l'(z) = -1/(1 + exp(z)), overflow-free
        lpm = lp * y_obs
        dA = np.where(A > 0, q * pa ** (q - 1.0), 0.0)
        dB = np.where(Bs > 0, q * pb ** (q - 1.0), 0.0)
        S = (dB * (lpm * y)).sum(axis=1)           # (2m,)
        C = dA * lpm                                # (2m, n)
        G = (sign / (n * m)) * (S[:, None] * mu[None, :] + C @ X)
        W -= eta * G
    return W.reshape(2, m, d)


def time_numpy(W0, data, q, eta, steps, repeats):
    best = np.inf
    W = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        W = numpy_gd(W0, data.mu, data.xi, data.y, data.y_obs, q, eta, steps)
        best = min(best, time.perf_counter() - t0)
    return best, W


def time_lnref(cfg, data, W0, threads, repeats):
    import lnref
    best = np.inf
    res = None
    for _ in range(repeats):
        res = lnref.train(cfg, data, W0, threads=threads, keep_rho=False)
        best = min(best, res.timings["train"])
    return best, res


def parse_size(text: str) -> tuple[int, int, int]:
    try:
        n, d, m = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must be n,d,m (three integers)") from None
    return n, d, m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="GD steps per timed run (default 50)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; the minimum is reported (default 3)")
    ap.add_argument("--sizes", type=parse_size, nargs="+", default=DEFAULT_SIZES, metavar="n,d,m")
    ap.add_argument("--q", type=float, default=1.0, help="activation exponent (default 1, the ReLU)")
    ap.add_argument("--check-steps", type=int, default=None,
                    help="steps of the numpy-vs-lnref agreement check (default: --steps)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    import numba
    import lnref
    t_import = time.perf_counter() - t0
    all_threads = numba.config.NUMBA_NUM_THREADS

    # first call: compiles every kernel on the training path
    tiny = lnref.Config(n=4, d=8, m=1, q=args.q, steps=2, log_every=0, n_test=0)
    t0 = time.perf_counter()
    lnref.train(tiny)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    lnref.train(tiny)
    t_second = time.perf_counter() - t0
    print(f"lnref {lnref.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
          f"NUMBA_NUM_THREADS={all_threads}, cpu_count={os.cpu_count()}, q={args.q}, steps={args.steps}, "
          f"repeats={args.repeats} (min reported)")
    print(f"import lnref: {t_import:.2f} s; first lnref.train call (compile): {t_compile:.2f} s; "
          f"second call: {t_second * 1e3:.1f} ms")

    header = (f"{'n':>5} {'d':>6} {'m':>3} | {'numpy st/s':>10} | {'lnref st/s':>10} {'(thr=all)':>9} | "
              f"{'lnref st/s':>10} {'(thr=1)':>7} | {'all/numpy':>9} {'1/numpy':>8}")
    print(header)
    print("-" * len(header))
    for n, d, m in args.sizes:
        cfg = lnref.Config(n=n, d=d, m=m, q=args.q, steps=args.steps, log_every=0, log_points=0, n_test=0,
                           seed=1)
        data = lnref.make_data(cfg)
        W0 = lnref.init_weights(cfg)
        # apples to apples: the same trajectory
        check_steps = args.steps if args.check_steps is None else args.check_steps
        ccfg = cfg.replace(steps=check_steps)
        W_np = numpy_gd(W0, data.mu, data.xi, data.y, data.y_obs, args.q, cfg.eta, check_steps)
        W_ln = lnref.train(ccfg, data, W0, keep_rho=False).W
        scale = float(np.max(np.abs(W_ln)))
        np.testing.assert_allclose(W_np, W_ln, rtol=1e-10, atol=1e-10 * scale,
                                   err_msg=f"numpy baseline and lnref disagree at (n, d, m) = ({n}, {d}, {m})")
        rel = float(np.max(np.abs(W_np - W_ln)) / scale)

        t_np, _ = time_numpy(W0, data, args.q, cfg.eta, args.steps, args.repeats)
        t_all, _ = time_lnref(cfg, data, W0, None, args.repeats)
        t_one, _ = time_lnref(cfg, data, W0, 1, args.repeats)
        sp_np, sp_all, sp_one = args.steps / t_np, args.steps / t_all, args.steps / t_one
        print(f"{n:>5} {d:>6} {m:>3} | {sp_np:>10.1f} | {sp_all:>10.1f} {'':>9} | {sp_one:>10.1f} {'':>7} | "
              f"{sp_all / sp_np:>9.2f} {sp_one / sp_np:>8.2f}   (max|dW|/max|W| = {rel:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
