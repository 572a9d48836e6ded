"""Benchmark: ``lnref reproduce methods-phase`` (issue 22: the default grid must take <= 10 minutes on 2 cores).

    python bench/bench_methods_phase.py            # the default grid (20 x 20 cells x 9 methods x 3 replicates)
    python bench/bench_methods_phase.py --quick    # its --quick grid

First the same-run reference: the sweep worker's time per run on one thread in this process, over a sample of the
grid's cells and methods (the machine's current speed; with 2 workers the sweep should take about runs * t / 2);
then the reproduction itself in a fresh process (``python -m lnref reproduce methods-phase --out TMP``), its wall
time, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def worker_run_time(quick: bool, runs: int = 360) -> tuple[float, int]:
    """(seconds per run on one thread, the grid's total runs) over ``runs`` jobs spread over the grid."""
    from lnref.reproduce.methods_phase import PHASE_METRICS, PHASE_REPLICATES, phase_base, phase_grid
    from lnref.sweeps.worker import run_batch

    base, grid = phase_base(quick), phase_grid(quick)
    fields = list(grid)
    cells = [(a, b, c) for a in grid["loss"] for b in grid["tau"] for c in grid["mu_norm"]]
    pick = np.linspace(0, len(cells) - 1, runs).astype(int)
    jobs = [(int(i), 0, cells[i], 1000 + int(i)) for i in pick]
    run_batch(base.to_dict(), fields, jobs[: len(grid["loss"])], list(PHASE_METRICS))  # compile / warm
    t0 = time.perf_counter()
    run_batch(base.to_dict(), fields, jobs, list(PHASE_METRICS))
    reps = 1 if quick else PHASE_REPLICATES
    return (time.perf_counter() - t0) / len(jobs), len(cells) * reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the reproduction's --quick grid")
    args = ap.parse_args()
    load0 = os.getloadavg()
    t_run, total = worker_run_time(args.quick)
    print(
        f"reference (same run): sweep worker {t_run * 1e3:.2f} ms per run on one thread; {total} runs -> "
        f"about {total * t_run / 2:.0f} s on 2 workers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "lnref", "reproduce", "methods-phase", "--out", os.path.join(tmp, "out")]
        if args.quick:
            cmd.append("--quick")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    print(
        f"lnref reproduce methods-phase{' --quick' if args.quick else ''}: {wall:.1f} s wall "
        f"(ratio to the reference estimate {wall / (total * t_run / 2):.2f}); load average "
        f"{load0[0]:.1f} before, {load1[0]:.1f} after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
