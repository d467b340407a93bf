"""Smoke tests of the benchmark harness at a tiny size: outputs written, resumption without retraining,
seed-determinism of the generate-and-evaluate path. No test asserts a timing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fid
from benchmarks import common, infogrid_nfe, scheduler_overhead, throughput
from benchmarks import time_to_target as ttt
from evaluation import evaluate
from tests.conftest import write_image_dataset
from torch_utils import checkpoint
from training import training_loop

TINY = [
    "--opt",
    "batch=32",
    "--opt",
    "network_kwargs.model_channels=8",
    "--opt",
    "network_kwargs.channel_mult=[1,2]",
    "--opt",
    "network_kwargs.num_blocks=1",
    "--opt",
    "network_kwargs.attn_resolutions=[]",
    "--method-opt",
    "infonoise:scheduler_kwargs.warmup_steps=10",
    "--method-opt",
    "infonoise:scheduler_kwargs.refresh_every=10",
    "--method-opt",
    "infonoise:scheduler_kwargs.min_count=1",
    "--method-opt",
    "infonoise:scheduler_kwargs.floor=0.5",
]  # so a tiny run refreshes and has a profile


def ttt_args(outdir, data, *extra):
    return [
        "--family",
        "digits",
        "--seeds",
        "0",
        "--budget-kex",
        "2",
        "--eval-every-kex",
        "1",
        "--eval-samples",
        "16",
        "--eval-steps",
        "2",
        "--eval-batch",
        "16",
        "--opt",
        f"data={data}",
        *TINY,
        "--outdir",
        str(outdir),
        *extra,
    ]


def invoke(command, args, ok=True):
    result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One tiny time-to-target benchmark (3 methods x 1 seed x 2 evaluations of 1 kEx) shared by the tests."""
    root = tmp_path_factory.mktemp("ttt")
    data = write_image_dataset(root / "tiny.zip", n=64, res=8, labels=False)[0]
    out = root / "bench"
    invoke(ttt.main, ttt_args(out, data))
    return out, data


def test_every_invocation_is_logged_with_the_commit_that_ran_it(bench):
    """invocations.jsonl: one line per invocation (benchmark.json keeps only the latest settings), naming the
    commit of the code — what 'run from a frozen commit' is checked by."""
    import json
    import shlex
    import subprocess

    out, _ = bench
    before = [json.loads(x) for x in (out / "invocations.jsonl").read_text().splitlines()]
    prog, *args = shlex.split(before[-1]["command"])[2:]  # the recorded command reruns as written
    assert prog == "benchmarks.time_to_target"
    invoke(ttt.main, args)  # everything done already: a second invocation, nothing trained
    lines = [json.loads(x) for x in (out / "invocations.jsonl").read_text().splitlines()]
    assert len(lines) == len(before) + 1 and lines[-1]["command"] == before[-1]["command"]
    assert lines[-1]["methods"] == ["loguniform", "edm", "infonoise"]
    assert lines[-1]["seeds"] == [0] and str(out) in lines[-1]["command"] and lines[-1]["machine"]
    root = Path(ttt.__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert lines[-1]["code"].split("+")[0] == head.stdout.strip()
    else:
        assert lines[-1]["code"] is None


def latest(out, method):
    return checkpoint.latest_snapshot(out / "runs" / f"{method}-s0")


def test_time_to_target_outputs(bench):
    out, _ = bench
    rows = common.read_rows(out / "results.csv")
    assert sorted((r["method"], r["target_kex"]) for r in rows) == sorted(
        (m, t) for m in ("loguniform", "edm", "infonoise") for t in ("1", "2")
    )
    for r in rows:
        assert math.isfinite(float(r["metric"])) and float(r["metric"]) > 0
        assert float(r["target_kex"]) <= float(r["kex"]) < float(r["target_kex"]) + 0.032  # within one batch
        assert r["metric_name"] == "fd_lenet-digits"
    assert {r["scheduler"] for r in rows} == {"loguniform", "lognormal", "infonoise"}
    table = (out / "table.md").read_text()
    for text in ("kEx@target", "speedup vs best fixed", "log-uniform", "EDM log-normal (transfer)", "InfoNoise"):
        assert text in table
    assert (out / "quality_vs_kex.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for m in ("loguniform", "edm", "infonoise"):  # evaluated snapshots pruned, the latest kept
        assert [p.name for p in checkpoint.list_snapshots(out / "runs" / f"{m}-s0")] == ["network-snapshot-000002.pt"]
    assert checkpoint.load(latest(out, "infonoise"))["profile"] is not None  # --method-opt reached the scheduler


def test_rescore_reproduces_the_final_evaluation_and_takes_fresh_seeds(bench, monkeypatch):
    """--rescore-samples on the benchmark's own seeds gives exactly its last CSV scores; other seeds differ."""
    out, _ = bench
    final = {r["method"]: float(r["metric"]) for r in common.read_rows(out / "results.csv") if r["target_kex"] == "2"}
    invoke(ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 0])
    rows = common.read_rows(out / "rescore.csv")
    assert {r["method"]: float(r["metric"]) for r in rows} == pytest.approx(final, rel=1e-6)
    assert "InfoNoise" in (out / "rescore.md").read_text()
    invoke(ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 100])
    fresh = {r["method"]: float(r["metric"]) for r in common.read_rows(out / "rescore.csv")}
    assert all(fresh[m] != pytest.approx(final[m], rel=1e-6) for m in final)
    monkeypatch.setattr(ttt.Evaluator, "__call__", lambda self, snap: pytest.fail("rescored a finished run"))
    invoke(ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 100])  # resumable


def test_rescore_with_other_metrics_adds_their_rows(bench, tmp_path, monkeypatch):
    """--metric with --rescore-samples scores the final snapshots on those metrics (e.g. the fine structure the
    curves did not score) beside the benchmark's own rows, on the same fresh seeds; resumable per metric set."""
    import shutil

    from datafiles.base import model_space
    from evaluation.metrics import binary_stats
    from sampling.generation import build_sigmas, generate_batches, load_network

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    invoke(ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 100])
    invoke(
        ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 100, "--metric", "binary-stats"]
    )
    rows = common.read_rows(out / "rescore.csv")
    for m in ("loguniform", "edm", "infonoise"):
        assert sorted(r["metric_name"] for r in rows if r["method"] == m) == [
            "fd_lenet-digits",
            "marginal_l1",
            "pair_l1",
        ]
    # the values are binary_stats of the samples of seeds 100..115 against the training set
    net, profile = load_network(str(latest(out, "edm")), "cpu")
    sigmas = build_sigmas(net, "edm", 2, profile=profile, device="cpu")
    samples = torch.cat([x for _, _, x, _ in generate_batches(net, list(range(100, 116)), 16, sigmas, "heun")])
    images = write_image_dataset(tmp_path / "same.zip", n=64, res=8, labels=False)[1]  # the fixture's images
    data = model_space(torch.as_tensor(images))
    want = binary_stats(samples, data)
    got = {
        r["metric_name"]: float(r["metric"]) for r in rows if r["method"] == "edm" and r["metrics"] == "binary-stats"
    }
    assert got == pytest.approx(want, rel=1e-9)
    assert "pair_l1" in (out / "rescore.md").read_text()
    monkeypatch.setattr(ttt.Evaluator, "__call__", lambda self, snap: pytest.fail("rescored a finished run"))
    invoke(
        ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 100, "--metric", "binary-stats"]
    )
    assert len(common.read_rows(out / "rescore.csv")) == len(rows)  # nothing dropped, nothing doubled


def test_rescore_without_the_training_set_is_one_error_line(bench, tmp_path):
    """Rescoring from another folder, where the runs' relative data path does not resolve: one Error: line that
    names the path and says where to run from — no traceback, nothing written."""
    import json
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    for f in (out / "runs").glob("*/training_options.json"):
        f.write_text(json.dumps({**json.loads(f.read_text()), "data": "data/not-here.zip"}))
    before = (out / "rescore.csv").read_bytes() if (out / "rescore.csv").exists() else None
    result = invoke(ttt.main, ["--outdir", out, "--rescore-samples", 16], ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "data/not-here.zip" in line and "run from the folder they were trained in" in line
    assert ((out / "rescore.csv").read_bytes() if (out / "rescore.csv").exists() else None) == before


def test_rescore_keeps_rows_of_runs_no_longer_there(bench, tmp_path):
    """A run folder deleted since an earlier rescoring (or a method not in this one): its rescore.csv row
    stays, beside the new ones, and the report still lists it."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    gone = dict(method="edm2", seed=0, kex=2.0, metric=1.5, metric_name="fd_lenet-digits", samples=16)
    common.write_rows(
        out / "rescore.csv",
        [dict(gone, first_seed=100, snapshot="network-snapshot-000002.pt")],
        ["method", "seed", "kex", "metric", "metric_name", "samples", "first_seed", "snapshot"],
    )
    invoke(ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 100])
    rows = common.read_rows(out / "rescore.csv")
    assert sorted(r["method"] for r in rows) == ["edm", "edm2", "infonoise", "loguniform"]
    assert "EDM2 learned weighting" in (out / "rescore.md").read_text()


def test_summary_target_and_speedup():
    rows = [
        dict(method=m, seed=0, kex=k, target_kex=k, metric=v, metric_name="fd")
        for m, vals in {"loguniform": [9, 7, 6], "edm": [8, 5, 4], "infonoise": [6, 4, 3]}.items()
        for k, v in zip((10, 20, 30), vals)
    ]
    s = ttt.summarize(rows)
    assert s["target_method"] == "edm" and s["target"] == 4
    assert s["methods"]["edm"]["kex_at_target"] == 30 and s["methods"]["infonoise"]["kex_at_target"] == 20
    assert s["methods"]["infonoise"]["speedup"] == pytest.approx(1.5)
    assert (
        s["methods"]["loguniform"]["kex_at_target"] is None
        and "not reached" in s["methods"]["loguniform"]["speedup_text"]
    )


def test_kex_at_target_per_seed_is_each_seeds_own_crossing():
    """Two seeds of InfoNoise reach the common target (4, the EDM seed-mean best) at 10 and 20 kEx on their
    own curves; one seed of log-uniform never does."""
    vals = {("edm", 0): [8, 5, 4], ("edm", 1): [8, 5, 4], ("infonoise", 0): [4, 3, 3], ("infonoise", 1): [6, 4, 3]}
    vals |= {("loguniform", 0): [9, 7, 6], ("loguniform", 1): [9, 7, 3]}
    rows = [
        dict(method=m, seed=seed, kex=k, target_kex=k, metric=v, metric_name="fd")
        for (m, seed), vs in vals.items()
        for k, v in zip((10, 20, 30), vs)
    ]
    s = ttt.summarize(rows)
    assert s["target"] == 4 and s["methods"]["infonoise"]["kex_at_target_per_seed"] == [10, 20]
    assert s["methods"]["loguniform"]["kex_at_target_per_seed"] == [
        None,
        pytest.approx(20 + 10 * np.log(7 / 4) / np.log(7 / 3)),
    ]
    assert ttt.per_seed_text([10, 20]) == "15 ± 5 (2/2)" and ttt.per_seed_text([None, None]) == "none (0/2)"


def test_schedule_history_groups_refreshes_by_rule_and_value():
    recs = [dict(step=k, sigma_p=0.2, pivot_rule="fallback", prominence=p) for k, p in ((100, 0.0), (150, 0.2))]
    recs += [dict(step=k, sigma_p=0.299, pivot_rule="valley", prominence=p) for k, p in ((200, 0.5), (250, 0.8))]
    recs += [dict(step=300, sigma_p=0.325, pivot_rule="valley", prominence=0.9), dict(step=350, refresh=8)]
    assert ttt.schedule_history(recs) == (
        "fallback 0.2 (steps 100–150) → valley 0.299 (steps 200–250, prominence 0.50–0.80) → "
        "valley 0.325 (step 300, prominence 0.90–0.90)"
    )
    assert ttt.schedule_history([dict(step=1, refresh=1)]) == ""


def test_kex_at_target_interpolates_between_evaluations():
    curve = [dict(kex=k, mean=v) for k, v in ((10, 6.0), (20, 4.5), (30, 3.0))]
    t = math.log(4.5 / 4) / math.log(4.5 / 3)  # ln-score crossing between 20 and 30
    assert ttt.crossing_kex(curve, 4.0) == pytest.approx(20 + 10 * t)
    assert ttt.crossing_kex(curve, 6.5) == 10 and ttt.crossing_kex(curve, 4.5) == 20
    assert ttt.crossing_kex(curve, 2.0) is None


def test_time_to_target_resumes_without_retraining(bench, monkeypatch):
    out, data = bench
    calls = {"run": 0, "eval": 0}
    run, score = training_loop.run, evaluate.evaluate_snapshot

    def counted_run(*a, **kw):
        calls["run"] += 1
        return run(*a, **kw)

    def counted_eval(*a, **kw):
        calls["eval"] += 1
        return score(*a, **kw)

    monkeypatch.setattr(training_loop, "run", counted_run)
    monkeypatch.setattr(evaluate, "evaluate_snapshot", counted_eval)
    csv_text = (out / "results.csv").read_text()
    invoke(ttt.main, ttt_args(out, data))
    assert calls == {"run": 0, "eval": 0} and (out / "results.csv").read_text() == csv_text

    # A benchmark killed between training a segment and writing its row: only the evaluation is redone.
    rows = common.read_rows(out / "results.csv")
    lost = next(r for r in rows if r["method"] == "infonoise" and r["target_kex"] == "2")
    common.write_rows(out / "results.csv", [r for r in rows if r is not lost], ttt.FIELDS)
    snap = latest(out, "infonoise")
    mtime = snap.stat().st_mtime_ns
    invoke(ttt.main, ttt_args(out, data))
    assert calls == {"run": 1, "eval": 1}
    assert snap.stat().st_mtime_ns == mtime  # no training step: the snapshot was not rewritten
    again = next(
        r for r in common.read_rows(out / "results.csv") if r["method"] == "infonoise" and r["target_kex"] == "2"
    )
    assert (again["metric"], again["step"], again["kex"]) == (lost["metric"], lost["step"], lost["kex"])

    result = invoke(ttt.main, ttt_args(out, data, "--eval-samples", "32"), ok=False)
    assert result.exit_code != 0 and "other settings" in result.output and "eval_samples" in result.output


def test_evaluate_snapshot_deterministic(bench):
    out, _ = bench
    snap, ref = latest(out, "edm"), next(out.glob("ref-tiny.zip-*-all-lenet-digits.npz"))
    fd_a = evaluate.evaluate_snapshot(snap, ref, range(16), steps=2, batch=16)
    fd_again = evaluate.evaluate_snapshot(snap, ref, "0-15", steps=2, batch=16)
    fd_b = evaluate.evaluate_snapshot(snap, ref, range(16), steps=2, batch=5)
    fd_c = evaluate.evaluate_snapshot(snap, ref, range(16, 32), steps=2, batch=16)
    assert math.isfinite(fd_a) and fd_a > 0
    assert fd_again == fd_a  # same snapshot and seeds: the same FD, bit for bit
    # Other batching: the same latents, but float32 convolutions round differently per batch shape,
    # which can flip an occasional pixel by one uint8 level; the FD moves in the 5th digit, not more.
    assert fd_b == pytest.approx(fd_a, rel=1e-3)
    assert fd_c != pytest.approx(fd_a, rel=1e-3)  # other seeds: other samples
    result = invoke(
        fid.cli, ["gen", "--network", snap, "--ref", ref, "--seeds", "0-15", "--steps", "2", "--batch", "16"]
    )
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(fd_a, rel=1e-5)
    fd_info = evaluate.evaluate_snapshot(latest(out, "infonoise"), ref, range(16), steps=3, grid="infogrid", batch=16)
    assert math.isfinite(fd_info)
    with pytest.raises(ValueError, match="different detectors"):
        evaluate.evaluate_snapshot(snap, ref, range(16), steps=2, detector="lenet-mnist")


def test_infogrid_nfe(bench, tmp_path):
    out, _ = bench
    args = [
        "--network",
        latest(out, "infonoise"),
        "--steps",
        "2,3",
        "--seeds",
        "0-15",
        "--probe-samples",
        "4",
        "--batch",
        "16",
        "--outdir",
        tmp_path,
        "--ref",
        next(out.glob("ref-tiny.zip-*-all-lenet-digits.npz")),
        "--binarize",
        "off",
    ]
    invoke(infogrid_nfe.main, args)
    rows = common.read_rows(tmp_path / "infogrid_nfe.csv")
    assert sorted((r["grid"], r["nfe"]) for r in rows) == sorted((g, n) for g in infogrid_nfe.GRIDS for n in ("3", "5"))
    assert all(np.isfinite(float(r["fd"])) for r in rows)
    for r in rows:  # each row's grid: N levels, decreasing, ending at 0
        sig = [float(s) for s in r["sigmas"].split()]
        assert len(sig) == int(r["steps"]) + 1 and sig[-1] == 0 and sig == sorted(sig, reverse=True)
    assert (tmp_path / "infogrid_nfe.png").is_file() and "infogrid-probed" in (tmp_path / "infogrid_nfe.md").read_text()
    invoke(infogrid_nfe.main, args)  # rerun: every row is reused
    assert len(common.read_rows(tmp_path / "infogrid_nfe.csv")) == len(rows)


def test_scheduler_overhead_quick(tmp_path):
    invoke(scheduler_overhead.main, ["--quick", "--batch", "16", "--out", tmp_path / "overhead.csv"])
    rows = common.read_rows(tmp_path / "overhead.csv")
    ops = {(r["scheduler"], r["phase"], r["op"]) for r in rows}
    for needed in [
        ("infonoise", "steady", "sample"),
        ("infonoise", "steady", "observe"),
        ("infonoise", "steady", "one refresh"),
        ("lognormal", "fixed", "sample"),
    ]:
        assert needed in ops
    assert all(float(r["median_us"]) > 0 and math.isfinite(float(r["share_pct"])) for r in rows)


def test_throughput_quick(tmp_path):
    invoke(throughput.main, ["--quick", "--presets", "digits", "--batch", "16", "--out-dir", tmp_path])
    rows = common.read_rows(tmp_path / "throughput.csv")
    train = [r for r in rows if r["kind"] == "train"]
    assert len(train) == 1 and train[0]["batch"] == "16" and float(train[0]["img_per_s"]) > 0
    assert sorted(int(r["nfe"]) for r in rows if r["kind"] == "sample") == [3, 5]
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_rival_methods_resolve_per_family():
    """The harness trains the rival schedules beside the others: derived from a family's base preset where the
    recipe is only a scheduler/weighting swap, or the family's own preset."""
    assert ttt.method_preset("digits", "lossvar") == ("digits", {"scheduler": "lossvar"})
    assert ttt.method_preset("digits", "edm2") == ("digits", {"weighting": "edm2"})
    assert ttt.method_preset("digits-binary", "lossvar") == ("digits-binary-lossvar", {})
    assert ttt.method_preset("digits-binary", "edm2") == ("digits-binary-edm2", {})
    assert not ttt.METHODS["lossvar"]["fixed"] and not ttt.METHODS["edm2"]["fixed"]


@pytest.mark.parametrize(
    "method, cap",
    [
        ("infonoise-bayes", {"mmse_cap": "coordinate-bayes"}),
        ("infonoise-nocap", {"mmse_cap": "none"}),
        ("infonoise-nogate", {"mmse_cap": "coordinate-bayes", "sigma_p": 0.002}),
    ],
)
def test_cap_methods_are_the_infonoise_preset_with_only_the_cap_set(tmp_path, method, cap):
    """infonoise-bayes (the cap on any endpoint), infonoise-nocap (the rule alone) and infonoise-nogate (the cap, σ_p
    at σ_min) train each family's InfoNoise preset with only those options set; a --method-opt still overrides."""
    assert ttt.method_preset("dna-cpu", method) == ttt.method_preset("dna-cpu", "infonoise")
    assert ttt.method_preset("digits-binary", method) == ("digits-binary-infonoise", {})
    data = tmp_path / "d.tsv"
    data.write_text("sequence\tTAG\n" + "".join(f"{'ACGT' * 8}\tc{i % 2}\n" for i in range(8)))
    over = {"data": str(data)}
    plain = ttt.resolve_run("dna-cpu", "infonoise", 0, 1.0, 1.0, over, {}, None)
    capped = ttt.resolve_run("dna-cpu", method, 0, 1.0, 1.0, over, {}, None)
    assert capped["scheduler_kwargs"] == {**plain["scheduler_kwargs"], **cap}
    assert {k: v for k, v in capped.items() if k not in ("scheduler_kwargs", "desc", "method")} == {
        k: v for k, v in plain.items() if k not in ("scheduler_kwargs", "desc", "method")
    }
    mine = {method: {"scheduler_kwargs": {"mmse_cap": "auto"}}}
    assert ttt.resolve_run("dna-cpu", method, 0, 1.0, 1.0, over, mine, None)["scheduler_kwargs"]["mmse_cap"] == "auto"


def test_throughput_of_the_real_loop(tmp_path):
    """--precisions times training_loop.run itself (synthetic data of the preset's shape when its data is not
    here): a row per precision with the loader's share and no host sync per step."""
    invoke(
        throughput.main,
        [
            "--presets",
            "digits",
            "--precisions",
            "fp32",
            "--steps",
            "2",
            "--repeats",
            "1",
            "--batch",
            "16",
            "--out-dir",
            tmp_path,
        ],
    )
    rows = common.read_rows(tmp_path / "throughput_loop.csv")
    assert [(r["presets"], r["precision"], r["host_syncs_per_step"]) for r in rows] == [("digits", "fp32", "0")]
    assert 0 <= float(rows[0]["loader_share_pct"]) < 100 and float(rows[0]["steps_per_s"]) > 0
    assert "| cpu | digits | fp32 |" in (tmp_path / "throughput.md").read_text()


def test_edm_side_by_side_alternates_and_takes_medians(tmp_path, monkeypatch):
    """Ours, ours with channels-last and EDM's step are timed in turn each round (a drifting machine slows all
    three alike); the reported ratios are medians of the per-round ratios; the files name each round."""
    calls, ours = [], iter([2.0, 1.8, 3.0, 2.7, 2.2, 2.0])
    edm = iter([2.0, 3.0, 2.0])

    def fake_loop(preset, device, precision, batch, steps, repeats, root, **extra):
        calls.append("cl" if extra.get("channels_last") else "ours")
        assert (preset, device, precision, batch, extra["augment"]) == ("cifar10", "cpu", "fp32", 32, 0.0)
        return dict(steps_per_s=1 / next(ours))

    def fake_edm(repo, shape, batch, threads, steps, repeats, warmup):
        calls.append("edm")
        return next(edm)

    monkeypatch.setattr(throughput, "time_loop", fake_loop)
    monkeypatch.setattr(throughput, "time_edm", fake_edm)
    r = throughput.side_by_side("edm-checkout", 32, 1, 1, 3, 1, tmp_path, tmp_path)
    assert calls == ["ours", "cl", "edm"] * 3
    assert r["ratio"] == pytest.approx(1.0) and r["ratio_cl"] == pytest.approx(0.9)  # {1, 1, 1.1}, {0.9, 0.9, 1}
    assert len(common.read_rows(tmp_path / "edm_side_by_side.csv")) == 3
    throughput.loop_report([], tmp_path, r)
    assert "ratio ours/EDM = 1.000" in (tmp_path / "edm_side_by_side.md").read_text()
    assert not (tmp_path / "throughput.md").exists()


def test_oracle_method_probes_a_mature_snapshot_and_fixes_its_allocation(bench, tmp_path):
    """infonoise-oracle: the family's InfoNoise preset, with the allocation fixed from step 0 at the profile
    probed from --oracle-from (here the tiny bench's log-uniform snapshot); one schedule record, at step 0."""
    import json

    import torch

    import modalities
    from sampling.generation import load_network
    from sampling.probe import probe_network

    assert ttt.method_preset("digits-binary", "infonoise-oracle") == ("digits-binary-infonoise", {})
    out, data = bench
    snap = latest(out, "loguniform")
    oracle = tmp_path / "oracle"
    args = ttt_args(oracle, data, "--methods", "infonoise-oracle", "--oracle-from", snap)
    args[args.index("--budget-kex") + 1] = "1"
    missing = invoke(ttt.main, [a for a in args if a not in ("--oracle-from", snap)], ok=False)
    assert missing.exit_code != 0 and "needs --oracle-from" in missing.output
    invoke(ttt.main, args)
    prof = json.loads((oracle / "oracle-profile.json").read_text())
    net, _ = load_network(snap)
    want = probe_network(net, modalities.open_for_network(data, net), 0.002, 80.0, ttt.ORACLE_SAMPLES, seed=0)
    assert prof["source"] == str(snap) and torch.equal(torch.tensor(prof["mmse"], dtype=torch.float64), want["mmse"])
    records = [json.loads(line) for line in (oracle / "runs" / "infonoise-oracle-s0" / "schedule.jsonl").open()]
    assert [(r["step"], r["refresh"]) for r in records] == [(0, 1)]
    assert records[0]["mmse"] == prof["mmse"]  # already on the scheduler's grid: the probed values themselves
    rows = common.read_rows(oracle / "results.csv")
    assert [r["method"] for r in rows] == ["infonoise-oracle"] and math.isfinite(float(rows[0]["metric"]))
    other = invoke(ttt.main, [*args[:-1], out / "results.csv"], ok=False)  # a profile from elsewhere is refused
    assert other.exit_code != 0


def test_bootstrap_interval_of_the_speedup():
    """Identical seeds: the interval collapses onto the speedup itself. Spread seeds: it brackets the point
    estimate, and a method the baseline set the target for has none."""

    def rows(method, curves_by_seed):
        return [
            dict(method=method, seed=str(sd), kex=str(k), target_kex=str(k), metric=str(v), metric_name="fd")
            for sd, curve in enumerate(curves_by_seed)
            for k, v in zip((25, 50, 75, 100), curve)
        ]

    base = rows("edm", [[8, 6, 4, 2]] * 3)
    fast = rows("infonoise", [[4, 2, 1, 0.5]] * 3)
    summary = ttt.summarize(base + fast)
    s = summary["methods"]["infonoise"]
    assert s["speedup"] == pytest.approx(100 / 50) and s["speedup_interval"] == pytest.approx((2.0, 2.0))
    assert summary["methods"]["edm"]["speedup_interval"] is None
    spread = rows("infonoise", [[4, 2, 1, 0.5], [6, 3, 1.5, 1], [3, 1.5, 0.8, 0.4]])
    s = ttt.summarize(base + spread)["methods"]["infonoise"]
    lo, hi = s["speedup_interval"]
    assert lo < s["speedup"] < hi


def test_import_rows_joins_two_folders_of_one_evaluation(bench, tmp_path):
    """Rows made in another folder of the same family and evaluation join the table (with their schedule
    histories); the source's command is recorded; other evaluations, absent methods and duplicates are refused."""
    import json
    import shutil

    out, _ = bench
    dest, src = tmp_path / "dest", tmp_path / "src"
    for d in (dest, src):
        d.mkdir()
        shutil.copy(out / "benchmark.json", d / "benchmark.json")
    rows = common.read_rows(out / "results.csv")
    common.write_rows(dest / "results.csv", [r for r in rows if r["method"] != "infonoise"], ttt.FIELDS)
    common.write_rows(src / "results.csv", [r for r in rows if r["method"] == "infonoise"], ttt.FIELDS)
    (src / "infonoise-s0-schedule.jsonl").write_text('{"step": 10}\n')
    result = invoke(ttt.main, ["--outdir", dest, "--import-rows", f"{src}:infonoise"])
    assert "imported 2 rows of infonoise" in result.output and "speedup vs best fixed" in result.output
    assert sorted(map(str, common.read_rows(dest / "results.csv"))) == sorted(map(str, rows))
    assert (dest / "infonoise-s0-schedule.jsonl").read_text() == '{"step": 10}\n'
    assert json.loads((dest / "benchmark.json").read_text())["imported"][0]["methods"] == ["infonoise"]
    again = invoke(ttt.main, ["--outdir", dest, "--import-rows", f"{src}:infonoise"], ok=False)
    assert again.exit_code != 0 and "already has rows of infonoise" in again.output
    absent = invoke(ttt.main, ["--outdir", dest, "--import-rows", f"{src}:edm"], ok=False)
    assert absent.exit_code != 0 and "no rows of edm" in absent.output
    settings = json.loads((src / "benchmark.json").read_text())
    (src / "benchmark.json").write_text(json.dumps({**settings, "eval_samples": 999}))
    other = invoke(ttt.main, ["--outdir", dest, "--import-rows", f"{src}:infonoise"], ok=False)
    assert other.exit_code != 0 and "evaluated otherwise (eval_samples" in other.output


def test_machine_note_names_the_vector_extension_and_kernel_pins(monkeypatch):
    """An AVX-512 host pinned to AVX2 reproduces AVX2 rows bit for bit only with all three pins: the note says both."""
    amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f\n\n"
    assert common.cpu_identity(amd) == ("AuthenticAMD", "AMD EPYC", "AVX-512")
    xeon = "vendor_id : GenuineIntel\nmodel name : Old Xeon\nflags : sse2 avx2\n"
    assert common.cpu_identity(xeon) == ("GenuineIntel", "Old Xeon", "AVX2")
    assert common.cpu_identity("Features : fp asimd\n") == ("unknown", "unknown CPU", "")
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OTHER": "x"}
    assert common.kernel_pins(env) == "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"
    assert common.kernel_pins({}) == ""
    for name in common.KERNEL_PINS:
        monkeypatch.delenv(name, raising=False)
    assert "pinned" not in common.machine_note()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "pinned ONEDNN_MAX_CPU_ISA=AVX2, " in common.machine_note()


def test_rescore_skips_a_run_short_of_the_budget(bench, tmp_path, monkeypatch):
    """A run still in training (its latest snapshot before the budget) is no final snapshot: rescoring says so and
    writes no row for it, instead of a mid-run row under the final-snapshot table."""
    import json
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    settings = json.loads((out / "benchmark.json").read_text())
    (out / "benchmark.json").write_text(json.dumps({**settings, "budget_kex": 1000.0}))
    monkeypatch.setattr(ttt.Evaluator, "__call__", lambda self, snap: pytest.fail("scored a run short of the budget"))
    result = invoke(ttt.main, ["--outdir", out, "--rescore-samples", 16, "--rescore-first-seed", 300])
    assert result.output.count("short of the budget") == len(list((out / "runs").glob("*-s*")))
    rows = common.read_rows(out / "rescore.csv") if (out / "rescore.csv").exists() else []
    assert not [r for r in rows if r["first_seed"] == "300"]
