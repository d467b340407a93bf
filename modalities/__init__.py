"""The registry of modalities: which kind of data a data set holds, chosen from the data set itself.

`for_data(path)` asks every registered modality how well the data set fits it (`Modality.fit`) and takes the
best, the first registered on a tie: a folder or zip is images; a sequence file is the alphabet that covers
most of its letters (DNA before protein, whose alphabet holds A/C/G/T too). `for_shape` serves a network
whose data set is not at hand. A new modality is one file (modalities/base.py's contract) plus one line in
`REGISTRY`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

import torch

from modalities.base import Evaluation, HarnessMetric, Modality
from torch_utils import distributed as dist

# One line per modality, "module:object", in the order that breaks a tie.
REGISTRY = (
    "modalities.images:IMAGES",
    "modalities.dna:DNA",
    "modalities.protein:PROTEIN",
)

__all__ = ["REGISTRY", "Evaluation", "HarnessMetric", "Modality", "registered", "names", "for_data", "for_shape"]
__all__ += ["open_dataset", "open_for_network", "for_training"]


def registered() -> list[Modality]:
    """The registered modalities in REGISTRY's order, each module imported when first asked for (so that
    `python -m modalities.<one>` runs a modality's own command without importing it twice)."""
    out = []
    for entry in REGISTRY:
        module, _, name = entry.partition(":")
        out.append(getattr(importlib.import_module(module), name))
    return out


def names() -> list[str]:
    return [m.name for m in registered()]


def for_data(path: str | os.PathLike) -> Modality:
    """The modality of the data set at `path` (see the module's docstring)."""
    fits = [(fit, -i, m) for i, m in enumerate(registered()) if (fit := m.fit(path)) is not None]
    if not fits:
        raise ValueError(f"{path}: no modality reads this data set (known: {', '.join(names())}).")
    return max(fits, key=lambda f: f[:2])[2]


def for_shape(shape: Sequence[int]) -> Modality:
    """The modality of a network that generates data of `shape` (a snapshot without its data set)."""
    for m in registered():
        if m.accepts_shape(shape):
            return m
    raise ValueError(f"no modality generates data of shape {list(shape)} (known: {', '.join(names())}).")


def open_dataset(path: str | os.PathLike, **options) -> torch.utils.data.Dataset:
    """The data set at `path`, read by its modality (`Modality.open` says which options each kind takes)."""
    return for_data(path).open(path, **options)


def open_for_network(path: str | os.PathLike, net: torch.nn.Module) -> torch.utils.data.Dataset:
    """The data set at `path` read as `net` needs it: with labels for a conditional network, and sequences at
    the network's length (probing a network on data)."""
    return open_dataset(path, use_labels=net.label_dim > 0, length=net.data_shape[-1])


def for_training(options: dict) -> dict:
    """What `training_loop.run` takes of the data's modality, for resolved training `options`: `data` (the
    training set, read with the run's data options) and `write_samples` (a snapshot's samples)."""
    modality = for_data(options["data"])
    dist.print0(f"Opening the data set {options['data']} ({modality.name})...")
    data = modality.open(
        options["data"], use_labels=options["cond"], xflip=options["xflip"], max_size=options["max_size"]
    )
    return dict(data=data, write_samples=modality.write_snapshot_samples)
