"""Snapshots: plain tensors and dicts, written atomically, opened without running code from the file.

A snapshot (`network-snapshot-<kimg>.pt`) is a dict:
  format        "infonoise-snapshot-v1"
  options       the resolved training options (JSON-able), incl. network_kwargs
  net, ema      state dicts of the training network and its EMA copy
  optimizer     optimizer state dict
  scheduler     the noise scheduler's state dict
  profile       the scheduler's learned profile (dict of tensors) or None — InfoGrid reads this
  progress      {"cur_nimg", "cur_tick", "global_step"}
  rng           per-rank RNG states, see training_loop
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from torch_utils.files import atomic_write

FORMAT = "infonoise-snapshot-v1"
# network-snapshot-<kimg>.pt on the run's grid; network-snapshot-<kimg>-step<step>.pt a resume point (a stop
# between grid snapshots, removed by the next snapshot).
SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d+)(-step\d+)?\.pt$")


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save through `files.atomic_write`: a killed process leaves the old file or the new one."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a snapshot safely (weights_only=True). Errors name the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such snapshot file. Pass the path of a network-snapshot-*.pt written by train.py."
        )
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated, or a pickle with code in it
        raise ValueError(
            f"{path}: cannot be read as a snapshot ({type(e).__name__}: {e}). "
            f"The file is corrupt or not written by train.py; use an earlier snapshot."
        ) from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an InfoNoise snapshot (expected format '{FORMAT}').")
    return data


def list_snapshots(run_dir: str | os.PathLike) -> list[Path]:
    """Snapshots in a run directory (resume points included), oldest first: by kimg in the name, then, within
    one kimg, by when they were written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p.stat().st_mtime_ns, p) for p in run_dir.iterdir() if (m := SNAPSHOT_RE.match(p.name))]
    return [p for _, _, p in sorted(found)]


def list_resume_points(run_dir: str | os.PathLike) -> list[Path]:
    """The resume points among a run directory's snapshots (see SNAPSHOT_RE)."""
    return [p for p in list_snapshots(run_dir) if SNAPSHOT_RE.match(p.name).group(2)]


def latest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    snaps = list_snapshots(run_dir)
    return snaps[-1] if snaps else None
