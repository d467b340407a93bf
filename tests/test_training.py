"""The training framework end to end on CPU: loss weighting, train.py errors, resume, NaN stop, torchrun."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

import schedulers
import train
from tests.conftest import REPO, TINY_NET, free_port, write_image_dataset
from torch_utils import checkpoint
from training import options, training_loop
from training.loss import DenoisingLoss
from training.state import DataStream


class Shift(torch.nn.Module):
    """A stand-in network with a known output: D(x; σ) = x + 0.5 (so D − x0 = σε + 0.5)."""

    def forward(self, x, sigma, labels=None):
        return x + 0.5


def test_loss_weighting_exact():
    x0 = torch.zeros(3, 1, 2, 2)
    sigma = torch.tensor([0.1, 0.5, 2.0])
    noise = torch.ones_like(x0)
    expected_error = 4 * (sigma + 0.5) ** 2  # 4 pixels of (σ·1 + 0.5)²
    for weighting, w in [("edm", (sigma**2 + 0.25) / (sigma * 0.5) ** 2), ("unit", torch.ones(3))]:
        loss, error = DenoisingLoss(weighting, 0.5)(Shift(), x0, sigma, noise=noise)
        torch.testing.assert_close(error, expected_error)
        torch.testing.assert_close(loss, w * expected_error)
        assert not error.requires_grad


def test_unknown_weighting():
    with pytest.raises(ValueError, match="Unknown weighting 'foo'. Valid weightings: edm, unit"):
        DenoisingLoss("foo")


def run_train(args, expect_ok=True):
    result = CliRunner().invoke(train.main, [str(a) for a in args], catch_exceptions=False)
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def base_args(data, outdir, *extra):
    return [
        "--outdir",
        outdir,
        "--data",
        data,
        *TINY_NET,
        "--batch",
        "8",
        "--duration",
        "0.0004",
        "--tick",
        "0.2",
        "--snap",
        "1",
        "--sample-grid",
        "4",
        "--lr-rampup",
        "0",
        *extra,
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--scheduler", "nope"], "Unknown scheduler 'nope'. Valid schedulers: infonoise, lognormal, loguniform"),
        (["--preset", "no-such-preset"], "Unknown preset 'no-such-preset'"),
        (["--cres", "1,2,2,2,2"], "img_resolution=8 cannot be downsampled"),
        (["--sched-opt", "P_meen=0"], "no option(s) P_meen"),
        (["--arch", "nonet"], "unknown arch 'nonet'"),
    ],
)
def test_bad_input_clear_errors(tmp_path, tiny_zip, args, message):
    result = run_train(base_args(tiny_zip, tmp_path / "out", *args), expect_ok=False)
    assert result.exit_code != 0
    assert message in result.output


def test_labels_requested_but_missing(tmp_path):
    data = write_image_dataset(tmp_path / "nolabels.zip", labels=False)[0]
    result = run_train(base_args(data, tmp_path / "out", "--cond"), expect_ok=False)
    assert result.exit_code != 0 and "no dataset.json" in result.output and "nolabels.zip" in result.output


def test_missing_dataset(tmp_path):
    result = run_train(base_args(tmp_path / "missing.zip", tmp_path / "out"), expect_ok=False)
    assert result.exit_code != 0 and "missing.zip: dataset not found" in result.output


def test_unwritable_outdir(tmp_path, tiny_zip):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_train(base_args(tiny_zip, blocker / "out"), expect_ok=False)
    assert result.exit_code != 0 and "cannot write there" in result.output and "--outdir" in result.output


def test_preset_flags_override_only_what_they_set(tmp_path, tiny_zip):
    preset = tmp_path / "p.yaml"
    preset.write_text(
        f"data: {tiny_zip}\nlr: 0.123\nbatch: 16\nscheduler: loguniform\nscheduler_kwargs: {{sigma_min: 0.01}}\n"
    )
    result = run_train(
        [
            "--outdir",
            tmp_path / "o",
            "--preset",
            preset,
            "--batch",
            "8",
            *TINY_NET,
            "--dry-run",
            "--sched-opt",
            "sigma_max=20",
        ]
    )
    opts = json.loads(result.output)
    assert (opts["lr"], opts["batch"], opts["scheduler"]) == (0.123, 8, "loguniform")
    assert opts["scheduler_kwargs"] == {"sigma_min": 0.01, "sigma_max": 20}
    assert opts["network_kwargs"]["data_shape"] == [1, 8, 8] and opts["desc"] == "p"


def final_params(run_dir):
    snap = checkpoint.load(checkpoint.latest_snapshot(run_dir))
    return snap


@pytest.mark.parametrize("scheduler", ["lognormal", "infonoise"])
def test_resume_matches_uninterrupted_run(tmp_path, tiny_zip, scheduler):
    """Stop after 3 steps, re-run the same command: bitwise the same result as one 6-step run."""
    extra = ["--scheduler", scheduler]
    if scheduler == "infonoise":
        extra += [
            "--sched-opt",
            "warmup_steps=2",
            "--sched-opt",
            "refresh_every=2",
            "--sched-opt",
            "min_count=1",
            "--sched-opt",
            "num_bins=4",
            "--sched-opt",
            "floor=0.5",
        ]
    full = base_args(tiny_zip, tmp_path / "a", *extra, "--duration", "0.000048")  # 48 images = 6 steps
    run_train(full)
    split = base_args(tiny_zip, tmp_path / "b", *extra, "--duration", "0.000048")
    run_train(split + ["--stop-after-steps", "3"])
    snaps = checkpoint.list_snapshots(tmp_path / "b" / f"tiny-{scheduler}-edm")
    assert checkpoint.load(snaps[-1])["progress"]["global_step"] == 3
    result = run_train(split)
    assert "Resuming from" in result.output
    a = final_params(tmp_path / "a" / f"tiny-{scheduler}-edm")
    b = final_params(tmp_path / "b" / f"tiny-{scheduler}-edm")
    # a stop mid-tick ends that tick where the uninterrupted run ends it: the same progress, ticks included
    assert a["progress"] == b["progress"] and a["progress"]["global_step"] == 6
    for key in ("net", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs after resume"
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg_sq"], b["optimizer"]["state"][0]["exp_avg_sq"])
    if scheduler == "infonoise":
        assert a["profile"] is not None
        torch.testing.assert_close(a["profile"]["log_density"], b["profile"]["log_density"], rtol=0, atol=0)


def test_snapshot_contents_and_outputs(tmp_path, tiny_zip):
    run_train(base_args(tiny_zip, tmp_path / "o", "--cond"))
    run_dir = tmp_path / "o" / "tiny-lognormal-edm"
    snap = checkpoint.load(checkpoint.latest_snapshot(run_dir))  # weights_only=True inside
    assert snap["options"]["network_kwargs"]["label_dim"] == 3
    assert {"net", "ema", "optimizer", "scheduler", "profile", "progress", "rng"} <= set(snap)
    assert (run_dir / "training_options.json").is_file() and (run_dir / "log.txt").is_file()
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["kimg"] == pytest.approx(0.4) and all(s["loss"] > 0 for s in stats)
    assert list(run_dir.glob("samples-*.png")), "a sample grid is written at each snapshot"


def test_resume_refuses_other_options_but_takes_restart_options(tmp_path, tiny_zip):
    """The recipe is locked once a snapshot exists; what a restart after a failure needs may change, logged
    old → new; a run directory without a snapshot (a failed first start) locks nothing."""
    run_train(base_args(tiny_zip, tmp_path / "o"))
    result = run_train(base_args(tiny_zip, tmp_path / "o", "--sigma-max", "40"), expect_ok=False)
    assert result.exit_code != 0 and "sigma_max differ" in result.output
    result = run_train(base_args(tiny_zip, tmp_path / "o", "--lr", "0.5", "--grad-clip", "1", "--duration", "0.0008"))
    assert (
        "lr changes on resume: 0.001 -> 0.5" in result.output
        and "grad_clip changes on resume: None -> 1" in result.output
    )
    assert "Resuming from" in result.output
    fresh = tmp_path / "f" / "tiny-lognormal-edm"
    fresh.mkdir(parents=True)
    (fresh / "training_options.json").write_text(json.dumps({"lr": -1}))  # a first start that failed
    run_train(base_args(tiny_zip, tmp_path / "f"))
    assert checkpoint.list_snapshots(fresh)


def test_nan_loss_stops_and_keeps_last_snapshot(tmp_path, tiny_zip, monkeypatch):
    """A NaN at step 4 stops the run with a clear error; the snapshot of step 2 stays intact."""
    real_call = training_loop.DenoisingLoss.__call__
    calls = {"n": 0}

    def poisoned(self, net, x0, sigma, labels=None, noise=None):
        calls["n"] += 1
        loss, error = real_call(self, net, x0, sigma, labels, noise)
        return (loss * float("nan"), error) if calls["n"] >= 4 else (loss, error)

    monkeypatch.setattr(training_loop.DenoisingLoss, "__call__", poisoned)
    result = run_train(
        base_args(tiny_zip, tmp_path / "o", "--tick", "0.016"), expect_ok=False
    )  # snapshot every 2 steps
    assert result.exit_code != 0 and "Non-finite loss/gradient by step 4" in result.output  # found at the tick
    snaps = checkpoint.list_snapshots(tmp_path / "o" / "tiny-lognormal-edm")
    assert snaps and checkpoint.load(snaps[-1])["progress"]["global_step"] == 2
    for p in checkpoint.load(snaps[-1])["net"].values():
        assert torch.isfinite(p).all()


def test_corrupt_snapshot_is_a_clear_error(tmp_path):
    bad = tmp_path / "network-snapshot-000001.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="network-snapshot-000001.pt: cannot be read as a snapshot"):
        checkpoint.load(bad)


def test_torchrun_two_ranks_identical_parameters(tmp_path, tiny_zip):
    """2 processes (gloo): different data and σ per rank, averaged gradients → identical parameters."""
    out = tmp_path / "dist"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
        str(REPO / "tests" / "dist_train_worker.py"),
        str(tiny_zip),
        str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    p0, p1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert p0["step"] == p1["step"] == 4
    for name in p0["net"]:
        assert torch.equal(p0["net"][name], p1["net"][name]), name
    # Each rank observed its own errors (different data and σ), yet both built the same table.
    s0, s1 = p0["scheduler_state"], p1["scheduler_state"]
    assert any(
        isinstance(s0[k], torch.Tensor) and s0[k].is_floating_point() and not torch.equal(s0[k], s1[k]) for k in s0
    ), "ranks must observe different errors"
    torch.testing.assert_close(p0["table"], p1["table"], rtol=0, atol=0)


def test_data_stream_splits_epochs_over_ranks():
    """Ranks read disjoint indices that together cover each epoch exactly once; resuming by position
    continues the same order."""
    a, b = DataStream(10, 3, 0, 2), DataStream(10, 3, 1, 2)
    first = set(a.take(5)) | set(b.take(5))
    assert first == set(range(10))
    resumed = DataStream(10, 3, 0, 2, position=5)
    assert list(resumed.take(7)) == list(a.take(7))


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "configs").glob("*.yaml")))
def test_every_preset_resolves_and_builds(preset):
    """Each shipped preset has only known keys and its network builds for its data's shape."""
    from models import networks

    opts = {**options.DEFAULTS, **options.load_preset(preset)}
    shape = {"digits": [1, 8, 8], "cifar10": [3, 32, 32], "dna": [4, 200]}.get(preset.split("-")[0], [1, 28, 28])
    kwargs = dict(opts["network_kwargs"])
    net = networks.build_network(opts["arch"], opts["precond"], data_shape=shape, **kwargs)
    assert net(torch.zeros(1, *shape), torch.ones(1)).shape == (1, *shape)
    schedulers.build(
        opts["scheduler"], dict(weighting=opts["weighting"], endpoint="continuous"), **opts["scheduler_kwargs"]
    )


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "configs").glob("*.yaml")))
def test_infonoise_presets_set_no_scheduler_options(preset):
    """One InfoNoise for every data set (docs/method.md §5): a preset names the scheduler and its endpoint;
    a pinned control adds σ_p. Nothing is scaled per data set or run length."""
    opts = {**options.DEFAULTS, **options.load_preset(preset)}
    if opts["scheduler"] != "infonoise":
        return
    assert opts["endpoint"] in ("continuous", "discrete"), preset
    allowed = {"sigma_p"} if preset.endswith("-pinned") else set()
    assert set(opts["scheduler_kwargs"]) <= allowed, (preset, opts["scheduler_kwargs"])


def test_preset_extends_merges_dicts(tmp_path):
    (tmp_path / "base.yaml").write_text("lr: 0.1\nscheduler_kwargs: {refresh_every: 7, floor: 0.1}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nscheduler_kwargs: {floor: 0.3}\n")
    assert options.load_preset(str(tmp_path / "child.yaml")) == {
        "lr": 0.1,
        "scheduler_kwargs": {"refresh_every": 7, "floor": 0.3},
    }


def _run_files(run_dir):
    """What a resumed run must reproduce: snapshot names, schedule.jsonl, stats.jsonl without wall times."""
    timing = ("sec_per_tick", "sec_per_kimg", "time", "loader_share")
    stats = [
        {k: v for k, v in json.loads(line).items() if k not in timing} for line in (run_dir / "stats.jsonl").open()
    ]
    schedule = (run_dir / "schedule.jsonl").read_text().splitlines()
    return [p.name for p in checkpoint.list_snapshots(run_dir)], stats, schedule


@pytest.mark.parametrize("kill_at", ["step:5", "in-write:6", "after-write:10"])
def test_killed_run_resumes_to_identical_files(tmp_path, tiny_zip, kill_at):
    """kill -9 mid-tick, during a snapshot write and right after one; a torn last line in schedule.jsonl on top.
    Re-running the same command leaves the same snapshots, the same stats and schedule lines, the same
    weights as a run never stopped, and no temporary file."""
    extra = [
        "--scheduler",
        "infonoise",
        "--tick",
        "0.016",
        "--snap",
        "2",
        "--sample-grid",
        "0",
        "--duration",
        "0.000096",
        "--sched-opt",
        "warmup_steps=2",
        "--sched-opt",
        "refresh_every=2",
        "--sched-opt",
        "min_count=1",
        "--sched-opt",
        "num_bins=4",
        "--sched-opt",
        "floor=0.5",
    ]
    run_train(base_args(tiny_zip, tmp_path / "a", *extra))
    args = [str(a) for a in base_args(tiny_zip, tmp_path / "b", *extra)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, str(REPO / "tests" / "kill_train_worker.py"), kill_at, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 137, killed.stderr
    a_dir, b_dir = tmp_path / "a" / "tiny-infonoise-edm", tmp_path / "b" / "tiny-infonoise-edm"
    if kill_at.startswith("in-write"):
        assert list(b_dir.glob(".*.tmp"))
    with open(b_dir / "schedule.jsonl", "a") as f:
        f.write('{"step": 99, "kimg": 0.7')  # a line cut by the kill
    result = run_train(args)
    assert "Resuming from" in result.output and "torn" in result.output
    assert _run_files(a_dir) == _run_files(b_dir)
    assert not list(b_dir.glob(".*.tmp"))
    a, b = (checkpoint.load(checkpoint.latest_snapshot(d)) for d in (a_dir, b_dir))
    assert a["progress"] == b["progress"]
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])


def test_unreadable_newest_snapshot_falls_back(tmp_path, tiny_zip):
    """A truncated newest snapshot, then one of another architecture: each is moved aside in one line, the
    previous good snapshot is used; with none left that loads, one line says so."""
    args = base_args(tiny_zip, tmp_path / "o", "--duration", "0.000032", "--tick", "0.016", "--snap", "1")
    run_train(args)
    run_dir = tmp_path / "o" / "tiny-lognormal-edm"
    good = checkpoint.list_snapshots(run_dir)
    newest = run_dir / "network-snapshot-000099.pt"
    newest.write_bytes(good[-1].read_bytes()[:1000])
    result = run_train(base_args(tiny_zip, tmp_path / "o", "--duration", "0.000048", "--tick", "0.016", "--snap", "1"))
    assert "network-snapshot-000099.pt cannot be resumed from" in result.output
    assert (run_dir / "network-snapshot-000099.pt.corrupt").is_file() and "Resuming from" in result.output
    for p in checkpoint.list_snapshots(run_dir):  # every snapshot replaced by one of another network
        other = checkpoint.load(p)
        other["net"] = {k: torch.zeros(1) for k in other["net"]}
        torch.save(other, p)
    result = run_train(args, expect_ok=False)
    assert result.exit_code != 0 and "no snapshot there can be resumed from" in result.output
    assert "Traceback" not in result.output


def test_disk_full_is_one_line_and_keeps_the_previous_snapshot(tmp_path, tiny_zip, monkeypatch):
    import errno

    args = base_args(tiny_zip, tmp_path / "o", "--duration", "0.000032", "--tick", "0.016", "--snap", "1")
    run_train(args)
    run_dir = tmp_path / "o" / "tiny-lognormal-edm"
    before = {p.name: p.read_bytes() for p in checkpoint.list_snapshots(run_dir)}

    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "atomic_save", full)
    result = run_train(
        base_args(tiny_zip, tmp_path / "o", "--duration", "0.000048", "--tick", "0.016", "--snap", "1"), expect_ok=False
    )
    assert result.exit_code != 0 and "the disk is full" in result.output and "is intact" in result.output
    assert {p.name: p.read_bytes() for p in checkpoint.list_snapshots(run_dir)} == before


def test_dist_timeout_bounds_a_hung_rank(tmp_path):
    """A rank that stops answering fails the others after the timeout (here 3 s), not torch's 30 minutes."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
        str(REPO / "tests" / "dist_timeout_worker.py"),
        "3",
    ]
    start = time.time()
    proc = subprocess.run(
        cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "rank 0 gave up after" in proc.stdout, proc.stdout + proc.stderr
    assert time.time() - start < 60


def test_progress_bar_on_a_terminal_and_startup_messages(tmp_path, tiny_zip, monkeypatch):
    """On a terminal: a bar over kimg with elapsed<remaining; start-up says what it is doing. Not on a
    terminal (a log, CI): no bar, the tick lines as before."""
    args = base_args(tiny_zip, tmp_path / "o", "--duration", "0.000032", "--tick", "0.016")
    plain = run_train(args)
    assert "Opening the data set" in plain.output and "Building the network" in plain.output
    assert "kimg [" not in plain.output and "tick 0" in plain.output
    monkeypatch.setattr(training_loop, "_interactive", lambda: True)
    result = CliRunner().invoke(
        train.main, [str(a) for a in base_args(tiny_zip, tmp_path / "p", "--duration", "0.000032", "--tick", "0.016")]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"0\.0/0\.0 kimg \[\d\d:\d\d<\d\d:\d\d\]", result.output) and "tick 0" in result.output


# ----------------------------------------------------------------------------------------------------
# A restart that starts clean, and a stop that keeps the grid (issue 25).

FAST_INFONOISE = [
    "--scheduler",
    "infonoise",
    "--sample-grid",
    "0",
    "--sched-opt",
    "warmup_steps=2",
    "--sched-opt",
    "refresh_every=2",
    "--sched-opt",
    "min_count=1",
    "--sched-opt",
    "num_bins=4",
    "--sched-opt",
    "floor=0.5",
]


def _log_lines(run_dir):
    """log.txt without its wall times (and their padding, which the digits of a time set): what two runs of
    the same command must both have written."""
    return [re.sub(r"sec/(tick|kimg) +[\d.]+ *", "", line) for line in (run_dir / "log.txt").read_text().splitlines()]


def _kill(args, kill_at):
    killed = subprocess.run(
        [sys.executable, str(REPO / "tests" / "kill_train_worker.py"), kill_at, *[str(a) for a in args]],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 137, killed.stderr


def test_restart_after_a_kill_before_the_first_snapshot_starts_clean(tmp_path, tiny_zip):
    """Killed at step 4 of 6 with no snapshot yet (--snap 0: only the last), then the same command again: the
    earlier attempt's files go to earlier-attempts/1/ (said in one line), and stats.jsonl, schedule.jsonl and
    log.txt equal an uninterrupted run's — ticks 0–2 are not there twice."""
    extra = [*FAST_INFONOISE, "--tick", "0.008", "--snap", "0", "--duration", "0.000048"]
    run_train(base_args(tiny_zip, tmp_path / "a", *extra))
    args = base_args(tiny_zip, tmp_path / "b", *extra)
    _kill(args, "step:4")
    a_dir, b_dir = tmp_path / "a" / "tiny-infonoise-edm", tmp_path / "b" / "tiny-infonoise-edm"
    assert not checkpoint.list_snapshots(b_dir) and len((b_dir / "stats.jsonl").read_text().splitlines()) == 3
    result = run_train(args)
    assert "moved the files of an earlier attempt" in result.output and "earlier-attempts/1" in result.output
    assert _run_files(a_dir) == _run_files(b_dir)
    assert _log_lines(a_dir) == _log_lines(b_dir)
    assert len((b_dir / "earlier-attempts" / "1" / "stats.jsonl").read_text().splitlines()) == 3


def test_restart_after_every_snapshot_is_unreadable_starts_clean(tmp_path, tiny_zip):
    """A finished run whose snapshots are all unreadable: one line says so, and re-running (as it advises)
    starts afresh with the old files set aside, leaving what an uninterrupted run leaves."""
    extra = [*FAST_INFONOISE, "--tick", "0.016", "--snap", "1", "--duration", "0.000064"]
    run_train(base_args(tiny_zip, tmp_path / "a", *extra))
    args = base_args(tiny_zip, tmp_path / "b", *extra)
    run_train(args)
    a_dir, b_dir = tmp_path / "a" / "tiny-infonoise-edm", tmp_path / "b" / "tiny-infonoise-edm"
    for p in checkpoint.list_snapshots(b_dir):
        p.write_bytes(p.read_bytes()[:500])
    result = run_train(args, expect_ok=False)
    assert result.exit_code != 0 and "no snapshot there can be resumed from" in result.output
    assert "Traceback" not in result.output
    result = run_train(args)
    assert "moved the files of an earlier attempt" in result.output
    assert _run_files(a_dir) == _run_files(b_dir)
    assert _log_lines(a_dir) == _log_lines(b_dir)
    a, b = (checkpoint.load(checkpoint.latest_snapshot(d)) for d in (a_dir, b_dir))
    assert a["progress"] == b["progress"] and all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])


@pytest.mark.parametrize("stop_after", [20, 16])
def test_graceful_stop_keeps_ticks_and_snapshots_on_the_grid(tmp_path, tiny_zip, stop_after):
    """Ticks of 8 steps, 47 steps in all, a snapshot every 2 ticks; stopped after 20 steps (mid-tick) or 16
    (a tick's end without a snapshot), then the same command: the ticks end at steps 8, 16, 24, 32, 40, 47 as
    in the uninterrupted run, with the same statistics, the same snapshots under the same names, the same
    weights; the stop's resume point is gone."""
    extra = [*FAST_INFONOISE, "--tick", "0.064", "--snap", "2", "--duration", "0.000376"]
    run_train(base_args(tiny_zip, tmp_path / "a", *extra))
    args = base_args(tiny_zip, tmp_path / "b", *extra)
    run_train(args + ["--stop-after-steps", str(stop_after)])
    b_dir = tmp_path / "b" / "tiny-infonoise-edm"
    points = checkpoint.list_resume_points(b_dir)
    assert [checkpoint.load(p)["progress"]["global_step"] for p in points] == [stop_after]
    result = run_train(args)
    assert "Resuming from" in result.output and not checkpoint.list_resume_points(b_dir)
    a_dir = tmp_path / "a" / "tiny-infonoise-edm"
    names, stats, schedule = _run_files(b_dir)
    assert [s["step"] for s in stats] == [8, 16, 24, 32, 40, 47] and [s["tick"] for s in stats] == list(range(6))
    assert _run_files(a_dir) == (names, stats, schedule)
    a, b = (checkpoint.load(checkpoint.latest_snapshot(d)) for d in (a_dir, b_dir))
    assert a["progress"] == b["progress"]
    assert all(torch.equal(a[k][n], b[k][n]) for k in ("net", "ema") for n in a[k])
