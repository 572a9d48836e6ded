"""Benchmark: Kou et al. 2023's phase diagram (100 x 100 cells x 10 replicates, 100 GD steps each) as a sweep.

The sweep worker runs coefficient-engine configs through ``lnref.sweeps.worker.final_run`` (only the final row
of ``lnref.train``'s history, bit for bit); the breakdown times both and profiles final_run.

    python bench/bench_sweep.py                 # a 1/100 subset (10 x 10 cells x 10 reps), extrapolated
    python bench/bench_sweep.py --full          # the whole grid (issue 13: <= 45 s wall on 2 cores)
    python bench/bench_sweep.py --virtual-test-ab --no-breakdown   # + fixed vs fresh virtual test set, per run
    python bench/bench_sweep.py --pair-scaling  # one worker process alone vs two at once
    python bench/bench_sweep.py --dask-local 2  # also through a local Dask cluster (scheduling overhead)
    python bench/bench_sweep.py --compare-with d471ce1 --no-breakdown   # + CPU per run vs an older lnref

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
from lnref.sweeps import DEFAULT_METRICS, process_executor, sweep


def subset(grid: dict, every: int) -> dict:
    return {k: v[::every] for k, v in grid.items()}


def worker_run_time(base, runs: int = 400) -> float:
    """Seconds per run of the sweep worker on one thread in this process (Kou configs, the sweep's metrics):
    the machine's current speed, against which a sweep's wall time is judged (2 workers: runs * t / 2)."""
    from lnref.sweeps import DEFAULT_METRICS
    from lnref.sweeps.worker import run_batch

    # cells of 10 replicates each, as a sweep's batches hold them (a cell's config is validated once per batch)
    jobs = [
        (c, r, (round(0.1 * (c % 100), 1), 100 + 10 * ((7 * c) % 100)), 5000 + 10 * c + r)
        for c in range(max(1, runs // 10))
        for r in range(10)
    ]
    runs = len(jobs)
    run_batch(base.to_dict(), ["mu_norm", "d"], jobs[:3], list(DEFAULT_METRICS))  # compile
    t0 = time.perf_counter()
    run_batch(base.to_dict(), ["mu_norm", "d"], jobs, list(DEFAULT_METRICS))
    return (time.perf_counter() - t0) / runs


def virtual_test_ab(base, runs: int = 1000, rounds: int = 5) -> None:
    """Worker time per Kou run with the fixed and with the fresh virtual test set (Config.virtual_test), alternated
    in this process (best of ``rounds``): what drawing 2m instead of n + 2m normals per test sample saves."""
    times = {"fixed": [], "fresh": []}
    for _ in range(rounds):
        for kind in times:
            times[kind].append(worker_run_time(base.replace(virtual_test=kind), runs))
    fixed, fresh = min(times["fixed"]), min(times["fresh"])
    print(
        f"worker time per run, best of {rounds} alternated rounds of {runs} runs: virtual_test='fixed' "
        f"{fixed * 1e3:.3f} ms, 'fresh' {fresh * 1e3:.3f} ms, ratio {fresh / fixed:.2f}"
    )


def run_parts(base, repeats: int = 500) -> None:
    """Where one Kou run's time goes, on one thread in this process (best of 5 loops over one cell,
    d = 550, ||mu|| = 1.5): final_run whole, and its parts timed alone."""
    import timeit

    from lnref.data.gram import sample_gram
    from lnref.engines import from_config
    from lnref.model.metrics import step_metrics
    from lnref.sweeps import DEFAULT_METRICS
    from lnref.sweeps.worker import final_run

    cfg = base.replace(d=550, mu_norm=1.5, seed=5)
    data = sample_gram(cfg, draw_test=False)
    eng = from_config(cfg, data)
    zeros = (np.zeros((2, cfg.m)), np.zeros((2, cfg.m, cfg.n)), data.bias0, None)
    names = set(DEFAULT_METRICS)

    def steps():
        eng.load_state(*zeros)
        eng.advance(cfg.steps, None)

    parts = {
        "final_run (the whole run)": lambda: final_run(cfg, DEFAULT_METRICS),
        "sample_gram (the Gram draws)": lambda: sample_gram(cfg, draw_test=False),
        "from_config (engine set-up)": lambda: from_config(cfg, data),
        f"advance({cfg.steps}) (the GD steps)": steps,
        "step_metrics (final row)": lambda: step_metrics(eng.forward(), data.y, data.y_obs, eng.gamma, eng.rho, names),
        f"virtual_test_accuracy ({cfg.virtual_test} test set)": lambda: eng.virtual_test_accuracy(cfg.steps),
    }
    with lnref.training.num_threads(1):
        steps()
        for name, fn in parts.items():
            fn()
            t = min(timeit.repeat(fn, number=repeats, repeat=5)) / repeats
            print(f"  {name:45s} {t * 1e3:.3f} ms")


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
    print(
        f"one lnref.train (n=20, m=10, 100 steps, n_test=1000, coefficients/gram): {wall * 1e3:.2f} ms; "
        + ", ".join(f"{k} {v / runs * 1e3:.2f} ms ({v / runs / wall:.0%})" for k, v in tim.items())
    )
    for n_test in (0, 100):
        c0 = [c.replace(n_test=n_test) for c in cfgs]
        t0 = time.perf_counter()
        for c in c0:
            lnref.train(c, threads=1, keep_rho=False)
        w = (time.perf_counter() - t0) / runs
        print(f"  same with n_test={n_test}: {w * 1e3:.2f} ms ({w / wall:.0%} of n_test=1000)")
    from lnref.sweeps.worker import final_run

    with lnref.training.num_threads(1):
        final_run(cfgs[0], DEFAULT_METRICS)
        t0 = time.perf_counter()
        for c in cfgs:
            final_run(c, DEFAULT_METRICS)
        w = (time.perf_counter() - t0) / runs
        print(
            f"  the sweep worker's final_run (final row only, same bits): {w * 1e3:.2f} ms "
            f"({w / wall:.0%} of lnref.train)"
        )
        pr = cProfile.Profile()
        pr.enable()
        for c in cfgs:
            final_run(c, DEFAULT_METRICS)
        pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(8)
    print("\n".join(buf.getvalue().splitlines()[:22]))


_WORKER_TIMING = r"""
import sys, time
import lnref
from lnref.reproduce.heatmaps import kou_base
from lnref.sweeps.worker import run_batch
try:
    from lnref.sweeps import DEFAULT_METRICS
except ImportError:  # a revision before the lnref.sweeps package
    from lnref.sweep import DEFAULT_METRICS
runs = int(sys.argv[1])
if len(sys.argv) > 2:  # a config given as JSON: the same runs in both trees
    import json
    base = lnref.Config(**json.loads(sys.argv[2])).to_dict()
else:
    base = kou_base(seed=2023).to_dict()
jobs = [(i, 0, (round(0.1 + 0.1 * (i % 99), 1), 100 + 10 * ((7 * i) % 100)), 1000 + i) for i in range(runs)]
run_batch(base, ["mu_norm", "d"], jobs[:3], list(DEFAULT_METRICS))  # compile
t0 = time.process_time()
rows = run_batch(base, ["mu_norm", "d"], jobs, list(DEFAULT_METRICS))
print((time.process_time() - t0) / runs, sum(r["test_acc"] for r in rows) / runs, lnref.__file__)
"""


# Kou's heatmap config in the papers' normalisation (lnref's reading before the authors' conventions existed): a
# config both old and new revisions can run, so --compare-with times the same runs in both trees
PAPER_KOU = dict(
    n=20,
    d=100,
    m=10,
    q=1.0,
    sigma0=0.05,
    sigma_p=1.0,
    mu_norm=1.0,
    eta=2.5,
    tau=0.1,
    noise="orthogonal",
    flips="exact",
    steps=100,
    log_every=0,
    log_points=0,
    n_test=1000,
    test_flipped_labels=True,
    engine="coefficients",
    sampling="gram",
    seed=2023,
)


def compare_worker(rev: str, runs: int = 1000, rounds: int = 2, same_config: bool = False) -> None:
    """CPU time per run of the sweep worker (run_batch on Kou's configs, one process, one thread) of the checkout
    and of git revision ``rev``, alternated in fresh processes; prints the ratio (same machine, same run).

    ``same_config``: both trees run :data:`PAPER_KOU` (otherwise each runs its own ``kou_base``)."""
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", rev, "lnref"], check=True, capture_output=True
        ).stdout
        old_tree = Path(tmp) / "old"  # the processes run in tmp, which holds no lnref (sys.path[0] is the cwd)
        old_tree.mkdir()
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        times = {"checkout": [], rev: []}
        accs = {}
        for _ in range(rounds):
            for name, path in ((rev, str(old_tree)), ("checkout", str(repo))):
                env = {**os.environ, "PYTHONPATH": path}
                cmd = [sys.executable, "-c", _WORKER_TIMING, str(runs)]
                if same_config:
                    import json

                    cmd.append(json.dumps(PAPER_KOU))
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=tmp).stdout.split()
                times[name].append(float(out[0]))
                accs[name] = float(out[1])
                assert out[2].startswith(path), (name, out[2])
    new, old = min(times["checkout"]), min(times[rev])
    print(
        f"worker CPU per run ({runs} Kou runs, best of {rounds}): {rev} {old * 1e3:.3f} ms, checkout "
        f"{new * 1e3:.3f} ms, ratio {new / old:.2f}; mean test_acc {accs[rev]:.6f} vs {accs['checkout']:.6f}; "
        f"full diagram at 2 busy cores ~ {100_000 * new / 2:.1f} s CPU-bound"
    )


def pair_scaling(runs: int = 2000, trials: int = 3) -> None:
    """Worker CPU per run of one process alone, then of two at once (one per core), in fresh processes: how much two
    workers slow each other down on this machine (shared caches, memory, a host's hyperthreads)."""
    import os
    import subprocess
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-c", _WORKER_TIMING, str(runs)]
    for trial in range(trials):
        alone = float(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.split()[0])
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        pair = [float(p.communicate()[0].split()[0]) for p in procs]
        print(
            f"trial {trial + 1}: alone {alone * 1e3:.3f} ms/run; two at once {pair[0] * 1e3:.3f} and "
            f"{pair[1] * 1e3:.3f} ms/run (mean {sum(pair) / 2 / alone:.2f}x alone)"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--every", type=int, default=10, help="keep every k-th value of each grid axis")
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dask-local", type=int, default=None)
    ap.add_argument("--no-breakdown", action="store_true")
    ap.add_argument("--compare-with", default=None, help="git revision whose worker to time against (CPU/run)")
    ap.add_argument(
        "--pair-scaling",
        action="store_true",
        help="time one worker process alone and two at once (how much they slow each other), then exit",
    )
    ap.add_argument(
        "--virtual-test-ab",
        action="store_true",
        help="also time the worker with virtual_test='fixed' against 'fresh' (Kou's default), same process",
    )
    ap.add_argument(
        "--same-config",
        action="store_true",
        help="with --compare-with: both trees run Kou's config in the papers' normalisation (PAPER_KOU)",
    )
    args = ap.parse_args(argv)
    if args.pair_scaling:
        pair_scaling()
        return 0
    if args.compare_with:
        compare_worker(args.compare_with, same_config=args.same_config)
    base = kou_base(seed=2023)
    grid = kou_grid(quick=False)
    if not args.full:
        grid = subset(grid, args.every)
    runs = args.replicates * int(np.prod([len(v) for v in grid.values()]))
    full_runs = 100 * 100 * 10
    print(
        f"grid {' x '.join(str(len(v)) for v in grid.values())} x {args.replicates} replicates = {runs} runs "
        f"(full diagram: {full_runs})"
    )
    if not args.no_breakdown:
        per_run_breakdown(base)
        print("one run's parts, each timed alone:")
        run_parts(base)
    if args.virtual_test_ab:
        virtual_test_ab(base)

    t_run = worker_run_time(base)
    print(
        f"one run of the sweep worker in this process (one thread): {t_run * 1e3:.3f} ms, so {runs} runs on "
        f"{args.workers} workers take at least {runs * t_run / args.workers:.1f} s at this machine's current speed"
    )
    results = {}
    parent_cpu = {}  # CPU time of this process (the sweep's loop; for Dask also the scheduler and client)
    import resource

    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with process_executor(args.workers) as ex:
        # warm the workers (numba compile per process) outside the timing
        # (compile in every worker: many 1-run tasks, so each worker takes some)
        sweep(base, {"mu_norm": [1.0, 2.0]}, replicates=4 * args.workers, executor=ex, batch_size=1)
        t0, c0 = time.perf_counter(), time.process_time()
        res = sweep(base, grid, replicates=args.replicates, executor=ex)
        results["process pool"] = (time.perf_counter() - t0, res)
        parent_cpu["process pool"] = time.process_time() - c0
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, reaped at the pool's shutdown
    worker_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    pool_wall = results["process pool"][0]
    print(
        f"the pool's workers used {worker_cpu:.1f} s of CPU in all (their start-up and warm-up included): "
        f"{worker_cpu / (args.workers * pool_wall):.2f} x {args.workers} x the sweep's wall time, "
        f"{worker_cpu / runs * 1e3:.3f} ms per run"
    )
    if args.dask_local:
        # the executor `lnref sweep --dask-local N` uses (a LocalCluster with lnref.sweeps.LOCAL_DASK_SETTINGS)
        from lnref.sweeps import dask_executor as _dask_executor
        from lnref.sweeps.worker import run_batch

        ex, close = _dask_executor(None, args.dask_local)
        try:
            ex._client.run(run_batch, base.to_dict(), ["mu_norm"], [(0, 0, (1.0,), 1)], ["test_acc"])  # compile
            t0, c0 = time.perf_counter(), time.process_time()
            res = sweep(base, grid, replicates=args.replicates, executor=ex)
            results["dask local"] = (time.perf_counter() - t0, res)
            parent_cpu["dask local"] = time.process_time() - c0
        finally:
            close()
    ref_wall, ref = results["process pool"]
    for name, (wall, res) in results.items():
        same = [r["test_acc"] for r in res.rows] == [r["test_acc"] for r in ref.rows]
        print(
            f"{name:13s}: {wall:7.2f} s for {runs} runs = {runs / wall:7.1f} runs/s; ratio to process pool "
            f"{wall / ref_wall:.2f}; extrapolated full diagram {wall * full_runs / runs:7.1f} s; "
            f"identical rows: {same}; CPU of this process {parent_cpu[name]:.2f} s; wall / (runs x one run / "
            f"workers) = {wall / (runs * t_run / args.workers):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
