"""Run under torchrun by test_training: 4 InfoNoise steps on 2 ranks, then dump each rank's state."""

import sys  # noqa: E402,I001
from pathlib import Path as _Path  # noqa: E402

# The repository root first: run as a script under torchrun, the framework is not installed (pyproject).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import sys

import torch

import modalities
from torch_utils import distributed as du
from training import options, training_loop

data, out = sys.argv[1], sys.argv[2]
du.init("cpu")
rank = du.get_rank()
from pathlib import Path  # noqa: E402

run_dir = Path(out) / "run"
if rank == 0:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "training_options.json").write_text("{}")
du.barrier()
flags = dict(
    data=data,
    arch="ddpmpp",
    network_kwargs=dict(model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[]),
    batch=8,
    duration=32e-6,
    tick=1.0,
    snap=0,
    sample_grid=0,
    device="cpu",
    scheduler="infonoise",
    scheduler_kwargs=dict(warmup_steps=2, refresh_every=2, min_count=1, num_bins=4, floor=0.5),
)
opts = options.resolve(None, flags, du.get_world_size())
summary = training_loop.run(run_dir, opts, **modalities.for_training(opts))
sched = summary["scheduler"]
torch.save(
    {
        "net": summary["net"].state_dict(),
        "step": summary["global_step"],
        "scheduler_state": sched.state_dict(),
        "table": sched.profile()["log_density"],
    },
    Path(out) / f"rank{rank}.pt",
)
du.shutdown()
