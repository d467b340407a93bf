"""Pickles written by NVlabs/edm's own code (tests/make_edm_pickles.py; no EDM code here) import through the
safe reader, give EDM's D(x; σ, labels) and EDM's sampler images; a pickle that would run code is refused."""

from __future__ import annotations

import inspect
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import generate
from models import import_edm, networks
from sampling.generation import build_sigmas, generate_batches, load_network, to_uint8
from tests.conftest import REPO

DATA = REPO / "tests" / "data" / "edm"
KINDS = {  # name: (arch, precond, label_dim)
    "edm-ddpmpp-uncond": ("ddpmpp", "edm", 0),
    "edm-ddpmpp-cond": ("ddpmpp", "edm", 10),
    "vp-ddpmpp-cond": ("ddpmpp", "vp", 4),
    "ve-ncsnpp-uncond": ("ncsnpp", "ve", 0),
    "edm-adm-cond": ("adm", "edm", 5),
}
MARKER = Path("/tmp/infonoise-edm-pickle-ran")


def edm_outputs(kind: str) -> dict:
    with np.load(DATA / f"{kind}.npz") as z:
        return {k: z[k] for k in z.files}


def relative_error(ours: np.ndarray, edm: np.ndarray) -> float:
    return float(np.abs(ours - edm).max() / np.abs(edm).max())


@pytest.mark.parametrize("kind", KINDS)
def test_edm_written_pickle_gives_edms_outputs(kind):
    """The reader takes what EDM writes (numpy scalars in every block's _init_kwargs, torch containers, the
    loss and augmentation objects) and our network computes EDM's D to ≤ 1e-5 relative. The pickle's embedded
    source is a placeholder that raises if run, so importing it also shows that no embedded source ran."""
    assert b"embedded module source was executed" in (DATA / f"{kind}.pkl").read_bytes()
    net, kwargs = import_edm.import_network(DATA / f"{kind}.pkl")
    assert (kwargs["arch"], kwargs["precond"], kwargs["label_dim"]) == KINDS[kind]
    z = edm_outputs(kind)
    x, sigma = torch.from_numpy(z["x"]), torch.from_numpy(z["sigma"])
    labels = torch.from_numpy(z["labels"]) if z["labels"].shape[1] else None
    with torch.no_grad():
        ours = net(x, sigma, labels).numpy()
        c_skip = net.precond_coefficients(sigma.reshape(-1, 1, 1, 1))[0].numpy()
    assert relative_error(ours, z["D"]) <= 1e-5
    assert np.abs(z["D"] - c_skip * z["x"]).max() > 0.1 * np.abs(z["D"]).max()  # the network's part is not nil


def test_reader_rebuilds_edms_snapshot_dict_as_data():
    obj = import_edm.load_pickle(DATA / "edm-ddpmpp-uncond.pkl")
    assert set(obj) == {"ema", "loss_fn", "augment_pipe", "dataset_kwargs"}
    assert obj["ema"].class_name == "EDMPrecond" and obj["ema"].state["_init_kwargs"]["augment_dim"] == 9
    assert obj["loss_fn"].class_name == "EDMLoss" and obj["loss_fn"].state["P_mean"] == -1.2
    assert obj["augment_pipe"].class_name == "AugmentPipe" and obj["augment_pipe"].state["p"] == 0.12
    assert obj["dataset_kwargs"]["resolution"] == 8
    blocks = obj["ema"].state["_modules"]["model"].state["_modules"]["enc"].state["_modules"]
    assert blocks["8x8_block0"].state["_init_kwargs"]["skip_scale"] == pytest.approx(np.sqrt(0.5))  # a numpy scalar
    assert type(blocks["8x8_block0"].state["_init_kwargs"]["skip_scale"]) is float


def test_numpy_1_spelling_of_a_scalar_is_read():
    """Official pickles were written under numpy 1.x, whose scalars live in numpy.core.multiarray."""
    data = pickle.dumps({"w": np.float32(0.25), "n": np.int64(-3)}, protocol=2)  # GLOBAL opcodes: plain text
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    assert import_edm.load_pickle(__import__("io").BytesIO(data)) == {"w": 0.25, "n": -3}


def test_adm_blocks_narrower_than_a_head_carry_no_attention():
    """EDM's rule (UNetBlock: num_heads = out_channels // channels_per_head, 0 means none): a tiny EDM ADM
    has no attention anywhere, which this project's default rule (at least one head) does not match."""
    edm = import_edm._network(import_edm.load_pickle(DATA / "edm-adm-cond.pkl"))
    kwargs = import_edm.network_kwargs(edm)
    assert kwargs["min_one_head"] is False and kwargs["attn_resolutions"] == [8, 4]
    net = networks.build_network(**kwargs)
    assert not any(name.endswith("qkv") for name, _ in net.named_modules())
    ours = networks.build_network(**{**kwargs, "min_one_head": True})
    with pytest.raises(ValueError, match=r"missing \['model\.dec\.4x4_block0\.norm2"):
        import_edm.load_weights(ours, edm, "adm")


def test_two_head_attention_block_matches_edms():
    """EDM's qkv channel layout with two heads, against EDM's own UNetBlock's output."""
    stub = import_edm.load_pickle(DATA / "attention-block.pkl")
    block = networks.UNetBlock(**stub.state["_init_kwargs"]).eval()
    assert block.num_heads == 2
    import_edm.load_weights(block, stub, "UNetBlock")
    with np.load(DATA / "attention-block.npz") as z:
        with torch.no_grad():
            y = block(torch.from_numpy(z["x"]), torch.from_numpy(z["emb"])).numpy()
        assert relative_error(y, z["y"]) <= 1e-5


def test_our_constructor_defaults_are_edms():
    """An official pickle records only the arguments EDM's train.py passed; the rest take the constructors'
    defaults, so ours must be EDM's. (The preconditioners' σ range is set by the importer: EDM builds
    EDMPrecond with [0, inf) and samples on [0.002, 80].)"""
    edm = json.loads((DATA / "defaults.json").read_text())
    importer_sets = {"EDMPrecond": {"sigma_min", "sigma_max", "model_type"}, "VPPrecond": {"model_type"}}
    importer_sets["VEPrecond"] = {"model_type"}
    ours = {
        "SongUNet": networks.SongUNet,
        "DhariwalUNet": networks.DhariwalUNet,
        "UNetBlock": networks.UNetBlock,
        "EDMPrecond": networks.EDMPrecond,
        "VPPrecond": networks.VPPrecond,
        "VEPrecond": networks.VEPrecond,
    }
    differ = []
    for name, defaults in edm.items():
        params = inspect.signature(ours[name]).parameters
        for key, value in defaults.items():
            if key in importer_sets.get(name, ()):
                continue
            mine = params[key].default if key in params else "(absent)"
            if (list(mine) if isinstance(mine, tuple) else mine) != value:
                differ.append(f"{name}.{key}: EDM {value!r}, ours {mine!r}")
    assert not differ, differ
    assert len(edm["SongUNet"]) > 10 and len(edm["DhariwalUNet"]) > 8


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("churn", [0, 40])
def test_our_sampler_gives_edms_images_for_edms_seeds(kind, churn):
    """EDM's edm_sampler on the same seeds (latents, labels, churn noise drawn at every step even where γ = 0
    with S_min/S_max switching churn off at both ends; VP/VE networks on EDM's [0.002, 80])."""
    z = edm_outputs(kind)
    net, _ = load_network(DATA / f"{kind}.pkl")
    sigmas = build_sigmas(net, "edm", int(z["steps"]))
    assert (float(sigmas[0]), float(sigmas[-2])) == (80.0, 0.02 if kind.startswith("ve") else 0.002)
    churn_args = (float(z["churn_S_min"]), float(z["churn_S_max"]), float(z["churn_S_noise"]))
    ((_, _, x, _),) = generate_batches(net, z["seeds"].tolist(), 8, sigmas, "heun", None, churn, *churn_args)
    assert relative_error(x.double().numpy(), z[f"images_churn{churn}"]) <= 1e-5
    assert np.array_equal(to_uint8(x).numpy(), z[f"uint8_churn{churn}"])


@pytest.mark.parametrize(
    "payload, culprit",
    [
        (b"cposix\nsystem\n(S'touch {marker}'\ntR.", "posix.system"),
        (b"cos\nsystem\n(S'touch {marker}'\ntR.", "os.system"),
        (b'ctorch_utils.persistence\n_src_to_module\n(S\'open("{marker}", "w")\'\ntR.', "_src_to_module"),
        (b'cbuiltins\nexec\n(S\'open("{marker}", "w")\'\ntR.', "builtins.exec"),
        (b"(dS'ema'\ncbuiltins\neval\n(S'open(\"{marker}\", \"w\")'\ntRs.", "builtins.eval"),
        (b"cnumpy._core.multiarray\nscalar\n(cnumpy\ndtype\n(S'O'\nI00\nI01\ntRS'x'\ntR.", "numpy dtype 'O'"),
    ],
)
def test_code_running_pickles_are_refused_and_run_nothing(payload, culprit, tmp_path):
    """Globals that run code — os.system, persistence's source executor, exec/eval, numpy's object
    scalars — are refused by name, in one line naming the file, wherever a network is taken."""
    MARKER.unlink(missing_ok=True)
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(payload.replace(b"{marker}", str(MARKER).encode()))
    r = CliRunner().invoke(import_edm.main, [str(bad), "--out", str(tmp_path / "o.pt")])
    assert r.exit_code != 0 and "Traceback" not in r.output and culprit in r.output, r.output
    assert re.fullmatch(rf"Error: {re.escape(str(bad))}: not a readable EDM network pickle \(refusing .*\)\n", r.output)
    r = CliRunner().invoke(generate.main, ["--network", str(bad), "--npz", str(tmp_path / "s.npz")])
    assert r.exit_code != 0 and "Traceback" not in r.output and culprit in r.output and str(bad) in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not MARKER.exists() and not (tmp_path / "s.npz").exists()
