"""Log-uniform schedule: ln σ ~ U(ln σ_min, ln σ_max) (docs/method.md §1)."""

from __future__ import annotations

import math

import torch

from .base import NoiseScheduler, uniform


class LogUniform(NoiseScheduler):
    name = "loguniform"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"loguniform: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        return (lo + (hi - lo) * uniform(n, generator)).exp().float()

    def density(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        inside = (sigma >= self.sigma_min) & (sigma <= self.sigma_max)
        return inside / (sigma * math.log(self.sigma_max / self.sigma_min))

    def __repr__(self) -> str:
        return f"LogUniform(sigma_min={self.sigma_min}, sigma_max={self.sigma_max})"
