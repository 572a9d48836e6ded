"""Sweeps: Cartesian grids of runs over any Config fields, on any ``concurrent.futures.Executor``.

``lnref.sweep(base, {"mu_norm": [...], "d": [...]}, replicates=10)`` runs every (cell, replicate) of the grid
and returns a :class:`SweepResult`; with ``out=`` it also writes

- ``sweep.csv``: tidy, one row per (cell, replicate), appended (whole lines, flushed and fsynced) as batches
  finish, and rewritten sorted by (cell, replicate) at the end;
- ``sweep_mean.csv``: per cell, the mean and standard error of every metric over the replicates;
- ``sweep.json``: base config, grid, replicates, root seed, metrics, versions;
- ``heatmap_<metric>.png`` for two-field grids when matplotlib is installed.

Seeds: the run of cell c (row-major index into the grid) and replicate r uses the seed
``SeedSequence(root, spawn_key=(c, r)).generate_state(1, uint64) >> 1`` (63 bits), with root = base.seed, so
a result does not depend on which worker ran it or in which order.  Final metrics do not depend on logging,
so every run is made with ``log_every=0, log_points=0`` (only steps 0 and ``steps`` are evaluated).
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ._sweep_worker import BOOL_METRICS, INT_METRICS, METRICS, init_worker, run_batch
from .config import FIELD_TYPES, Config, ConfigError
from .io import OutputError, atomic_write, versions, write_json, write_text

__all__ = ["sweep", "SweepResult", "SerialExecutor", "cell_seed", "parse_grid_item", "validate_grid",
           "DEFAULT_METRICS", "METRICS", "register"]

DEFAULT_METRICS = ("test_acc", "test_error", "train_acc", "train_acc_clean", "train_acc_noisy", "loss",
                   "gamma_max", "rho_bar_max_clean", "rho_bar_max_noisy", "steps_done", "diverged")
TIDY_NAME, MEAN_NAME, META_NAME = "sweep.csv", "sweep_mean.csv", "sweep.json"
# fields a grid may not range over: replicates own the seed; logging does not change final metrics
_REFUSED = {"seed": "the seed is derived per cell and replicate from the base seed; use replicates=",
            "log_every": "final metrics do not depend on logging", "log_points": "final metrics do not depend "
                                                                                "on logging"}


# ----------------------------------------------------------------------------------------------- executors
class SerialExecutor(cf.Executor):
    """Runs every task in the calling process at submit time (for tests, debugging and ``--workers 1``)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut


def process_executor(workers: int | None = None) -> cf.ProcessPoolExecutor:
    """A spawn-context process pool (DESIGN.md: OpenMP is not fork-safe) with 1 numba thread per worker."""
    import multiprocessing
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=init_worker, initargs=(1,))


# ----------------------------------------------------------------------------------------------- grids
def cell_seed(root: int, cell: int, replicate: int) -> int:
    """The 63-bit seed of (cell, replicate) derived from the root seed (independent of scheduling)."""
    state = np.random.SeedSequence(int(root), spawn_key=(int(cell), int(replicate))).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def _convert(name: str, value: Any) -> Any:
    typ = FIELD_TYPES[name]
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        try:
            if typ is bool:
                if text.lower() in ("true", "1", "yes", "on"):
                    return True
                if text.lower() in ("false", "0", "no", "off"):
                    return False
                raise ValueError(text)
            if typ is int:
                f = float(text)
                if not f.is_integer():
                    raise ValueError(text)
                return int(f)
            return float(text)
        except ValueError:
            raise ConfigError(f"grid {name}: {value!r} is not a valid {typ.__name__}") from None
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    return value


def parse_grid_item(text: str) -> tuple[str, list[Any]]:
    """Parse ``FIELD=START:STOP:STEP`` (inclusive range) or ``FIELD=V1,V2,...`` into (field, values).

    Range values are START + k STEP for k = 0..round((STOP - START)/STEP), rounded to 12 significant digits
    so that ``0:9.9:0.1`` gives 0.1, 0.2, ... exactly as typed.
    """
    if "=" not in text:
        raise ConfigError(f"--grid {text!r}: expected FIELD=START:STOP:STEP or FIELD=V1,V2,...")
    name, _, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if name not in FIELD_TYPES:
        raise ConfigError(f"grid field {name!r} is not a Config field; allowed: {', '.join(sorted(FIELD_TYPES))}")
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"grid {name}: no values given")
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise ConfigError(f"grid {name}={spec!r}: a range is START:STOP:STEP (inclusive)")
        try:
            start, stop, step = (float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"grid {name}={spec!r}: START, STOP and STEP must be numbers") from None
        if not (math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)) or step <= 0 or stop < start:
            raise ConfigError(f"grid {name}={spec!r}: need finite START <= STOP and STEP > 0")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        if count > 10**6:
            raise ConfigError(f"grid {name}={spec!r}: {count} values; at most 10^6 are allowed")
        vals = [float(f"{start + k * step:.12g}") for k in range(count)]
        if FIELD_TYPES[name] is int:
            vals = [_convert(name, repr(v)) for v in vals]
        return name, vals
    return name, [_convert(name, v) for v in spec.split(",")]


def _grid_from_toml(doc: Mapping[str, Any], source: str) -> dict[str, list[Any]]:
    grid = doc.get("grid", doc)
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{source}: [grid] must be a table of FIELD = [values] or FIELD = 'START:STOP:STEP'")
    out: dict[str, list[Any]] = {}
    for name, spec in grid.items():
        if isinstance(spec, str):
            k, vals = parse_grid_item(f"{name}={spec}")
            out[k] = vals
        elif isinstance(spec, list):
            out[name] = list(spec)
        else:
            raise ConfigError(f"{source}: grid {name} = {spec!r}: give a list or a 'START:STOP:STEP' string")
    return out


def validate_grid(base: Config, grid: Mapping[str, Sequence[Any]]) -> tuple[list[str], list[tuple]]:
    """Check a grid and build every cell's Config up front (so a bad cell fails before anything runs).

    Returns
    -------
    fields : list of str
    cells : list of tuple, one per cell in row-major order (the last field varies fastest)

    Raises
    ------
    ConfigError
        Unknown or refused field, empty or duplicated value list, or a cell whose Config is invalid (the message
        names the cell).
    """
    if not isinstance(base, Config):
        raise ConfigError(f"base_config must be an lnref.Config, got {type(base).__name__}")
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError("grid must be a non-empty mapping field -> list of values")
    fields = []
    lists = []
    for name, values in grid.items():
        if name not in FIELD_TYPES:
            raise ConfigError(f"grid field {name!r} is not a Config field; allowed: "
                              f"{', '.join(sorted(set(FIELD_TYPES) - set(_REFUSED)))}")
        if name in _REFUSED:
            raise ConfigError(f"grid over {name!r} is not allowed: {_REFUSED[name]}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ConfigError(f"grid {name}={values!r}: give a list of values")
        values = [_convert(name, v) for v in values]
        if not values:
            raise ConfigError(f"grid {name}: the list of values is empty; give at least one value")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"grid {name}: values are repeated ({values!r}); each cell must be distinct")
        fields.append(name)
        lists.append(values)
    cells = list(itertools.product(*lists))
    for index, values in enumerate(cells):
        try:
            base.replace(**dict(zip(fields, values)))
        except ConfigError as exc:
            desc = ", ".join(f"{k}={v!r}" for k, v in zip(fields, values))
            raise ConfigError(f"grid cell {index} ({desc}) is invalid: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"grid cell {index}: {exc}") from None
    return fields, cells


# ----------------------------------------------------------------------------------------------- CSV
def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def _parse_value(column: str, text: str) -> Any:
    if column in ("cell", "replicate", "seed") or column in INT_METRICS:
        return int(text)
    if column in BOOL_METRICS:
        return text == "true"
    if column in FIELD_TYPES:
        return _convert(column, text) if FIELD_TYPES[column] is not str else text
    return float(text)


def _csv_line(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_fmt(v) for v in values])
    return buf.getvalue()


def _read_tidy(path: Path, columns: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Complete rows of an interrupted tidy CSV, and the byte length of its complete part.

    A trailing line without its newline (a write cut short) or with the wrong number of fields is ignored.
    """
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1  # bytes up to and including the last newline
    lines = raw[:end].decode().splitlines()
    if not lines:
        return [], 0
    header = next(csv.reader([lines[0]]))
    if header != columns:
        raise OutputError(f"{path}: its columns {header} differ from this sweep's {columns}; "
                          "resume only with the same grid and metrics, or use --force")
    rows = []
    good = len(lines[0]) + 1
    for line in lines[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != len(columns):
            break
        try:
            rows.append({c: _parse_value(c, t) for c, t in zip(columns, fields)})
        except ValueError:
            break
        good += len(line.encode()) + 1
    return rows, good


# ----------------------------------------------------------------------------------------------- result
@dataclass
class SweepResult:
    """Rows of a finished sweep (one per cell and replicate, sorted by cell then replicate).

    Attributes
    ----------
    base : Config
    grid : dict field -> list of values
    fields : list of str
    replicates : int
    metrics : tuple of str
    rows : list of dict
        ``cell``, ``replicate``, ``seed``, the grid values, then the metrics.
    out : Path or None
    wall_seconds : float
    """

    base: Config
    grid: dict[str, list[Any]]
    fields: list[str]
    replicates: int
    metrics: tuple[str, ...]
    rows: list[dict[str, Any]]
    out: Path | None = None
    wall_seconds: float = 0.0
    skipped: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return ["cell", "replicate", "seed"] + self.fields + list(self.metrics)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.grid[f]) for f in self.fields)

    def values(self, metric: str) -> np.ndarray:
        """Metric as an array of shape ``grid shape + (replicates,)`` (float; bools as 0/1)."""
        if metric not in self.metrics:
            raise ConfigError(f"metric {metric!r} is not in this sweep; it has {', '.join(self.metrics)}")
        out = np.full((int(np.prod(self.shape)), self.replicates), math.nan)
        for row in self.rows:
            out[row["cell"], row["replicate"]] = float(row[metric])
        return out.reshape(self.shape + (self.replicates,))

    def mean(self, metric: str) -> np.ndarray:
        """Mean over the replicates where the metric is defined (NaN where none is), shape = grid shape.

        (E.g. ``train_acc_noisy`` is NaN in a run without mislabelled samples.)
        """
        v = self.values(metric)
        ok = ~np.isnan(v)
        count = ok.sum(axis=-1)
        total = np.where(ok, v, 0.0).sum(axis=-1)
        return np.where(count > 0, total / np.maximum(count, 1), math.nan)

    def sem(self, metric: str) -> np.ndarray:
        """Standard error of that mean, std(ddof=1)/sqrt(k) over the k defined replicates (NaN when k < 2)."""
        v = self.values(metric)
        ok = ~np.isnan(v)
        count = ok.sum(axis=-1)
        dev = np.where(ok, v - self.mean(metric)[..., None], 0.0)
        var = (dev * dev).sum(axis=-1) / np.maximum(count - 1, 1)
        return np.where(count > 1, np.sqrt(var / np.maximum(count, 1)), math.nan)

    def aggregate(self) -> list[dict[str, Any]]:
        """One row per cell: grid values, replicates, then ``<metric>_mean`` and ``<metric>_sem``."""
        means = {m: self.mean(m).ravel() for m in self.metrics}
        sems = {m: self.sem(m).ravel() for m in self.metrics}
        cells = list(itertools.product(*(self.grid[f] for f in self.fields)))
        out = []
        for c, values in enumerate(cells):
            row: dict[str, Any] = {"cell": c, **dict(zip(self.fields, values)), "replicates": self.replicates}
            for m in self.metrics:
                row[f"{m}_mean"] = float(means[m][c])
                row[f"{m}_sem"] = float(sems[m][c])
            out.append(row)
        return out

    def tidy_csv(self) -> str:
        return "".join([_csv_line(self.columns)] + [_csv_line([r[c] for c in self.columns]) for r in self.rows])

    def mean_csv(self) -> str:
        agg = self.aggregate()
        cols = list(agg[0])
        return "".join([_csv_line(cols)] + [_csv_line([r[c] for c in cols]) for r in agg])

    def heatmap(self, metric: str = "test_error", ax=None, boundary: Callable[[np.ndarray], np.ndarray] | None = None,
                boundary_label: str = ""):
        """Plot the mean of ``metric`` over a two-field grid: first field on the x axis, second on y.

        ``boundary(x) -> y`` draws a curve (e.g. a theory boundary) on top.  Returns the matplotlib Axes.
        """
        if len(self.fields) != 2:
            raise ConfigError(f"a heatmap needs a grid over exactly two fields, this one has {self.fields}")
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4.8))
        xs = np.asarray(self.grid[self.fields[0]], dtype=float)
        ys = np.asarray(self.grid[self.fields[1]], dtype=float)
        z = self.mean(metric).T  # rows: second field
        im = ax.pcolormesh(_edges(xs), _edges(ys), z, shading="flat", cmap="viridis")
        ax.figure.colorbar(im, ax=ax, label=f"{metric} (mean of {self.replicates})")
        if boundary is not None:
            xx = np.linspace(xs.min(), xs.max(), 400)
            yy = boundary(xx)
            ok = (yy >= ys.min()) & (yy <= ys.max())
            ax.plot(xx[ok], yy[ok], "r--", lw=2, label=boundary_label or "boundary")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlabel(self.fields[0])
        ax.set_ylabel(self.fields[1])
        ax.set_xlim(_edges(xs)[0], _edges(xs)[-1])
        ax.set_ylim(_edges(ys)[0], _edges(ys)[-1])
        return ax


def _edges(v: np.ndarray) -> np.ndarray:
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


# ----------------------------------------------------------------------------------------------- sweep
def _meta(base: Config, grid: dict[str, list[Any]], replicates: int, metrics: Sequence[str]) -> dict[str, Any]:
    return {"kind": "lnref.sweep", "base_config": base.to_dict(), "grid": grid, "replicates": replicates,
            "root_seed": base.seed, "metrics": list(metrics),
            "seed_rule": "SeedSequence(root_seed, spawn_key=(cell, replicate)).generate_state(1, uint64)[0] >> 1",
            "cell_order": "row-major over the grid fields (last field fastest)"}


def sweep(base_config: Config, grid: Mapping[str, Sequence[Any]], replicates: int = 1,
          executor: cf.Executor | None = None, out: str | os.PathLike | None = None, resume: bool = False,
          metrics: Sequence[str] = DEFAULT_METRICS, batch_size: int | None = None,
          progress: Callable[[int, int, int, int], None] | bool | None = None, *, force: bool = False,
          plot: bool = True) -> SweepResult:
    """Run ``base_config`` over the Cartesian product of ``grid``, ``replicates`` times per cell.

    Parameters
    ----------
    base_config : Config
        Every field not in the grid; ``base_config.seed`` is the root seed.
    grid : mapping field -> list of values
        Any Config fields except ``seed`` (replicates vary it), ``log_every`` and ``log_points``.
    replicates : int
        Runs per cell, each with its own derived seed (see :func:`cell_seed`).
    executor : concurrent.futures.Executor, optional
        Where batches run (not shut down by this function).  Default: a spawn process pool over all cores.
    out : path, optional
        Folder for sweep.csv, sweep_mean.csv, sweep.json (and heatmap PNGs); nothing is written without it.
    resume : bool
        Keep the finished rows of ``out/sweep.csv`` (same base, grid, replicates and metrics) and run the rest.
    metrics : sequence of str
        Final metrics per run (names in :data:`METRICS`).
    batch_size : int, optional
        (cell, replicate) runs per task; default about total / (8 * workers), between 1 and 250 (~0.3 s of
        Kou-sized runs: short last tasks keep the pool's idle tail short).
    progress : callable(jobs_done, jobs_total, cells_done, cells_total) or True, optional
        True prints a line on stderr at most once a second with the time left.
    force : bool
        Overwrite the sweep files of a non-empty ``out`` (without ``resume``).
    plot : bool
        Write heatmap PNGs for two-field grids when matplotlib is installed.

    Returns
    -------
    SweepResult

    Notes
    -----
    Each run is :func:`lnref.train` (SPEC.md sections 3-4) on ``base_config.replace(**cell, seed=...)``.
    """
    t0 = time.perf_counter()
    fields, cells = validate_grid(base_config, grid)
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 1:
        raise ConfigError(f"replicates={replicates!r} is not allowed: use an integer >= 1")
    replicates = int(replicates)
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"metrics {unknown or metrics!r} not allowed: choose from {', '.join(METRICS)}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ConfigError(f"batch_size={batch_size!r} is not allowed: use an integer >= 1")
    if resume and out is None:
        raise ConfigError("resume=True needs out= (the folder of the sweep to resume)")
    base = base_config.replace(log_every=0, log_points=0)
    grid_lists = {f: list(dict.fromkeys(c[i] for c in cells)) for i, f in enumerate(fields)}
    meta = _meta(base_config, grid_lists, replicates, metrics)
    result = SweepResult(base_config, grid_lists, fields, replicates, metrics, [])
    columns = result.columns

    done_rows: list[dict[str, Any]] = []
    tidy_fh = None
    if out is not None:
        out = Path(out)
        result.out = out
        tidy = out / TIDY_NAME
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder")
        if resume:
            if (out / META_NAME).exists():
                old = json.loads((out / META_NAME).read_text())
                now = json.loads(json.dumps(meta, default=_json_plain))
                for key in ("base_config", "grid", "replicates", "metrics"):
                    if old.get(key) != now[key]:
                        raise OutputError(f"{out / META_NAME}: its {key} differs from this sweep's; resume only "
                                          f"the same sweep (or start afresh with --force)")
            if tidy.exists():
                done_rows, good = _read_tidy(tidy, columns)
                with open(tidy, "r+b") as fh:  # drop a partial last line before appending
                    fh.truncate(good)
        elif out.exists() and any(out.iterdir()) and not force:
            raise OutputError(f"{out} is not empty; pass resume=True (--resume) to continue its sweep or "
                              "force=True (--force) to overwrite its files")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / META_NAME, {**meta, "versions": versions()})
        if not tidy.exists() or tidy.stat().st_size == 0 or not resume:
            write_text(tidy, _csv_line(columns))
        tidy_fh = open(tidy, "a", encoding="utf-8")

    # check resumed rows against the grid (values and seeds) and drop duplicates
    finished: dict[tuple[int, int], dict[str, Any]] = {}
    for row in done_rows:
        c, r = row["cell"], row["replicate"]
        if not (0 <= c < len(cells) and 0 <= r < replicates) or row["seed"] != cell_seed(base.seed, c, r) or \
                any(row[f] != v for f, v in zip(fields, cells[c])):
            raise OutputError(f"{out / TIDY_NAME}: row for cell {c}, replicate {r} does not match this grid")
        finished.setdefault((c, r), row)
    result.skipped = len(finished)

    jobs = [(c, r, cells[c], cell_seed(base.seed, c, r)) for c in range(len(cells)) for r in range(replicates)
            if (c, r) not in finished]
    total = len(cells) * replicates
    own_executor = executor is None
    if own_executor:
        executor = process_executor()
    workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    if batch_size is None:
        batch_size = int(min(250, max(1, math.ceil(len(jobs) / (8 * workers))))) if jobs else 1
    batches = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]
    if progress is True:
        from .cli import Progress
        printer = Progress("lnref sweep")
        progress = lambda jd, jt, cd, ct: printer(jd, jt, f"({cd}/{ct} cells)")  # noqa: E731
    per_cell = np.zeros(len(cells), dtype=np.int64)
    for c, _ in finished:
        per_cell[c] += 1
    cells_done = int(np.sum(per_cell == replicates))
    rows = list(finished.values())
    try:
        futures = [executor.submit(run_batch, base.to_dict(), fields, batch, metrics, 1) for batch in batches]
        for fut in cf.as_completed(futures):
            batch_rows = fut.result()
            if tidy_fh is not None:
                tidy_fh.write("".join(_csv_line([r[c] for c in columns]) for r in batch_rows))
                tidy_fh.flush()
                os.fsync(tidy_fh.fileno())
            rows.extend(batch_rows)
            for r in batch_rows:
                per_cell[r["cell"]] += 1
                cells_done += int(per_cell[r["cell"]] == replicates)
            if progress:
                progress(len(rows), total, cells_done, len(cells))
    except BaseException:
        for fut in futures if "futures" in locals() else []:
            fut.cancel()
        raise
    finally:
        if tidy_fh is not None:
            tidy_fh.close()
        if own_executor:
            executor.shutdown(wait=True, cancel_futures=True)

    rows.sort(key=lambda r: (r["cell"], r["replicate"]))
    result.rows = rows
    result.wall_seconds = time.perf_counter() - t0
    if out is not None:
        write_text(out / TIDY_NAME, result.tidy_csv())  # canonical order, atomically
        write_text(out / MEAN_NAME, result.mean_csv())
        result.files = [TIDY_NAME, MEAN_NAME, META_NAME]
        write_json(out / META_NAME, {**meta, "versions": versions(), "wall_seconds": result.wall_seconds,
                                     "runs": total, "resumed_rows": result.skipped})
        if plot and len(fields) == 2 and _have_matplotlib():
            for metric in ("test_error", "train_acc_noisy"):
                if metric in metrics:
                    _save_heatmap(result, metric, out / f"heatmap_{metric}.png")
                    result.files.append(f"heatmap_{metric}.png")
    return result


def _json_plain(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save_heatmap(result: SweepResult, metric: str, path: Path, **kwargs) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    ax = result.heatmap(metric, **kwargs)
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(ax.figure)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())


# ----------------------------------------------------------------------------------------------- CLI
# Dask settings for the workers of --dask-local (see _dask_executor); for a cluster of your own, give its workers
# the same settings (README, "Sweeps").
LOCAL_DASK_SETTINGS = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                       "distributed.admin.system-monitor.interval": "5s",
                       "distributed.worker.memory.monitor-interval": "1s",
                       "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 64 * 2 ** 20,
                       "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 16 * 2 ** 20}


def _dask_executor(address: str | None, local_workers: int | None):
    """(executor, closer) for a Dask scheduler ADDRESS or a LocalCluster of ``local_workers`` 1-thread workers."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--dask/--dask-local need Dask: pip install 'lnref[dask]'") from None
    if local_workers is not None:
        import dask
        # Dask's defaults cost a sweep's many ~1 ms runs dearly (bench/bench_sweep.py --dask-local 2): the
        # statistical profiler samples the task thread's stack every 10 ms (1.15x slower runs), and the nanny's
        # MALLOC_TRIM_THRESHOLD_=65536 turns off glibc's adaptive mmap threshold, so every array over 128 KiB is
        # mmap-ed and its pages faulted in afresh: ~165 page faults per Kou run.  These settings keep such
        # arrays on the heap (~0.4 faults per run), and tick the event loop and the monitors less often.
        with dask.config.set(LOCAL_DASK_SETTINGS):
            cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster)
    else:
        cluster = None
        client = Client(address)

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()
    return client.get_executor(), close


def _cmd_sweep(args) -> int:
    from .cli import config_from_args, read_toml
    base = config_from_args(args)
    grid: dict[str, list[Any]] = {}
    if args.config is not None:
        doc = read_toml(args.config)
        if "grid" in doc:
            grid.update(_grid_from_toml(doc["grid"], str(args.config)))
    for item in args.grid or []:
        if "=" not in item and item.endswith(".toml"):
            grid.update(_grid_from_toml(read_toml(Path(item)), item))
        else:
            name, vals = parse_grid_item(item)
            grid[name] = vals
    if not grid:
        raise ConfigError("no grid: give --grid FIELD=START:STOP:STEP, --grid FIELD=V1,V2 or a TOML file with [grid]")
    validate_grid(base, grid)  # before any cluster starts
    if sum(x is not None for x in (args.dask, args.dask_local)) + (args.workers is not None) > 1:
        raise ConfigError("choose one of --workers, --dask and --dask-local")
    close = None
    if args.dask is not None or args.dask_local is not None:
        if args.dask_local is not None and args.dask_local < 1:
            raise ConfigError(f"--dask-local {args.dask_local} is not allowed: use a worker count >= 1")
        executor, close = _dask_executor(args.dask, args.dask_local)
    elif args.workers is not None:
        if args.workers < 1:
            raise ConfigError(f"--workers {args.workers} is not allowed: use an integer >= 1")
        executor = SerialExecutor() if args.workers == 1 else process_executor(args.workers)
        close = executor.shutdown
    else:
        executor = process_executor()
        close = executor.shutdown
    try:
        res = sweep(base, grid, replicates=args.replicates, executor=executor, out=args.out, resume=args.resume,
                    batch_size=args.batch_size, progress=None if args.quiet else True, force=args.force)
    finally:
        close()
    diverged = sum(bool(r.get("diverged")) for r in res.rows)
    print(f"wrote {args.out}: {len(res.rows)} runs ({res.skipped} resumed) over {int(np.prod(res.shape))} cells "
          f"in {res.wall_seconds:.1f}s; {diverged} diverged")
    return 0


def register(subparsers) -> None:
    from .cli import add_config_arguments
    p = subparsers.add_parser(
        "sweep", help="run a grid of configs (local processes or Dask) and write tidy CSVs",
        description="Run the base config (flags as for `lnref run`) over a Cartesian grid of Config fields, "
                    "with replicates, writing sweep.csv (one row per run, appended as runs finish), "
                    "sweep_mean.csv (mean and standard error per cell), sweep.json and heatmaps.")
    add_config_arguments(p)
    p.add_argument("--grid", action="append", metavar="FIELD=SPEC",
                   help="FIELD=START:STOP:STEP (inclusive) or FIELD=V1,V2,...; or a TOML file with [grid]; "
                        "repeat for more fields (the --config file may also hold a [grid] table)")
    p.add_argument("--replicates", type=int, default=1, help="runs per cell, each with its own derived seed")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="keep the finished rows in --out and run the rest")
    p.add_argument("--force", action="store_true", help="overwrite the sweep files of a non-empty --out")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores; "
                                                             "1 runs in this process)")
    p.add_argument("--dask", metavar="ADDRESS", default=None, help="run on the Dask scheduler at ADDRESS")
    p.add_argument("--dask-local", type=int, metavar="N", default=None,
                   help="start a local Dask cluster of N single-thread workers (a demonstration)")
    p.add_argument("--batch-size", type=int, default=None, help="runs per task (default: automatic)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_sweep)
