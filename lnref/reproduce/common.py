"""Shared machinery of the reproductions: registry, run context, report rows (:mod:`lnref.reproduce.checks`,
re-exported here), report.md, output folders.

A reproduction is a function ``run(ctx: Context) -> list[Check]`` registered with :func:`register`.  It trains
(recording every config it actually ran with :meth:`Context.ran`), writes its data and figures through
:meth:`Context.path`, and returns one :class:`Check` per prediction.  :func:`run_reproduction` then writes

- ``report.md``: the title, what the reproduction does, the command, the config **as run** (taken from the
  ``Result.config`` of the runs, so ``--quick`` shows the quick sizes), one table row per prediction
  (prediction | source | criterion and tolerance | measured | holds), notes, the files written;
- ``summary.json``: the same in machine-readable form;
- ``reproduction.json``: the marker that makes the folder this reproduction's own (see
  :func:`prepare_reproduction_dir`).

Report rows over several seeds (:func:`seed_check`): each seed is judged on its own against the row's criterion;
the row holds when the criterion holds in every seed (rule ``"all"``, the default), in a majority of them (rule
``"majority"``), or in at least a stated fraction of them (rule ``"rate"`` with ``min_rate``: a prediction that
holds with high probability, not surely, at finite sizes; the holds column then also gives the one-sided 95%
Clopper-Pearson lower bound on the per-seed rate); the measured column gives mean +- standard error over the K
seeds and the holds column the count of seeds in which the criterion held.
"""

from __future__ import annotations

import inspect
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import OutputError, versions, write_json, write_text
from .checks import Check, fmt_mean_se, mean_se, rate_lower_bound, seed_check

__all__ = [
    "Check",
    "Context",
    "REPRODUCTIONS",
    "register",
    "run_reproduction",
    "have_matplotlib",
    "save_figure",
    "mean_se",
    "fmt_mean_se",
    "seed_check",
    "prepare_reproduction_dir",
    "MARKER",
    "AUTHORS_CODE",
    "rate_lower_bound",
    "sweep_executor",
]

MARKER = "reproduction.json"

#: What is known of each paper's own code (issue 11): where it is public, the reproduction follows it and cites it;
#: where it is not, the reproduction says which reading of the paper it takes.  Searched in the public
#: GitHub index for repositories named like "benign", "label_noise", "labelnoise", "label-noise", "uclaml",
#: "zzp1012" and by the papers' titles and set-ups.
AUTHORS_CODE: dict[str, str] = {
    "han2025": "zzp1012/label-noise-theory (ICML 2025 code release of Han et al.): CIFAR-10 experiments only "
    "(scripts/train_binary.py, src/model/cifar_vgg.py); no script for the synthetic Figure 1, so "
    "lnref follows the paper's text and SPEC.md section 6.",
    "huang2025": "no public repository found; the paper (arXiv 2510.17526, NeurIPS 2025 checklist item 5) says "
    "its code is in the supplementary material only.  lnref follows the paper's Section 5 text "
    "(n=200, n_test=2000, d=2000, m=20, eta=0.5, p=0.1, mu=[2,0,...,0], sigma_p^2=0.25, 2000 steps, "
    "Algorithm 1's per-step flips) and SPEC.md section 6; sigma0 is not stated there.",
    "cao2022": "no public repository found for Cao, Chen, Belkin and Gu (2022, arXiv 2202.06526) (the uclaml "
    "organisation publishes Kou et al.'s uclaml/Benign_ReLU_CNN, not Cao's code); lnref follows "
    "the paper's text and SPEC.md section 6.",
    "kou2023": "uclaml/Benign_ReLU_CNN (see issue 11 and lnref.reproduce.heatmaps).",
}


# ------------------------------------------------------------------------------------------------ context
@dataclass
class Context:
    """What a reproduction gets: where to write, how many seeds, quick mode, threads, and a progress printer.

    ``seeds=None`` means the reproduction's default (see :func:`register`); :func:`run_reproduction` resolves it.
    A reproduction records every config it trains with :meth:`ran` (report.md prints them) and may append
    markdown paragraphs to ``notes`` (printed under the table).
    """

    out: Path
    seeds: int | None = None
    quick: bool = False
    threads: int | None = None
    log: Callable[[str], None] = print
    files: list[str] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    name: str = ""
    runs: int = 0
    #: figure file -> its caption (report.md shows the figure under a "Figures" heading with the caption)
    captions: dict[str, str] = field(default_factory=dict)
    #: Config fields the runs use although the Config alone says they are unused (e.g. ``sigma_zeta`` when the
    #: reproduction scores an extra spurious test set on an ``iid`` config); see :func:`unused_fields`
    uses: set[str] = field(default_factory=set)
    #: sub-folders the run writes (a sweep's folder, which it resumes when the same reproduction runs again)
    dirs: list[str] = field(default_factory=list)
    #: ``--dask ADDRESS``: the Dask scheduler the reproductions that run sweeps use (:func:`sweep_executor`)
    dask: str | None = None

    def path(self, name: str) -> Path:
        """A file in the output folder, remembered for report.md's file list and the folder's marker."""
        if name not in self.files:
            self.files.append(name)
        if self.name:
            _write_marker(self.out, self.name, self.files, finished=False, dirs=self.dirs)
        return self.out / name

    def path_dir(self, name: str) -> Path:
        """A sub-folder of the output folder (created), recorded in the marker: running the same reproduction again
        keeps it (so a sweep inside can resume its finished rows) instead of refusing the folder."""
        if name not in self.dirs:
            self.dirs.append(name)
        if self.name:
            _write_marker(self.out, self.name, self.files, finished=False, dirs=self.dirs)
        (self.out / name).mkdir(parents=True, exist_ok=True)
        return self.out / name

    def ran(self, config: Any, runs: int = 1) -> None:
        """Record a config that was actually trained (a :class:`lnref.Config` or its ``to_dict()``), ``runs`` times
        (replicates that differ only in the seed)."""
        d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        self.configs.append(d)
        self.runs += int(runs)


def unused_fields(config: dict[str, Any]) -> dict[str, str]:
    """The fields of a ``Config.to_dict()`` that the run does not read, with the reason (report.md leaves them
    out of its config table and names them below it)."""
    out: dict[str, str] = {}
    if config.get("algorithm") == "gd":
        out["p"] = "algorithm gd (p is label-noise GD's flip rate)"
    if config.get("test") == "iid":
        out["sigma_zeta"] = "test iid (sigma_zeta scales the spurious test's fresh noise)"
    if config.get("sampling") == "explicit":
        out["virtual_test"] = "sampling explicit (virtual test sets need sampling gram)"
    if config.get("init") == "torch":
        out["sigma0"] = "init torch (uniform on +-1/sqrt(d))"
    return out


def config_table(configs: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(fields equal in every run, fields that vary -> their distinct values in order of first use)."""
    if not configs:
        return {}, {}
    same: dict[str, Any] = {}
    varies: dict[str, list[Any]] = {}
    for key in configs[0]:
        vals: list[Any] = []
        for c in configs:
            v = c.get(key)
            if v not in vals:
                vals.append(v)
        if len(vals) == 1:
            same[key] = vals[0]
        else:
            varies[key] = vals
    return same, varies


# ------------------------------------------------------------------------------------------------ registry
@dataclass
class Reproduction:
    name: str
    title: str
    func: Callable[[Context], list[Check]]
    description: str = ""
    default_seeds: int = 1
    quick_seeds: int = 1


REPRODUCTIONS: dict[str, Reproduction] = {}


def register(name: str, title: str, description: str = "", *, default_seeds: int = 1, quick_seeds: int = 1):
    """Decorator: register ``func(ctx) -> list[Check]`` as ``lnref reproduce NAME``.

    ``default_seeds`` / ``quick_seeds``: the number of seeds when ``--seeds`` is not given (without / with
    ``--quick``).  The description (default: the function's docstring) must not state sizes: report.md prints
    the config as run.
    """

    def deco(func):
        REPRODUCTIONS[name] = Reproduction(
            name, title, func, description or inspect.cleandoc(func.__doc__ or ""), default_seeds, quick_seeds
        )
        return func

    return deco


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_figure(fig, ctx: Context, name: str) -> None:
    """Save a matplotlib figure atomically as PNG into ctx.out."""
    import io as _io

    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    from ..io import atomic_write

    with atomic_write(ctx.path(name), "wb") as fh:
        fh.write(buf.getvalue())


def sweep_executor(ctx: Context, runs: int):
    """(executor, close) for a reproduction's sweep: the Dask scheduler of ``ctx.dask`` (``--dask ADDRESS``), else
    this process for small sweeps (``--quick`` or fewer than 200 runs: a process pool pays a numba compile per
    worker), else a process pool over every core."""
    from ..sweeps import SerialExecutor, dask_executor, process_executor

    if ctx.dask is not None:
        return dask_executor(ctx.dask, None)
    ex = SerialExecutor() if ctx.quick or runs < 200 else process_executor()
    return ex, ex.shutdown


# ------------------------------------------------------------------------------------------------ output folder
def _write_marker(out: Path, name: str, files: Sequence[str], finished: bool, dirs: Sequence[str] = ()) -> None:
    doc = {"reproduction": name, "finished": finished, "files": sorted(set(files) | {"report.md", "summary.json"})}
    if dirs:
        doc["dirs"] = sorted(set(dirs))
    write_json(out / MARKER, doc)


def _read_marker(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("reproduction"), str) else None


def prepare_reproduction_dir(out: str | Path, name: str, force: bool = False, lock: Any = None) -> Path:
    """Create the output folder of ``lnref reproduce NAME``, replacing NAME's own earlier output.

    - missing or empty folder: created / used;
    - a folder holding an earlier output of the same reproduction (its ``reproduction.json`` names NAME and every
      other entry is a file that run wrote): those files are deleted, so the new run replaces the old one
      (re-running the README's main-job command works);
    - anything else (other files, another reproduction's output): refused with :class:`lnref.io.OutputError`
      unless ``force``, which keeps the folder and overwrites the files of the same names;
    - a folder another process is writing into (its :class:`lnref._lock.OutputLock` is held): refused, whatever
      ``force`` (its unfinished marker is not an earlier output).  ``lock``: the caller's own held lock on ``out``
      (``lnref reproduce`` holds it from here to the end of the run).
    """
    out = Path(out)
    if lock is None or not lock.held:
        from .._lock import OutputLock, holder

        owner = holder(out)
        if owner is not None:
            raise OutputLock(out)._busy(owner)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        marker = _read_marker(out)
        if marker is not None and marker["reproduction"] == name:
            own = set(marker.get("files", [])) | {MARKER}
            dirs = set(marker.get("dirs", []))  # kept: the run resumes or overwrites what is inside
            foreign = sorted(
                p.name
                for p in out.iterdir()
                if not (p.name in own and p.is_file()) and not (p.name in dirs and p.is_dir())
            )
            if foreign and not force:
                raise OutputError(
                    f"{out} holds an earlier output of {name} and also {', '.join(foreign[:5])}"
                    f"{' ...' if len(foreign) > 5 else ''}, which that run did not write; move them away or pass "
                    "--force to keep them and overwrite the rest"
                )
            for f in own:
                p = out / f
                if p.is_file() and (p.name != MARKER):
                    p.unlink()
        elif not force:
            what = (
                f"the output of another reproduction ({marker['reproduction']})"
                if marker is not None
                else "files that lnref reproduce did not write"
            )
            raise OutputError(
                f"{out} is not empty ({what}); choose another folder, or pass --force to overwrite "
                "its files of the same names"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


# ------------------------------------------------------------------------------------------------ report.md
def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _holds_cell(c: Check) -> str:
    word = "n/a" if c.holds == "n/a" else "yes" if c.holds else "**no**"
    if c.n_seeds is not None:
        word += f" ({c.seeds_held} of {c.n_seeds} seeds"
        if c.rate_lower is not None:
            word += f"; rate >= {c.rate_lower:.2f} at 95% confidence"
        word += ")"
    return word


def judging_note(checks: list[Check], seeds: int) -> str:
    """The report's sentence on how its rows are judged, from the rows themselves (per seed, and with which rule;
    or once, on values pooled over the seeds or cells)."""
    tested = [c for c in checks if c.holds != "n/a"]
    per_seed = [c for c in tested if c.n_seeds]
    parts = ["Each row states its criterion and tolerance."]
    if per_seed:
        every = any(c.rule in ("", "all") for c in per_seed)
        parts.append(
            "A row with a seed count is judged seed by seed"
            + (
                f" and holds when the criterion holds in every one of the {seeds} seeds unless its criterion says "
                "otherwise (majority, or a rate)"
                if every
                else "; its criterion says how the seeds combine"
            )
            + "; the last column counts the seeds in which it held."
        )
    if len(per_seed) < len(tested):
        parts.append(
            "A row without a seed count is judged once, on the values its criterion names (pooled over "
            "the seeds or the cells)."
        )
    parts.append("Measured values are mean +- standard error over the seeds.")
    return "  ".join(parts)


def count_held(checks: Sequence[Check]) -> tuple[int, int, int]:
    """(held, tested, n/a) over the rows."""
    tested = [c for c in checks if c.holds != "n/a"]
    return sum(bool(c.holds) for c in tested), len(tested), len(checks) - len(tested)


def _report(rep: Reproduction, ctx: Context, checks: list[Check], wall: float) -> str:
    seeds_flag = f" --seeds {ctx.seeds}"
    published = getattr(ctx, "published", None)
    published_flag = f" --published {published}" if published else ""
    lines = [
        f"# {rep.title}",
        "",
        rep.description,
        "",
        f"Command: `lnref reproduce {rep.name}{seeds_flag}{' --quick' if ctx.quick else ''}{published_flag}`  ",
        f"Wall time: {wall:.1f} s on {platform.node()} ({time.strftime('%Y-%m-%d')}); "
        f"{ctx.runs} training runs of {len(ctx.configs)} configs",
        "",
    ]
    same, varies = config_table(ctx.configs)
    if same or varies:
        # a field is left out when no run reads it
        unused: dict[str, str] = {}
        for c in ctx.configs:
            for k, why in unused_fields(c).items():
                if k not in ctx.uses:
                    unused.setdefault(k, why)
        unused = {k: why for k, why in unused.items() if all(k in unused_fields(c) for c in ctx.configs)}
        lines += [
            "## Config as run",
            "",
            "The fields of `lnref.Config` these runs read (names as in `lnref run --help`), from the runs' "
            "`Result.config`:",
            "",
            "| field | value |",
            "| --- | --- |",
        ]
        lines += [f"| `{k}` | {_cell(v)} |" for k, v in same.items() if k not in unused]
        lines += [
            f"| `{k}` | varies: {_cell(', '.join(str(x) for x in v))} |" for k, v in varies.items() if k not in unused
        ]
        if unused:
            lines += [
                "",
                "Not read by these runs, so not shown: "
                + "; ".join(f"`{k}` ({why})" for k, why in unused.items())
                + ".",
            ]
        lines.append("")
    lines += [
        "## Predictions",
        "",
        judging_note(checks, ctx.seeds),
        "",
        "| prediction | source | criterion (tolerance) | measured | holds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in checks:
        crit = c.criterion or "(not stated)"
        if c.tolerance:
            crit += f" (tolerance: {c.tolerance})"
        if c.rule == "majority":
            crit += "; judged: majority of seeds"
        elif c.rule == "rate":
            crit += f"; judged: holds in at least {100 * c.min_rate:.0f}% of the seeds"
        lines.append(
            f"| {_cell(c.claim)} | {_cell(c.source or '-')} | {_cell(crit)} | {_cell(c.measured)} | {_holds_cell(c)} |"
        )
    held, tested, na = count_held(checks)
    lines += ["", f"{held} of {tested} predictions hold in this run" + (f" ({na} comparison rows n/a)." if na else ".")]
    if ctx.captions:
        lines += ["", "## Figures", ""]
        for name, caption in ctx.captions.items():
            if name in ctx.files:
                lines += [f"![{name}]({name})", "", f"**{name}.** {caption}", ""]
    if ctx.notes:
        lines += ["", "## Notes", ""]
        for note in ctx.notes:
            lines += [note, ""]
    lines += ["", "## Files", ""]
    lines += [f"- `{f}`" for f in ctx.files]
    lines += [f"- `{d}/` (a sweep folder: sweep.csv, sweep_mean.csv, sweep.json)" for d in ctx.dirs]
    if not have_matplotlib():
        lines += ["", "No figure: matplotlib is not installed (pip install 'lnref[plot]')."]
    return "\n".join(lines) + "\n"


def run_reproduction(name: str, ctx: Context) -> list[Check]:
    """Run one registered reproduction and write report.md, summary.json and the folder's marker into ctx.out.

    ``ctx.seeds=None`` is replaced by the reproduction's default (``quick_seeds`` with ``ctx.quick``).
    """
    rep = REPRODUCTIONS[name]
    if ctx.seeds is None:
        ctx.seeds = rep.quick_seeds if ctx.quick else rep.default_seeds
    ctx.name = name
    _write_marker(ctx.out, name, ctx.files, finished=False)
    t0 = time.perf_counter()
    checks = rep.func(ctx)
    wall = time.perf_counter() - t0
    same, varies = config_table(ctx.configs)
    write_json(
        ctx.out / "summary.json",
        {
            "reproduction": name,
            "seeds": ctx.seeds,
            "quick": ctx.quick,
            "wall_seconds": wall,
            "training_runs": ctx.runs,
            "versions": versions(),
            "config": same,
            "config_varies": varies,
            "checks": [c.as_dict() for c in checks],
        },
    )
    write_text(ctx.out / "report.md", _report(rep, ctx, checks, wall))
    _write_marker(ctx.out, name, ctx.files, finished=True, dirs=ctx.dirs)
    return checks
