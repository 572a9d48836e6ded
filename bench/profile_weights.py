"""Where the weight engine's GD step spends its time: the two contractions over d and the O(n m) rest.

    python bench/profile_weights.py [--sizes n,d,m ...] [--threads 1 2] [--repeats 200]

For each size and thread count, in one process, the kernels one ``advance`` step runs are timed one at a time
(each the minimum over ``--repeats`` calls, on the same state):

- ``inner``: A = <w_f, xi_i>, B = <w_f, mu> (:func:`lnref.kernels.weights.inner_products`, 2m n d multiply-adds);
- ``outputs``: f from A, B (:func:`lnref.kernels.weights.forward`) and l' (:func:`lnref.kernels.weights.losses`);
- ``gradient``: S, C, the new coefficients and G (:func:`lnref.kernels.weights.gradient`, about 2m n d);
- ``update``: W - eta G (NumPy, for scale);
- ``step``: one whole step of ``advance`` (its marginal cost: (time of k + 1 steps - time of 1 step) / k),

and the NumPy/BLAS step of bench_weights.numpy_gd as the same-run baseline.  The load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_weights import DEFAULT_SIZES, loadavg, numpy_gd, parse_size, settle


def best(fn, repeats):
    t = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=parse_size, nargs="+", default=DEFAULT_SIZES, metavar="n,d,m")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args(argv)
    import numba

    import lnref
    from lnref.engines import from_config
    from lnref.kernels import weights as K

    print(f"load {loadavg()}; times in microseconds, min of {args.repeats}")
    print(
        f"{'n':>5} {'d':>6} {'m':>3} {'thr':>3} | {'inner':>8} {'outputs':>8} {'gradient':>8} {'update':>8} | "
        f"{'sum':>8} {'step':>8} | {'numpy':>8} {'x numpy':>7}"
    )
    for n, d, m in args.sizes:
        cfg = lnref.Config(n=n, d=d, m=m, q=1.0, steps=10, log_every=0, log_points=0, n_test=0, seed=1)
        data = lnref.make_data(cfg)
        W0 = lnref.init_weights(cfg)
        eng = from_config(cfg, data, W0)
        eng.advance(3, None)  # compile / warm
        w = eng._work
        F = 2 * m
        loss = np.empty(n)
        y_obs = np.ascontiguousarray(data.y_obs, dtype=np.float64)
        t_np = best(lambda: numpy_gd(W0, data.mu, data.xi, data.y, data.y_obs, 1.0, cfg.eta, 1), args.repeats)
        for thr in args.threads:
            settle()
            numba.set_num_threads(thr)
            Wc = eng.W.copy()
            inner = lambda: K.inner_products(Wc, eng.mu, eng.XT, w["A"], w["B"])  # noqa: E731
            inner()

            def outputs():
                K.forward(w["A"], w["B"], eng._bias, eng.y, 1.0, m, eng.div, w["f"])
                K.losses(w["f"], y_obs, loss, w["lpm"])

            outputs()
            w["lpm"] *= y_obs

            def grad():
                K.gradient(
                    w["A"], w["B"], eng._bias, w["lpm"], eng.y, eng.mu, eng.X, 1.0, m, eng.div, eng.eta,
                    eng.mu_sq, eng.xi_sq, eng._gamma, eng._rho, w["gamma_new"], w["rho_new"], w["bias_new"],
                    w["G"], w["S"], w["Sb"], w["C"], w["bad"], False,
                )  # fmt: skip

            Wu = np.empty((F, d))
            upd = lambda: np.subtract(Wc, eng.eta * w["G"], out=Wu)  # noqa: E731
            ti, to, tg, tu = (best(fn, args.repeats) for fn in (inner, outputs, grad, upd))
            snap = (eng.W.copy(), eng._gamma.copy(), eng._rho.copy(), eng._bias.copy())

            def run(k):
                eng.W[...], eng._gamma[...], eng._rho[...], eng._bias[...] = snap
                eng.t = 0
                t0 = time.perf_counter()
                eng.advance(k, None)
                return time.perf_counter() - t0

            reps = max(3, args.repeats // 20)
            k = 20
            t1 = min(run(1) for _ in range(reps))
            tk = min(run(k + 1) for _ in range(reps))
            ts = (tk - t1) / k
            us = [v * 1e6 for v in (ti, to, tg, tu, ti + to + tg + tu, ts, t_np)]
            print(
                f"{n:>5} {d:>6} {m:>3} {thr:>3} | {us[0]:>8.1f} {us[1]:>8.1f} {us[2]:>8.1f} {us[3]:>8.1f} | "
                f"{us[4]:>8.1f} {us[5]:>8.1f} | {us[6]:>8.1f} {t_np / ts:>7.2f}"
            )
    print(f"load {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
