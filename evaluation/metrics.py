"""Sample-quality metrics beyond the Fréchet distance: a small registry, and the contract for your own.

A metric is a function `metric(samples, data) -> {name: value}`: `samples` are the generated set in
model space (float32 [N, ...], images in [-1, 1], ±1 data as the network outputs it), `data` the run's
training set in the same space ([M, ...]). It declares its direction with `@metric(lower_is_better=...)`
(lower by default). The time-to-target harness takes registry names or `module:function`
(`--metric binary-stats --metric mypkg.physics:magnetisation`).

Built-ins, for two-valued (±1) data and needing no trained network:
  binary-stats   per-pixel marginals P(x = +1) and nearest-neighbour pair correlations E[x_i·x_j]
                 (right and down neighbours) of the thresholded samples vs the data: mean |Δ| of each
  train-copies   the fraction of samples that equal a training example exactly (after thresholding
                 ±1 data, or rounding images to uint8): memorisation, lower is better
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

Metric = Callable[[torch.Tensor, torch.Tensor], dict]


def metric(lower_is_better: bool = True) -> Callable[[Metric], Metric]:
    """Declare a metric's direction (the harness's target is the best fixed baseline in that direction)."""

    def mark(fn: Metric) -> Metric:
        fn.lower_is_better = bool(lower_is_better)
        return fn

    return mark


def _spins(x: torch.Tensor) -> torch.Tensor:
    """±1 by sign (0 → +1), float64: the decoded state of a two-valued sample."""
    return torch.where(torch.as_tensor(x) >= 0, 1.0, -1.0).to(torch.float64)


def _pair_correlations(s: torch.Tensor) -> torch.Tensor:
    """E[x_i·x_j] over the set for every right and down neighbour pair of [N, C, H, W] spins (flattened)."""
    right = (s[..., :, 1:] * s[..., :, :-1]).mean(0).flatten()
    down = (s[..., 1:, :] * s[..., :-1, :]).mean(0).flatten()
    return torch.cat([right, down])


@metric(lower_is_better=True)
def binary_stats(samples: torch.Tensor, data: torch.Tensor) -> dict[str, float]:
    """Mean |Δ| of per-pixel P(+1) and of nearest-neighbour correlations, samples vs data (both thresholded)."""
    if samples.ndim != 4 or data.ndim != 4:
        raise ValueError(
            f"binary-stats needs image sets [N, C, H, W], got {tuple(samples.shape)} and {tuple(data.shape)}"
        )
    g, d = _spins(samples), _spins(data)
    marginal = ((g.mean(0) + 1) / 2 - (d.mean(0) + 1) / 2).abs().mean()
    pairs = (_pair_correlations(g) - _pair_correlations(d)).abs().mean()
    return {"marginal_l1": float(marginal), "pair_l1": float(pairs)}


def _keys(x: torch.Tensor, binary: bool) -> set[bytes]:
    q = _spins(x).to(torch.int8) if binary else (x * 127.5 + 128).clip(0, 255).to(torch.uint8)
    return {row.numpy().tobytes() for row in q.flatten(1)}


@metric(lower_is_better=True)
def train_copies(samples: torch.Tensor, data: torch.Tensor) -> dict[str, float]:
    """Fraction of samples identical to some training example (±1 data thresholded, images as uint8)."""
    binary = bool(((data == 1) | (data == -1)).all())
    train = _keys(data, binary)
    q = _spins(samples).to(torch.int8) if binary else (samples * 127.5 + 128).clip(0, 255).to(torch.uint8)
    hits = sum(row.numpy().tobytes() in train for row in q.flatten(1))
    return {"train_copy_fraction": hits / max(len(samples), 1)}


METRICS: dict[str, Metric] = {"binary-stats": binary_stats, "train-copies": train_copies}


def resolve(spec: str) -> Metric:
    """A registry name or 'module:function' → the metric; a one-line error otherwise."""
    if spec in METRICS:
        return METRICS[spec]
    module, sep, name = spec.partition(":")
    if not sep:
        raise ValueError(f"unknown metric '{spec}'; valid: {', '.join(METRICS)}, or module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"metric '{spec}': cannot load it ({e}); give an importable module:function") from None
    if not callable(fn):
        raise ValueError(f"metric '{spec}' is not a function")
    return fn


def lower_is_better(fn: Metric) -> bool:
    return bool(getattr(fn, "lower_is_better", True))
