"""The noise-scheduler contract: the one seam between the training loop and *where along σ* work goes.

The loop asks `sample` for σ, hands `observe` the per-sample unweighted denoising error ‖D − x0‖²
(summed over dimensions, detached) — or, for a schedule whose `observes` is "loss", the per-sample training
loss before any importance weight — and calls `step` once per optimizer step. The loss never knows
which scheduler it has; the loop never knows the formulas (architecture.md, "The scheduler contract").
"""

from __future__ import annotations

import math

import torch


class NoiseScheduler:
    """Base class. Fixed schedules override only `sample` (and usually `density`)."""

    name: str = "base"
    # What `observe` receives: "error" = ‖D − x0‖² (InfoNoise estimates the entropy rate from it), "loss" =
    # the weighted per-sample training loss (lossvar importance-samples that very term).
    observes: str = "error"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `n` noise levels σ (float32, shape [n], on CPU)."""
        raise NotImplementedError

    def observe(self, sigma: torch.Tensor, error: torch.Tensor) -> None:
        """Record per-sample unweighted errors ‖D(x_σ;σ) − x0‖² (or losses, see `observes`). No-op for fixed
        schedules."""

    def step(self, global_step: int) -> dict | None:
        """Called once per optimizer step (identically on every rank). Returns a log record if the
        schedule was refreshed at this step, else None. No-op for fixed schedules."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def profile(self) -> dict | None:
        """The learned information profile (grid, ḣ, allocation, schedule, σ_p) for InfoGrid and
        plots; None for fixed schedules."""
        return None

    def importance(self, sigma: torch.Tensor) -> torch.Tensor | None:
        """Per-sample weights the loss is multiplied by, for schedules that importance-sample (lossvar),
        so the objective is the one of a reference density; None (no reweighting) for the others."""
        return None

    def density(self, sigma: torch.Tensor) -> torch.Tensor:
        """π(σ), the sampling density per unit σ, where known in closed form (plots, tests)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def uniform(n: int, generator: torch.Generator | None) -> torch.Tensor:
    """U(0,1) draws in float64 from `generator` (CPU), the common source of every inverse-CDF sampler."""
    return torch.rand(n, generator=generator, dtype=torch.float64)


def std_normal_icdf(u: torch.Tensor) -> torch.Tensor:
    """Φ⁻¹(u) for the standard normal, via erfinv (exact to float64 rounding)."""
    return math.sqrt(2.0) * torch.special.erfinv(2.0 * u - 1.0)
