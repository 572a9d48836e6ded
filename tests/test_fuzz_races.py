"""Two things at once (issue 24): concurrent writers into one output.  One writer wins, every other is refused
before it writes, every time, and no result reported as written is ever missing.

The races are run many times with cheap operations (the folder claim of ``lnref run``,
:class:`lnref.training.runs.RunFolder`, and the claim every writing command takes, :class:`lnref._lock.OutputLock`) in
forked processes released together by a barrier; whole commands are raced where the outcome does not depend on timing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lnref.io import OutputError
from lnref.training.runs import RunFolder

ROUNDS = 200
RACERS = 4


def _racer(kind: str, root: str, wid: int, barrier, queue) -> None:
    results = []
    for i in range(ROUNDS):
        out = Path(root) / f"r{i}"
        barrier.wait()
        try:
            if kind == "run":
                folder = RunFolder(out)
                path = folder.start()
                (path / "config.json").write_text(f"racer {wid}\n")
                (path / "meta.json").write_text(f'{{"complete": true, "racer": {wid}}}\n')
                folder.commit()
                getattr(folder, "release", lambda: None)()
            else:
                from lnref._lock import OutputLock

                lock = OutputLock(out).acquire()
                # the claimed output: written only by its one holder
                if out.exists():
                    raise OutputError(f"{out} exists")
                out.write_text(f"racer {wid}\n")
                lock.release()
            results.append((i, "wrote"))
        except OutputError as exc:
            results.append((i, f"refused: {exc}"))
    queue.put((wid, results))


def _race(kind: str, root: Path) -> dict[int, list[tuple[int, str]]]:
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(RACERS), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(kind, str(root), w, barrier, queue)) for w in range(RACERS)]
    for p in procs:
        p.start()
    got = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return got


@pytest.mark.parametrize("kind", ["run", "lock"])
def test_racing_writers_one_wins_every_time(tmp_path, kind):
    """200 rounds of 4 processes starting a run into the same new folder at the same moment (RunFolder, the path
    of ``lnref run --out``), and the same for the claim of every writing command: exactly one writes, the others
    are refused, and what is there afterwards is the winner's."""
    got = _race(kind, tmp_path)
    doubles = []
    for i in range(ROUNDS):
        winners = [w for w, res in got.items() if res[i][1] == "wrote"]
        if len(winners) != 1:
            doubles.append((i, winners))
            continue
        out = tmp_path / f"r{i}"
        text = (out / "config.json" if kind == "run" else out).read_text()
        assert text == f"racer {winners[0]}\n", (i, winners, text)  # the reported result is there, unchanged
        refusals = [got[w][i][1] for w in got if w != winners[0]]
        assert all(
            "being written by another lnref process" in r or "not empty" in r or " exists" in r for r in refusals
        ), refusals
    assert doubles == [], f"{len(doubles)} of {ROUNDS} rounds without exactly one writer: {doubles[:5]}"
    assert not list(tmp_path.glob(".*lnref-lock*")), "a lock was left behind"


def _hold(path: str, ready, go) -> None:
    from lnref._lock import OutputLock

    lock = OutputLock(path).acquire()
    ready.set()
    go.wait(60)
    lock.release()


def test_a_live_lock_refuses_naming_its_owner_and_a_dead_ones_is_taken_over(tmp_path):
    ctx = mp.get_context("fork")
    ready, go = ctx.Event(), ctx.Event()
    out = tmp_path / "run"
    p = ctx.Process(target=_hold, args=(str(out), ready, go), daemon=True)
    p.start()
    assert ready.wait(60)
    with pytest.raises(OutputError, match=f"pid {p.pid} on host"):
        RunFolder(out).start()
    assert not out.exists()
    os.kill(p.pid, signal.SIGKILL)  # dies holding it: the lock file stays, its flock goes
    p.join()
    assert list(tmp_path.glob(".run.lnref-lock"))
    folder = RunFolder(out)
    assert folder.start() == out
    folder.commit()
    folder.release()
    assert not list(tmp_path.glob(".*lnref-lock*"))


# ------------------------------------------------------------------------------------------ lnref reproduce
_PROBE_REPRO = """
import sys, time
from pathlib import Path
from lnref.reproduce.common import Check, register
from lnref.cli import main

@register("race-probe", "a reproduction that waits (test)")
def probe(ctx):
    ctx.path("data.txt").write_text("first")
    go = Path(sys.argv[2])
    for _ in range(600):
        if go.exists():
            break
        time.sleep(0.05)
    return [Check("first ran", "1", True)]

sys.exit(main(["reproduce", "race-probe", "--out", sys.argv[1]]))
"""


def test_a_second_reproduce_into_a_running_ones_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Issue 24.2: ``lnref reproduce`` twice into one folder at once: the second used to take the running one's
    unfinished marker for an old output, delete its files and report success.  It must be refused."""
    from lnref.cli import main
    from lnref.reproduce.common import REPRODUCTIONS, Check, register

    out, go = tmp_path / "out", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    first = subprocess.Popen(
        [sys.executable, "-c", _PROBE_REPRO, str(out), str(go)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1200):  # until the first is writing
            if (out / "data.txt").exists() or first.poll() is not None:
                break
            time.sleep(0.05)
        assert (out / "data.txt").exists(), first.communicate()

        @register("race-probe", "a reproduction that waits (test)")
        def second(ctx):
            ctx.path("data.txt").write_text("second")
            return [Check("second ran", "1", True)]

        monkeypatch.setitem(REPRODUCTIONS, "race-probe", REPRODUCTIONS["race-probe"])
        code = main(["reproduce", "race-probe", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "being written by another lnref process" in err and err.count("\n") == 1, err
        assert (out / "data.txt").read_text() == "first"
    finally:
        go.touch()
        _stdout, stderr = first.communicate(timeout=120)
        REPRODUCTIONS.pop("race-probe", None)
    assert first.returncode == 0, stderr
    assert (out / "data.txt").read_text() == "first" and (out / "report.md").exists()
    assert not list(tmp_path.glob(".*lnref-lock*"))
