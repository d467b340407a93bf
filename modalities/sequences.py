"""Categorical sequences over any alphabet as a modality: one-hot files read by `datafiles.sequences`, the 1-D
U-Net, FASTA at snapshots, and for the harness the k-mer spectrum's Jensen–Shannon divergence against the
held-out split. One instance per alphabet: DNA (modalities/dna.py), protein (modalities/protein.py), …"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from datafiles.sequences import SEQUENCE_EXTS, Alphabet, SequenceDataset, letter_share, write_fasta
from evaluation import spectra
from modalities.base import Evaluation, HarnessMetric, Modality
from sampling.generation import build_sigmas, generate_batches, load_network

_READER_OPTIONS = ("use_labels", "max_size", "random_seed", "length", "split", "label_names", "skip_unknown")


class SequenceModality(Modality):
    """Sequences over `alphabet`. `kmer_ks`: the k of the harness's k-mer spectra (4**6 bins suit DNA, 20**3
    protein). `held_out`: suffixes after the data file's stem that name its held-out split
    (`<stem>-test.fasta`), scored against instead of the training data when present."""

    default_arch = "dnaunet"  # the 1-D U-Net (models/sequence_unet.py) takes any alphabet as its channels

    def __init__(self, name: str, alphabet: Alphabet, kmer_ks: Sequence[int], held_out: Sequence[str]):
        self.name, self.alphabet, self.kmer_ks, self.held_out = name, alphabet, tuple(kmer_ks), tuple(held_out)

    def fit(self, path: str | os.PathLike) -> float | None:
        """The share of the file's letters that are this alphabet's (None for a file that is no sequence file)."""
        if not str(path).lower().endswith(SEQUENCE_EXTS):
            return None
        return letter_share(path, self.alphabet)

    def open(self, path: str | os.PathLike, **options) -> SequenceDataset:
        options.setdefault("length", None)  # the file's own sequence length unless one is required
        return SequenceDataset(path, self.alphabet, **{k: v for k, v in options.items() if k in _READER_OPTIONS})

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        return len(shape) == 2 and shape[0] == self.alphabet.size

    def decode(self, x: torch.Tensor) -> list[str]:
        return self.alphabet.decode(x)

    def write_samples(
        self,
        x: torch.Tensor,
        stem: Path,
        labels: list[int] | None,
        label_names: list[str] | None,
        names: list[str] | None = None,
    ) -> Path:
        path = Path(f"{stem}.fasta")
        write_fasta(path, x, self.alphabet, names, labels, label_names)
        return path

    def held_out_path(self, data: str | os.PathLike) -> Path | None:
        """`<stem><suffix>` beside the data file for the first of `held_out` that exists."""
        data = Path(data)
        stem = data.name.split(".")[0]
        return next((data.parent / f"{stem}{s}" for s in self.held_out if (data.parent / f"{stem}{s}").is_file()), None)

    def harness_metric(self, dataset, options: dict, evaluation: Evaluation) -> HarnessMetric:
        return KmerMetric(self, dataset, options, evaluation)


class KmerMetric(HarnessMetric):
    """Mean Jensen–Shannon divergence of the k-mer spectra (k in the modality's `kmer_ks`) of the evaluation
    samples, decoded by argmax over the letters, against the held-out split (else the training data)."""

    def __init__(self, modality: SequenceModality, dataset, options: dict, evaluation: Evaluation):
        held_out = modality.held_out_path(options["data"])
        ref = modality.open(str(held_out), length=dataset.seq_length) if held_out else dataset
        self.modality, self.ref_idx, self.evaluation = modality, ref.letter_indices, evaluation
        self.against = "test" if held_out else "train"
        self.name = f"{modality.name}_kmer_js_vs_{self.against}"

    def letter_indices(self, snapshot: str) -> np.ndarray:
        """The evaluation seeds' samples of `snapshot` as letter indices [N, L]."""
        e, device = self.evaluation, self.evaluation.device or "cpu"
        net, profile = load_network(snapshot, device)
        sigmas = build_sigmas(net, e.grid, e.steps, profile=profile, device=device)
        batches = generate_batches(net, e.seeds, e.batch, sigmas, e.solver, device=device)
        return np.concatenate([x.argmax(dim=1).numpy() for _, _, x, _ in batches])

    def score(self, snapshot: str) -> float:
        size, ks = self.modality.alphabet.size, self.modality.kmer_ks
        return float(spectra.kmer_distance(self.letter_indices(snapshot), self.ref_idx, size, ks)["mean_js"])
