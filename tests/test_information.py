"""schedulers/information.py against closed forms and independent implementations (docs/method.md §2–§5, §7)."""

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
    assert info.loss_weight(s, "edm").dtype == torch.float32  # keeps the loss's dtype
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
    h[j + 30 : j + 32] = 0.5 * h.max()
    return h


def test_pivot_onset_planted():
    j = int(info.bin_index(torch.tensor(0.15), SMIN, SMAX, M))
    h = onset_profile(j)
    assert info.pivot_onset(h, GRID, tau=0.002, k_persist=3) == float(GRID[j])
    assert info.pivot_onset(h, GRID, tau=0.002, k_persist=1) == float(GRID[j + 31])  # persistence matters
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
    j = index_of(0.2)  # ≈ 2 decades of power law above σ_min
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
    assert min(found[1.0]) < -5  # 3 % noise breaks raw-ish slopes ...
    assert all(-3 <= d <= 0 for d in found[2.0])  # ... smoothing them over 2 bins holds


def test_pivot_knee_planted_and_short_run_fallback():
    j = index_of(1.0)
    assert abs(index_of(info.pivot_knee(broken_powerlaw(j, 1.0, -2.0), GRID)) - j) <= 1
    j = index_of(0.01)  # only 0.7 decade of power law
    h = broken_powerlaw(j, a=1.0, b=-1.0)
    assert info.pivot_powerlaw(h, GRID, min_decades=0.5, smooth_std=0) == float(GRID[j])
    fallback = info.pivot_powerlaw(h, GRID, min_decades=1.0, smooth_std=1.0)
    assert fallback == info.pivot_knee(h, GRID, smooth_std=1.0) and abs(index_of(fallback) - j) <= 1


def test_pivot_dispatch():
    j = index_of(0.15)
    h = onset_profile(j)
    assert info.pivot(h, GRID, "continuous") == (info.pivot_onset(h, GRID), "onset", None)
    v1 = info.pivot(h, GRID, "discrete", rule="powerlaw", tol=0.1)
    assert v1.sigma_p == info.pivot_powerlaw(h, GRID, tol=0.1) and v1.rule in ("powerlaw", "knee")
    assert info.pivot(h, GRID, "discrete") == info.Pivot(*info.pivot_valley(h, GRID))  # v2 is the default
    assert info.pivot(h, GRID, "discrete", pinned=0.2) == (0.2, "pinned", None)
    with pytest.raises(ValueError, match="continuous, discrete"):
        info.pivot(h, GRID, "auto")
    with pytest.raises(ValueError, match="valley, powerlaw"):
        info.pivot(h, GRID, "discrete", rule="knee")
    with pytest.raises(ValueError):
        info.pivot_onset(torch.zeros(M, dtype=F64), GRID)


def test_pivot_v1_reports_run_or_knee():
    j = index_of(0.2)
    assert info.pivot(broken_powerlaw(j, -0.5, -3.0), GRID, "discrete", rule="powerlaw", smooth_std=0) == (
        float(GRID[j]),
        "powerlaw",
        None,
    )
    h = broken_powerlaw(index_of(0.01), a=1.0, b=-1.0)  # 0.7 decade: the knee decides
    assert info.pivot(h, GRID, "discrete", rule="powerlaw", smooth_std=1.0) == (
        info.pivot_knee(h, GRID, smooth_std=1.0),
        "knee",
        None,
    )


# -- discrete pivot v2: the valley before the information bump (§4, §7 oracle) ---------------------


def learned_profile(grid=GRID, s1=0.02, s_valley=0.3, s_bump=1.0, ratio=4.0, noise=0.0, seed=0):
    """ḣ of a synthetic learned-looking ±1 profile (docs/method.md §7), built in y = ln(m̂/σ²) = ln(σ·ḣ), piecewise
    linear in x = ln σ: m̂ = a·σ² below s1 (y flat); an error floor m̂ = const above (slope −2) down to
    the valley at s_valley; the information bump rising to `ratio`× the valley at s_bump; m̂ → const
    again above it (slope −2). Times i.i.d. log-normal noise of relative size `noise` per bin. Returns
    (ḣ, the valley's grid index)."""
    x = grid.log()
    j = int((grid - s_valley).abs().argmin())
    xv, x1, xb = x[j], math.log(s1), x[int((grid - s_bump).abs().argmin())]
    y_valley = -2 * (xv - x1)
    y = torch.where(x < x1, 0.0, -2 * (x - x1))
    rise = y_valley + math.log(ratio) * (x - xv) / (xb - xv)
    y = torch.where((x > xv) & (x <= xb), rise, y)
    y = torch.where(x > xb, y_valley + math.log(ratio) - 2 * (x - xb), y)
    if noise:
        y = y + noise * torch.randn(len(grid), generator=torch.Generator().manual_seed(seed), dtype=F64)
    return y.exp() / grid, j


def test_valley_planted_clean_profile():
    """Noise-free: the smoothing (std s = 1/8 decade ≈ 3.5 bins) moves the minimum of this asymmetric V
    (slopes −2 and +1.15) towards the shallow side by at most 2 bins. Unsmoothed, the prominence is exactly
    ln 4; smoothing rounds each corner of slope change Δ by at most Δ·s/√(2π) in y (valley and peak)."""
    h, j = learned_profile()
    sp0, rule0, prom0 = info.pivot_valley(h, GRID, smooth_decades=0)
    assert (sp0, rule0) == (float(GRID[j]), "valley") and math.isclose(prom0, math.log(4), rel_tol=1e-9)
    sp, rule, prom = info.pivot_valley(h, GRID)
    assert rule == "valley" and 0 <= index_of(sp) - j <= 2
    slope_up = math.log(4) / math.log(1.0 / float(GRID[j]))
    rounding = 2 * (2 + slope_up) * 0.125 * math.log(10) / math.sqrt(2 * math.pi)
    assert math.log(4) - rounding <= prom < math.log(4)


@pytest.mark.parametrize("noise", [0.05, 0.1, 0.2])
def test_valley_recovered_over_redrawn_noise(noise):
    found = [info.pivot_valley(*learned_profile(noise=noise, seed=seed)[:1], GRID) for seed in range(20)]
    j = learned_profile()[1]
    assert all(rule == "valley" for _, rule, _ in found)
    assert all(-1 <= index_of(sp) - j <= 3 for sp, _, _ in found)  # clean bias ≤ 2 bins, plus the noise's 1


def test_valley_other_positions_and_grids():
    """The rule is not tied to σ ≈ 0.3 or to 128 bins: planted valleys at 0.05 and 1.0, on 64 and 128 bins."""
    for m in (64, 128):
        grid = info.log_sigma_grid(SMIN, SMAX, m)
        for s_valley, s_bump in ((0.05, 0.2), (1.0, 4.0)):
            h, j = learned_profile(grid, s1=s_valley / 15, s_valley=s_valley, s_bump=s_bump)
            sp, rule, _ = info.pivot_valley(h, grid)
            k = int((grid - sp).abs().argmin())
            assert rule == "valley" and 0 <= k - j <= (2 if m == 128 else 1)


def test_valley_ignores_sparse_end_bins():
    """The end bins hold the fewest errors (the floor's share of the draws): wild values there must not
    make a valley or move the real one."""
    h, j = learned_profile(noise=0.05)
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        wild = h.clone()
        wild[:3] *= torch.exp(1.5 * torch.randn(3, generator=g, dtype=F64))
        wild[-3:] *= torch.exp(1.5 * torch.randn(3, generator=g, dtype=F64))
        assert info.pivot_valley(wild, GRID) == info.pivot_valley(h, GRID)


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_valley_fallback_without_bump(noise):
    """No bump (the young profile that still falls monotonically), or one below κ = 1.5: fallback 0.2."""
    flat, _ = learned_profile(ratio=1.0, noise=noise)
    low, _ = learned_profile(ratio=1.3, noise=noise)
    for h in (flat, low):
        sp, rule, prom = info.pivot_valley(h, GRID)
        assert (sp, rule) == (0.2, "fallback") and prom < math.log(1.5)
    assert info.pivot_valley(flat, GRID, fallback=0.05)[:2] == (0.05, "fallback")
    high, _ = learned_profile(ratio=4.0, noise=noise)  # κ is the bar: ln 4 − rounding ≈ 0.75
    assert info.pivot_valley(high, GRID, kappa=1.5)[1] == "valley"
    assert info.pivot_valley(high, GRID, kappa=3.0)[:2] == (0.2, "fallback")


def test_valley_uses_scipy_prominence():
    """The prominence is scipy's topographic prominence of −y (not a hand-rolled variant)."""
    from scipy.signal import find_peaks, peak_prominences

    h, _ = learned_profile(noise=0.1, seed=3)
    std = 0.125 * math.log(10) / DELTA
    y = scipy.ndimage.gaussian_filter1d(np.log((GRID * h).numpy()), std, mode="reflect", truncate=4.0)
    peaks, _ = find_peaks(-y)
    prom = peak_prominences(-y, peaks)[0]
    v = info.most_prominent_valley(h, GRID)
    assert v.sigma == float(GRID[peaks[prom.argmax()]]) and math.isclose(v.prominence, prom.max(), rel_tol=1e-9)


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
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # emphasis π·w ∝ ρ
    p = info.log_density(pi, GRID)
    np.testing.assert_allclose(p, GRID * pi, rtol=1e-12)  # π was already normalised
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
    assert len(torch.unique(s)) == len(s)  # continuous, not binned
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
    assert scipy.stats.kstest(x, loguniform_cdf).pvalue < 1e-10  # the KS test has power
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
    margin = 8  # ⌈4·smooth_std⌉ with the default 2 bins
    found = index_of(info.pivot_knee(h, GRID))
    assert margin <= found and abs(found - j) <= 3
    assert info.pivot(h, GRID, "discrete", rule="powerlaw") == (GRID[found].item(), "knee", None)  # run < 1 decade
