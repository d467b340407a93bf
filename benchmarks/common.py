"""What the benchmark scripts share: presets without data, reference statistics, CSV rows, threads.

Kept to the few helpers that would otherwise be copied into every script; each script stays one
readable file. The benchmarks import only library packages (installed editable with the project), so
they run as `python benchmarks/<name>.py` or `python -m benchmarks.<name>` from the repository root.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch

import schedulers
from torch_utils.files import atomic_write

REPO = Path(__file__).resolve().parents[1]

# Data shapes of the image presets' data sets, for timing a preset whose data file is not on this
# machine (e.g. CIFAR-10): the network's cost depends only on the shape. Keyed by the data file's
# name prefix; whenever the file exists its real shape is used instead, and outputs say which.
ASSUMED_SHAPES = {"cifar10": (3, 32, 32), "fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "digits": (1, 8, 8)}
ASSUMED_LABEL_DIM = 10  # the class count of every data set above (used only for cond presets)


def set_threads(n: int) -> int:
    """Intra-op threads for this process. On this shared 2-core machine one thread is usually the
    fastest (two threads fight the other jobs for both cores), so the scripts default to 1."""
    torch.set_num_threads(int(n))
    return torch.get_num_threads()


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def timed(fn: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
    """Wall-clock seconds of one call (after synchronising the device, if a sync is given)."""
    if sync:
        sync()
    start = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - start


def device_sync(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


def parse_list(text: str | Sequence, kind: type = str) -> list:
    """'1,2' → [1, 2]; already a list → converted elementwise."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return [kind(str(v).strip()) for v in items if str(v).strip()]


def parse_overrides(pairs: Sequence[str]) -> dict:
    """['batch=32', 'network_kwargs.model_channels=8'] → {'batch': 32, 'network_kwargs': {'model_channels': 8}}.
    Values are parsed as YAML (numbers, lists, null), as train.py's --sched-opt/--net-opt do."""
    import yaml

    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override '{pair}' is not key=value")
        key, value = (s.strip() for s in pair.split("=", 1))
        value = yaml.safe_load(value)
        if "." in key:
            outer, inner = key.split(".", 1)
            if outer not in ("network_kwargs", "scheduler_kwargs"):
                raise ValueError(f"override '{pair}': only network_kwargs.* and scheduler_kwargs.* take a dotted key")
            out.setdefault(outer, {})[inner] = value
        elif key in ("network_kwargs", "scheduler_kwargs"):
            out.setdefault(key, {}).update(value or {})
        else:
            out[key] = value
    return out


# ----------------------------------------------------------------------------------------------------
# Presets without their data.


def preset_setup(preset: str, overrides: dict | None = None) -> dict:
    """A preset's options (training.options.merge: DEFAULTS ← preset ← overrides) with `network_kwargs`
    derived as training.options.resolve does, but without requiring the data set: its shape and label count come
    from the data file when it exists, else from ASSUMED_SHAPES (`shape_source` says which). Adds
    `endpoint` resolved ('auto' → discrete for two-valued data) and `num_params`."""
    import modalities
    from models import networks
    from training import options

    opts = options.merge(preset, overrides or {})
    opts["preset"] = preset

    data = str(opts["data"])
    path = data if os.path.isabs(data) or os.path.exists(data) else str(REPO / data)
    try:
        ds = modalities.open_dataset(path, use_labels=opts["cond"], max_size=opts["max_size"])
        shape, label_dim, source = tuple(ds.data_shape), ds.label_dim, "data"
        binary = bool(getattr(ds, "is_binary", False))
    except FileNotFoundError:
        name = Path(data).name.lower()
        match = next((k for k in sorted(ASSUMED_SHAPES, key=len, reverse=True) if name.startswith(k)), None)
        if match is None:
            raise FileNotFoundError(
                f"preset {preset}: its data {data} is not here and its shape is not known; "
                f"create the data set (see the preset's comment) to time it"
            ) from None
        shape, label_dim, source = ASSUMED_SHAPES[match], ASSUMED_LABEL_DIM, "assumed"
        binary = "binary" in name
    if opts["endpoint"] == "auto":
        opts["endpoint"] = "discrete" if binary else "continuous"
    opts["arch"] = opts["arch"] or modalities.for_data(path).default_arch
    opts["network_kwargs"] = options.network_kwargs(opts, shape, label_dim)
    opts["data_path"], opts["shape_source"], opts["data_shape"] = path, source, tuple(shape)
    opts["num_params"] = sum(p.numel() for p in networks.build_network(**opts["network_kwargs"]).parameters())
    return opts


def build_scheduler(opts: dict, name: str | None = None, **kwargs) -> schedulers.NoiseScheduler:
    """The preset's scheduler (or `name`) with the context the training loop gives it."""
    from training.options import scheduler_context

    # The training loop hands the scheduler its training set (the Bayes cap of discrete endpoints reads it once,
    # docs/method.md §4b); a timing needs its shape only: two-valued examples of the preset's shape.
    context = scheduler_context(opts)
    if "data_shape" in opts:
        gen = torch.Generator().manual_seed(0)
        context["training_data"] = lambda: torch.rand(256, *opts["data_shape"], generator=gen).round().mul(2).sub(1)
    name = name or opts["scheduler"]
    sched_kwargs = {**(opts["scheduler_kwargs"] if name == opts["scheduler"] else {}), **kwargs}
    return schedulers.build(name, context, **sched_kwargs)


def prime_scheduler(sched: schedulers.NoiseScheduler, batch: int, seed: int = 0, max_steps: int = 100_000) -> int:
    """Bring an adaptive scheduler past its warm-up (a built table) with synthetic errors, so timings
    measure the phase that lasts all of training. Returns the global step reached; the caller continues
    from there. A fixed scheduler (no profile ever) is returned as it is, at step 0."""
    if not hasattr(sched, "refresh_every"):
        return 0
    gen = torch.Generator().manual_seed(seed)
    step = 0
    while sched.profile() is None:
        sigma = sched.sample(batch, generator=gen).double()
        sched.observe(
            sigma, sigma**2 / (1 + sigma**2) * (1 + 0.1 * torch.rand(batch, generator=gen, dtype=torch.float64))
        )
        step += 1
        sched.step(step)
        if step > max_steps:
            raise RuntimeError(f"{sched!r}: no refresh after {max_steps} synthetic steps")
    return step


# ----------------------------------------------------------------------------------------------------
# Reference statistics and rows.


def read_rows(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: str | os.PathLike, rows: Sequence[dict], fields: Sequence[str]) -> None:
    """Write a whole CSV atomically (temporary file, then rename)."""
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def code_version() -> str | None:
    """The commit this code was checked out at (short hash, '+dirty' with uncommitted changes to tracked files),
    or None outside a git checkout: tables say they come from a frozen commit, and this is how a reader checks."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode != 0 or dirty.stdout.strip() else "")


def invoked_command(prog: str) -> str:
    """The running click command as a command line: `prog` and every option the caller set, in a form that reruns
    it (sys.argv would name the test runner or the embedding program instead)."""
    import shlex

    import click
    from click.core import ParameterSource

    ctx = click.get_current_context()
    words = prog.split()
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or ctx.get_parameter_source(param.name) is ParameterSource.DEFAULT:
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            words += [param.opts[0]] if value else list(param.secondary_opts[:1])
            continue
        for v in value if param.multiple else (value,):
            words += [param.opts[0], str(v)]
    return shlex.join(words)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line in a single write (O_APPEND): two benchmarks sharing a folder never interleave it."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def append_row(path: str | os.PathLike, row: dict, fields: Sequence[str]) -> None:
    """Append one row and flush it to disk: a killed benchmark keeps every finished row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


# Environment variables that cap the vector instructions of torch's own kernels, oneDNN's and MKL's. Rows written
# with AVX2 kernels are reproduced bit for bit on an AVX-512 host only with all three set (RESULTS.md §3e).
AVX2_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
KERNEL_PINS = tuple(AVX2_PINS)


def cpu_identity(cpuinfo: str) -> tuple[str, str, str]:
    """(vendor id, model name, widest vector extension the CPU offers) from the text of /proc/cpuinfo."""
    vendor, cpu, flags = "unknown", "unknown CPU", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id" and vendor == "unknown":
            vendor = value.strip()
        elif key.strip() == "model name" and cpu == "unknown CPU":
            cpu = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = set(value.split())
    widest = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "")
    return vendor, cpu, widest


def this_cpu() -> tuple[str, str, str]:
    """cpu_identity of this machine ('unknown' fields where /proc/cpuinfo cannot be read)."""
    try:
        return cpu_identity(Path("/proc/cpuinfo").read_text())
    except OSError:
        return "unknown", "unknown CPU", ""


def kernel_pins(environ: Mapping[str, str]) -> str:
    """The kernel pins in force, as 'NAME=value' joined by spaces ('' when none)."""
    return " ".join(f"{k}={environ[k]}" for k in KERNEL_PINS if environ.get(k))


def machine_note() -> str:
    """One line about where the numbers came from (CPU model and its widest vector extension, cores, load, torch and
    the CPU kernels it picked, any kernel pins, threads). The kernel level (AVX2, AVX512, …) matters for bit-for-bit
    reruns: the same commit on an Intel AVX512 host and an AMD AVX2 host agreed to 8 digits at the first InfoNoise
    refresh and then diverged (RESULTS.md §0); an AVX-512 host pinned to AVX2 reproduces the AVX2 host's rows."""
    _, cpu, widest = this_cpu()
    if widest:
        cpu = f"{cpu} ({widest})"
    pins = kernel_pins(os.environ)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    try:
        kernels = f" ({torch.backends.cpu.get_cpu_capability()} kernels)"
    except (AttributeError, RuntimeError):
        kernels = ""
    return (
        f"{cpu}, {os.cpu_count()} cores, load {load:.1f}, {gpu}, torch {torch.__version__}{kernels}, "
        + (f"pinned {pins}, " if pins else "")
        + f"{torch.get_num_threads()} thread(s)"
    )


class HostSyncCounter:
    """Counts the calls by which this project's code asks a tensor's value on the host (.item(), .cpu(),
    .tolist(), .numpy(), bool/float/int of a tensor) — each one a device synchronisation on a GPU. Library
    code (site-packages) and tests are not counted. `marks` can be taken between steps."""

    NAMES = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")

    def __init__(self):
        self.calls: list[tuple[str, str, int]] = []
        self._originals: dict = {}

    def __enter__(self) -> HostSyncCounter:
        import sys

        for name in self.NAMES:
            original = self._originals[name] = getattr(torch.Tensor, name)

            def counted(tensor, *a, _original=original, _name=name, **k):
                frame = sys._getframe(1)
                path = frame.f_code.co_filename
                if path.startswith(str(REPO)) and "site-packages" not in path and "/tests/" not in path:
                    self.calls.append((_name, path, frame.f_lineno))
                return _original(tensor, *a, **k)

            setattr(torch.Tensor, name, counted)
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)
