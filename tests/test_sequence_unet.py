"""SequenceUNet: shapes through the EDM wrapper, labels, attention placement, length errors, presets."""

import pytest
import torch
import yaml

from models.networks import UNetBlock, build_network
from models.sequence_unet import SequenceUNet
from tests.conftest import REPO


def small(**kw):
    return dict(model_channels=8, channel_mult=[1, 2, 2, 2], num_blocks=1, dropout=0.0, **kw)


def test_shapes_through_the_edm_wrapper_with_labels():
    torch.manual_seed(0)
    net = build_network("dnaunet", "edm", data_shape=(4, 200), label_dim=4, **small())
    x = torch.randn(5, 4, 200)
    labels = torch.eye(4)[[0, 1, 2, 3, 0]]
    out = net(x, torch.full([5], 0.7), labels)
    assert out.shape == (5, 4, 200) and out.dtype == torch.float32
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert net(x, torch.full([5], 0.7), torch.tensor([0, 1, 2, 3, 0])).shape == (5, 4, 200)  # class indices
    assert net(x, torch.full([5], 0.7)).shape == (5, 4, 200)  # unconditional


def test_labels_and_noise_level_change_the_output():
    torch.manual_seed(0)
    net = SequenceUNet(64, 4, 4, label_dim=3, **small())
    torch.nn.init.normal_(net.out_conv.weight)  # the output layer is zero-initialised, as in EDM
    for blk in net.modules():
        if isinstance(blk, UNetBlock):
            torch.nn.init.normal_(blk.conv1.weight, std=0.1)
    x, s = torch.randn(2, 4, 64), torch.zeros(2)
    a = net(x, s, torch.eye(3)[[0, 0]])
    assert not torch.allclose(a, net(x, s, torch.eye(3)[[1, 1]]))
    assert not torch.allclose(a, net(x, s + 1, torch.eye(3)[[0, 0]]))
    net.label_dropout = 1.0
    net.train()
    torch.testing.assert_close(net(x, s, torch.eye(3)[[0, 1]]), net(x, s, torch.zeros(2, 3)))  # all labels dropped


def test_attention_sits_at_the_coarsest_level_and_bottleneck():
    net = SequenceUNet(200, 4, 4, model_channels=16, channel_mult=[1, 2, 2, 2], num_blocks=1)
    with_attn = sorted(
        n for n, m in list(net.enc.items()) + list(net.dec.items()) if isinstance(m, UNetBlock) and m.num_heads
    )
    assert with_attn == ["25_block0", "25_block0", "25_block1", "25_in0"]  # enc, then dec blocks at L = 25
    net = SequenceUNet(200, 4, 4, model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_levels=[0])
    assert {n for n, m in net.enc.items() if isinstance(m, UNetBlock) and m.num_heads} == {"200_block0"}


def test_bad_length_raises_with_the_fix():
    with pytest.raises(
        ValueError,
        match=r"seq_length=100 cannot be halved through 4 levels .*divisible by 2\*\*\(levels-1\)=8.*at most 3 levels",
    ):
        SequenceUNet(100, 4, 4, channel_mult=[1, 2, 2, 2])
    with pytest.raises(ValueError, match=r"seq_length=100"):
        build_network("dnaunet", "edm", data_shape=(4, 100), **small())
    net = SequenceUNet(64, 4, 4, **small())
    with pytest.raises(ValueError, match=r"expected x of shape \[N, 4, 64\]"):
        net(torch.zeros(1, 4, 60), torch.zeros(1))


@pytest.mark.parametrize("preset,params", [("dna-cpu", (0.5e6, 2e6)), ("dna-gpu", (60e6, 120e6))])
def test_presets_build_at_their_documented_size(preset, params):
    opts = yaml.safe_load((REPO / "configs" / f"{preset}.yaml").read_text())
    assert opts["arch"] == "dnaunet" and opts["weighting"] == "unit" and opts["cond"] is True
    with torch.device("meta"):  # count parameters without allocating the GPU-sized one
        net = build_network("dnaunet", opts["precond"], data_shape=(4, 200), label_dim=4, **opts["network_kwargs"])
    n = sum(p.numel() for p in net.parameters())
    assert params[0] < n < params[1]
