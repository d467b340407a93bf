"""Run by tests/test_gpu_path.py under torchrun (2 ranks, gloo): k optimizer steps of one network twice from
the same start, with different data per rank — (a) the pre-DDP reduce: local backward, then one all-reduce
SUM of the flattened gradients; (b) DistributedDataParallel with the training loop's sum hook and no_sync
over two accumulation rounds. Writes both parameter sets."""

import sys  # noqa: E402,I001
from pathlib import Path as _Path  # noqa: E402

# The repository root first: run as a script under torchrun, the framework is not installed (pyproject).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import copy
import sys
from pathlib import Path

import torch

from models.networks import build_network
from torch_utils import distributed as du
from training.loss import DenoisingLoss
from training.training_loop import _allreduce_sum_hook

du.init("cpu")
rank, out = du.get_rank(), Path(sys.argv[1])
torch.manual_seed(0)
net = build_network(
    "ddpmpp",
    "edm",
    data_shape=[1, 8, 8],
    model_channels=8,
    channel_mult=[1, 2],
    num_blocks=1,
    attn_resolutions=[],
    dropout=0.0,
)
manual, wrapped = copy.deepcopy(net), copy.deepcopy(net)
ddp = torch.nn.parallel.DistributedDataParallel(wrapped, broadcast_buffers=False)
ddp.register_comm_hook(None, _allreduce_sum_hook)
opt_a, opt_b = (torch.optim.Adam(m.parameters(), lr=1e-2) for m in (manual, wrapped))
loss_fn, batch, rounds = DenoisingLoss("edm"), 16, 2  # global batch 16 = 2 ranks × 2 rounds × 4
for step in range(3):
    g = torch.Generator().manual_seed(100 * step + rank)
    data = [
        (
            torch.randn(4, 1, 8, 8, generator=g),
            torch.rand(4, generator=g) * 5 + 0.01,
            torch.randn(4, 1, 8, 8, generator=g),
        )
        for _ in range(rounds)
    ]
    opt_a.zero_grad(set_to_none=True)
    for x0, sigma, noise in data:
        (loss_fn(manual, x0, sigma, noise=noise)[0].sum() / batch).backward()
    grads = [p.grad for p in manual.parameters()]
    flat = du.all_reduce_sum(torch.cat([g.flatten() for g in grads]))
    offset = 0
    for g_ in grads:
        g_.copy_(flat[offset : offset + g_.numel()].view_as(g_))
        offset += g_.numel()
    opt_a.step()
    opt_b.zero_grad(set_to_none=True)
    for r, (x0, sigma, noise) in enumerate(data):
        with ddp.no_sync() if r < rounds - 1 else torch.enable_grad():
            (loss_fn(ddp, x0, sigma, noise=noise)[0].sum() / batch).backward()
    opt_b.step()
torch.save({"manual": manual.state_dict(), "ddp": wrapped.state_dict()}, out / f"rank{rank}.pt")
du.shutdown()
