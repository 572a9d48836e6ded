"""What a fresh process imports (issue 25: a tiny `lnref run` loads only what it uses).

Timings are measured in bench/bench_startup.py, never asserted here; these tests check which modules load.
"""

import subprocess
import sys


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_lnref_leaves_the_sweep_machinery_and_the_spec_unloaded_until_used():
    code = (
        "import sys, lnref\n"
        "lazy = ['lnref.sweeps', 'lnref.model.decomposition', 'lnref._spec', 'lnref.data.gram']\n"
        "assert not [m for m in lazy if m in sys.modules], [m for m in lazy if m in sys.modules]\n"
        "assert set(lnref.LAZY) <= set(lnref.__all__) and set(lnref.LAZY) <= set(dir(lnref))\n"
        "import lnref.sweeps.api as api, lnref.model.decomposition as dec, lnref._spec as spec\n"
        "assert lnref.sweep is api.sweep and lnref.SweepResult is api.SweepResult\n"
        "assert lnref.decompose is dec.decompose and lnref.reconstruct is dec.reconstruct\n"
        "assert lnref.spec_path is spec.spec_path and lnref.spec_path().name == 'SPEC.md'\n"
        "from lnref import sweep, decompose\n"
        "assert sweep is api.sweep and decompose is dec.decompose\n"
        "print('ok')\n"
    )
    assert _run(code).strip() == "ok"


def test_lnref_run_does_not_import_the_other_commands(tmp_path):
    code = (
        "import sys\n"
        "from lnref.cli import main\n"
        f"assert main(['run', '--n', '6', '--d', '8', '--m', '1', '--steps', '2', '--quiet', '--out', "
        f"{str(tmp_path / 'r')!r}]) == 0\n"
        "others = [m for m in sys.modules if m.startswith(('lnref.sweeps', 'lnref.reproduce', 'lnref.oracle'))]\n"
        "assert not others, others\n"
        "print('ok')\n"
    )
    assert _run(code).strip().splitlines()[-1] == "ok"
    assert (tmp_path / "r" / "meta.json").exists()


def test_the_full_parser_still_lists_every_command():
    from lnref.cli import build_parser

    text = build_parser().format_help()
    for command in ("run", "cache", "sweep", "reproduce"):
        assert command in text


def test_lnref_program_skips_the_interpreter_teardown_but_runs_atexit_and_flushes(tmp_path):
    # `python -m lnref` ends with os._exit once the command returned (issue 25: the teardown was ~0.4 s of a tiny
    # run): an object freed only at teardown says nothing, an atexit handler still runs, piped output is complete;
    # the objects of the imports are frozen out of the garbage collector's scans
    out = tmp_path / "r"
    code = (
        "import atexit, runpy, sys\n"
        "import os\n"
        "class Teardown:  # says so when the interpreter's teardown frees it (fd 1: sys.stdout may be gone)\n"
        "    def __del__(self, write=os.write):\n"
        "        write(1, b'teardown ran\\n')\n"
        "kept = Teardown()\n"
        "import gc\n"
        "atexit.register(lambda: print('atexit ran', gc.get_freeze_count() > 1000))\n"
        f"sys.argv = ['lnref', 'run', '--n', '6', '--d', '8', '--m', '1', '--steps', '2', '--out', {str(out)!r}]\n"
        "runpy.run_module('lnref', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "atexit ran True" and any(line.startswith(f"wrote {out}") for line in lines), proc.stdout
    assert "teardown ran" not in proc.stdout
    assert {"arrays.npz", "config.json", "meta.json", "metrics.csv"} <= {p.name for p in out.iterdir()}


def test_lnref_program_keeps_its_exit_status_and_joins_other_threads(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "lnref", "run", "--n", "0", "--out", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "lnref run: error:" in bad.stderr and "n=0" in bad.stderr
    # a non-daemon thread still running when the command returns is joined (normal exit): its output arrives
    code = (
        "import threading, time, sys\n"
        "from lnref.cli import exit_now\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done', flush=True))).start()\n"
        "exit_now(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3 and proc.stdout.strip() == "thread done", (proc.returncode, proc.stdout, proc.stderr)


def test_a_run_loads_scipy_linalg_cython_blas_alone_and_scipy_linalg_still_imports_whole():
    # numba's BLAS check imports scipy.linalg.cython_blas when the first kernel loads; lnref preloads that one
    # extension module so that all of scipy.linalg (~0.17 s) is not imported with it (issue 25)
    # -- in the lnref program's own process only (lnref.cli.entry): a library user's imports are left alone
    code = (
        "import sys, lnref\n"
        "lnref.train(lnref.Config(n=6, d=8, m=1, steps=2))\n"
        "assert 'scipy.linalg' in sys.modules  # as a library: numba's own import, untouched\n"
        "from lnref.kernels.cache import _LinalgAttribute\n"
        "assert _LinalgAttribute not in sys.meta_path\n"
        "print('ok')\n"
    )
    assert _run(code).strip() == "ok"
    code = (
        "import sys, lnref\n"
        "from lnref.kernels.cache import preload_cython_blas\n"
        "preload_cython_blas()  # what lnref.cli.entry does for lnref run\n"
        "lnref.train(lnref.Config(n=6, d=8, m=1, steps=2))\n"
        "assert 'scipy.linalg.cython_blas' in sys.modules and 'scipy.linalg' not in sys.modules\n"
        "import numba, numpy as np, scipy.linalg\n"
        "assert scipy.linalg.cython_blas is sys.modules['scipy.linalg.cython_blas']\n"
        "assert scipy.linalg.cholesky(np.eye(2) * 4)[1, 1] == 2.0\n"
        "dot = numba.njit(lambda a: np.dot(a, a))\n"
        "assert dot(np.eye(3) * 2)[2, 2] == 4.0\n"
        "print('ok')\n"
    )
    assert _run(code).strip() == "ok"


def test_other_commands_exit_normally(tmp_path):
    # only `lnref run` and `lnref cache` skip the teardown; the others (worker processes, clusters) exit as usual
    code = (
        "import runpy, sys\n"
        "import os\n"
        "class Teardown:  # says so when the interpreter's teardown frees it (fd 1: sys.stdout may be gone)\n"
        "    def __del__(self, write=os.write):\n"
        "        write(1, b'teardown ran\\n')\n"
        "kept = Teardown()\n"
        f"sys.argv = ['lnref', 'export', '--n', '0', '--out', {str(tmp_path / 'f.npz')!r}]\n"
        "runpy.run_module('lnref', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "n=0" in proc.stderr, (proc.returncode, proc.stderr)
    assert proc.stdout.strip() == "teardown ran"
