"""Start-up cost of a fresh process: a tiny `lnref run` against `python -c "import numpy, numba, scipy"`.

    python bench/bench_startup.py            # 5 interleaved pairs (after one warm-up run that fills the cache)
    python bench/bench_startup.py --pairs 9
    python bench/bench_startup.py --rev HEAD~1   # also the tiny run of that revision, in the same rounds

Each pair runs, in fresh processes and in this order: the import baseline, the tiny run through the CLI (n = 20,
d = 50, m = 4, 10 steps, writing config.json, metrics.csv, arrays.npz, meta.json and, when matplotlib is installed,
history.png) and the same run through the API (``lnref.train``, no files).  Ratios are per pair (the baseline and
the run measured back to back), then the median and range over the pairs; the machine's load is printed before
and after.  Whatever the CLI run writes to stderr is reported (the target is nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--n", "20", "--d", "50", "--m", "4", "--steps", "10"]
API = "import lnref; lnref.train(lnref.Config(n=20, d=50, m=4, steps=10))"


def _timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, proc.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument(
        "--rev",
        default=None,
        metavar="REV",
        help="also time the tiny `lnref run` of git revision REV (its lnref/ in a temporary folder) in "
        "every round, right after this tree's",
    )
    args = ap.parse_args(argv)
    py = sys.executable
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    here = Path(__file__).resolve().parent.parent  # this tree: its lnref/ is the one timed
    # every process runs in the temporary folder: `python -m` and `-c` put the working folder first on sys.path,
    # which would shadow PYTHONPATH (run from a checkout, the revision's run would time this tree's lnref)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    with tempfile.TemporaryDirectory() as tmp:
        rev_env = None
        if args.rev:
            archive = subprocess.run(
                ["git", "archive", args.rev, "lnref"], cwd=here, capture_output=True, check=True
            ).stdout
            (Path(tmp) / "rev").mkdir()
            subprocess.run(["tar", "-x", "-C", str(Path(tmp) / "rev")], input=archive, check=True)
            rev_env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "rev")}
            _timed([py, "-m", "lnref", "run", *TINY, "--out", str(Path(tmp) / "warm_rev")], rev_env, tmp)
        _timed([py, "-m", "lnref", "run", *TINY, "--out", str(Path(tmp) / "warm")], env, tmp)  # fills the cache
        base, cli, api, rev, stderr = [], [], [], [], []
        for i in range(args.pairs):
            base.append(_timed([py, "-c", "import numpy, numba, scipy"], env, tmp)[0])
            wall, err = _timed([py, "-m", "lnref", "run", *TINY, "--out", str(Path(tmp) / f"r{i}")], env, tmp)
            cli.append(wall)
            stderr.append(err)
            if rev_env is not None:
                rev.append(
                    _timed([py, "-m", "lnref", "run", *TINY, "--out", str(Path(tmp) / f"v{i}")], rev_env, tmp)[0]
                )
            api.append(_timed([py, "-c", API], env, tmp)[0])
        png = (Path(tmp) / "r0" / "history.png").exists()
    print(f"timed: {here / 'lnref'}{f' and revision {args.rev} of it' if args.rev else ''}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"import numpy, numba, scipy: median {statistics.median(base):.2f} s (range {min(base):.2f}-{max(base):.2f})")
    for name, times in (
        (f"tiny `lnref run`{' (with history.png)' if png else ' (no matplotlib: no figure)'}", cli),
        ("the same run through lnref.train", api),
        *([(f"tiny `lnref run` of revision {args.rev}", rev)] if rev else []),
    ):
        ratios = [t / b for t, b in zip(times, base)]
        print(
            f"{name}: median {statistics.median(times):.2f} s, ratio to the imports in the same pair: median "
            f"{statistics.median(ratios):.1f}x (range {min(ratios):.1f}-{max(ratios):.1f}x)"
        )
    if rev:
        ratios = [t / r for t, r in zip(cli, rev)]
        print(
            f"this tree's tiny `lnref run` / revision {args.rev}'s, same round: median "
            f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
        )
    noisy = [e for e in stderr if e.strip()]
    print(f"stderr of the CLI runs: {'empty' if not noisy else repr(noisy[0][:300])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
