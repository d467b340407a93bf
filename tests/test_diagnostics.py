"""The offline oracle against exact answers (docs/method.md §7): the two-point toy ±μ in closed form and by
quadrature, and the empirical-Bayes denoiser against brute force and its σ → 0 / σ → ∞ limits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner
from scipy import integrate, optimize

from analysis.diagnostics import EmpiricalBayes, load_data, main, run_oracle
from analysis.plot import load_schedule
from schedulers import information as info
from tests.test_plot import write_run

MU = 1.0


def _expect_given_plus(f, sigma: float, mu: float = MU) -> float:
    """E[f(x)] for x ~ N(μ, σ²) by quadrature; by symmetry this is the expectation under the mixture
    ½N(μ,σ²) + ½N(−μ,σ²) for every f used here."""
    value, _ = integrate.quad(
        lambda x: f(x) * math.exp(-((x - mu) ** 2) / (2 * sigma**2)),
        mu - 12 * sigma,
        mu + 12 * sigma,
        points=[0.0] if 12 * sigma > mu else None,
        limit=200,
        epsabs=1e-14,
    )
    return value / (sigma * math.sqrt(2 * math.pi))


def two_point_mmse(sigma: float, mu: float = MU) -> float:
    """mmse(σ) = E_x[μ²(1 − tanh²(μx/σ²))], the posterior variance averaged over x (docs/method.md §7)."""
    return _expect_given_plus(lambda x: mu**2 / math.cosh(mu * x / sigma**2) ** 2, sigma, mu)


def two_point_error_sd(sigma: float, mu: float = MU) -> float:
    """Exact s.d. of one Monte-Carlo error (μ tanh(μx/σ²) − μ)² given x0 = +μ, by quadrature. Unlike the
    sample s.d. it stays honest at small σ, where the error is a rare event (x on the wrong side)."""
    second = _expect_given_plus(lambda x: (mu * math.tanh(mu * x / sigma**2) - mu) ** 4, sigma, mu)
    return math.sqrt(max(second - two_point_mmse(sigma, mu) ** 2, 0.0))


def brute_force_denoise(x: np.ndarray, data: np.ndarray, sigma: float) -> np.ndarray:
    """Direct float64 exp/sum, no log-space tricks: valid where nothing underflows."""
    w = np.exp(-((x[:, None, :] - data[None]) ** 2).sum(-1) / (2 * sigma**2))
    return (w @ data) / w.sum(1, keepdims=True)


def test_two_point_denoiser_is_tanh():
    eb = EmpiricalBayes(torch.tensor([[-MU], [MU]]))
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)[:, None]
    for sigma in (0.05, 0.3, 1.0, 2.5, 10.0):
        expected = MU * torch.tanh(MU * x / sigma**2)
        assert torch.allclose(eb.denoise(x, sigma), expected, rtol=0, atol=1e-10)


def test_two_point_mmse_matches_quadrature():
    eb = EmpiricalBayes(torch.tensor([[-MU], [MU]]))
    sigma = torch.tensor([0.2, 0.5, 0.8, 1.0, 1.5, 3.0])
    k = 20000
    mmse, _ = eb.mmse_profile(sigma, samples_per_sigma=k, generator=torch.Generator().manual_seed(0))
    exact = torch.tensor([two_point_mmse(s) for s in sigma.tolist()], dtype=torch.float64)
    sem = torch.tensor([two_point_error_sd(s) for s in sigma.tolist()], dtype=torch.float64) / math.sqrt(k)
    assert ((mmse - exact).abs() < 4 * sem).all(), (mmse, exact, sem)


def test_two_point_entropy_rate_peaks_near_mu():
    """ḣ = mmse/σ³ peaks where the symmetry breaks; by quadrature its maximiser is σ* ≈ 0.644 μ
    (within a factor 1.6 of σ_c = μ). The module's profile must peak at the grid point nearest σ*."""
    res = optimize.minimize_scalar(
        lambda ls: -two_point_mmse(math.exp(ls)) / math.exp(3 * ls),
        bounds=(math.log(0.1 * MU), math.log(10 * MU)),
        method="bounded",
        options={"xatol": 1e-9},
    )
    sigma_star = math.exp(res.x)
    assert MU / 1.6 < sigma_star < MU * 1.6
    sigma = torch.logspace(math.log10(0.02), math.log10(50), 48, dtype=torch.float64)
    eb = EmpiricalBayes(torch.tensor([[-MU], [MU]]))
    mmse, _ = eb.mmse_profile(sigma, samples_per_sigma=8000, generator=torch.Generator().manual_seed(1))
    hdot = mmse / sigma**3
    nearest = int((sigma.log() - math.log(sigma_star)).abs().argmin())
    assert int(hdot.argmax()) == nearest


@pytest.fixture
def points() -> torch.Tensor:
    return torch.randn(37, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def test_denoiser_matches_brute_force(points):
    x = torch.randn(23, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 1.5
    eb = EmpiricalBayes(points)
    for sigma in (0.3, 1.0, 4.0):
        expected = brute_force_denoise(x.numpy(), points.numpy(), sigma)
        assert np.allclose(eb.denoise(x, sigma).numpy(), expected, rtol=0, atol=1e-12)
    per_query = torch.linspace(0.3, 4.0, 23, dtype=torch.float64)
    expected = np.stack(
        [brute_force_denoise(x[i : i + 1].numpy(), points.numpy(), float(s))[0] for i, s in enumerate(per_query)]
    )
    assert np.allclose(eb.denoise(x, per_query).numpy(), expected, rtol=0, atol=1e-12)


def test_chunked_equals_unchunked(points):
    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    sigma = torch.logspace(-2, 1, 50, dtype=torch.float64)  # spans one-hot to diffuse posteriors
    whole = EmpiricalBayes(points, query_chunk=1000, data_chunk=1000).denoise(x, sigma)
    chunked = EmpiricalBayes(points, query_chunk=7, data_chunk=5).denoise(x, sigma)
    assert torch.allclose(whole, chunked, rtol=0, atol=1e-12)


def test_denoiser_limits(points):
    eb = EmpiricalBayes(points, data_chunk=8)
    x = points[:10] + 0.1 * torch.randn(10, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    nearest = points[torch.cdist(x, points).argmin(1)]
    assert torch.allclose(eb.denoise(x, 1e-3), nearest, rtol=0, atol=1e-12)  # no underflow to NaN
    assert torch.allclose(eb.denoise(x, 1e5), points.mean(0).expand_as(x), rtol=0, atol=1e-8)


def test_mmse_limits(points):
    """mmse → 0 as σ → 0 (the posterior is one-hot) and → the total variance Σ_d Var(x_d) as σ → ∞;
    with K a multiple of N the stratified draws make the latter exact up to O(1/σ)."""
    eb = EmpiricalBayes(points)
    mmse, _ = eb.mmse_profile(
        torch.tensor([1e-3, 1e8]), samples_per_sigma=2 * 37, generator=torch.Generator().manual_seed(7)
    )
    total_variance = points.var(0, unbiased=False).sum()
    assert mmse[0] < 1e-12
    assert torch.isclose(mmse[1], total_variance, rtol=1e-6)


def test_rejects_empty_data():
    with pytest.raises(ValueError, match="N ≥ 1"):
        EmpiricalBayes(torch.zeros(0, 3))


# --- the CLI / run_oracle: a data set, a run to compare with, a checkpoint to probe ---------------


@pytest.fixture
def binary_data(tmp_path) -> Path:
    """A folder of 40 random two-valued 8×8 PNGs: 'discrete' data for endpoint 'auto' (docs/method.md §4)."""
    root = tmp_path / "binary"
    root.mkdir()
    images = np.random.RandomState(0).randint(0, 2, size=(40, 8, 8)).astype(np.uint8) * 255
    for i, img in enumerate(images):
        PIL.Image.fromarray(img).save(root / f"img{i:04d}.png")
    return root


def test_oracle_goes_through_the_scheduler_pipeline(tmp_path, binary_data):
    """run_oracle's ḣ, σ_p and allocation are information.py's maths applied to its own MMSE (no copy
    of the formulas), on the run's grid; the TV to the run's latest allocation is over bin masses σ·ρ."""
    run = write_run(tmp_path / "run", weighting="unit")
    r = run_oracle(binary_data, tmp_path / "out", samples_per_sigma=40, run_dir=run, progress=False)
    sigma, latest = r["sigma"], load_schedule(run)[-1]
    assert torch.allclose(sigma, torch.tensor(latest["sigma"], dtype=torch.float64), rtol=1e-12)
    assert r["endpoint"] == "discrete" and r["weighting"] == "unit" and r["num_images"] == 40 and r["dim"] == 64
    assert torch.allclose(r["hdot"], info.entropy_rate(r["mmse"], sigma), rtol=1e-12)
    assert r["sigma_p"] == info.pivot(r["hdot"], sigma, "discrete").sigma_p
    assert torch.allclose(r["allocation"], info.allocation(r["hdot"], sigma, r["sigma_p"]), rtol=1e-10)
    online = torch.tensor(latest["allocation"], dtype=torch.float64)
    p, q = sigma * r["allocation"], sigma * online
    tv = 0.5 * (p / p.sum() - q / q.sum()).abs().sum()
    assert r["tv"]["oracle_vs_online"] == pytest.approx(float(tv), abs=1e-12)
    assert 0 < r["tv"]["oracle_vs_online"] < 1 and set(r["tv"]) == {
        "oracle_vs_lognormal",
        "oracle_vs_loguniform",
        "oracle_vs_online",
    }
    saved = json.loads((tmp_path / "out" / "oracle.json").read_text())
    npz = np.load(tmp_path / "out" / "oracle.npz")
    assert saved["tv"] == r["tv"] and float(npz["tv_oracle_vs_online"]) == r["tv"]["oracle_vs_online"]
    assert np.allclose(npz["mmse"], r["mmse"].numpy()) and np.allclose(saved["allocation"], r["allocation"].numpy())


def test_cli_prints_tv_and_writes_outputs(tmp_path, binary_data):
    run = write_run(tmp_path / "run", weighting="unit")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["--data", str(binary_data), "--out", str(out), "--samples-per-sigma", "40", "--run", str(run)]
    )
    assert result.exit_code == 0, result.output
    tv = json.loads((out / "oracle.json").read_text())["tv"]["oracle_vs_online"]
    assert f"online allocation at 2 kimg: {tv:.4f}" in result.output
    for name in ("oracle.npz", "oracle.json", "oracle.png"):
        assert (out / name).stat().st_size > 500
    bad = CliRunner().invoke(
        main, ["--data", str(binary_data), "--out", str(out), "--num-bins", "16", "--run", str(run)]
    )
    assert bad.exit_code != 0 and "differs from the oracle's" in bad.output


def test_probed_checkpoint(tmp_path, binary_data):
    """--checkpoint: the probed profile (sampling.grids.probe_profile) goes through the same pipeline
    and is compared with the oracle (docs/method.md §7: report the distance to both references)."""
    from models.networks import build_network
    from torch_utils import checkpoint

    net = build_network(
        "ddpmpp", data_shape=[1, 8, 8], model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[]
    )
    snap = tmp_path / "network-snapshot-000000.pt"
    checkpoint.atomic_save(
        {"format": checkpoint.FORMAT, "options": {"network_kwargs": net.network_kwargs}, "ema": net.state_dict()}, snap
    )
    r = run_oracle(
        binary_data,
        tmp_path / "out",
        samples_per_sigma=8,
        num_bins=16,
        checkpoint=snap,
        probe_samples=8,
        progress=False,
    )
    assert r["probed_mmse"].shape == r["mmse"].shape == (16,)
    # discrete data: the run's default rule reads min(m̂, B), B the data's coordinate-wise Bayes bound (§4b)
    bound = info.coordinate_bayes_mmse(info.coordinate_marginals(load_data(binary_data)), r["sigma"])
    assert (r["probed_mmse"] > bound).any()  # an untrained network: the cap binds (everywhere, here)
    want = info.entropy_rate(torch.minimum(r["probed_mmse"], bound), r["sigma"])
    assert torch.allclose(r["probed_hdot"], want, rtol=1e-6)
    assert 0 < r["tv"]["oracle_vs_probed"] <= 1
