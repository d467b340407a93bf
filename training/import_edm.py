"""Open an EDM network pickle without running code from it, and turn it into a snapshot of this project.

    python -m training.import_edm edm-cifar10-32x32-cond-vp.pkl --out cifar10-edm.pt
    python generate.py --network cifar10-edm.pt --grid infogrid --probe-data data/cifar10-32x32.zip ...

EDM pickles its networks with their Python source (torch_utils.persistence): an ordinary unpickler
would execute that source. `SafeUnpickler` instead rebuilds tensors and plain containers only: EDM's
persistent objects become `Stub`s holding their class name and state, torch's module containers too,
and any other global in the file is refused by name. The weights are then mapped onto this project's
networks (same parameter names as EDM's; the attention qkv channels reordered, EDM's constant resample
filters dropped) and written as a normal snapshot, which generate.py, the probe and InfoGrid accept.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import click
import torch

# EDM's network classes → (this project's arch, preconditioner). SongUNet's embedding type tells DDPM++
# (positional) from NCSN++ (fourier).
_MODELS = {("SongUNet", "positional"): "ddpmpp", ("SongUNet", "fourier"): "ncsnpp", ("DhariwalUNet", None): "adm"}
_PRECONDS = {"EDMPrecond": "edm", "VPPrecond": "vp", "VEPrecond": "ve"}
# EDM samples its own networks on [0.002, 80] (generate.py); an EDMPrecond itself is built with 0 and inf.
_EDM_SAMPLER_RANGE = (0.002, 80.0)


class Stub:
    """Stands for an object of a class we do not build: its class name and its pickled state."""

    def __init__(self, name: str = "", state: dict | None = None):
        self.class_name, self.state = name, state if state is not None else {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_": state}

    def __repr__(self) -> str:
        return f"Stub({self.class_name})"


def _stub_class(name: str) -> type:
    return type(name, (Stub,), {"__init__": lambda self, *a, **k: Stub.__init__(self, name)})


def _persistent(meta: dict) -> Stub:
    """EDM's `_reconstruct_persistent_obj`, minus executing `meta['module_src']`."""
    return Stub(str(meta.get("class_name")), dict(meta.get("state") or {}))


def _tensor_from_bytes(data: bytes):
    """torch.storage._load_from_bytes, but with weights_only: a storage payload cannot run code either."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _parameter(data, requires_grad=False, backward_hooks=None, *extra):
    return data


class SafeUnpickler(pickle.Unpickler):
    """Tensors, storages, plain containers, EDM's persistent objects and torch module containers as stubs;
    every other global is refused by name (pickle.UnpicklingError)."""

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
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module.startswith("torch.nn.modules.") or module.startswith("torch.nn.parameter"):
            return _stub_class(name)  # a torch module container: its state is all we read
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"refusing '{module}.{name}': only tensors and plain containers are read")


def load_pickle(path: str | Path) -> object:
    """The object in an EDM pickle, rebuilt without running code from it (ValueError naming the file)."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f).load()
    except FileNotFoundError:
        raise ValueError(f"{path}: not found") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"{path}: not a readable EDM network pickle ({str(e).splitlines()[0][:200]})") from None


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
        found = obj.class_name if isinstance(obj, Stub) else type(obj).__name__
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


def import_network(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(this project's network with the EDM pickle's EMA weights, its build_network options)."""
    from training.networks import build_network

    try:  # every refusal names the file
        edm = _network(load_pickle(path))
        kwargs = network_kwargs(edm)
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith(f"{path}:") else f"{path}: {e}") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not an EDM network pickle this can read ({type(e).__name__}: {e})") from None
    try:
        ours = build_network(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its network options do not build here ({e})") from None
    state = {k: v for k, v in _state_dict(edm).items() if not k.endswith("resample_filter")}
    target = ours.state_dict()
    missing, unexpected = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match {kwargs['arch']}: missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    try:
        for name, module in ours.named_modules():
            if hasattr(module, "qkv") and getattr(module, "num_heads", 0):
                key = f"{name}.qkv.weight"
                state[key] = qkv_edm_to_ours(state[key], module.num_heads)
                state[f"{name}.qkv.bias"] = qkv_edm_to_ours(state[f"{name}.qkv.bias"], module.num_heads)
        ours.load_state_dict(state)
    except RuntimeError as e:  # same names, other shapes
        raise ValueError(f"{path}: weights do not fit {kwargs['arch']} ({str(e).splitlines()[0][:200]})") from None
    return ours.eval().requires_grad_(False), kwargs


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
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Snapshot .pt to write")
def main(network: str, out: str) -> None:
    """Convert an EDM network pickle (read without running its code) into a snapshot of this project."""
    from torch_utils import checkpoint
    from torch_utils.files import check_writable

    try:
        check_writable(out, "--out snapshot")
        net, kwargs = import_network(network)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    checkpoint.atomic_save(to_snapshot(net, kwargs, Path(network).name), out)
    click.echo(
        f"wrote {out}: {kwargs['arch']} / {kwargs['precond']}, {tuple(kwargs['data_shape'])}, "
        f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters"
    )


if __name__ == "__main__":
    main()
