"""models/networks.py: preconditioning formulas (exact), U-Net shapes/dtypes/gradients, registry
errors, JSON-able construction and weight round trips. Tiny channel counts keep this file fast."""

import io
import json
import math

import pytest
import torch

from models import networks
from models.networks import ARCHS, PRECONDS, Arch, build_network, from_snapshot
from torch_utils import checkpoint

SIGMAS = [0.002, 0.0123, 0.2, 0.5, 1.0, 3.7, 25.0, 80.0]
TINY = dict(model_channels=8, channel_mult=[1, 2, 2], num_blocks=1, attn_resolutions=[4], dropout=0.0)  # 8×8 levels


def tiny(res: int) -> dict:
    """TINY with attention at the middle level of a res×res network (8 → 4, 28 → 14 → 7: 7 is the lowest)."""
    return {**TINY, "attn_resolutions": [4] if res == 8 else [7]}


class RecordingNet(torch.nn.Module):
    """Stub inner model F: records its inputs and returns a fixed, known function of them."""

    def __init__(self, in_channels, out_channels, label_dim=0, img_resolution=None, seq_length=None):
        super().__init__()
        self.calls = []

    def forward(self, x, noise_labels, class_labels=None):
        self.calls.append(dict(x=x, noise_labels=noise_labels, class_labels=class_labels))
        return torch.tanh(x) + noise_labels.reshape(-1, *[1] * (x.ndim - 1)) ** 2


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setitem(ARCHS, "stub", Arch(RecordingNet, {}, "image"))
    monkeypatch.setitem(ARCHS, "stubseq", Arch(RecordingNet, {}, "sequence"))


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


def exact(got, want):
    """float64 closed form to within 2 ulp: torch's vectorised sqrt/log/reciprocal may differ from
    Python's correctly rounded math by one ulp, so bitwise equality with `math` is not a property."""
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, f64(want), rtol=4.5e-16, atol=0)


# ---- preconditioning ------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma_data", [0.5, 1.3])
def test_edm_coefficients_exact(stub, sigma_data):
    net = build_network("stub", "edm", data_shape=(1, 4, 4), sigma_data=sigma_data)
    c_skip, c_out, c_in, c_noise = net.precond_coefficients(f64(SIGMAS))
    sd = sigma_data
    assert c_skip.dtype == torch.float64
    exact(c_skip, [sd * sd / (s * s + sd * sd) for s in SIGMAS])
    exact(c_out, [s * sd / math.sqrt(s * s + sd * sd) for s in SIGMAS])
    exact(c_in, [1 / math.sqrt(s * s + sd * sd) for s in SIGMAS])
    exact(c_noise, [math.log(s) / 4 for s in SIGMAS])
    # Known consequences: unit-variance training target, and c_skip^2 sd^2 + c_out^2 = sd^2 ... (EDM B.6).
    torch.testing.assert_close(c_skip + c_out**2 / sd**2, torch.ones(len(SIGMAS), dtype=torch.float64))
    assert (net.sigma_min, net.sigma_max, net.sigma_data) == (0.002, 80.0, sd)


def test_vp_coefficients_table1(stub):
    net = build_network("stub", "vp", data_shape=(1, 4, 4))
    bd, bm, M = 19.9, 0.1, 1000
    c_skip, c_out, c_in, c_noise = net.precond_coefficients(f64(SIGMAS))
    assert c_skip.tolist() == [1.0] * len(SIGMAS)
    assert c_out.tolist() == [-s for s in SIGMAS]
    exact(c_in, [1 / math.sqrt(s * s + 1) for s in SIGMAS])
    want = [(M - 1) * (math.sqrt(bm**2 + 2 * bd * math.log(1 + s * s)) - bm) / bd for s in SIGMAS]
    torch.testing.assert_close(c_noise, f64(want), rtol=1e-14, atol=0)
    # sigma(t) and its inverse; the default range is [sigma(eps_t), sigma(1)].
    t = f64([1e-5, 0.1, 0.5, 1.0])
    torch.testing.assert_close(net.sigma_inv(net.sigma(t)), t, rtol=1e-9, atol=0)
    assert net.sigma_min == pytest.approx(math.sqrt(math.expm1(0.5 * bd * 1e-10 + bm * 1e-5)), rel=1e-9)
    assert net.sigma_max == pytest.approx(math.sqrt(math.exp(0.5 * bd + bm) - 1), rel=1e-12)


def test_ve_coefficients_table1(stub):
    net = build_network("stub", "ve", data_shape=(1, 4, 4))
    c_skip, c_out, c_in, c_noise = net.precond_coefficients(f64(SIGMAS))
    assert c_skip.tolist() == [1.0] * len(SIGMAS) and c_in.tolist() == [1.0] * len(SIGMAS)
    assert c_out.tolist() == SIGMAS
    exact(c_noise, [math.log(0.5 * s) for s in SIGMAS])
    assert (net.sigma_min, net.sigma_max) == (0.02, 100.0)


@pytest.mark.parametrize("precond", ["edm", "vp", "ve"])
@pytest.mark.parametrize("arch,shape", [("stub", (3, 5, 5)), ("stubseq", (4, 17))])
def test_precond_forward_composes_inner_model(stub, precond, arch, shape):
    net = build_network(arch, precond, data_shape=shape, label_dim=3)
    assert net.data_shape == shape and net.img_channels == shape[0]
    assert net.img_resolution == (shape[-1] if len(shape) == 3 else None)
    x = torch.randn(len(SIGMAS), *shape, dtype=torch.float64)
    sigma = f64(SIGMAS)
    D = net(x, sigma, class_labels=torch.tensor([0, 2, 1, 1, 0, 2, 2, 0]))
    call = net.model.calls[-1]
    c_skip, c_out, c_in, c_noise = net.precond_coefficients(sigma.reshape(-1, *[1] * len(shape)))
    assert torch.equal(call["x"], c_in * x)
    assert torch.equal(call["noise_labels"], c_noise.flatten())
    assert call["class_labels"].tolist()[1] == [0.0, 0.0, 1.0]  # class indices -> one-hot
    F_x = torch.tanh(c_in * x) + c_noise**2
    assert D.dtype == torch.float64 and torch.equal(D, c_skip * x + c_out * F_x)
    # A scalar sigma is broadcast over the batch; no labels -> all-zero labels.
    D1 = net(x[:2], 0.7)
    assert D1.shape == x[:2].shape and net.model.calls[-1]["class_labels"].abs().sum() == 0
    torch.testing.assert_close(D1, net(x[:2], f64([0.7, 0.7]).reshape(2, *[1] * len(shape))))


# ---- U-Nets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["ddpmpp", "ncsnpp", "adm"])
@pytest.mark.parametrize("res", [8, 28])
@pytest.mark.parametrize("channels,label_dim", [(1, 0), (3, 10)])
def test_unet_shape_dtype_grad(arch, res, channels, label_dim):
    torch.manual_seed(0)
    net = build_network(arch, data_shape=(channels, res, res), label_dim=label_dim, **tiny(res))
    x = torch.randn(3, channels, res, res)
    labels = torch.eye(label_dim)[[1, 4, 9]] if label_dim else None
    D = net(x, torch.tensor([0.01, 1.0, 50.0]), labels)
    assert D.shape == x.shape and D.dtype == x.dtype and torch.isfinite(D).all()
    D.square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    with torch.no_grad():  # float64 input through a float32 network comes back as float64
        assert net(x.double(), torch.ones(3)).dtype == torch.float64


def test_songunet_skip_encoder_decoder_and_label_dropout():
    torch.manual_seed(0)
    net = build_network(
        "ddpmpp",
        data_shape=(2, 28, 28),
        label_dim=4,
        label_dropout=1.0,
        encoder_type="skip",
        decoder_type="skip",
        **tiny(28),
    )
    x, s = torch.randn(2, 2, 28, 28), torch.tensor([0.3, 3.0])
    net.train()
    a, b = net(x, s, torch.eye(4)[[0, 1]]), net(x, s, torch.eye(4)[[2, 3]])
    assert a.shape == x.shape and torch.equal(a, b)  # labels always dropped in training
    net.eval()
    assert not torch.equal(net(x, s, torch.eye(4)[[0, 1]]), net(x, s, torch.eye(4)[[2, 3]]))


@pytest.mark.parametrize("arch", ["ddpmpp", "ncsnpp", "adm"])
def test_bad_resolution_names_resolution_and_levels(arch):
    with pytest.raises(ValueError, match=r"img_resolution=28.*4 levels.*3\.5.*at most 3 levels"):
        build_network(arch, data_shape=(1, 28, 28), **{**tiny(28), "channel_mult": [1, 2, 2, 2]})


def test_shape_and_registry_errors():
    with pytest.raises(ValueError, match=r"H == W.*\(1, 28, 32\)"):
        build_network("ddpmpp", data_shape=(1, 28, 32), **tiny(28))
    with pytest.raises(ValueError, match=r"unknown arch 'unet'.*adm.*ddpmpp.*dnaunet.*ncsnpp"):
        build_network("unet", data_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"unknown precond 'iddpm'.*edm, ve, vp"):
        build_network("ddpmpp", "iddpm", data_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"does not take \['channels'\]"):
        build_network("ddpmpp", data_shape=(1, 8, 8), channels=4)
    with pytest.raises(TypeError, match="not JSON-able"):
        build_network("ddpmpp", data_shape=(1, 8, 8), channel_mult={1, 2}, model_channels=8)
    assert set(PRECONDS) == {"edm", "vp", "ve"}


def test_unimportable_arch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(ARCHS, "ghost", Arch("training.no_such_module:Net", {}, "sequence"))
    with pytest.raises(ValueError, match=r"arch 'ghost' needs training\.no_such_module:Net"):
        build_network("ghost", data_shape=(4, 200))


def test_dnaunet_through_the_registry():
    net = build_network("dnaunet", data_shape=(4, 16), model_channels=8, channel_mult=[1, 2], num_blocks=1, dropout=0.0)
    x = torch.randn(2, 4, 16)
    assert net(x, torch.tensor([0.1, 5.0])).shape == x.shape and net.img_resolution is None


# ---- construction and weights -------------------------------------------------------------------------


def _kwargs():
    return dict(arch="ncsnpp", precond="edm", data_shape=(1, 8, 8), label_dim=2, resample_filter=(1, 3, 3, 1), **TINY)


def test_json_round_trip_rebuilds_identical_network():
    torch.manual_seed(1)
    net = build_network(**_kwargs())
    kwargs = json.loads(json.dumps(net.network_kwargs))
    assert kwargs == net.network_kwargs and kwargs["data_shape"] == [1, 8, 8]
    torch.manual_seed(1)
    again = build_network(**kwargs)
    assert again.network_kwargs == kwargs and again.data_shape == (1, 8, 8)
    sd, sd2 = net.state_dict(), again.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)


def test_state_dict_weights_only_round_trip_and_from_snapshot(tmp_path):
    torch.manual_seed(2)
    net = build_network(**_kwargs()).eval()
    torch.manual_seed(3)
    ema = build_network(**_kwargs()).eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    fresh = build_network(**net.network_kwargs).eval()  # different random init
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x, s, c = torch.randn(4, 1, 8, 8), torch.tensor([0.01, 0.3, 2.0, 60.0]), torch.eye(2)[[0, 1, 1, 0]]
    assert torch.equal(fresh(x, s, c), net(x, s, c))

    snap = dict(
        format=checkpoint.FORMAT,
        options=dict(network_kwargs=net.network_kwargs),
        net=net.state_dict(),
        ema=ema.state_dict(),
    )
    checkpoint.atomic_save(snap, tmp_path / "network-snapshot-000001.pt")
    for which, ref in [("ema", ema), ("net", net)]:
        got = from_snapshot(tmp_path / "network-snapshot-000001.pt", which=which)
        assert not got.training and not any(p.requires_grad for p in got.parameters())
        assert torch.equal(got(x, s, c), ref(x, s, c))
    # FourierEmbedding frequencies are a persistent buffer: they travel with the weights.
    assert any(k.endswith("map_noise.freqs") for k in snap["ema"])

    bad = dict(snap, options=dict(network_kwargs={**net.network_kwargs, "arch": "ddpmpp"}))
    with pytest.raises(ValueError, match="do not match network_kwargs"):
        from_snapshot(bad)
    with pytest.raises(ValueError, match="no 'ema' weights"):
        from_snapshot(dict(snap, ema=None))


def test_presets_are_buildable_and_small():
    for name, kwargs in networks.PRESET_KWARGS.items():
        if name.startswith("cifar"):
            continue
        shape = (1, 8, 8) if "8" in name else (1, 28, 28)
        net = build_network(data_shape=shape, **kwargs)
        assert sum(p.numel() for p in net.parameters()) < 2_000_000


def test_conv_1d_resampling_is_average_pool_down_and_nearest_up():
    """The ADM blocks run on sequences (dims=1): the default (1, 1) FIR filter must be exactly average
    pooling down and nearest-neighbour repetition up, as the 2-D filter is on images."""
    x = torch.randn(2, 3, 16)
    down = networks.Conv(3, 3, 0, down=True, dims=1)
    up = networks.Conv(3, 3, 0, up=True, dims=1)
    assert torch.allclose(down(x), torch.nn.functional.avg_pool1d(x, 2), atol=1e-6)
    assert torch.allclose(up(x), x.repeat_interleave(2, dim=-1), atol=1e-6)
    conv = networks.Conv(3, 5, 3, dims=1)
    assert conv.weight.shape == (5, 3, 3) and conv(x).shape == (2, 5, 16)
    block = networks.UNetBlock(3, 8, emb_channels=4, down=True, attention=True, channels_per_head=4, dims=1)
    assert block(x, torch.randn(2, 4)).shape == (2, 8, 8)


@pytest.mark.parametrize("arch", ["ddpmpp", "adm"])
def test_attn_resolution_matching_no_level_is_an_error(arch):
    """attn_resolutions [7] inherited by a 16×16 data set used to build a network without attention."""
    kw = dict(model_channels=16, channel_mult=[1, 2, 2], num_blocks=1)
    with pytest.raises(ValueError, match=r"attn_resolutions \[7\] name no level .* its levels are 16, 8, 4"):
        build_network(arch, "edm", data_shape=[1, 16, 16], attn_resolutions=[7], **kw)

    def attention_layers(attn):  # the bottleneck always attends (EDM); attn_resolutions adds layers at 8×8
        net = build_network(arch, "edm", data_shape=[1, 16, 16], attn_resolutions=attn, **kw)
        return sum(name.endswith("qkv.weight") for name, _ in net.named_parameters())

    assert attention_layers([8]) > attention_layers([])
