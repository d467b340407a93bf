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
