"""Image data in EDM's format: a folder or an uncompressed .zip of PNGs, plus an optional
`dataset.json` with {"labels": [[relative_path, int], ...]} — so existing EDM dataset zips work
unchanged. Items are (uint8 [C,H,W], float32 one-hot label); `datafiles.base.model_space` maps the
pixels to [-1, 1] with x/127.5 − 1 where they are used (on the device: uint8 travels four times lighter).
"""

from __future__ import annotations

import io
import json
import operator
import os
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from datafiles.base import DatasetError, one_hot_label

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm"}


class ImageFolderDataset(torch.utils.data.Dataset):
    """A folder or .zip of images. Images must share one shape; `resolution` checks it.

    use_labels: read dataset.json; an error if it is missing. xflip: doubles the data set with
    mirrored copies (EDM's --xflip). max_size: keep a seeded random subset.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolution: int | None = None,
        use_labels: bool = False,
        xflip: bool = False,
        max_size: int | None = None,
        random_seed: int = 0,
        cache: bool = True,
    ):
        self.path = str(path)
        self._zip, self._zip_pid = None, None
        if os.path.isdir(self.path):
            self._type = "dir"
            root = Path(self.path)
            self._all_fnames = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        elif os.path.isfile(self.path) and self.path.lower().endswith(".zip"):
            self._type = "zip"
            try:
                self._all_fnames = sorted(self._get_zip().namelist())
            except zipfile.BadZipFile as e:
                raise ValueError(
                    f"{self.path}: not a readable zip archive ({e}). Re-create it with dataset_tool.py."
                ) from None
            unsafe = [f for f in self._all_fnames if f.startswith("/") or ".." in f.split("/") or "\\" in f]
            if unsafe:  # a member outside the archive's own tree: refuse, never drop it silently
                raise ValueError(
                    f"{self.path}: member '{unsafe[0]}' has an absolute or '..' path; re-create the archive "
                    f"with dataset_tool.py (members must be relative paths inside it)."
                )
        elif not os.path.exists(self.path):
            raise FileNotFoundError(
                f"{self.path}: dataset not found. Pass a folder or .zip of PNGs (make one with dataset_tool.py)."
            )
        else:
            raise ValueError(
                f"{self.path}: a dataset must be a folder or a .zip of images (or a FASTA/TSV sequence file)."
            )
        self._image_fnames = [f for f in self._all_fnames if _ext(f) in IMAGE_EXTS and not _hidden(f)]
        if not self._image_fnames:
            raise ValueError(f"{self.path}: contains no images ({', '.join(sorted(IMAGE_EXTS))}).")
        self.name = Path(self.path).stem
        self.use_labels = use_labels
        self.xflip = xflip
        self._cache = {} if cache else None

        first = self._load_raw_image(0)
        self._raw_shape = [len(self._image_fnames), *first.shape]
        if resolution is not None and (first.shape[1] != resolution or first.shape[2] != resolution):
            raise ValueError(
                f"{self.path}: images are {first.shape[2]}x{first.shape[1]} but resolution "
                f"{resolution} was requested. Re-create the dataset with "
                f"dataset_tool.py --resolution {resolution}, or drop the option."
            )
        self._raw_labels = self._load_raw_labels() if use_labels else None

        self._raw_idx = np.arange(len(self._image_fnames), dtype=np.int64)
        if max_size is not None and len(self._raw_idx) > max_size:
            rnd = np.random.RandomState(random_seed)
            self._raw_idx = np.sort(rnd.permutation(self._raw_idx)[:max_size])
        self._xflip = np.zeros(len(self._raw_idx), dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    # --- file access ---
    def _get_zip(self) -> zipfile.ZipFile:
        """One handle per process: a handle inherited through fork (DataLoader workers) shares its file
        offset with the parent, and concurrent seek+read then returns the wrong bytes (Bad CRC-32)."""
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip, self._zip_pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def _open(self, fname: str):
        if self._type == "dir":
            return open(os.path.join(self.path, fname), "rb")
        return self._get_zip().open(fname, "r")

    def __getstate__(self):  # DataLoader workers re-open the zip themselves
        return dict(self.__dict__, _zip=None)

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        fname = self._image_fnames[raw_idx]
        try:
            with self._open(fname) as f:
                pil = PIL.Image.open(io.BytesIO(f.read()))
                # np.array() of a palette or 1-bit image gives indices / bools, not pixel values
                image = np.array(pil.convert({"1": "L", "P": "RGB"}.get(pil.mode, pil.mode)))
            if image.dtype != np.uint8:
                raise ValueError(f"{pil.mode} pixels ({image.dtype}); only 8-bit images are supported")
        except Exception as e:
            raise DatasetError(
                f"{self.path}: cannot decode image '{fname}' ({e}). The file is corrupt; "
                f"re-create the dataset with dataset_tool.py."
            ) from None
        image = image[:, :, np.newaxis] if image.ndim == 2 else image  # HW => HWC
        if hasattr(self, "_raw_shape") and [image.shape[2], *image.shape[:2]] != self._raw_shape[1:]:
            raise DatasetError(
                f"{self.path}: image '{fname}' has shape {image.shape} (HWC) but the data "
                f"set's first image is CHW {tuple(self._raw_shape[1:])}; all images must match "
                f"(dataset_tool.py --resolution and --channels make them alike)."
            )
        return image.transpose(2, 0, 1)  # HWC => CHW

    def _load_raw_labels(self) -> np.ndarray:
        if "dataset.json" not in self._all_fnames:
            raise ValueError(
                f"{self.path}: labels were requested (--cond) but the data set has no "
                f"dataset.json. Re-create it with labels, or train without --cond."
            )
        with self._open("dataset.json") as f:
            try:
                labels = json.load(f).get("labels")
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.path}: dataset.json is not valid JSON ({e}).") from None
        if labels is None:
            raise ValueError(f"{self.path}: dataset.json has no 'labels' entry but labels were requested.")
        try:
            labels = {str(name): operator.index(label) for name, label in labels}  # 3.7 is no class
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.path}: dataset.json 'labels' must be [[name, int], ...] ({e}).") from None
        missing = [f for f in self._image_fnames if f.replace("\\", "/") not in labels]
        if missing:
            raise ValueError(
                f"{self.path}: dataset.json has no label for '{missing[0]}' ({len(missing)} images unlabelled)."
            )
        raw = np.array([labels[f.replace("\\", "/")] for f in self._image_fnames], dtype=np.int64)
        if raw.min() < 0:
            raise ValueError(f"{self.path}: dataset.json has negative class labels.")
        return raw

    # --- Dataset API ---
    def __len__(self) -> int:
        return len(self._raw_idx)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        raw_idx = int(self._raw_idx[idx])
        image = self._cache.get(raw_idx) if self._cache is not None else None
        if image is None:
            image = self._load_raw_image(raw_idx)
            if self._cache is not None:
                self._cache[raw_idx] = image
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        return one_hot_label(self._raw_labels, self._raw_idx[idx], self.label_dim)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self._raw_shape[1]

    @property
    def resolution(self) -> int:
        return self._raw_shape[2]

    @property
    def label_dim(self) -> int:
        return 0 if self._raw_labels is None else int(self._raw_labels.max()) + 1

    @property
    def has_labels(self) -> bool:
        return self._raw_labels is not None

    @property
    def is_binary(self) -> bool:
        """True when every pixel of a sample of images is 0 or 255: the data are two-valued (±1),
        the "discrete" endpoint type of docs/method.md §4."""
        idx = np.linspace(0, self._raw_shape[0] - 1, num=min(64, self._raw_shape[0])).astype(int)
        return all(np.isin(self._load_raw_image(int(i)), (0, 255)).all() for i in idx)


def _ext(fname: str) -> str:
    return os.path.splitext(fname)[1].lower()


def _hidden(fname: str) -> bool:
    """Dot-files and macOS zip debris (__MACOSX/._img.png) have image names but are not images."""
    return any(part.startswith(".") or part == "__MACOSX" for part in fname.split("/"))
