"""Offline quality metrics for generated DNA, after DNA-Diffusion's evaluation (no downloads).

(a) Motif content. Every sequence is scanned for JASPAR motifs (dna_motifs.MotifScanner: log-odds vs
    an order-0 background with the training set's GC content, both strands, per-position p ≤ 1e-4).
    Per cell type, the number of sequences containing each motif, Laplace-smoothed (+1) and normalised
    over motifs, is a distribution; we report KL(reference ‖ generated) (nats) and total variation.
(b) k-mer spectrum, k = 3..6: forward-strand k-mer frequencies of the pooled sets; Jensen–Shannon
    divergence (bits, in [0, 1]) and total variation.
(c) Fréchet distance between Gaussians fitted to penultimate-layer features of a small 1-D CNN
    cell-type classifier trained on the training split (`train_classifier`) — an offline stand-in for
    DNA-Diffusion's Sei-FID, which needs a model that cannot be loaded offline.
(d) Nearest-training-sequence identity: per generated sequence, the largest fraction of positions
    identical to any training sequence (same strand, no shifts) — memorisation shows up as values → 1.

Small-sample bias: two independent samples of one distribution do not score 0 on (a)-(c). `baseline`
reports each metric for a training subset of the generated set's size against the reference — what a
model that reproduces the training distribution would score at this sample size.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dna.motifs import JASPAR_RELEASE, MotifScanner, gc_background, load_motifs
from dna.sequences import SequenceDataset, index_to_onehot, read_sequences, to_index, validate
from evaluation import spectra
from evaluation.frechet import frechet_distance  # the project's one Fréchet distance (float64, scipy sqrtm)
from evaluation.spectra import js_divergence, kl_divergence, total_variation  # noqa: F401 (dna.metrics' names)
from torch_utils.files import atomic_write

# ----------------------------------------------------------------------------------------------------
# (a) motif content, (b) k-mer spectrum, (d) nearest training sequence.


def motif_distribution(counts: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Hit counts [N, M] → smoothed distribution over motifs of 'sequences containing the motif'."""
    n = (np.asarray(counts) > 0).sum(axis=0).astype(np.float64) + alpha
    return n / n.sum()


def motif_distance(gen_counts: np.ndarray, ref_counts: np.ndarray, alpha: float = 1.0) -> dict:
    p, q = motif_distribution(ref_counts, alpha), motif_distribution(gen_counts, alpha)
    return dict(kl=kl_divergence(p, q), tv=total_variation(p, q))


def kmer_frequencies(idx: np.ndarray, k: int) -> np.ndarray:
    """Forward-strand k-mer frequencies [4**k] of base indices [N, L]."""
    return spectra.kmer_frequencies(idx, k, 4)


KMER_KS = (3, 4, 5, 6)


def kmer_distance(gen_idx: np.ndarray, ref_idx: np.ndarray, ks=KMER_KS) -> dict:
    return spectra.kmer_distance(gen_idx, ref_idx, 4, ks)


def nearest_identity(gen_idx: np.ndarray, train_idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """For each generated sequence, max over training sequences of the fraction of identical positions.
    One-hot dot products count matches; the training set is processed in chunks."""
    g = torch.from_numpy((index_to_onehot(gen_idx) > 0).astype(np.float32)).flatten(1)
    best = torch.zeros(len(g))
    for i in range(0, len(train_idx), chunk):
        t = torch.from_numpy((index_to_onehot(train_idx[i : i + chunk]) > 0).astype(np.float32)).flatten(1)
        best = torch.maximum(best, (g @ t.T).amax(dim=1))
    return best.double().numpy() / gen_idx.shape[1]


def identity_summary(ident: np.ndarray) -> dict:
    return dict(
        mean=float(ident.mean()),
        median=float(np.median(ident)),
        max=float(ident.max()),
        frac_ge_0_9=float((ident >= 0.9).mean()),
        frac_eq_1=float((ident >= 1).mean()),
    )


# ----------------------------------------------------------------------------------------------------
# (c) the classifier and its feature space.


class SequenceClassifier(nn.Module):
    """Small 1-D CNN cell-type classifier: conv(k=15, motif-sized) → BN → ReLU → max-pool 2 → conv(k=5)
    → BN → ReLU → [mean | max] over positions → `features` (penultimate layer, used for the Fréchet
    distance) → linear head. Input: model-space (±1) or 0/1 one-hot [N, 4, L]."""

    def __init__(
        self,
        seq_length: int,
        num_classes: int,
        channels: tuple[int, ...] = (64, 128),
        kernels: tuple[int, ...] = (15, 5),
        feature_dim: int = 64,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.config = dict(
            seq_length=seq_length,
            num_classes=num_classes,
            channels=list(channels),
            kernels=list(kernels),
            feature_dim=feature_dim,
            dropout=dropout,
        )
        layers, c = [], 4
        for i, (ch, k) in enumerate(zip(channels, kernels)):
            layers += [nn.Conv1d(c, ch, k, padding=k // 2), nn.BatchNorm1d(ch), nn.ReLU()]
            layers += [nn.MaxPool1d(2)] if i < len(channels) - 1 else []
            c = ch
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(2 * c, feature_dim)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv((x > 0).float())
        return F.relu(self.fc(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


def _dataset_tensors(ds: SequenceDataset) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(index_to_onehot(ds.base_indices))
    return x, torch.from_numpy(ds.class_indices)


@torch.no_grad()
def accuracy(model: SequenceClassifier, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + batch]).argmax(dim=1) for i in range(0, len(x), batch)])
    return float((pred == y).float().mean())


def train_classifier(
    train: SequenceDataset,
    test: SequenceDataset | None = None,
    seed: int = 0,
    epochs: int = 10,
    batch: int = 128,
    lr: float = 2e-3,
    log=print,
) -> tuple[SequenceClassifier, dict]:
    """Adam on cross-entropy, random reverse-complement augmentation, cosine learning-rate decay.
    Seeded (initialisation and batch order). Returns the model and {train/test accuracy, ...}."""
    if not train.has_labels:
        raise ValueError(f"{train.path}: the classifier needs cell-type labels (open it with use_labels=True).")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = _dataset_tensors(train)
    model = SequenceClassifier(train.seq_length, train.label_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    for epoch in range(epochs):
        model.train()
        perm, total = torch.randperm(len(x), generator=gen), 0.0
        for i in range(0, len(x), batch):
            xb, yb = x[perm[i : i + batch]], y[perm[i : i + batch]]
            flip = torch.rand(len(xb), generator=gen) < 0.5  # reverse complement = flip channels + positions
            xb = torch.where(flip[:, None, None], xb.flip(1, 2), xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(xb)
        log(f"epoch {epoch + 1}/{epochs}  loss {total / len(x):.4f}")
    info = dict(
        seed=seed, epochs=epochs, train=train.path, label_names=train.label_names, train_accuracy=accuracy(model, x, y)
    )
    if test is not None:
        info.update(test=test.path, test_accuracy=accuracy(model, *_dataset_tensors(test)))
    return model.eval(), info


def save_classifier(path: str | os.PathLike, model: SequenceClassifier, info: dict) -> None:
    """Plain tensors and JSON-like values only: loadable with torch.load(weights_only=True)."""
    with atomic_write(path, "wb") as f:
        torch.save(dict(state_dict=model.state_dict(), config=model.config, info=info), f)


def load_classifier(path: str | os.PathLike) -> tuple[SequenceClassifier, dict]:
    """A classifier written by `save_classifier`, opened without running code from the file (ValueError
    naming the file otherwise)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        model = SequenceClassifier(**data["config"])
        model.load_state_dict(data["state_dict"])
        info = data["info"]
    except Exception as e:  # not a file of ours: a snapshot, a tensor dict, a pickle with code in it
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(
            f"{path}: not a sequence classifier written by `dna_tool.py train-classifier` ({reason[:160]})"
        ) from None
    return model.eval(), info


@torch.no_grad()
def classifier_features(model: SequenceClassifier, idx: np.ndarray, batch: int = 512) -> np.ndarray:
    model.eval()
    return (
        torch.cat(
            [model.features(torch.from_numpy(index_to_onehot(idx[i : i + batch]))) for i in range(0, len(idx), batch)]
        )
        .double()
        .numpy()
    )


def feature_stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return f.mean(axis=0), np.cov(f, rowvar=False)


# ----------------------------------------------------------------------------------------------------
# Everything together.


def load_set(path: str, length: int | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Base indices [N, L] and labels (or None) from any sequence file dna.sequences reads."""
    rec = read_sequences(path)
    validate(rec, length)
    return to_index(rec.seqs), rec.labels


def resolve_labels(labels: list[str] | None, names: list[str], path: str) -> list[str] | None:
    """Generated labels as cell-type names. Integer labels (what the training loop and generate.py
    write) are class indices in the training set's label order — SequenceDataset's default, the
    sorted names — and are mapped through `names`."""
    if labels is None or set(labels) <= set(names):
        return labels
    if all(l.isdigit() and int(l) < len(names) for l in labels):
        return [names[int(l)] for l in labels]
    bad = sorted(set(labels) - set(names))[:3]
    raise ValueError(
        f"{path}: labels {bad} are neither cell types of the training set {names} nor class "
        f"indices 0..{len(names) - 1}; write '>id|celltype' headers."
    )


def compute_metrics(
    generated: str,
    reference: str,
    train: str,
    classifier: str | None = None,
    motif_ids: list[str] | None = None,
    pvalue: float = 1e-4,
    release: str = JASPAR_RELEASE,
    seed: int = 0,
    log=print,
) -> dict:
    """All metrics of the module docstring for a generated set against a held-out reference, with the
    training set for the background GC, the nearest-sequence search and the baseline."""
    ref_idx, ref_labels = load_set(reference)
    L = ref_idx.shape[1]
    if L < max(KMER_KS):
        raise ValueError(f"{reference}: sequences of {L} bp; the k-mer spectra need at least {max(KMER_KS)} bp")
    gen_idx, gen_labels = load_set(generated)
    train_idx, train_labels = load_set(train)
    for path, idx in ((generated, gen_idx), (train, train_idx)):
        if idx.shape[1] != L:  # every metric compares positions or k-mer shares of sequences of one length
            raise ValueError(
                f"{path}: sequences of {idx.shape[1]} bp but the reference {reference} has {L} bp; the metrics "
                f"compare sequences of one length — give sets of one length"
            )
    if train_labels is not None:
        gen_labels = resolve_labels(gen_labels, sorted(set(train_labels)), generated)
    rng = np.random.default_rng(seed)
    base = rng.choice(len(train_idx), size=min(len(gen_idx), len(train_idx)), replace=False)
    base_idx, base_labels = train_idx[base], None if train_labels is None else [train_labels[i] for i in base]
    gc = float(np.isin(train_idx, (1, 2)).mean())
    out = dict(
        generated=generated,
        reference=reference,
        train=train,
        seq_length=L,
        n_generated=len(gen_idx),
        n_reference=len(ref_idx),
        n_train=len(train_idx),
        train_gc=gc,
    )

    log(f"scanning motifs ({'all CORE vertebrates' if motif_ids is None else len(motif_ids)} of {release})...")
    scanner = MotifScanner(load_motifs(motif_ids, release), gc_background(gc), pvalue=pvalue)
    counts = {k: scanner.count(index_to_onehot(v)) for k, v in (("gen", gen_idx), ("ref", ref_idx), ("base", base_idx))}
    labels = dict(gen=gen_labels, ref=ref_labels, base=base_labels)
    groups = {"all": None}
    if gen_labels is not None and ref_labels is not None:
        groups.update({c: c for c in sorted(set(ref_labels))})
    motif, motif_base = {}, {}
    for name, c in groups.items():
        sel = {
            k: np.ones(len(v), bool) if c is None or labels[k] is None else np.array([l == c for l in labels[k]])
            for k, v in counts.items()
        }
        if sel["gen"].sum() == 0:
            motif[name] = None
            continue
        motif[name] = motif_distance(counts["gen"][sel["gen"]], counts["ref"][sel["ref"]])
        motif_base[name] = motif_distance(counts["base"][sel["base"]], counts["ref"][sel["ref"]])
    per_type = [v["kl"] for k, v in motif.items() if k != "all" and v is not None]
    out["motif"] = dict(
        pvalue=pvalue,
        jaspar_release=release,
        num_motifs=len(scanner.motifs),
        per_group=motif,
        mean_kl=float(np.mean(per_type)) if per_type else motif["all"]["kl"],
    )
    out["kmer"] = kmer_distance(gen_idx, ref_idx)
    out["baseline"] = dict(n=len(base_idx), motif=motif_base, kmer=kmer_distance(base_idx, ref_idx))

    if classifier is not None:
        log("classifier features...")
        model, info = load_classifier(classifier)
        if model.config["seq_length"] != L:
            raise ValueError(
                f"{classifier}: trained on sequences of {model.config['seq_length']} bp, these have {L} bp; train a "
                f"classifier on sequences of this length (dna_tool.py train-classifier)"
            )
        if min(len(gen_idx), len(ref_idx)) < 2:
            raise ValueError(
                f"{generated if len(gen_idx) < 2 else reference}: one sequence; a Fréchet distance needs at least 2"
            )
        stats = {
            k: feature_stats(classifier_features(model, v))
            for k, v in (("gen", gen_idx), ("ref", ref_idx), ("base", base_idx))
        }
        out["frechet"] = dict(
            value=frechet_distance(*stats["gen"], *stats["ref"]),
            classifier=classifier,
            classifier_test_accuracy=info.get("test_accuracy"),
        )
        out["baseline"]["frechet"] = frechet_distance(*stats["base"], *stats["ref"])
        if gen_labels is not None and set(gen_labels) <= set(info["label_names"]):
            # conditional samples: how often the classifier agrees with the label they were generated for
            lab = torch.tensor([info["label_names"].index(l) for l in gen_labels])
            x = torch.from_numpy(index_to_onehot(gen_idx))
            out["frechet"]["generated_label_accuracy"] = accuracy(model, x, lab)

    log("nearest training sequences...")
    out["nearest_train_identity"] = dict(
        generated=identity_summary(nearest_identity(gen_idx, train_idx)),
        reference=identity_summary(nearest_identity(ref_idx, train_idx)),
    )
    return out
