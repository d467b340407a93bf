"""An EDM user moves over: EDM's command lines work (replayed against --dry-run), EDM network pickles are
imported without running code from them, and the imported network samples as it did."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import generate
import train
from models import import_edm
from models.networks import build_network
from sampling.generation import load_network
from tests.conftest import write_image_dataset
from torch_utils import checkpoint

MARKER = Path("/tmp/infonoise-edm-pwned")
EDM_KWARGS = dict(
    img_resolution=8,
    img_channels=1,
    label_dim=0,
    use_fp16=False,
    sigma_min=0,
    sigma_max=float("inf"),
    sigma_data=0.5,
    model_type="SongUNet",
    embedding_type="positional",
    encoder_type="standard",
    decoder_type="standard",
    channel_mult_noise=1,
    resample_filter=[1, 1],
    model_channels=16,
    channel_mult=[1, 2],
    num_blocks=1,
    attn_resolutions=[4],
    dropout=0.0,
)


def _reconstruct_persistent_obj(meta):  # pickled by reference as torch_utils.persistence's; never called here
    raise AssertionError("the importer must not call EDM's reconstruct function")


class Persistent:
    """An object pickled as EDM's torch_utils.persistence pickles its network classes."""

    def __init__(self, class_name, state, module_src="pass"):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def edm_tree(module: torch.nn.Module, class_name: str, src: str) -> Persistent:
    """Our module tree in EDM's layout: same names, EDM's qkv channel order, EDM's resample-filter buffers."""
    params = OrderedDict()
    for name, p in module._parameters.items():
        if p is not None:
            params[name] = torch.nn.Parameter(p.detach().clone())
    children = OrderedDict((n, edm_tree(c, type(c).__name__, src)) for n, c in module._modules.items() if c is not None)
    buffers = OrderedDict((n, b.clone()) for n, b in module._buffers.items() if b is not None)
    if type(module).__name__ == "Conv" and getattr(module, "down", False) or getattr(module, "up", False):
        buffers["resample_filter"] = torch.ones(1, 1, 2, 2) / 4
    return Persistent(class_name, dict(_parameters=params, _buffers=buffers, _modules=children, training=False), src)


def write_edm_pickle(path: Path, net: torch.nn.Module, src: str = "pass") -> None:
    """An EDM network-snapshot pickle of `net`: {'ema': EDMPrecond(...), 'dataset_kwargs': ...}."""
    tree = edm_tree(net, "EDMPrecond", src)
    for name, module in net.named_modules():  # attention qkv back to EDM's [head, channel, q|k|v] order
        if hasattr(module, "qkv") and getattr(module, "num_heads", 0):
            node = tree
            for part in f"{name}.qkv".split("."):
                node = node.meta["state"]["_modules"][part]
            for key in ("weight", "bias"):
                w = node.meta["state"]["_parameters"][key].data
                h = module.num_heads
                ours = w.reshape(3, h, w.shape[0] // 3 // h, *w.shape[1:])
                node.meta["state"]["_parameters"][key] = torch.nn.Parameter(
                    ours.permute(1, 2, 0, *range(3, ours.ndim)).reshape(w.shape)
                )
    tree.meta["state"]["_init_kwargs"] = dict(EDM_KWARGS)
    fake = types.ModuleType("torch_utils.persistence")
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    sys.modules["torch_utils.persistence"] = fake
    try:
        with open(path, "wb") as f:
            pickle.dump({"ema": tree, "dataset_kwargs": {"path": "datasets/x.zip"}}, f)
    finally:
        del sys.modules["torch_utils.persistence"]


@pytest.fixture(scope="module")
def ours():
    torch.manual_seed(0)
    net = build_network(
        "ddpmpp",
        "edm",
        data_shape=[1, 8, 8],
        model_channels=16,
        channel_mult=[1, 2],
        num_blocks=1,
        attn_resolutions=[4],
        dropout=0.0,
        sigma_min=0.002,
        sigma_max=80.0,
    )
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # zero-initialised layers get weights too
    return net.eval()


def test_edm_pickle_round_trips_to_equal_outputs(ours, tmp_path):
    pkl, out = tmp_path / "edm.pkl", tmp_path / "imported.pt"
    MARKER.unlink(missing_ok=True)
    write_edm_pickle(pkl, ours, src=f"import os\nos.system('touch {MARKER}')\n")  # code that must never run
    r = CliRunner().invoke(import_edm.main, [str(pkl), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert not MARKER.exists()
    snap = checkpoint.load(out)
    assert snap["options"]["network_kwargs"]["arch"] == "ddpmpp"
    assert snap["options"]["network_kwargs"]["sigma_max"] == 80.0  # EDMPrecond's inf → EDM's sampler range
    imported, profile = load_network(out)
    x, sigma = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([0.05, 1.0, 20.0])
    with torch.no_grad():
        assert torch.equal(ours(x, sigma), imported(x, sigma))
    assert profile is None
    r = CliRunner().invoke(
        generate.main,
        [
            "--network",
            str(out),
            "--seeds",
            "0-3",
            "--steps",
            "3",
            "--npz",
            str(tmp_path / "s.npz"),
            "--grid",
            "infogrid",
            "--probe-data",
            str(write_image_dataset(tmp_path / "d.zip", n=16, res=8)[0]),
            "--probe-samples",
            "4",
            "--probe-bins",
            "8",
        ],
    )
    assert r.exit_code == 0, r.output


def test_qkv_reordering_is_the_inverse_of_edms(ours):
    w = torch.arange(48.0).reshape(48, 1)
    h = 2
    edm = w.reshape(3, h, 8, 1).permute(1, 2, 0, 3).reshape(48, 1)
    assert torch.equal(import_edm.qkv_edm_to_ours(edm, h), w)


def test_code_payload_pickle_is_refused_and_runs_nothing(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {MARKER}",))

    MARKER.unlink(missing_ok=True)
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"ema": Payload()}))
    r = CliRunner().invoke(import_edm.main, [str(bad), "--out", str(tmp_path / "o.pt")])
    assert r.exit_code != 0 and "refusing" in r.output and "system" in r.output and "Traceback" not in r.output
    assert not MARKER.exists()
    r = CliRunner().invoke(import_edm.main, [str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "o.pt")])
    assert r.exit_code != 0 and "missing.pkl: not found" in r.output


# EDM's documented example commands (its README), with its dataset and network paths made local.
EDM_TRAIN = [
    "--outdir=training-runs --data={data} --cond=1 --arch=ddpmpp",
    "--outdir=training-runs --data={data} --cond=0 --arch=ncsnpp --batch-gpu=32 --cres=1,2,2 --lr=2e-4 --dropout=0.25",
    "--outdir=training-runs --data={data} --cond=0 --arch=ddpmpp --xflip=1 --precond=vp --fp16=0 -n",
    "--outdir=training-runs --data={data} --cond=0 --arch=ncsnpp --batch-gpu=32 --cres=1,2,2 --lr=2e-4 --dropout=0.25 "
    "--augment=0.15",
]
EDM_TRAIN_REFUSED = [
    ("--outdir=training-runs --data={data} --ls=100", "--ls"),
    ("--outdir=training-runs --data={data} --nosubdir", "--desc"),
    ("--outdir=training-runs --data={data} --resume=training-state.pt", "same command"),
]
EDM_GENERATE = [
    "--outdir=out --seeds=0-63 --batch=64 --network={pkl}",
    "--outdir=out --steps=18 --network={pkl}",
    "--outdir=out --steps=256 --S_churn=40 --S_min=0.05 --S_max=50 --S_noise=1.003 --network={pkl}",
    "--outdir=fid-tmp --seeds=0-49999 --subdirs --network={pkl}",
    "--outdir=out --steps=18 --solver=heun --disc=edm --schedule=linear --scaling=none --network={pkl}",
    "--outdir=out --sigma_min=0.01 --sigma_max=40 --rho=5 --network={pkl}",
]
EDM_GENERATE_REFUSED = [
    ("--outdir=out --steps=512 --solver=euler --disc=vp --schedule=vp --scaling=vp --network={pkl}", "--disc=vp"),
    ("--outdir=out --steps=128 --solver=heun --disc=edm --schedule=vp --scaling=vp --network={pkl}", "--schedule=vp"),
]


def test_edm_command_lines_replay(ours, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_image_dataset(tmp_path / "cifar10-32x32.zip", n=16, res=32, channels=3, labels=True)[0]
    pkl = tmp_path / "net.pt"
    write_edm_pickle(tmp_path / "net.pkl", ours)
    CliRunner().invoke(import_edm.main, [str(tmp_path / "net.pkl"), "--out", str(pkl)])
    for line in EDM_TRAIN:
        args = line.format(data=data).split() + ["--dry-run"] * ("-n" not in line)
        r = CliRunner().invoke(train.main, args)
        assert r.exit_code == 0, (line, r.output)
    opts = __import__("json").loads(
        CliRunner().invoke(train.main, EDM_TRAIN[0].format(data=data).split() + ["-n"]).output
    )
    assert opts["cond"] is True and opts["arch"] == "ddpmpp"
    line = "--outdir=r --data={data} --fp16=1 --bench=0 --workers=3 -n".format(data=data)
    opts = __import__("json").loads(CliRunner().invoke(train.main, line.split()).output)
    assert (opts["precision"], opts["cudnn_benchmark"], opts["workers"]) == ("fp16", False, 3)
    for line, culprit in EDM_TRAIN_REFUSED:
        r = CliRunner().invoke(train.main, line.format(data=data).split() + ["-n"])
        assert r.exit_code != 0 and culprit in r.output and "Traceback" not in r.output, (line, r.output)
    for line in EDM_GENERATE:
        r = CliRunner().invoke(generate.main, line.format(pkl=pkl).split() + ["--dry-run"])
        assert r.exit_code == 0 and "Dry run" in r.output, (line, r.output)
    r = CliRunner().invoke(generate.main, EDM_GENERATE[5].format(pkl=pkl).split() + ["-n"])
    assert "σ: 40 " in r.output and " 0.01 0" in r.output  # --sigma_max/--sigma_min reached the grid
    for line, culprit in EDM_GENERATE_REFUSED:
        r = CliRunner().invoke(generate.main, line.format(pkl=pkl).split() + ["-n"])
        assert r.exit_code != 0 and culprit in r.output, (line, r.output)
    assert not Path("out").exists() and not Path("training-runs").exists()  # dry runs write nothing


def test_readme_python_api_block_runs(tmp_path, capsys):
    """The README's Python API block, executed as written with its two files made here: a trained snapshot with
    a learned profile and the reference statistics `fid.py ref` writes."""
    import re

    from evaluation.detectors import get_detector
    from evaluation.frechet import dataset_stats, open_images, save_stats

    block = re.search(
        r"## Python API.*?```python\n(.*?)```", (Path(__file__).parents[1] / "README.md").read_text(), re.S
    )
    code = block.group(1)
    data = write_image_dataset(tmp_path / "digits.zip", n=32, res=8, labels=False)[0]
    r = CliRunner().invoke(
        train.main,
        [
            "--outdir",
            str(tmp_path),
            "--data",
            str(data),
            "--arch",
            "ddpmpp",
            "--cbase",
            "8",
            "--cres",
            "1,2",
            "--net-opt",
            "num_blocks=1",
            "--net-opt",
            "attn_resolutions=[]",
            "--batch",
            "8",
            "--duration",
            "0.00008",
            "--tick",
            "0.04",
            "--sample-grid",
            "0",
            "--scheduler",
            "infonoise",
            "--sched-opt",
            "warmup_steps=2",
            "--sched-opt",
            "refresh_every=2",
            "--sched-opt",
            "min_count=1",
            "--sched-opt",
            "num_bins=8",
            "--sched-opt",
            "floor=0.5",
            "--desc",
            "run",
        ],
    )
    assert r.exit_code == 0, r.output
    det = get_detector("lenet-digits")
    stats = dataset_stats(open_images(str(data)), det, progress=False)
    save_stats(tmp_path / "ref.npz", *stats.mean_cov(), det.name, stats.count, det.fingerprint)
    snapshot = checkpoint.latest_snapshot(tmp_path / "run")
    code = code.replace("demo-run/digits-infonoise/network-snapshot-000200.pt", str(snapshot))
    code = code.replace("demo-run/digits-ref.npz", str(tmp_path / "ref.npz"))
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"FD \d+\.\d{3}, σ-grid \[80\.0, .*, 0\.0\]", out), out


def test_import_refusals_name_the_file(ours, tmp_path):
    """Every refusal of an EDM pickle names the file: not a network, no constructor arguments, arguments
    without the resolution, weights of other shapes."""
    tree = edm_tree(ours, "EDMPrecond", "pass")
    cases = {
        "notnet.pkl": {"ema": OrderedDict(a=1)},
        "noargs.pkl": {"ema": tree},
        "nores.pkl": {"ema": Persistent("EDMPrecond", {**tree.meta["state"], "_init_kwargs": {"img_channels": 1}})},
        "shapes.pkl": {
            "ema": Persistent("EDMPrecond", {**tree.meta["state"], "_init_kwargs": {**EDM_KWARGS, "model_channels": 8}})
        },
    }
    fake = types.ModuleType("torch_utils.persistence")
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    sys.modules["torch_utils.persistence"] = fake
    try:
        for name, obj in cases.items():
            (tmp_path / name).write_bytes(pickle.dumps(obj))
    finally:
        del sys.modules["torch_utils.persistence"]
    for name in cases:
        r = CliRunner().invoke(import_edm.main, [str(tmp_path / name), "--out", str(tmp_path / "o.pt")])
        errors = [line for line in r.output.splitlines() if line.startswith("Error")]
        assert r.exit_code != 0 and "Traceback" not in r.output and len(errors) == 1, (name, r.output)
        assert str(tmp_path / name) in errors[0], (name, r.output)
