"""The time variables of other training loops, as maps to and from EDM's σ (docs/method.md §10).

InfoNoise lives in the variance-exploding coordinate x0 + σ·ε of docs/method.md §1. Every loop here writes its noisy
input as x_t = α·x0 + s·ε; dividing by α gives x_t/α = x0 + (s/α)·ε, so σ = s/α is the same channel, and every
quantity of the method (m̂, ḣ, the pivot, the allocation) is a function of σ whatever t the loop uses. An adapter
says how t and σ map (monotone, so a draw σ ~ π maps to a draw t with density π(σ(t))·|dσ/dt|), what α and s are
(so a prediction converts to the x0-space error exactly), and, for discrete timesteps, which σ-interval each
integer stands for (so snapping keeps the allocation: P(t) = π-mass of t's cell).

- `EDMSigma`: t = σ (α = 1, s = σ).
- `RectifiedFlow`: x_t = (1 − t)·x0 + t·ε, σ = t/(1 − t) (α = 1 − t, s = t).
- `DiscreteVP`: integer t with x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, σ_t = √((1 − ᾱ_t)/ᾱ_t), from the loop's ᾱ table.
"""

from __future__ import annotations

import math

import torch

_F64 = torch.float64


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=_F64)


def _check_range(sigma_min: float, sigma_max: float, who: str) -> tuple[float, float]:
    if not (0 < sigma_min < sigma_max < math.inf):
        raise ValueError(
            f"{who}: need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}"
        )
    return float(sigma_min), float(sigma_max)


class TimeVariable:
    """A loop's time variable t: the map t ⇄ σ, the channel's scales (α, s), and, for continuous t, dσ/dt."""

    name = "base"
    discrete = False
    sigma_min: float
    sigma_max: float

    def to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ(t) in float64 (on t's device)."""
        raise NotImplementedError

    def from_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """t(σ) in the loop's own type: float32 for continuous t, int64 timesteps for discrete ones."""
        raise NotImplementedError

    def scales(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(α, s) of x_t = α·x0 + s·ε at σ (s/α = σ)."""
        raise NotImplementedError

    def velocity_scales(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(dα/dt, ds/dt) at σ, for a loop whose network predicts the velocity dx_t/dt; None where t is discrete."""
        return None

    def dsigma_dt(self, t: torch.Tensor) -> torch.Tensor:
        """dσ/dt (continuous t): the Jacobian that turns a σ-density into a t-density (§1, §10)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Plain scalars that identify the variable (stored with the state, checked on resume)."""
        return dict(name=self.name, sigma_min=self.sigma_min, sigma_max=self.sigma_max)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"


class EDMSigma(TimeVariable):
    """EDM's own σ (docs/method.md §1): t = σ, x = x0 + σ·ε. Default range [0.002, 80] (EDM's, for data of std 0.5)."""

    name = "edm-sigma"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        self.sigma_min, self.sigma_max = _check_range(sigma_min, sigma_max, "EDMSigma")

    def to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return _f64(t)

    def from_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        return _f64(sigma).float()

    def scales(self, sigma):
        sigma = _f64(sigma)
        return torch.ones_like(sigma), sigma

    def velocity_scales(self, sigma):
        sigma = _f64(sigma)
        return torch.zeros_like(sigma), torch.ones_like(sigma)

    def dsigma_dt(self, t):
        return torch.ones_like(_f64(t))


class RectifiedFlow(TimeVariable):
    """Rectified flow / flow matching, x_t = (1 − t)·x0 + t·ε for t ∈ (0, 1): σ = t/(1 − t), t = σ/(1 + σ).
    σ is in the data's own units, so the default range is EDM's [0.002, 80] (t ∈ [0.001996, 0.98765]) for data
    of std ≈ 0.5; scale it with the data (latents of std 1: [0.004, 160]). t = 1 (pure noise) is σ = ∞, outside
    every finite range: the loop never sees it from `sample`."""

    name = "rectified-flow"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        self.sigma_min, self.sigma_max = _check_range(sigma_min, sigma_max, "RectifiedFlow")

    @property
    def t_min(self) -> float:
        return self.sigma_min / (1 + self.sigma_min)

    @property
    def t_max(self) -> float:
        return self.sigma_max / (1 + self.sigma_max)

    def to_sigma(self, t):
        t = _f64(t)
        return t / (1 - t)

    def from_sigma(self, sigma):
        sigma = _f64(sigma)
        return (sigma / (1 + sigma)).float()

    def scales(self, sigma):
        sigma = _f64(sigma)
        return 1 / (1 + sigma), sigma / (1 + sigma)

    def velocity_scales(self, sigma):
        sigma = _f64(sigma)
        return -torch.ones_like(sigma), torch.ones_like(sigma)

    def dsigma_dt(self, t):
        return 1 / (1 - _f64(t)) ** 2


class DiscreteVP(TimeVariable):
    """VP / DDPM integer timesteps t = 0 … T−1 from the loop's ᾱ table (diffusers' `alphas_cumprod`):
    x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, σ_t = √((1 − ᾱ_t)/ᾱ_t), increasing in t. Timestep t stands for the σ-cell
    between the geometric midpoints of its neighbours (the end cells mirrored), so a σ drawn from π snaps to the
    t whose cell holds it and P(t) is π's mass on that cell: the allocation is kept, only discretised."""

    name = "discrete-vp"
    discrete = True

    def __init__(self, alphas_cumprod):
        a = _f64(torch.as_tensor(alphas_cumprod).detach().cpu())
        if a.ndim != 1 or len(a) < 2:
            raise ValueError(
                f"DiscreteVP: alphas_cumprod must be a 1-D table of >= 2 values, got shape {tuple(a.shape)}"
            )
        if not (torch.isfinite(a).all() and (a > 0).all() and (a < 1).all()):
            raise ValueError(
                "DiscreteVP: alphas_cumprod must lie in (0, 1) (ᾱ = 1 is no noise, ᾱ = 0 — zero terminal SNR — is "
                f"σ = ∞); got values in [{float(a.min()):g}, {float(a.max()):g}]"
            )
        if not (a.diff() < 0).all():
            raise ValueError("DiscreteVP: alphas_cumprod must be strictly decreasing in t (more noise at larger t)")
        self.alphas_cumprod = a
        self.sigmas = ((1 - a) / a).sqrt()  # σ_t, increasing
        ls = self.sigmas.log()
        mid = (ls[1:] + ls[:-1]) / 2
        self.log_edges = torch.cat([ls[:1] - (mid[0] - ls[0]), mid, ls[-1:] + (ls[-1] - mid[-1])])  # T+1 cell edges
        self.sigma_min, self.sigma_max = float(self.log_edges[0].exp()), float(self.log_edges[-1].exp())
        self.num_timesteps = len(a)
        self._on: dict[torch.device, torch.Tensor] = {}

    def _sigmas_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._on:
            self._on[device] = self.sigmas.to(device)
        return self._on[device]

    def to_sigma(self, t):
        t = torch.as_tensor(t)
        if t.is_floating_point() or t.is_complex():
            raise ValueError(f"DiscreteVP: timesteps must be integers, got dtype {t.dtype}")
        return self._sigmas_on(t.device)[t.long()]

    def cell(self, sigma: torch.Tensor) -> torch.Tensor:
        """The timestep whose σ-cell holds each σ (σ below/above the range: the end timesteps)."""
        sigma = _f64(sigma)
        edges = self.log_edges.to(sigma.device)
        k = torch.searchsorted(edges, sigma.log().contiguous(), right=True) - 1
        return k.clamp(0, self.num_timesteps - 1)

    def from_sigma(self, sigma):
        return self.cell(sigma)

    def scales(self, sigma):
        sigma = _f64(sigma)
        alpha = 1 / (1 + sigma**2).sqrt()
        return alpha, sigma * alpha

    def describe(self) -> dict:
        return dict(super().describe(), num_timesteps=self.num_timesteps)

    def __repr__(self) -> str:
        return f"DiscreteVP(T={self.num_timesteps}, sigma_t in [{float(self.sigmas[0]):g}, {float(self.sigmas[-1]):g}])"


def x0_error_factor(time: TimeVariable, sigma: torch.Tensor, objective: str) -> torch.Tensor:
    """c(σ) with ‖x̂0 − x0‖² = c·‖pred − target‖² for a network that predicts `objective` (docs/method.md §10):
    x0: 1; epsilon: (s/α)² = σ²; v = α·ε − s·x0: (s/(α² + s²))²; velocity u = dx_t/dt: (s/(α·s' − α'·s))².
    Exact per sample, because at fixed x_t and t the x0 estimate is an affine function of the prediction."""
    sigma = _f64(sigma)
    if objective == "x0":
        return torch.ones_like(sigma)
    if objective == "epsilon":
        return sigma**2
    alpha, s = time.scales(sigma)
    if objective == "v":
        return (s / (alpha**2 + s**2)) ** 2
    if objective == "velocity":
        d = time.velocity_scales(sigma)
        if d is None:
            raise ValueError(
                f"objective 'velocity' needs a continuous time variable; {time.name} has integer timesteps"
            )
        da, ds = d
        return (s / (alpha * ds - da * s)) ** 2
    raise ValueError(f"unknown objective '{objective}'")
