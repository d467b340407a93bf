"""Bring your own data set (README "Your own data set"): a preset family made with `extends:` in a folder
of its own, the time-to-target harness on it with evaluation intervals that are not binary fractions,
custom metrics (one defined right here), reference caches keyed by the whole file, and the built-in
metrics for ±1 data against exact values."""

from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner

from benchmarks import common
from benchmarks import time_to_target as ttt
from evaluation import metrics
from evaluation.frechet import reference_stats
from tests.conftest import write_image_dataset


@metrics.metric(lower_is_better=True)
def magnetisation_gap(samples, data):
    """|mean spin of the samples − mean spin of the data| (a physical statistic a user might score by)."""
    spins = torch.where(samples >= 0, 1.0, -1.0)
    return {"magnetisation_gap": float((spins.mean() - data.mean()).abs())}


@metrics.metric(lower_is_better=False)
def agreement(samples, data):
    """Share of sample pixels that agree with the data's majority pixel: higher is better."""
    majority = torch.where(data.mean(0) >= 0, 1.0, -1.0)
    return {"agreement": float((torch.where(samples >= 0, 1.0, -1.0) == majority).float().mean())}


def test_eval_points_are_integer_examples():
    assert ttt.eval_points(128, 25.6) == [25600, 51200, 76800, 102400, 128000]
    assert ttt.eval_points(100, 30) == [30000, 60000, 90000, 100000]
    assert ttt.eval_points(0.16, 0.0512) == [51, 102, 154, 160]


def test_binary_stats_exact():
    """Data: all +1 except pixel (0, 0) = −1 in half the images. Samples: all +1."""
    data = torch.ones(4, 1, 2, 2)
    data[:2, 0, 0, 0] = -1
    out = metrics.binary_stats(torch.ones(3, 1, 2, 2), data)
    # marginals: P(+1) is 0.5 vs 1 at one of 4 pixels → mean |Δ| = 0.125.
    # pairs (right: (0,0)-(0,1), (1,0)-(1,1); down: (0,0)-(1,0), (0,1)-(1,1)): the data's E[x·y] is 0 for the
    # two pairs touching (0,0), 1 elsewhere; the samples' is 1 everywhere → mean |Δ| = 2/4.
    assert out == {"marginal_l1": 0.125, "pair_l1": 0.5}
    assert metrics.binary_stats(data, data) == {"marginal_l1": 0.0, "pair_l1": 0.0}


def test_train_copies_exact():
    data = torch.tensor([[1.0, -1.0], [-1.0, -1.0]]).view(2, 1, 1, 2)
    samples = torch.tensor([[0.9, -0.2], [0.3, 0.4], [-0.7, -1.0], [1.0, 1.0]]).view(4, 1, 1, 2)
    assert metrics.train_copies(samples, data) == {"train_copy_fraction": 0.5}  # rows 0 and 2 decode to copies
    images = torch.tensor([[0.0, 1.0]]).view(1, 1, 1, 2)  # continuous data: compared as uint8
    assert metrics.train_copies(images + 1e-4, images) == {"train_copy_fraction": 1.0}
    assert metrics.train_copies(images + 0.05, images) == {"train_copy_fraction": 0.0}


def test_metric_resolution_errors():
    assert metrics.resolve("binary-stats") is metrics.binary_stats
    assert metrics.resolve("tests.test_own_dataset:agreement") is agreement
    with pytest.raises(ValueError, match="unknown metric 'fd'; valid: binary-stats, train-copies"):
        metrics.resolve("fd")
    with pytest.raises(ValueError, match="cannot load it"):
        metrics.resolve("tests.test_own_dataset:nothing_here")


def test_reference_cache_key_is_the_whole_file(tmp_path):
    """Two data sets whose names differ only after a dot, and a data set rebuilt in place, get their own
    cache entries (the stem cut at the first dot made ising16-T2.3 and ising16-T2.5 share one)."""
    a = write_image_dataset(tmp_path / "ising16-T2.3.zip", n=8, res=8, labels=False, seed=0)[0]
    b = write_image_dataset(tmp_path / "ising16-T2.5.zip", n=8, res=8, labels=False, seed=1)[0]
    cache = tmp_path / "cache"
    ra, rb = (reference_stats(str(p), "lenet-digits", cache, log=lambda m: None) for p in (a, b))
    assert ra != rb and ra.name.startswith("ref-ising16-T2.3.zip-") and rb.name.startswith("ref-ising16-T2.5.zip-")
    assert reference_stats(str(a), "lenet-digits", cache, log=lambda m: None) == ra  # cached
    write_image_dataset(a, n=8, res=8, labels=False, seed=2)
    os.utime(a, ns=(os.stat(a).st_atime_ns, os.stat(a).st_mtime_ns + 10**9))
    assert reference_stats(str(a), "lenet-digits", cache, log=lambda m: None) != ra


def family(tmp_path, data):
    """Three presets in a folder of their own, each `extends:` a shipped one, as a new user writes them."""
    folder = tmp_path / "presets"
    folder.mkdir()
    for method in ("loguniform", "edm", "infonoise"):
        (folder / f"ising16-{method}.yaml").write_text(f"extends: digits-binary-{method}\ndata: {data}\n")
    return folder / "ising16"


TINY = [
    "--opt",
    "batch=8",
    "--opt",
    "network_kwargs.model_channels=8",
    "--opt",
    "network_kwargs.num_blocks=1",
    "--method-opt",
    "infonoise:scheduler_kwargs.warmup_steps=4",
    "--method-opt",
    "infonoise:scheduler_kwargs.refresh_every=4",
    "--method-opt",
    "infonoise:scheduler_kwargs.min_count=1",
]


def run_ttt(*args):
    return CliRunner().invoke(ttt.main, [str(a) for a in args], catch_exceptions=False)


def test_own_family_end_to_end_with_custom_metrics(tmp_path):
    data = write_image_dataset(tmp_path / "ising16.zip", n=64, res=16, labels=False, binary=True)[0]
    fam = family(tmp_path, data)
    common_args = [
        "--family",
        fam,
        "--seeds",
        "0",
        "--budget-kex",
        "0.16",
        "--eval-every-kex",
        "0.0512",
        "--eval-samples",
        "8",
        "--eval-steps",
        "2",
        "--eval-batch",
        "8",
        *TINY,
    ]
    # The digits network's attention at 4×4 names no level of a 16×16 one: a one-line error, not a silent loss.
    r = run_ttt(*common_args, "--outdir", tmp_path / "bad")
    assert r.exit_code != 0 and "attn_resolutions [4] name no level" in r.output and "16, 8" in r.output

    out = tmp_path / "bench"
    args = [
        *common_args,
        "--opt",
        "network_kwargs.attn_resolutions=[8]",
        "--metric",
        "binary-stats",
        "--metric",
        "tests.test_own_dataset:magnetisation_gap",
        "--metric",
        "tests.test_own_dataset:agreement",
        "--outdir",
        out,
    ]
    r = run_ttt(*args)
    assert r.exit_code == 0, r.output
    rows = common.read_rows(out / "results.csv")
    names = {"marginal_l1", "pair_l1", "magnetisation_gap", "agreement"}
    for method in ("loguniform", "edm", "infonoise"):
        got = {(row["target_kex"], row["metric_name"]) for row in rows if row["method"] == method}
        assert got == {(t, n) for t in ("0.051", "0.102", "0.154", "0.16") for n in names}
    settings = json.loads((out / "benchmark.json").read_text())
    assert settings["metric_directions"] == {
        "marginal_l1": True,
        "pair_l1": True,
        "magnetisation_gap": True,
        "agreement": False,
    }
    text = (out / "table.md").read_text()
    assert all(f"## {n}" in text for n in names) and "agreement (higher is better)" in text
    assert (out / "quality_vs_kex.png").stat().st_size > 0
    # Resumes without work, and refuses another metric set in the same folder.
    before = (out / "results.csv").read_text()
    assert run_ttt(*args).exit_code == 0 and (out / "results.csv").read_text() == before
    r = run_ttt(*common_args, "--opt", "network_kwargs.attn_resolutions=[8]", "--outdir", out)
    assert r.exit_code != 0 and "metrics" in r.output


def test_metric_none_trains_without_scoring(tmp_path):
    data = write_image_dataset(tmp_path / "ising16.zip", n=32, res=16, labels=False, binary=True)[0]
    out = tmp_path / "bench"
    r = run_ttt(
        "--family",
        family(tmp_path, data),
        "--methods",
        "loguniform",
        "--seeds",
        "0",
        "--budget-kex",
        "0.016",
        "--eval-every-kex",
        "0.016",
        "--eval-samples",
        "4",
        "--eval-steps",
        "2",
        *TINY,
        "--opt",
        "network_kwargs.attn_resolutions=[]",
        "--metric",
        "none",
        "--outdir",
        out,
    )
    assert r.exit_code == 0 and "without scoring" in r.output
    rows = common.read_rows(out / "results.csv")
    assert [(row["metric_name"], row["metric"]) for row in rows] == [("none", "nan")]
    assert (out / "runs" / "loguniform-s0").is_dir()
