"""Images as a modality: EDM-format folders and zips of PNGs (`datafiles.images`), the DDPM++ U-Net, PNG
contact sheets at snapshots, and the Fréchet distance of a domain detector's features for the harness."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from datafiles.images import ImageFolderDataset
from datafiles.sequences import SEQUENCE_EXTS
from evaluation import evaluate
from evaluation.detectors import auto_detector, get_detector
from evaluation.frechet import reference_stats
from modalities.base import Evaluation, HarnessMetric, Modality
from sampling.generation import to_uint8
from sampling.image_grid import save_image_grid


class Images(Modality):
    name = "images"
    default_arch = "ddpmpp"

    def fit(self, path: str | os.PathLike) -> float | None:
        """Anything that is not a sequence file: a folder or a .zip (the reader names what else is wrong)."""
        return None if str(path).lower().endswith(SEQUENCE_EXTS) else 1.0

    def open(self, path: str | os.PathLike, **options) -> ImageFolderDataset:
        options.pop("length", None)
        return ImageFolderDataset(path, **options)

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        return len(shape) == 3

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images [N, C, H, W] (EDM's rounding)."""
        return to_uint8(x)

    def write_samples(
        self,
        x: torch.Tensor,
        stem: Path,
        labels: list[int] | None,
        label_names: list[str] | None,
        names: list[str] | None = None,
    ) -> Path:
        path = Path(f"{stem}.png")
        save_image_grid(self.decode(x), path)
        return path

    def harness_metric(self, dataset, options: dict, evaluation: Evaluation) -> HarnessMetric:
        return FrechetMetric(dataset, options, evaluation)


class FrechetMetric(HarnessMetric):
    """FD of the evaluation samples against the training data's reference statistics (cached in the harness's
    folder), with the detector `--detector` names (auto: by the data's shape); two-valued data are scored on
    their binarized samples unless `--binarize` says otherwise."""

    def __init__(self, dataset, options: dict, evaluation: Evaluation):
        detector, binarize = evaluation.options.get("detector", "auto"), evaluation.options.get("binarize", "auto")
        shape = options["network_kwargs"]["data_shape"]
        self.detector_name = auto_detector(shape) if detector == "auto" else detector
        self.ref = reference_stats(options["data"], self.detector_name, evaluation.outdir, options["max_size"])
        self.detector = get_detector(self.detector_name, "cpu")
        self.binarize = bool(dataset.is_binary) if binarize == "auto" else binarize == "on"
        self.name = f"fd_{Path(self.detector_name).stem}" + ("_binarized" if self.binarize else "")
        self.evaluation = evaluation

    def score(self, snapshot: str) -> float:
        e = self.evaluation
        return evaluate.evaluate_snapshot(  # through the module: the harness's tests count the calls
            snapshot,
            self.ref,
            e.seeds,
            e.steps,
            e.grid,
            e.solver,
            e.batch,
            detector=self.detector,
            binarize=self.binarize,
            device=e.device,
        )


IMAGES = Images()
