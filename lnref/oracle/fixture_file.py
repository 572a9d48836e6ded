"""Fixtures: self-describing .npz files of an lnref trajectory that other implementations check themselves against.

A fixture holds the training data, the initial weights (and biases), the config and, at a few checkpoint steps,
the weights (and biases), the coefficients, the loss and the gradient, all computed by the weight engine (the
ground truth; bit-identical to :func:`lnref.train`).  The file format (``lnref export`` writes it,
:func:`load_fixture` reads it):

================  ==============  ================================================================================
array             shape, dtype    meaning
================  ==============  ================================================================================
``mu``            (d,) f8         signal vector
``xi``            (n, d) f8       noise patches
``y``             (n,) f8         true labels (+-1); the signal patch of sample i is y_i * mu
``y_obs``         (n,) f8         observed labels (+-1), the labels the loss uses
``W0``            (2, m, d) f8    initial weights; index 0 holds j = +1
``steps``         (K,) i8         checkpoint steps, increasing, the first may be 0
``W``             (K, 2, m, d)    W(t) at each checkpoint
``gamma``         (K, 2, m)       signal coefficients gamma_{j,r}(t) (SPEC.md section 4)
``rho``           (K, 2, m, n)    noise coefficients rho_{j,r,i}(t)
``loss``          (K,) f8         L(W(t)) = (1/n) sum_i l(y_obs_i f(W(t), x_i)) (observed labels, no eps)
``grad``          (K, 2, m, d)    gradient of the objective of step t -> t+1 at W(t): grad L for plain GD, the
                                  label-noise loss with eps[t] for label-noise GD; with a training method (config
                                  ``loss`` != 'logistic', SPEC.md section 9) the method's loss of step t (ELR: with
                                  the targets after step t's update, if t is an update step)
``method_loss``   (K,) f8         config ``loss`` != 'logistic' only: the method's mean loss of step t at W(t),
                                  observed labels (as ``history["method_loss"]``; ELR: after step t's target
                                  update); ``loss``
                                  stays the plain logistic L(W(t)), so fixtures of different methods compare
``target``        (K, 2, n) f8    ``loss='elr'`` only: ELR's targets at each checkpoint BEFORE step t's update (row
                                  0: class +1, row 1: class -1; zeros at step 0; updated at t = 0, period, ...)
``spread``        (K, 3) f8       the trajectory's measured sensitivity: relative distance max|W' - W| / max|W| at
                                  each checkpoint of lnref's NumPy replay (float64), of a rerun from W0 perturbed
                                  by 4 ulps, and of a float32 replay (:mod:`lnref.oracle.tolerances`)
``eps``           (T + 1, n) f8   label-noise GD only: eps[t] (+-1) multiplies y_obs at step t -> t+1; row T is
                                  the draw the next step would use (it defines ``grad`` at t = T)
``b0``            (2, m) f8       bias=True only: initial biases b_{j,r}(0), laid out like W0 (SPEC.md section 7)
``b``             (K, 2, m) f8    bias=True only: the biases at each checkpoint
``grad_b``        (K, 2, m) f8    bias=True only: dL/db at each checkpoint (same objective as ``grad``)
``mask``          (T + 1, n) f8   selection algorithms only ('select_retrain', 'truncated_gce'; SPEC.md section 9):
                                  mask[t] (0/1) is the sample mask S of step t -> t+1 (a sample outside S gets the
                                  label multiplier 0; all ones before a selection); row T is the mask the next step
                                  would use (it defines ``grad`` at t = T)
``step_scale``    (T + 1,) f8     selection algorithms only: the step-size factor of step t -> t+1, n/|S| for a mean
                                  over |S| ('select_retrain' after its selection), else 1 ('truncated_gce', whose
                                  mean stays over n; an empty S); the step is W - eta step_scale[t] grad_n, grad_n
                                  the masked mean over n
``reset_step``    (1,) i8         'select_retrain' only: the step whose update starts from W0 (and b0) again
                                  (select_then='retrain': the selection step), -1 when there is none; W at that
                                  checkpoint is the state before the reset
``W0_2`` ...      like W0 ...     'coteaching' only (schema 6): the second network (stream 8), its arrays named
                                  like network 1's with the suffix ``_2``: ``W0_2``, ``W_2``, ``gamma_2``,
                                  ``rho_2``, ``loss_2``, ``grad_2``, ``mask_2`` (T + 1, n), and with bias=True
                                  ``b0_2``, ``b_2``, ``grad_b_2``; ``mask`` is the mask network 1 trains on
                                  (chosen by network 2) and ``mask_2`` network 2's (chosen by network 1);
                                  ``step_scale`` (n/|S|, |S| = int((1 - R(t)) n)) is both networks'
================  ==============  ================================================================================

The network is the config's (SPEC.md section 7): ``bias``, ``patch_reduce`` and ``output_scale`` are config fields
(the papers' network: no bias, patch sum, output scale 1/m), and ``loss``, ``grad`` and ``grad_b`` are those of
that network (lnref.loss / lnref.gradients with b=, output_scale=, patch_reduce=).  A Conv1d-style model with
bias, PyTorch's initialisation, the mean over patches and summed filters is the config ``bias=True, init='torch',
patch_reduce='mean', output_scale=1``; ``init`` only decides how W0 and b0 were drawn.

The ``__meta__`` entry is JSON: ``kind`` = "lnref.fixture", ``fixture_schema``, the resolved ``config``, ``seed``,
``total_steps`` T, ``w0_edit`` (how W0 differs from ``init_weights(config)``, if it does), the package
``versions``, the dtype, shape and SHA-256 of every array (every array must be listed), and ``meta_sha256``, the
SHA-256 of the metadata itself (canonical JSON without that key), so an edited config or hash list is detected.
No pickles: ``np.load(path, allow_pickle=False)`` reads everything.  Only regular files are opened.

By default the export zeroes the signal coordinate of the last filter of each class in W0 (mu is along e_1): its
inner products with every signal patch are then exactly 0 and stay 0 under the exact dynamics, so an
implementation with sigma'(0) != 0 shows (SPEC.md section 2).  With biases the export also zeroes those filters'
b0, so their signal pre-activations are exactly 0 at step 0 (later the bias moves them off 0).

To replay label-noise GD elsewhere, use ``eps[t] * y_obs`` in place of ``y_obs`` at step t (the label-noise loss
l(eps_i y_obs_i f_i) is the plain loss with those labels).

To replay a selection algorithm elsewhere, train step t on the samples with ``mask[t] == 1`` only, with the mean
over |S| (``step_scale[t]`` = n/|S|) or over n (``step_scale[t]`` = 1): W(t+1) = W(t) - eta step_scale[t]
(1/n) sum_{i: mask[t, i] = 1} grad l_i; at ``reset_step`` the step starts from W0 (and b0).  ``grad`` at a
checkpoint is that step's gradient, step_scale[t] times the masked mean over n, at the state the step starts from
(W0 at ``reset_step``).

To replay co-teaching elsewhere, train both networks from ``W0`` and ``W0_2``: at step t each computes its
margins y_obs f, keeps the int((1 - R(t)) n) largest (ties to the lower sample index), R(t) = forget_rate
min(t / T_k, 1), and the OTHER network takes one GD step on the mean loss over them; ``mask`` / ``mask_2`` record
lnref's choices, and ``lnref compare`` judges both trajectories (arrays ``W`` and ``W_2`` of their file).
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..config import Config, ConfigError
from ..data import Dataset
from ..io import OutputError, atomic_write, versions
from .fixture_data import SECOND_NETWORK, Fixture, FixtureError

__all__ = [
    "FIXTURE_KIND",
    "FIXTURE_SCHEMA",
    "READABLE_SCHEMAS",
    "save_fixture",
    "load_fixture",
    "read_npz",
    "check_regular_file",
    "check_out_path",
    "array_sha",
    "meta_sha",
]

FIXTURE_KIND = "lnref.fixture"
FIXTURE_SCHEMA = 6
#: schemas this lnref reads: 6 (co-teaching: its second network's arrays W0_2, W_2, ..., mask_2),
#: 5 (selection algorithms of SPEC.md section 9: arrays mask, step_scale, reset_step),
#: 4 (training methods of SPEC.md section 9: arrays method_loss, and target for ELR),
#: 3 (the conventions of SPEC.md section 7, arrays b0/b/grad_b with bias=True) and 2 (the
#: papers' network only; the same arrays otherwise)
READABLE_SCHEMAS = (2, 3, 4, 5, 6)


def array_sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def meta_sha(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_out_path(path: str | os.PathLike, force: bool) -> Path:
    """Refuse an output file path that cannot be written, before any work: a folder, an existing file without
    ``force``, a missing or non-folder parent."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name such as {path / 'fixture.npz'}")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputError(f"{path} exists; choose another file or pass --force (force=True) to overwrite it")
        if not path.is_file():
            raise OutputError(f"{path} exists and is not a regular file; choose another file name")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a folder")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {parent} is not writable")
    return path


def save_fixture(fixture: Fixture, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``fixture`` to ``path`` (.npz) atomically; refuse an existing file unless ``force``."""
    path = check_out_path(path, force)
    arrays = {k: np.ascontiguousarray(v) for k, v in fixture.arrays().items()}
    meta = {
        "kind": FIXTURE_KIND,
        "fixture_schema": FIXTURE_SCHEMA,
        "config": fixture.config.to_dict(),
        "seed": fixture.config.seed,
        "total_steps": fixture.total_steps,
        "producer": fixture.meta.get("producer", "lnref weight engine"),
        "w0_edit": fixture.meta.get("w0_edit"),
        "versions": versions(),
        "arrays": {
            k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": array_sha(v)} for k, v in arrays.items()
        },
    }
    meta["meta_sha256"] = meta_sha(meta)
    buf = _io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


_REQUIRED = ("mu", "xi", "y", "y_obs", "W0", "steps", "W", "gamma", "rho", "loss", "grad", "spread")
_OPTIONAL = ("eps", "b0", "b", "grad_b", "method_loss", "target", "mask", "step_scale", "reset_step")


def check_regular_file(path: str | os.PathLike, what: str) -> Path:
    """Refuse a path that does not exist or is not a regular file (a FIFO, a device, a folder) before opening."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FixtureError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise FixtureError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        )
        raise FixtureError(f"{what} {path} is {kind}; give a .npz file")
    return path


def read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """All arrays of a .npz (no pickles), or FixtureError naming the file and the problem."""
    path = check_regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            if fh.read(6) == b"\x93NUMPY":  # a bare .npy: refused without reading its (claimed) array
                raise ValueError("it holds a single array (.npy), not a .npz archive")
            fh.seek(0)
            z = np.load(fh, allow_pickle=False)
            if not hasattr(z, "files"):
                raise ValueError("it holds a single array, not a .npz archive")
            with z:
                for k in z.files:
                    _check_member_size(z, k)
                return {k: z[k] for k in z.files}
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        UnicodeError,
        zipfile.LargeZipFile,
        RuntimeError,
        SyntaxError,
    ) as exc:
        raise FixtureError(
            f"{what} {path} is damaged or not a .npz of plain arrays ({type(exc).__name__}: {exc})"
        ) from None
    except MemoryError:
        raise FixtureError(f"{what} {path} is damaged or too large: its arrays do not fit in memory") from None


def _check_member_size(z, key: str) -> None:
    """Refuse an array whose header claims more data than its member of the archive holds (a damaged or forged
    header would otherwise make NumPy allocate that much: 10^12 elements claimed by a 300-byte file)."""
    name = key if key in z.zip.namelist() else f"{key}.npy"
    info = z.zip.getinfo(name)
    with z.zip.open(name) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        header = member.tell()
    need = math.prod(shape) * dtype.itemsize
    if need > info.file_size - header:
        raise ValueError(
            f"array {key!r} claims shape {tuple(shape)} of {dtype} ({need} bytes) but holds "
            f"{info.file_size - header} bytes"
        )


def load_fixture(path: str | os.PathLike) -> Fixture:
    """Read and validate a fixture written by ``lnref export`` / :func:`save_fixture`.

    Checked before anything is used: a regular file, a readable .npz without pickles, the metadata's own
    SHA-256, every array listed in the metadata with a matching SHA-256 (and no unlisted array), float64 arrays
    (complex, float16, ... refused), then shapes, labels and the config.

    Raises
    ------
    FixtureError (an lnref.ConfigError)
        The file is not a usable fixture (the message names the file and says what is wrong).
    """
    path = Path(path)
    arrays = read_npz(path, "fixture file")
    if "__meta__" not in arrays:
        raise FixtureError(f"{path} is not an lnref fixture (no metadata); write one with `lnref export`")
    try:
        raw = arrays.pop("__meta__")
        if raw.dtype.kind != "U" or raw.shape != ():
            raise ValueError("not a JSON string")
        meta = json.loads(str(raw))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (ValueError, TypeError) as exc:
        raise FixtureError(f"{path}: the fixture metadata is damaged ({exc})") from None
    if meta.get("kind") != FIXTURE_KIND:
        raise FixtureError(
            f"{path} is not an lnref fixture (metadata kind={meta.get('kind')!r}, expected "
            f"{FIXTURE_KIND!r}); write one with `lnref export`"
        )
    if meta.get("fixture_schema") not in READABLE_SCHEMAS:
        raise FixtureError(
            f"{path} has fixture_schema={meta.get('fixture_schema')!r}; this lnref reads schemas "
            f"{', '.join(map(str, READABLE_SCHEMAS))}: export the fixture again with this lnref"
        )
    if meta.get("meta_sha256") != meta_sha(meta):
        raise FixtureError(
            f"{path}: the fixture metadata does not match its SHA-256 (config or hash list edited, "
            "or the file is damaged); export the fixture again"
        )
    listed = meta.get("arrays")
    if not isinstance(listed, dict):
        raise FixtureError(f"{path}: the fixture metadata lists no arrays")
    unlisted = sorted(set(arrays) - set(listed))
    if unlisted:
        raise FixtureError(
            f"{path}: array(s) {', '.join(map(repr, unlisted))} are not listed in the metadata's "
            "hash list (file edited)"
        )
    for k, info in listed.items():
        if k not in arrays:
            raise FixtureError(f"{path}: array {k!r} listed in the metadata is missing")
        a = arrays[k]
        want = "int64" if k in ("steps", "reset_step") else "float64"
        if a.dtype != np.dtype(want):
            raise FixtureError(f"{path}: fixture array {k!r} must be {want}, got {a.dtype}")
        if not isinstance(info, dict) or array_sha(a) != info.get("sha256"):
            raise FixtureError(f"{path}: array {k!r} does not match its SHA-256 (file corrupted or edited)")
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise FixtureError(f"{path} lacks the fixture array(s) {', '.join(missing)}")
    try:
        cfg = Config.from_dict(meta["config"])
        data = Dataset(arrays["mu"], arrays["xi"], arrays["y"], arrays["y_obs"])
        if meta["fixture_schema"] < 3 and not cfg.paper_network:
            raise ConfigError("a schema-2 fixture can only hold the papers' network; export it again")
        if meta["fixture_schema"] < 4 and cfg.loss != "logistic":
            raise ConfigError(
                f"a schema-{meta['fixture_schema']} fixture can only hold the logistic loss; export it again"
            )
        if meta["fixture_schema"] < 5 and cfg.algorithm not in ("gd", "label_noise_gd"):
            raise ConfigError(
                f"a schema-{meta['fixture_schema']} fixture cannot hold algorithm={cfg.algorithm!r}; export it again"
            )
        if meta["fixture_schema"] < 6 and cfg.algorithm == "coteaching":
            raise ConfigError(
                f"a schema-{meta['fixture_schema']} fixture cannot hold algorithm='coteaching'; export it again"
            )
        reset = arrays.get("reset_step", -1)
        return Fixture(
            cfg,
            data,
            arrays["W0"],
            arrays["steps"],
            arrays["W"],
            arrays["gamma"],
            arrays["rho"],
            arrays["loss"],
            arrays["grad"],
            arrays.get("eps"),
            arrays["spread"],
            meta,
            arrays.get("b0"),
            arrays.get("b"),
            arrays.get("grad_b"),
            arrays.get("method_loss"),
            arrays.get("target"),
            arrays.get("mask"),
            arrays.get("step_scale"),
            reset,
            **{k: arrays.get(k) for k in SECOND_NETWORK},
        )
    except (ConfigError, KeyError, TypeError) as exc:
        raise FixtureError(f"{path}: invalid fixture: {exc}") from None
