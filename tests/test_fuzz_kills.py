"""Kill points and full disks (issue 14): a run or sweep stopped at ANY file-system step either resumes to the
bit-identical result or leaves its earlier complete state untouched.

Every kill point is tried (not a random sample): the file-system steps lnref takes (``os.replace``,
``os.unlink``, ``os.fsync``, ``os.rename``) are intercepted, and before each one the whole output area is copied
- that copy is exactly what a SIGKILL at that moment would leave.  Each copy is then checked.  For the full disk,
the k-th step raises ENOSPC instead, for every k.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import lnref
from lnref.cli import main
from lnref.sweeps import SerialExecutor, sweep
from lnref.training.runs import load_run, run_status

RUN = [
    "--n",
    "8",
    "--d",
    "16",
    "--m",
    "2",
    "--steps",
    "40",
    "--log-every",
    "5",
    "--n-test",
    "4",
    "--seed",
    "2",
    "--quiet",
    "--threads",
    "1",
]
_STEPS = ("replace", "unlink", "fsync", "rename")


class FileSystemSteps:
    """Intercepts os.replace/unlink/fsync/rename: copies ``area`` before each (``snapshots``), or raises ENOSPC at
    step ``fail_at``."""

    def __init__(self, monkeypatch, area: Path, snaps: Path | None = None, fail_at: int | None = None):
        self.area, self.snaps, self.fail_at = area, snaps, fail_at
        self.count = 0
        self.busy = False
        self.snapshots: list[Path] = []
        for name in _STEPS:
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))

    def _wrap(self, fn):
        def step(*args, **kwargs):
            if not self.busy:
                self.busy = True
                try:
                    self.count += 1
                    if self.fail_at is not None and self.count == self.fail_at:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    if self.snaps is not None:
                        dest = self.snaps / f"{len(self.snapshots):03d}"
                        shutil.copytree(self.area, dest, symlinks=True)
                        self.snapshots.append(dest)
                finally:
                    self.busy = False
            return fn(*args, **kwargs)

        return step


def _run_content(folder: Path):
    cfg, arrays = load_run(folder)
    return cfg, (folder / "metrics.csv").read_bytes(), {k: v.tobytes() for k, v in arrays.items()}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    assert main(["run", *RUN, "--out", str(root / "a"), "--q", "2"]) == 0
    assert main(["run", *RUN, "--out", str(root / "b")]) == 0
    return {"A": _run_content(root / "a"), "B": _run_content(root / "b")}


def test_a_run_killed_at_any_step_resumes_bit_identical_or_is_never_a_result(tmp_path, monkeypatch, references):
    area, snaps = tmp_path / "area", tmp_path / "snaps"
    area.mkdir()
    snaps.mkdir()
    steps = FileSystemSteps(monkeypatch, area, snaps)
    assert main(["run", *RUN, "--checkpoint-every", "10", "--out", str(area / "run")]) == 0
    monkeypatch.undo()
    assert len(steps.snapshots) >= 10
    seen = set()
    for snap in steps.snapshots:
        folder = snap / "run"
        status = run_status(folder)
        seen.add(status)
        if status == "complete":
            assert _run_content(folder) == references["B"], snap
        elif status == "resumable":
            assert main(["run", "--resume", "--quiet", "--threads", "1", "--out", str(folder)]) == 0, snap
            assert _run_content(folder) == references["B"], snap
        else:
            with pytest.raises(lnref.ConfigError):
                load_run(folder)
    assert {"resumable", "complete"} <= seen


def test_force_killed_at_any_step_leaves_the_old_run_or_the_new_one(tmp_path, monkeypatch, references):
    area, snaps = tmp_path / "area", tmp_path / "snaps"
    area.mkdir()
    snaps.mkdir()
    assert main(["run", *RUN, "--q", "2", "--out", str(area / "run")]) == 0
    steps = FileSystemSteps(monkeypatch, area, snaps)
    assert main(["run", *RUN, "--force", "--out", str(area / "run")]) == 0
    monkeypatch.undo()
    outcomes = []
    for snap in steps.snapshots:
        folder = snap / "run"
        if run_status(folder) == "complete":
            content = _run_content(folder)
            assert content in (references["A"], references["B"]), snap
            outcomes.append("A" if content == references["A"] else "B")
        else:  # only in the two-rename fallback: the old run waits, complete, beside it
            olds = [p for p in snap.iterdir() if ".lnref-old-" in p.name]
            assert olds and _run_content(olds[0]) == references["A"], snap
    assert outcomes[0] == "A" and outcomes[-1] == "B"


@pytest.mark.parametrize("force", [False, True])
def test_a_full_disk_at_any_step_keeps_the_earlier_state(tmp_path, monkeypatch, references, capsys, force):
    area = tmp_path / "area"
    area.mkdir()
    mode = ["--force"] if force else ["--checkpoint-every", "10"]

    def attempt(k: int | None, out: Path) -> tuple[int, int]:
        if force:
            assert main(["run", *RUN, "--q", "2", "--out", str(out)]) == 0
        steps = FileSystemSteps(monkeypatch, area, fail_at=k)
        code = main(["run", *RUN, *mode, "--out", str(out)])
        monkeypatch.undo()
        return code, steps.count

    code, total = attempt(None, area / "count")  # how many steps an undisturbed run takes
    assert code == 0 and total >= 8
    failures = 0
    for k in range(1, total + 1):
        out = area / f"run{k}"
        code, _ = attempt(k, out)
        err = capsys.readouterr().err
        if code == 0:  # a step whose failure does not matter (a folder's fsync): the run is complete
            assert _run_content(out) == references["B"], k
            continue
        failures += 1
        assert code == 2 and "no space left" in err and err.count("\n") == 1, (k, err)
        status = run_status(out)
        if force:
            assert status == "complete" and _run_content(out) == references["A"], k
            assert [p.name for p in area.iterdir() if p.name.startswith(".")] == [], k
        else:
            assert status in ("missing", "resumable"), (k, status)
            if status == "resumable":
                assert main(["run", "--resume", "--quiet", "--threads", "1", "--out", str(out)]) == 0
                assert _run_content(out) == references["B"], k
    # the last 4 steps come after the run is complete (history.png written atomically: 3 steps; the folder's lock
    # removed: 1), so their failure leaves a complete run
    assert failures >= (total - 4) // 2


def _rows(res):
    return [[("nan" if isinstance(v, float) and math.isnan(v) else v) for v in r.values()] for r in res.rows]


def test_a_sweep_killed_at_any_step_resumes_to_the_same_rows(tmp_path, monkeypatch):
    base = lnref.Config(n=8, d=16, m=2, steps=5, n_test=4, seed=4)
    grid = {"mu_norm": [1.0, 2.0], "tau": [0.0, 0.2]}
    ref = sweep(base, grid, replicates=2, executor=SerialExecutor(), out=tmp_path / "ref", batch_size=1, plot=False)
    area, snaps = tmp_path / "area", tmp_path / "snaps"
    area.mkdir()
    snaps.mkdir()
    steps = FileSystemSteps(monkeypatch, area, snaps)
    sweep(base, grid, replicates=2, executor=SerialExecutor(), out=area / "s", batch_size=1, plot=False)
    monkeypatch.undo()
    assert len(steps.snapshots) >= 8
    for snap in steps.snapshots:
        folder = snap / "s"
        if not folder.exists():
            continue
        res = sweep(
            base, grid, replicates=2, executor=SerialExecutor(), out=folder, resume=True, batch_size=1, plot=False
        )
        assert _rows(res) == _rows(ref), snap
        assert (folder / "sweep.csv").read_bytes() == (ref.out / "sweep.csv").read_bytes(), snap
        assert np.array_equal(res.mean("loss"), ref.mean("loss"))


def test_a_sweep_stopped_by_a_full_disk_resumes_to_the_same_rows(tmp_path, monkeypatch):
    base = lnref.Config(n=8, d=16, m=2, steps=5, n_test=4, seed=5)
    grid = {"mu_norm": [1.0, 2.0], "tau": [0.0, 0.2]}
    ref = sweep(base, grid, replicates=2, executor=SerialExecutor(), out=tmp_path / "ref", batch_size=1, plot=False)
    area = tmp_path / "area"
    area.mkdir()
    steps = FileSystemSteps(monkeypatch, area)
    sweep(base, grid, replicates=2, executor=SerialExecutor(), out=area / "count", batch_size=1, plot=False)
    monkeypatch.undo()
    failures = 0
    for k in range(1, steps.count + 1):
        out = area / f"s{k}"
        FileSystemSteps(monkeypatch, area, fail_at=k)
        try:
            sweep(base, grid, replicates=2, executor=SerialExecutor(), out=out, batch_size=1, plot=False)
        except lnref.io.OutputError as exc:
            failures += 1
            assert "no space left" in str(exc), (k, exc)
        finally:
            monkeypatch.undo()
        if out.exists():
            res = sweep(
                base, grid, replicates=2, executor=SerialExecutor(), out=out, resume=True, batch_size=1, plot=False
            )
            assert _rows(res) == _rows(ref), k
            assert (out / "sweep.csv").read_bytes() == (ref.out / "sweep.csv").read_bytes(), k
    assert failures >= steps.count // 2
