"""Samplers for the probability-flow ODE dx/dσ = (x − D(x;σ))/σ (EDM, Karras et al. 2022, Alg. 1–2).

Pure functions in the k-diffusion style: a denoiser callable, the starting point x at the first
noise level (x = latents·σ_0 with latents ~ N(0, I), as in k-diffusion — *not* EDM's unit latents), and
a σ-grid (schedulers/grids.py: N levels then 0). The grid decides *where* the NFE go (EDM ρ-grid vs InfoGrid,
docs/method.md §6); the solver is shared so the comparison is at equal NFE (Heun: 2N − 1 evaluations).

Randomness (only the churn noise here) comes from `randn_like`, so a per-seed generator makes every
sample a function of its seed alone — see `StackedRandomGenerator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

Denoiser = Callable[..., torch.Tensor]  # denoise(x, sigma[N], **extra) -> D(x; σ), same shape as x


class StackedRandomGenerator:
    """One torch.Generator per sample, seeded by the sample's seed (EDM's idea): draws for sample i
    come only from generator i, so an image depends on its seed, not on the batch it lands in or on
    how seeds are dealt over ranks. Generators live on CPU, so CPU and CUDA runs see the same noise."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = [torch.Generator().manual_seed(int(s) % (1 << 64)) for s in seeds]

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """shape[0] must equal the number of seeds."""
        assert shape[0] == len(self.generators)
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, dtype=dtype) for g in self.generators]).to(
            self.device
        )

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.randn(x.shape, dtype=x.dtype)

    def randint(self, high: int) -> torch.Tensor:
        """One integer in [0, high) per seed (class labels)."""
        return torch.cat([torch.randint(high, (1,), generator=g) for g in self.generators]).to(self.device)


def _call(denoise: Denoiser, x: torch.Tensor, sigma: torch.Tensor, class_labels: torch.Tensor | None):
    extra = {} if class_labels is None else {"class_labels": class_labels}
    return denoise(x, sigma.expand(len(x)), **extra).to(x.dtype)


def _churn(
    x: torch.Tensor,
    sigma: torch.Tensor,
    num_steps: int,
    S_churn: float,
    S_min: float,
    S_max: float,
    S_noise: float,
    randn_like: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM Alg. 2 lines 4–6: raise σ to σ̂ = (1 + γ)σ by adding fresh noise, γ = min(S_churn/N, √2 − 1)
    inside [S_min, S_max]. With S_churn > 0 the noise is drawn at every step, also where γ = 0 (outside
    [S_min, S_max]), as EDM's edm_sampler draws it: the same seeds then give EDM's images. With S_churn = 0
    nothing is drawn (EDM's draws there are multiplied by 0 and nothing after them is random), so the
    deterministic path consumes no randomness."""
    if S_churn <= 0:
        return x, sigma
    noise = randn_like(x)
    gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= float(sigma) <= S_max else 0.0
    if gamma == 0:
        return x, sigma
    sigma_hat = sigma + gamma * sigma
    return x + (sigma_hat**2 - sigma**2).sqrt() * S_noise * noise, sigma_hat


@torch.no_grad()
def sample_heun(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    class_labels: torch.Tensor | None = None,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = float("inf"),
    S_noise: float = 1.0,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> torch.Tensor:
    """EDM Alg. 2 (Alg. 1 when S_churn = 0): Heun's 2nd-order method over `sigmas`, with an Euler step
    for the last step to σ = 0 (the correction would divide by σ = 0). `x` is the start at σ_0 =
    sigmas[0] (latents·σ_0). Integrates in float64; returns float64 samples at σ = 0."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64, device=x.device)
    num_steps = len(sigmas) - 1
    x = x.to(torch.float64)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x_hat, sigma_hat = _churn(x, sigma, num_steps, S_churn, S_min, S_max, S_noise, randn_like)
        d = (x_hat - _call(denoise, x_hat, sigma_hat, class_labels)) / sigma_hat
        x = x_hat + (sigma_next - sigma_hat) * d
        if sigma_next > 0:
            d_next = (x - _call(denoise, x, sigma_next, class_labels)) / sigma_next
            x = x_hat + (sigma_next - sigma_hat) * (0.5 * d + 0.5 * d_next)
    return x


@torch.no_grad()
def sample_euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    class_labels: torch.Tensor | None = None,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = float("inf"),
    S_noise: float = 1.0,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> torch.Tensor:
    """Euler's 1st-order method over `sigmas` (N evaluations), with the same churn as `sample_heun`:
    the baseline that shows what the 2nd-order correction buys."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64, device=x.device)
    num_steps = len(sigmas) - 1
    x = x.to(torch.float64)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x_hat, sigma_hat = _churn(x, sigma, num_steps, S_churn, S_min, S_max, S_noise, randn_like)
        x = x_hat + (sigma_next - sigma_hat) * (x_hat - _call(denoise, x_hat, sigma_hat, class_labels)) / sigma_hat
    return x


SOLVERS: dict[str, Callable[..., torch.Tensor]] = {"heun": sample_heun, "euler": sample_euler}


def nfe(solver: str, num_steps: int) -> int:
    """Network evaluations per sample: Heun 2N − 1 (Euler last step), Euler N."""
    return 2 * num_steps - 1 if solver == "heun" else num_steps
