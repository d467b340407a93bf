"""Scoring a snapshot as one chain: generate → features → statistics → Fréchet distance, no image files.

Why a separate path: a benchmark evaluates dozens of snapshots; writing and re-reading thousands of
PNGs per evaluation would cost more than the sampling. Batches from sampling.generation go straight
into the detector's streaming statistics, so memory does not grow with the number of seeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from datafiles.images import ImageFolderDataset
from evaluation.detectors import Detector, get_detector
from evaluation.frechet import check_image_shape, check_reference, compute_stats, frechet_distance, load_stats
from sampling.generation import (
    build_sigmas,
    check_sample_memory,
    generate_images,
    load_network,
    parse_int_list,
    sigma_range,
)
from sampling.probe import probe_network
from torch_utils import distributed as dist


def evaluate_snapshot(
    net_or_path,
    ref_path: str | os.PathLike,
    seeds,
    steps: int = 18,
    grid: str = "edm",
    solver: str = "heun",
    batch: int = 64,
    *,
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    profile: dict | None = None,
    probe_data: str | os.PathLike | None = None,
    probe_samples: int = 128,
    probe_bins: int = 128,
    detector: str | Detector | None = None,
    inception_weights: str | None = None,
    binarize: bool = False,
    device: str | torch.device | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> float:
    """FD of a snapshot's EMA samples (one per seed) against reference statistics. Samples depend only
    on their seeds, so the same snapshot, seeds and grid give the same FD whatever the batch size or
    number of ranks.

    net_or_path: a snapshot path (its EMA weights and saved profile are used) or an already loaded
    network (then `profile` is the only profile). profile: an information profile for InfoGrid that
    overrides the snapshot's; probe_data: an image data set (folder or zip) to probe one from (rank 0 probes,
    broadcasts).
    detector: default the one the reference was made with. binarize: threshold samples at mid-grey
    (two-valued data sets; a model of ±1 data is scored on its decoded, binary samples).
    Under torchrun every rank must call this: seeds are dealt over ranks, feature sums all-reduced,
    and every rank returns rank 0's FD. Samples of another shape than the reference's images are refused;
    `log` gets the note that a reference without a recorded shape could not be checked."""
    dev = dist.init(device)
    refstats = load_stats(ref_path)
    if isinstance(detector, str) and detector != refstats["detector"]:
        raise ValueError(
            f"{ref_path}: computed with detector '{refstats['detector']}' but detector '{detector}' "
            f"was requested; statistics from different detectors are not comparable"
        )
    try:
        det = detector if isinstance(detector, Detector) else get_detector(refstats["detector"], dev, inception_weights)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"{ref_path}: records detector {refstats['detector']!r}: {str(e).splitlines()[0]}") from None
    check_reference(refstats, det, ref_path)
    if isinstance(net_or_path, torch.nn.Module):
        net = net_or_path.to(dev)
    else:
        net, saved = load_network(net_or_path, dev)
        profile = saved if profile is None else profile
    if len(net.data_shape) != 3:
        raise ValueError(
            f"the network generates data of shape {tuple(net.data_shape)}, not images; Fréchet "
            f"distances need images (sequence models: use dna.metrics)"
        )
    source = "the network's samples" if isinstance(net_or_path, torch.nn.Module) else f"samples of {net_or_path}"
    note = check_image_shape(refstats, net.data_shape, ref_path, source)
    if note and log is not None:
        log(note)
    seeds = parse_int_list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"need at least 2 seeds for a covariance, got {len(seeds)}")
    check_sample_memory(net, len(seeds), batch, keep=False)
    lo, hi = sigma_range(net, sigma_min, sigma_max, grid)
    if grid == "infogrid" and probe_data is not None:
        data = ImageFolderDataset(probe_data, use_labels=net.label_dim > 0)  # FD scores images only
        profile = probe_network(net, data, lo, hi, probe_samples, probe_bins, max(batch, 256), device=dev)
    sigmas = build_sigmas(net, grid, steps, rho, lo, hi, profile, dev)

    def images():
        for _, x in generate_images(net, seeds, batch, sigmas, solver, device=dev, progress=progress):
            yield torch.where(x >= 128, 255, 0).to(torch.uint8) if binarize else x

    stats = compute_stats(images(), det)
    mu, sigma = stats.mean_cov()
    fd = torch.tensor(
        [frechet_distance(mu, sigma, refstats["mu"], refstats["sigma"]) if dist.get_rank() == 0 else 0.0],
        dtype=torch.float64,
    )
    return float(dist.broadcast(fd, src=0).item())
