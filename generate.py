"""Generate samples from a snapshot: checkpoint → σ-grid (edm | infogrid | loguniform) → Heun/Euler → files.

    python generate.py --network run/network-snapshot-000200.pt --outdir out --seeds 0-63 --grid-png out.png
    python generate.py --network https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-cifar10-32x32-cond-vp.pkl \
        --outdir out --seeds 0-63 --batch 64      # EDM's pickle, read without running code: EDM's images
    torchrun --nproc_per_node=2 generate.py --network ... --seeds 0-49999 --npz samples.npz --grid infogrid

Only flags and files here: the sample stream is sampling.generation's (each sample a function of its
seed alone, whatever the batch size or number of ranks). Uses the EMA weights. InfoGrid (docs/method.md §6)
takes the information profile saved in the snapshot, or one probed from data with --probe-data. An EDM
network gives EDM's images for EDM's seeds: its draws (latents, label, churn noise at every step) and, for
VP/VE networks on the edm grid, its σ range [0.002, 80] are EDM's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import PIL.Image
import torch

import modalities
from sampling import grids
from sampling.generation import (
    build_sigmas,
    check_class,
    check_sample_memory,
    generate_batches,
    load_network,
    parse_int_list,
    sigma_range,
    to_uint8,
)
from sampling.image_grid import save_image_grid
from sampling.probe import probe_network
from sampling.solvers import SOLVERS, nfe
from torch_utils import distributed as dist
from torch_utils.checks import Float, Int, check_memory, one_line
from torch_utils.files import COMPLETION_MARKER, atomic_write, check_writable, check_writable_dir
from training.edm_cli import EDMCommand

GRID_PNG_MAX = 1024  # a contact sheet shows at most this many samples (the first seeds)
# Upper bounds of the sampler's numbers (beyond them the work is unbounded or the grid degenerates): EDM uses
# 18–256 steps, ρ = 7 and S_noise ≈ 1.003–1.007.
MAX_STEPS, MIN_RHO, MAX_RHO, MAX_S_NOISE, MAX_PROBE_BINS = 100_000, 0.05, 1000.0, 10.0, 100_000
COMPLETE = COMPLETION_MARKER  # written into --outdir after its last PNG


def _image_path(outdir: Path, seed: int, subdirs: bool) -> Path:
    return outdir / f"{seed - seed % 1000:06d}" / f"{seed:06d}.png" if subdirs else outdir / f"{seed:06d}.png"


def _save_png(image: np.ndarray, path: Path) -> None:
    """One uint8 [C, H, W] image (C = 1 grey, 3 RGB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(path)


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


# EDM's generate.py spellings (training/edm_cli.py). EDM's sampler ablations (--disc vp/ve/iddpm, --schedule
# vp/ve, --scaling vp) have no counterpart: this sampler is EDM's own (σ(t) = t, s(t) = 1).
EDM_SPELLINGS = dict(
    aliases={
        "--sigma_min": "--sigma-min",
        "--sigma_max": "--sigma-max",
        "--S_churn": "--S-churn",
        "--S_min": "--S-min",
        "--S_max": "--S-max",
        "--S_noise": "--S-noise",
        "--disc": "--grid",
    },
    values={"--disc": {"edm": "edm"}, "--schedule": {"linear": None}, "--scaling": {"none": None}},
)


@click.command(cls=EDMCommand, edm=EDM_SPELLINGS, context_settings={"show_default": True})
@click.option(
    "--network",
    "network_path",
    required=True,
    help="Network: a snapshot .pt, an EDM .pkl (converted in memory, no code from it runs), or a URL to either",
)
@click.option("--outdir", type=click.Path(file_okay=False), help="Folder for {seed:06d}.png (FASTA for sequences)")
@click.option("--seeds", callback=_seeds_option, default="0-63", help="Seeds, e.g. 0-63,100")
@click.option("--batch", "batch_size", type=Int(1), default=64, help="Samples per batch and rank")
@click.option("--steps", type=Int(1, MAX_STEPS), default=18, help="Sampling levels N (Heun: 2N−1 NFE)")
@click.option("--grid", "grid_kind", type=click.Choice(grids.GRID_KINDS), default="edm", help="σ discretisation")
@click.option("--rho", type=Float(MIN_RHO, MAX_RHO), default=7.0, help="EDM grid exponent")
@click.option(
    "--sigma-min",
    type=Float(0, lo_open=True),
    default=None,
    help="Lowest σ (floor: the network's; default: the network's, on the edm grid for VP/VE networks EDM's 0.002)",
)
@click.option(
    "--sigma-max",
    type=Float(0, lo_open=True),
    default=None,
    help="Highest σ (ceiling: the network's; default: the network's, on the edm grid for VP/VE networks EDM's 80)",
)
@click.option("--solver", type=click.Choice(list(SOLVERS)), default="heun", help="ODE solver")
@click.option("--S-churn", "S_churn", type=Float(0), default=0.0, help="Stochasticity (EDM Alg. 2)")
@click.option("--S-min", "S_min", type=Float(0), default=0.0, help="Churn only for σ ≥ S_min")
@click.option(
    "--S-max", "S_max", type=Float(0, allow_inf=True), default=float("inf"), help="Churn only for σ ≤ S_max (inf: all)"
)
@click.option("--S-noise", "S_noise", type=Float(0, MAX_S_NOISE), default=1.0, help="Churn noise inflation")
@click.option("--class", "class_idx", type=Int(0), default=None, help="Class index (default: random per seed)")
@click.option("--subdirs", is_flag=True, help="PNGs in subfolders of 1000 seeds")
@click.option(
    "--grid-png",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Contact sheet of the samples (first {GRID_PNG_MAX} seeds)",
)
@click.option(
    "--npz",
    "npz_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="All samples in one .npz: 'images' uint8 [N,H,W,C] (sequences: 'samples' float32 [N,4,L]), "
    "'seeds', 'labels' (-1 if unconditional)",
)
@click.option(
    "--probe-data",
    type=click.Path(exists=True),
    default=None,
    help="Data set to probe an information profile from, for --grid infogrid (overrides the snapshot's)",
)
@click.option("--probe-samples", type=Int(1), default=128, help="Examples probed per σ bin")
@click.option("--probe-bins", type=Int(2, MAX_PROBE_BINS), default=128, help="Log-σ bins of the probed profile")
@click.option("--device", default=None, help="cpu | cuda (default: cuda if available)")
@click.option(
    "-n", "--dry-run", is_flag=True, help="Load the network, print the σ-grid and what would be written; sample nothing"
)
def main(
    network_path,
    outdir,
    seeds,
    batch_size,
    steps,
    grid_kind,
    rho,
    sigma_min,
    sigma_max,
    solver,
    S_churn,
    S_min,
    S_max,
    S_noise,
    class_idx,
    subdirs,
    grid_png,
    npz_path,
    probe_data,
    probe_samples,
    probe_bins,
    device,
    dry_run,
):
    """Generate samples from a snapshot's EMA network. Run under torchrun to shard seeds over ranks."""
    if not (outdir or grid_png or npz_path):
        raise click.UsageError("nothing to write: give --outdir, --npz and/or --grid-png")
    if S_churn > 0 and S_min > S_max:
        raise click.UsageError(f"--S-min {S_min:g} is above --S-max {S_max:g}: no σ would get the --S-churn noise")
    try:
        dev = dist.init(device)
        for path, what in ((npz_path, "--npz file"), (grid_png, "--grid-png image")):
            if path and not dry_run:  # before any work: a bad path fails now, not after the sampling
                check_writable(path, what)
        if outdir and not dry_run:
            check_writable_dir(outdir, "--outdir folder")
            (Path(outdir) / COMPLETE).unlink(missing_ok=True)  # the folder is being (re)written
        net, profile = load_network(network_path, dev)
        is_seq = len(net.data_shape) == 2
        if is_seq and grid_png:
            raise ValueError("--grid-png draws images; this network generates sequences (use --outdir or --npz)")
        check_class(net, class_idx)
        check_sample_memory(net, len(seeds), batch_size, keep=bool(npz_path) or is_seq)
        lo, hi = sigma_range(net, sigma_min, sigma_max, grid_kind)
        if (sigma_min is not None and sigma_min < lo) or (sigma_max is not None and sigma_max > hi):
            dist.print0(f"Note: σ range clamped to the network's: [{lo:g}, {hi:g}]")
        elif (sigma_min is None and lo != net.sigma_min) or (sigma_max is None and hi != net.sigma_max):
            dist.print0(
                f"Note: σ range [{lo:g}, {hi:g}], EDM's sampler range within the network's [{net.sigma_min:g}, "
                f"{net.sigma_max:g}] (--sigma-min/--sigma-max to change)"
            )
        if grid_kind == "infogrid" and probe_data:
            check_memory(
                probe_samples * math.prod(net.data_shape) * 4 * 8,
                f"--probe-samples {probe_samples} of {list(net.data_shape)}",
                "Lower --probe-samples.",
            )
            dist.print0(f"Probing the profile: {probe_samples} examples of {probe_data} x {probe_bins} σ bins...")
            data = modalities.open_for_network(probe_data, net)
            profile = probe_network(net, data, lo, hi, probe_samples, probe_bins, batch_size, device=dev)
        sigmas = build_sigmas(net, grid_kind, steps, rho, lo, hi, profile, dev)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(one_line(e)) from None
    rank = dist.get_rank()
    dist.print0(
        f"{len(seeds)} seeds, {dist.get_world_size()} rank(s), {solver} on the {grid_kind} grid, "
        f"{steps} steps = {nfe(solver, steps)} NFE"
    )
    dist.print0("σ: " + " ".join(f"{s:.4g}" for s in sigmas.tolist()))
    if dry_run:
        written = ", ".join(str(p) for p in (outdir, npz_path, grid_png) if p)
        dist.print0(f"Dry run: would write {written}")
        dist.shutdown()
        return

    keep_all, sheet = bool(npz_path) or is_seq, set(range(min(len(seeds), GRID_PNG_MAX))) if grid_png else set()
    mine = []  # (position, seed, sample, label) this rank hands to rank 0
    outdir = Path(outdir) if outdir else None
    for pos, batch_seeds, x, labels in generate_batches(
        net, seeds, batch_size, sigmas, solver, class_idx, S_churn, S_min, S_max, S_noise, dev, progress=True
    ):
        data = x.numpy() if is_seq else to_uint8(x).numpy()
        lab = [-1] * len(pos) if labels is None else labels.tolist()
        for p, s, d, l in zip(pos, batch_seeds, data, lab):
            if outdir and not is_seq:
                _save_png(d, _image_path(outdir, s, subdirs))
            if keep_all or p in sheet:
                mine.append((p, s, d, l))
    gathered = dist.gather(mine, dst=0)
    if rank == 0:
        items = sorted((it for part in gathered for it in part), key=lambda it: it[0])
        seeds_arr = np.array([it[1] for it in items], dtype=np.int64)
        labels_arr = np.array([it[3] for it in items], dtype=np.int64)
        if is_seq and outdir:  # the sequences' own format (FASTA), by the modality that generates this shape
            modalities.for_shape(net.data_shape).write_samples(
                torch.as_tensor(np.stack([it[2] for it in items])),
                outdir / "samples",
                None if net.label_dim == 0 else labels_arr.tolist(),
                getattr(net, "label_names", None),
                names=[f"seed{s:06d}" for s in seeds_arr],
            )
        if npz_path:
            samples = np.stack([it[2] for it in items])
            key, samples = ("samples", samples) if is_seq else ("images", samples.transpose(0, 2, 3, 1))
            with atomic_write(npz_path, "wb") as f:  # a killed run leaves no truncated .npz under the name
                layout = {} if is_seq else {"layout": np.str_("NHWC")}  # fid.py never guesses it from the shape
                np.savez(f, **{key: samples}, seeds=seeds_arr, labels=labels_arr, **layout)
        if grid_png:
            save_image_grid(np.stack([it[2] for it in items if it[0] in sheet]), grid_png)
        if outdir and not is_seq:  # every PNG is in place: say so, and how many (fid.py calc checks it)
            with atomic_write(outdir / COMPLETE) as f:
                f.write(json.dumps({"count": len(seeds), "seeds": [int(seeds[0]), int(seeds[-1])]}) + "\n")
        written = [str(p) for p in (outdir, npz_path, grid_png) if p]
        dist.print0(f"Wrote {len(seeds)} samples: {', '.join(written)}")
    dist.barrier()
    dist.shutdown()


if __name__ == "__main__":
    main()
