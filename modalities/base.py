"""The modality contract: everything that differs between kinds of data (images, DNA, protein, …) and nothing
else, so that the training loop, sampling, evaluation and the harness never ask which kind they hold.

A modality says how well a data set is its kind (`fit`), reads it into model space (`open`), names the network
that suits it when the options name none (`default_arch`), writes a snapshot's samples (`write_samples`: a PNG
grid, FASTA), decodes generated samples into data (`decode`) and scores a snapshot for the compute-to-target
harness (`harness_metric`). A new kind of data is one file implementing this class plus one line in
`modalities.REGISTRY`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sampling.grids import edm_grid
from sampling.solvers import sample_heun


@dataclass
class Evaluation:
    """How the harness samples a snapshot to score it (the same seeds, grid and solver for every method), and
    the harness's options that belong to one kind of data (--detector, --binarize, --dna-metric, …) by name."""

    seeds: list[int]
    steps: int
    grid: str
    solver: str
    batch: int
    device: str | None
    outdir: Path
    options: dict = field(default_factory=dict)


class HarnessMetric:
    """A snapshot's score for the harness: `name` (the CSV's metric_name) and `score(snapshot) -> float`, lower
    is better."""

    name: str

    def score(self, snapshot: str) -> float:
        raise NotImplementedError


class Modality:
    """One kind of data. Subclasses set `name` and `default_arch` and implement the methods below."""

    name: str = ""
    default_arch: str = ""

    def fit(self, path: str | os.PathLike) -> float | None:
        """None when the data set at `path` is not of this kind; else how well it fits, in [0, 1]. The registry
        takes the best fit, the first registered on a tie (a file that fits none well is read by the first that
        claims it, whose reader then says what is wrong, in one line)."""
        raise NotImplementedError

    def open(self, path: str | os.PathLike, **options) -> torch.utils.data.Dataset:
        """The data set: items in model space or uint8 pixels (`datafiles.base.model_space`), labels one-hot.
        `options` are the loaders' (use_labels, max_size, random_seed, xflip, length, …); each kind takes the
        ones that mean something for it and leaves the rest."""
        raise NotImplementedError

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        """Whether a network of data shape `shape` generates this kind (a snapshot without its data set)."""
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> object:
        """Generated samples (model space, [N, ...]) as data: uint8 images, strings, …"""
        raise NotImplementedError

    def write_samples(
        self,
        x: torch.Tensor,
        stem: Path,
        labels: list[int] | None,
        label_names: list[str] | None,
        names: list[str] | None = None,
    ) -> Path:
        """Write samples (model space) to `stem` plus this kind's suffix (one file: a PNG contact sheet, FASTA);
        `names` name each sample where the format has room for it (FASTA headers). Returns the file."""
        raise NotImplementedError

    def harness_metric(self, dataset, options: dict, evaluation: Evaluation) -> HarnessMetric:
        """The harness's automatic metric for a run on `dataset` (its resolved training `options`). Bad
        settings are one-line ValueErrors naming the option."""
        raise NotImplementedError

    @torch.no_grad()
    def write_snapshot_samples(
        self,
        net: torch.nn.Module,
        stem: Path,
        count: int,
        seed: int,
        device: torch.device,
        label_names: list[str] | None = None,
    ) -> Path | None:
        """`count` samples of `net` (plain Heun on EDM's 18-level grid, latents from `seed`, classes in turn for
        a conditional network) written by `write_samples`; nothing for count 0. The training loop is handed this
        method to call at each snapshot (the loop never imports a modality)."""
        if count <= 0:
            return None
        gen = torch.Generator().manual_seed(seed)
        latents = torch.randn([count, *net.data_shape], generator=gen).to(device)
        labels = None
        if net.label_dim:
            labels = torch.eye(net.label_dim, device=device)[torch.arange(count) % net.label_dim]
        sigmas = edm_grid(18, sigma_min=net.sigma_min, sigma_max=net.sigma_max).to(device)
        x = sample_heun(lambda x, s: net(x, s.expand(x.shape[0]), labels), latents * sigmas[0], sigmas)
        classes = None if labels is None else labels.argmax(1).tolist()
        return self.write_samples(x.cpu(), stem, classes, label_names)
