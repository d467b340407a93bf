"""What every data set shares, whatever it holds: the one label convention, the model-space convention and
the error for an item that cannot be read.

Model space is what the network sees: uint8 items are 8-bit pixels, mapped to [-1, 1]; float items (one-hot
sequences as ±1) already are in model space. A data set yields (item, float32 one-hot label or an empty vector).
"""

from __future__ import annotations

import numpy as np
import torch


class DatasetError(ValueError):
    """A data set that cannot be read as it is (a corrupt or mismatched item); the message names the file."""


def one_hot_label(labels: np.ndarray | None, raw_idx: int, label_dim: int) -> np.ndarray:
    """The float32 one-hot class label of raw example `raw_idx`, or an empty vector for unlabelled data
    (the one label convention of image and sequence datasets)."""
    if labels is None:
        return np.zeros([0], dtype=np.float32)
    onehot = np.zeros(label_dim, dtype=np.float32)
    onehot[labels[raw_idx]] = 1
    return onehot


def as_tensor(dataset, limit: int | None = None) -> torch.Tensor:
    """The data set's examples in model space as one float32 tensor [N, ...] — at most `limit`, evenly
    spaced over the set (deterministic: every rank reads the same ones)."""
    n = len(dataset)
    idx = range(n) if limit is None or limit >= n else np.linspace(0, n - 1, num=limit).astype(int).tolist()
    items = [dataset[int(i)] for i in idx]
    return model_space(torch.stack([torch.as_tensor(it[0] if isinstance(it, (tuple, list)) else it) for it in items]))


def model_space(batch: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float32 in [-1, 1]; float data (one-hot sequences) are already in model space."""
    if batch.dtype == torch.uint8:
        return batch.to(torch.float32) / 127.5 - 1
    return batch.to(torch.float32)
