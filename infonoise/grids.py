"""Inference σ-grids: EDM's ρ-grid, log-uniform, and InfoGrid (docs/method.md §6), as small pure functions.

Every grid is a float64 tensor of length N+1: N sampling levels, strictly decreasing from σ_max to
σ_min, then a final 0 (the sampler's last step lands on clean data). Samplers take the grid as is,
so a new discretisation is one function here plus one line in `sampling.grids.GRIDS` (the framework's registry
of grids by name, which is not part of this library).

InfoGrid needs an information profile (σ, ḣ): either the one InfoNoise saved in the snapshot
(`snapshot['profile']`, docs/method.md §5 "Exportable"), or, for checkpoints trained with a fixed schedule, one
estimated by the framework's `sampling.probe` from the network's own denoising error on data (docs/method.md §7,
"probed from a well-trained checkpoint").
"""

from __future__ import annotations

import math

import torch


def _finish(sigmas: torch.Tensor) -> torch.Tensor:
    """Append the final 0 and check the grid contract (strictly decreasing, positive before the 0)."""
    sigmas = torch.cat([sigmas.to(torch.float64), sigmas.new_zeros(1, dtype=torch.float64)])
    if not (torch.isfinite(sigmas).all() and (sigmas[:-1] > 0).all() and (sigmas[:-1] > sigmas[1:]).all()):
        raise ValueError(f"σ-grid is not strictly decreasing and positive: {sigmas.tolist()}")
    return sigmas


def _check(n: int, sigma_min: float, sigma_max: float) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"number of sampling steps must be a positive integer, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def edm_grid(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM eq. 5: σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i < N, then σ_N = 0.
    N = 1 is the single Euler step from σ_max."""
    _check(n, sigma_min, sigma_max)
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    i = torch.arange(n, dtype=torch.float64)
    t = i / max(n - 1, 1)
    sigmas = (sigma_max ** (1 / rho) + t * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    sigmas[0], sigmas[-1] = sigma_max, (sigma_min if n > 1 else sigma_max)  # exact ends despite rounding
    return _finish(sigmas)


def loguniform_grid(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """N levels uniform in ln σ from σ_max down to σ_min (the ρ → ∞ limit of the EDM grid), then 0."""
    _check(n, sigma_min, sigma_max)
    if n == 1:
        return _finish(torch.tensor([sigma_max], dtype=torch.float64))
    return _finish(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp())


def _entropic_table(
    sigma: torch.Tensor, hdot: torch.Tensor, sigma_min: float, sigma_max: float, floor: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Knots u_k = ln σ_k covering [ln σ_min, ln σ_max] and a_k = ln(σ_k²·ḣ_k), the log of Φ's density
    per unit ln σ (dΦ ∝ s·ḣ(s) ds = s²·ḣ(s) d ln s). Between knots ln(s²ḣ) is linear in ln σ — a
    piecewise power law, which is monotone between neighbours and exact for the power-law tails of
    real profiles (mmse ∝ σ² at low noise, → const at high noise). Outside the tabulated range the
    end values are held. `floor` (relative to the maximum) keeps flat regions (ḣ ≈ 0) at a tiny
    positive density, so Φ is strictly increasing and Φ⁻¹ well defined."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64).flatten()
    hdot = torch.as_tensor(hdot, dtype=torch.float64).flatten()
    if sigma.numel() != hdot.numel() or sigma.numel() < 2:
        raise ValueError(
            f"profile needs matching 'sigma' and 'hdot' with ≥ 2 entries, got {sigma.numel()} and {hdot.numel()}"
        )
    if not (sigma > 0).all() or not (sigma[1:] > sigma[:-1]).all():
        raise ValueError("profile 'sigma' must be positive and strictly increasing")
    density = sigma**2 * hdot.nan_to_num(nan=0.0, posinf=0.0).clamp(min=0.0)
    peak = density.max()
    if not peak > 0:
        raise ValueError("profile 'hdot' has no positive finite entries; cannot build an InfoGrid")
    log_density = density.clamp(min=float(peak) * floor).log()

    lo, hi = math.log(sigma_min), math.log(sigma_max)
    u_tab = sigma.log()
    inside = (u_tab > lo) & (u_tab < hi)
    u = torch.cat([torch.tensor([lo], dtype=torch.float64), u_tab[inside], torch.tensor([hi], dtype=torch.float64)])
    # np.interp semantics: linear inside, end values held outside.
    idx = torch.searchsorted(u_tab, u).clamp(1, len(u_tab) - 1)
    u0, u1 = u_tab[idx - 1], u_tab[idx]
    w = ((u - u0) / (u1 - u0)).clamp(0, 1)
    a = torch.lerp(log_density[idx - 1], log_density[idx], w)
    # Exact mass of each piece: ∫ exp(a0 + d·(v−u0)/h) dv = h·e^{a0}·(e^d − 1)/d.
    h, d = u.diff(), a.diff()
    mass = h * a[:-1].exp() * _expm1_over(d)
    cdf = torch.cat([mass.new_zeros(1), mass.cumsum(0)])
    return u, a, cdf


def _expm1_over(d: torch.Tensor) -> torch.Tensor:
    """(e^d − 1)/d, with its limit 1 at d = 0."""
    small = d.abs() < 1e-8
    return torch.where(small, 1 + d / 2, torch.expm1(d) / torch.where(small, torch.ones_like(d), d))


def infogrid(
    n: int,
    sigma: torch.Tensor,
    hdot: torch.Tensor,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    floor: float = 1e-6,
) -> torch.Tensor:
    """InfoGrid (docs/method.md §6): N levels uniform in Φ(σ) = ∫_{σ_min}^{σ} s·ḣ(s) ds / ∫_{σ_min}^{σ_max} s·ḣ(s) ds,
    from σ_max (Φ = 1) down to σ_min (Φ = 0), then 0. `sigma`/`hdot` tabulate ḣ = dH/dσ = mmse/σ³ on
    an increasing grid (a scheduler profile; any spacing). Φ is integrated exactly on a piecewise
    power-law interpolant and inverted exactly per piece (see `_entropic_table`), so a dense
    Gaussian profile reproduces Φ ∝ arctan(σ/c) to interpolation accuracy."""
    _check(n, sigma_min, sigma_max)
    if n == 1:
        return _finish(torch.tensor([sigma_max], dtype=torch.float64))
    u, a, cdf = _entropic_table(sigma, hdot, sigma_min, sigma_max, floor)
    target = torch.linspace(1, 0, n, dtype=torch.float64) * cdf[-1]
    k = (torch.searchsorted(cdf, target, right=True) - 1).clamp(0, len(u) - 2)
    h, d = u[k + 1] - u[k], a[k + 1] - a[k]
    r = (target - cdf[k]) / a[k].exp()  # remaining mass in units of the piece's left density
    # Invert h·(e^{d·x/h} − 1)/d = r for the offset x ∈ [0, h]; x = r in the flat-piece limit.
    x = torch.where(d.abs() < 1e-8, r, h / torch.where(d.abs() < 1e-8, 1.0, d) * torch.log1p(r * d / h))
    log_sigmas = (u[k] + x.clamp(min=0).minimum(h)).clone()
    log_sigmas[0], log_sigmas[-1] = u[-1], u[0]  # endpoints exactly σ_max and σ_min
    return _finish(log_sigmas.exp())


def infogrid_from_profile(
    n: int, profile: dict | None, sigma_min: float = 0.002, sigma_max: float = 80.0, floor: float = 1e-6
) -> torch.Tensor:
    """InfoGrid from a scheduler's `profile()` dict (or `probe_profile`'s): uses 'hdot', or derives it
    from 'mmse' as ḣ = mmse/σ³ (docs/method.md §2) if only that is present."""
    if not profile or "sigma" not in profile or not ("hdot" in profile or "mmse" in profile):
        raise ValueError("InfoGrid needs an information profile with 'sigma' and 'hdot' (or 'mmse'); this one has none")
    sigma = torch.as_tensor(profile["sigma"], dtype=torch.float64)
    hdot = profile.get("hdot")
    hdot = (
        torch.as_tensor(hdot, dtype=torch.float64)
        if hdot is not None
        else torch.as_tensor(profile["mmse"], dtype=torch.float64) / sigma**3
    )
    return infogrid(n, sigma, hdot, sigma_min, sigma_max, floor)
