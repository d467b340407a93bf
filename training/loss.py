"""The denoising loss (docs/method.md §1): per-sample ‖D(x0+σε; σ) − x0‖², weighted by w(σ).

It returns both the weighted per-sample loss (what is optimised) and the *unweighted* error the
noise scheduler estimates the MMSE from (docs/method.md §2) — the same forward pass, no extra cost. σ comes
from the caller (the scheduler), so the loss never knows which schedule it is trained under.
"""

from __future__ import annotations

import torch

from infonoise.information import loss_weight

WEIGHTINGS = ("edm", "unit", "edm2")


def uncertainty_weighted(weighted_error: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """EDM2's loss with a learned uncertainty u(σ): w·e/exp(u) + u. Its minimum over u is at u = ln(w·e):
    the network learns the (log) scale of its own weighted error per noise level, and the weighted errors
    it divides by come out balanced across σ (Karras et al. 2024)."""
    return weighted_error / logvar.exp() + logvar


class DenoisingLoss:
    """`augment` > 0: EDM's augmentation pipe at that probability (training/augment.py); the network then
    sees the augment labels and learns the augmented images."""

    def __init__(self, weighting: str = "edm", sigma_data: float = 0.5, augment: float = 0.0):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"Unknown weighting '{weighting}'. Valid weightings: {', '.join(WEIGHTINGS)}")
        self.weighting, self.sigma_data = weighting, float(sigma_data)
        self.augment_pipe = None
        if augment:
            from training.augment import edm_pipe

            self.augment_pipe = edm_pipe(augment)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return loss_weight(sigma, self.weighting, self.sigma_data)

    def __call__(
        self,
        net: torch.nn.Module,
        x0: torch.Tensor,
        sigma: torch.Tensor,
        labels: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (weighted loss [N], unweighted error [N], detached), both summed over dimensions."""
        sigma = sigma.to(x0.device, torch.float32)
        extra = {}
        if self.augment_pipe is not None:
            x0, extra["augment_labels"] = self.augment_pipe(x0)
        if noise is None:
            noise = torch.randn_like(x0)
        x = x0 + noise * sigma.reshape(-1, *[1] * (x0.ndim - 1))
        logvar = None
        if self.weighting == "edm2":  # the network also returns u(σ) (built with logvar_channels)
            denoised, logvar = net(x, sigma, labels, return_logvar=True, **extra)
        else:
            denoised = net(x, sigma, labels, **extra)
        error = (denoised.float() - x0).square().flatten(1).sum(1)
        weighted = self.weight(sigma).to(error.dtype) * error
        if logvar is not None:
            weighted = uncertainty_weighted(weighted, logvar.to(error.dtype))
        return weighted, error.detach()
