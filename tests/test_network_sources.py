"""A network is taken wherever it is taken: our .pt, an EDM .pkl (converted in memory), or a file:// or
http:// URL to either, in generate.py, fid.py, analysis and train.py --transfer; fid.py calc --ref takes a URL.
The HTTP server is a local one (tests/conftest.py http_folder): nothing leaves the machine."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fid
import generate
import train
from analysis import audit
from evaluation.detectors import load_digit_data
from evaluation.frechet import save_stats
from models import import_edm
from tests.conftest import write_image_dataset
from tests.test_edm_pickles import DATA, edm_outputs
from torch_utils import checkpoint

KIND = "edm-ddpmpp-uncond"  # EDM precond + DDPM++, 3x8x8, augment labels (like EDM's CIFAR-10 networks)
# EDM's own generate.py spellings, as an EDM user types them (churn as in EDM's README).
EDM_ARGS = "--seeds=0-3 --steps=5 --batch=3 --S_churn=40 --S_min=0.05 --S_max=50 --S_noise=1.003".split()


@pytest.fixture
def served(http_folder, tmp_path):
    """The EDM-written pickle and its conversion to our .pt, both in the served folder."""
    folder, base, requests = http_folder
    shutil.copy(DATA / f"{KIND}.pkl", folder / "edm.pkl")
    r = CliRunner().invoke(import_edm.main, [str(folder / "edm.pkl"), "--out", str(folder / "edm.pt")])
    assert r.exit_code == 0, r.output
    return folder, base, requests


def _generate(network: str, out, *extra: str) -> CliRunner:
    r = CliRunner().invoke(generate.main, ["--network", network, "--npz", str(out), *extra])
    assert r.exit_code == 0, r.output
    return r


def test_generate_takes_pkl_pt_and_urls_to_either_and_gives_edms_images(served, tmp_path):
    folder, base, requests = served
    expect = edm_outputs(KIND)["uint8_churn40"]  # EDM's edm_sampler with these seeds and churn
    sources = [
        str(folder / "edm.pkl"),
        f"file://{folder / 'edm.pkl'}",
        f"{base}/edm.pkl",
        f"{base}/edm.pkl",  # again: from the cache
        str(folder / "edm.pt"),
        f"{base}/edm.pt",
    ]
    for i, source in enumerate(sources):
        _generate(source, tmp_path / f"{i}.npz", *EDM_ARGS)
        with np.load(tmp_path / f"{i}.npz") as z:
            assert np.array_equal(z["images"].transpose(0, 3, 1, 2), expect), source
    assert requests == ["/edm.pkl", "/edm.pt"]  # each URL downloaded once


def test_vp_network_samples_on_edms_sigma_range_unless_told(tmp_path):
    url = f"file://{DATA / 'vp-ddpmpp-cond.pkl'}"
    r = _generate(url, tmp_path / "vp.npz", "--seeds", "0-3", "--steps", "5")
    assert "Note: σ range [0.002, 80], EDM's sampler range within the network's [0.0010005, 152.167]" in r.output
    with np.load(tmp_path / "vp.npz") as z:
        assert np.array_equal(z["images"].transpose(0, 3, 1, 2), edm_outputs("vp-ddpmpp-cond")["uint8_churn0"])
    r = _generate(url, tmp_path / "x.npz", "--steps", "3", "--sigma_max=100", "--sigma_min=0.001", "-n")
    assert "σ: 100 " in r.output and " 0.001 0\n" in r.output  # EDM's --sigma_min/--sigma_max still override
    r = _generate(url, tmp_path / "x.npz", "--steps", "3", "--grid", "loguniform", "-n")
    assert "σ: 152.2 " in r.output  # other grids keep the network's own range


def test_fid_calc_takes_a_reference_url(http_folder, tmp_path):
    folder, base, requests = http_folder
    images = load_digit_data("digits")[0][:40]
    np.savez(tmp_path / "images.npz", images=images.transpose(0, 2, 3, 1))
    rnd = np.random.RandomState(0)
    a = rnd.randn(128, 128)
    save_stats(folder / "ref.npz", rnd.randn(128), a @ a.T / 128, "lenet-digits", 1000)
    scores = []
    for ref in (str(folder / "ref.npz"), f"file://{folder / 'ref.npz'}", f"{base}/ref.npz"):
        r = CliRunner().invoke(
            fid.cli, ["calc", "--images", str(tmp_path / "images.npz"), "--ref", ref, "--workers", "0"]
        )
        assert r.exit_code == 0, r.output
        scores.append(float(r.stdout.strip().splitlines()[-1]))
        warning = [line for line in r.output.splitlines() if line.startswith("Warning:")]
        assert warning == [
            "Warning: scoring 40 images; a Fréchet distance from fewer than 50,000 (EDM's count) is biased upward, "
            "so compare it only with scores of as many images"
        ]
    assert scores[0] == scores[1] == scores[2] > 0 and requests == ["/ref.npz"]
    shutil.copy(DATA / "edm-ddpmpp-cond.pkl", folder / "grey.pkl")  # 1x8x8, as the digit detector reads
    gen = ["gen", "--network", f"{base}/grey.pkl", "--ref", f"{base}/ref.npz", "--seeds", "0-9", "--steps", "3"]
    r = CliRunner().invoke(fid.cli, gen)
    assert r.exit_code == 0 and float(r.stdout.strip().splitlines()[-1]) > 0, r.output
    assert "Warning: scoring 10 images" in r.output
    r = CliRunner().invoke(fid.cli, ["calc", "--images", str(tmp_path / "images.npz"), "--ref", f"{base}/none.npz"])
    assert r.exit_code != 0 and "HTTP 404" in r.output and len(r.output.strip().splitlines()) == 1


def test_audit_probes_an_edm_pickle_url(served, tmp_path):
    folder, base, _ = served
    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8, channels=3, labels=False)[0]
    args = ["--data", str(data), "--out", str(tmp_path / "a"), "--probe-samples", "4", "--num-bins", "16"]
    r = CliRunner().invoke(audit.main, [*args, "--checkpoint", f"{base}/edm.pkl"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "a" / "audit.json").read_text())["source"] == "probed from edm.pkl"


def _train(*args: str) -> CliRunner:
    return CliRunner().invoke(train.main, list(args), catch_exceptions=False)


def test_transfer_fine_tunes_an_edm_pickle_with_infonoise(served, tmp_path):
    """train.py --transfer URL: the run starts from the pickle's weights (EMA too) — its first snapshot, after
    one step at the ramped-up learning rate 0, holds exactly them — with a fresh optimizer and InfoNoise;
    a re-run resumes from its own snapshot, not from the pickle again."""
    folder, base, _ = served
    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8, channels=3, labels=False)[0]
    run = [
        *("--outdir", str(tmp_path / "runs"), "--data", str(data), "--transfer", f"{base}/edm.pkl"),
        *("--scheduler", "infonoise", "--augment", "0.12", "--batch", "8", "--duration", "0.001"),
        *("--sample-grid", "0", "--desc", "ft"),
    ]
    r = _train(*run, "--stop-after-steps", "1")
    assert r.exit_code == 0, r.output
    assert "Transferred the weights of" in r.output
    snap = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "runs" / "ft"))
    assert snap["options"]["transfer"] == f"{base}/edm.pkl" and snap["options"]["scheduler"] == "infonoise"
    assert snap["options"]["network_kwargs"]["augment_dim"] == 9 and snap["progress"]["global_step"] == 1
    edm, _ = import_edm.import_network(folder / "edm.pkl")
    expected = edm.state_dict()
    for which in ("net", "ema"):
        assert snap[which].keys() == expected.keys()
        assert all(torch.equal(snap[which][k], v) for k, v in expected.items()), which
    assert all(float(s["step"]) == 1 for s in snap["optimizer"]["state"].values())  # a fresh Adam, one step in
    r = _train(*run, "--stop-after-steps", "3")
    assert r.exit_code == 0 and "Resuming from" in r.output and "Transferred" not in r.output, r.output
    snap = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "runs" / "ft"))
    assert snap["progress"]["global_step"] == 4
    assert not all(torch.equal(snap["net"][k], v) for k, v in expected.items())  # and then it trains


def test_transfer_takes_the_networks_shape_and_names_what_does_not_fit(served, tmp_path):
    folder, base, _ = served
    data = write_image_dataset(tmp_path / "d.zip", n=8, res=8, channels=3, labels=True)[0]
    grey = write_image_dataset(tmp_path / "g.zip", n=8, res=8, channels=1, labels=False)[0]
    common = ["--outdir", str(tmp_path / "r"), "--transfer", str(folder / "edm.pkl"), "-n"]
    r = _train(*common, "--data", str(data))
    opts = json.loads(r.output)
    assert opts["network_kwargs"]["model_channels"] == 8 and "augment_dim" not in opts["network_kwargs"]
    assert opts["desc"] == "d-lognormal-edm-from-edm"
    r = _train(*common, "--data", str(data), "--dropout", "0.2")
    assert json.loads(r.output)["network_kwargs"]["dropout"] == 0.2
    for extra, message in [
        (["--data", str(data), "--cbase", "16"], "its network has model_channels=8"),
        (["--data", str(data), "--arch", "adm"], "--arch adm: the --transfer network has arch 'ddpmpp'"),
        (["--data", str(data), "--cond"], "takes 0 class labels, the run gives 3; drop --cond"),
        (["--data", str(grey)], "a network for data of shape [3, 8, 8], but --data"),
    ]:
        r = _train(*common, *extra)
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, (extra, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
    r = _train("--outdir", str(tmp_path / "r"), "--data", str(data), "--transfer", str(tmp_path / "no.pkl"), "-n")
    assert r.exit_code != 0 and "--transfer " in r.output and "no.pkl: no such snapshot" in r.output


def test_readme_edm_commands_run_as_typed(served, tmp_path, monkeypatch):
    """README's three EDM commands parse as written; the generate line runs on a served EDM-written pickle."""
    import re
    import shlex

    from tests.conftest import REPO

    block = re.search(r"## Coming from EDM.*?```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    lines = [line for line in block.replace("\\\n", " ").splitlines() if line and not line.startswith("#")]
    commands = {shlex.split(line)[1]: shlex.split(line)[2:] for line in lines}
    assert sorted(commands) == ["fid.py", "generate.py", "train.py"] and commands["fid.py"][0] == "calc"
    generate.main.make_context("generate.py", list(commands["generate.py"]))
    fid.calc.make_context("fid.py calc", commands["fid.py"][1:])
    train.main.make_context("train.py", list(commands["train.py"]))
    assert all(a.startswith("--") for c in commands.values() for a in c if a != "calc")
    monkeypatch.chdir(tmp_path)
    _, base, _ = served
    args = [re.sub(r"https://\S+\.pkl", f"{base}/edm.pkl", a) for a in commands["generate.py"]]
    r = CliRunner().invoke(generate.main, args)
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 64
