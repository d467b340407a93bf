"""`python -m analysis.audit`: the informative window is the 5–95 % mass of InfoNoise's allocation, a schedule
equal to that allocation has TV 0 and 90 % of its emphasis inside, SD3's logit-normal is log-normal(0, 1) in σ,
and the command runs end to end on a checkpoint."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from analysis import audit
from schedulers import information as info
from tests.conftest import train_tiny, write_image_dataset
from torch_utils import checkpoint

SIGMA = info.log_sigma_grid(0.002, 80.0, 64)


def gaussian_mmse(c=0.5, d=64):
    return d * c**2 * SIGMA**2 / (c**2 + SIGMA**2)


def test_window_share_and_tv_against_the_allocation_itself():
    first = audit.audit(gaussian_mmse(), SIGMA, "continuous")
    rho = first["allocation"]
    result = audit.audit(gaussian_mmse(), SIGMA, "continuous", extra={"the allocation": rho})
    row = result["schedules"]["the allocation"]
    assert row["tv"] == 0.0
    assert abs(row["share_inside"] - 0.90) < 0.03  # 5–95 %, up to the bins the window edges cut
    lo, hi = result["window"]
    cdf = (rho / rho.sum()).cumsum(0)
    assert (
        float(SIGMA[int((cdf >= 0.05).nonzero()[0])]) / lo < 1.2
        and hi / float(SIGMA[int((cdf >= 0.95).nonzero()[0])]) < 1.2
    )


def test_discrete_profiles_go_through_the_default_cap():
    """A discrete endpoint's profile is read as a run reads it (docs/method.md §4b): the allocation of m̂ with the
    data's cap is exactly that of min(m̂, B) without one, and differs from m̂'s uncapped where the cap binds."""
    from analysis.diagnostics import scheduler_view

    x = torch.where(torch.rand(400, 64, generator=torch.Generator().manual_seed(0)) < 0.3, 1.0, -1.0).double()
    young = 64 * SIGMA**2 / (0.3**2 + SIGMA**2)  # a young network: error ∝ σ² below the window
    bound = info.coordinate_bayes_mmse(info.coordinate_marginals(x), SIGMA)
    assert (young > bound).any()
    capped = audit.audit(young, SIGMA, "discrete", training_data=x)
    edges = info.edges_from_grid(SIGMA).exp()
    context = dict(sigma_min=float(edges[0]), sigma_max=float(edges[-1]), endpoint="discrete", weighting="unit")
    by_hand = scheduler_view(torch.minimum(young, bound), context, dict(num_bins=64, mmse_cap="none"))
    rho = info.log_density(torch.tensor(by_hand["allocation"], dtype=torch.float64), SIGMA)
    # (the scheduler's own grid, rebuilt from the edges, differs from SIGMA in the last bits, and so does its B)
    torch.testing.assert_close(capped["allocation"], rho, rtol=1e-12, atol=0)
    assert capped["sigma_p"] == by_hand["sigma_p"]
    plain = scheduler_view(young, context, dict(num_bins=64, mmse_cap="none"))
    assert not torch.equal(torch.tensor(plain["allocation"], dtype=torch.float64), torch.tensor(by_hand["allocation"]))


def test_sd3_logit_normal_is_lognormal_in_sigma():
    """t ~ logit-N(0, 1), σ = t/(1 − t): per unit ln σ the density is N(ln σ; 0, 1)."""
    phi = audit.fixed_schedules(SIGMA)["SD3 logit-normal, w ≡ 1"]
    x = SIGMA.log()
    expect = torch.exp(-0.5 * x**2)
    torch.testing.assert_close(phi / phi.sum(), expect / expect.sum(), rtol=1e-10, atol=1e-12)


def test_cli_on_a_checkpoint(tmp_path):
    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8)[0]
    r = train_tiny(tmp_path, data, "--desc", "run")
    snap = checkpoint.latest_snapshot(tmp_path / "run")
    r = CliRunner().invoke(
        audit.main,
        [
            "--data",
            str(data),
            "--checkpoint",
            str(snap),
            "--out",
            str(tmp_path / "a"),
            "--probe-samples",
            "4",
            "--num-bins",
            "16",
            "--preset",
            "digits",
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert set(result["schedules"]) >= {"EDM log-normal + λ", "log-uniform, w ≡ 1", "preset digits"}
    assert (tmp_path / "a" / "audit.png").stat().st_size > 0 and "informative window" in r.output
