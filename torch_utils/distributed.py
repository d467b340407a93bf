"""torch.distributed from torchrun's environment: nccl on CUDA, gloo on CPU, same code.

Without torchrun (no WORLD_SIZE) everything degrades to a single process and the collectives
below become identities, so library code can call them unconditionally.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

# How long a collective may wait for a rank before the job fails (a stopped or hung rank otherwise holds
# the others for torch's 30-minute default): ours, generous for a rank-0 snapshot and sample grid.
DEFAULT_TIMEOUT_S = {"cpu": 600, "cuda": 1800}


def init(device: str | None = None, timeout_s: float | None = None) -> torch.device:
    """Initialise the process group if launched by torchrun; return this rank's device. `timeout_s` bounds
    every collective (default DEFAULT_TIMEOUT_S by device type). A device that is not there is a
    ValueError naming it."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device '{device}' is not supported here; use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' was requested but this machine has no usable CUDA GPU; use cpu")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        seconds = timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S[dev.type]
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=seconds))
    return dev


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def _comm_device() -> torch.device:
    """Collectives with nccl need CUDA tensors; gloo takes CPU tensors."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, returned on the input's device (a new tensor; input untouched)."""
    if not is_distributed():
        return tensor.clone()
    t = tensor.detach().to(_comm_device(), copy=True)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.to(tensor.device)


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank `src`'s tensor on every rank (returned on the input's device)."""
    if not is_distributed():
        return tensor.clone()
    t = tensor.detach().to(_comm_device(), copy=True)
    dist.broadcast(t, src=src)
    return t.to(tensor.device)


def gather(obj, dst: int | None = None) -> list | None:
    """Every rank's picklable `obj` in rank order: on every rank (dst None), or on rank `dst` only (None
    elsewhere). [obj] without torchrun."""
    if not is_distributed():
        return [obj]
    if dst is None:
        out = [None] * get_world_size()
        dist.all_gather_object(out, obj)
        return out
    out = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def barrier() -> None:
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def print0(*args, **kwargs) -> None:
    if get_rank() == 0:
        print(*args, **kwargs, flush=True)


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()
