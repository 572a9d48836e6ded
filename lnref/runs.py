"""A run folder: config.json, meta.json, metrics.csv, arrays.npz (DESIGN.md "Outputs a user can trust")."""
from __future__ import annotations

import csv
import io
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .io import OutputError, load_npz, save_npz, versions, write_json, write_text
from .training import Result

__all__ = ["write_run", "load_run", "metrics_csv", "save_checkpoint", "load_checkpoint", "CHECKPOINT"]


def metrics_csv(history: dict[str, np.ndarray]) -> str:
    """The history as CSV text, one row per logged step (floats with repr precision)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(history)
    w.writerow(cols)
    for i in range(len(history["step"])):
        w.writerow([_fmt(history[c][i]) for c in cols])
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    return "nan" if math.isnan(v) else repr(v)


def write_run(out: str | os.PathLike, result: Result, extra_meta: dict[str, Any] | None = None) -> Path:
    """Write ``result`` into the folder ``out`` (each file atomically).  The folder must already be prepared."""
    out = Path(out)
    write_json(out / "config.json", result.config.to_dict())
    meta = {
        "versions": versions(),
        "seed": result.config.seed,
        "threads": result.threads,
        "timings_seconds": result.timings,
        "steps_done": result.steps_done,
        "diverged": result.diverged,
        "message": result.message,
        "host": socket.gethostname(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra_meta or {}),
    }
    write_json(out / "meta.json", meta)
    write_text(out / "metrics.csv", metrics_csv(result.history))
    arrays = {f"trace_{k}": v for k, v in result.trace.items()}
    arrays.update(step=result.history["step"], gamma=result.gamma, rho=result.rho)
    if result.W is not None:
        arrays["W"] = result.W
    if result.W0 is not None:
        arrays["W0"] = result.W0
    data = result.data
    if data is not None and hasattr(data, "y_obs"):
        arrays.update(y=data.y, y_obs=data.y_obs)
    save_npz(out / "arrays.npz", arrays, meta={"kind": "lnref.run", "config": result.config.to_dict()})
    return out


def load_run(folder: str | os.PathLike) -> tuple[Config, dict[str, np.ndarray]]:
    """Read back the config and arrays of a run folder (checking every SHA-256)."""
    import json
    folder = Path(folder)
    cfg = Config.from_dict(json.loads((folder / "config.json").read_text()))
    arrays, _ = load_npz(folder / "arrays.npz")
    return cfg, arrays


CHECKPOINT = "checkpoint.npz"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write a ``train(on_checkpoint=...)`` state atomically as a self-describing .npz (SHA-256 per array)."""
    arrays = {"gamma": state["gamma"], "rho": state["rho"]}
    if "W" in state:
        arrays["W"] = state["W"]
    arrays.update({f"history_{k}": v for k, v in state["history"].items()})
    arrays.update({f"trace_{k}": v for k, v in state["trace"].items()})
    meta = {"kind": "lnref.checkpoint", "step": state["step"], "rows": state["rows"], "config": state["config"],
            "engine": state["engine"], "label_noise_state": state["label_noise_state"]}
    save_npz(path, arrays, meta=meta)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (checking every SHA-256) as a ``train(resume=...)`` state."""
    arrays, meta = load_npz(path)
    if meta.get("kind") != "lnref.checkpoint":
        raise OutputError(f"{path} is not an lnref checkpoint")
    state = {k: meta[k] for k in ("step", "rows", "config", "engine", "label_noise_state")}
    state.update(gamma=arrays["gamma"], rho=arrays["rho"])
    if "W" in arrays:
        state["W"] = arrays["W"]
    state["history"] = {k[len("history_"):]: v for k, v in arrays.items() if k.startswith("history_")}
    state["trace"] = {k[len("trace_"):]: v for k, v in arrays.items() if k.startswith("trace_")}
    return state
