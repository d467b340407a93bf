"""torchrun worker for tests/test_library.py::test_two_ranks_through_the_public_api (not a test itself).

A foreign loop: it initialises its own process group and uses nothing of this repository but the installed library's
public API. Each rank draws its own DDPM timesteps and sees its own noisy errors; after several refreshes it saves
its sampler state (and the state at the first refresh), the timestep probabilities and an InfoGrid to
<outdir>/rank<r>.pt for the test to compare.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from infonoise import DiscreteVP, InfoNoiseSampler


def main(outdir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    sampler = InfoNoiseSampler(DiscreteVP(alphas_cumprod), "epsilon", num_bins=32, fifo_size=32, min_count=4)
    gen = torch.Generator().manual_seed(1000 + rank)
    batch = 96 if rank == 0 else 48
    first, steps = None, []
    for step in range(1, 81):
        t = sampler.sample(batch, gen)
        sigma = ((1 - alphas_cumprod[t]) / alphas_cumprod[t]).sqrt()
        mmse = 100 * 0.25 * sigma**2 / (0.25 + sigma**2)
        sampler.observe(t, mmse * (1 + 0.5 * (rank + 1) * torch.rand(batch, generator=gen, dtype=torch.float64)))
        if sampler.step(step) is not None:
            steps.append(step)
            first = first or sampler.state_dict()
    out = dict(
        state=sampler.state_dict(), first=first, steps=steps, probs=sampler.timestep_probs(), grid=sampler.grid(10)
    )
    torch.save(out, Path(outdir) / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
