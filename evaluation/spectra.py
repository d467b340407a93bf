"""k-mer spectra of categorical sequences over any alphabet, and the divergences between distributions that
compare them (KL, Jensen–Shannon, total variation). Sequences come as letter indices [N, L] in 0..size−1, so
one spectrum serves DNA (size 4), protein (20) or any other alphabet."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in nats for normalised, strictly positive q."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits (0 for equal, 1 for disjoint distributions)."""
    m = 0.5 * (np.asarray(p, np.float64) + np.asarray(q, np.float64))
    return max(0.5 * (kl_divergence(p, m) + kl_divergence(q, m)) / math.log(2), 0.0)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


def kmer_frequencies(idx: np.ndarray, k: int, size: int) -> np.ndarray:
    """Forward-strand k-mer frequencies [size**k] of letter indices [N, L]."""
    idx = np.asarray(idx, dtype=np.int64)
    code = np.zeros([idx.shape[0], idx.shape[1] - k + 1], dtype=np.int64)
    for j in range(k):
        code = code * size + idx[:, j : idx.shape[1] - k + 1 + j]
    counts = np.bincount(code.ravel(), minlength=size**k).astype(np.float64)
    return counts / counts.sum()


def kmer_distance(gen_idx: np.ndarray, ref_idx: np.ndarray, size: int, ks: Sequence[int]) -> dict:
    """Per k: JS divergence and total variation between the k-mer spectra of generated and reference sequences;
    `mean_js` averages the JS over `ks`."""
    out = {}
    for k in ks:
        p, q = kmer_frequencies(ref_idx, k, size), kmer_frequencies(gen_idx, k, size)
        out[str(k)] = dict(js=js_divergence(p, q), tv=total_variation(p, q))
    out["mean_js"] = float(np.mean([out[str(k)]["js"] for k in ks]))
    return out
