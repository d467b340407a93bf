"""torchrun worker for tests/test_infonoise.py::test_two_ranks_build_identical_tables (not a test itself).

Each rank draws its own σ and sees its own noisy errors; after several refreshes it saves its scheduler
state (and the state at the first refresh) to <outdir>/rank<r>.pt for the test to compare.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from schedulers.infonoise import InfoNoise  # noqa: E402
from torch_utils import distributed  # noqa: E402


def main(outdir: str, mode: str = "fixed") -> None:
    """mode 'fixed': explicit warm-up and interval; 'auto': the automatic ones, with the ranks drawing unequal
    batches (128 and 64), so a cadence counted from one rank's errors would differ between them."""
    distributed.init("cpu")
    rank = distributed.get_rank()
    if mode == "auto":
        sched, batch = InfoNoise(num_bins=32, fifo_size=64, min_count=4, floor=0.1), 128 if rank == 0 else 64
    else:
        sched = InfoNoise(num_bins=32, fifo_size=32, min_count=4, warmup_steps=20, refresh_every=10, floor=0.1)
        batch = 128
    gen = torch.Generator().manual_seed(1000 + rank)
    first, steps = None, []
    for step in range(1, 81):
        sigma = sched.sample(batch, gen).double()
        mmse = 100 * 0.25 * sigma**2 / (0.25 + sigma**2)
        sched.observe(sigma, mmse * (1 + 0.5 * (rank + 1) * torch.rand(batch, generator=gen, dtype=torch.float64)))
        if sched.step(step) is not None:
            steps.append(step)
            first = first or sched.state_dict()
    torch.save(dict(state=sched.state_dict(), first=first, steps=steps), Path(outdir) / f"rank{rank}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
