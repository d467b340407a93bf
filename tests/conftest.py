"""Shared fixtures: tiny data sets made on the fly (no downloads), a fast tiny network config."""
from __future__ import annotations

import json
import socket
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention (the one home of this setting)

REPO = Path(__file__).resolve().parents[1]
TINY_NET = ["--arch", "ddpmpp", "--cbase", "8", "--cres", "1,2", "--net-opt", "num_blocks=1",
            "--net-opt", "attn_resolutions=[]"]


def write_image_dataset(dest: Path, n: int = 32, res: int = 8, channels: int = 1, labels: bool = True,
                        binary: bool = False, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """EDM-format dataset (folder, or .zip when dest ends in .zip). Returns (path, images NCHW, labels)."""
    rnd = np.random.RandomState(seed)
    images = rnd.randint(0, 256, size=(n, channels, res, res)).astype(np.uint8)
    if binary:
        images = np.where(images >= 128, 255, 0).astype(np.uint8)
    classes = rnd.randint(0, 3, size=n)
    files = {}
    for i, img in enumerate(images):
        pil = PIL.Image.fromarray(img[0] if channels == 1 else img.transpose(1, 2, 0))
        buf = __import__("io").BytesIO()
        pil.save(buf, format="png")
        files[f"{i // 1000:05d}/img{i:08d}.png"] = buf.getvalue()
    if labels:
        files["dataset.json"] = json.dumps({"labels": [[f, int(c)] for f, c in zip(sorted(files), classes)]}).encode()
    if str(dest).endswith(".zip"):
        with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as z:
            for name, data in files.items():
                z.writestr(name, data)
    else:
        for name, data in files.items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)
    return dest, images, classes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tiny_zip(tmp_path):
    return write_image_dataset(tmp_path / "tiny.zip")[0]
