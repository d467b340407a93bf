"""Everything a run is, in one object: network, EMA, optimizer, scheduler (every rank's), progress and
every random stream. `state_dict` and `load_state_dict` mirror each other, so what a snapshot saves is
exactly what a resume restores (a resumed run continues bit for bit; tests/test_training.py).
"""

from __future__ import annotations

import numpy as np
import torch

from torch_utils import distributed as du


class DataStream:
    """Infinite, seeded, resumable stream of training indices for one rank.

    The global order is a fresh permutation per epoch (seed, epoch); rank r takes every world-th
    index, so ranks see different data. `position` counts indices this rank has consumed: saving it
    is enough to resume exactly.
    """

    def __init__(self, size: int, seed: int, rank: int, world: int, position: int = 0):
        self.size, self.seed, self.rank, self.world, self.position = size, seed, rank, world, position
        self._epoch, self._perm = -1, None

    def take(self, n: int) -> np.ndarray:
        out = []
        for _ in range(n):
            g = self.position * self.world + self.rank  # global index in the concatenated epochs
            epoch, offset = divmod(g, self.size)
            if epoch != self._epoch:
                self._epoch, self._perm = epoch, np.random.RandomState([self.seed, epoch]).permutation(self.size)
            out.append(self._perm[offset])
            self.position += 1
        return np.asarray(out, dtype=np.int64)


class StreamBatchSampler(torch.utils.data.Sampler):
    """The DataLoader's batches are the stream's: `batch` indices at a time from a DataStream started at
    `position`, endlessly. The loader may run ahead (workers, prefetch); what the run has *consumed* is
    counted by the caller in its own DataStream's position, which is what a snapshot saves."""

    def __init__(self, stream: DataStream, batch: int):
        self.size, self.seed, self.rank, self.world = stream.size, stream.seed, stream.rank, stream.world
        self.position, self.batch = stream.position, batch

    def __iter__(self):
        stream = DataStream(self.size, self.seed, self.rank, self.world, self.position)
        while True:
            yield stream.take(self.batch).tolist()


class TrainingState:
    """The run's mutable state. Per-rank parts (scheduler statistics, RNGs, data position) are gathered
    into lists indexed by rank, so rank 0 can write one snapshot that restores every rank."""

    def __init__(
        self,
        net: torch.nn.Module,
        ema: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler,
        sigma_gen: torch.Generator,
        stream: DataStream,
    ):
        self.net, self.ema, self.optimizer, self.scheduler = net, ema, optimizer, scheduler
        self.sigma_gen, self.stream = sigma_gen, stream
        self.cur_nimg, self.cur_tick, self.global_step = 0, 0, 0
        # The tick under way: where it started, and this rank's sums so far (loss, error, examples). A stop in the
        # middle of a tick saves them, so the resumed run ends that tick where an uninterrupted run would, with
        # the same statistics: ticks and snapshots stay on the uninterrupted run's grid.
        self.tick_start_nimg = 0
        self.tick_partial = torch.zeros(3, dtype=torch.float64)

    def _rng_state(self) -> dict:
        state = {
            "torch": torch.get_rng_state(),
            "sigma": self.sigma_gen.get_state(),
            "data_position": torch.tensor(self.stream.position),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def state_dict(self) -> dict:
        """The snapshot's state part (plain tensors and containers). Collective: every rank calls it."""
        rngs, schedulers = du.gather(self._rng_state()), du.gather(self.scheduler.state_dict())
        partial = du.gather(self.tick_partial.detach().cpu().clone())
        return {
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": schedulers[0],
            "scheduler_ranks": schedulers,
            "profile": self.scheduler.profile(),
            "progress": {
                "cur_nimg": self.cur_nimg,
                "cur_tick": self.cur_tick,
                "global_step": self.global_step,
                "tick_start_nimg": self.tick_start_nimg,
            },
            "tick_partial": partial,
            "rng": rngs,
        }

    def load_state_dict(self, state: dict, batch_per_rank: int) -> bool:
        """Restore from `state_dict()`'s output. With another number of ranks than the snapshot's, the model
        and schedule are restored but the random streams are re-seeded (the data position follows the step).
        Returns whether the continuation is exact (same number of ranks)."""
        rank, world = du.get_rank(), du.get_world_size()
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        per_rank = state.get("scheduler_ranks") or [state["scheduler"]]
        self.scheduler.load_state_dict(per_rank[rank] if len(per_rank) == world else state["scheduler"])
        self.cur_nimg, self.cur_tick, self.global_step = (
            int(state["progress"][k]) for k in ("cur_nimg", "cur_tick", "global_step")
        )
        # Snapshots written before a stop could fall mid-tick were all written at a tick's end.
        self.tick_start_nimg = int(state["progress"].get("tick_start_nimg", self.cur_nimg))
        partial = [torch.as_tensor(p, dtype=torch.float64) for p in state.get("tick_partial") or []]
        if len(partial) == world:
            self.tick_partial = partial[rank].clone()
        else:  # another number of ranks (or none saved): the tick's sums go to rank 0, as the all-reduce adds them
            total = torch.stack(partial).sum(0) if partial else torch.zeros(3, dtype=torch.float64)
            self.tick_partial = total if rank == 0 else torch.zeros(3, dtype=torch.float64)
        rngs = state["rng"]
        if len(rngs) != world:
            self.stream.position = self.global_step * batch_per_rank
            return False
        torch.set_rng_state(rngs[rank]["torch"])
        self.sigma_gen.set_state(rngs[rank]["sigma"])
        if "cuda" in rngs[rank] and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.set_rng_state(rngs[rank]["cuda"])
        self.stream.position = int(rngs[rank]["data_position"])
        return True
