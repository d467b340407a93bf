"""Samplers against exact denoisers (docs/method.md §7): the empirical-Bayes denoiser of a few points, and
Gaussian data, whose probability-flow ODE has the closed-form solution x(σ) = x_T·√(c²+σ²)/√(c²+σ_T²)."""

from __future__ import annotations

import math

import pytest
import torch

from sampling.grids import edm_grid
from sampling.solvers import StackedRandomGenerator, nfe, sample_euler, sample_heun

POINTS = torch.tensor([[1.0, 1.0], [-1.0, 0.5], [0.3, -1.2], [-0.8, -0.9], [1.2, -0.2]], dtype=torch.float64)
C = 0.5  # Gaussian data std


def empirical_bayes(points: torch.Tensor):
    """D*(x;σ) = Σ_i softmax_i(−‖x − x_i‖²/(2σ²)) x_i, distances as ‖x‖² − 2xᵀx_i + ‖x_i‖² (docs/method.md §7)."""

    def denoise(x, sigma, class_labels=None):
        s = sigma.reshape(-1, 1).to(torch.float64)
        d2 = x.square().sum(1, keepdim=True) - 2 * x @ points.T + points.square().sum(1)
        logits = -d2 / (2 * s**2)
        if class_labels is not None:  # condition on the label: only that class's points
            logits = logits.masked_fill(~class_labels.bool(), -math.inf)
        return torch.softmax(logits, dim=1) @ points

    return denoise


def gaussian(x, sigma):
    return C**2 / (C**2 + sigma.reshape(-1, 1) ** 2) * x


def start(n=256, seed=1, sigma_max=80.0):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * sigma_max


def nearest_distance(x):
    return torch.cdist(x, POINTS).min(1).values


@pytest.mark.parametrize("solver", [sample_heun, sample_euler])
def test_enough_steps_land_on_data_points(solver):
    x = solver(empirical_bayes(POINTS), start(), edm_grid(128))
    assert nearest_distance(x).max() < 1e-6
    assert len(torch.cdist(x, POINTS).argmin(1).unique()) == len(POINTS)  # all modes reached


def test_heun_matches_converged_reference_modes():
    denoise, x0 = empirical_bayes(POINTS), start()
    ref = sample_heun(denoise, x0, edm_grid(256))
    x = sample_heun(denoise, x0, edm_grid(64))
    assert (x - ref).abs().max() < 1e-6


def test_error_shrinks_with_steps_and_heun_is_second_order():
    """Stop at σ = 0.3, before the empirical posterior collapses onto single points, so the flow map is
    smooth and the convergence order is measurable against a fine-grid reference."""
    denoise, x0 = empirical_bayes(POINTS), start()
    grid = lambda n: edm_grid(n, 0.3, 80.0)[:-1]  # noqa: E731 — no final 0: the last step is Heun too
    ref = sample_heun(denoise, x0, grid(512))
    steps = [8, 16, 32, 64]
    err = {
        f.__name__: [(f(denoise, x0, grid(n)) - ref).norm(dim=1).mean().item() for n in steps]
        for f in (sample_heun, sample_euler)
    }
    for e in err.values():
        assert all(a > b for a, b in zip(e, e[1:])), err
    heun, euler = err["sample_heun"], err["sample_euler"]
    assert all(h < e for h, e in zip(heun[1:], euler[1:])), err
    assert math.log2(heun[-2] / heun[-1]) > 1.7, err  # ≈ 2
    assert 0.7 < math.log2(euler[-2] / euler[-1]) < 1.3, err  # ≈ 1


def test_gaussian_closed_form():
    x0 = start()
    exact = x0 * C / math.sqrt(C**2 + 80.0**2)
    errs = []
    for n in [8, 16, 32, 64]:
        errs.append([(f(gaussian, x0, edm_grid(n)) - exact).abs().max().item() for f in (sample_heun, sample_euler)])
    assert all(a[0] > b[0] and a[1] > b[1] for a, b in zip(errs, errs[1:])), errs
    assert errs[-1][0] < 0.01 and errs[-1][0] < errs[-1][1] / 5, errs


def test_class_labels_are_passed_through():
    labels = torch.zeros(64, len(POINTS))
    labels[:, 2] = 1
    x = sample_heun(empirical_bayes(POINTS), start(64), edm_grid(32), class_labels=labels)
    assert (x - POINTS[2]).abs().max() < 1e-6


@pytest.mark.parametrize("solver", [sample_heun, sample_euler])
def test_churn_lands_on_data_and_depends_only_on_seed(solver):
    """With churn the noise comes from per-seed generators, so a sample is the same alone or in a batch."""
    denoise = empirical_bayes(POINTS)
    seeds = [3, 7, 11, 42]
    churn = dict(S_churn=40.0, S_min=0.05, S_max=50.0, S_noise=1.003)

    def run(batch_seeds):
        rnd = StackedRandomGenerator(batch_seeds)
        x = rnd.randn([len(batch_seeds), 2], dtype=torch.float64) * 80
        return solver(denoise, x, edm_grid(64), randn_like=rnd.randn_like, **churn)

    together = run(seeds)
    alone = torch.cat([run([s]) for s in seeds])
    assert torch.equal(together, alone)
    assert nearest_distance(together).max() < 1e-6
    rnd = StackedRandomGenerator(seeds)
    plain = solver(denoise, rnd.randn([4, 2], dtype=torch.float64) * 80, edm_grid(64))
    assert not torch.allclose(plain, together)  # churn changed the trajectories


def test_deterministic_path_draws_no_noise_and_churn_draws_at_every_step():
    """S_churn = 0 draws nothing. S_churn > 0 draws at every step, also where γ = 0 (outside [S_min, S_max]), as
    EDM's edm_sampler does, so a seed's later draws line up with EDM's; where γ = 0 the draw changes nothing."""

    def boom(x):
        raise AssertionError("noise drawn with S_churn = 0")

    plain = sample_heun(gaussian, start(8), edm_grid(8), randn_like=boom)
    draws = []
    outside = sample_heun(
        gaussian, start(8), edm_grid(8), S_churn=10.0, S_min=100.0, randn_like=lambda x: draws.append(1) or x + 1
    )
    assert len(draws) == 8 and torch.equal(outside, plain)


def test_nfe_counts_denoiser_calls():
    for solver, f in (("heun", sample_heun), ("euler", sample_euler)):
        calls = []
        f(lambda x, s: calls.append(1) or gaussian(x, s), start(4), edm_grid(18))
        assert len(calls) == nfe(solver, 18)
