"""Steps per second of the coefficient-space engine against a NumPy/BLAS weight-space GD step.

Usage::

    /work/venv/bin/python bench/bench_coefficients.py [--steps N] [--repeats R] [--quick]

Everything runs in ONE process, so every ratio compares numbers measured in the same run:

1. (n, d, m) = (200, 2000, 20) and (200, 20000, 20), explicit data: the NumPy/BLAS baseline
   (``bench_weights.numpy_gd``) against ``CoefficientEngine.advance`` (all threads and one thread), plus the
   one-off cost of computing the Gram statistics.  Before timing, the final coefficient-engine weights are
   checked against the baseline's (rtol 1e-10).  The three are timed in rounds (``--repeats``; each round times
   the baseline, then the engine on all threads, then on one) and the minimum of each is reported: the speed of
   a shared virtual machine drifts over seconds (the same step runs 45 or 70 us for a while), and rounds let the
   three see the same drift instead of one block of repeats each.
2. Time per step of ``sampling='gram'`` runs (n=200, m=20) for d = 1e3 .. 1e6 (should be flat in d), and the
   time of ``sample_gram``.
3. A 100-step ``sampling='gram'`` run at d = 10^9.
4. Profile of one step (n=200, m=20): the inner-product/forward phase alone (``forward()``) vs a whole step.
5. The sweep-sized run (n=20, m=10, 100 steps, n_test=1000, log_every=0, threads=1): wall time of
   ``lnref.train`` and where it goes.

``--threads-table`` prints only the thread-policy table of ``bench_weights.py`` for the coefficient engine
(default threads / one / all, quiet and under one busy process it starts itself, each case in a fresh process;
``--before`` adds the pre-issue-13 policy), at (n, d, m) = (200, 2000, 20) unless ``--sizes`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_weights import numpy_gd, parse_size, settle, thread_table


def best_of(fn, repeats):
    best = np.inf
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="GD steps per timed run (default 20)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; the minimum is reported (default 3)")
    ap.add_argument("--quick", action="store_true", help="skip d = 1e6 and the d = 1e9 run")
    ap.add_argument(
        "--threads-table",
        action="store_true",
        help="only the thread-policy table (default / 1 / all threads, quiet and loaded)",
    )
    ap.add_argument("--before", action="store_true", help="with --threads-table: also the pre-issue-13 policy")
    ap.add_argument(
        "--before-rev", default=None, metavar="REV", help="with --threads-table: also the lnref of git revision REV"
    )
    ap.add_argument(
        "--variant",
        action="append",
        metavar="LABEL:VAR=VALUE,...",
        help="with --threads-table: also this lnref with these environment variables; repeatable",
    )
    ap.add_argument(
        "--loads",
        nargs="+",
        choices=("quiet", "loaded"),
        default=("quiet", "loaded"),
        help="with --threads-table: machine states (default both)",
    )
    ap.add_argument(
        "--sizes",
        type=parse_size,
        nargs="+",
        default=[(200, 2000, 20)],
        metavar="n,d,m",
        help="sizes of --threads-table (default 200,2000,20)",
    )
    args = ap.parse_args(argv)
    if args.threads_table:
        thread_table(
            argparse.Namespace(
                steps=args.steps,
                repeats=args.repeats,
                q=1.0,
                sizes=args.sizes,
                before=args.before,
                before_rev=args.before_rev,
                variant=args.variant,
                loads=args.loads,
                engine="coefficients",
                numpy_steps=max(1, min(args.steps, 10)),
            )
        )
        return 0

    import numba

    import lnref
    from lnref.data.gram import sample_gram
    from lnref.engines import from_config
    from lnref.training import num_threads
    from lnref.training import placement as _placement
    from lnref.training import threads as _threads

    all_threads = numba.config.NUMBA_NUM_THREADS
    t0 = time.perf_counter()
    tiny = lnref.Config(n=4, d=8, m=1, steps=2, log_every=0, n_test=4, engine="coefficients", sampling="gram")
    lnref.train(tiny)
    lnref.train(tiny.replace(sampling="explicit"))
    t_compile_serial = time.perf_counter() - t0
    # the parallel variants (used above 1M multiply-adds per kernel call when threads > 1)
    lnref.train(tiny.replace(n=240, m=10, d=1000, n_test=300), threads=all_threads)
    t_compile = time.perf_counter() - t0
    print(
        f"lnref {lnref.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"NUMBA_NUM_THREADS={all_threads}, cpu_count={os.cpu_count()}, steps={args.steps}, "
        f"repeats={args.repeats} (min reported)"
    )
    print(
        f"first coefficient-engine calls (compile): serial kernels + explicit setup {t_compile_serial:.2f} s, "
        f"with the parallel variants {t_compile:.2f} s"
    )

    print("\n1. explicit data: NumPy/BLAS weight GD vs coefficient engine")
    print(
        f"{'n':>4} {'d':>6} {'m':>3} | {'numpy st/s':>10} | {'coef st/s':>10} {'thr=all':>7} {'ratio':>7} | "
        f"{'coef st/s':>10} {'thr=1':>5} {'ratio':>7} | {'Gram setup s':>12}"
    )
    for n, d, m in [(200, 2000, 20), (200, 20000, 20)]:
        cfg = lnref.Config(n=n, d=d, m=m, steps=args.steps, log_every=0, n_test=0, engine="coefficients", seed=1)
        first = from_config(cfg)
        data, W0 = first.data, first.W0
        W_np = numpy_gd(W0, data.mu, data.xi, data.y, data.y_obs, cfg.q, cfg.eta, args.steps)
        eng = from_config(cfg, data, W0)
        assert eng.advance(args.steps, None) == args.steps
        W_c = eng.weights()
        scale = float(np.max(np.abs(W_c)))
        np.testing.assert_allclose(W_c, W_np, rtol=1e-10, atol=1e-10 * scale)
        with num_threads(all_threads):
            t_setup, _ = best_of(lambda: from_config(cfg, data, W0), 1)
        # rounds: the baseline, then the engine on all threads and on one, each timed once per round; the minimum
        # of each over the rounds (a shared machine's speed drifts over seconds: all three see the same drift)
        best = {"numpy": np.inf, all_threads: np.inf, 1: np.inf}
        placed = []  # whether the all-threads blocks were spread over CPUs (lnref.training.placement)
        for _ in range(args.repeats):
            t_np, _ = best_of(lambda: numpy_gd(W0, data.mu, data.xi, data.y, data.y_obs, cfg.q, cfg.eta, args.steps), 1)
            best["numpy"] = min(best["numpy"], t_np)
            settle()  # OpenBLAS's threads spin ~100 ms after the baseline
            for thr in (all_threads, 1):
                with num_threads(thr):
                    eng = from_config(cfg, data, W0)
                    t_adv, _ = best_of(lambda e=eng: e.advance(args.steps, None), 1)
                    if thr > 1:
                        placed.append(_placement.spread_reason())
                best[thr] = min(best[thr], t_adv)
        sp_np = args.steps / best["numpy"]
        sp_all, sp_one = args.steps / best[all_threads], args.steps / best[1]
        print(
            f"{n:>4} {d:>6} {m:>3} | {sp_np:>10.1f} | {sp_all:>10.1f} {'':>7} {sp_all / sp_np:>7.1f} | "
            f"{sp_one:>10.1f} {'':>5} {sp_one / sp_np:>7.1f} | {t_setup:>12.3f}   "
            f"spread {sum(r.startswith('spread over') for r in placed)}/{len(placed)}"
        )
        for reason in sorted({r for r in placed if not r.startswith("spread over")}):
            print(f"   not spread: {reason}")
    print(f"   (all threads: spread means each thread pinned to its own CPU; wait policy: {_threads.wait_policy()})")

    print("\n2. sampling='gram' (n=200, m=20): time per step vs d (all threads)")
    ds = [10**3, 10**4, 10**5] + ([] if args.quick else [10**6])
    base_step = None
    for d in ds:
        cfg = lnref.Config(
            n=200, d=d, m=20, steps=args.steps, log_every=0, n_test=0, engine="coefficients", sampling="gram", seed=1
        )
        t_sample, data = best_of(lambda: sample_gram(cfg), 1)
        engs = [from_config(cfg, data) for _ in range(args.repeats)]
        it = iter(engs)
        t_adv, _ = best_of(lambda: next(it).advance(args.steps, None), args.repeats)
        per = t_adv / args.steps
        base_step = per if base_step is None else base_step
        print(f"  d={d:>8}: {per * 1e3:8.3f} ms/step ({per / base_step:5.2f}x d=1e3), sample_gram {t_sample:.3f} s")

    if not args.quick:
        print("\n3. sampling='gram', d = 10^9, n=200, m=20, 100 steps, n_test=1000")
        cfg = lnref.Config(
            n=200,
            d=10**9,
            m=20,
            steps=100,
            log_every=0,
            log_points=5,
            n_test=1000,
            engine="coefficients",
            sampling="gram",
            seed=2,
        )
        t_run, r = best_of(lambda: lnref.train(cfg), 1)
        print(
            f"  lnref.train: {t_run:.2f} s (setup {r.timings['setup']:.2f}, train {r.timings['train']:.2f}, "
            f"logging {r.timings['logging']:.2f}); final loss {r.history['loss'][-1]:.4f}, "
            f"test_acc {r.history['test_acc'][-1]:.3f}"
        )

    print("\n4. profile of one step (n=200, m=20, gram, d=1e4)")
    cfg = lnref.Config(
        n=200, d=10**4, m=20, steps=args.steps, log_every=0, n_test=0, engine="coefficients", sampling="gram", seed=1
    )
    data = sample_gram(cfg)
    for thr in (all_threads, 1):
        with num_threads(thr):
            eng = from_config(cfg, data)
            eng.advance(5, None)
            reps = 20
            t_fwd, _ = best_of(lambda: [eng.forward() for _ in range(reps)], args.repeats)
            eng2 = from_config(cfg, data)
            t_adv, _ = best_of(lambda: eng2.advance(reps, None), args.repeats)
            print(
                f"  threads={thr}: whole step {t_adv / reps * 1e3:.3f} ms; inner products + outputs "
                f"(forward) {t_fwd / reps * 1e3:.3f} ms = {t_fwd / t_adv:.0%} of a step; the rest (l', gamma/rho "
                f"update, finiteness checks) {max(t_adv - t_fwd, 0) / reps * 1e3:.3f} ms"
            )

    print("\n5. sweep-sized run: n=20, m=10, 100 steps, n_test=1000, d=500, log_every=0, threads=1")
    cfg = lnref.Config(
        n=20, d=500, m=10, steps=100, log_every=0, n_test=1000, engine="coefficients", sampling="gram", tau=0.1, seed=3
    )
    lnref.train(cfg, threads=1)
    reps = 50
    R = max(args.repeats, 3)
    cfgs = [cfg.replace(seed=s) for s in range(reps)]
    t_train, _ = best_of(lambda: [lnref.train(c, threads=1) for c in cfgs], R)
    with num_threads(1):
        t_sample, data = best_of(lambda: [sample_gram(c) for c in cfgs], R)
        data = data[0]
        t_init, _ = best_of(lambda: [from_config(cfg, data) for _ in range(reps)], R)
        engs = [from_config(cfg, data) for _ in range(reps)]
        t_adv, _ = best_of(lambda: [e.advance(100, None) for e in engs], R)
        t_test, _ = best_of(lambda: [e.test_accuracy(data.test) for e in engs], R)
        t_fwd, _ = best_of(lambda: [e.forward() for e in engs], R)
    per = t_train / reps
    print(f"  lnref.train per run: {per * 1e3:.2f} ms ({1 / per:.0f} runs/s on one thread)")
    for name, t in [
        ("sample_gram (incl. virtual test set)", t_sample),
        ("CoefficientEngine()", t_init),
        ("advance(100)", t_adv),
        ("test_accuracy (train calls it twice)", t_test),
        ("forward (train calls it twice)", t_fwd),
    ]:
        print(f"    {name:<38} {t / reps * 1e3:7.3f} ms  ({t / t_train:5.1%} of a run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
