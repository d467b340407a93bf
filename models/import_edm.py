"""Open an EDM network pickle without running code from it, and turn it into a network of this project.

    python -m models.import_edm edm-cifar10-32x32-cond-vp.pkl --out cifar10-edm.pt
    python generate.py --network https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-cifar10-32x32-cond-vp.pkl ...

EDM pickles its networks with their Python source (torch_utils.persistence): an ordinary unpickler
would execute that source. `SafeUnpickler` instead rebuilds data only: tensors, plain containers, numpy's
numeric scalars and dtypes (EDM's networks.py passes np.sqrt(0.5) and the like, so every official pickle
holds them); EDM's persistent objects become `Stub`s holding their class name and state (the embedded
source is kept as a string and never run), torch's module containers too, and any other global in the
file is refused by name. The weights are then mapped onto this project's networks (same parameter names
as EDM's; the attention qkv channels reordered, EDM's constant resample filters dropped). generate.py,
fid.py, analysis and train.py --transfer do this in memory (models.network_source); this command
writes the result as a snapshot.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from pathlib import Path
from typing import IO

import click
import numpy as np
import torch

from dnnlib import util as dnnlib_util

# EDM's network classes → (this project's arch, preconditioner). SongUNet's embedding type tells DDPM++
# (positional) from NCSN++ (fourier).
_MODELS = {("SongUNet", "positional"): "ddpmpp", ("SongUNet", "fourier"): "ncsnpp", ("DhariwalUNet", None): "adm"}
_PRECONDS = {"EDMPrecond": "edm", "VPPrecond": "vp", "VEPrecond": "ve"}
# EDM samples its own networks on [0.002, 80] (generate.py); an EDMPrecond itself is built with 0 and inf.
_EDM_SAMPLER_RANGE = (0.002, 80.0)


class Stub:
    """Stands for an object of a class we do not build: its class name and its pickled state."""

    class_name = ""

    def __init__(self, name: str = "", state: dict | None = None):
        self.class_name, self.state = name, state if state is not None else {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_": state}

    def __repr__(self) -> str:
        return f"Stub({self.class_name})"


def _stub_class(name: str) -> type:
    return type(name, (Stub,), {"class_name": name, "__init__": lambda self, *a, **k: Stub.__init__(self, name)})


def _persistent(meta: dict) -> Stub:
    """EDM's `_reconstruct_persistent_obj`, minus executing `meta['module_src']`."""
    if not isinstance(meta, dict):
        raise pickle.UnpicklingError(f"a persistent object's record is a {type(meta).__name__}, not a dict")
    state = meta.get("state")
    return Stub(str(meta.get("class_name")), dict(state) if isinstance(state, dict) else {})


def _tensor_from_bytes(data: bytes):
    """torch.storage._load_from_bytes, but with weights_only: a storage payload cannot run code either."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _parameter(data, requires_grad=False, backward_hooks=None, *extra):
    return data


class NumpyDtype:
    """numpy.dtype(name, align, copy) as a pickle rebuilds it, for plain numeric types only (bool, int,
    float, complex: no object, string or structured dtypes); the state's byte order is the one field read."""

    def __init__(self, name, align=False, copy=False):
        try:
            dtype = np.dtype(name) if isinstance(name, str) else None
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
            raise pickle.UnpicklingError(f"refusing numpy dtype {name!r}: only numeric scalars are read")
        self.dtype = dtype

    def __setstate__(self, state):
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "="
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)


def _numpy_scalar(dtype, data=None):
    """numpy's scalar(dtype, bytes) for a numeric NumpyDtype, as the Python number (np.sqrt(0.5) → 0.707…)."""
    if not isinstance(dtype, NumpyDtype) or not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("refusing a numpy scalar that is not a numeric value")
    if len(data) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError(f"a numpy {dtype.dtype} scalar of {len(data)} bytes")
    return np.frombuffer(bytes(data), dtype=dtype.dtype)[0].item()


class SafeUnpickler(pickle.Unpickler):
    """Tensors, storages, plain containers, numeric numpy scalars, EDM's persistent objects and torch module
    containers as stubs; every other global is refused by name (pickle.UnpicklingError)."""

    ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
        ("torch.storage", "_load_from_bytes"): _tensor_from_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("__builtin__", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): lambda s, enc="latin1": s.encode(enc),
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
        ("dnnlib.util", "EasyDict"): dict,
        ("torch", "device"): torch.device,
        ("numpy", "dtype"): NumpyDtype,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # numpy 2
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # numpy 1 (the official pickles)
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module.startswith("torch.nn.modules.") or module.startswith("torch.nn.parameter"):
            return _stub_class(name)  # a torch module container: its state is all we read
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"refusing '{module}.{name}': only tensors and plain data are read")


def load_pickle(source: str | os.PathLike | IO[bytes]) -> object:
    """The object in an EDM pickle (a path, a file:// or http(s):// URL, or an open binary file), rebuilt
    without running code from it. ValueError naming the source, FileNotFoundError for a missing file."""
    name = getattr(source, "name", None) if hasattr(source, "read") else os.fspath(source)
    try:
        if hasattr(source, "read"):
            return SafeUnpickler(source).load()
        with dnnlib_util.open_url(source) as f:
            return SafeUnpickler(f).load()
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: not found") from None
    except dnnlib_util.OpenURLError:
        raise
    except Exception as e:  # refused globals, truncated or foreign files: nothing of them ran
        why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ValueError(f"{name}: not a readable EDM network pickle ({why})") from None


def _state_dict(obj: Stub, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers of a stub tree, named as torch's state_dict names them."""
    out = {}
    for kind in ("_parameters", "_buffers"):
        for name, value in (obj.state.get(kind) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value.detach().clone()
    for name, child in (obj.state.get("_modules") or {}).items():
        if isinstance(child, Stub):
            out.update(_state_dict(child, f"{prefix}{name}."))
    return out


def _network(obj: object) -> Stub:
    """EDM's network inside a loaded pickle: the snapshot dict's 'ema', or the object itself."""
    if isinstance(obj, dict) and "ema" in obj:
        obj = obj["ema"]
    if not isinstance(obj, Stub) or obj.class_name not in _PRECONDS:
        if isinstance(obj, Stub):
            found = obj.class_name
        elif isinstance(obj, dict):
            found = f"a dict of {sorted(map(str, obj))[:6]} without 'ema'"
        else:
            found = type(obj).__name__
        raise ValueError(f"expected an EDM network (EDMPrecond, VPPrecond or VEPrecond), found {found}")
    return obj


def qkv_edm_to_ours(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """EDM orders qkv output channels as [head, channel, q|k|v]; ours as [q|k|v, head, channel]."""
    c3 = weight.shape[0]
    w = weight.reshape(num_heads, c3 // 3 // num_heads, 3, *weight.shape[1:])
    return w.permute(2, 0, 1, *range(3, w.ndim)).reshape(weight.shape)


def network_kwargs(net: Stub) -> dict:
    """This project's build_network options for an EDM network, from its recorded constructor arguments."""
    kw = dict(net.state.get("_init_kwargs") or {})
    if not kw:
        raise ValueError(f"the {net.class_name} carries no constructor arguments (_init_kwargs)")
    precond = _PRECONDS[net.class_name]
    model_type = kw.pop("model_type", "DhariwalUNet" if precond == "edm" else "SongUNet")
    embedding = kw.get("embedding_type", "positional") if model_type == "SongUNet" else None
    if (model_type, embedding) not in _MODELS:
        raise ValueError(f"EDM model {model_type} (embedding {embedding}) has no counterpart here")
    res, channels = kw.pop("img_resolution"), kw.pop("img_channels")
    sigma_min, sigma_max = kw.pop("sigma_min", None), kw.pop("sigma_max", None)
    if precond == "edm":  # EDMPrecond is built with [0, inf): the range its sampler uses instead
        sigma_min = _EDM_SAMPLER_RANGE[0] if not sigma_min else sigma_min
        sigma_max = _EDM_SAMPLER_RANGE[1] if sigma_max in (None, float("inf")) else sigma_max
    kw.pop("use_fp16", None)
    if model_type == "DhariwalUNet":
        kw["min_one_head"] = False  # EDM's rule: a block narrower than channels_per_head has no attention
    return dict(
        arch=_MODELS[(model_type, embedding)],
        precond=precond,
        data_shape=[channels, res, res],
        label_dim=kw.pop("label_dim", 0),
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        sigma_data=kw.pop("sigma_data", 0.5),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
    )


def load_weights(ours: torch.nn.Module, edm: Stub, what: str = "network") -> None:
    """Copy an EDM module's weights (a stub tree) into ours: the same names, EDM's constant resample
    filters dropped, the attention qkv channels reordered. ValueError listing what does not match."""
    state = {k: v for k, v in _state_dict(edm).items() if not k.endswith("resample_filter")}
    target = ours.state_dict()
    missing, unexpected = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    if missing or unexpected:
        raise ValueError(f"weights do not match {what}: missing {missing[:4]}, unexpected {unexpected[:4]}")
    for name, module in ours.named_modules():
        if hasattr(module, "qkv") and getattr(module, "num_heads", 0):
            for key in (f"{name}.qkv.weight", f"{name}.qkv.bias") if name else ("qkv.weight", "qkv.bias"):
                state[key] = qkv_edm_to_ours(state[key], module.num_heads)
    try:
        ours.load_state_dict(state)
    except RuntimeError as e:  # same names, other shapes
        raise ValueError(f"weights do not fit {what}: {str(e).splitlines()[-1].strip()[:200]}") from None


def import_network(source: str | os.PathLike | IO[bytes]) -> tuple[torch.nn.Module, dict]:
    """(this project's network with the EDM pickle's EMA weights, its build_network options). `source`: a
    path, a file:// or http(s):// URL, or an open binary file."""
    from models.networks import build_network

    name = getattr(source, "name", None) if hasattr(source, "read") else os.fspath(source)
    edm = load_pickle(source)
    try:
        edm = _network(edm)
        kwargs = network_kwargs(edm)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    except (KeyError, TypeError, AttributeError) as e:  # constructor arguments without the resolution, say
        raise ValueError(f"{name}: not an EDM network pickle this can read ({type(e).__name__}: {e})") from None
    try:
        ours = build_network(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: its network options do not build here ({e})") from None
    try:
        load_weights(ours, edm, kwargs["arch"])
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    return ours.eval().requires_grad_(False), kwargs


def source_name(source: str | os.PathLike) -> str:
    """The file name a path or URL ends in (what a converted snapshot records as imported_from)."""
    return Path(str(source).split("?", 1)[0].rstrip("/")).name or str(source)


def to_snapshot(net: torch.nn.Module, kwargs: dict, source: str) -> dict:
    """A snapshot dict in this project's format holding the imported weights as both 'ema' and 'net'."""
    from torch_utils import checkpoint

    state = net.state_dict()
    return {
        "format": checkpoint.FORMAT,
        "options": {"network_kwargs": kwargs, "imported_from": source},
        "ema": state,
        "net": state,
        "profile": None,
        "progress": {"cur_nimg": 0, "cur_tick": 0, "global_step": 0},
    }


@click.command()
@click.argument("network")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Snapshot .pt to write")
def main(network: str, out: str) -> None:
    """Convert an EDM network pickle (a path or URL; read without running its code) into a snapshot."""
    from torch_utils import checkpoint
    from torch_utils.files import check_writable

    try:
        check_writable(out, "--out snapshot")
        net, kwargs = import_network(network)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    checkpoint.atomic_save(to_snapshot(net, kwargs, source_name(network)), out)
    click.echo(
        f"wrote {out}: {kwargs['arch']} / {kwargs['precond']}, {tuple(kwargs['data_shape'])}, "
        f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters"
    )


if __name__ == "__main__":
    main()
