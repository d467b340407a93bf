"""Probing: the information profile of a trained network with fixed weights (docs/method.md §6–§7).

The one probe of the project. `probe_profile` measures m̂(σ_k) = mean ‖D(x0 + σ_k·ε; σ_k) − x0‖² — the
unweighted error InfoNoise collects online (§2) — on given data; `probe_network` does it for a network
and a data set (opened by the caller, e.g. `modalities.open_for_network`), once, on rank 0, and hands every
rank the same profile. InfoGrid (§6) of a
checkpoint trained with a fixed schedule, the offline diagnostic (analysis.diagnostics) and the audit
all read profiles from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch

from datafiles.base import model_space
from infonoise.information import log_sigma_grid
from torch_utils import distributed as dist


def _collect(data: torch.Tensor | Iterable, n_samples: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """First `n_samples` examples (model space) and their labels (or None) from a tensor or an iterable
    of batches — tensors or (data, labels) tuples as a DataLoader over a data set yields them."""
    if isinstance(data, torch.Tensor):
        return model_space(data[:n_samples]), None
    xs, ys = [], []
    count = 0
    for batch in data:
        x, y = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        x = model_space(torch.as_tensor(x))
        xs.append(x)
        if y is not None:
            ys.append(torch.as_tensor(y))
        count += len(x)
        if count >= n_samples:
            break
    if not xs:
        raise ValueError("probe data is empty")
    x = torch.cat(xs)[:n_samples]
    y = torch.cat(ys)[:n_samples] if ys and ys[0].numel() > 0 else None
    return x, y


@torch.no_grad()
def probe_profile(
    denoise: Callable[..., torch.Tensor],
    data: torch.Tensor | Iterable,
    sigma_grid: torch.Tensor,
    n_samples: int = 128,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Estimate a profile for InfoGrid from a trained network with fixed weights (docs/method.md §7 "probed from a
    well-trained checkpoint"): m̂(σ_k) = mean_j ‖D(x0_j + σ_k·ε_j; σ_k) − x0_j‖² (the *unweighted* error,
    summed over dimensions — the same statistic InfoNoise collects online, docs/method.md §2), ḣ = m̂/σ³.

    The same data and the same noise ε_j are used at every σ_k (common random numbers), so the
    sampling noise is shared across levels and the profile is smooth in σ even for few samples.
    `denoise(x, sigma[, class_labels=...])` is called in float32 on `device`; labels from the data are
    passed through when present (conditional networks)."""
    sigma_grid = torch.as_tensor(sigma_grid, dtype=torch.float64).flatten()
    x0, labels = _collect(data, n_samples)
    x0 = x0.to(device, torch.float32)
    labels = labels.to(device, torch.float32) if labels is not None else None
    eps = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(device)
    m = len(x0)
    total = torch.zeros(len(sigma_grid), dtype=torch.float64)
    pairs = torch.cartesian_prod(torch.arange(len(sigma_grid)), torch.arange(m))  # (σ index, sample index)
    for chunk in pairs.split(batch_size):
        k, j = chunk[:, 0], chunk[:, 1]
        sig = sigma_grid[k].to(device, torch.float32)
        x = x0[j] + sig.view(-1, *[1] * (x0.ndim - 1)) * eps[j]
        extra = {} if labels is None else {"class_labels": labels[j]}
        err = (denoise(x, sig, **extra).to(torch.float32) - x0[j]).to(torch.float64).square().flatten(1).sum(1)
        total.index_add_(0, k, err.cpu())
    mmse = total / m
    return {"sigma": sigma_grid, "mmse": mmse, "hdot": mmse / sigma_grid**3}


def _probe_data(
    net,
    ds: torch.utils.data.Dataset,
    sigma_min: float,
    sigma_max: float,
    num_samples: int = 128,
    num_bins: int = 128,
    batch_size: int = 256,
    seed: int = 0,
    device="cpu",
) -> dict:
    """Profile for InfoGrid of a checkpoint without one (fixed training schedule): probe the network's
    unweighted error on `num_samples` seeded-random examples of the data set over `num_bins` log-σ bins
    (the scheduler's grid, docs/method.md §5), with fixed weights (docs/method.md §7, grids.probe_profile)."""
    path = getattr(ds, "path", "the probe data")
    if tuple(ds.data_shape) != tuple(net.data_shape):
        raise ValueError(
            f"{path}: data shape {tuple(ds.data_shape)} does not match the network's {tuple(net.data_shape)}"
        )
    if net.label_dim and ds.label_dim > net.label_dim:
        raise ValueError(f"{path}: {ds.label_dim} classes but the network knows {net.label_dim}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=gen)[:num_samples].tolist()
    items = [ds[i] for i in idx]
    x = torch.as_tensor(np.stack([it[0] for it in items]))
    labels = None
    if net.label_dim:
        labels = torch.zeros(len(items), net.label_dim)
        labels[:, : ds.label_dim] = torch.as_tensor(np.stack([it[1] for it in items]))
    grid = log_sigma_grid(sigma_min, sigma_max, num_bins)
    data = [(x, labels)] if labels is not None else x
    return probe_profile(net, data, grid, n_samples=num_samples, batch_size=batch_size, generator=gen, device=device)


def probe_network(
    net,
    data: torch.utils.data.Dataset,
    sigma_min: float,
    sigma_max: float,
    num_samples: int = 128,
    num_bins: int = 128,
    batch_size: int = 256,
    seed: int = 0,
    device="cpu",
) -> dict:
    """The profile of `net` on `num_samples` seeded-random examples of the data set `data`, over
    `num_bins` log-σ bins of [σ_min, σ_max] (the scheduler's grid, §5). Under torchrun, rank 0 probes and
    broadcasts, so every rank builds the same InfoGrid; a failure on rank 0 travels as NaNs, so the other
    ranks stop too instead of waiting forever."""
    if not dist.is_distributed():
        return _probe_data(net, data, sigma_min, sigma_max, num_samples, num_bins, batch_size, seed, device)
    mmse, error = torch.full([num_bins], math.nan, dtype=torch.float64), None
    if dist.get_rank() == 0:
        try:
            mmse = _probe_data(net, data, sigma_min, sigma_max, num_samples, num_bins, batch_size, seed, device)["mmse"]
        except Exception as e:  # re-raised below, after the other ranks have been told
            error = e
    mmse = dist.broadcast(mmse.to(device), src=0).cpu()
    if error is not None:
        raise error
    if mmse.isnan().all():
        raise ValueError("probing failed on rank 0")
    sigma = log_sigma_grid(sigma_min, sigma_max, num_bins)
    return {"sigma": sigma, "mmse": mmse, "hdot": mmse / sigma**3}
