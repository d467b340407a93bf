"""generate.py on tiny randomly initialised snapshots: seed determinism (batch size, 1 vs 2 ranks under
torchrun), the CLI's outputs (PNGs, --npz, --grid-png, FASTA), InfoGrid from a saved and from a probed
profile, and the one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
import modalities
from models.networks import build_network
from sampling import generation
from sampling.grids import edm_grid, infogrid_from_profile
from sampling.probe import probe_network
from schedulers.information import log_sigma_grid
from torch_utils import checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = dict(model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[], dropout=0.0)
CHURN = ["--S-churn", "20", "--S-min", "0.01", "--S-max", "10", "--S-noise", "1.003"]


def _snapshot(path: Path, profile: dict | None = None, seed: int = 0, arch: str = "ddpmpp", **kwargs) -> Path:
    """A snapshot in train.py's format holding a randomly initialised network. The weights are perturbed so
    the zero-initialised output layer does not reduce the U-Net to its skip connection."""
    torch.manual_seed(seed)
    net = build_network(arch, sigma_min=0.002, sigma_max=80.0, **kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sd = net.state_dict()
    checkpoint.atomic_save(
        {
            "format": checkpoint.FORMAT,
            "options": {"network_kwargs": net.network_kwargs},
            "net": sd,
            "ema": sd,
            "scheduler": {},
            "profile": profile,
            "progress": {"cur_nimg": 0, "cur_tick": 0, "global_step": 0},
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    d = tmp_path_factory.mktemp("snaps")
    sigma = log_sigma_grid(0.002, 80.0, 128)
    hdot = 192 * 0.25 / (sigma * (0.25 + sigma**2))  # Gaussian data, c = 0.5 (docs/method.md §7)
    return {
        "uncond": _snapshot(
            d / "uncond.pt",
            {"sigma": sigma, "hdot": hdot, "mmse": hdot * sigma**3},
            arch="ddpmpp",
            data_shape=(3, 8, 8),
            **TINY,
        ),
        "cond": _snapshot(d / "cond.pt", None, seed=1, arch="ddpmpp", data_shape=(1, 8, 8), label_dim=3, **TINY),
        "dna": _snapshot(
            d / "dna.pt",
            None,
            seed=2,
            arch="dnaunet",
            data_shape=(4, 16),
            model_channels=8,
            channel_mult=[1, 2],
            num_blocks=1,
            channels_per_head=8,
            dropout=0.0,
        ),
    }


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """A labelled folder of 12 grey 8×8 PNGs (EDM's dataset.json format)."""
    d = tmp_path_factory.mktemp("pngs")
    rnd = np.random.RandomState(0)
    for i in range(12):
        PIL.Image.fromarray(rnd.randint(0, 256, (8, 8), dtype=np.uint8)).save(d / f"{i:02d}.png")
    (d / "dataset.json").write_text(json.dumps({"labels": [[f"{i:02d}.png", i % 3] for i in range(12)]}))
    return d


def run_cli(*args):
    result = CliRunner().invoke(generate.main, [str(a) for a in args])
    return result


def by_seed(net, seeds, batch, sigmas, **kw):
    """{seed: (uint8 image, label)} via the library generator."""
    out = {}
    for s, img, lab in generation.generate_images(net, seeds, batch, sigmas, return_labels=True, **kw):
        for i, seed in enumerate(s):
            out[seed] = (img[i], None if lab is None else int(lab[i]))
    return out


def test_parse_int_list():
    assert generation.parse_int_list("0-3,7, 10-10") == [0, 1, 2, 3, 7, 10]
    for bad in ("5-1", "a", "1-", "-3", "1,,2"):
        with pytest.raises(ValueError):
            generation.parse_int_list(bad)


def test_same_seed_same_sample_across_batch_sizes_and_ranks(snaps):
    net, _ = generation.load_network(snaps["cond"])
    seeds = [5, 0, 3, 9, 100, 2, 7]
    sigmas = edm_grid(4, net.sigma_min, net.sigma_max)
    kw = dict(S_churn=20.0, S_min=0.01, S_max=10.0, S_noise=1.003)
    ref = by_seed(net, seeds, 8, sigmas, **kw)
    for batch in (1, 3):
        assert all(
            torch.equal(ref[s][0], img) and ref[s][1] == lab
            for s, (img, lab) in by_seed(net, seeds, batch, sigmas, **kw).items()
        )
    shards = [by_seed(net, seeds, 2, sigmas, rank=r, world_size=2, **kw) for r in (0, 1)]
    assert sorted(shards[0]) != sorted(seeds) and sorted({**shards[0], **shards[1]}) == sorted(seeds)
    assert all(torch.equal(ref[s][0], img) for shard in shards for s, (img, _) in shard.items())
    assert len({lab for _, lab in ref.values()}) > 1  # labels are drawn per seed
    assert not torch.equal(ref[0][0], ref[3][0])
    fixed = by_seed(net, seeds, 8, sigmas, class_idx=2)
    assert {lab for _, lab in fixed.values()} == {2}


def test_cli_writes_pngs_npz_and_contact_sheet(snaps, tmp_path):
    out, npz, sheet = tmp_path / "out", tmp_path / "s.npz", tmp_path / "sheet.png"
    r = run_cli(
        "--network",
        snaps["uncond"],
        "--outdir",
        out,
        "--seeds",
        "0-5,1234",
        "--batch",
        4,
        "--steps",
        4,
        "--npz",
        npz,
        "--grid-png",
        sheet,
        "--subdirs",
        *CHURN,
    )
    assert r.exit_code == 0, r.output
    data = np.load(npz)
    assert data["images"].shape == (7, 8, 8, 3) and data["images"].dtype == np.uint8
    assert data["seeds"].tolist() == [0, 1, 2, 3, 4, 5, 1234] and data["labels"].tolist() == [-1] * 7
    for seed, img in zip(data["seeds"], data["images"]):
        png = out / f"{seed - seed % 1000:06d}" / f"{seed:06d}.png"
        assert np.array_equal(np.array(PIL.Image.open(png)), img)
    net, _ = generation.load_network(snaps["uncond"])
    ref = by_seed(net, [1234, 2], 1, edm_grid(4), S_churn=20.0, S_min=0.01, S_max=10.0, S_noise=1.003)
    assert np.array_equal(ref[1234][0].numpy().transpose(1, 2, 0), data["images"][-1])
    assert np.array_equal(ref[2][0].numpy().transpose(1, 2, 0), data["images"][2])
    assert PIL.Image.open(sheet).size[0] > 3 * 8  # 3 × 3 cells


def test_cli_infogrid_uses_the_snapshot_profile(snaps, tmp_path):
    npz = tmp_path / "s.npz"
    r = run_cli(
        "--network",
        snaps["uncond"],
        "--npz",
        npz,
        "--seeds",
        "0-2",
        "--steps",
        5,
        "--grid",
        "infogrid",
        "--sigma-min",
        0.0001,
        "--sigma-max",
        40,
    )
    assert r.exit_code == 0, r.output
    assert "clamped" in r.output
    net, profile = generation.load_network(snaps["uncond"])
    sigmas = infogrid_from_profile(5, profile, 0.002, 40.0)
    ref = by_seed(net, [0, 1, 2], 3, sigmas)
    assert all(
        np.array_equal(ref[s][0].numpy().transpose(1, 2, 0), img) for s, img in zip([0, 1, 2], np.load(npz)["images"])
    )
    edm = by_seed(net, [0], 1, edm_grid(5, 0.002, 40.0))
    assert not torch.equal(edm[0][0], ref[0][0])  # the grid mattered


def test_cli_infogrid_by_probing(snaps, pngs, tmp_path):
    r = run_cli("--network", snaps["cond"], "--npz", tmp_path / "x.npz", "--seeds", "0-2", "--grid", "infogrid")
    assert r.exit_code != 0 and "--probe-data" in r.output
    npz = tmp_path / "s.npz"
    r = run_cli(
        "--network",
        snaps["cond"],
        "--npz",
        npz,
        "--seeds",
        "0-2",
        "--steps",
        4,
        "--grid",
        "infogrid",
        "--probe-data",
        pngs,
        "--probe-samples",
        6,
        "--probe-bins",
        16,
        "--class",
        1,
    )
    assert r.exit_code == 0, r.output
    net, _ = generation.load_network(snaps["cond"])
    profile = probe_network(net, modalities.open_for_network(pngs, net), 0.002, 80.0, 6, 16, 64)
    assert profile["mmse"].shape == (16,) and (profile["mmse"] > 0).all()
    ref = by_seed(net, [0, 1, 2], 3, infogrid_from_profile(4, profile, 0.002, 80.0), class_idx=1)
    data = np.load(npz)
    assert data["labels"].tolist() == [1, 1, 1]
    assert all(np.array_equal(ref[s][0].numpy().transpose(1, 2, 0), img) for s, img in zip([0, 1, 2], data["images"]))


def test_cli_sequences_write_fasta(snaps, tmp_path):
    r = run_cli(
        "--network", snaps["dna"], "--outdir", tmp_path, "--npz", tmp_path / "s.npz", "--seeds", "3,1", "--steps", 3
    )
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "samples.fasta").read_text().split()
    assert lines[0::2] == [">seed000003", ">seed000001"] and all(
        len(s) == 16 and set(s) <= set("ACGT") for s in lines[1::2]
    )
    assert np.load(tmp_path / "s.npz")["samples"].shape == (2, 4, 16)
    r = run_cli("--network", snaps["dna"], "--grid-png", tmp_path / "g.png", "--seeds", "0")
    assert r.exit_code != 0 and "sequences" in r.output


def test_cli_errors_are_one_line(snaps, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a snapshot")
    out = ["--npz", tmp_path / "x.npz"]
    cases = [
        (["--network", tmp_path / "missing.pt", *out], "no such snapshot"),
        (["--network", corrupt, *out], "cannot be read"),
        (["--network", snaps["uncond"], "--seeds", "5-1", *out], "end before start"),
        (["--network", snaps["uncond"], "--seeds", "x", *out], "'x' is not"),
        (["--network", snaps["cond"], "--class", 3, *out], "out of range: the network has 3 classes"),
        (["--network", snaps["uncond"], "--class", 0, *out], "unconditional"),
        (["--network", snaps["uncond"]], "nothing to write"),
    ]
    for args, message in cases:
        r = run_cli(*args)
        assert r.exit_code != 0 and message in r.output, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit)  # a message, not a traceback
        assert len([line for line in r.output.splitlines() if line.startswith("Error")]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_match_one_rank(snaps, tmp_path):
    """Seeds dealt over 2 CPU ranks (gloo) give the same samples as one process; rank 0 gathers the npz."""
    out = tmp_path / "out"
    common = ["--network", snaps["cond"], "--seeds", "0-6", "--steps", 4, *CHURN]
    two_ranks = [
        *common,
        "--batch",
        2,
        "--npz",
        tmp_path / "two.npz",
        "--outdir",
        out,
        "--grid-png",
        tmp_path / "g.png",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port",
            str(_free_port()),
            str(REPO / "generate.py"),
            *map(str, two_ranks),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 rank(s)" in proc.stdout
    r = run_cli(*common, "--batch", 7, "--npz", tmp_path / "one.npz")
    assert r.exit_code == 0, r.output
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert two["seeds"].tolist() == list(range(7))
    for key in ("images", "labels", "seeds"):
        assert np.array_equal(one[key], two[key]), key
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == [f"{s:06d}.png" for s in range(7)]
    assert json.loads((out / ".complete.json").read_text()) == {"count": 7, "seeds": [0, 6]}
    assert (tmp_path / "g.png").is_file()
