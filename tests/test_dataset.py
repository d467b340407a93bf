"""datafiles/images.py on tiny EDM-format data sets written here byte by byte (not by dataset_tool.py,
so a bug shared by writer and reader cannot hide): exact pixels, labels and the clear errors."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from datafiles.base import model_space
from datafiles.images import ImageFolderDataset
from modalities import open_dataset
from tests.conftest import _png, write_edm  # noqa: F401  (the one EDM-format writer)


def _images(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def _one_line(exc: pytest.ExceptionInfo, *parts: object) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    for part in parts:
        assert str(part) in msg
    return msg


@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "folder"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (8, 12, 3)], ids=["28x28x1", "8x12x3"])
def test_round_trip_exact_pixels_and_labels(tmp_path, as_zip, shape):
    images, labels = _images(7, *shape), [3, 0, 4, 4, 1, 0, 2]
    path = tmp_path / ("d.zip" if as_zip else "d")
    path.parent.mkdir(exist_ok=True) if as_zip else path.mkdir()
    write_edm(path, images, labels, as_zip=as_zip)
    ds = open_dataset(path, use_labels=True)
    h, w, c = shape
    assert (len(ds), ds.data_shape, ds.num_channels, ds.resolution) == (7, (c, h, w), c, h)
    assert ds.has_labels and ds.label_dim == 5 and not ds.is_binary
    for i in range(7):
        x, onehot = ds[i]
        assert x.dtype == np.uint8 and np.array_equal(x, images[i].transpose(2, 0, 1))
        assert onehot.dtype == np.float32 and onehot.tolist() == [float(k == labels[i]) for k in range(5)]
    batch = torch.from_numpy(np.stack([ds[i][0] for i in range(7)]))
    assert torch.equal(batch, torch.from_numpy(images.transpose(0, 3, 1, 2)))
    # x/127.5 - 1 in float32: within one float32 rounding of the exact value, endpoints exact
    y = model_space(batch)
    assert y.dtype == torch.float32 and (y.double() - (batch.double() / 127.5 - 1)).abs().max() <= 2**-24
    assert model_space(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]
    # without use_labels the labels are empty vectors even though dataset.json exists
    assert ImageFolderDataset(path)[0][1].shape == (0,)


def test_binarized_data_is_exactly_plus_minus_one(tmp_path):
    images = (_images(5, 6, 6, 1) >= 128).astype(np.uint8) * 255
    write_edm(tmp_path / "b.zip", images)
    ds = ImageFolderDataset(tmp_path / "b.zip")
    assert ds.is_binary
    values = model_space(torch.from_numpy(np.stack([ds[i][0] for i in range(len(ds))])))
    assert set(values.unique().tolist()) == {-1.0, 1.0}


def test_xflip_doubles_and_mirrors_exactly(tmp_path):
    images, labels = _images(4, 5, 7, 3), [1, 0, 1, 2]
    write_edm(tmp_path / "f.zip", images, labels)
    ds = ImageFolderDataset(tmp_path / "f.zip", xflip=True, use_labels=True)
    assert len(ds) == 8
    for i in range(4):
        assert np.array_equal(ds[i][0], images[i].transpose(2, 0, 1))
        assert np.array_equal(ds[4 + i][0], images[i][:, ::-1].transpose(2, 0, 1))
        assert np.array_equal(ds[4 + i][1], ds[i][1])


def test_max_size_subset_is_deterministic(tmp_path):
    images = _images(30, 4, 4, 1)
    write_edm(tmp_path / "m.zip", images)
    keys = {images[i].tobytes(): i for i in range(30)}

    def picked(seed: int) -> list[int]:
        ds = ImageFolderDataset(tmp_path / "m.zip", max_size=10, random_seed=seed)
        return [keys[ds[i][0].transpose(1, 2, 0).tobytes()] for i in range(len(ds))]

    a = picked(0)
    assert len(a) == len(set(a)) == 10 and a == sorted(a)
    assert picked(0) == a and picked(1) != a
    assert len(ImageFolderDataset(tmp_path / "m.zip", max_size=100)) == 30


def test_resolution_mismatch_names_path_and_fix(tmp_path):
    write_edm(tmp_path / "r.zip", _images(2, 8, 8, 1))
    assert ImageFolderDataset(tmp_path / "r.zip", resolution=8).resolution == 8
    with pytest.raises(ValueError) as e:
        ImageFolderDataset(tmp_path / "r.zip", resolution=32)
    _one_line(e, tmp_path / "r.zip", "8x8", "--resolution 32")


def test_corrupt_zip_is_one_line_error_naming_path(tmp_path):
    path = tmp_path / "bad.zip"
    path.write_bytes(b"PK\x03\x04 this is not really a zip" * 10)
    with pytest.raises(ValueError) as e:
        open_dataset(path)
    _one_line(e, path, "not a readable zip")


def test_missing_path_names_path(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        open_dataset(tmp_path / "nope.zip")
    _one_line(e, tmp_path / "nope.zip", "dataset_tool.py")


@pytest.mark.parametrize(
    "json_labels",
    ["absent", None, [["00000/img00000000.png", 1]], [["00000/img00000000.png", 1.5], ["00000/img00000001.png", 2]]],
    ids=["no-json", "labels-null", "one-missing", "not-int"],
)
def test_labels_requested_but_missing(tmp_path, json_labels):
    write_edm(tmp_path / "l.zip", _images(2, 4, 4, 1), json_labels=json_labels)
    assert len(ImageFolderDataset(tmp_path / "l.zip")) == 2  # fine without labels
    with pytest.raises(ValueError) as e:
        ImageFolderDataset(tmp_path / "l.zip", use_labels=True)
    _one_line(e, tmp_path / "l.zip", "dataset.json")


@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "folder"])
def test_corrupt_png_names_the_file(tmp_path, as_zip):
    path = tmp_path / ("c.zip" if as_zip else "c")
    path.parent.mkdir(exist_ok=True) if as_zip else path.mkdir()
    names = write_edm(
        path, _images(3, 4, 4, 1), as_zip=as_zip, extra={"00000/img00000002.png": _png(_images(1, 4, 4, 1)[0])[:30]}
    )  # truncated
    ds = ImageFolderDataset(path)  # the first image is fine, so opening works
    with pytest.raises(ValueError) as e:
        ds[2]
    _one_line(e, path, names[2], "corrupt")


def test_palette_and_debris_are_handled(tmp_path):
    """A palette PNG yields its colours (not palette indices); macOS zip debris is not an image."""
    rgb = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    buf = io.BytesIO()
    PIL.Image.fromarray(rgb).convert("P", palette=PIL.Image.Palette.ADAPTIVE, colors=2).save(buf, format="png")
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as z:
        z.writestr("00000/img00000000.png", buf.getvalue())
        z.writestr("__MACOSX/00000/._img00000000.png", b"\x00\x05\x16\x07 AppleDouble")
    ds = ImageFolderDataset(tmp_path / "p.zip")
    assert len(ds) == 1 and np.array_equal(ds[0][0], rgb.transpose(2, 0, 1))


def test_dataloader_workers_over_zip_exact(tmp_path):
    """Forked workers must not share the parent's zip handle (a shared file offset returns wrong
    bytes: 'Bad CRC-32'), and the data set must pickle for spawn-style workers."""
    images = _images(400, 8, 8, 1, seed=1)
    write_edm(tmp_path / "w.zip", images, list(range(400)))
    ds = ImageFolderDataset(tmp_path / "w.zip", use_labels=True, cache=False)
    ds[0]  # the parent holds an open handle when the workers fork
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    for _ in range(2):
        x, y = (torch.cat(t) for t in zip(*loader))
        assert torch.equal(x, torch.from_numpy(images.transpose(0, 3, 1, 2)))
        assert y.argmax(1).tolist() == list(range(400))
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[399][0], images[399].transpose(2, 0, 1))
