"""σ-grids (docs/method.md §6): closed forms, the grid contract, InfoGrid's Gaussian oracle, probing
(docs/method.md §7)."""

from __future__ import annotations

import math

import pytest
import torch

from sampling.grids import edm_grid, infogrid, infogrid_from_profile, loguniform_grid, make_grid
from sampling.probe import probe_profile
from schedulers.information import log_sigma_grid

SMIN, SMAX, C, D = 0.002, 80.0, 0.5, 8


def gaussian_hdot(sigma):
    """ḣ = mmse/σ³ for X0 ~ N(0, c² I_D): D c²/(σ(c² + σ²)) (docs/method.md §7)."""
    return D * C**2 / (sigma * (C**2 + sigma**2))


def arctan_grid(n, smin=SMIN, smax=SMAX):
    """Closed-form InfoGrid for Gaussian data: Φ(σ) ∝ arctan(σ/c) − arctan(σ_min/c), inverted."""
    a0, a1 = math.atan(smin / C), math.atan(smax / C)
    return torch.tensor(
        [C * math.tan(a0 + t * (a1 - a0)) for t in torch.linspace(1, 0, n).tolist()], dtype=torch.float64
    )


def assert_contract(g, n, smin=SMIN, smax=SMAX):
    assert g.dtype == torch.float64 and g.shape == (n + 1,)
    assert g[-1] == 0 and (g[:-1] > g[1:]).all()
    assert g[0] == pytest.approx(smax, rel=1e-12) and g[n - 1] == pytest.approx(smin, rel=1e-12)
    assert (g[:-1] >= smin * (1 - 1e-12)).all() and (g[:-1] <= smax * (1 + 1e-12)).all()


@pytest.mark.parametrize("rho", [1.0, 3.0, 7.0])
def test_edm_grid_closed_form(rho):
    n = 18
    ref = [(SMAX ** (1 / rho) + i / (n - 1) * (SMIN ** (1 / rho) - SMAX ** (1 / rho))) ** rho for i in range(n)]
    g = edm_grid(n, SMIN, SMAX, rho)
    assert_contract(g, n)
    assert torch.allclose(g[:-1], torch.tensor(ref, dtype=torch.float64), rtol=1e-10, atol=0)


def test_loguniform_grid_is_geometric():
    g = loguniform_grid(10, SMIN, SMAX)
    assert_contract(g, 10)
    ratios = g[:-2] / g[1:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, (SMAX / SMIN) ** (1 / 9)), rtol=1e-12)


@pytest.mark.parametrize("m, rtol", [(256, 2e-4), (1000, 1e-5)])
def test_infogrid_gaussian_matches_arctan_closed_form(m, rtol):
    sigma = torch.logspace(math.log10(SMIN), math.log10(SMAX), m, dtype=torch.float64)
    for n in (5, 18, 40):
        g = infogrid(n, sigma, gaussian_hdot(sigma), SMIN, SMAX)
        assert_contract(g, n)
        assert torch.allclose(g[:-1], arctan_grid(n), rtol=rtol, atol=0)


def test_infogrid_from_scheduler_style_profile():
    """A profile as InfoNoise saves it (bin centres of the 128-bin log grid, float32, ends held outside the
    centres) still gives the closed form to ~0.1 %; the scale of ḣ (and 'mmse' instead of 'hdot') is
    irrelevant; a narrower σ range renormalises Φ."""
    sigma = log_sigma_grid(SMIN, SMAX, 128)
    mmse = D * C**2 * sigma**2 / (C**2 + sigma**2)
    g = infogrid_from_profile(18, {"sigma": sigma.float(), "hdot": gaussian_hdot(sigma).float(), "mmse": mmse})
    assert_contract(g, 18)
    assert torch.allclose(g[:-1], arctan_grid(18), rtol=2e-3)
    assert torch.allclose(infogrid_from_profile(18, {"sigma": sigma, "mmse": 7 * mmse}), g, rtol=1e-4)
    narrow = infogrid_from_profile(12, {"sigma": sigma, "hdot": gaussian_hdot(sigma)}, 0.01, 20.0)
    assert_contract(narrow, 12, 0.01, 20.0)
    assert torch.allclose(narrow[:-1], arctan_grid(12, 0.01, 20.0), rtol=2e-3)


def test_infogrid_survives_flat_spiky_and_invalid_profiles():
    sigma = log_sigma_grid(SMIN, SMAX, 64)
    hdot = gaussian_hdot(sigma)
    hdot[:20] = 0  # flat: no information at low noise
    hdot[40] *= 1e6  # one spike holding almost all the mass
    hdot[45] = float("nan")  # an empty bin
    hdot[50] = -1.0
    for n in (2, 18, 100):
        g = infogrid(n, sigma, hdot, SMIN, SMAX)
        assert_contract(g, n)
    g = infogrid(18, sigma, hdot, SMIN, SMAX)
    lo, hi = sigma[39:42].log().tolist()[0], sigma[39:42].log().tolist()[-1]
    inside = ((g[1:-2].log() > lo) & (g[1:-2].log() < hi)).sum()
    assert inside >= 14  # the interior points crowd into the spike's neighbourhood
    with pytest.raises(ValueError, match="no positive"):
        infogrid(18, sigma, torch.zeros_like(sigma), SMIN, SMAX)
    with pytest.raises(ValueError, match="increasing"):
        infogrid(18, sigma.flip(0), hdot, SMIN, SMAX)


def test_single_step_grids():
    for g in (edm_grid(1), loguniform_grid(1), infogrid(1, torch.tensor([1.0, 2.0]), torch.ones(2))):
        assert g.tolist() == [SMAX, 0.0]


def test_make_grid_dispatch_and_errors():
    sigma = log_sigma_grid(SMIN, SMAX, 64)
    prof = {"sigma": sigma, "hdot": gaussian_hdot(sigma)}
    assert torch.equal(make_grid("edm", 18, rho=7.0), edm_grid(18))
    assert torch.equal(make_grid("loguniform", 18), loguniform_grid(18))
    assert torch.equal(make_grid("infogrid", 18, profile=prof), infogrid_from_profile(18, prof))
    with pytest.raises(ValueError, match="--probe-data"):
        make_grid("infogrid", 18, profile=None)
    with pytest.raises(ValueError, match="Valid grids: edm, infogrid, loguniform"):
        make_grid("karras", 18)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        edm_grid(18, 1.0, 0.5)
    with pytest.raises(ValueError, match="positive integer"):
        edm_grid(0)


def test_probe_profile_recovers_gaussian_mmse():
    """The exact Gaussian denoiser D = c²x/(c²+σ²) on Gaussian data: the probed error is the MMSE
    D c²σ²/(c²+σ²) (docs/method.md §7) up to Monte-Carlo noise, and its InfoGrid is the arctan grid."""
    gen = torch.Generator().manual_seed(0)
    x0 = C * torch.randn(2000, D, generator=gen)
    batches = [(x0[i : i + 500], torch.ones(500, 3)) for i in range(0, 2000, 500)]  # (data, labels) batches
    seen = []

    def denoise(x, sigma, class_labels=None):
        seen.append(class_labels is not None and class_labels.shape == (len(x), 3))
        return C**2 / (C**2 + sigma.reshape(-1, 1) ** 2) * x

    grid = log_sigma_grid(SMIN, SMAX, 32)
    prof = probe_profile(denoise, batches, grid, n_samples=1500, batch_size=4096, generator=gen)
    mmse = D * C**2 * grid**2 / (C**2 + grid**2)
    assert all(seen)
    assert prof["sigma"].dtype == prof["mmse"].dtype == prof["hdot"].dtype == torch.float64
    assert torch.allclose(prof["mmse"], mmse, rtol=0.06)
    assert torch.allclose(prof["hdot"], prof["mmse"] / grid**3)
    assert torch.allclose(infogrid_from_profile(18, prof)[:-1], arctan_grid(18), rtol=0.05)
    # A tensor of uint8 images is mapped to model space ([-1, 1]) before probing.
    imgs = torch.full((4, 1, 2, 2), 255, dtype=torch.uint8)
    p = probe_profile(lambda x, s: torch.zeros_like(x), imgs, grid[:3], n_samples=4)
    assert torch.allclose(p["mmse"], torch.full((3,), 4.0, dtype=torch.float64))
