"""The collectives InfoNoise needs, for whatever launched the processes (torchrun, accelerate, a foreign loop).

The library never starts a process group: it uses the one the loop has initialised (nccl or gloo) and, without
one, is a single process whose collectives are identities. A refresh all-reduces the per-bin sums and counts
(docs/method.md §5, "Distributed"), so every rank builds the same table.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


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
