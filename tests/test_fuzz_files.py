"""Fuzzing lnref's inputs (issue 14): random TOML, random config dicts and random byte corruptions of every file
type lnref reads.  Each case ends in exactly one of two ways: the input is used and gives the right result, or
it is refused with lnref's own error (exit status 2 and a one-line message from the CLI) and no earlier result
changes.  Never a traceback, a hang, or a silently wrong result.

25 examples per test by default (fast); LNREF_FUZZ_EXAMPLES=500 runs a longer campaign (used while developing:
3 x 150 examples per test with --hypothesis-seed 1, 2, 3 passed)."""

from __future__ import annotations

import json
import math
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lnref
from lnref.cli import main
from lnref.config import FIELD_TYPES
from lnref.sweeps import SerialExecutor, sweep
from lnref.training.runs import CHECKPOINT, load_checkpoint, load_run, save_checkpoint

TINY = ["--n", "8", "--d", "16", "--m", "2", "--steps", "5", "--n-test", "4"]
TINY_CFG = lnref.Config(n=8, d=16, m=2, steps=5, n_test=4, seed=1)
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("LNREF_FUZZ_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_clean_line(err: str, command: str = "run") -> None:
    assert err.startswith(f"lnref {command}: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err


# ------------------------------------------------------------------------------------------- TOML and dicts
_names = st.sampled_from([*sorted(FIELD_TYPES), "stpes", "learning_rate", "config", "grid", "N", "tau plus"])
_scalars = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(string.ascii_letters + "_ ", max_size=12),
    st.sampled_from(["gd", "label_noise_gd", "weights", "coefficients", "gram", "iid", "exact"]),
)
_field_values = st.one_of(
    _scalars, st.lists(_scalars, max_size=3), st.dictionaries(st.sampled_from(["a", "n"]), _scalars, max_size=2)
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"


@st.composite
def toml_documents(draw) -> bytes:
    kind = draw(st.sampled_from(["fields", "table", "mixed", "raw", "bytes"]))
    if kind == "raw":
        return draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    top = draw(st.dictionaries(_names.filter(lambda k: " " not in k), _field_values, max_size=4))
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items() if kind != "table"]
    if kind in ("table", "mixed"):
        lines.append("[config]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    return ("\n".join(lines) + "\n").encode()


@FUZZ
@given(doc=toml_documents())
def test_random_toml_is_used_or_refused_cleanly(tmp_path_factory, capsys, doc):
    tmp = tmp_path_factory.mktemp("toml")
    (tmp / "c.toml").write_bytes(doc)
    out = tmp / "run"
    code = main(
        [
            "run",
            "--config",
            str(tmp / "c.toml"),
            *TINY,
            "--log-every",
            "1",
            "--quiet",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code in (0, 1, 2)
    if code == 2:
        _one_clean_line(err)
        assert not out.exists()
    else:
        assert lnref.training.runs.run_status(out) == "complete"


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(_names, _field_values, max_size=6))
def test_random_config_dicts_build_a_config_or_raise_config_error(values):
    try:
        cfg = lnref.Config.from_dict(values)
    except lnref.ConfigError as exc:
        assert str(exc)
    else:
        assert lnref.Config.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------------------------------- corruptions
@st.composite
def corruptions(draw, size: int):
    """(description, function bytes -> bytes): flipped bytes, a truncation, an insertion or a zeroed block."""
    kind = draw(st.sampled_from(["flip", "flip", "truncate", "insert", "zero"]))
    if kind == "flip":
        edits = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)), min_size=1, max_size=3))

        def apply(raw: bytes) -> bytes:
            b = bytearray(raw)
            for pos, x in edits:
                b[pos] ^= x
            return bytes(b)

        return f"flip {edits}", apply
    if kind == "truncate":
        cut = draw(st.integers(0, size - 1))
        return f"truncate at {cut}", lambda raw: raw[:cut]
    if kind == "insert":
        pos = draw(st.integers(0, size))
        junk = draw(st.binary(min_size=1, max_size=8))
        return f"insert {junk!r} at {pos}", lambda raw: raw[:pos] + junk + raw[pos:]
    start = draw(st.integers(0, size - 1))
    length = draw(st.integers(1, 64))
    return f"zero {start}+{length}", lambda raw: raw[:start] + bytes(min(length, size - start)) + raw[start + length :]


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A finished run folder, a checkpoint of the same run, a dataset file and a finished sweep folder."""
    root = tmp_path_factory.mktemp("originals")
    cfg = TINY_CFG.replace(steps=20, log_every=5)
    states = []
    lnref.train(
        cfg,
        threads=1,
        checkpoint_every=10,
        on_checkpoint=lambda s: states.append(
            {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        ),
    )
    save_checkpoint(root / "checkpoint.npz", states[0])
    lnref.make_data(TINY_CFG).save(root / "data.npz")
    assert main(["run", *TINY, "--quiet", "--threads", "1", "--out", str(root / "run")]) == 0
    res = sweep(
        TINY_CFG,
        {"mu_norm": [1.0, 2.0], "d": [16, 20]},
        replicates=2,
        executor=SerialExecutor(),
        out=root / "sweep",
        batch_size=1,
        plot=False,
    )
    return {"root": root, "cfg": cfg, "state": states[0], "sweep": res}


def _same_state(a, b) -> bool:
    for k in ("step", "rows", "config", "engine", "label_noise_state"):
        if a[k] != b[k]:
            return False
    return all(np.array_equal(a[k], b[k]) for k in ("gamma", "rho")) and all(
        a[t].keys() == b[t].keys() and all(np.array_equal(a[t][k], b[t][k], equal_nan=True) for k in a[t])
        for t in ("history", "trace")
    )


@FUZZ
@given(data=st.data())
def test_corrupted_checkpoint_is_refused_or_identical(originals, tmp_path_factory, data):
    src = originals["root"] / "checkpoint.npz"
    raw = src.read_bytes()
    what, corrupt = data.draw(corruptions(len(raw)))
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.npz"
    path.write_bytes(corrupt(raw))
    try:
        state = load_checkpoint(path)
    except lnref.ConfigError as exc:
        assert "checkpoint" in str(exc) or str(path) in str(exc), (what, exc)
    else:
        assert _same_state(state, originals["state"]), what


@FUZZ
@given(data=st.data())
def test_corrupted_run_arrays_are_refused_or_identical(originals, tmp_path_factory, data):
    src = originals["root"] / "run"
    raw = (src / "arrays.npz").read_bytes()
    what, corrupt = data.draw(corruptions(len(raw)))
    folder = tmp_path_factory.mktemp("run") / "run"
    shutil.copytree(src, folder)
    (folder / "arrays.npz").write_bytes(corrupt(raw))
    _, ref = load_run(src)
    try:
        _, arrays = load_run(folder)
    except lnref.ConfigError as exc:
        assert "arrays.npz" in str(exc), (what, exc)
    else:
        assert arrays.keys() == ref.keys() and all(np.array_equal(arrays[k], ref[k], equal_nan=True) for k in ref)


@FUZZ
@given(data=st.data())
def test_corrupted_dataset_is_refused_or_identical(originals, tmp_path_factory, data):
    raw = (originals["root"] / "data.npz").read_bytes()
    what, corrupt = data.draw(corruptions(len(raw)))
    path = tmp_path_factory.mktemp("data") / "data.npz"
    path.write_bytes(corrupt(raw))
    ref = lnref.Dataset.load(originals["root"] / "data.npz").arrays()
    try:
        got = lnref.Dataset.load(path).arrays()
    except lnref.ConfigError as exc:
        assert "data.npz" in str(exc), (what, exc)
    else:
        assert got.keys() == ref.keys() and all(np.array_equal(got[k], ref[k]) for k in ref), what


def _values(res):
    return [[("nan" if isinstance(v, float) and math.isnan(v) else v) for v in r.values()] for r in res.rows]


@FUZZ
@given(data=st.data(), name=st.sampled_from(["sweep.csv", "sweep.json"]))
def test_corrupted_sweep_files_resume_to_the_same_rows_or_are_refused(originals, tmp_path_factory, data, name):
    """A damaged sweep.csv or sweep.json: resume either completes to the uninterrupted rows (garbled rows run
    again) or refuses with lnref's error and leaves the folder as it was."""
    ref = originals["sweep"]
    src = ref.out
    raw = (src / name).read_bytes()
    what, corrupt = data.draw(corruptions(len(raw)))
    folder = tmp_path_factory.mktemp("sweep") / "sweep"
    shutil.copytree(src, folder)
    (folder / name).write_bytes(corrupt(raw))
    before = _files(folder)
    try:
        res = sweep(
            TINY_CFG,
            ref.grid,
            replicates=ref.replicates,
            executor=SerialExecutor(),
            out=folder,
            resume=True,
            batch_size=1,
            plot=False,
        )
    except (lnref.ConfigError, lnref.io.OutputError) as exc:
        assert str(exc), what
        assert _files(folder) == before, what
    else:
        assert _values(res) == _values(ref), what
        assert (folder / "sweep.csv").read_bytes() == (src / "sweep.csv").read_bytes(), what


@FUZZ
@given(data=st.data())
def test_corrupted_config_toml_runs_or_is_refused(originals, tmp_path_factory, capsys, data):
    text = "".join(f"{a[2:].replace('-', '_')} = {b}\n" for a, b in zip(TINY[::2], TINY[1::2]))
    text += 'noise = "isotropic"\ntau = 0.1\n'
    raw = text.encode()
    what, corrupt = data.draw(corruptions(len(raw)))
    tmp = tmp_path_factory.mktemp("cfg")
    (tmp / "c.toml").write_bytes(corrupt(raw))
    out = tmp / "run"
    code = main(["run", "--config", str(tmp / "c.toml"), "--quiet", "--threads", "1", "--out", str(out)])
    err = capsys.readouterr().err
    if code == 2:
        _one_clean_line(err)
        assert not out.exists()
    else:
        assert code in (0, 1) and lnref.training.runs.run_status(out) == "complete", what


def test_cli_reports_damaged_inputs_with_exit_2(originals, tmp_path, capsys):
    """The CLI's side of the loaders: damaged checkpoint and sweep files end in exit 2, one line, no change."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(originals["cfg"].to_dict()))
    raw = (originals["root"] / "checkpoint.npz").read_bytes()
    (run / CHECKPOINT).write_bytes(raw[: len(raw) // 3])
    before = _files(run)
    assert main(["run", "--resume", "--quiet", "--out", str(run)]) == 2
    _one_clean_line(capsys.readouterr().err)
    assert _files(run) == before
    (run / "config.json").write_text("{not json")
    (run / CHECKPOINT).write_bytes(raw)
    assert main(["run", "--resume", "--quiet", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err)
    assert "config.json is not valid JSON" in err
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(originals["sweep"].out, sweep_dir)
    (sweep_dir / "sweep.csv").write_bytes(b"\xff\xfe garbage\n")
    before = _files(sweep_dir)
    flags = [
        *TINY,
        "--seed",
        "1",
        "--grid",
        "mu_norm=1.0,2.0",
        "--grid",
        "d=16,20",
        "--replicates",
        "2",
        "--workers",
        "1",
        "--quiet",
        "--resume",
        "--out",
        str(sweep_dir),
    ]
    assert main(["sweep", *flags]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err, "sweep")
    assert "sweep.csv" in err
    assert _files(sweep_dir) == before


def test_damaged_npy_header_is_an_input_error(originals, tmp_path):
    """Found by the fuzzer: zeroed bytes in an array's .npy header made NumPy raise tokenize.TokenError."""
    raw = bytearray((originals["root"] / "data.npz").read_bytes())
    raw[71:73] = b"\x00\x00"
    (tmp_path / "data.npz").write_bytes(bytes(raw))
    with pytest.raises(lnref.ConfigError, match=r"data\.npz"):
        lnref.Dataset.load(tmp_path / "data.npz")


# ------------------------------------------------------------------------------------------- the kernel cache
# Each case runs in a fresh interpreter on a COPY of the package (so editing it touches nothing else), with its
# own cache folder; the probe compiles one small cached kernel that inlines logistic_dloss.
_PROBE = (
    "import numpy as np\n"
    "from lnref.kernels import weights as k\n"
    "f = np.array([0.75, -1.5]); lo = np.empty(2); dl = np.empty(2)\n"
    "k.losses(f, np.ones(2), lo, dl)\n"
    "print(repr(dl.tolist()))\n"
)
# an edit of an inlined equation: the kernel's own file (kernels/weights.py) does not change
_EDIT = "\n\n@inline\ndef logistic_dloss(z):\n    return -0.25 - 0.0 * z\n"


def _package_copy(tmp: Path) -> Path:
    src = Path(lnref.__file__).parent
    shutil.copytree(src, tmp / "lnref", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


def _lnref_env(root: Path, cache: Path | str, home: Path) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LNREF_", "NUMBA_CACHE", "XDG_"))}
    env.update(
        PYTHONPATH=str(root),
        LNREF_CACHE_DIR=str(cache),
        HOME=str(home),
        XDG_CACHE_HOME=str(home),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _py(env: dict, *args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=600, cwd=env["PYTHONPATH"]
    )


def _unwritable_folder(tmp: Path) -> Path:
    """A folder lnref cannot create or write: a read-only folder, or (as root, where permissions do not stop
    writes) a path under a regular file."""
    import os

    ro = tmp / "readonly"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        (ro / "probe").touch()
    except OSError:
        return ro / "cache"
    (ro / "probe").unlink()
    os.chmod(ro, 0o755)
    (tmp / "a-file").write_text("not a folder")
    return tmp / "a-file" / "cache"


def test_unwritable_cache_degrades_to_no_cache(tmp_path):
    """Issue 24.1: with a cache folder that cannot be written (and no other place numba could fall back to),
    ``import lnref``, ``lnref --help`` and ``lnref cache clear`` work without a cache, one line saying why (they
    crashed with numba's "no locator available")."""
    root = _package_copy(tmp_path / "src")
    # numba's other fallbacks are closed too (a home under a regular file), the case where it used to crash
    (tmp_path / "homefile").write_text("")
    env = _lnref_env(root, _unwritable_folder(tmp_path), tmp_path / "homefile" / "home")
    (root / "lnref" / "__pycache__").write_text("")  # a source tree that cannot be written (an install)
    for args in (["-c", "import lnref"], ["-m", "lnref", "--help"], ["-m", "lnref", "cache", "clear"]):
        p = _py(env, *args)
        assert p.returncode == 0 and "Traceback" not in p.stderr, (args, p.stderr)
        assert p.stderr.count("\n") == 1 and "not cached" in p.stderr and "cannot write" in p.stderr, p.stderr


def test_unwritable_cache_never_falls_back_to_the_source_tree(tmp_path):
    """Issue 24.1: with the cache folder unwritable and the source tree writable (an editable clone), numba used
    to cache in the tree's __pycache__, keyed only by the kernel's own file: after an edit of an inlined equation
    a run used the old machine code.  Nothing may land there, and the edit must change the result."""
    root = _package_copy(tmp_path / "src")
    env = _lnref_env(root, _unwritable_folder(tmp_path), tmp_path / "home")
    first = _py(env, "-c", _PROBE)
    assert first.returncode == 0, first.stderr
    with open(root / "lnref" / "kernels" / "losses.py", "a") as fh:
        fh.write(_EDIT)
    second = _py(env, "-c", _PROBE)
    assert second.returncode == 0, second.stderr
    assert eval(second.stdout) == [-0.25, -0.25], (first.stdout, second.stdout)
    assert not list(root.rglob("*.nbi")) and not list((tmp_path / "home").rglob("*.nbi"))


def test_cache_is_keyed_on_inlined_equations_and_survives_damage(tmp_path):
    """Issue 24.1: a writable cache recompiles a kernel when an equation it inlines changes (and back), and a
    damaged cache entry is a miss: recompiled and rewritten, no pickle traceback."""
    root = _package_copy(tmp_path / "src")
    cache = tmp_path / "cache"
    env = _lnref_env(root, cache, tmp_path / "home")
    eqs = root / "lnref" / "kernels" / "losses.py"  # where logistic_dloss lives
    original = eqs.read_text()
    first = _py(env, "-c", _PROBE)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))
    entries = sorted(cache.rglob("*.nb[ic]"))
    for i, p in enumerate(entries):  # garbage, truncated and empty files
        data = p.read_bytes()
        p.write_bytes([b"\x80\x04garbage" * 3, data[: len(data) // 2], b""][i % 3])
    damaged = _py(env, "-c", _PROBE)
    assert damaged.returncode == 0 and damaged.stderr == "" and damaged.stdout == first.stdout, damaged.stderr
    import pickle

    for p in cache.rglob("*.nbi"):  # rewritten whole
        with open(p, "rb") as fh:
            pickle.load(fh)
            pickle.loads(fh.read())
    eqs.write_text(original + _EDIT)
    edited = _py(env, "-c", _PROBE)
    assert eval(edited.stdout) == [-0.25, -0.25], edited.stderr
    eqs.write_text(original)
    again = _py(env, "-c", _PROBE)
    assert again.stdout == first.stdout, again.stderr


# ------------------------------------------------------------------------------ divergence right after a logged step
# the very first step overflows (eta ||mu||^2 is inf): the run stops at step 0, which was just logged
DIVERGE_AT_0 = dict(n=8, d=16, m=2, steps=20, n_test=4, eta=10.0, mu_norm=1e154, log_every=1)


def test_a_divergence_right_after_a_logged_step_logs_that_step_once(tmp_path, capsys):
    """Issue 24.4: the step a run stops at is logged once (Result.history, metrics.csv, arrays.npz ``step``), so
    history.png is drawn; a sweep of it reports the state it stopped at."""
    cfg = lnref.Config(**DIVERGE_AT_0)
    with pytest.raises(lnref.DivergedError) as info:
        lnref.train(cfg, threads=1)
    res = info.value.result
    assert res.steps_done == 0 and res.history["step"].tolist() == [0]
    assert all(len(v) == 1 for v in res.history.values()) and all(len(v) == 1 for v in res.trace.values())
    flags = [a for k, v in DIVERGE_AT_0.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    out = tmp_path / "run"
    assert main(["run", *flags, "--quiet", "--threads", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "history.png was not written" not in err and "Traceback" not in err, err
    assert (out / "metrics.csv").read_text().count("\n") == 2  # the header and step 0
    _, arrays = load_run(out)
    assert arrays["step"].tolist() == [0]
    row = sweep(cfg, {"tau": [0.0]}, executor=SerialExecutor()).rows[0]
    assert row["steps_done"] == 0 and row["diverged"] and math.isfinite(row["loss"])


class _StuckEngine:
    """An engine whose every next step is non-finite (advance takes none)."""

    def advance(self, k, mults):
        return 0

    def forward(self):
        return np.zeros(2)


def test_run_loop_never_logs_a_step_twice_also_after_a_resume():
    from lnref.training import run_loop

    cfg = lnref.Config(n=2, d=4, m=1, steps=10, n_test=0)
    calls, finals = [], []
    for start, steps, logged in ((0, [0, 5, 10], None), (5, [10], 5)):
        calls.clear()
        finals.clear()
        t, diverged, _ = run_loop(
            _StuckEngine(),
            cfg,
            steps,
            start,
            np.ones(2),
            None,
            lambda t, f, final: calls.append((t, final)),
            stopped_at_logged=lambda t, f: finals.append(t),
            logged=logged,
        )
        assert (t, diverged) == (start, True)
        assert calls == ([(0, False)] if logged is None else []) and finals == [start]


# ------------------------------------------------------------------------------------------- grids that repeat
@pytest.mark.parametrize(
    "grid, named",
    [
        ("n = [10, 10.0]", "10 and 10.0"),
        ("mu_norm = [0, 0.5, 1, 1.0]", "1 and 1.0"),
        ("tau = [0.0, -0.0, 0.1]", "0.0 and -0.0"),
        ('d = ["16:32:16", 32.0]', None),
    ],
)
def test_a_grid_repeating_after_conversion_is_refused_before_any_run(tmp_path, capsys, grid, named):
    """Issue 24.3: values that are the same once converted (TOML [grid], the CLI and --resume) are refused before
    anything runs or is written, naming them (they used to run every cell, then crash with no sweep_mean.csv)."""
    toml = tmp_path / "g.toml"
    if named is None:  # a range string and a list cannot be mixed in one field: the CLI does that
        args = ["--grid", "d=16:32:16", "--grid", "mu_norm=1,1e0"]
        named = "1.0 is given twice"
    else:
        toml.write_text(f"[grid]\n{grid}\n")
        args = ["--config", str(toml)]
    out = tmp_path / "s"
    code = main(["sweep", *TINY, "--quiet", "--workers", "1", *args, "--out", str(out)])
    err = capsys.readouterr().err
    _one_clean_line(err, "sweep")
    assert code == 2 and "repeated" in err and named in err, err
    assert not out.exists()
    with pytest.raises(lnref.ConfigError, match="repeated"):
        sweep(TINY_CFG, {"n": [10, 10.0]}, executor=SerialExecutor())


# ------------------------------------------------------------------------------------------- smaller items (24.5)
def test_export_of_an_endless_trajectory_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "fx.npz"
    assert main(["export", "--steps", str(10**12), "--checkpoints", "0,1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err, "export")
    assert "too many" in err and "years" in err, err
    assert not out.exists() and not list(tmp_path.iterdir())


def _forged_npy(shape=(10**12,)) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def test_an_array_header_claiming_more_than_the_file_holds_is_refused(tmp_path):
    """Issue 24.5: a 300-byte file whose .npy header claims 10^12 elements: a clear error, not MemoryError."""
    import zipfile

    from lnref.oracle.cli import read_theirs
    from lnref.oracle.fixtures import load_fixture

    npz, npy = tmp_path / "forged.npz", tmp_path / "forged.npy"
    with zipfile.ZipFile(npz, "w") as z:
        z.writestr("W.npy", _forged_npy())
        z.writestr("__meta__.npy", _forged_npy((10**6, 10**6)))
    npy.write_bytes(_forged_npy())
    assert npz.stat().st_size < 1000
    for path in (npz, npy):
        for load in (load_fixture, read_theirs):
            with pytest.raises(lnref.ConfigError, match=r"claims shape|single array"):
                load(path)


def test_a_toml_holding_only_a_grid_is_refused_by_run(tmp_path, capsys):
    toml = tmp_path / "grid.toml"
    toml.write_text("[grid]\nmu_norm = [1.0, 2.0]\n")
    out = tmp_path / "run"
    assert main(["run", "--config", str(toml), "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err)
    assert "only a [grid] table" in err and "lnref sweep --config" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["run", *TINY],
        ["sweep", *TINY, "--grid", "tau=0,0.1", "--workers", "1"],
        ["export", *TINY],
        ["reproduce", "--quick"],
    ],
)
def test_a_bad_lnref_threads_is_refused_up_front_by_every_command(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setenv("LNREF_THREADS", "abc")
    out = tmp_path / ("out.npz" if command[0] == "export" else "out")
    assert main([*command, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err, command[0])
    assert "LNREF_THREADS='abc' is not allowed" in err, err
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_history_png_is_drawn_keeps_the_complete_run(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib", reason="pip install 'lnref[plot]'")
    import lnref.plotting

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lnref.plotting, "plot_history", interrupted)
    out = tmp_path / "run"
    assert main(["run", *TINY, "--quiet", "--threads", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "lnref run: interrupted" not in captured.err and f"wrote {out}" in captured.out, captured
    load_run(out)
    assert not list(tmp_path.glob(".*"))


def _checkpointed(tmp_path: Path) -> tuple[Path, dict]:
    """A resumable run folder (config.json and a checkpoint of step 2, as a killed run leaves) and its state."""
    cfg = lnref.Config(n=8, d=16, m=2, steps=5, n_test=4, seed=1, log_every=1)
    states = []
    lnref.train(
        cfg,
        threads=1,
        checkpoint_every=2,
        on_checkpoint=lambda s: states.append({k: (v.copy() if hasattr(v, "copy") else v) for k, v in s.items()}),
    )
    folder = tmp_path / "run"
    folder.mkdir()
    from lnref.io import write_json

    write_json(folder / "config.json", cfg.to_dict())
    save_checkpoint(folder / CHECKPOINT, states[0])
    return folder, states[0]


def test_resume_without_config_json_says_so(tmp_path, capsys):
    folder, _ = _checkpointed(tmp_path)
    (folder / "config.json").unlink()
    assert main(["run", "--resume", "--quiet", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err)
    assert "config.json is missing" in err, err


@pytest.mark.parametrize("damage", ["W shape", "W nan", "gamma nan", "rho shape"])
def test_a_checkpoint_with_bad_arrays_is_refused_and_never_completed(tmp_path, capsys, damage):
    """Issue 24.5: W of the wrong shape (a traceback before) and NaN weights (accepted before, the folder marked
    complete) are refused, naming the array; the folder stays as it was."""
    folder, state = _checkpointed(tmp_path)
    key, how = damage.split()
    a = state[key]
    state[key] = a[..., :-1].copy() if how == "shape" else np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a)
    save_checkpoint(folder / CHECKPOINT, state)
    before = _files(folder)
    with pytest.raises(lnref.ConfigError, match=f"{key} has shape|{key} holds non-finite"):
        load_checkpoint(folder / CHECKPOINT)
    assert main(["run", "--resume", "--quiet", "--threads", "1", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err)
    assert "damaged" in err and key in err, err
    assert _files(folder) == before


def test_an_overflowing_mu_norm_is_named_not_eta():
    import warnings

    cfg = lnref.Config(n=8, d=16, m=2, steps=5, n_test=4, mu_norm=1e200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warning while drawing the data
        with pytest.raises(lnref.DivergedError) as info:
            lnref.train(cfg, threads=1)
    msg = str(info.value)
    assert "mu_norm" in msg and "overflows" in msg and "smaller eta" not in msg, msg
