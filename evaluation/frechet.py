"""Feature statistics and the Fréchet distance (docs/method.md §8: how samples are scored).

Streaming float64 mean/covariance of detector features, sharded over torchrun ranks and all-reduced;
the Fréchet distance with scipy's matrix square root; reference statistics in EDM's .npz layout (`mu`,
`sigma`, plus `detector`, `count`); image sources (folder, .zip, .npz) for the statistics.
"""

from __future__ import annotations

import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import scipy.linalg
import torch
import tqdm

from datafiles.images import ImageFolderDataset
from dnnlib.util import is_url
from evaluation.detectors import Detector
from models.network_source import local_file
from torch_utils import distributed as dist
from torch_utils.files import atomic_write


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
        sigma = (sigma + sigma.T) / 2  # Σffᵀ is symmetric; BLAS summation order may not be
        return mu.cpu().numpy(), sigma.cpu().numpy()


def compute_stats(
    images: Iterable,
    detector: Detector,
    *,
    merge: bool = True,
    total: int | None = None,
    progress: bool = False,
    desc: str = "features",
) -> FeatureStats:
    """Features of every batch in `images` (uint8 [N, C, H, W] tensors or arrays, or (images, labels)
    pairs as a DataLoader over a data set yields) accumulated into FeatureStats. With merge=True the
    sums are all-reduced over ranks, so under torchrun every rank must call this. `total`: images
    expected on this rank, for the progress bar (rank 0 only)."""
    stats = FeatureStats(detector.feature_dim)
    bar = tqdm.tqdm(
        total=total,
        unit="img",
        desc=desc,
        disable=not progress or dist.get_rank() != 0,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with bar:
        for batch in images:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            stats.append(detector(batch))
            bar.update(len(batch))
    return stats.merge_ranks() if merge else stats


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), the Fréchet distance of two Gaussians.

    The matrix root is scipy.linalg.sqrtm, as in the TF/pytorch-fid/EDM implementations. As in
    pytorch-fid, a product too singular for sqrtm (non-finite result, or an imaginary part above
    1e-3 from rounding — common when there are fewer images than feature dimensions) is retried
    with eps·I added to both covariances; the remaining imaginary part is rounding and dropped."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"frechet_distance: shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )

    def sqrtm(a: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # handled below
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


def save_stats(
    path: str | os.PathLike,
    mu: np.ndarray,
    sigma: np.ndarray,
    detector: str,
    count: int,
    fingerprint: str | None = None,
    image_shape: tuple[int, int, int] | None = None,
) -> None:
    """EDM-style reference .npz (mu, sigma) plus what `calc` checks before comparing: the detector, its
    weights, and the images' channels and resolution (image_shape (C, H, W)). Atomic."""
    extra = {}
    if image_shape is not None:
        c, h, w = (int(v) for v in image_shape)
        extra = dict(channels=np.int64(c), resolution=np.array([h, w], dtype=np.int64))
    with atomic_write(path, "wb") as f:
        np.savez(
            f,
            mu=mu,
            sigma=sigma,
            detector=np.str_(detector),
            count=np.int64(count),
            detector_fingerprint=np.str_(fingerprint or ""),
            **extra,
        )


def _check_covariance(sigma: np.ndarray, path) -> None:
    """Σ symmetric and positive semi-definite within rounding (a Cholesky factor of Σ + 1e-9·mean(diag)·I
    exists): a hand-edited or corrupted Σ would otherwise end in an 'imaginary component' error, or a number."""
    scale = max(float(np.abs(sigma).max(initial=0.0)), 1e-300)
    asym = float(np.abs(sigma - sigma.T).max(initial=0.0))
    if asym > 1e-6 * scale:
        raise ValueError(
            f"{path}: sigma is not symmetric (|Σ − Σᵀ| up to {asym:.3g}); recompute the reference with `fid.py ref`"
        )
    shift = 1e-9 * max(float(np.mean(np.diagonal(sigma))) if sigma.size else 0.0, 1e-300)
    try:
        np.linalg.cholesky(sigma + shift * np.eye(len(sigma)))
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh(sigma).min())
        raise ValueError(
            f"{path}: sigma is not positive semi-definite (eigenvalue {low:.3g}), so it is no covariance; "
            f"recompute the reference with `fid.py ref`"
        ) from None


def load_stats(path: str | os.PathLike) -> dict:
    """{mu, sigma, detector, count, fingerprint} from a `ref` file or one of EDM's reference
    files (which hold only mu and sigma: detector 'inception', count None); a path or a URL (file://,
    http(s):// — EDM's references are URLs), downloaded once into dnnlib's cache."""
    if is_url(os.fspath(path)):
        try:
            path = local_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{os.fspath(path)}: reference statistics not found") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference statistics not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable statistics .npz ({type(e).__name__}: {e})") from None
    if "mu" not in data or "sigma" not in data:
        names = sorted(data)
        shown = ", ".join(names[:6]) + (f", … ({len(names)} in all)" if len(names) > 6 else "")
        raise ValueError(f"{path}: statistics .npz must hold 'mu' and 'sigma' (has {shown})")
    try:
        mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{path}: mu and sigma must be numbers (they are {data['mu'].dtype}, {data['sigma'].dtype})"
        ) from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not form [D] and [D, D]")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{path}: mu or sigma holds NaN/Inf; recompute the reference with `fid.py ref`")
    _check_covariance(sigma, path)
    try:
        channels = int(data["channels"]) if "channels" in data else None
        resolution = tuple(int(v) for v in np.asarray(data["resolution"]).reshape(-1)) if "resolution" in data else None
        count = int(data["count"]) if "count" in data else None
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'channels', 'resolution' or 'count' is not a number; recompute it with `fid.py ref`")
    if (
        resolution is not None
        and (len(resolution) != 2 or min(resolution) < 1)
        or (channels is not None and channels < 1)
    ):
        raise ValueError(f"{path}: resolution {resolution} / channels {channels} are no image shape; recompute it")
    return dict(
        mu=mu,
        sigma=sigma,
        detector=str(data.get("detector", "inception")),
        count=count,
        fingerprint=str(data.get("detector_fingerprint", "")) or None,
        channels=channels,
        resolution=resolution,
    )


def image_shape(ds) -> tuple[int, int, int]:
    """(C, H, W) of an image source (open_images): the first item's, as every item's (readers check it)."""
    shape = getattr(ds, "image_shape", None) or getattr(ds, "data_shape", None)
    if shape is None:
        item = ds[0]
        shape = tuple((item[0] if isinstance(item, (tuple, list)) else item).shape)
    return tuple(int(v) for v in shape)


def check_image_shape(refstats: dict, shape, ref_path, images: str) -> str | None:
    """Images of another resolution or channel count than the reference's are refused (a detector resizes
    and converts them, so their distance would be a number, and a meaningless one). A reference that does not
    record its shape (EDM's files, older ones of ours) cannot be checked: returns a one-line note saying so."""
    c, h, w = (int(v) for v in shape)
    if refstats.get("resolution") is None or refstats.get("channels") is None:
        return (
            f"Note: {ref_path} does not record the resolution and channels of its images (made by EDM or an older "
            f"fid.py ref), so it is not checked that {images} ({c}x{h}x{w}) matches it"
        )
    rc, (rh, rw) = refstats["channels"], refstats["resolution"]
    if (c, h, w) != (rc, rh, rw):
        raise ValueError(
            f"{images}: images are {c}x{h}x{w} (channels x height x width) but the reference {ref_path} was made "
            f"from {rc}x{rh}x{rw} images; their Fréchet distance would compare different things. Use images of "
            f"the reference's shape, or make a reference from matching data with `fid.py ref`"
        )
    return None


# ----------------------------------------------------------------------------------------------
# Image sources


LAYOUTS = ("NHWC", "NCHW", "NHW")


class NpzImages(torch.utils.data.Dataset):
    """uint8 images from an .npz (key 'images'), as generate.py --npz writes: [N, H, W, C] like
    EDM; [N, C, H, W] (C 1 or 3) and grayscale [N, H, W] are accepted too. An optional 'layout' entry
    ('NHWC', 'NCHW', 'NHW') says which; without it, a shape that reads both ways ([N, 3, 8, 3]) is refused
    rather than guessed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if "images" not in z.files:
                    raise ValueError(f"no 'images' array (has {z.files})")
                x = z["images"]
                layout = str(z["layout"]) if "layout" in z.files else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{self.path}: not a readable image .npz ({type(e).__name__}: {e})") from None
        if x.dtype != np.uint8:
            raise ValueError(f"{self.path}: 'images' must be uint8 0..255, got {x.dtype}")
        self.images = np.ascontiguousarray(_to_nchw(x, layout, self.path))
        if min(self.images.shape[2:], default=0) < 1:
            raise ValueError(f"{self.path}: 'images' has shape {x.shape}: images without pixels")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> torch.Tensor:
        return torch.from_numpy(self.images[idx])


def _to_nchw(x: np.ndarray, layout: str | None, path) -> np.ndarray:
    """[N, C, H, W] from an array stored as `layout`, or, without one, as the only layout its shape fits."""
    fits = []
    if x.ndim == 3:
        fits.append("NHW")
    elif x.ndim == 4:
        fits += ["NHWC"] * (x.shape[3] in (1, 3)) + ["NCHW"] * (x.shape[1] in (1, 3))
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"{path}: 'layout' is {layout!r}; use one of {', '.join(LAYOUTS)}")
        if layout not in fits:
            raise ValueError(f"{path}: 'images' has shape {x.shape}, which is not {layout} with 1 or 3 channels")
        fits = [layout]
    if not fits:
        raise ValueError(f"{path}: 'images' has shape {x.shape}; expected [N, H, W, C] with C 1 or 3 (or [N, H, W])")
    if len(fits) > 1:
        raise ValueError(
            f"{path}: 'images' has shape {x.shape}, which reads as [N, H, W, C] and as [N, C, H, W]; store its "
            f"layout beside it: np.savez(path, images=x, layout='NHWC') (or 'NCHW')"
        )
    return {"NHW": lambda: x[:, None], "NHWC": lambda: x.transpose(0, 3, 1, 2), "NCHW": lambda: x}[fits[0]]()


def open_images(path: str | os.PathLike, max_size: int | None = None, seed: int = 0) -> torch.utils.data.Dataset:
    """An image .npz, or a folder or .zip of images as datafiles.images reads them (
    e.g. generate.py's PNG output). max_size: the first max_size of an .npz; a seeded random subset
    of a folder (EDM's convention)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found")
    if str(path).lower().endswith(".npz"):
        ds = NpzImages(path)
        return torch.utils.data.Subset(ds, range(min(len(ds), max_size))) if max_size is not None else ds
    ds = ImageFolderDataset(path, max_size=max_size, random_seed=seed, cache=False)
    if len(getattr(ds, "data_shape", ())) != 3:
        raise ValueError(f"{path}: not image data (Fréchet distances need images)")
    return ds


def dataset_stats(
    ds: torch.utils.data.Dataset,
    detector: Detector,
    batch: int = 64,
    workers: int = 0,
    progress: bool = True,
    desc: str = "features",
) -> FeatureStats:
    """FeatureStats of a whole data set, its items dealt out over torchrun ranks (i, i + world, …)
    and the sums all-reduced: every rank returns the same merged statistics."""
    shard = torch.utils.data.Subset(ds, range(dist.get_rank(), len(ds), dist.get_world_size()))
    loader = torch.utils.data.DataLoader(shard, batch_size=batch, num_workers=workers, shuffle=False)
    return compute_stats(loader, detector, total=len(shard), progress=progress, desc=desc)


def check_reference(refstats: dict, detector: Detector, ref_path: str | os.PathLike) -> None:
    """Refuse to compare features of `detector` with reference statistics made by another detector
    (or by other weights of the same one): such an FD is a number, but a meaningless one."""
    if detector.feature_dim != len(refstats["mu"]):
        raise ValueError(
            f"{ref_path}: {len(refstats['mu'])}-d statistics but detector {detector.name} gives "
            f"{detector.feature_dim}-d features"
        )
    if refstats["fingerprint"] and detector.fingerprint and refstats["fingerprint"] != detector.fingerprint:
        raise ValueError(
            f"{ref_path}: computed with other weights of detector {detector.name} "
            f"({refstats['fingerprint']} vs {detector.fingerprint}); recompute it with `fid.py ref`"
        )


def reference_stats(
    data: str,
    detector: str,
    cache_dir: str | os.PathLike,
    max_size: int | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Reference statistics of a data set for `detector`, computed once and cached in `cache_dir`. The
    cache key is the data file's whole name, its size and modification time (a data set rebuilt in place
    is a new key), the subset size and the detector."""
    from evaluation.detectors import get_detector

    cache_dir = Path(cache_dir)
    st = os.stat(data)
    dest = (
        cache_dir / f"ref-{Path(data).name}-{st.st_size}-{st.st_mtime_ns}-{max_size or 'all'}-{Path(detector).stem}.npz"
    )
    if dest.is_file():
        return dest
    log(f"reference statistics: {data} with {detector} → {dest}")
    det = get_detector(detector, "cpu")
    stats = dataset_stats(open_images(data, max_size=max_size), det, batch=256, workers=0, progress=False)
    mu, sigma = stats.mean_cov()
    save_stats(dest, mu, sigma, det.name, stats.count, det.fingerprint)
    return dest
