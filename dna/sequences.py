"""DNA as one alphabet of categorical sequences: one-hot A/C/G/T as ±1, shape [4, L] (channel order A, C, G, T),
N the unknown base. The files, the encoding and the data set are `datafiles.sequences`' (any alphabet); this
module binds them to DNA's four bases for the DNA code (motifs, metrics, the synthetic set) and adds what only
DNA has: the reverse complement.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from datafiles import sequences
from datafiles.sequences import SequenceRecords

BASES = "ACGT"
DNA = sequences.Alphabet("DNA", BASES, unknown="N")


def to_index(seqs: list[str]) -> np.ndarray:
    """Strings of equal length → uint8 base indices [N, L] (A=0, C=1, G=2, T=3)."""
    return DNA.to_index(seqs)


def index_to_onehot(idx: np.ndarray | torch.Tensor) -> np.ndarray:
    """Base indices [..., L] → float32 model-space one-hot [..., 4, L] (±1)."""
    return DNA.onehot(idx)


def encode(seqs: list[str]) -> np.ndarray:
    """Strings → float32 [N, 4, L] in model space (+1 for the base, −1 elsewhere)."""
    return DNA.encode(seqs)


def decode(x: np.ndarray | torch.Tensor) -> list[str]:
    """Model-space data [N, 4, L] (or [4, L]) → strings, by argmax over the 4 channels."""
    return DNA.decode(x)


def reverse_complement(seq: str) -> str:
    return seq.translate(str.maketrans("ACGTacgt", "TGCAtgca"))[::-1]


def write_fasta(path: str | os.PathLike, x_or_seqs, names=None, labels=None, label_names=None) -> None:
    """DNA sequences (strings, or model-space data [N, 4, L]) as FASTA (`datafiles.sequences.write_fasta`)."""
    sequences.write_fasta(path, x_or_seqs, DNA, names, labels, label_names)


def read_sequences(path: str | os.PathLike, want_labels: bool = False) -> SequenceRecords:
    """A FASTA, table or plain DNA file's records (`datafiles.sequences.read_sequences`)."""
    return sequences.read_sequences(path, DNA, want_labels)


def validate(rec: SequenceRecords, length: int | None = None, skip_unknown: bool = False) -> np.ndarray:
    """Bases and lengths checked; the mask of kept records (records with N dropped only if skip_unknown)."""
    return sequences.validate(rec, DNA, length, skip_unknown)


class SequenceDataset(sequences.SequenceDataset):
    """Fixed-length DNA sequences (`datafiles.sequences.SequenceDataset` over DNA's alphabet), 200 bp unless
    `length` says otherwise (None: the file's own length); skip_unknown=True drops records holding N."""

    def __init__(self, path: str | os.PathLike, length: int | None = 200, **kwargs):
        super().__init__(path, DNA, length, **kwargs)

    @property
    def base_indices(self) -> np.ndarray:
        """Base indices [N, L] (A=0, C=1, G=2, T=3) in dataset order."""
        return self.letter_indices
