"""A network wherever one is taken: this project's snapshot (.pt), an EDM network pickle (.pkl), or a URL
to either (file://, http(s)://), read the same way by generate.py, fid.py, analysis and train.py --transfer.

Why one place: each command used to open its --network with torch.load, so an EDM pickle ended in torch's
"retry with weights_only=False" hint and a URL was mangled into a path. Here a URL is fetched once
(dnnlib.util.open_url's cache; under torchrun rank 0 downloads and the others read its copy), the file's
format is told by its content (torch.save writes a zip archive, EDM a bare pickle), a snapshot is read
with weights_only=True and an EDM pickle by models.import_edm's safe reader, converted in memory.
Nothing in either file runs.
"""

from __future__ import annotations

import os
import zipfile

from dnnlib import util as dnnlib_util
from torch_utils import checkpoint
from torch_utils import distributed as dist


def local_file(source: str | os.PathLike) -> str:
    """A local path holding `source`: the path itself, a file:// URL's file, or the cached download of an
    http(s) URL (rank 0 first under torchrun). FileNotFoundError / ValueError (one line) otherwise."""
    source = os.fspath(source)
    if not dnnlib_util.is_url(source, allow_file_urls=False):
        return dnnlib_util.open_url(source, return_filename=True)
    failure = None
    if dist.get_rank() == 0:
        try:
            dnnlib_util.open_url(source, return_filename=True)
        except ValueError as e:
            failure = str(e)
    failure = dist.gather(failure)[0]  # every rank learns rank 0's outcome, so none waits for a failed one
    if failure:
        raise ValueError(failure)
    return dnnlib_util.open_url(source, return_filename=True, verbose=dist.get_rank() == 0)


def is_snapshot_file(path: str | os.PathLike) -> bool:
    """Whether `path` is in torch.save's format (a zip archive; EDM's pickles are bare pickles)."""
    return zipfile.is_zipfile(path)


def open_snapshot(source: str | os.PathLike) -> dict:
    """A snapshot dict in this project's format (torch_utils.checkpoint) for a .pt, an EDM .pkl (its EMA
    weights as both 'ema' and 'net', converted without running code from it) or a URL to either."""
    from models import import_edm

    name = os.fspath(source)
    try:
        path = local_file(source)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{name}: no such snapshot or network pickle file. Pass a network-snapshot-*.pt written by train.py, "
            f"an EDM network pickle (.pkl) or a URL to either."
        ) from None
    if is_snapshot_file(path):
        return checkpoint.load(path)
    try:
        net, kwargs = import_edm.import_network(path)
    except ValueError as e:
        message = str(e).replace(path, name, 1) if path != name else str(e)
        if "(refusing " not in message:  # neither format: say both were tried
            message = message.replace(
                "not a readable EDM network pickle", "cannot be read as a snapshot (.pt) or an EDM network pickle"
            )
        raise ValueError(message) from None
    return import_edm.to_snapshot(net, kwargs, import_edm.source_name(name))
