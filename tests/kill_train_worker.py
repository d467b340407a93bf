"""Run by test_training's kill-and-resume test: train.py's command, killed (os._exit, as kill -9 leaves it)
at one point: `step:N` after optimizer step N, `in-write:N` in the middle of the snapshot write at step N
(a partial temporary file left behind), `after-write:N` right after that snapshot is in place."""

import sys  # noqa: E402,I001
from pathlib import Path as _Path  # noqa: E402

# The repository root first: run as a script under torchrun, the framework is not installed (pyproject).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import os
import sys

import torch

import schedulers
import train
from torch_utils import checkpoint

torch.set_num_threads(1)  # as the in-process runs of the test (tests/conftest.py): the same float sums
where, n = sys.argv[1].split(":")
n = int(n)
real_build, real_save = schedulers.build, checkpoint.atomic_save

if where == "step":

    def build(*a, **kw):
        sched = real_build(*a, **kw)
        real_step = sched.step

        def step(global_step):
            out = real_step(global_step)
            if global_step == n:
                os._exit(137)
            return out

        sched.step = step
        return sched

    schedulers.build = build
else:

    def atomic_save(obj, path):
        if obj["progress"]["global_step"] != n:
            return real_save(obj, path)
        if where == "in-write":  # what a kill during torch.save leaves: a torn temporary file
            tmp = path.parent / f".{path.name}.killed.tmp"
            torch.save(obj, tmp)
            with open(tmp, "r+b") as f:
                f.truncate(os.path.getsize(tmp) // 2)
            os._exit(137)
        real_save(obj, path)
        os._exit(137)

    checkpoint.atomic_save = atomic_save
train.main(sys.argv[2:])
