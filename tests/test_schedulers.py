"""Fixed schedulers sample their densities (KS test, fixed seed); the registry rejects bad names."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

import schedulers
from schedulers.lognormal import LogNormal
from schedulers.loguniform import LogUniform


def test_lognormal_matches_density_ks():
    s = LogNormal(P_mean=-1.2, P_std=1.2).sample(20000, torch.Generator().manual_seed(0))
    assert s.dtype == torch.float32 and s.shape == (20000,)
    p = scipy.stats.kstest(np.log(s.double().numpy()), scipy.stats.norm(loc=-1.2, scale=1.2).cdf).pvalue
    assert p > 0.01


def test_loguniform_matches_density_ks():
    s = LogUniform(0.002, 80).sample(20000, torch.Generator().manual_seed(1)).double()
    assert s.min() >= 0.002 * (1 - 1e-6) and s.max() <= 80 * (1 + 1e-6)
    lo, hi = math.log(0.002), math.log(80)
    p = scipy.stats.kstest(np.log(s.numpy()), scipy.stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue
    assert p > 0.01


def test_ks_detects_wrong_density():
    """The KS check above is not vacuous: log-normal draws are rejected as log-uniform."""
    s = LogNormal().sample(20000, torch.Generator().manual_seed(2)).double()
    lo, hi = math.log(0.002), math.log(80)
    assert scipy.stats.kstest(np.log(s.numpy()), scipy.stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue < 1e-6


@pytest.mark.parametrize("sched", [LogNormal(-1.2, 1.2), LogUniform(0.002, 80)])
def test_density_integrates_to_one(sched):
    sigma = torch.logspace(math.log10(0.002), math.log10(80), 20001, dtype=torch.float64)
    mass = torch.trapezoid(sched.density(sigma) * sigma, sigma.log()).item()  # per-ln σ density = σ·π
    assert mass == pytest.approx(
        1.0
        if isinstance(sched, LogUniform)
        else scipy.stats.norm(-1.2, 1.2).cdf(math.log(80)) - scipy.stats.norm(-1.2, 1.2).cdf(math.log(0.002)),
        rel=1e-4,
    )


def test_same_generator_seed_same_draws():
    a = LogNormal().sample(100, torch.Generator().manual_seed(5))
    b = LogNormal().sample(100, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_fixed_schedulers_ignore_statistics():
    s = LogUniform()
    s.observe(torch.ones(4), torch.ones(4))
    assert s.step(1000) is None and s.profile() is None and s.state_dict() == {}


def test_registry_unknown_name_lists_valid():
    with pytest.raises(ValueError, match="Unknown scheduler 'nope'.*infonoise.*lognormal.*loguniform"):
        schedulers.build("nope")


def test_registry_unknown_option_lists_valid():
    with pytest.raises(ValueError, match="no option.*P_meen.*Valid options: P_mean, P_std"):
        schedulers.build("lognormal", P_meen=1)


def test_registry_passes_only_accepted_context():
    s = schedulers.build("loguniform", dict(sigma_min=0.01, sigma_max=10, weighting="edm", endpoint="discrete"))
    assert (s.sigma_min, s.sigma_max) == (0.01, 10)
    s = schedulers.build("lognormal", dict(sigma_min=0.01), P_mean=0.5)
    assert s.P_mean == 0.5
