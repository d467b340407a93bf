"""EDM2's learned-uncertainty weighting (--weighting edm2): with u ≡ 0 (its zero initialisation) the loss is EDM's
exactly; the loss's minimum over u is ln of the weighted error (on a fixed error table); u(σ) is saved in the
snapshot; it trains with any scheduler."""

from __future__ import annotations

import torch

from models.networks import build_network, from_snapshot
from tests.conftest import train_tiny, write_image_dataset
from torch_utils import checkpoint
from training.loss import DenoisingLoss, uncertainty_weighted

KW = dict(data_shape=[1, 8, 8], model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[], dropout=0.0)


def test_zero_uncertainty_is_edms_loss():
    torch.manual_seed(0)
    net = build_network("ddpmpp", "edm", logvar_channels=16, **KW)
    g = torch.Generator().manual_seed(1)
    x0, sigma, noise = torch.randn(6, 1, 8, 8, generator=g), torch.rand(6, generator=g) * 5 + 0.01, None
    noise = torch.randn(6, 1, 8, 8, generator=g)
    assert torch.equal(net.logvar(sigma), torch.zeros(6))
    edm2, err2 = DenoisingLoss("edm2")(net, x0, sigma, noise=noise)
    edm, err = DenoisingLoss("edm")(net, x0, sigma, noise=noise)
    assert torch.equal(edm2, edm) and torch.equal(err2, err)


def test_the_optimal_uncertainty_is_the_log_weighted_error():
    """min_u a·e^{−u} + u is at u = ln a: Adam on a free u per σ bin of a fixed table of weighted errors."""
    a = torch.tensor([1e-3, 0.04, 0.7, 3.0, 55.0], dtype=torch.float64)
    u = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([u], lr=0.05)
    for _ in range(3000):
        opt.zero_grad()
        uncertainty_weighted(a, u).sum().backward()
        opt.step()
    torch.testing.assert_close(u.detach(), a.log(), rtol=0, atol=1e-3)
    assert torch.allclose(uncertainty_weighted(a, a.log()), 1 + a.log())  # the value at the optimum


def test_trains_and_saves_u(tmp_path):
    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8)[0]
    for scheduler in ("lognormal", "infonoise"):
        train_tiny(
            tmp_path,
            data,
            "--weighting",
            "edm2",
            "--scheduler",
            scheduler,
            "--lr",
            "0.01",
            "--desc",
            scheduler,
            duration="0.000032",
        )
    snap = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "lognormal"))
    assert "logvar_linear.weight" in snap["net"] and snap["options"]["network_kwargs"]["logvar_channels"] == 128
    net = from_snapshot(snap, which="net")
    u = net.logvar(torch.tensor([0.01, 1.0, 50.0]))
    assert torch.isfinite(u).all() and u.abs().sum() > 0  # learned away from zero


def test_u_is_plotted(tmp_path):
    from analysis.plot import plot_uncertainty

    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8)[0]
    train_tiny(tmp_path, data, "--weighting", "edm2", "--desc", "run")
    assert plot_uncertainty(tmp_path / "run", tmp_path / "u.png").stat().st_size > 0
