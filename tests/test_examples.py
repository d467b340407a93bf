"""The examples/ trainers (diffusers' own DDPM step; a plain rectified-flow step), a few CPU steps each with a tiny
UNet2DModel: the InfoNoise run's draws leave the stock uniform draw in the direction its allocation says, and match
that allocation; the stock run stays uniform. Skipped where diffusers (the test and examples extras) is absent."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from infonoise import DiscreteVP, RectifiedFlow
from infonoise import information as info
from tests.conftest import REPO

pytest.importorskip("diffusers")
pytest.importorskip("sklearn")

TINY = ["--steps", "40", "--batch", "32", "--width", "8", "--num-bins", "16", "--min-count", "2"]
BLOCKS = 10  # tenths of the loop's time range: the stock draw puts 1/10 into each


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def block_probs(kind: str, table: torch.Tensor) -> torch.Tensor:
    """P(tenth b of the loop's time) under an InfoNoise table (σ-space CDF, §3.6): DDPM timesteps 100·b … 100·b + 99
    are the σ-cells between their edges; rectified flow's t ∈ [b/10, (b + 1)/10) is σ ∈ [t/(1 − t), ...)."""
    if kind == "ddpm":
        time = DiscreteVP(__import__("diffusers").DDPMScheduler(num_train_timesteps=1000).alphas_cumprod)
        inner = time.log_edges[100:1000:100].exp()
    else:
        t = torch.arange(1, BLOCKS, dtype=torch.float64) / BLOCKS
        inner = RectifiedFlow().to_sigma(t)
    cdf = torch.cat(
        [torch.zeros(1, dtype=torch.float64), info.cdf_at(inner, table), torch.ones(1, dtype=torch.float64)]
    )
    return cdf.diff()


def blocks_of(kind: str, times: torch.Tensor) -> torch.Tensor:
    return (times // 100 if kind == "ddpm" else (times * BLOCKS).long()).clamp(0, BLOCKS - 1)


@pytest.mark.parametrize("kind, script", [("ddpm", "diffusers_ddpm_digits"), ("rf", "rectified_flow_digits")])
def test_example_allocation_moves_where_the_profile_says(kind, script, tmp_path):
    example = load(script)
    run = example.main(
        [*TINY, "--timesteps", "infonoise", "--out", str(tmp_path), "--samples", "8", "--sample-steps", "6"]
    )
    assert run["tables"], "the sampler never refreshed"
    first = run["tables"][0][0]
    # the table in force at each later step: the last one built before it
    probs, drawn = [], []
    for step in range(first + 1, len(run["timesteps"])):
        table = [tab for s, tab in run["tables"] if s < step][-1]
        probs.append(block_probs(kind, table))
        drawn.append(run["timesteps"][step])
    predicted = torch.stack(probs).mean(0)  # what the profile says, averaged over the steps drawn from it
    drawn = torch.cat(drawn)
    observed = blocks_of(kind, drawn).bincount(minlength=BLOCKS).double() / len(drawn)
    favoured = predicted > 1 / BLOCKS  # where the allocation puts more than the stock draw
    p_fav, uniform = float(predicted[favoured].sum()), float(favoured.sum()) / BLOCKS
    sd = math.sqrt(p_fav * (1 - p_fav) / len(drawn))
    assert p_fav - uniform > 0.1  # the profile says: move away from uniform, towards these tenths ...
    assert abs(float(observed[favoured].sum()) - p_fav) < 4 * sd  # ... and the draws do, as much as it says
    assert float(observed[favoured].sum()) - uniform > 8 * sd
    assert (tmp_path / "infonoise-sampler.pt").exists() and (tmp_path / "samples.npz").exists()

    stock = example.main([*TINY, "--timesteps", "uniform", "--steps", "25"])
    assert stock["sampler"] is None and not stock["tables"]
    late = stock["timesteps"][first + 1 :].flatten()
    share = float((favoured[blocks_of(kind, late)]).double().mean())
    assert abs(share - uniform) < 4 * math.sqrt(uniform * (1 - uniform) / len(late))


def test_ddpm_benchmark_rows_resume_and_scoring_leaves_training_untouched(tmp_path, monkeypatch):
    """benchmarks/diffusers_ddpm.py: one row per arm × evaluation step, a rerun trains nothing, other settings in
    the same folder are refused, and the mid-run scoring (its own generator) does not change the trained weights."""
    from click.testing import CliRunner

    from benchmarks import common, diffusers_ddpm

    out = tmp_path / "bench"
    args = ["--arms", "uniform,infonoise", "--seeds", "0", "--steps", "4", "--eval-every", "2", "--batch", "8"]
    args += ["--width", "8", "--eval-samples", "16", "--sample-steps", "2", "--outdir", str(out)]
    res = CliRunner().invoke(diffusers_ddpm.main, args)
    assert res.exit_code == 0, res.output
    rows = common.read_rows(out / "results.csv")
    assert sorted((r["method"], int(r["step"])) for r in rows) == [
        ("infonoise", 2),
        ("infonoise", 4),
        ("uniform", 2),
        ("uniform", 4),
    ]
    assert all(math.isfinite(float(r["metric"])) and float(r["metric"]) > 0 for r in rows)
    assert float(rows[1]["kex"]) == 4 * 8 / 1e3
    assert "Target:" in (out / "table.md").read_text()

    monkeypatch.setattr(diffusers_ddpm.trainer, "main", lambda *a, **k: pytest.fail("a finished run was retrained"))
    res = CliRunner().invoke(diffusers_ddpm.main, args)
    assert res.exit_code == 0, res.output
    assert common.read_rows(out / "results.csv") == rows
    res = CliRunner().invoke(diffusers_ddpm.main, [*args, "--lr", "0.01"])
    assert res.exit_code != 0 and "other settings (lr)" in res.output
    monkeypatch.undo()

    example = load("diffusers_ddpm_digits")
    argv = ["--steps", "3", "--batch", "8", "--width", "8", "--timesteps", "infonoise", "--num-bins", "16"]
    argv += ["--min-count", "1", "--ema"]
    score = diffusers_ddpm.Scorer(samples=8, sample_steps=2, seed=0)
    scored = example.main(argv, on_step=lambda step, model, sampler, sched, ema: score(model, sched, None, ema))
    plain = example.main(argv)
    for a, b in zip(scored["model"].state_dict().values(), plain["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(scored["timesteps"], plain["timesteps"])
    for a, b in zip(scored["ema"].shadow_params, plain["ema"].shadow_params):
        assert torch.equal(a, b)
