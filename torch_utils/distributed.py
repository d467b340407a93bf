"""torch.distributed from torchrun's environment: nccl on CUDA, gloo on CPU, same code.

The collectives (all_reduce_sum, broadcast, rank and world size) are the library's (`infonoise.distributed`);
this module adds what a launcher needs: init, gather, barrier, print0, shutdown.
Without torchrun (no WORLD_SIZE) everything degrades to a single process and the collectives
below become identities, so library code can call them unconditionally.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

# The collectives themselves live in the installable library (one home): re-exported under their old names.
from infonoise.distributed import all_reduce_sum, broadcast, get_rank, get_world_size, is_distributed

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "all_reduce_sum",
    "barrier",
    "broadcast",
    "gather",
    "get_rank",
    "get_world_size",
    "init",
    "is_distributed",
    "print0",
    "shutdown",
]

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
