"""Contact sheets: a batch of uint8 images as one PNG, upscaled so small images can be looked at."""

from __future__ import annotations

import math
import os

import numpy as np
import PIL.Image
import torch

from torch_utils.files import atomic_write


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    cols: int | None = None,
    min_cell: int = 64,
    pad: int = 2,
) -> None:
    """Save uint8 images [N, C, H, W] (C = 1 or 3) as a grid PNG. Cells smaller than `min_cell`
    pixels are enlarged by an integer factor (nearest neighbour), so 8x8 digits stay legible."""
    images = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.dtype != np.uint8:
        raise ValueError(f"save_image_grid: expected uint8 [N, 1|3, H, W], got {images.dtype} {images.shape}")
    n, c, h, w = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    scale = max(1, math.ceil(min_cell / max(h, w)))
    images = images.repeat(scale, axis=2).repeat(scale, axis=3)
    h, w = h * scale, w * scale
    sheet = np.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        sheet[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = img
    with atomic_write(path, "wb") as f:
        PIL.Image.fromarray(sheet[0] if c == 1 else sheet.transpose(1, 2, 0)).save(f, format="png")
