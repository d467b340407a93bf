"""The bad-input corpus: every command-line tool, fed what a hostile but fair user types, answers with one
line naming the culprit and a non-zero exit — never a traceback, never a silent success — and runs no
code from a file it is given. One worker process per tool runs its cases (tests/bad_input_worker.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import REPO, TINY_NET, write_image_dataset

PWNED = Path("/tmp/infonoise-corpus-pwned")


class Payload:
    """A pickle that runs a command when loaded without weights_only."""

    def __reduce__(self):
        return (os.system, (f"touch {PWNED}",))


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, format="png")
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Every file the cases need: good data, broken data, a trained snapshot and broken ones, presets."""
    t = tmp_path_factory.mktemp("corpus")
    grey = np.random.RandomState(0).randint(0, 256, (4, 8, 8)).astype(np.uint8)
    p = dict(tmp=str(t))
    p["data"] = str(write_image_dataset(t / "data.zip", n=16, res=8, labels=True)[0])
    p["unlabeled"] = str(write_image_dataset(t / "unlabeled.zip", n=16, res=8, labels=False)[0])
    p["mixed_size"] = str(
        _zip(t / "mixed_size.zip", {"a.png": _png(grey[0]), "b.png": _png(np.zeros((9, 9), np.uint8))})
    )
    rgb = np.zeros((8, 8, 3), np.uint8)
    p["mixed_channels"] = str(_zip(t / "mixed_channels.zip", {"a.png": _png(grey[0]), "b.png": _png(rgb)}))
    p["corrupt_png"] = str(
        _zip(t / "corrupt_png.zip", {"a.png": _png(grey[0]), "zzz.png": b"\x89PNG\r\n\x1a\n garbage"})
    )
    bad_crc = _zip(t / "bad_crc.zip", {"a.png": _png(grey[0]), "z.png": _png(grey[1])})
    raw = bytearray(bad_crc.read_bytes())
    at = raw.rfind(_png(grey[1])[40:60])
    raw[at] ^= 0xFF
    bad_crc.write_bytes(bytes(raw))
    p["bad_crc"] = str(bad_crc)
    p["traversal"] = str(_zip(t / "traversal.zip", {"a.png": _png(grey[0]), "../x.png": _png(grey[1])}))
    p["absolute"] = str(_zip(t / "absolute.zip", {"a.png": _png(grey[0]), "/abs/x.png": _png(grey[1])}))
    (t / "empty").mkdir()
    p["empty"] = str(t / "empty")
    p["text"] = str(t / "notes.txt")
    Path(p["text"]).write_text("not data\n")
    p["file"] = str(t / "a-file")
    Path(p["file"]).write_text("x")
    # Presets a user might write wrongly.
    presets = {
        "batch_str": "batch: sixty-four\n",
        "lr_str": 'lr: "1e-3"\n',
        "netkw_list": "network_kwargs: [1, 2]\n",
        "unknown_key": "learning_rate: 0.1\n",
        "list": "- 1\n- 2\n",
        "bad_yaml": "lr: [0.1\n",
        "loop": "extends: loop.yaml\n",
        "sched_list": "scheduler_kwargs: 5\n",
        "cond_str": "cond: maybe\n",
        "dup_key": "lr: 0.1\nlr: 0.2\n",
        "dup_nested": "network_kwargs: {num_blocks: 1, num_blocks: 2}\n",
        "netkw_wide": "network_kwargs: {model_channels: wide, channel_mult: [1, 2], attn_resolutions: []}\n",
        "sched_nan": "scheduler_kwargs: {P_mean: .nan}\n",
        "lr_inf": "lr: .inf\n",
        "batch_huge": "batch: 100000000000000000000000\n",
        "seed_float": "seed: 1.5\n",
        "extends_num": "extends: 5\n",
        "netkw_intkey": "network_kwargs: {1: 2}\n",
    }
    for name, text in presets.items():
        (t / f"{name}.yaml").write_text(f"data: {p['data']}\n{text}")
        p[f"preset_{name}"] = str(t / f"{name}.yaml")
    (t / "latin1.yaml").write_bytes(f"data: {p['data']}\n# caf\xe9 au lait\nlr: 0.1\n".encode("latin-1"))
    p["preset_latin1"] = str(t / "latin1.yaml")
    # A snapshot, and what can go wrong with one.
    r = CliRunner().invoke(
        __import__("train").main,
        [
            "--outdir",
            str(t / "runs"),
            "--data",
            p["data"],
            *TINY_NET,
            "--batch",
            "8",
            "--duration",
            "0.000016",
            "--tick",
            "0.008",
            "--sample-grid",
            "0",
            "--desc",
            "good",
        ],
    )
    assert r.exit_code == 0, r.output
    snap = next((t / "runs" / "good").glob("network-snapshot-*.pt"))
    p["snap"] = str(snap)
    p["truncated"] = str(t / "truncated.pt")
    Path(p["truncated"]).write_bytes(snap.read_bytes()[:2000])
    p["malicious"] = str(t / "malicious.pt")
    torch.save({"format": "infonoise-snapshot-v1", "net": Payload()}, p["malicious"])
    p["plain_pt"] = str(t / "plain.pt")
    torch.save({"weights": torch.zeros(3)}, p["plain_pt"])
    for name, content in (("run_truncated", p["truncated"]), ("run_malicious", p["malicious"])):
        run = t / "runs" / name
        run.mkdir(parents=True)
        (run / "network-snapshot-000000.pt").write_bytes(Path(content).read_bytes())
    # Image sets and reference statistics.
    p["images_npz"] = str(t / "images.npz")
    np.savez(p["images_npz"], images=np.random.RandomState(1).randint(0, 256, (20, 8, 8, 1)).astype(np.uint8))
    p["one_npz"] = str(t / "one.npz")
    np.savez(p["one_npz"], images=np.zeros((1, 8, 8, 1), np.uint8))
    p["nokey_npz"] = str(t / "nokey.npz")
    np.savez(p["nokey_npz"], pictures=np.zeros((4, 8, 8, 1), np.uint8))
    from evaluation.frechet import save_stats

    p["ref"] = str(t / "ref.npz")
    save_stats(p["ref"], np.zeros(128), np.eye(128), "lenet-digits", 20)
    p["ref_nan"] = str(t / "ref_nan.npz")
    save_stats(p["ref_nan"], np.full(128, np.nan), np.eye(128), "lenet-digits", 20)
    p["ref_badkeys"] = str(t / "ref_badkeys.npz")
    np.savez(p["ref_badkeys"], mean=np.zeros(3))
    p["ref_corrupt"] = str(t / "ref_corrupt.npz")
    Path(p["ref_corrupt"]).write_bytes(b"PK\x03\x04 not a zip")
    # A reference that records the shape of its images (1x8x8), one whose Σ is not symmetric, one not PSD.
    p["ref8"] = str(t / "ref8.npz")
    save_stats(p["ref8"], np.zeros(128), np.eye(128), "lenet-digits", 20, image_shape=(1, 8, 8))
    asym = np.eye(128)
    asym[0, 1] = 0.5
    p["ref_asym"] = str(t / "ref_asym.npz")
    save_stats(p["ref_asym"], np.zeros(128), asym, "lenet-digits", 20, image_shape=(1, 8, 8))
    notpsd = np.eye(128)
    notpsd[3, 3] = -1.0
    p["ref_nodet"] = str(t / "ref_nodet.npz")
    save_stats(p["ref_nodet"], np.zeros(128), np.eye(128), "no-such-detector", 20, image_shape=(1, 8, 8))
    p["ref_str"] = str(t / "ref_str.npz")
    np.savez(p["ref_str"], mu=np.array(["a", "b"]), sigma=np.eye(2))
    p["ref_notpsd"] = str(t / "ref_notpsd.npz")
    save_stats(p["ref_notpsd"], np.zeros(128), notpsd, "lenet-digits", 20, image_shape=(1, 8, 8))
    rnd = np.random.RandomState(2)
    for name, shape in (("img86", (20, 8, 6, 1)), ("img16", (20, 16, 16, 1)), ("rgb8", (20, 8, 8, 3))):
        p[name] = str(t / f"{name}.npz")
        np.savez(p[name], images=rnd.randint(0, 256, shape).astype(np.uint8))
    p["ambiguous"] = str(t / "ambiguous.npz")  # [N, 3, 3, 3]: NHWC or NCHW?
    np.savez(p["ambiguous"], images=rnd.randint(0, 256, (20, 3, 3, 3)).astype(np.uint8))
    p["bad_layout"] = str(t / "bad_layout.npz")
    np.savez(p["bad_layout"], images=rnd.randint(0, 256, (20, 8, 8, 1)).astype(np.uint8), layout="HWNC")
    mixed = t / "mixed_folder"  # generate.py's output with one image of another size
    mixed.mkdir()
    for i in range(4):
        PIL.Image.fromarray(grey[i % 4]).save(mixed / f"{i:06d}.png")
    PIL.Image.fromarray(np.zeros((9, 9), np.uint8)).save(mixed / "000009.png")
    p["mixed_folder"] = str(mixed)
    partial = t / "partial"
    partial.mkdir()
    for i in range(3):
        PIL.Image.fromarray(grey[i]).save(partial / f"{i:06d}.png")
    p["partial"] = str(partial)
    p["tar_corrupt"] = str(t / "cifar-10-python.tar.gz")
    Path(p["tar_corrupt"]).write_bytes(zlib.compress(b"not a tarball"))
    # Sequences.
    p["fasta"] = str(t / "seqs.fa")
    Path(p["fasta"]).write_text("".join(f">s{i}\n{'ACGT' * 4}\n" for i in range(8)))
    p["fasta_bad"] = str(t / "bad.fa")
    Path(p["fasta_bad"]).write_text(">s0\nACGTXYZ!\n")
    p["fasta_short"] = str(t / "short.fa")  # 8 bp where the others have 16
    Path(p["fasta_short"]).write_text("".join(f">s{i}\n{'ACGT' * 2}\n" for i in range(8)))
    p["fasta_rna"] = str(t / "rna.fa")  # another alphabet
    Path(p["fasta_rna"]).write_text("".join(f">s{i}\n{'ACGU' * 4}\n" for i in range(8)))
    p["unwritable"] = "/proc/infonoise-nope/out"
    return p


# (tool, arguments, what the one error line must name). Arguments are formatted with the paths above.
TRAIN = [
    ["--batch", "0"],
    ["--batch", "-8"],
    ["--max-size", "0"],
    ["--batch-gpu", "3"],
    ["--batch-gpu", "0"],
    ["--device", "cuda"],
    ["--device", "bogus"],
    ["--device", "tpu"],
    ["--lr", "-1"],
    ["--lr", "0"],
    ["--lr", "nan"],
    ["--lr", "inf"],
    ["--duration", "0"],
    ["--duration", "-1"],
    ["--snap", "-1"],
    ["--tick", "0"],
    ["--sigma-min", "0"],
    ["--sigma-min", "10", "--sigma-max", "1"],
    ["--dropout", "1.5"],
    ["--seed", "-1"],
    ["--ema", "0"],
    ["--lr-rampup", "-1"],
    ["--grad-clip", "0"],
    ["--sample-grid", "-1"],
    ["--scheduler", "nope"],
    ["--preset", "no-such-preset"],
    ["--cres", "1,2,2,2,2"],
    ["--net-opt", "attn_resolutions=[7]"],
    ["--net-opt", "bogus_option=1"],
    ["--sched-opt", "bogus=1"],
    ["--scheduler", "infonoise", "--sched-opt", "refresh_every=0"],
    ["--sched-opt", "noequals"],
    ["--arch", "nope"],
    ["--scheduler", "infonoise", "--sched-opt", "sigma_p=0"],
    ["--scheduler", "infonoise", "--sched-opt", "pivot_rule=knee"],
    ["--cres", "1,x"],
    ["--dist-timeout", "0"],
    # issue 25: wrong types, NaN/Inf, huge values, options given twice or silently dropped
    ["--net-opt", "model_channels=abc"],
    ["--sched-opt", "P_mean=nan"],
    ["--sched-opt", "P_mean=inf"],
    ["--sched-opt", "P_std=1e300"],
    ["--sched-opt", "P_mean=1e3"],
    ["--sched-opt", "P_mean=-1", "--sched-opt", "P_mean=1"],
    ["--scheduler", "infonoise", "--sched-opt", "num_bins=abc"],
    ["--scheduler", "infonoise", "--sched-opt", "floor=nan"],
    ["--scheduler", "loguniform", "--sched-opt", "sigma_max=1e300"],
    ["--net-opt", "dropout=nan"],
    ["--net-opt", "num_blocks=-1"],
    ["--net-opt", "num_blocks=1.5"],
    ["--net-opt", "channel_mult_emb=100000000"],
    ["--lr", "1e300"],
    ["--dropout", "nan"],
    ["--sigma-max", "inf"],
    ["--batch", "100000000000000000000000"],
    ["--batch", "10000000000000"],
    ["--sample-grid", "10000000000000"],
    ["--seed", "99999999999999999999"],
    ["--max-size", "99999999999999999999"],
    ["--workers", "100000"],
    ["--tick", "nan"],
    ["--ema", "inf"],
    ["--augment", "nan"],
    ["--dist-timeout", "nan"],
    ["--stop-after-steps", "0"],
]
TRAIN_EXPECT = [
    "batch",
    "batch",
    "max_size",
    "batch-gpu",
    "batch_gpu",
    "CUDA",
    "bogus",
    "tpu",
    "lr",
    "lr",
    "lr",
    "lr",
    "duration",
    "duration",
    "snap",
    "tick",
    "sigma_min",
    "sigma_min",
    "dropout",
    "seed",
    "ema",
    "lr_rampup",
    "grad_clip",
    "sample_grid",
    "nope",
    "no-such-preset",
    "img_resolution",
    "attn_resolutions",
    "bogus_option",
    "bogus",
    "refresh_every",
    "noequals",
    "nope",
    "sigma_p",
    "pivot_rule",
    "cres",
    "dist-timeout",
    "model_channels",
    "P_mean",
    "P_mean",
    "P_std",
    "P_mean",
    "P_mean",
    "num_bins",
    "floor",
    "sigma_max",
    "dropout",
    "num_blocks",
    "num_blocks",
    "channel_mult_emb",
    "lr",
    "dropout",
    "sigma_max",
    "batch",
    "batch",
    "sample_grid",
    "seed",
    "max_size",
    "workers",
    "tick",
    "ema",
    "augment",
    "dist-timeout",
    "stop-after-steps",
]
TRAIN_DATA = [
    (["--data", "{tmp}/missing.zip"], "missing.zip"),
    (["--data", "{text}"], "notes.txt"),
    (["--data", "{mixed_size}"], "mixed_size.zip"),
    (["--data", "{mixed_channels}"], "mixed_channels.zip"),
    (["--data", "{corrupt_png}"], "zzz.png"),
    (["--data", "{bad_crc}"], "z.png"),
    (["--data", "{traversal}"], "../x.png"),
    (["--data", "{absolute}"], "/abs/x.png"),
    (["--data", "{empty}"], "empty"),
    (["--data", "{unlabeled}", "--cond"], "label"),
]
PRESETS = [
    ("batch_str", "batch"),
    ("lr_str", "lr"),
    ("netkw_list", "network_kwargs"),
    ("unknown_key", "learning_rate"),
    ("list", "mapping"),
    ("bad_yaml", "YAML"),
    ("loop", "loops"),
    ("sched_list", "scheduler_kwargs"),
    ("cond_str", "cond"),
    ("dup_key", "dup_key.yaml"),
    ("dup_nested", "dup_nested.yaml"),
    ("latin1", "latin1.yaml"),
    ("netkw_wide", "model_channels"),
    ("sched_nan", "P_mean"),
    ("lr_inf", "lr"),
    ("batch_huge", "batch"),
    ("seed_float", "seed"),
    ("extends_num", "extends"),
    ("netkw_intkey", "network_kwargs"),
]


def train_cases():
    base = ["--outdir", "{tmp}/runs", *TINY_NET, "--batch", "8", "--duration", "0.000016", "--sample-grid", "0"]
    cases = [
        ([*base, "--data", "{data}", *a, "--desc", f"c{i}"], e) for i, (a, e) in enumerate(zip(TRAIN, TRAIN_EXPECT))
    ]
    cases += [([*base, *a, "--desc", f"d{i}"], e) for i, (a, e) in enumerate(TRAIN_DATA)]
    cases += [(["--outdir", "{tmp}/runs", "--preset", "{preset_%s}" % name, "--dry-run"], e) for name, e in PRESETS]
    cases += [
        ([*base, "--data", "{data}", "--desc", "run_truncated"], "run_truncated"),
        ([*base, "--data", "{data}", "--desc", "run_malicious"], "run_malicious"),
        (["--outdir", "{file}", "--data", "{data}", *TINY_NET, "--batch", "8"], "a-file"),
        (["--outdir", "{unwritable}", "--data", "{data}", *TINY_NET, "--batch", "8"], "infonoise-nope"),
    ]
    return cases


def generate_cases():
    net = ["--network", "{snap}", "--outdir", "{tmp}/gen", "--steps", "2"]
    return [
        (["--network", "{tmp}/missing.pt", "--outdir", "{tmp}/gen"], "missing.pt"),
        (["--network", "{truncated}", "--outdir", "{tmp}/gen"], "truncated.pt"),
        (["--network", "{malicious}", "--outdir", "{tmp}/gen"], "malicious.pt"),
        (["--network", "{plain_pt}", "--outdir", "{tmp}/gen"], "plain.pt"),
        (["--network", "{text}", "--outdir", "{tmp}/gen"], "notes.txt"),
        ([*net, "--seeds", "a-b"], "a-b"),
        ([*net, "--seeds", "5-2"], "5-2"),
        ([*net, "--seeds", ""], "seeds"),
        ([*net, "--steps", "0"], "steps"),
        ([*net, "--batch", "0"], "batch"),
        ([*net, "--grid", "bogus"], "bogus"),
        ([*net, "--grid", "infogrid"], "probe-data"),
        ([*net, "--class", "99"], "class"),
        ([*net, "--device", "bogus"], "bogus"),
        ([*net, "--device", "cuda"], "CUDA"),
        (["--network", "{snap}", "--npz", "{tmp}"], "directory"),
        (["--network", "{snap}", "--npz", "{unwritable}.npz"], "nope"),
        (["--network", "{snap}", "--outdir", "{file}"], "a-file"),
        (["--network", "{snap}"], "nothing to write"),
        ([*net, "--sigma-min", "100", "--sigma-max", "200"], "σ range"),
        ([*net, "--rho", "0"], "rho"),
        ([*net, "--grid", "infogrid", "--probe-data", "{tmp}/missing.zip"], "missing.zip"),
        ([*net, "--grid", "infogrid", "--probe-data", "{text}"], "notes.txt"),
        ([*net, "--solver", "bogus"], "bogus"),
        ([*net, "--S-churn", "-1"], "S-churn"),
        (["--network", "{snap}", "--grid-png", "{tmp}"], "directory"),
        # issue 25: non-finite sampler numbers, bounded work from a typo
        ([*net, "--S-churn", "1", "--S-noise", "nan"], "S-noise"),
        ([*net, "--S-churn", "1", "--S-noise", "inf"], "S-noise"),
        ([*net, "--S-churn", "nan"], "S-churn"),
        ([*net, "--S-churn", "1", "--S-min", "nan"], "S-min"),
        ([*net, "--S-churn", "1", "--S-max", "nan"], "S-max"),
        ([*net, "--S-churn", "1", "--S-min", "5", "--S-max", "1"], "S-min"),
        ([*net, "--rho", "nan"], "rho"),
        ([*net, "--rho", "inf"], "rho"),
        ([*net, "--sigma-min", "nan"], "sigma-min"),
        ([*net, "--sigma-max", "inf"], "sigma-max"),
        ([*net, "--steps", "100000000000000000000"], "steps"),
        ([*net, "--batch", "100000000000000000000"], "batch"),
        ([*net, "--batch", "10000000000000"], "batch"),
        ([*net, "--class", "100000000000000000000"], "class"),
        ([*net, "--seeds", "0-99999999999"], "seeds"),
        ([*net, "--seeds", "99999999999999999999999"], "seeds"),
        ([*net, "--seeds", "0-5,5-9"], "seeds"),
        ([*net, "--rho", "1e-300"], "rho"),
        ([*net, "--grid", "infogrid", "--probe-data", "{data}", "--probe-samples", "100000000000000"], "probe-samples"),
        ([*net, "--grid", "infogrid", "--probe-data", "{data}", "--probe-bins", "1000000000"], "probe-bins"),
    ]


def fid_cases():
    return [
        (["ref", "--data", "{tmp}/missing.zip", "--dest", "{tmp}/r.npz", "--detector", "lenet-digits"], "missing.zip"),
        (["ref", "--data", "{one_npz}", "--dest", "{tmp}/r.npz", "--detector", "lenet-digits"], "at least 2"),
        (["ref", "--data", "{images_npz}", "--dest", "{tmp}", "--detector", "lenet-digits"], "folder"),
        (["ref", "--data", "{images_npz}", "--dest", "{unwritable}.npz", "--detector", "lenet-digits"], "nope"),
        (["ref", "--data", "{images_npz}", "--dest", "{tmp}/r.npz", "--detector", "bogus"], "bogus"),
        (["ref", "--data", "{images_npz}", "--dest", "{tmp}/r.npz", "--detector", "{tmp}/missing.pt"], "missing.pt"),
        (["ref", "--data", "{images_npz}", "--dest", "{tmp}/r.npz", "--detector", "{malicious}"], "malicious.pt"),
        (["ref", "--data", "{text}", "--dest", "{tmp}/r.npz", "--detector", "lenet-digits"], "notes.txt"),
        (["ref", "--data", "{nokey_npz}", "--dest", "{tmp}/r.npz", "--detector", "lenet-digits"], "nokey.npz"),
        (["ref", "--data", "{images_npz}", "--dest", "{tmp}/r.npz", "--max-size", "1"], "max-size"),
        (["calc", "--images", "{tmp}/missing", "--ref", "{ref}"], "missing"),
        (["calc", "--images", "{images_npz}", "--ref", "{tmp}/nope.npz"], "nope.npz"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref_corrupt}"], "ref_corrupt.npz"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref_nan}"], "NaN"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref_badkeys}"], "ref_badkeys.npz"),
        (["calc", "--images", "{partial}", "--ref", "{ref}"], "partial"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref}", "--detector", "lenet-mnist"], "lenet-mnist"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref}", "--num", "1000"], "1000"),
        (["calc", "--images", "{nokey_npz}", "--ref", "{ref}"], "nokey.npz"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref}", "--num", "1"], "num"),
        (["calc", "--images", "{one_npz}", "--ref", "{ref}"], "one.npz"),
        # issue 25: the metric checks what it compares
        (["calc", "--images", "{img86}", "--ref", "{ref8}"], "img86.npz"),
        (["calc", "--images", "{img16}", "--ref", "{ref8}"], "img16.npz"),
        (["calc", "--images", "{rgb8}", "--ref", "{ref8}"], "rgb8.npz"),
        (["calc", "--images", "{ambiguous}", "--ref", "{ref8}"], "layout"),
        (["calc", "--images", "{bad_layout}", "--ref", "{ref8}"], "HWNC"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref_asym}"], "ref_asym.npz"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref_nodet}"], "ref_nodet.npz"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref_str}"], "ref_str.npz"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref_notpsd}"], "ref_notpsd.npz"),
        (["calc", "--images", "{mixed_folder}", "--ref", "{ref8}", "--allow-partial"], "000009.png"),
        (["calc", "--images", "{mixed_folder}", "--ref", "{ref8}", "--allow-partial", "--workers", "0"], "000009.png"),
        (["ref", "--data", "{mixed_folder}", "--dest", "{tmp}/r.npz", "--detector", "lenet-digits"], "000009.png"),
        (["ref", "--data", "{ambiguous}", "--dest", "{tmp}/r.npz", "--detector", "lenet-digits"], "layout"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref8}", "--seed", "-1"], "seed"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref8}", "--batch", "100000000000000000000"], "batch"),
        (["calc", "--images", "{images_npz}", "--ref", "{ref8}", "--workers", "nan"], "workers"),
        (["gen", "--network", "{snap}", "--ref", "{ref8}", "--seeds", "0-99999999999"], "seeds"),
        (["gen", "--network", "{snap}", "--ref", "{ref8}", "--rho", "nan"], "rho"),
        (["gen", "--network", "{snap}", "--ref", "{ref_notpsd}", "--seeds", "0-1"], "ref_notpsd.npz"),
        (["train-detector", "--dataset", "digits", "--out", "{tmp}/d.pt", "--epochs", "100000000"], "epochs"),
        (["gen", "--network", "{tmp}/missing.pt", "--ref", "{ref}"], "missing.pt"),
        (["gen", "--network", "{malicious}", "--ref", "{ref}"], "malicious.pt"),
        (["gen", "--network", "{snap}", "--ref", "{ref}", "--seeds", "x"], "x"),
        (["gen", "--network", "{snap}", "--ref", "{ref}", "--seeds", "3"], "2 seeds"),
        (["gen", "--network", "{snap}", "--ref", "{tmp}/nope.npz"], "nope.npz"),
        (["gen", "--network", "{snap}", "--ref", "{ref}", "--grid", "bogus"], "bogus"),
        (["gen", "--network", "{snap}", "--ref", "{ref}", "--device", "bogus"], "bogus"),
        (["train-detector", "--dataset", "bogus", "--out", "{tmp}/d.pt"], "bogus"),
        (["train-detector", "--dataset", "digits", "--out", "{unwritable}.pt", "--limit", "10"], "nope"),
    ]


def dataset_tool_cases():
    return [
        (["--source", "{tmp}/missing", "--dest", "{tmp}/o.zip"], "missing"),
        (["--source", "mnist-online", "--dest", "{tmp}/o.zip"], "mnist-online"),
        (["--source", "{partial}", "--dest", "{unwritable}.zip"], "nope"),
        (["--source", "{tar_corrupt}", "--dest", "{tmp}/o.zip"], "cifar-10-python.tar.gz"),
        (["--source", "{text}", "--dest", "{tmp}/o.zip"], "notes.txt"),
        (["--source", "{partial}", "--dest", "{tmp}/o.zip", "--resolution", "abc"], "abc"),
        (["--source", "{partial}", "--dest", "{tmp}/o.zip", "--channels", "5"], "channels"),
        (["--source", "{partial}", "--dest", "{data}"], "data.zip"),
        (["--source", "{partial}", "--dest", "{tmp}/o.zip", "--max-images", "0"], "max-images"),
        (["--source", "{traversal}", "--dest", "{tmp}/o.zip"], "traversal.zip"),
        (["--source", "{corrupt_png}", "--dest", "{tmp}/o2.zip"], "corrupt_png.zip"),
        (["--source", "{empty}", "--dest", "{tmp}/o3.zip"], "empty"),
        (["--source", "{partial}", "--dest", "{tmp}/o4.zip", "--resolution", "0"], "0"),
        (["--source", "{partial}", "--dest", "{file}"], "a-file"),
        (["--source", "{partial}", "--dest", "{tmp}/o5.zip", "--split", "bogus"], "bogus"),
        (["--source", "{partial}", "--dest", "{tmp}/o6.zip", "--seed", "-1"], "seed"),
        (["--source", "{partial}", "--dest", "{tmp}/o6.zip", "--seed", "99999999999999999999"], "seed"),
        (["--source", "{partial}", "--dest", "{tmp}/o6.zip", "--resolution", "100000"], "100000"),
        (["--source", "{partial}", "--dest", "{tmp}/o6.zip", "--max-images", "1.5"], "max-images"),
    ]


def dna_tool_cases():
    return [
        (["make-benchmark", "--out", "{tmp}/d.tsv", "--per-class", "0"], "per-class"),
        (["make-benchmark", "--out", "{unwritable}.tsv", "--per-class", "2"], "nope"),
        (["make-benchmark", "--out", "{tmp}/d.tsv", "--per-class", "2", "--length", "0"], "length"),
        (["make-benchmark", "--out", "{tmp}", "--per-class", "2"], "corpus"),
        (
            [
                "metrics",
                "--generated",
                "{tmp}/missing.fa",
                "--reference",
                "{fasta}",
                "--train",
                "{fasta}",
                "--out",
                "{tmp}/m.json",
            ],
            "missing.fa",
        ),
        (
            [
                "metrics",
                "--generated",
                "{fasta_bad}",
                "--reference",
                "{fasta}",
                "--train",
                "{fasta}",
                "--out",
                "{tmp}/m.json",
            ],
            "bad.fa",
        ),
        (
            [
                "metrics",
                "--generated",
                "{fasta}",
                "--reference",
                "{fasta}",
                "--train",
                "{fasta}",
                "--classifier",
                "{plain_pt}",
                "--out",
                "{tmp}/m.json",
            ],
            "plain.pt",
        ),
        (
            [
                "metrics",
                "--generated",
                "{fasta}",
                "--reference",
                "{fasta}",
                "--train",
                "{fasta}",
                "--classifier",
                "{malicious}",
                "--out",
                "{tmp}/m.json",
            ],
            "malicious.pt",
        ),
        (
            [
                "metrics",
                "--generated",
                "{fasta}",
                "--reference",
                "{fasta}",
                "--train",
                "{fasta}",
                "--out",
                "{unwritable}.json",
            ],
            "nope",
        ),
        (["train-classifier", "--train", "{tmp}/missing.tsv", "--out", "{tmp}/c.pt"], "missing.tsv"),
        (["train-classifier", "--train", "{fasta_bad}", "--out", "{tmp}/c.pt"], "bad.fa"),
        (["train-classifier", "--train", "{fasta}", "--out", "{unwritable}.pt"], "nope"),
        (["train-classifier", "--train", "{fasta}", "--out", "{tmp}/c.pt", "--lr", "nan"], "lr"),
        (["make-benchmark", "--out", "{tmp}/d.tsv", "--per-class", "100000000000000"], "per-class"),
        (["make-benchmark", "--out", "{tmp}/d.tsv", "--per-class", "2", "--length", "100000000000"], "length"),
        (["make-benchmark", "--out", "{tmp}/d.tsv", "--per-class", "2", "--seed", "-1"], "seed"),
        (
            ["metrics", "--generated", "{fasta_short}", "--reference", "{fasta}", "--train", "{fasta}"]
            + ["--out", "{tmp}/m.json"],
            "short.fa",
        ),
        (
            ["metrics", "--generated", "{fasta_rna}", "--reference", "{fasta}", "--train", "{fasta}"]
            + ["--out", "{tmp}/m.json"],
            "rna.fa",
        ),
        (
            ["metrics", "--generated", "{fasta}", "--reference", "{fasta}", "--train", "{fasta}", "--pvalue", "nan"]
            + ["--out", "{tmp}/m.json"],
            "pvalue",
        ),
        (
            ["metrics", "--generated", "{fasta}", "--reference", "{fasta}", "--train", "{fasta}", "--motifs", ","]
            + ["--out", "{tmp}/m.json"],
            "motifs",
        ),
    ]


TOOLS = {
    "train": ("train:main", train_cases),
    "generate": ("generate:main", generate_cases),
    "fid": ("fid:cli", fid_cases),
    "dataset_tool": ("dataset_tool:main", dataset_tool_cases),
    "dna_tool": ("dna_tool:cli", dna_tool_cases),
}


def run_tool(target, cases, env, tmp_path):
    args = [[a.format(**env) for a in case] for case, _ in cases]
    (tmp_path / "cases.json").write_text(json.dumps(args))
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "bad_input_worker.py"), target, str(tmp_path / "cases.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("tool", list(TOOLS))
def test_bad_inputs_give_one_line_errors(tool, env, tmp_path):
    target, make = TOOLS[tool]
    cases = make()
    PWNED.unlink(missing_ok=True)
    results = run_tool(target, cases, env, tmp_path)
    failures = []
    for (_, culprit), r in zip(cases, results):
        errors = [line for line in r["stderr"].splitlines() if line.startswith("Error")]
        problem = (
            "exit 0"
            if r["code"] == 0
            else "traceback"
            if "Traceback" in r["stderr"]
            else f"{len(errors)} error lines"
            if len(errors) != 1
            else f"error does not name {culprit!r}"
            if culprit.format(**env) not in errors[0]
            else None
        )
        if problem:
            failures.append(f"{' '.join(r['args'])}\n    → {problem}: {r['stderr'].strip()[-400:]}")
    assert not PWNED.exists(), "a file given to a tool ran code"
    assert not failures, f"{len(failures)}/{len(cases)} cases:\n" + "\n".join(failures)


def test_corpus_size():
    assert sum(len(make()) for _, make in TOOLS.values()) >= 115
