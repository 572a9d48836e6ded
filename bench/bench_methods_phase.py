"""Benchmark: ``lnref reproduce methods-phase`` (issue 22: the default grid must take <= 10 minutes on 2 cores).

    python bench/bench_methods_phase.py            # the default grid (20 x 20 cells x 12 methods x 3 replicates)
    python bench/bench_methods_phase.py --quick    # its --quick grid

First the same-run reference: the sweep worker's time per run on one thread in this process, over a sample of the
cells of each sweep of the map (the losses; each selection algorithm): the machine's current speed, from which 2
workers should take about the one-thread total / 2;
then the reproduction itself in a fresh process (``python -m lnref reproduce methods-phase --out TMP``), its wall
time, and the load average before and after.  ``--out DIR`` keeps its output (figures, report.md) in DIR.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def worker_run_time(quick: bool, runs: int = 360) -> tuple[float, int, dict[str, float]]:
    """(estimated one-thread seconds of the whole map, its total runs, seconds per run of each sweep) from ``runs``
    jobs spread over the cells of each sweep of the map (the losses' sweep and one per selection algorithm)."""
    from lnref.reproduce.methods_phase import PHASE_METRICS, PHASE_REPLICATES, phase_sweeps
    from lnref.sweeps.worker import run_batch

    reps = 1 if quick else PHASE_REPLICATES
    total_s, total_runs, per = 0.0, 0, {}
    for name, base, grid in phase_sweeps(quick):
        fields = list(grid)
        cells = list(itertools.product(*grid.values()))
        k = min(len(cells), runs if "loss" in grid else runs // 3)
        pick = np.linspace(0, len(cells) - 1, k).astype(int)
        jobs = [(int(i), 0, cells[i], 1000 + int(i)) for i in pick]
        run_batch(base.to_dict(), fields, jobs[:4], list(PHASE_METRICS))  # compile / warm
        t0 = time.perf_counter()
        run_batch(base.to_dict(), fields, jobs, list(PHASE_METRICS))
        per[name] = (time.perf_counter() - t0) / len(jobs)
        total_s += per[name] * len(cells) * reps
        total_runs += len(cells) * reps
    return total_s, total_runs, per


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the reproduction's --quick grid")
    ap.add_argument("--out", default=None, help="keep the reproduction's output in this (new) folder")
    args = ap.parse_args()
    load0 = os.getloadavg()
    est, total, per = worker_run_time(args.quick)
    print(
        "reference (same run): sweep worker on one thread, per run: "
        + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in per.items())
        + f"; {total} runs -> about {est / 2:.0f} s on 2 workers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "out")
        cmd = [sys.executable, "-m", "lnref", "reproduce", "methods-phase", "--out", out]
        if args.quick:
            cmd.append("--quick")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    print(
        f"lnref reproduce methods-phase{' --quick' if args.quick else ''}: {wall:.1f} s wall "
        f"(ratio to the reference estimate {wall / (est / 2):.2f}); load average "
        f"{load0[0]:.1f} before, {load1[0]:.1f} after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
