"""Generate samples from a snapshot: checkpoint → σ-grid (edm | infogrid | loguniform) → Heun/Euler → files.

    python generate.py --network run/network-snapshot-000200.pt --outdir out --seeds 0-63 --grid-png out.png
    torchrun --nproc_per_node=2 generate.py --network ... --seeds 0-49999 --npz samples.npz --grid infogrid

Every sample is a function of its seed alone (EDM's StackedRandomGenerator: one generator per seed for
the latents, the class label and the churn noise), so batch size and the number of ranks do not
change it; seeds are dealt out over ranks in whole batches. Uses the EMA weights. InfoGrid (spec §6)
takes the information profile saved in the snapshot, or one probed from data with --probe-data.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import numpy as np
import PIL.Image
import torch
import tqdm

from schedulers import grids
from torch_utils import checkpoint
from torch_utils import distributed as dist
from training.image_grid import save_image_grid  # re-exported: the contact sheet lives in one place
from training.sampling import SOLVERS, StackedRandomGenerator, nfe

GRID_PNG_MAX = 1024  # a contact sheet shows at most this many samples (the first seeds)

__all__ = ["parse_int_list", "load_network", "sigma_range", "probe_from_data", "build_sigmas",
           "check_class", "generate_batches", "generate_images", "to_uint8", "save_image_grid", "main"]


# ----------------------------------------------------------------------------------------------------
# Library API (also used by fid.py's generate-and-evaluate path).


def parse_int_list(s: str | Sequence[int]) -> list[int]:
    """'0-63,100' → [0, …, 63, 100] (ranges inclusive, EDM's syntax). ValueError names the bad piece."""
    if not isinstance(s, str):
        return [int(v) for v in s]
    out = []
    for part in s.split(","):
        part = part.strip()
        if m := re.fullmatch(r"(\d+)-(\d+)", part):
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"range '{part}' is empty (end before start)")
            out.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            out.append(int(part))
        else:
            raise ValueError(f"'{part}' is not a non-negative integer or a range like 0-63")
    return out


def load_network(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict | None]:
    """(EMA network in eval mode, the snapshot's information profile or None)."""
    from training import networks
    snapshot = checkpoint.load(path)
    net = networks.from_snapshot(snapshot, which="ema", device=device)
    net.label_names = snapshot.get("options", {}).get("label_names")  # cell-type names for FASTA headers
    return net, snapshot.get("profile")


def sigma_range(net, sigma_min: float | None, sigma_max: float | None) -> tuple[float, float]:
    """The requested σ range, clamped to the range the network was trained on (it has never seen σ
    outside it); None means the network's own end."""
    lo = net.sigma_min if sigma_min is None else max(float(sigma_min), net.sigma_min)
    hi = net.sigma_max if sigma_max is None else min(float(sigma_max), net.sigma_max)
    if not lo < hi:
        raise ValueError(f"empty σ range after clamping to the network's [{net.sigma_min}, {net.sigma_max}]: "
                         f"sigma_min={lo}, sigma_max={hi}")
    return lo, hi


def probe_from_data(net, path: str | os.PathLike, sigma_min: float, sigma_max: float, num_samples: int = 128,
                    num_bins: int = 128, batch_size: int = 256, seed: int = 0, device="cpu") -> dict:
    """Profile for InfoGrid of a checkpoint without one (fixed training schedule): probe the network's
    unweighted error on `num_samples` seeded-random examples of the data set over `num_bins` log-σ bins
    (the scheduler's grid, spec §5), with fixed weights (spec §7, grids.probe_profile)."""
    from schedulers.information import log_sigma_grid
    from training.dataset import open_dataset
    kw = {"length": net.data_shape[-1]} if len(net.data_shape) == 2 else {}
    ds = open_dataset(path, use_labels=net.label_dim > 0, **kw)
    if tuple(ds.data_shape) != tuple(net.data_shape):
        raise ValueError(f"{path}: data shape {tuple(ds.data_shape)} does not match the network's "
                         f"{tuple(net.data_shape)}")
    if net.label_dim and ds.label_dim > net.label_dim:
        raise ValueError(f"{path}: {ds.label_dim} classes but the network knows {net.label_dim}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=gen)[:num_samples].tolist()
    items = [ds[i] for i in idx]
    x = torch.as_tensor(np.stack([it[0] for it in items]))
    labels = None
    if net.label_dim:
        labels = torch.zeros(len(items), net.label_dim)
        labels[:, :ds.label_dim] = torch.as_tensor(np.stack([it[1] for it in items]))
    grid = log_sigma_grid(sigma_min, sigma_max, num_bins)
    data = [(x, labels)] if labels is not None else x
    return grids.probe_profile(net, data, grid, n_samples=num_samples, batch_size=batch_size,
                               generator=gen, device=device)


def build_sigmas(net, kind: str, steps: int, rho: float = 7.0, sigma_min: float | None = None,
                 sigma_max: float | None = None, profile: dict | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """The σ-grid for `net` (float64 on `device`), within the network's σ range."""
    lo, hi = sigma_range(net, sigma_min, sigma_max)
    sigmas = grids.make_grid(kind, steps, lo, hi, rho=rho, profile=profile)
    return torch.as_tensor(net.round_sigma(sigmas), dtype=torch.float64).to(device)


def check_class(net, class_idx: int | None) -> None:
    if class_idx is None:
        return
    if not net.label_dim:
        raise ValueError(f"--class {class_idx}: the network is unconditional; drop --class")
    if not 0 <= class_idx < net.label_dim:
        raise ValueError(f"--class {class_idx} is out of range: the network has {net.label_dim} classes "
                         f"(0..{net.label_dim - 1})")


def _rank_batches(n: int, batch_size: int, rank: int, world_size: int) -> list[torch.Tensor]:
    """EDM's dealing: split positions 0..n-1 into a multiple of world_size near-equal batches of at most
    batch_size, rank r taking batches r, r + W, … Every rank gets the same number of batches."""
    num_batches = max(math.ceil(n / (batch_size * world_size)), 1) * world_size
    return [b for b in torch.arange(n).tensor_split(num_batches)[rank::world_size] if len(b)]


@torch.no_grad()
def generate_batches(net, seeds: Sequence[int], batch_size: int, sigmas: torch.Tensor, solver: str = "heun",
                     class_idx: int | None = None, S_churn: float = 0.0, S_min: float = 0.0,
                     S_max: float = float("inf"), S_noise: float = 1.0, device: torch.device | str = "cpu",
                     rank: int | None = None, world_size: int | None = None, progress: bool = False,
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
            labels = rnd.randint(net.label_dim) if class_idx is None else \
                torch.full([len(batch_seeds)], class_idx, device=device)
            onehot = torch.nn.functional.one_hot(labels, net.label_dim).to(torch.float32)
        x = sample(net, latents.to(torch.float64) * sigmas[0], sigmas, class_labels=onehot, S_churn=S_churn,
                   S_min=S_min, S_max=S_max, S_noise=S_noise, randn_like=rnd.randn_like)
        yield pos.tolist(), batch_seeds, x.to(torch.float32).cpu(), None if labels is None else labels.cpu()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] → uint8 (EDM's rounding: x·127.5 + 128, clipped, truncated)."""
    return (x * 127.5 + 128).clip(0, 255).to(torch.uint8)


def generate_images(net, seeds: Sequence[int], batch_size: int, sigmas: torch.Tensor, solver: str = "heun",
                    return_labels: bool = False, **kwargs) -> Iterator[tuple]:
    """This rank's images as (seeds, uint8 [N, C, H, W]) per batch — or (seeds, images, class indices or
    None) with return_labels. kwargs as `generate_batches` (class_idx, churn, device, rank, progress)."""
    for _, batch_seeds, x, labels in generate_batches(net, seeds, batch_size, sigmas, solver, **kwargs):
        yield (batch_seeds, to_uint8(x), labels) if return_labels else (batch_seeds, to_uint8(x))


def _image_path(outdir: Path, seed: int, subdirs: bool) -> Path:
    return outdir / f"{seed - seed % 1000:06d}" / f"{seed:06d}.png" if subdirs else outdir / f"{seed:06d}.png"


def _save_png(image: np.ndarray, path: Path) -> None:
    """One uint8 [C, H, W] image (C = 1 grey, 3 RGB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(path)


def _probe_on_rank0(net, probe_data, lo, hi, samples, bins, batch_size, dev) -> dict:
    """Rank 0 probes and broadcasts the profile, so every rank builds the same grid. A failure on rank 0
    travels as NaNs, so the other ranks stop too instead of waiting forever."""
    from schedulers.information import log_sigma_grid
    mmse, error = torch.full([bins], math.nan, dtype=torch.float64), None
    if dist.get_rank() == 0:
        dist.print0(f"Probing the profile: {samples} examples of {probe_data} x {bins} σ bins...")
        try:
            mmse = probe_from_data(net, probe_data, lo, hi, samples, bins, batch_size, device=dev)["mmse"]
        except Exception as e:  # re-raised below, after the other ranks have been told
            error = e
    mmse = dist.broadcast(mmse.to(dev), src=0).cpu()
    if error is not None:
        raise error
    if mmse.isnan().all():
        raise ValueError("probing failed on rank 0")
    sigma = log_sigma_grid(lo, hi, bins)
    return {"sigma": sigma, "mmse": mmse, "hdot": mmse / sigma**3}


def _gather(obj) -> list | None:
    """Every rank's `obj` on rank 0 (in rank order), None elsewhere; [obj] without torchrun."""
    if not dist.is_distributed():
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    torch.distributed.gather_object(obj, out, dst=0)
    return out


# ----------------------------------------------------------------------------------------------------
# CLI.


def _seeds_option(ctx, param, value):
    try:
        seeds = parse_int_list(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if not seeds:
        raise click.BadParameter("no seeds given")
    return seeds


@click.command(context_settings={"show_default": True})
@click.option("--network", "network_path", required=True, help="Snapshot (network-snapshot-*.pt) to sample from")
@click.option("--outdir", type=click.Path(file_okay=False), help="Folder for {seed:06d}.png (FASTA for sequences)")
@click.option("--seeds", callback=_seeds_option, default="0-63", help="Seeds, e.g. 0-63,100")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, help="Samples per batch and rank")
@click.option("--steps", type=click.IntRange(min=1), default=18, help="Sampling levels N (Heun: 2N−1 NFE)")
@click.option("--grid", "grid_kind", type=click.Choice(grids.GRID_KINDS), default="edm", help="σ discretisation")
@click.option("--rho", type=click.FloatRange(min=0, min_open=True), default=7.0, help="EDM grid exponent")
@click.option("--sigma-min", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Lowest σ (default and floor: the network's)")
@click.option("--sigma-max", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Highest σ (default and ceiling: the network's)")
@click.option("--solver", type=click.Choice(list(SOLVERS)), default="heun", help="ODE solver")
@click.option("--S-churn", "S_churn", type=click.FloatRange(min=0), default=0.0, help="Stochasticity (EDM Alg. 2)")
@click.option("--S-min", "S_min", type=click.FloatRange(min=0), default=0.0, help="Churn only for σ ≥ S_min")
@click.option("--S-max", "S_max", type=click.FloatRange(min=0), default=float("inf"), help="Churn only for σ ≤ S_max")
@click.option("--S-noise", "S_noise", type=float, default=1.0, help="Churn noise inflation")
@click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
              help="Class index (default: random per seed)")
@click.option("--subdirs", is_flag=True, help="PNGs in subfolders of 1000 seeds")
@click.option("--grid-png", type=click.Path(dir_okay=False), default=None,
              help=f"Contact sheet of the samples (first {GRID_PNG_MAX} seeds)")
@click.option("--npz", "npz_path", type=click.Path(dir_okay=False), default=None,
              help="All samples in one .npz: 'images' uint8 [N,H,W,C] (sequences: 'samples' float32 [N,4,L]), "
                   "'seeds', 'labels' (-1 if unconditional)")
@click.option("--probe-data", type=click.Path(exists=True), default=None,
              help="Data set to probe an information profile from, for --grid infogrid (overrides the snapshot's)")
@click.option("--probe-samples", type=click.IntRange(min=1), default=128, help="Examples probed per σ bin")
@click.option("--probe-bins", type=click.IntRange(min=2), default=128, help="Log-σ bins of the probed profile")
@click.option("--device", default=None, help="cpu | cuda (default: cuda if available)")
def main(network_path, outdir, seeds, batch_size, steps, grid_kind, rho, sigma_min, sigma_max, solver, S_churn,
         S_min, S_max, S_noise, class_idx, subdirs, grid_png, npz_path, probe_data, probe_samples, probe_bins,
         device):
    """Generate samples from a snapshot's EMA network. Run under torchrun to shard seeds over ranks."""
    if not (outdir or grid_png or npz_path):
        raise click.UsageError("nothing to write: give --outdir, --npz and/or --grid-png")
    dev = dist.init(device)
    rank = dist.get_rank()
    try:
        net, profile = load_network(network_path, dev)
        is_seq = len(net.data_shape) == 2
        if is_seq and grid_png:
            raise ValueError("--grid-png draws images; this network generates sequences (use --outdir or --npz)")
        check_class(net, class_idx)
        lo, hi = sigma_range(net, sigma_min, sigma_max)
        if (sigma_min is not None and sigma_min < lo) or (sigma_max is not None and sigma_max > hi):
            dist.print0(f"Note: σ range clamped to the network's: [{lo:g}, {hi:g}]")
        if grid_kind == "infogrid" and probe_data:
            profile = _probe_on_rank0(net, probe_data, lo, hi, probe_samples, probe_bins, batch_size, dev)
        sigmas = build_sigmas(net, grid_kind, steps, rho, lo, hi, profile, dev)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    dist.print0(f"{len(seeds)} seeds, {dist.get_world_size()} rank(s), {solver} on the {grid_kind} grid, "
                f"{steps} steps = {nfe(solver, steps)} NFE")
    dist.print0("σ: " + " ".join(f"{s:.4g}" for s in sigmas.tolist()))

    keep_all, sheet = bool(npz_path) or is_seq, set(range(min(len(seeds), GRID_PNG_MAX))) if grid_png else set()
    mine = []  # (position, seed, sample, label) this rank hands to rank 0
    outdir = Path(outdir) if outdir else None
    for pos, batch_seeds, x, labels in generate_batches(
            net, seeds, batch_size, sigmas, solver, class_idx, S_churn, S_min, S_max, S_noise, dev, progress=True):
        data = x.numpy() if is_seq else to_uint8(x).numpy()
        lab = [-1] * len(pos) if labels is None else labels.tolist()
        for p, s, d, l in zip(pos, batch_seeds, data, lab):
            if outdir and not is_seq:
                _save_png(d, _image_path(outdir, s, subdirs))
            if keep_all or p in sheet:
                mine.append((p, s, d, l))
    gathered = _gather(mine)
    if rank == 0:
        items = sorted((it for part in gathered for it in part), key=lambda it: it[0])
        seeds_arr = np.array([it[1] for it in items], dtype=np.int64)
        labels_arr = np.array([it[3] for it in items], dtype=np.int64)
        if is_seq and outdir:
            from training.sequences import write_fasta
            write_fasta(outdir / "samples.fasta", torch.as_tensor(np.stack([it[2] for it in items])),
                        names=[f"seed{s:06d}" for s in seeds_arr],
                        labels=None if net.label_dim == 0 else labels_arr.tolist(),
                        label_names=getattr(net, "label_names", None))
        if npz_path:
            Path(npz_path).parent.mkdir(parents=True, exist_ok=True)
            samples = np.stack([it[2] for it in items])
            key, samples = ("samples", samples) if is_seq else ("images", samples.transpose(0, 2, 3, 1))
            np.savez(npz_path, **{key: samples}, seeds=seeds_arr, labels=labels_arr)
        if grid_png:
            Path(grid_png).parent.mkdir(parents=True, exist_ok=True)
            save_image_grid(np.stack([it[2] for it in items if it[0] in sheet]), grid_png)
        written = [str(p) for p in (outdir, npz_path, grid_png) if p]
        dist.print0(f"Wrote {len(seeds)} samples: {', '.join(written)}")
    dist.barrier()
    dist.shutdown()


if __name__ == "__main__":
    main()
