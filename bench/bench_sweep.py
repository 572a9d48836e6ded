"""Benchmark: Kou et al. 2023's phase diagram (99 x 100 cells x 10 replicates, 100 GD steps each) as a sweep.

The sweep worker runs coefficient-engine configs through ``lnref._sweep_worker.final_run`` (only the final row
of ``lnref.train``'s history, bit for bit); the breakdown times both and profiles final_run.

    python bench/bench_sweep.py                 # a 1/100 subset (10 x 10 cells x 10 reps), extrapolated
    python bench/bench_sweep.py --full          # the whole grid (target: <= 60 s wall on 2 cores)
    python bench/bench_sweep.py --dask-local 2  # also through a local Dask cluster (scheduling overhead)

Prints wall times, runs per second, the ratio of each executor to the process pool measured in the same run,
and where one lnref.train call spends its time (Result.timings + a profile of the setup).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time

import numpy as np

import lnref
from lnref.reproduce.heatmaps import kou_base, kou_grid
from lnref.sweep import SerialExecutor, process_executor, sweep


def subset(grid: dict, every: int) -> dict:
    return {k: v[::every] for k, v in grid.items()}


def per_run_breakdown(base, runs: int = 50) -> None:
    cfgs = [base.replace(mu_norm=1.0 + 0.1 * i, d=100 + 10 * i, seed=i) for i in range(runs)]
    lnref.train(cfgs[0], threads=1, keep_rho=False)  # compile
    tim = {"setup": 0.0, "train": 0.0, "logging": 0.0}
    t0 = time.perf_counter()
    for c in cfgs:
        r = lnref.train(c, threads=1, keep_rho=False)
        for k in tim:
            tim[k] += r.timings[k]
    wall = (time.perf_counter() - t0) / runs
    print(f"one lnref.train (n=20, m=10, 100 steps, n_test=1000, coefficients/gram): {wall * 1e3:.2f} ms; "
          + ", ".join(f"{k} {v / runs * 1e3:.2f} ms ({v / runs / wall:.0%})" for k, v in tim.items()))
    for n_test in (0, 100):
        c0 = [c.replace(n_test=n_test) for c in cfgs]
        t0 = time.perf_counter()
        for c in c0:
            lnref.train(c, threads=1, keep_rho=False)
        w = (time.perf_counter() - t0) / runs
        print(f"  same with n_test={n_test}: {w * 1e3:.2f} ms ({w / wall:.0%} of n_test=1000)")
    from lnref._sweep_worker import final_run
    with lnref.training.num_threads(1):
        final_run(cfgs[0])
        t0 = time.perf_counter()
        for c in cfgs:
            final_run(c)
        w = (time.perf_counter() - t0) / runs
        print(f"  the sweep worker's final_run (final row only, same bits): {w * 1e3:.2f} ms "
              f"({w / wall:.0%} of lnref.train)")
        pr = cProfile.Profile()
        pr.enable()
        for c in cfgs:
            final_run(c)
        pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(8)
    print("\n".join(buf.getvalue().splitlines()[:22]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--every", type=int, default=10, help="keep every k-th value of each grid axis")
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dask-local", type=int, default=None)
    ap.add_argument("--no-breakdown", action="store_true")
    args = ap.parse_args(argv)
    base = kou_base(seed=2023)
    grid = kou_grid(quick=False)
    if not args.full:
        grid = subset(grid, args.every)
    runs = args.replicates * int(np.prod([len(v) for v in grid.values()]))
    full_runs = 99 * 100 * 10
    print(f"grid {' x '.join(str(len(v)) for v in grid.values())} x {args.replicates} replicates = {runs} runs "
          f"(full diagram: {full_runs})")
    if not args.no_breakdown:
        per_run_breakdown(base)

    results = {}
    with process_executor(args.workers) as ex:
        # warm the workers (numba compile per process) outside the timing
        # (compile in every worker: many 1-run tasks, so each worker takes some)
        sweep(base, {"mu_norm": [1.0, 2.0]}, replicates=4 * args.workers, executor=ex, batch_size=1)
        t0 = time.perf_counter()
        res = sweep(base, grid, replicates=args.replicates, executor=ex)
        results["process pool"] = (time.perf_counter() - t0, res)
    if args.dask_local:
        import dask
        from distributed import Client, LocalCluster
        # the workers' statistical profiler samples every thread's stack every 10 ms: costly for Python-heavy tasks
        dask.config.set({"distributed.worker.profile.enabled": False})
        with LocalCluster(n_workers=args.dask_local, threads_per_worker=1, dashboard_address=None) as cl, \
                Client(cl) as client:
            ex = client.get_executor()
            from lnref._sweep_worker import run_batch
            client.run(run_batch, base.to_dict(), ["mu_norm"], [(0, 0, (1.0,), 1)], ["test_acc"])  # compile on all
            t0 = time.perf_counter()
            res = sweep(base, grid, replicates=args.replicates, executor=ex)
            results["dask local"] = (time.perf_counter() - t0, res)
    ref_wall, ref = results["process pool"]
    for name, (wall, res) in results.items():
        same = [r["test_acc"] for r in res.rows] == [r["test_acc"] for r in ref.rows]
        print(f"{name:13s}: {wall:7.2f} s for {runs} runs = {runs / wall:7.1f} runs/s; ratio to process pool "
              f"{wall / ref_wall:.2f}; extrapolated full diagram {wall * full_runs / runs:7.1f} s; "
              f"identical rows: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
