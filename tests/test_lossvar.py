"""`lossvar` (Improved DDPM's loss-second-moment importance sampling on the log-σ grid, docs/method.md §9): the
allocation is √mean(ℓ²) per bin plus the uniform share, the importance weights make the objective exactly the
log-uniform one, warm-up lasts until every bin holds its history, the loop feeds it the per-sample training
loss (not the raw error), and it trains through the registry."""

from __future__ import annotations

import math

import torch

import schedulers
from schedulers import information as info
from tests.conftest import train_tiny, write_image_dataset

M = 16


def fed(errors_per_bin, history=10):
    s = schedulers.build("lossvar", num_bins=M, history=history)
    for _ in range(history):
        s.observe(s.sigma, errors_per_bin)
    return s


def test_allocation_is_rms_error_plus_uniform_share():
    e = torch.linspace(1, 4, M, dtype=torch.float64)
    s = fed(e)
    s.step(1)
    masses = info.bin_masses(s.table)
    expect = 0.999 * e / e.sum() + 0.001 / M  # every entry of bin k is e_k: √mean(e²) = e_k
    torch.testing.assert_close(masses, expect, rtol=1e-12, atol=1e-15)


def test_importance_weights_make_the_objective_log_uniform():
    """Σ_k P(bin k)·w_k·ℓ_k = (1/M)·Σ_k ℓ_k for any per-bin loss ℓ: E_p[w·ℓ] = E_q[ℓ], exactly."""
    s = fed(torch.rand(M, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1)
    s.step(1)
    loss = torch.rand(M, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 7
    w = s.importance(s.sigma.float()).double()
    p = info.bin_masses(s.table)
    assert math.isclose(float((p * w * loss).sum()), float(loss.mean()), rel_tol=1e-6)
    draws = s.sample(200000, torch.Generator().manual_seed(2))  # and by sampling
    k = info.bin_index(draws, 0.002, 80.0, M)
    mc = (s.importance(draws).double() * loss[k]).mean()
    assert abs(float(mc) - float(loss.mean())) / float(loss.mean()) < 0.02


def test_warmup_until_every_bin_holds_its_history():
    s = schedulers.build("lossvar", num_bins=M, history=10)
    assert s.importance(torch.tensor([1.0])) is None
    for step in range(1, 10):
        s.observe(s.sigma, torch.ones(M))
        assert s.step(step) is None
    s.observe(s.sigma, torch.ones(M))
    assert s.step(10)["refresh"] == 1 and s.profile() is None


def test_trains_through_the_registry(tmp_path):
    assert "lossvar" in schedulers.names()
    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8)[0]
    r = train_tiny(
        tmp_path,
        data,
        "--tick",
        "0.32",
        "--scheduler",
        "lossvar",
        "--sched-opt",
        "num_bins=8",
        "--sched-opt",
        "history=2",
        "--weighting",
        "unit",
        batch="32",
        duration="0.000640",
    )
    assert "LossVar(M=8" in r.output


def test_the_loop_feeds_the_training_loss_before_the_importance_weight(tmp_path, monkeypatch):
    """With the EDM weighting ℓ = λ(σ)·e ≠ e: lossvar must see ℓ (the term it importance-samples), unweighted
    by its own q/p; InfoNoise keeps seeing e."""
    from training import training_loop

    returned, seen = [], []
    real_loss, real_observe = training_loop.DenoisingLoss.__call__, schedulers.lossvar.LossVar.observe

    def loss_call(self, *a, **k):
        out = real_loss(self, *a, **k)
        returned.append(tuple(t.detach().clone() for t in out))
        return out

    def observe(self, sigma, values):
        seen.append(values.clone())
        return real_observe(self, sigma, values)

    monkeypatch.setattr(training_loop.DenoisingLoss, "__call__", loss_call)
    monkeypatch.setattr(schedulers.lossvar.LossVar, "observe", observe)
    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8)[0]
    args = ["--scheduler", "lossvar", "--sched-opt", "num_bins=4", "--sched-opt", "history=1", "--weighting", "edm"]
    train_tiny(tmp_path, data, *args, batch="16", duration="0.000064")
    assert len(seen) == len(returned) == 4
    for (loss, error), v in zip(returned, seen):
        assert torch.equal(v, loss) and not torch.allclose(v, error)
