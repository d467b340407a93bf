"""schedulers/information.py against closed forms and independent implementations (spec §2–§5, §7)."""
import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch

from schedulers import information as info

F64 = torch.float64
SMIN, SMAX, M = 0.002, 80.0, 128
GRID = info.log_sigma_grid(SMIN, SMAX, M)
DELTA = math.log(SMAX / SMIN) / M



def loguniform_cdf(s):
    return np.clip(np.log(np.asarray(s) / SMIN) / math.log(SMAX / SMIN), 0, 1)


def draws(table, n=20000, seed=0):
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return info.sample_icdf(u, table).numpy()


# -- grid ------------------------------------------------------------------------------------------

def test_grid_centres_edges_and_bins():
    edges = info.log_sigma_edges(SMIN, SMAX, M)
    assert len(edges) == M + 1 and math.isclose(edges[0].exp(), SMIN) and math.isclose(edges[-1].exp(), SMAX)
    np.testing.assert_allclose(np.diff(edges.numpy()), DELTA, rtol=1e-12)
    np.testing.assert_allclose(GRID.log().numpy(), np.log(SMIN) + (np.arange(M) + 0.5) * DELTA, rtol=1e-13)
    np.testing.assert_allclose(info.edges_from_grid(GRID).numpy(), edges.numpy(), atol=1e-12)
    assert math.isclose(info.log_step(GRID), DELTA, rel_tol=1e-12)
    assert torch.equal(info.bin_index(GRID, SMIN, SMAX, M), torch.arange(M))
    k = info.bin_index(torch.tensor([1e-6, SMIN, SMAX, 1e6]), SMIN, SMAX, M)
    assert k.dtype == torch.int64 and k.tolist() == [0, 0, M - 1, M - 1]


# -- information quantities and weights (§2, §3.2) -------------------------------------------------

def test_entropy_rates_gaussian():
    c, D = 0.7, 10
    mmse = D * c**2 * GRID**2 / (c**2 + GRID**2)
    np.testing.assert_allclose(info.entropy_rate(mmse, GRID), D * c**2 / (GRID * (c**2 + GRID**2)), rtol=1e-13)
    np.testing.assert_allclose(info.entropy_rate_log(mmse, GRID), GRID * info.entropy_rate(mmse, GRID), rtol=1e-13)


def test_gate_is_edm_lambda_inverse_for_n2():
    sd = 0.5
    inv_lambda = 1 / info.loss_weight(GRID, "edm", sd)
    np.testing.assert_allclose(sd**2 * info.gate(GRID, sd, n=2), inv_lambda, rtol=1e-12)
    np.testing.assert_allclose(inv_lambda, sd**2 * GRID**2 / (GRID**2 + sd**2), rtol=1e-12)


def test_gate_limits_and_stability():
    s = torch.tensor([1e-300, 1e-30, 0.3, 1e30, 1e300], dtype=F64)
    g = info.gate(s, 0.3, n=3)
    assert torch.isfinite(g).all() and g[0] == 0 and g[-1] == 1 and g[2] == 0.5
    np.testing.assert_allclose(info.gate(GRID, 0.15, 3), GRID**3 / (GRID**3 + 0.15**3), rtol=1e-12)


def test_loss_weight():
    s = torch.tensor([0.01, 0.5, 10.0])
    assert info.loss_weight(s, "edm").dtype == torch.float32           # keeps the loss's dtype
    s64 = s.double()
    np.testing.assert_allclose(info.loss_weight(s64, "edm", 0.5), (s64**2 + 0.25) / (s64 * 0.5) ** 2)
    assert torch.equal(info.loss_weight(s, "unit"), torch.ones(3))
    with pytest.raises(ValueError, match="edm, unit"):
        info.loss_weight(s, "karras")


# -- smoothing -------------------------------------------------------------------------------------

def test_smooth_matches_scipy_and_keeps_mass():
    v = torch.rand(M, generator=torch.Generator().manual_seed(1), dtype=F64) * GRID**-2
    for std in (0.5, 1.0, 2.5):
        out = info.smooth(v, std)
        ref = scipy.ndimage.gaussian_filter1d(v.numpy(), std, mode="reflect", truncate=4.0)
        np.testing.assert_allclose(out, ref, rtol=1e-12)
        assert math.isclose(out.sum(), v.sum(), rel_tol=1e-12)
    assert torch.equal(info.smooth(v, 0), v)
    assert torch.allclose(info.smooth(torch.full((7,), 3.0, dtype=F64), 4.0), torch.full((7,), 3.0, dtype=F64))


# -- pivots (§4) -------------------------------------------------------------------------------------

def onset_profile(j):
    """ḣ ∝ 1/σ up to bin j, ~0 above, plus an isolated spike and a 2-bin blip higher up."""
    h = torch.where(torch.arange(M) <= j, 1 / GRID, 1e-9)
    h[j + 20] = 0.5 * h.max()
    h[j + 30: j + 32] = 0.5 * h.max()
    return h


def test_pivot_onset_planted():
    j = int(info.bin_index(torch.tensor(0.15), SMIN, SMAX, M))
    h = onset_profile(j)
    assert info.pivot_onset(h, GRID, tau=0.002, k_persist=3) == float(GRID[j])
    assert info.pivot_onset(h, GRID, tau=0.002, k_persist=1) == float(GRID[j + 31])   # persistence matters
    assert info.pivot_onset(h, GRID, tau=0.002, k_persist=2) == float(GRID[j + 31])


def test_pivot_onset_independent_scan_on_gaussian():
    c = 0.5
    h = 1 / (GRID * (c**2 + GRID**2))
    r = (h / h.max()).numpy()
    top = next(i for i in range(M - 1, 1, -1) if all(r[i - d] >= 0.002 for d in range(3)))
    assert info.pivot_onset(h, GRID) == float(GRID[top])


def broken_powerlaw(j, a, b):
    x = GRID.log() - GRID[j].log()
    return torch.exp(torch.where(torch.arange(M) <= j, a * x, b * x))


def index_of(s):
    return int((GRID - s).abs().argmin())


def test_pivot_powerlaw_planted():
    j = index_of(0.2)                                            # ≈ 2 decades of power law above σ_min
    h = broken_powerlaw(j, a=-0.5, b=-3.0)
    assert info.pivot_powerlaw(h, GRID, tol=0.25, smooth_std=0) == float(GRID[j])
    assert abs(index_of(info.pivot_powerlaw(h, GRID, tol=0.25, smooth_std=1.0)) - j) <= 1
    # a pure power law never breaks: the run spans the whole grid
    assert info.pivot_powerlaw(GRID**-0.5, GRID) == float(GRID[-1])


def test_pivot_powerlaw_slope_smoothing_tames_noise():
    j = index_of(0.2)
    h = broken_powerlaw(j, a=-0.5, b=-3.0)
    noisy = [h * (1 + 0.03 * torch.randn(M, generator=torch.Generator().manual_seed(i), dtype=F64)) for i in range(10)]
    found = {std: [index_of(info.pivot_powerlaw(x, GRID, smooth_std=std)) - j for x in noisy] for std in (1.0, 2.0)}
    assert min(found[1.0]) < -5                                   # 3 % noise breaks raw-ish slopes ...
    assert all(-3 <= d <= 0 for d in found[2.0])                  # ... smoothing them over 2 bins holds


def test_pivot_knee_planted_and_short_run_fallback():
    j = index_of(1.0)
    assert abs(index_of(info.pivot_knee(broken_powerlaw(j, 1.0, -2.0), GRID)) - j) <= 1
    j = index_of(0.01)                                           # only 0.7 decade of power law
    h = broken_powerlaw(j, a=1.0, b=-1.0)
    assert info.pivot_powerlaw(h, GRID, min_decades=0.5, smooth_std=0) == float(GRID[j])
    fallback = info.pivot_powerlaw(h, GRID, min_decades=1.0, smooth_std=1.0)
    assert fallback == info.pivot_knee(h, GRID, smooth_std=1.0) and abs(index_of(fallback) - j) <= 1


def test_pivot_dispatch():
    j = index_of(0.15)
    h = onset_profile(j)
    assert info.pivot(h, GRID, "continuous") == info.pivot_onset(h, GRID)
    assert info.pivot(h, GRID, "discrete", tol=0.1) == info.pivot_powerlaw(h, GRID, tol=0.1)
    assert info.pivot(h, GRID, "discrete", pinned=0.2) == 0.2
    with pytest.raises(ValueError, match="continuous, discrete"):
        info.pivot(h, GRID, "auto")
    with pytest.raises(ValueError):
        info.pivot_onset(torch.zeros(M, dtype=F64), GRID)


# -- allocation → schedule → density (§3) ----------------------------------------------------------

def test_allocation_schedule_normalisation_and_floor():
    c, sp = 0.5, 0.3
    h = 1 / (GRID * (c**2 + GRID**2))
    rho = info.allocation(h, GRID, sp, n=3, smooth_std=0)
    expect = (GRID**3 / (GRID**3 + sp**3)) * h
    np.testing.assert_allclose(rho, expect / (GRID * expect).sum() / DELTA, rtol=1e-12)
    w = info.loss_weight(GRID, "edm")
    pi = info.schedule_from_allocation(rho, GRID, w)
    ratio = pi * w / rho
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)              # emphasis π·w ∝ ρ
    p = info.log_density(pi, GRID)
    np.testing.assert_allclose(p, GRID * pi, rtol=1e-12)                  # π was already normalised
    assert math.isclose(p.sum() * DELTA, 1, rel_tol=1e-12)
    pf = info.add_floor(p, 0.02)
    assert math.isclose(pf.sum() * DELTA, 1, rel_tol=1e-12)
    assert pf.min() >= 0.02 / (M * DELTA) * (1 - 1e-12)
    np.testing.assert_allclose(pf, 0.98 * p + 0.02 / math.log(SMAX / SMIN), rtol=1e-12)


# -- tables and sampling (§3.6) --------------------------------------------------------------------

def test_sample_icdf_is_exact_inverse_and_continuous():
    p = torch.rand(M, generator=torch.Generator().manual_seed(2), dtype=F64) + 0.1
    table = info.build_cdf(p, GRID)
    assert table.shape == (2, M + 1) and table[1, 0] == 0 and table[1, -1] == 1
    u = torch.rand(5000, generator=torch.Generator().manual_seed(3), dtype=F64)
    s = info.sample_icdf(u, table)
    np.testing.assert_allclose(info.cdf_at(s, table), u, atol=1e-12)
    assert len(torch.unique(s)) == len(s)                                    # continuous, not binned
    ends = info.sample_icdf(torch.tensor([0.0, 1.0], dtype=F64), table)
    np.testing.assert_allclose(ends, [SMIN, SMAX], rtol=1e-12)


def test_flat_log_density_samples_loguniform():
    table = info.build_cdf(torch.ones(M, dtype=F64), GRID)
    assert scipy.stats.kstest(draws(table), loguniform_cdf).pvalue > 0.01


def test_known_table_density_ks():
    p = 1 + torch.exp(-0.5 * ((GRID.log() - math.log(0.5)) / 0.8) ** 2) * 20 + (torch.arange(M) % 3)
    table = info.build_cdf(p, GRID)
    edges, cdf = table[0].numpy(), table[1].numpy()
    exact = lambda s: np.interp(np.log(s), edges, cdf)
    x = draws(table, seed=4)
    assert scipy.stats.kstest(x, exact).pvalue > 0.01
    assert scipy.stats.kstest(x, loguniform_cdf).pvalue < 1e-10           # the KS test has power
    # bin frequencies match the per-ln σ masses p_k·Δ / Σ
    freq = np.bincount(info.bin_index(torch.from_numpy(x), SMIN, SMAX, M).numpy(), minlength=M) / len(x)
    assert 0.5 * np.abs(freq - info.bin_masses(table).numpy()).sum() < 0.06


def test_forgetting_the_jacobian_is_caught():
    """π(σ) ∝ 1/σ per unit σ IS log-uniform. Tabulating σ·π samples it; tabulating π itself does not."""
    pi = 1 / GRID
    right = info.build_cdf(info.log_density(pi, GRID), GRID)
    wrong = info.build_cdf(pi, GRID)
    assert scipy.stats.kstest(draws(right), loguniform_cdf).pvalue > 0.01
    assert scipy.stats.kstest(draws(wrong), loguniform_cdf).pvalue < 1e-10


def test_build_cdf_rejects_degenerate_density():
    with pytest.raises(ValueError):
        info.build_cdf(torch.zeros(M, dtype=F64), GRID)
    with pytest.raises(ValueError):
        info.build_cdf(-torch.ones(M, dtype=F64), GRID)


def test_total_variation():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    assert info.total_variation(p, p) == 0
    assert math.isclose(info.total_variation(p, torch.tensor([0.0, 0.5, 0.5], dtype=F64)), 0.5)
    assert math.isclose(info.total_variation(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])), 1.0)


def test_pivot_knee_ignores_the_noisy_end_bins():
    """A young learned profile: the sparsest bins near σ_min carry a spurious kink. The knee must find the
    real break (σ ≈ 0.3), not the end (the unguarded knee returned σ ≈ 0.005 on such a profile)."""
    j = index_of(0.3)
    h = broken_powerlaw(j, a=-1.5, b=-3.0)
    h[:3] *= torch.tensor([8.0, 0.2, 3.0], dtype=F64)
    margin = 8                                                    # ⌈4·smooth_std⌉ with the default 2 bins
    found = index_of(info.pivot_knee(h, GRID))
    assert margin <= found and abs(found - j) <= 3
    assert index_of(info.pivot(h, GRID, "discrete")) == found    # the power-law run is < 1 decade → knee
