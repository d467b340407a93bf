"""Shared fixtures: tiny data sets made on the fly (no downloads), a fast tiny network config."""

from __future__ import annotations

import functools
import http.server
import io
import json
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention (the one home of this setting)

REPO = Path(__file__).resolve().parents[1]
TINY_NET = [
    "--arch",
    "ddpmpp",
    "--cbase",
    "8",
    "--cres",
    "1,2",
    "--net-opt",
    "num_blocks=1",
    "--net-opt",
    "attn_resolutions=[]",
]


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buf, format="png")
    return buf.getvalue()


def write_edm(
    path: Path,
    images: np.ndarray,
    labels: list[int] | None = None,
    *,
    as_zip: bool = True,
    json_labels: object = "auto",
    extra: dict[str, bytes] | None = None,
) -> list[str]:
    """Images [N,H,W,C] uint8 in EDM's layout; returns the names in order."""
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(images))]
    files = {n: _png(im) for n, im in zip(names, images)}
    if json_labels == "auto":
        json_labels = None if labels is None else [[n, int(l)] for n, l in zip(names, labels)]
    if json_labels != "absent":
        files["dataset.json"] = json.dumps({"labels": json_labels}).encode()
    files.update(extra or {})
    if as_zip:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
            for n, data in files.items():
                z.writestr(n, data)
    else:
        for n, data in files.items():
            (path / n).parent.mkdir(parents=True, exist_ok=True)
            (path / n).write_bytes(data)
    return names


def write_image_dataset(
    dest: Path, n: int = 32, res: int = 8, channels: int = 1, labels: bool = True, binary: bool = False, seed: int = 0
) -> tuple[Path, np.ndarray, np.ndarray]:
    """Random EDM-format dataset (folder, or .zip when dest ends in .zip). Returns (path, images NCHW, labels)."""
    rnd = np.random.RandomState(seed)
    images = rnd.randint(0, 256, size=(n, channels, res, res)).astype(np.uint8)
    if binary:
        images = np.where(images >= 128, 255, 0).astype(np.uint8)
    classes = rnd.randint(0, 3, size=n)
    write_edm(
        dest,
        images.transpose(0, 2, 3, 1),
        classes.tolist() if labels else None,
        as_zip=str(dest).endswith(".zip"),
        json_labels="auto" if labels else "absent",
    )
    return dest, images, classes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    timeout = 10  # a stuck connection frees its handler thread after this many seconds

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1 while the test runs (a threaded http.server, shut down after),
    with dnnlib's download cache in tmp_path: yields (folder, base URL, the paths requested so far)."""
    folder = tmp_path / "www"
    folder.mkdir()
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnnlib-cache"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(folder)))
    server.daemon_threads, server.requests = True, []
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def tiny_zip(tmp_path):
    return write_image_dataset(tmp_path / "tiny.zip")[0]


def train_tiny(outdir, data, *extra, batch: int = 8, duration: str = "0.000016", ok: bool = True):
    """train.py on the tiny network through its command line (sample grids off); asserts success unless ok=False.
    `extra` flags override the defaults given before them."""
    from click.testing import CliRunner

    import train

    args = [
        "--outdir",
        outdir,
        "--data",
        data,
        *TINY_NET,
        "--batch",
        batch,
        "--duration",
        duration,
        "--sample-grid",
        "0",
        *extra,
    ]
    result = CliRunner().invoke(train.main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result
