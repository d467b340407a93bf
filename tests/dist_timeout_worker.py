"""Run by test_training under torchrun: rank 1 hangs (as a stopped process would) while rank 0 waits in a
collective; with --dist-timeout-like `timeout_s` the wait ends in an error instead of 30 minutes."""

import sys  # noqa: E402,I001
from pathlib import Path as _Path  # noqa: E402

# The repository root first: run as a script under torchrun, the framework is not installed (pyproject).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import sys
import time

import torch

from torch_utils import distributed as du

du.init("cpu", timeout_s=float(sys.argv[1]))
if du.get_rank() == 1:
    time.sleep(60)
start = time.time()
try:
    du.all_reduce_sum(torch.ones(1))
except Exception as e:  # noqa: BLE001 — the point is that it ends
    print(f"rank 0 gave up after {time.time() - start:.0f} s: {type(e).__name__}", flush=True)
    sys.exit(3)
