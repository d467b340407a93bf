"""EDM's training schedule: ln σ ~ N(P_mean, P_std²) (Karras et al. 2022; docs/method.md §1)."""

from __future__ import annotations

import math

import torch

from .base import NoiseScheduler, std_normal_icdf, uniform


class LogNormal(NoiseScheduler):
    name = "lognormal"

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2):
        if not P_std > 0:
            raise ValueError(f"lognormal: P_std must be > 0, got {P_std}")
        self.P_mean, self.P_std = float(P_mean), float(P_std)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        # Inverse CDF of a uniform draw, so the stream is one uniform per sample for every scheduler.
        z = std_normal_icdf(uniform(n, generator).clamp(1e-12, 1 - 1e-12))
        return (self.P_mean + self.P_std * z).exp().float()

    def density(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        z = (sigma.log() - self.P_mean) / self.P_std
        return torch.exp(-0.5 * z**2) / (sigma * self.P_std * math.sqrt(2 * math.pi))

    def __repr__(self) -> str:
        return f"LogNormal(P_mean={self.P_mean}, P_std={self.P_std})"
