"""Sampling a snapshot: the network, its σ-grid and the seeded sample stream (docs/method.md §6).

Every sample is a function of its seed alone (EDM's StackedRandomGenerator: one generator per seed for
the latents, the class label and the churn noise), so neither the batch size nor the number of ranks
changes it; seeds are dealt out over ranks in whole batches. generate.py writes files from this stream;
evaluation.evaluate scores it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence

import torch
import tqdm

from sampling import grids
from sampling.solvers import SOLVERS, StackedRandomGenerator
from torch_utils import distributed as dist
from torch_utils.checks import INT64_MAX, check_memory

# What one seed costs in memory before any sample is kept: its entry in the list, its int, its share of the
# per-seed generators of a batch (sampling.solvers.StackedRandomGenerator) and of the output bookkeeping.
BYTES_PER_SEED = 64


def parse_int_list(s: str | Sequence[int]) -> list[int]:
    """'0-63,100' → [0, …, 63, 100] (ranges inclusive, EDM's syntax). ValueError names the bad piece. Counted
    before it is expanded: a typo like 0-99999999999 is refused with the memory the list would need, not
    answered with a MemoryError; every seed fits in int64 (the .npz files store them so), and none is given
    twice."""
    if not isinstance(s, str):
        return [int(v) for v in s]
    spans = []
    for part in s.split(","):
        part = part.strip()
        if m := re.fullmatch(r"(\d+)-(\d+)", part):
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"range '{part}' is empty (end before start)")
        elif re.fullmatch(r"\d+", part):
            lo = hi = int(part)
        else:
            raise ValueError(f"'{part}' is not a non-negative integer or a range like 0-63")
        if hi > INT64_MAX:
            raise ValueError(f"'{part}': seeds must be integers ≤ {INT64_MAX} (int64)")
        spans.append((lo, hi))
    ordered = sorted(spans)
    for (lo0, hi0), (lo1, hi1) in zip(ordered, ordered[1:]):
        if lo1 <= hi0:  # one seed twice: the same sample twice, and one file written over the other
            raise ValueError(f"seed {lo1} is given twice in '{s}'; every seed names one sample")
    count = sum(hi - lo + 1 for lo, hi in spans)
    check_memory(count * BYTES_PER_SEED, f"'{s}' is {count:,} seeds, whose list alone", "Give fewer seeds.")
    return [v for lo, hi in spans for v in range(lo, hi + 1)]


def check_sample_memory(net, seeds: int, batch: int, keep: bool) -> None:
    """Refuse, before sampling, a batch whose solver state, or a set of kept samples (an .npz, FASTA), that
    would not fit in memory, with the size it would need (ValueError naming --batch or --seeds)."""
    per_sample = math.prod(int(s) for s in net.data_shape)
    check_memory(
        batch * per_sample * 8 * 6,
        f"--batch {batch} of {list(net.data_shape)} (the solver's float64 state)",
        "Lower --batch.",
    )
    if keep:
        check_memory(
            seeds * (per_sample * 4 + BYTES_PER_SEED),
            f"{seeds:,} samples of {list(net.data_shape)} kept for one file",
            "Give fewer --seeds, or write PNGs with --outdir only.",
        )


def load_network(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict | None]:
    """(EMA network in eval mode, the snapshot's information profile or None). `path`: a snapshot .pt, an
    EDM network pickle (.pkl, converted in memory without running code from it) or a URL to either."""
    from models import networks
    from models.network_source import open_snapshot

    snapshot = open_snapshot(path)
    net = networks.from_snapshot(snapshot, which="ema", device=device)
    net.label_names = snapshot.get("options", {}).get("label_names")  # cell-type names for FASTA headers
    return net, snapshot.get("profile")


# EDM's generate.py samples every network on [0.002, 80] (edm_sampler's defaults cut to the network's range).
# On EDM's grid a VP network (σ ∈ [0.001, 152]) or a VE one ([0.02, 100]) defaults to that range here too, so
# EDM's seeds give EDM's images; --sigma-min/--sigma-max still pick any range inside the network's.
EDM_SAMPLER_RANGE = (0.002, 80.0)


def _precond(net) -> str | None:
    return (getattr(net, "network_kwargs", None) or {}).get("precond")


def sigma_range(net, sigma_min: float | None, sigma_max: float | None, grid: str | None = None) -> tuple[float, float]:
    """The requested σ range, clamped to the range the network was trained on (it has never seen σ
    outside it). None means the default end: the network's own, or for a VP/VE network on the EDM grid
    EDM's sampler range [0.002, 80] within the network's (EDM_SAMPLER_RANGE)."""
    default_lo, default_hi = net.sigma_min, net.sigma_max
    if grid == "edm" and _precond(net) in ("vp", "ve"):
        lo, hi = max(EDM_SAMPLER_RANGE[0], net.sigma_min), min(EDM_SAMPLER_RANGE[1], net.sigma_max)
        if lo < hi:
            default_lo, default_hi = lo, hi
    lo = default_lo if sigma_min is None else max(float(sigma_min), net.sigma_min)
    hi = default_hi if sigma_max is None else min(float(sigma_max), net.sigma_max)
    if not lo < hi:
        raise ValueError(
            f"empty σ range after clamping to the network's [{net.sigma_min}, {net.sigma_max}]: "
            f"sigma_min={lo}, sigma_max={hi}"
        )
    return lo, hi


def build_sigmas(
    net,
    kind: str,
    steps: int,
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    profile: dict | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The σ-grid for `net` (float64 on `device`), within the network's σ range (`sigma_range`)."""
    lo, hi = sigma_range(net, sigma_min, sigma_max, kind)
    what = f"the {kind} σ-grid of {steps} steps" + (f" with rho {rho:g}" if kind == "edm" else "")
    try:
        sigmas = grids.make_grid(kind, steps, lo, hi, rho=rho, profile=profile)
    except (OverflowError, ZeroDivisionError, FloatingPointError) as e:
        raise ValueError(f"{what} cannot be computed on [{lo:g}, {hi:g}] ({e}); change --rho/--steps/--grid") from None
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    # whatever the grid and its parameters: N finite levels from σ_max down, strictly decreasing, then 0
    if not (torch.isfinite(s).all() and (s[:-1] > 0).all() and s[-1] == 0 and (s[1:] < s[:-1]).all()):
        raise ValueError(
            f"{what} is not a decreasing sequence of finite σ ending at 0 on [{lo:g}, {hi:g}]; change --rho/--steps"
        )
    return torch.as_tensor(net.round_sigma(sigmas), dtype=torch.float64).to(device)


def check_class(net, class_idx: int | None) -> None:
    if class_idx is None:
        return
    if not net.label_dim:
        raise ValueError(f"--class {class_idx}: the network is unconditional; drop --class")
    if not 0 <= class_idx < net.label_dim:
        raise ValueError(
            f"--class {class_idx} is out of range: the network has {net.label_dim} classes (0..{net.label_dim - 1})"
        )


def _rank_batches(n: int, batch_size: int, rank: int, world_size: int) -> list[torch.Tensor]:
    """EDM's dealing: split positions 0..n-1 into a multiple of world_size near-equal batches of at most
    batch_size, rank r taking batches r, r + W, … Every rank gets the same number of batches."""
    num_batches = max(math.ceil(n / (batch_size * world_size)), 1) * world_size
    return [b for b in torch.arange(n).tensor_split(num_batches)[rank::world_size] if len(b)]


@torch.no_grad()
def generate_batches(
    net,
    seeds: Sequence[int],
    batch_size: int,
    sigmas: torch.Tensor,
    solver: str = "heun",
    class_idx: int | None = None,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = float("inf"),
    S_noise: float = 1.0,
    device: torch.device | str = "cpu",
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = False,
) -> Iterator[tuple[list[int], list[int], torch.Tensor, torch.Tensor | None]]:
    """This rank's share of `seeds`: yields (positions in `seeds`, seeds, samples in model space (float32,
    on CPU), class indices or None). Per seed, draws happen in EDM's order: latents, label, churn."""
    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver '{solver}'. Valid solvers: {', '.join(SOLVERS)}")
    check_class(net, class_idx)
    seeds = [int(s) for s in seeds]
    rank = dist.get_rank() if rank is None else rank
    world_size = dist.get_world_size() if world_size is None else world_size
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).to(device)
    sample = SOLVERS[solver]
    batches = _rank_batches(len(seeds), batch_size, rank, world_size)
    for pos in tqdm.tqdm(batches, unit="batch", disable=not progress or rank != 0):
        batch_seeds = [seeds[i] for i in pos.tolist()]
        rnd = StackedRandomGenerator(batch_seeds, device)
        latents = rnd.randn([len(batch_seeds), *net.data_shape])
        labels = onehot = None
        if net.label_dim:
            labels = (
                rnd.randint(net.label_dim)
                if class_idx is None
                else torch.full([len(batch_seeds)], class_idx, device=device)
            )
            onehot = torch.nn.functional.one_hot(labels, net.label_dim).to(torch.float32)
        x = sample(
            net,
            latents.to(torch.float64) * sigmas[0],
            sigmas,
            class_labels=onehot,
            S_churn=S_churn,
            S_min=S_min,
            S_max=S_max,
            S_noise=S_noise,
            randn_like=rnd.randn_like,
        )
        yield pos.tolist(), batch_seeds, x.to(torch.float32).cpu(), None if labels is None else labels.cpu()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] → uint8 (EDM's rounding: x·127.5 + 128, clipped, truncated)."""
    return (x * 127.5 + 128).clip(0, 255).to(torch.uint8)


def generate_images(
    net,
    seeds: Sequence[int],
    batch_size: int,
    sigmas: torch.Tensor,
    solver: str = "heun",
    return_labels: bool = False,
    **kwargs,
) -> Iterator[tuple]:
    """This rank's images as (seeds, uint8 [N, C, H, W]) per batch — or (seeds, images, class indices or
    None) with return_labels. kwargs as `generate_batches` (class_idx, churn, device, rank, progress)."""
    for _, batch_seeds, x, labels in generate_batches(net, seeds, batch_size, sigmas, solver, **kwargs):
        yield (batch_seeds, to_uint8(x), labels) if return_labels else (batch_seeds, to_uint8(x))
