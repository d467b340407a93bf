"""The training step as a GPU user expects it, proven on CPU with the same code: DDP ≡ the summed reduce it
replaced, the DataLoader's order ≡ the resumable stream's, bitwise resume with loader workers, bf16 close
to fp32, fp16 overflow skipped not fatal, and no host synchronisation inside the step."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from modalities import open_dataset
from models.networks import build_network
from tests.conftest import REPO, free_port, train_tiny, write_image_dataset
from torch_utils import checkpoint
from training import training_loop
from training.loss import DenoisingLoss
from training.state import DataStream, StreamBatchSampler


@pytest.fixture(scope="module")
def tiny_zip(tmp_path_factory):
    return write_image_dataset(tmp_path_factory.mktemp("gpu") / "tiny.zip", n=40, res=8)[0]


def run(data, outdir, *extra):
    """The tiny network for 6 steps, a tick (and a snapshot) every 2."""
    return train_tiny(outdir, data, "--tick", "0.016", "--snap", "1", "--lr-rampup", "0", *extra, duration="0.000048")


def test_ddp_equals_the_summed_reduce(tmp_path):
    """Two ranks, two accumulation rounds, three Adam steps: DDP with the sum hook and no_sync gives the
    parameters of the manual all-reduce the loop used before (to float rounding of the bucketed sum)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
        str(REPO / "tests" / "dist_ddp_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name, p in r0["manual"].items():
        torch.testing.assert_close(r0["ddp"][name], p, rtol=0, atol=1e-6)
        assert torch.equal(r0["ddp"][name], r1["ddp"][name])  # every rank holds the same parameters


def test_loader_order_is_the_stream_order(tiny_zip):
    """The DataLoader (with 2 workers and prefetch) yields exactly the batches the old loop read by indexing
    the stream: same indices, same pixels, from any starting position."""
    ds = open_dataset(tiny_zip, use_labels=True)
    for position in (0, 37):
        stream = DataStream(len(ds), seed=3, rank=1, world=2, position=position)
        loader = iter(
            torch.utils.data.DataLoader(
                ds,
                batch_sampler=StreamBatchSampler(stream, 6),
                num_workers=2,
                generator=torch.Generator().manual_seed(0),
            )
        )
        reference = DataStream(len(ds), seed=3, rank=1, world=2, position=position)
        for _ in range(12):  # past an epoch boundary
            x, labels = next(loader)
            idx = reference.take(6)
            assert torch.equal(x, torch.from_numpy(np.stack([ds[int(i)][0] for i in idx])))
            assert torch.equal(labels, torch.from_numpy(np.stack([ds[int(i)][1] for i in idx])))


def test_resume_is_bitwise_with_loader_workers(tmp_path, tiny_zip):
    run(tiny_zip, tmp_path / "a", "--workers", "2")
    run(tiny_zip, tmp_path / "b", "--workers", "2", "--stop-after-steps", "3")
    run(tiny_zip, tmp_path / "b", "--workers", "2")
    a, b = (
        checkpoint.load(checkpoint.latest_snapshot(d / "tiny-lognormal-edm")) for d in (tmp_path / "a", tmp_path / "b")
    )
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == 6
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])
    c = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "a" / "tiny-lognormal-edm"))
    run(tiny_zip, tmp_path / "c", "--workers", "0")  # the same run without workers: the same weights
    d = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "c" / "tiny-lognormal-edm"))
    assert all(torch.equal(c["net"][k], d["net"][k]) for k in c["net"])


def tiny_net_and_batch(channels: int):
    """The tiny DDPM++ (8×8, 16 channels, attention at 4×4) and a fixed batch x0, σ, noise of 16."""
    torch.manual_seed(0)
    net = build_network(
        "ddpmpp",
        "edm",
        data_shape=[channels, 8, 8],
        model_channels=16,
        channel_mult=[1, 2],
        num_blocks=1,
        attn_resolutions=[4],
        dropout=0.0,
    )
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(16, channels, 8, 8, generator=g)
    sigma = torch.rand(16, generator=g) * 3 + 0.05
    return net, x0, sigma, torch.randn(16, channels, 8, 8, generator=g)


def test_channels_last_on_cpu_is_the_same_network(tmp_path, tiny_zip):
    """--channels-last is a speed switch on CPU too (oneDNN): the same loss and gradients to float rounding
    (the convolutions may sum in another order), and a run with it trains and snapshots."""
    net, x0, sigma, noise = tiny_net_and_batch(3)
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        net.to(memory_format=fmt).zero_grad()
        loss, _ = DenoisingLoss("edm")(net, x0.contiguous(memory_format=fmt), sigma, noise=noise)
        loss.mean().backward()
        results.append((loss.detach(), [p.grad.clone() for p in net.parameters()]))
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    run(tiny_zip, tmp_path / "cl", "--channels-last")
    snap = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "cl" / "tiny-lognormal-edm"))
    assert snap["progress"]["global_step"] == 6 and all(torch.isfinite(v).all() for v in snap["net"].values())


def test_foreach_ema_update_is_the_per_tensor_lerp():
    """The EMA update is one foreach op; on CPU it gives the bits of the per-tensor lerp it replaced."""
    torch.manual_seed(0)
    kw = dict(data_shape=[1, 8, 8], model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4])
    net, ema = build_network("ddpmpp", "edm", **kw), build_network("ddpmpp", "edm", **kw)
    with torch.no_grad():
        expected = [p.detach().lerp(e, 0.93) for e, p in zip(ema.parameters(), net.parameters())]
    training_loop._ema_update(ema, net, 0.93)
    assert all(torch.equal(e, x) for e, x in zip(ema.parameters(), expected))


def test_bf16_step_is_finite_and_close_to_fp32():
    """One loss and gradient on a fixed batch under bf16 autocast: finite, the loss within 2 % of fp32's and the
    gradient within 5° of it (bf16 keeps 8 bits of mantissa; embeddings, output layers and loss stay fp32)."""
    net, x0, sigma, noise = tiny_net_and_batch(1)
    results = {}
    for precision in ("fp32", "bf16"):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = DenoisingLoss("edm")(net, x0, sigma, noise=noise)
        assert loss.dtype == torch.float32
        loss.mean().backward()
        results[precision] = (loss.mean().item(), torch.cat([p.grad.flatten() for p in net.parameters()]))
    (l32, g32), (l16, g16) = results["fp32"], results["bf16"]
    assert torch.isfinite(g16).all() and abs(l16 - l32) / l32 < 0.02
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > np.cos(np.radians(5))


def test_fp16_overflow_is_skipped_not_fatal(tmp_path, tiny_zip, monkeypatch):
    """An overflowing fp16 step (an inf loss) is skipped by the gradient scaler and the run goes on; the weights
    stay finite. A run whose every step overflows still stops, naming the last good snapshot."""
    real = training_loop.DenoisingLoss.__call__
    calls = {"n": 0}

    def overflow_once(self, net, x0, sigma, labels=None, noise=None):
        calls["n"] += 1
        loss, error = real(self, net, x0, sigma, labels, noise)
        return (loss * float("inf"), error) if calls["n"] == 3 else (loss, error)

    monkeypatch.setattr(training_loop.DenoisingLoss, "__call__", overflow_once)
    r = run(tiny_zip, tmp_path / "o", "--precision", "fp16")
    assert "Done" in r.output
    snap = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "o" / "tiny-lognormal-edm"))
    assert all(torch.isfinite(p).all() for p in snap["net"].values())


def test_no_host_sync_inside_the_step(tmp_path, tiny_zip, monkeypatch):
    """Between two steps that neither tick nor refresh, the project's code asks the device for nothing: no
    .item(), .cpu(), .tolist(), .numpy() or bool() of a tensor (counted by patching them)."""
    calls = []
    names = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")
    for name in names:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(str(REPO)) and "/tests/" not in caller and "site-packages" not in caller:
                calls.append((_name, caller, sys._getframe(1).f_lineno))
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    marks = []
    real_step = training_loop.schedulers.build

    def build(*a, **k):
        sched = real_step(*a, **k)
        inner = sched.step

        def step(global_step):
            marks.append(len(calls))  # syncs so far, at the end of each step's work
            return inner(global_step)

        sched.step = step
        return sched

    monkeypatch.setattr(training_loop.schedulers, "build", build)
    run(
        tiny_zip,
        tmp_path / "s",
        "--tick",
        "1",
        "--duration",
        "0.000096",
        "--scheduler",
        "infonoise",
        "--sched-opt",
        "warmup_steps=100",
        "--sched-opt",
        "refresh_every=100",
    )
    per_step = np.diff(marks)
    assert len(per_step) == 11 and per_step.tolist() == [0] * 11, calls
