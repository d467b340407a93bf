"""A run directory after a crash: what a resume cleans up so the run's files read as if it never stopped.

A killed process can leave a temporary file of an atomic write, lines in stats.jsonl / schedule.jsonl /
log.txt written after its last snapshot (the resumed run writes them again), and a last line cut in
half. And a newest snapshot can be unreadable (truncated copy, another architecture): the resume moves
it aside and uses the one before. Rank 0 alone touches files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from torch_utils import checkpoint


def remove_stale_tmp(run_dir: Path) -> list[Path]:
    """Delete `.<name>.<random>.tmp` files that a killed atomic write left (torch_utils.files)."""
    stale = sorted(run_dir.glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def trim_jsonl(path: Path, last_step: int) -> tuple[int, bool]:
    """Keep the lines of `path` whose "step" ≤ `last_step` (those the snapshot already holds). Returns
    (lines dropped, whether a torn, unparseable line was among them)."""
    if not path.is_file():
        return 0, False
    kept, dropped, torn = [], 0, False
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped, torn = dropped + 1, True
            continue
        if int(record.get("step", -1)) <= last_step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        path.write_text("".join(f"{line}\n" for line in kept))
    return dropped, torn


def trim_log(path: Path, size: int | None) -> int:
    """Cut log.txt back to `size` bytes (its length when the snapshot was written); returns bytes cut."""
    if size is None or not path.is_file() or path.stat().st_size <= size:
        return 0
    cut = path.stat().st_size - size
    with open(path, "r+b") as f:
        f.truncate(size)
    return cut


def load_latest_good(
    run_dir: Path, apply: Callable[[dict], None], log: Callable[[str], None]
) -> tuple[Path | None, dict | None, list[Path]]:
    """Newest first, the first snapshot that loads and `apply`s (restores the state) wins: (path, its
    data, the unreadable ones, newest first). The caller moves those aside once every rank is done."""
    bad = []
    for path in reversed(checkpoint.list_snapshots(run_dir)):
        try:
            data = checkpoint.load(path)
            apply(data)
        except (ValueError, RuntimeError, KeyError, TypeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            log(f"Snapshot {path.name} cannot be resumed from ({reason[:200]}); trying the one before it.")
            bad.append(path)
            continue
        return path, data, bad
    return None, None, bad


# What a run writes as it goes, besides its snapshots: an earlier attempt's copies are set aside on a fresh start.
RUN_FILES = ("log.txt", "stats.jsonl", "schedule.jsonl")
RUN_FILE_GLOBS = ("samples-*.png", "samples-*.fasta")
ATTEMPTS = "earlier-attempts"


def set_aside_earlier_attempt(run_dir: Path) -> Path | None:
    """A run that starts from step 0 in a folder with the files of an earlier attempt (killed before its first
    snapshot, or whose snapshots were all unreadable) moves them to earlier-attempts/<n>/, so the folder's
    log.txt, stats.jsonl and schedule.jsonl are this run's alone, as an uninterrupted run's would be, and the
    earlier attempt's stay readable (why it stopped). Returns the folder they went to, or None if none."""
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).is_file()]
    found += sorted(p for pattern in RUN_FILE_GLOBS for p in run_dir.glob(pattern) if p.is_file())
    if not found:
        return None
    n = 1
    while (run_dir / ATTEMPTS / str(n)).exists():
        n += 1
    dest = run_dir / ATTEMPTS / str(n)
    dest.mkdir(parents=True)
    for path in found:
        path.replace(dest / path.name)
    return dest


def move_aside(paths: list[Path], log: Callable[[str], None]) -> None:
    for path in paths:
        target = path.with_name(path.name + ".corrupt")
        path.replace(target)
        log(f"Moved {path.name} aside as {target.name}.")
