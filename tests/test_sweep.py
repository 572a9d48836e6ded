"""lnref.sweep: identical results on any executor, resume after an interruption, refusal of bad grids."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json
import math
import multiprocessing

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lnref
from lnref.cli import main
from lnref.sweeps import SerialExecutor, cell_seed, parse_grid_item, process_executor, sweep

# tiny runs: compile cost dominates, so every executor runs the same 8 jobs
BASE = lnref.Config(n=8, d=30, m=2, steps=12, n_test=40, eta=1.0, sigma_p=1.0, mu_norm=2.0, tau=0.15, seed=7)
GRID = {"mu_norm": [0.5, 3.0], "d": [20, 40]}
REPS = 2


class CountingExecutor(SerialExecutor):
    """In-process executor that counts the tasks it was given (to prove nothing ran)."""

    def __init__(self):
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def _values(res):
    """Everything a row holds, in a form where NaN == NaN."""
    return [[("nan" if isinstance(v, float) and math.isnan(v) else v) for v in r.values()] for r in res.rows]


@pytest.fixture(scope="module")
def serial_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "sweep"
    return sweep(BASE, GRID, replicates=REPS, executor=SerialExecutor(), out=out, batch_size=3, plot=False)


def test_rows_cover_the_grid_once_with_derived_seeds(serial_result):
    res = serial_result
    keys = [(r["cell"], r["replicate"]) for r in res.rows]
    assert keys == [(c, r) for c in range(4) for r in range(REPS)]
    cells = [(0.5, 20), (0.5, 40), (3.0, 20), (3.0, 40)]  # row-major: last field fastest
    for row in res.rows:
        assert (row["mu_norm"], row["d"]) == cells[row["cell"]]
        assert row["seed"] == cell_seed(BASE.seed, row["cell"], row["replicate"])
    seeds = [r["seed"] for r in res.rows]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)


def test_a_row_equals_lnref_train_with_its_seed(serial_result):
    row = serial_result.rows[5]
    cfg = BASE.replace(mu_norm=row["mu_norm"], d=row["d"], seed=row["seed"])
    h = lnref.train(cfg, threads=1).history
    assert row["test_acc"] == h["test_acc"][-1]
    assert row["loss"] == h["loss"][-1]
    assert row["gamma_max"] == h["gamma_max"][-1]
    assert row["test_error"] == 1.0 - h["test_acc"][-1]
    assert row["steps_done"] == BASE.steps and row["diverged"] is False


def test_files_round_trip_and_aggregate(serial_result):
    out = serial_result.out
    with open(out / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * REPS
    for parsed, row in zip(rows, serial_result.rows):
        assert float(parsed["loss"]) == row["loss"] and int(parsed["seed"]) == row["seed"]
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["root_seed"] == BASE.seed and meta["grid"] == GRID and meta["replicates"] == REPS
    with open(out / "sweep_mean.csv") as fh:
        agg = list(csv.DictReader(fh))
    assert len(agg) == 4
    loss = serial_result.values("loss")  # (2, 2, REPS)
    assert loss.shape == (2, 2, REPS)
    for a in agg:
        c = int(a["cell"])
        vals = loss.reshape(4, REPS)[c]
        assert float(a["loss_mean"]) == pytest.approx(vals.mean(), rel=1e-12)
        assert float(a["loss_sem"]) == pytest.approx(vals.std(ddof=1) / math.sqrt(REPS), rel=1e-12)


def test_batch_size_does_not_change_results(serial_result):
    res = sweep(BASE, GRID, replicates=REPS, executor=SerialExecutor(), batch_size=1)
    assert _values(res) == _values(serial_result)


def test_process_pool_spawn_gives_identical_results(serial_result):
    with process_executor(2) as ex:
        assert ex._mp_context.get_start_method() == "spawn"
        res = sweep(BASE, GRID, replicates=REPS, executor=ex, batch_size=2)
    assert _values(res) == _values(serial_result)


def test_dask_local_cluster_gives_identical_results(serial_result):
    distributed = pytest.importorskip("distributed", reason="Dask is an optional extra: pip install 'lnref[dask]'")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        res = sweep(BASE, GRID, replicates=REPS, executor=client.get_executor(), batch_size=2)
    assert _values(res) == _values(serial_result)


def test_resume_after_interruption_completes_without_duplicates(serial_result, tmp_path):
    """Simulate a killed sweep: the CSV holds 3 finished rows out of order plus half a line."""
    src = serial_result.out
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text((src / "sweep.json").read_text())
    lines = (src / "sweep.csv").read_text().splitlines(keepends=True)
    partial = [lines[0], lines[5], lines[1], lines[3], lines[6][: len(lines[6]) // 2]]
    (out / "sweep.csv").write_text("".join(partial))
    ex = CountingExecutor()
    res = sweep(BASE, GRID, replicates=REPS, executor=ex, out=out, resume=True, batch_size=1, plot=False)
    assert res.skipped == 3
    assert ex.submitted == 4 * REPS - 3
    assert _values(res) == _values(serial_result)
    assert (out / "sweep.csv").read_text() == (src / "sweep.csv").read_text()
    # resuming a finished sweep runs nothing
    ex2 = CountingExecutor()
    res2 = sweep(BASE, GRID, replicates=REPS, executor=ex2, out=out, resume=True, plot=False)
    assert ex2.submitted == 0 and _values(res2) == _values(serial_result)


def test_resume_after_killing_the_sweep_process_completes_the_grid(tmp_path):
    """Kill a running `lnref sweep` (and its worker processes) with SIGKILL, then --resume: every (cell,
    replicate) row exactly once, equal to an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    flags = [
        "--n",
        "8",
        "--d",
        "30",
        "--m",
        "2",
        "--steps",
        "3000",
        "--n-test",
        "40",
        "--eta",
        "1.0",
        "--sigma-p",
        "1.0",
        "--tau",
        "0.15",
        "--seed",
        "7",
        "--grid",
        "mu_norm=0.5:6.0:0.5",
        "--replicates",
        "3",
        "--batch-size",
        "1",
        "--workers",
        "1",
        "--quiet",
    ]
    total = 12 * 3
    out = tmp_path / "killed"
    log = tmp_path / "stderr.txt"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lnref", "sweep", *flags, "--out", str(out)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    csv_path = out / "sweep.csv"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if csv_path.exists() and csv_path.read_text().count("\n") >= 1 + 3:  # header + 3 rows
                break
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its spawned pool workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()

    def read_rows(path):
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    done_before = len(read_rows(csv_path)) if csv_path.exists() else 0
    assert 3 <= done_before < total  # killed mid-sweep
    assert main(["sweep", *flags, "--out", str(out), "--resume"]) == 0
    rows = read_rows(csv_path)
    keys = [(r["cell"], r["replicate"]) for r in rows]
    assert len(keys) == total and len(set(keys)) == total
    ref = tmp_path / "ref"
    assert main(["sweep", *flags, "--out", str(ref)]) == 0
    ref_rows = {(r["cell"], r["replicate"]): r for r in read_rows(ref / "sweep.csv")}
    assert {(r["cell"], r["replicate"]): r for r in rows} == ref_rows


def test_resume_refuses_a_different_sweep(serial_result, tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text((serial_result.out / "sweep.json").read_text())
    ex = CountingExecutor()
    with pytest.raises(lnref.io.OutputError, match="grid differs"):
        sweep(BASE, {"mu_norm": [0.5, 3.0], "d": [20, 50]}, replicates=REPS, executor=ex, out=out, resume=True)
    assert ex.submitted == 0


@pytest.mark.parametrize(
    "grid, match",
    [
        ({"nope": [1, 2]}, "'nope' is not a Config field"),
        ({"mu_norm": []}, "mu_norm: the list of values is empty"),
        ({"seed": [1, 2]}, "grid over 'seed' is not allowed"),
        ({"mu_norm": [1.0, 2.0], "d": [20, 0]}, r"grid cell 1 \(mu_norm=1.0, d=0\) is invalid: d=0"),
        ({"tau": [0.1, 0.7]}, r"grid cell 1 \(tau=0.7\) is invalid: tau=0.7 is not allowed"),
        ({"n": [5, 5]}, "values are repeated"),
        ({"n": "5"}, "give a list"),
        ({}, "non-empty"),
    ],
)
def test_bad_grids_are_refused_before_anything_runs(grid, match, tmp_path):
    ex = CountingExecutor()
    with pytest.raises(lnref.ConfigError, match=match):
        sweep(BASE, grid, executor=ex, out=tmp_path / "never")
    assert ex.submitted == 0
    assert not (tmp_path / "never").exists()


def test_other_bad_arguments(tmp_path):
    ex = CountingExecutor()
    for kwargs, match in [
        (dict(replicates=0), "replicates=0"),
        (dict(metrics=("bogus",)), "bogus"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(resume=True), "needs out"),
    ]:
        with pytest.raises(lnref.ConfigError, match=match):
            sweep(BASE, GRID, executor=ex, **kwargs)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(lnref.io.OutputError, match="not empty"):
        sweep(BASE, GRID, executor=ex, out=tmp_path / "full")
    assert ex.submitted == 0


def test_parse_grid_items():
    name, vals = parse_grid_item("mu_norm=0:9.9:0.1")
    assert name == "mu_norm" and len(vals) == 100 and vals[0] == 0.0 and vals[-1] == 9.9
    assert vals[3] == 0.3 and vals[70] == 7.0  # as typed, not 3 * 0.1
    name, vals = parse_grid_item("d=100:1090:10")
    assert vals == list(range(100, 1091, 10)) and all(type(v) is int for v in vals)
    assert parse_grid_item("n=100,200") == ("n", [100, 200])
    assert parse_grid_item("algorithm=gd,label_noise_gd") == ("algorithm", ["gd", "label_noise_gd"])
    for bad, match in [
        ("n", "expected FIELD"),
        ("n=1:2", "START:STOP:STEP"),
        ("n=5:1:1", "START <= STOP"),
        ("n=1.5,2", "not a valid int"),
        ("zz=1,2", "not a Config field"),
    ]:
        with pytest.raises(lnref.ConfigError, match=match):
            parse_grid_item(bad)


def test_cli_sweep_with_toml_grid_and_resume(serial_result, tmp_path, capsys):
    toml = tmp_path / "grid.toml"
    toml.write_text('[grid]\nmu_norm = [0.5, 3.0]\nd = "20:40:20"\n')
    out = tmp_path / "cli"
    flags = [
        "--n",
        "8",
        "--d",
        "30",
        "--m",
        "2",
        "--steps",
        "12",
        "--n-test",
        "40",
        "--eta",
        "1.0",
        "--sigma-p",
        "1.0",
        "--mu-norm",
        "2.0",
        "--tau",
        "0.15",
        "--seed",
        "7",
    ]
    argv = [
        "sweep",
        *flags,
        "--grid",
        str(toml),
        "--replicates",
        str(REPS),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
    ]
    assert main(argv) == 0
    assert (out / "sweep.csv").read_text() == (serial_result.out / "sweep.csv").read_text()
    assert main(argv) == 2  # non-empty folder without --resume/--force
    assert "not empty" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert main(["sweep", *flags, "--grid", "seed=1,2", "--out", str(tmp_path / "x"), "--workers", "1"]) == 2
    assert "grid over 'seed' is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_serial_executor_passes_exceptions():
    fut = SerialExecutor().submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fut.result()
    assert isinstance(fut, cf.Future)
    assert multiprocessing.get_context("spawn").get_start_method() == "spawn"


# --------------------------------------------------------------------------------- issue 14
def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_huge_sweeps_are_refused_at_once(tmp_path, capsys):
    """Regression (issue 14): `--replicates 1000000000` started with no limit and no output."""
    import time

    ex = CountingExecutor()
    t0 = time.perf_counter()
    with pytest.raises(lnref.ConfigError, match=r"2000000000 runs; at most 10000000"):
        sweep(BASE, {"mu_norm": [1.0, 2.0]}, replicates=10**9, executor=ex, out=tmp_path / "api")
    with pytest.raises(lnref.ConfigError, match="at most 10000000 runs"):
        sweep(BASE, {"mu_norm": list(range(1, 5001)), "d": list(range(20, 5020))}, executor=ex)
    out = tmp_path / "cli"
    assert (
        main(
            [
                "sweep",
                "--n",
                "8",
                "--d",
                "16",
                "--m",
                "2",
                "--steps",
                "5",
                "--grid",
                "mu_norm=1,2",
                "--replicates",
                "1000000000",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--replicates" in err and "replicates=" not in err, err
    assert time.perf_counter() - t0 < 30 and ex.submitted == 0
    assert not out.exists() and not (tmp_path / "api").exists()


def test_resume_refuses_rows_of_another_config_without_sweep_json(serial_result, tmp_path, capsys):
    """Regression (issue 14): after sweep.json was deleted, --resume with another eta kept the old rows."""
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.csv").write_bytes((serial_result.out / "sweep.csv").read_bytes())
    before = _files(out)
    ex = CountingExecutor()
    with pytest.raises(lnref.io.OutputError, match="rows of another sweep"):
        sweep(BASE.replace(eta=0.5), GRID, replicates=REPS, executor=ex, out=out, resume=True)
    assert ex.submitted == 0 and _files(out) == before
    flags = [
        "--n",
        "8",
        "--d",
        "30",
        "--m",
        "2",
        "--steps",
        "12",
        "--n-test",
        "40",
        "--eta",
        "0.5",
        "--sigma-p",
        "1.0",
        "--mu-norm",
        "2.0",
        "--tau",
        "0.15",
        "--seed",
        "7",
        "--grid",
        "mu_norm=0.5,3.0",
        "--grid",
        "d=20,40",
        "--replicates",
        str(REPS),
        "--workers",
        "1",
        "--quiet",
    ]
    assert main(["sweep", *flags, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "another sweep" in err and "--force" in err and "force=True" not in err, err
    assert _files(out) == before
    # the same sweep resumes from its rows alone (nothing left to run)
    res = sweep(BASE, GRID, replicates=REPS, executor=ex, out=out, resume=True, plot=False)
    assert ex.submitted == 0 and _values(res) == _values(serial_result)


def test_a_garbled_row_is_run_again_alone(serial_result, tmp_path):
    """Regression (issue 14): one garbled row made resume drop every row after it."""
    src = serial_result.out
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_bytes((src / "sweep.json").read_bytes())
    lines = (src / "sweep.csv").read_text().splitlines(keepends=True)
    row = lines[3]
    k = row.index(",", row.index("0.")) - 2  # a digit inside a float value: still parses, fails the check
    lines[3] = row[:k] + ("1" if row[k] != "1" else "2") + row[k + 1 :]
    (out / "sweep.csv").write_text("".join(lines))
    ex = CountingExecutor()
    res = sweep(BASE, GRID, replicates=REPS, executor=ex, out=out, resume=True, batch_size=1, plot=False)
    assert ex.submitted == 1 and res.rerun == 1 and res.skipped == 4 * REPS - 1
    assert _values(res) == _values(serial_result)
    assert (out / "sweep.csv").read_text() == (src / "sweep.csv").read_text()


def test_damaged_sweep_json_is_refused_cleanly(serial_result, tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.csv").write_bytes((serial_result.out / "sweep.csv").read_bytes())
    (out / "sweep.json").write_text('{"kind": "lnref.sweep", "grid": ')
    before = _files(out)
    with pytest.raises(lnref.ConfigError, match=r"sweep\.json is not valid JSON"):
        sweep(BASE, GRID, replicates=REPS, executor=CountingExecutor(), out=out, resume=True)
    assert _files(out) == before


def test_sweep_from_a_script_on_stdin_runs(tmp_path):
    """Regression (issue 14): `python - <<EOF` with lnref.sweep died with BrokenProcessPool."""
    import os
    import subprocess
    import sys

    script = (
        "import lnref\n"
        "res = lnref.sweep(lnref.Config(n=8, d=16, m=2, steps=5, n_test=4), {'mu_norm': [1.0, 2.0]})\n"
        "print('rows', len(res.rows))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::Warning", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "rows 2" in proc.stdout
    assert "standard input" in proc.stderr  # the one-line notice


def test_pool_workers_exit_when_the_sweep_process_is_killed(tmp_path):
    """Regression (issue 14): pool workers survived a SIGKILL of `lnref sweep` for minutes."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lnref",
            "sweep",
            "--n",
            "8",
            "--d",
            "30",
            "--m",
            "2",
            "--steps",
            "100000000",
            "--log-every",
            "0",
            "--n-test",
            "4",
            "--grid",
            "mu_norm=1,2,3,4",
            "--workers",
            "2",
            "--quiet",
            "--out",
            str(tmp_path / "s"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    children_file = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if not children_file.exists():
        proc.kill()
        pytest.skip("needs Linux's /proc/PID/task/PID/children")
    try:
        kids: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(kids) < 3:  # two workers and the resource tracker
            time.sleep(0.2)
            kids = [int(k) for k in children_file.read_text().split()]
        assert len(kids) >= 2, kids
        time.sleep(2.0)  # the workers are importing lnref / compiling / running
    finally:
        proc.send_signal(signal.SIGKILL)  # only the parent
        proc.wait()
    deadline = time.monotonic() + 20
    alive = kids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [
            k
            for k in kids
            if Path(f"/proc/{k}").exists()
            and "zombie" not in Path(f"/proc/{k}/status").read_text(errors="replace").lower()
        ]
    for k in alive:
        os.kill(k, signal.SIGKILL)
    assert not alive, f"worker processes {alive} outlived the sweep"


def test_run_batch_pauses_the_garbage_collector_and_restores_it():
    """run_batch pauses Python's cyclic collector during its runs (a measured 5% of a Kou run) and restores the
    caller's setting afterwards, also when a run fails."""
    import gc

    from lnref.sweeps.worker import run_batch

    base = lnref.Config(n=6, d=30, m=2, steps=3, n_test=10, engine="coefficients", sampling="gram").to_dict()
    seen = []
    real_gc_isenabled = gc.isenabled
    assert real_gc_isenabled()
    import lnref.sweeps.worker as worker

    real_final_run = worker.final_run

    def spy(cfg, metrics):
        seen.append(real_gc_isenabled())
        return real_final_run(cfg, metrics)

    worker.final_run = spy
    try:
        rows = run_batch(base, ["mu_norm"], [(0, 0, (1.0,), 1), (0, 1, (1.0,), 2)], ["test_acc"])
        assert len(rows) == 2 and seen == [False, False]
        assert gc.isenabled()
        with pytest.raises(lnref.ConfigError):
            run_batch(base, ["d"], [(0, 0, (-5,), 1)], ["test_acc"])
        assert gc.isenabled()
        gc.disable()  # a caller that had it off keeps it off
        run_batch(base, ["mu_norm"], [(0, 0, (1.0,), 1)], ["test_acc"])
        assert not gc.isenabled()
    finally:
        gc.enable()
        worker.final_run = real_final_run


_NO_CYCLES = """
import gc, json, sys
import lnref
from lnref.sweeps.worker import run_batch
from lnref.reproduce.heatmaps import kou_base
base = kou_base(seed=1).to_dict()
jobs = [(c, r, (1.0 + 0.5 * c, 100 + 200 * c), 10 * c + r) for c in range(3) for r in range(4)]
run_batch(base, ["mu_norm", "d"], jobs, ["test_acc", "train_acc"])  # loads (or compiles) the kernels
gc.collect()
gc.disable()
run_batch(base, ["mu_norm", "d"], jobs, ["test_acc", "train_acc"])
print(json.dumps(gc.collect()))
"""


def test_a_batch_of_runs_leaves_no_reference_cycles():
    """What makes the pause safe: a run's objects are all freed by reference counting, so nothing waits for the
    collector while it is paused (in a fresh interpreter: other tests' threads make garbage of their own)."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _NO_CYCLES], capture_output=True, text=True, check=True, timeout=600)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == 0


@settings(max_examples=40, deadline=None)
@given(
    root=st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32, 2**64 - 1), st.integers(2**64, 2**70)),
    pairs=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=20),
)
def test_cell_seeds_are_cell_seed_and_numpys_seed_sequence(root, pairs):
    """The batch form (one kernel call for a sweep's jobs) gives cell_seed's seeds, which are NumPy's
    SeedSequence(root, spawn_key=(cell, replicate)).generate_state(1, uint64)[0] >> 1; roots of 2^64 and more take
    the one-by-one path."""
    from lnref.sweeps.grid import cell_seeds

    cells = [c for c, _ in pairs]
    reps = [r for _, r in pairs]
    got = cell_seeds(root, cells, reps)
    assert got == [cell_seed(root, c, r) for c, r in pairs]
    for (c, r), seed in zip(pairs[:3], got):
        ss = np.random.SeedSequence(root, spawn_key=(c, r))
        assert seed == int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
