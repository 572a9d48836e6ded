"""Steps per second of ``lnref.train`` (weight engine, plain GD) against a NumPy/BLAS GD step.

Usage::

    python bench/bench_weights.py [--steps N] [--repeats R] [--sizes n,d,m ...] [--q Q]
        [--no-numpy] [--no-threads] [--before] [--before-rev REV] [--engine weights|coefficients]

The NumPy comparison runs in ONE process: first a tiny ``lnref.train`` call compiles the kernels (its time is
reported as the first-call compile cost), then for each size the NumPy baseline and ``lnref.train`` (all threads,
then one thread) each run ``--steps`` GD steps ``--repeats`` times on the same data and W0; the minimum time is
reported. lnref's time is ``Result.timings['train']`` (all GD steps; logging only at step 0 and the end, n_test=0).
Every lnref timing that follows a NumPy one waits :data:`BLAS_SETTLE` first (OpenBLAS's threads spin ~100 ms after
a matrix product and would take a core from lnref).

Before timing, the script checks that the NumPy baseline's final W agrees with lnref's
(``assert_allclose(rtol=1e-10, atol=1e-10 * max|W|)``), so both sides compute the same GD trajectory.

Then the thread policy (issue 13: the default must never be the slow choice), unless ``--no-threads``: for each
size, steps/s of ``lnref.train`` with the default threads (``threads=None``), one thread and all threads, on the
machine as it is ("quiet") and with one busy background process that the script starts itself
(``python -c "while True: pass"``, killed at the end) - "loaded".  Each (policy, load) case runs in a FRESH
process (the OpenMP wait policy is fixed when the threading layer loads), which times default / 1 / all
in a rotating order (each after an untimed 1-step call with the same threads), ``--repeats`` rounds, and reports the
minimum time of each; the ratio default / max(1, all) is
printed for every case.  ``--before`` adds the pre-issue-13 policy in its own processes ("spin+all"):
libgomp's spinning wait (``GOMP_SPINCOUNT=300000``, its default) and ``LNREF_THREADS=all`` (the old default);
``--before-rev REV`` adds the lnref of git revision REV (kernels and defaults of that revision), ``--variant
LABEL:VAR=VALUE,...`` this lnref under those environment variables.  Every row also times the NumPy/BLAS step
(``numpy_gd``) in the same process, interleaved with lnref's settings, and prints default / NumPy (issue 25).  The
load average (``/proc/loadavg``) is printed with every case: other work on the machine is part of "quiet".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

DEFAULT_SIZES = [(200, 2000, 20), (100, 10000, 20), (20, 1000, 10)]
# seconds to wait after a NumPy/BLAS timing before timing lnref: OpenBLAS's worker threads spin for about 100 ms
# after a matrix product (measured with /proc/self/task/*/stat), taking a core from whatever is timed next; the
# default-threads column, timed right after the NumPy step, ran about 2x slower than the same 2 threads timed
# later (issue 25)
BLAS_SETTLE = 0.25


def settle() -> None:
    """Let the BLAS threads of the NumPy step go back to sleep (:data:`BLAS_SETTLE`)."""
    time.sleep(BLAS_SETTLE)


# ------------------------------------------------------------------ the NumPy/BLAS baseline
def numpy_gd(W0, mu, X, y, y_obs, q, eta, steps):
    """Plain full-batch GD written the way a NumPy user would (matrix products, SPEC.md sections 2-3).

    W0 (2, m, d), mu (d,), X (n, d), y, y_obs (n,) -> final W (2, m, d).
    """
    _two, m, d = W0.shape
    n = X.shape[0]
    W = W0.reshape(2 * m, d).copy()
    XT = np.ascontiguousarray(X.T)
    sign = np.repeat([1.0, -1.0], m)[:, None]  # s_j per filter row
    for _ in range(steps):
        A = W @ XT  # (2m, n) <w, xi_i>
        Bs = (W @ mu)[:, None] * y  # (2m, n) <w, y_i mu>
        pa = np.maximum(A, 0.0)
        pb = np.maximum(Bs, 0.0)
        act = pa**q + pb**q
        F = act.reshape(2, m, n).sum(axis=1) / m
        f = F[0] - F[1]
        z = y_obs * f
        lp = -np.exp(-np.logaddexp(0.0, z))  # l'(z) = -1/(1 + exp(z)), overflow-free
        lpm = lp * y_obs
        dA = np.where(A > 0, q * pa ** (q - 1.0), 0.0)
        dB = np.where(Bs > 0, q * pb ** (q - 1.0), 0.0)
        S = (dB * (lpm * y)).sum(axis=1)  # (2m,)
        C = dA * lpm  # (2m, n)
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
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="GD steps per timed run (default 50)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; the minimum is reported (default 3)")
    ap.add_argument("--sizes", type=parse_size, nargs="+", default=DEFAULT_SIZES, metavar="n,d,m")
    ap.add_argument("--q", type=float, default=1.0, help="activation exponent (default 1, the ReLU)")
    ap.add_argument(
        "--check-steps", type=int, default=None, help="steps of the numpy-vs-lnref agreement check (default: --steps)"
    )
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy comparison (only the thread policy)")
    ap.add_argument("--no-threads", action="store_true", help="skip the thread-policy table")
    ap.add_argument(
        "--before",
        action="store_true",
        help="also time the pre-issue-13 policy (spinning OpenMP wait, default = all threads)",
    )
    ap.add_argument(
        "--before-rev",
        default=None,
        metavar="REV",
        help="also time lnref of git revision REV (e.g. one before issue 13), its own defaults",
    )
    ap.add_argument(
        "--variant",
        action="append",
        metavar="LABEL:VAR=VALUE,...",
        help="also time this lnref with these environment variables (e.g. "
        "'spin:GOMP_SPINCOUNT=10000'), in its own processes; repeatable",
    )
    ap.add_argument(
        "--engine",
        choices=("weights", "coefficients"),
        default="weights",
        help="engine of the thread-policy table (default weights)",
    )
    ap.add_argument(
        "--loads",
        nargs="+",
        choices=("quiet", "loaded"),
        default=("quiet", "loaded"),
        help="machine states of the thread-policy table (default both)",
    )
    ap.add_argument(
        "--numpy-steps",
        type=int,
        default=0,
        help="GD steps of each timed NumPy baseline in the thread table (default: --steps)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_threads(args)
    if not args.no_numpy:
        numpy_table(args)
    if not args.no_threads:
        thread_table(args)
    return 0


def numpy_table(args) -> None:
    """NumPy/BLAS baseline against lnref with all threads and one thread (module docstring)."""
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
    print(
        f"lnref {lnref.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"NUMBA_NUM_THREADS={all_threads}, cpu_count={os.cpu_count()}, q={args.q}, steps={args.steps}, "
        f"repeats={args.repeats} (min reported)"
    )
    print(
        f"import lnref: {t_import:.2f} s; first lnref.train call (compile): {t_compile:.2f} s; "
        f"second call: {t_second * 1e3:.1f} ms"
    )

    header = (
        f"{'n':>5} {'d':>6} {'m':>3} | {'numpy st/s':>10} | {'lnref st/s':>10} {'(thr=all)':>9} | "
        f"{'lnref st/s':>10} {'(thr=1)':>7} | {'all/numpy':>9} {'1/numpy':>8}"
    )
    print(header)
    print("-" * len(header))
    for n, d, m in args.sizes:
        cfg = lnref.Config(n=n, d=d, m=m, q=args.q, steps=args.steps, log_every=0, log_points=0, n_test=0, seed=1)
        data = lnref.make_data(cfg)
        W0 = lnref.init_weights(cfg)
        # apples to apples: the same trajectory
        check_steps = args.steps if args.check_steps is None else args.check_steps
        ccfg = cfg.replace(steps=check_steps)
        W_np = numpy_gd(W0, data.mu, data.xi, data.y, data.y_obs, args.q, cfg.eta, check_steps)
        W_ln = lnref.train(ccfg, data, W0, threads=all_threads, keep_rho=False).W
        scale = float(np.max(np.abs(W_ln)))
        np.testing.assert_allclose(
            W_np,
            W_ln,
            rtol=1e-10,
            atol=1e-10 * scale,
            err_msg=f"numpy baseline and lnref disagree at (n, d, m) = ({n}, {d}, {m})",
        )
        rel = float(np.max(np.abs(W_np - W_ln)) / scale)

        t_np, _ = time_numpy(W0, data, args.q, cfg.eta, args.steps, args.repeats)
        settle()
        t_all, _ = time_lnref(cfg, data, W0, all_threads, args.repeats)
        t_one, _ = time_lnref(cfg, data, W0, 1, args.repeats)
        sp_np, sp_all, sp_one = args.steps / t_np, args.steps / t_all, args.steps / t_one
        print(
            f"{n:>5} {d:>6} {m:>3} | {sp_np:>10.1f} | {sp_all:>10.1f} {'':>9} | {sp_one:>10.1f} {'':>7} | "
            f"{sp_all / sp_np:>9.2f} {sp_one / sp_np:>8.2f}   (max|dW|/max|W| = {rel:.1e})"
        )


# ------------------------------------------------------------------ the thread policy, quiet and loaded
def loadavg() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())


def child_threads(args) -> int:
    """In a fresh process: steps/s with threads=None, 1 and all for each size, alternating, min over repeats."""
    import numba

    import lnref

    try:
        from lnref.training import threads as _threads

        policy = _threads.wait_policy()
    except ImportError:  # a revision before issue 13 (--before-rev)
        policy = "no lnref policy: OpenMP default (spinning)"
    tiny = lnref.Config(n=4, d=8, m=1, q=args.q, steps=2, log_every=0, n_test=0, engine=args.engine)
    for t in (None, 1, numba.config.NUMBA_NUM_THREADS):
        lnref.train(tiny, threads=t)  # compile (or load from the cache) every variant before timing
    rows = []
    for n, d, m in args.sizes:
        cfg = lnref.Config(
            n=n, d=d, m=m, q=args.q, steps=args.steps, log_every=0, log_points=0, n_test=0, seed=1, engine=args.engine
        )
        data = lnref.make_data(cfg)
        W0 = lnref.init_weights(cfg)
        choices = {"default": None, "one": 1, "all": numba.config.NUMBA_NUM_THREADS}
        best = {k: np.inf for k in choices}
        best["numpy"] = np.inf
        used = {}
        warm = cfg.replace(steps=1)
        np_steps = args.numpy_steps or args.steps
        order = list(choices.items())
        for rep in range(args.repeats):
            # the NumPy/BLAS step a user would write, interleaved with lnref's settings (same process); then the
            # BLAS threads' spin is let run out (settle), and lnref's settings go in a rotating order
            t0 = time.perf_counter()
            numpy_gd(W0, data.mu, data.xi, data.y, data.y_obs, args.q, cfg.eta, np_steps)
            best["numpy"] = min(best["numpy"], (time.perf_counter() - t0) * args.steps / np_steps)
            settle()
            for key, t in order[rep % 3 :] + order[: rep % 3]:
                # an untimed 1-step call first: the OpenMP team resizes at the first region after a change of
                # thread count, a one-off cost that is not what the comparison is about
                lnref.train(warm, data, W0, threads=t, keep_rho=False)
                res = lnref.train(cfg, data, W0, threads=t, keep_rho=False)
                best[key] = min(best[key], res.timings["train"])
                used[key] = res.threads
        rows.append(
            {
                "size": [n, d, m],
                "load": loadavg(),
                "default_threads": used["default"],
                **{k: args.steps / v for k, v in best.items()},
            }
        )
    print(json.dumps({"policy": policy, "layer": numba.threading_layer(), "rows": rows}))
    return 0


def run_child(args, env: dict) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        "--steps",
        str(args.steps),
        "--numpy-steps",
        str(getattr(args, "numpy_steps", 0) or 0),
        "--repeats",
        str(args.repeats),
        "--q",
        str(args.q),
        "--engine",
        args.engine,
        "--sizes",
        *[f"{n},{d},{m}" for n, d, m in args.sizes],
    ]
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def thread_table(args) -> None:
    """Print steps/s for default / 1 / all threads, quiet and under one busy process (module docstring)."""
    policies = [("now", {})]
    if args.before:
        policies.append(("spin+all", {"GOMP_SPINCOUNT": "300000", "LNREF_THREADS": "all"}))
    for text in getattr(args, "variant", None) or []:
        label, _, assigns = text.partition(":")
        policies.append((label, dict(a.split("=", 1) for a in assigns.split(",") if a)))
    if getattr(args, "before_rev", None):
        import tempfile

        root = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
        tmp = tempfile.mkdtemp(prefix="bench_weights_rev_")
        archive = subprocess.run(
            ["git", "archive", args.before_rev, "lnref"], cwd=root, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        policies.append((f"rev {args.before_rev[:8]}", {"PYTHONPATH": tmp}))
    try:
        _thread_rows(args, policies)
    finally:
        if getattr(args, "before_rev", None):
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _thread_rows(args, policies) -> None:
    print(
        f"\nthread policy, {args.engine} engine: steps/s, each case in a fresh process, min of {args.repeats} "
        f"alternating repeats of {args.steps} steps (the NumPy/BLAS step interleaved in the same process); "
        f"ratio = default / max(one, all); x numpy = default / the NumPy step"
    )
    header = (
        f"{'case':<18} {'n':>5} {'d':>6} {'m':>3} | {'default':>8} {'(thr)':>5} {'one':>8} {'all':>8} | "
        f"{'ratio':>5} | {'numpy':>8} {'x numpy':>7} | load (1/5/15 min)"
    )
    print(header)
    print("-" * len(header))
    for load in getattr(args, "loads", None) or ("quiet", "loaded"):
        busy = None
        if load == "loaded":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for label, env in policies:
                res = run_child(args, env)
                for r in res["rows"]:
                    n, d, m = r["size"]
                    ratio = r["default"] / max(r["one"], r["all"])
                    print(
                        f"{load + ' ' + label:<18} {n:>5} {d:>6} {m:>3} | {r['default']:>8.1f} "
                        f"{r['default_threads']:>5} {r['one']:>8.1f} {r['all']:>8.1f} | {ratio:>5.2f} | "
                        f"{r['numpy']:>8.1f} {r['default'] / r['numpy']:>7.2f} | "
                        f"{r['load']}   [{res['policy']}; {res['layer']}]",
                        flush=True,
                    )
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


if __name__ == "__main__":
    sys.exit(main())
