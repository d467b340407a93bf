"""CUDA-only checks (marker `cuda`; skipped where no GPU is present — run by benchmarks/gpu_check.sh on one):
a training run with bf16, channels-last and TF32 on the GPU, resume bitwise on CUDA, and the sampler."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import train
from tests.conftest import TINY_NET, write_image_dataset
from torch_utils import checkpoint

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def run(*args):
    r = CliRunner().invoke(train.main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_cuda(tmp_path, precision):
    data = write_image_dataset(tmp_path / "d.zip", n=64, res=8)[0]
    args = [
        "--outdir",
        tmp_path,
        "--data",
        data,
        *TINY_NET,
        "--batch",
        "16",
        "--duration",
        "0.000128",
        "--tick",
        "0.032",
        "--sample-grid",
        "4",
        "--device",
        "cuda",
        "--precision",
        precision,
        "--channels-last",
        "--workers",
        "2",
        "--scheduler",
        "infonoise",
        "--sched-opt",
        "warmup_steps=2",
        "--sched-opt",
        "refresh_every=2",
        "--sched-opt",
        "min_count=1",
        "--sched-opt",
        "floor=0.5",
    ]
    run(*args, "--desc", "full")
    run(*args, "--desc", "split", "--stop-after-steps", "3")
    run(*args, "--desc", "split")
    a, b = (checkpoint.load(checkpoint.latest_snapshot(tmp_path / d)) for d in ("full", "split"))
    assert all(torch.isfinite(v).all() for v in a["net"].values())
    assert a["profile"] is not None
    if precision == "fp32":  # deterministic kernels are not guaranteed under autotuning for the others
        assert all(torch.allclose(a["net"][k], b["net"][k], atol=1e-5) for k in a["net"])
