"""`lossvar`: Improved DDPM's importance sampling of noise levels (Nichol & Dhariwal 2021, their
LossSecondMomentResampler), on this project's log-σ grid, as a rival to InfoNoise under the same seam.

Each of the M bins keeps its last B per-sample training losses ℓ = w(σ)·‖D − x0‖² (B = 10 there; the
loss term being optimized, as Improved DDPM keeps its L_t terms — not the raw error, whose second moment
grows with σ and would put the mass where denoising is trivial); once every bin holds B, the sampling
density per unit ln σ is p_k ∝ √mean(ℓ²) over bin k's FIFO, mixed with a uniform share ε (0.001 there), and refreshed
every step. To keep the objective unbiased the loss is reweighted by the importance weight
q(σ)/p(σ) = 1/(M·Δ·p_k), q being the log-uniform density (1/(MΔ) per unit ln σ), so that
E_p[w·ℓ] = E_q[ℓ] (tests/test_lossvar.py checks it exactly on a fixed table). Warm-up draws log-uniformly
(weights 1). The FIFOs, staging, refresh timing, all-reduce across ranks, the table and its sampling, and
the checkpointed state are InfoNoise's (this class overrides only what is averaged and what is built).
"""

from __future__ import annotations

import math

import torch

from infonoise import information as info
from infonoise.scheduler import InfoNoise


class LossVar(InfoNoise):
    name = "lossvar"
    observes = "loss"

    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        num_bins: int = 128,
        history: int = 10,
        uniform_share: float = 0.001,
        refresh_every: int = 1,
    ):
        super().__init__(
            sigma_min=sigma_min,
            sigma_max=sigma_max,
            num_bins=num_bins,
            fifo_size=history,
            min_count=history,
            warmup_steps=0,
            refresh_every=refresh_every,
            ema_beta=0.0,
            floor=uniform_share,
            warmup_sampler="loguniform",
            weighting="unit",
            endpoint="discrete",
            mmse_cap="none",  # it reads losses, not errors: no bound applies
        )

    def adopt_legacy_defaults(self) -> None:
        """Its settings are fixed by the recipe, not defaults that changed."""

    def _bin_sums(self, buf: torch.Tensor) -> torch.Tensor:
        """The second moment: p_k ∝ √mean(ℓ²)."""
        return buf.square().sum(1)

    def _refresh(self, mean_sq: torch.Tensor, global_step: int, min_count: int) -> dict:
        previous = self._masses()
        self.mhat = mean_sq.clone()  # here: the per-bin second moment of the errors
        rms = mean_sq.clamp_min(0).sqrt()
        if not (torch.isfinite(rms).all() and rms.sum() > 0):
            rms = torch.ones_like(rms)
        p = rms / (rms.sum() * info.log_step(self.sigma))  # per unit ln σ, Σ p_k Δ = 1
        self.log_dens = info.add_floor(p, self.floor)
        self.table = info.build_cdf(self.log_dens, self.sigma)
        self.refreshes += 1
        self.last_refresh_step = int(global_step)
        summary = dict(
            step=int(global_step),
            refresh=self.refreshes,
            min_count=min_count,
            tv_change=info.total_variation(self._masses(), previous),
        )
        self.history.append(summary)
        return dict(
            summary,
            sigma=self.sigma.tolist(),
            second_moment=mean_sq.tolist(),
            log_density=self.log_dens.tolist(),
            cdf=self.table[1].tolist(),
        )

    def importance(self, sigma: torch.Tensor) -> torch.Tensor | None:
        """q(σ)/p(σ) = 1/(M·Δ·p_k) per sample (1 during the log-uniform warm-up)."""
        if self.table is None:
            return None
        k = info.bin_index(sigma.detach().cpu(), self.sigma_min, self.sigma_max, self.num_bins)
        delta = math.log(self.sigma_max / self.sigma_min) / self.num_bins
        return (1.0 / (self.num_bins * delta * self.log_dens[k])).to(torch.float32)

    def profile(self) -> dict | None:
        return None  # no entropy-rate profile: InfoGrid probes the network instead

    def __repr__(self) -> str:
        return (
            f"LossVar(M={self.num_bins}, history={self.fifo_size}, uniform_share={self.floor}, "
            f"refreshes={self.refreshes})"
        )
