"""A SYNTHETIC, offline DNA benchmark: labelled "cell-type" sequences built from real JASPAR motifs.

No package ships real regulatory sequences, so this set is synthetic: a random genomic-like background
with real transcription-factor binding sites planted in it. It is for measuring *training speed and
sample quality of the diffusion model* (does it learn which motifs go with which label, and the
background statistics?), not for biology.

Recipe (all of it seeded; every (split, cell type) pair draws from its own stream, so the training set
does not change when the test set size does):

1. Background: an order-1 Markov chain with human-genome-like composition — stationary GC = 41 % and
   CpG observed/expected = 0.25 (markov_background solves for both exactly). Order 1 is the smallest
   model with CpG depletion, which gives the k-mer metric real structure to match. The first base is
   drawn from the stationary distribution. (Measured on the default set: GC 0.411, CpG o/e 0.26 —
   planted motifs shift both slightly.)
2. Motifs: per cell type two JASPAR CORE vertebrate count matrices (release `JASPAR_RELEASE`):
   K562 GATA1 + GATA1::TAL1, HepG2 HNF4A + FOXA2, hESC Pou5f1::Sox2 + SOX2, GM12878 EBF1 + Spi1.
   Each sequence gets 1-3 instances (uniform), each of a motif chosen uniformly from its type's list,
   every instance sampled column by column from the count matrix + pseudocount (dna_motifs.Motif.probs),
   reverse-complemented with probability ½, and written at a uniform random position that does not
   overlap an earlier instance. As with real binding sites some instances are weak: the share that
   the metric's scanner calls a hit (p ≤ 1e-4) is 0.40 for GATA1 and SOX2 up to 0.90 for GATA1::TAL1
   — the exact expectation, which the tests check.
3. Output: the DNA-Diffusion table format read by dna.sequences — columns `sequence`, `cell_type`,
   `split` and `motifs` (the plants: `MA0035.5@37+;MA0140.3@120-`, 0-based start and strand) — as
   two files, the training split at `out` and the test split at `<out stem>-test.tsv`, plus a JSON
   sidecar `<out stem>.json` with the recipe and summary statistics.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dna.motifs import JASPAR_RELEASE, Motif, load_motifs
from dna.sequences import BASES, reverse_complement
from torch_utils.files import atomic_write

CELL_TYPE_MOTIFS = {  # JASPAR2024 CORE vertebrates, checked by ID and name
    "K562": ("MA0035.5", "MA0140.3"),  # GATA1; GATA1::TAL1 (no TAL1-only CORE matrix exists)
    "HepG2": ("MA0114.5", "MA0047.4"),  # HNF4A (ChIP-seq); FOXA2
    "hESC": ("MA0142.1", "MA0143.5"),  # Pou5f1::Sox2 (the OCT4-SOX2 composite); SOX2
    "GM12878": ("MA0154.5", "MA0080.7"),  # EBF1; Spi1 (PU.1)
}
GC = 0.41
CPG_OE = 0.25
SPLIT_IDS = {"train": 0, "test": 1}

# ----------------------------------------------------------------------------------------------------
# Background.


def markov_background(gc: float = GC, cpg_oe: float = CPG_OE) -> tuple[np.ndarray, np.ndarray]:
    """Order-1 transition matrix T[a, b] = P(b | a) and its stationary distribution π, such that
    π has GC fraction `gc` (A = T, C = G) and CpG observed/expected π_C·T[C, G] / (π_C·π_G) = `cpg_oe`.
    T[a, b] ∝ f_b, except T[C, G] ∝ r·f_G; f and r are found by a fixed-point iteration."""
    target = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    f, r = target.copy(), cpg_oe
    for _ in range(500):
        T = np.tile(f, (4, 1))
        T[1, 2] *= r
        T /= T.sum(axis=1, keepdims=True)
        w, v = np.linalg.eig(T.T)
        pi = np.real(v[:, np.argmin(np.abs(w - 1))])
        pi /= pi.sum()
        f *= target / pi
        f /= f.sum()
        r *= cpg_oe / (T[1, 2] / pi[2])
    return T, pi


def sample_background(rng: np.random.Generator, n: int, length: int, T: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """n Markov sequences as base indices [n, length] (uint8)."""
    out = np.empty([n, length], dtype=np.uint8)
    cum = np.cumsum(T, axis=1)
    out[:, 0] = np.searchsorted(np.cumsum(pi), rng.random(n), side="right").clip(max=3)
    u = rng.random([n, length])
    for j in range(1, length):
        out[:, j] = (u[:, j, None] >= cum[out[:, j - 1]]).sum(axis=1).clip(max=3)
    return out


# ----------------------------------------------------------------------------------------------------
# Planting.


def plant_motifs(
    rng: np.random.Generator,
    seqs: np.ndarray,
    motifs: list[Motif],
    background: np.ndarray,
    per_seq: tuple[int, int] = (1, 3),
) -> list[list[tuple[str, int, str]]]:
    """Write sampled motif instances into `seqs` [n, L] in place; return the plants per sequence as
    (matrix_id, start, strand). Instances are drawn from the count matrix + pseudocount."""
    probs = [np.cumsum(m.probs(background), axis=0) for m in motifs]
    L = seqs.shape[1]
    plants = []
    for i in range(len(seqs)):
        taken = np.zeros(L, dtype=bool)
        mine = []
        for _ in range(rng.integers(per_seq[0], per_seq[1] + 1)):
            k = int(rng.integers(len(motifs)))
            W = motifs[k].width
            site = (rng.random(W)[None, :] >= probs[k]).sum(axis=0).clip(max=3).astype(np.uint8)
            strand = "-" if rng.random() < 0.5 else "+"
            if strand == "-":
                site = 3 - site[::-1]
            free = np.flatnonzero(np.convolve(taken, np.ones(W), "valid") == 0)
            if len(free) == 0:
                continue
            pos = int(free[rng.integers(len(free))])
            seqs[i, pos : pos + W] = site
            taken[pos : pos + W] = True
            mine.append((motifs[k].matrix_id, pos, strand))
        plants.append(sorted(mine, key=lambda t: t[1]))
    return plants


def format_plants(plants: list[tuple[str, int, str]]) -> str:
    return ";".join(f"{mid}@{pos}{strand}" for mid, pos, strand in plants)


def parse_plants(text: str) -> list[tuple[str, int, str]]:
    """Inverse of format_plants: 'MA0035.5@37+;…' → [('MA0035.5', 37, '+'), …]."""
    out = []
    for item in filter(None, text.split(";")):
        mid, rest = item.rsplit("@", 1)
        out.append((mid, int(rest[:-1]), rest[-1]))
    return out


# ----------------------------------------------------------------------------------------------------
# The benchmark.


def generate(
    per_class: int,
    length: int = 200,
    seed: int = 0,
    split: str = "train",
    cell_types: dict[str, tuple[str, ...]] | None = None,
    release: str = JASPAR_RELEASE,
    gc: float = GC,
    cpg_oe: float = CPG_OE,
) -> list[dict]:
    """Rows {sequence, cell_type, split, motifs} for one split, `per_class` per cell type, in cell-type
    order. Deterministic in (seed, split, cell type)."""
    cell_types = CELL_TYPE_MOTIFS if cell_types is None else cell_types
    T, pi = markov_background(gc, cpg_oe)
    rows = []
    for c, (name, ids) in enumerate(cell_types.items()):
        motifs = load_motifs(list(ids), release)
        if max(m.width for m in motifs) > length:
            raise ValueError(
                f"length {length} is shorter than a {name} motif; use length ≥ {max(m.width for m in motifs)}."
            )
        rng = np.random.default_rng([seed, SPLIT_IDS.get(split, len(SPLIT_IDS)), c])
        seqs = sample_background(rng, per_class, length, T, pi)
        plants = plant_motifs(rng, seqs, motifs, pi)
        letters = np.frombuffer(BASES.encode(), dtype=np.uint8)[seqs]
        rows += [
            dict(sequence=s.tobytes().decode(), cell_type=name, split=split, motifs=format_plants(p))
            for s, p in zip(letters, plants)
        ]
    return rows


def write_tsv(path: str | os.PathLike, rows: list[dict]) -> None:
    cols = ["sequence", "cell_type", "split", "motifs"]
    with atomic_write(path, encoding="utf-8", newline="") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join(str(r[c]) for c in cols) + "\n")


def test_path(out: str | os.PathLike) -> str:
    """Where make_benchmark writes the test split for a given training-split path."""
    p = Path(out)
    stem = p.name[: -len(".tsv")] if p.name.endswith(".tsv") else p.stem
    return str(p.with_name(f"{stem}-test.tsv"))


def make_benchmark(
    out: str | os.PathLike,
    per_class: int,
    test_per_class: int | None = None,
    length: int = 200,
    seed: int = 0,
    release: str = JASPAR_RELEASE,
) -> dict:
    """Write the training split to `out`, the test split next to it, and a JSON sidecar; return the
    sidecar's content (recipe and statistics)."""
    test_per_class = max(per_class // 4, 1) if test_per_class is None else test_per_class
    train = generate(per_class, length, seed, "train", release=release)
    test = generate(test_per_class, length, seed, "test", release=release)
    write_tsv(out, train)
    write_tsv(test_path(out), test)
    _, pi = markov_background()
    allseq = "".join(r["sequence"] for r in train)
    n, c, g = len(allseq), allseq.count("C"), allseq.count("G")
    gc_frac, cpg = (c + g) / n, allseq.count("CG") * n / (c * g)  # CpG observed / expected
    motifs = {
        name: [dict(id=m.matrix_id, name=m.name, width=m.width) for m in load_motifs(list(ids), release)]
        for name, ids in CELL_TYPE_MOTIFS.items()
    }
    info = dict(
        synthetic=True,
        generator="training/dna_synthetic.py",
        jaspar_release=release,
        seed=seed,
        length=length,
        per_class=per_class,
        test_per_class=test_per_class,
        train=str(out),
        test=test_path(out),
        cell_types=motifs,
        background=dict(model="order-1 Markov", gc=GC, cpg_oe=CPG_OE, stationary=pi.round(4).tolist()),
        stats=dict(
            train_gc=round(gc_frac, 4),
            train_cpg_oe=round(cpg, 3),
            plants_per_seq=round(np.mean([len(parse_plants(r["motifs"])) for r in train]), 3),
        ),
    )
    sidecar = Path(out).with_suffix(".json")
    sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return info


def planted_windows(seq: str, plants: list[tuple[str, int, str]], motifs: dict[str, Motif]) -> list[str]:
    """The planted instances read back in motif orientation (for inspection and tests)."""
    out = []
    for mid, pos, strand in plants:
        w = seq[pos : pos + motifs[mid].width]
        out.append(reverse_complement(w) if strand == "-" else w)
    return out
