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
SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d+)\.pt$")


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
    """Snapshots in a run directory, oldest first (by kimg in the name)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := SNAPSHOT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    snaps = list_snapshots(run_dir)
    return snaps[-1] if snaps else None
