"""Protein as a modality: categorical sequences over the twenty amino acids (X the unknown one), read from FASTA
(or a table, or plain lines), trained with the 1-D U-Net, written as FASTA, scored by the k-mer spectrum
(k = 1..3) against `<stem>-test.fasta`; and a small SYNTHETIC protein-like set to train and benchmark on.

The synthetic set, like the synthetic DNA set: per class, short motifs from real protein families (a P-loop,
a kinase catalytic loop, a C2H2 zinc finger's knuckle and its histidines, an EF-hand loop) planted into an
independent background with UniProt's amino-acid composition, each motif letter redrawn from the background
with probability `mutation`; labels in the FASTA headers (`>prot12|kinase`). It measures whether a model learns
which motifs go with which class and the composition around them — not biology.

    python -m modalities.protein --dest data/protein-synth.fasta --per-class 1000 --length 64
    python train.py --data data/protein-synth.fasta --cond --outdir runs --scheduler infonoise
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np

from datafiles.sequences import Alphabet, write_fasta
from modalities.sequences import SequenceModality
from torch_utils.checks import Int

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
PROTEIN = SequenceModality(
    "protein",
    Alphabet("protein", AMINO_ACIDS, unknown="X"),
    kmer_ks=(1, 2, 3),  # 20**3 = 8,000 bins already; longer k-mers would be empty at harness sample sizes
    held_out=("-test.fasta", "-test.fa", "-test.faa"),
)

# UniProtKB/Swiss-Prot amino-acid composition (%), in AMINO_ACIDS' order.
COMPOSITION = (8.25, 1.37, 5.45, 6.75, 3.86, 7.07, 2.27, 5.96, 5.84, 9.66, 2.42, 4.06, 4.70, 3.93, 5.53, 6.56, 5.34)
COMPOSITION += (6.87, 1.08, 2.92)
CLASS_MOTIFS = {
    "kinase": ("GPSGSGKST", "HRDLKPEN"),  # Walker A P-loop GxxxxGK[ST]; the kinase catalytic loop
    "zincfinger": ("CPECGKSF", "HQRTH"),  # C2H2: the CxxC knuckle, the HxxxH pair
    "efhand": ("DKDGDGTI", "EEFLKM"),  # the Ca2+-binding loop and the exiting helix's start
}


def synthetic_set(per_class: int, length: int, seed: int = 0, mutation: float = 0.1) -> tuple[list[str], list[str]]:
    """`per_class` sequences of `length` residues per class of CLASS_MOTIFS: (sequences, class names). Every
    motif of the class is planted once, at random non-overlapping places."""
    need = max(sum(len(m) for m in motifs) for motifs in CLASS_MOTIFS.values())
    if length < need:
        raise ValueError(f"--length {length}: the motifs of a class need {need} residues; give at least that.")
    rng = np.random.default_rng(seed)
    p = np.array(COMPOSITION) / sum(COMPOSITION)
    letters = np.array(list(AMINO_ACIDS))
    seqs, labels = [], []
    for name, motifs in CLASS_MOTIFS.items():
        for _ in range(per_class):
            seq = letters[rng.choice(len(p), size=length, p=p)]
            free = length - sum(len(m) for m in motifs)  # spare residues, dealt out as gaps before each motif
            gaps = np.diff(np.sort(rng.integers(0, free + 1, size=len(motifs))), prepend=0)
            start = 0
            for gap, motif in zip(gaps, rng.permutation(len(motifs))):
                planted = np.array(list(motifs[motif]))
                redraw = rng.random(len(planted)) < mutation
                planted[redraw] = letters[rng.choice(len(p), size=int(redraw.sum()), p=p)]
                start += int(gap)
                seq[start : start + len(planted)] = planted
                start += len(planted)
            seqs.append("".join(seq))
            labels.append(name)
    return seqs, labels


def make_synthetic(
    dest: str | os.PathLike, per_class: int, length: int, seed: int = 0, test_per_class: int | None = None
) -> tuple[Path, Path]:
    """The training split at `dest` and the test split at `<stem>-test.fasta` beside it (its own seed stream)."""
    dest = Path(dest)
    test = dest.parent / f"{dest.name.split('.')[0]}-test.fasta"
    for path, n, s in ((dest, per_class, seed), (test, test_per_class or max(per_class // 4, 1), seed + 1)):
        seqs, labels = synthetic_set(n, length, s)
        write_fasta(path, seqs, PROTEIN.alphabet, names=[f"prot{i}" for i in range(len(seqs))], labels=labels)
    return dest, test


@click.command()
@click.option("--dest", required=True, type=click.Path(dir_okay=False), help="Training FASTA (test: <stem>-test.fasta)")
@click.option("--per-class", type=Int(1, 10**7), default=1000, show_default=True, help="Training sequences per class")
@click.option("--length", type=Int(1, 10**5), default=64, show_default=True, help="Residues per sequence")
@click.option("--seed", type=Int(0, 2**32 - 1), default=0, show_default=True)
def main(dest: str, per_class: int, length: int, seed: int) -> None:
    """Write the synthetic protein-like set (motifs planted in a UniProt-composition background)."""
    try:
        train, test = make_synthetic(dest, per_class, length, seed)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Wrote {train} and {test}: {len(CLASS_MOTIFS)} classes ({', '.join(CLASS_MOTIFS)}), {length} residues.")


if __name__ == "__main__":
    main()
