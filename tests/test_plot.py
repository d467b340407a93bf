"""`python -m analysis.plot`: PNGs from a schedule.jsonl written from real InfoNoise refresh records,
clear errors without one, and the fixed schedules' emphasis against closed forms (docs/method.md §1, §3.5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from analysis.plot import fixed_emphasis, load_options, load_schedule, main, plot_run, warmup_log_density
from schedulers import build
from schedulers import information as info


def write_run(run_dir: Path, refreshes: int = 4, weighting: str = "unit") -> Path:
    """A run directory as the training loop leaves it: InfoNoise driven with Gaussian-data MMSE
    D·c²σ²/(c²+σ²) (docs/method.md §7) whose scale c moves between refreshes, one JSON line per refresh."""
    run_dir.mkdir(parents=True, exist_ok=True)
    kwargs = dict(num_bins=32, fifo_size=4, min_count=1, warmup_steps=0, refresh_every=1)
    sched = build("infonoise", dict(weighting=weighting), **kwargs)
    with open(run_dir / "schedule.jsonl", "w") as f:
        for step in range(1, refreshes + 1):
            c = 0.2 * step
            sched.observe(sched.sigma, 64 * c**2 * sched.sigma**2 / (c**2 + sched.sigma**2))
            record = sched.step(step)
            assert record is not None
            f.write(json.dumps({"step": step, "kimg": step * 0.5, **record}) + "\n")
    (run_dir / "training_options.json").write_text(
        json.dumps(
            {
                "scheduler": "infonoise",
                "scheduler_kwargs": kwargs,
                "weighting": weighting,
                "sigma_data": 0.5,
                "sigma_min": 0.002,
                "sigma_max": 80.0,
                "endpoint": "auto",
            }
        )
    )
    return run_dir


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    with PIL.Image.open(path) as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100


@pytest.mark.parametrize("weighting", ["unit", "edm"])
def test_plot_run_writes_pngs(tmp_path, weighting):
    run = write_run(tmp_path / "run", weighting=weighting)
    paths = plot_run(run, tmp_path / "out")
    assert [p.name for p in paths] == ["schedule-evolution.png", "schedule-emphasis.png"]
    for p in paths:
        assert p.parent == tmp_path / "out"
        assert_png(p)


def test_cli_defaults_to_run_dir_and_handles_single_refresh(tmp_path):
    run = write_run(tmp_path / "run", refreshes=1)
    result = CliRunner().invoke(main, [str(run)])
    assert result.exit_code == 0, result.output
    for name in ("schedule-evolution.png", "schedule-emphasis.png"):
        assert str(run / name) in result.output
        assert_png(run / name)


def test_missing_schedule_is_a_clear_error(tmp_path):
    run = tmp_path / "lognormal-run"
    run.mkdir()
    with pytest.raises(FileNotFoundError, match="Only InfoNoise runs write schedule.jsonl"):
        plot_run(run)
    result = CliRunner().invoke(main, [str(run)])
    assert result.exit_code != 0
    assert str(run / "schedule.jsonl") in result.output and "Only InfoNoise" in result.output
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        plot_run(tmp_path / "nowhere")


def test_empty_schedule_and_truncated_last_line(tmp_path):
    run = write_run(tmp_path / "run", refreshes=2)
    text = (run / "schedule.jsonl").read_text()
    (run / "schedule.jsonl").write_text(text + text.splitlines()[0][:50])  # a run killed mid-write
    with pytest.warns(UserWarning, match="truncated"):
        assert len(load_schedule(run)) == 2
    (run / "schedule.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_schedule(run)


def test_fixed_emphasis_closed_forms():
    """Per unit ln σ: log-uniform under w ≡ 1 is flat at 1/ln(σ_max/σ_min); log-normal under λ_EDM is
    N(ln σ; P_mean, P_std)·λ(σ)·σ⁰ — the σ·π Jacobian turns π's 1/σ into a Gaussian in ln σ."""
    sigma = info.log_sigma_grid(0.002, 80.0, 64)
    curves = fixed_emphasis(sigma, "unit", 0.5)
    flat = torch.full_like(sigma, 1 / math.log(80.0 / 0.002))
    assert torch.allclose(curves["loguniform"], flat, rtol=1e-12)
    ln = sigma.log()
    expected = torch.exp(-0.5 * ((ln + 1.2) / 1.2) ** 2) * (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    expected = expected / (expected.sum() * info.log_step(sigma))
    assert torch.allclose(curves["lognormal"], expected, rtol=1e-12)


def test_warmup_column_is_the_lognormal_in_ln_sigma(tmp_path):
    """The heat map's first column, from the run's own InfoNoise config with floor 0: the EDM log-normal,
    i.e. a Gaussian in ln σ per unit ln σ (docs/method.md §3.5, §5 warm-up sampler π0)."""
    run = write_run(tmp_path / "run")
    options = load_options(run)
    sigma = torch.tensor(load_schedule(run)[-1]["sigma"], dtype=torch.float64)
    options["scheduler_kwargs"]["floor"] = 0.0
    expected = torch.exp(-0.5 * ((sigma.log() + 1.2) / 1.2) ** 2)
    expected = expected / (expected.sum() * info.log_step(sigma))
    flat = torch.full_like(sigma, 1 / math.log(80 / 0.002))  # today's automatic warm-up: log-uniform
    assert torch.allclose(warmup_log_density(options, sigma), flat, rtol=1e-12)
    assert torch.allclose(warmup_log_density(options, sigma, legacy=True), expected, rtol=1e-12)  # a v2 run
    options["scheduler_kwargs"]["warmup_sampler"] = "lognormal"
    assert torch.allclose(warmup_log_density(options, sigma), expected, rtol=1e-12)
    assert warmup_log_density(options, sigma[:-1]) is None  # another grid: no column rather than a wrong one


def test_evolution_marks_fallback_refreshes(tmp_path):
    """Discrete v2 records name the rule that set σ_p; the heat map marks them (the fallback apart). The same
    records without rule names (pre-v2 files) still plot, without the marks: the two PNGs differ."""
    from analysis.plot import plot_evolution

    records = [json.loads(line) for line in (write_run(tmp_path / "run").joinpath("schedule.jsonl")).open()]
    for i, r in enumerate(records):
        r["pivot_rule"], r["sigma_p"] = ("fallback", 0.2) if i < 2 else ("valley", 0.3)
    marked = plot_evolution(records, tmp_path / "marked.png")
    plain = plot_evolution([{k: v for k, v in r.items() if k != "pivot_rule"} for r in records], tmp_path / "plain.png")
    a, b = (
        torch.from_numpy(np.asarray(PIL.Image.open(p).convert("RGB")).reshape(-1, 3).copy()) for p in (marked, plain)
    )
    assert a.shape == b.shape and (a != b).any(dim=1).sum() > 50
    reds = ((a[:, 0] > 180) & (a[:, 1] < 80) & (a[:, 2] < 80)).sum()  # tab:red crosses only in the marked one
    assert reds > ((b[:, 0] > 180) & (b[:, 1] < 80) & (b[:, 2] < 80)).sum()
