"""Property: every option of every script, given a wrong type, NaN/Inf, a negative or a huge value, is refused
with a non-zero exit and one `Error:` line that names the option — never a traceback, never a silent run.

The invalid values are drawn (hypothesis) from what each option is documented to take, written down here
apart from the code that checks them: an integer count, a finite number in a range, one of some names, a
key=value of a constructor. Every script runs in-process through click's CliRunner, and only invalid values
are drawn, so each case ends at validation (train.py under --dry-run, generate.py under -n): the whole test
takes seconds. Bounded and derandomized, so a failure reproduces."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataset_tool
import dna_tool
import fid
import generate
import schedulers
import train
from evaluation.frechet import save_stats
from models import networks
from tests.conftest import TINY_NET, write_image_dataset
from torch_utils import checkpoint

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INT64 = 2**63 - 1


# ----------------------------------------------------------------------------------------------------
# What an option takes, and values it does not.


class Num:
    """A number option: integer or float, with its documented range (inclusive unless *_open)."""

    def __init__(self, integer, lo=None, hi=None, lo_open=False, hi_open=False, inf_ok=False):
        self.integer, self.lo, self.hi, self.lo_open, self.hi_open, self.inf_ok = (
            integer,
            lo,
            hi,
            lo_open,
            hi_open,
            inf_ok,
        )


def Int(lo=None, hi=None):  # noqa: N802
    return Num(True, lo, hi)


def Float(lo=None, hi=None, lo_open=False, hi_open=False, inf_ok=False):  # noqa: N802
    return Num(False, lo, hi, lo_open, hi_open, inf_ok)


class Choice:
    def __init__(self, *valid):
        self.valid = set(valid)


NOT_INT = ["abc", "1.5", "nan", "inf", "1e3", "0x10", "", "5-", "[1]", "true"]
NOT_FLOAT = ["abc", "1,5", "", "0x1p3", "[1]", "one"]


def bad_number(spec: Num) -> st.SearchStrategy[str]:
    """Command-line text that is not a value of `spec`: another type, NaN/Inf, below or above its range."""
    out = [st.sampled_from(NOT_INT if spec.integer else NOT_FLOAT)]
    if spec.integer:
        if spec.lo is not None:
            out.append(st.integers(max_value=spec.lo - 1, min_value=spec.lo - 10**30).map(str))
        hi = INT64 if spec.hi is None else spec.hi
        out.append(st.integers(min_value=hi + 1, max_value=hi + 10**30).map(str))
    else:
        out.append(st.sampled_from(["nan", "NaN", "-inf"] + ([] if spec.inf_ok else ["inf", "+inf", "Infinity"])))
        if spec.lo is not None:
            below = st.floats(max_value=spec.lo, allow_nan=False, allow_infinity=False)
            out.append(below.filter(lambda v: v <= spec.lo if spec.lo_open else v < spec.lo).map(repr))
        if spec.hi is not None:
            above = st.floats(min_value=spec.hi, allow_nan=False, allow_infinity=False)
            out.append(above.filter(lambda v: v >= spec.hi if spec.hi_open else v > spec.hi).map(repr))
    return st.one_of(*out)


def bad_value(spec) -> st.SearchStrategy[str]:
    if isinstance(spec, Num):
        return bad_number(spec)
    if isinstance(spec, Choice):
        return st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8).filter(
            lambda v: v not in spec.valid
        )
    return st.sampled_from(spec)  # a list of invalid texts


def names_of(flag: str) -> list[str]:
    """How an error line may name the option: its flag, or its key (underscores)."""
    bare = flag.lstrip("-")
    return [flag, bare, bare.replace("-", "_")]


def check_refused(command, args: list[str], culprits: list[str]) -> None:
    result = CliRunner().invoke(command, args)
    out = result.output
    shown = f"{' '.join(args)}\n{out[-600:]}"
    assert result.exit_code != 0, f"exit 0 for an invalid value:\n{shown}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__} escaped:\n{shown}"
    )
    assert "Traceback" not in out, shown
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, f"{len(errors)} Error lines:\n{shown}"
    assert any(c in errors[0] for c in culprits), f"the Error line names none of {culprits}:\n{shown}"


# ----------------------------------------------------------------------------------------------------
# Files the base command lines need.


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("props")
    p = {"tmp": t}
    p["data"] = write_image_dataset(t / "data.zip", n=16, res=8, labels=True)[0]
    torch.manual_seed(0)
    net = networks.build_network(
        "ddpmpp",
        data_shape=[1, 8, 8],
        model_channels=8,
        channel_mult=[1, 2],
        num_blocks=1,
        attn_resolutions=[],
        sigma_min=0.002,
        sigma_max=80.0,
    )
    sd = net.state_dict()
    p["snap"] = t / "snap.pt"
    checkpoint.atomic_save(
        {
            "format": checkpoint.FORMAT,
            "options": {"network_kwargs": net.network_kwargs},
            "net": sd,
            "ema": sd,
            "scheduler": {},
            "profile": None,
            "progress": {"cur_nimg": 0, "cur_tick": 0, "global_step": 0},
        },
        p["snap"],
    )
    p["images"] = t / "images.npz"
    np.savez(p["images"], images=np.random.RandomState(0).randint(0, 256, (8, 8, 8, 1)).astype(np.uint8))
    p["ref"] = t / "ref.npz"
    save_stats(p["ref"], np.zeros(128), np.eye(128), "lenet-digits", 8, image_shape=(1, 8, 8))
    p["folder"] = t / "pngs"
    p["folder"].mkdir()
    import PIL.Image

    for i in range(3):
        PIL.Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(p["folder"] / f"{i}.png")
    p["fasta"] = t / "seqs.fa"
    p["fasta"].write_text("".join(f">s{i}|{'ab'[i % 2]}\n{'ACGT' * 4}\n" for i in range(8)))
    return {k: str(v) for k, v in p.items()}


# ----------------------------------------------------------------------------------------------------
# train.py: every flag, every preset key, every --net-opt and --sched-opt key.

TRAIN_FLAGS = {
    "--max-size": Int(1),
    "--cbase": Int(1),
    "--batch": Int(1),
    "--batch-gpu": Int(1),
    "--snap": Int(0),
    "--sample-grid": Int(0),
    "--seed": Int(0, 2**32 - 1),
    "--workers": Int(0, 256),
    "--stop-after-steps": Int(1),
    "--dropout": Float(0, 1),
    "--sigma-min": Float(0, 1e6, lo_open=True),
    "--sigma-max": Float(0, 1e6, lo_open=True),
    "--duration": Float(0, 1e9, lo_open=True),
    "--lr": Float(0, 1, lo_open=True),
    "--lr-rampup": Float(0, 1e9),
    "--grad-clip": Float(0, lo_open=True),
    "--ema": Float(0, 1e9, lo_open=True),
    "--tick": Float(0, 1e9, lo_open=True),
    "--augment": Float(0, 1),
    "--dist-timeout": Float(0, 1e7, lo_open=True),
    "--precond": Choice("edm", "vp", "ve"),
    "--weighting": Choice("edm", "unit", "edm2"),
    "--endpoint": Choice("auto", "continuous", "discrete"),
    "--precision": Choice("fp32", "bf16", "fp16"),
    "--arch": Choice(*networks.ARCHS),
    "--scheduler": Choice(*schedulers.names()),
    "--preset": ["no-such-preset", "nope.yaml", "configs/../nothing"],
    "--device": ["tpu", "gpu", "mps", "cuda:x", "cpu0", "xla", "cuda:-1"],
    "--cres": ["1,x", "0", "-1,2", "1,,2", "99999999999999999999", "1.5", "x", "1,2,2,2,2,2,2"],
    "--data": ["/nonexistent/data.zip", "/proc/cpuinfo"],
    "--transfer": ["/nonexistent/net.pkl", "/proc/cpuinfo", "file:///nonexistent.pt"],
}
# Culprits beside the flag's own name: --cres sets the network's channel_mult, --cbase its model_channels.
ALIASES = {"--cres": ["channel_mult"], "--cbase": ["model_channels"], "--data": ["nonexistent", "cpuinfo"]}
TRAIN_BASE = ["--batch", "8", "--sample-grid", "0", *TINY_NET, "--dry-run"]


@settings(max_examples=120, **SETTINGS)
@given(data=st.data())
def test_train_flags(files, data):
    flag = data.draw(st.sampled_from(sorted(TRAIN_FLAGS)), label="flag")
    value = data.draw(bad_value(TRAIN_FLAGS[flag]), label="value")
    args = ["--outdir", f"{files['tmp']}/runs", "--data", files["data"], *TRAIN_BASE, f"{flag}={value}"]
    check_refused(train.main, args, names_of(flag) + ALIASES.get(flag, []))


# Every preset key by its documented kind; YAML values that are none of it.
PRESET_NUMBERS = {
    "max_size": Int(1),
    "batch": Int(1),
    "batch_gpu": Int(1),
    "snap": Int(0),
    "sample_grid": Int(0),
    "seed": Int(0, 2**32 - 1),
    "workers": Int(0, 256),
    "dropout": Float(0, 1),
    "sigma_data": Float(0, 1e4, lo_open=True),
    "sigma_min": Float(0, 1e6, lo_open=True),
    "sigma_max": Float(0, 1e6, lo_open=True),
    "duration": Float(0, 1e9, lo_open=True),
    "lr": Float(0, 1, lo_open=True),
    "lr_rampup": Float(0, 1e9),
    "ema": Float(0, 1e9, lo_open=True),
    "ema_rampup": Float(0, 1e9),
    "grad_clip": Float(0, lo_open=True),
    "tick": Float(0, 1e9, lo_open=True),
    "augment": Float(0, 1),
}
PRESET_BOOLS = ["cond", "xflip", "tf32", "cudnn_benchmark", "channels_last", "compile"]
PRESET_NAMES = {
    "arch": set(networks.ARCHS),
    "precond": {"edm", "vp", "ve"},
    "weighting": {"edm", "unit", "edm2"},
    "endpoint": {"auto", "continuous", "discrete"},
    "scheduler": set(schedulers.names()),
    "precision": {"fp32", "bf16", "fp16"},
    "device": {"cpu", "cuda"},
}


def _yaml_number(spec: Num) -> st.SearchStrategy:
    """A YAML value that is not a value of `spec`."""
    out = [st.sampled_from(["abc", True, [1], {"a": 1}, math.nan, -math.inf] + ([] if spec.inf_ok else [math.inf]))]
    if spec.integer:
        out.append(st.sampled_from([1.5, 2.0, "7"]))
        if spec.lo is not None:
            out.append(st.integers(max_value=spec.lo - 1, min_value=spec.lo - 10**30))
        out.append(st.integers(min_value=(INT64 if spec.hi is None else spec.hi) + 1, max_value=10**40))
    else:
        out.append(st.sampled_from(["0.5", "2"]))  # quoted by safe_dump: strings, not numbers
        if spec.lo is not None:
            below = st.floats(max_value=spec.lo, allow_nan=False, allow_infinity=False)
            out.append(below.filter(lambda v: v <= spec.lo if spec.lo_open else v < spec.lo))
        if spec.hi is not None:
            above = st.floats(min_value=spec.hi, allow_nan=False, allow_infinity=False)
            out.append(above.filter(lambda v: v > spec.hi))
    return st.one_of(*out)


def _preset_value(key: str) -> st.SearchStrategy:
    if key in PRESET_NUMBERS:
        return _yaml_number(PRESET_NUMBERS[key])
    if key in PRESET_BOOLS:
        return st.sampled_from(["maybe", 1, 0, [True], None, 2.5])
    if key in PRESET_NAMES:
        words = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
        return st.one_of(st.sampled_from([5, [1], True, {"a": 1}]), words.filter(lambda v: v not in PRESET_NAMES[key]))
    if key in ("network_kwargs", "scheduler_kwargs"):
        return st.sampled_from([5, "abc", [1, 2], True, {1: 2}])
    return st.sampled_from([5, [1], {"a": 1}, True])  # data, desc, transfer: strings


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_train_preset_keys(files, data, tmp_path_factory):
    keys = sorted(PRESET_NUMBERS) + PRESET_BOOLS + sorted(PRESET_NAMES) + ["network_kwargs", "scheduler_kwargs"]
    key = data.draw(st.sampled_from(keys + ["data", "desc", "transfer"]), label="key")
    value = data.draw(_preset_value(key), label="value")
    if value is None and key in PRESET_BOOLS:  # null is "not set" for an option whose default is None only
        value = "null-is-no-bool"
    preset = Path(files["tmp"]) / "p.yaml"
    body = {"data": files["data"], "batch": 8, "sample_grid": 0, key: value}
    preset.write_text(yaml.safe_dump(body, allow_unicode=True))
    net = [a for a in TINY_NET if a not in ("--arch", "ddpmpp")]  # the preset's arch, not a flag's
    args = ["--outdir", f"{files['tmp']}/runs", "--preset", str(preset), *net, "--dry-run"]
    check_refused(train.main, args, [key, "--" + key.replace("_", "-")])


def _kv_bad(annotation_default) -> st.SearchStrategy[str]:
    """A key=value text that is no value of a constructor option with this default/annotation."""
    kind = annotation_default
    if kind is bool:
        return st.sampled_from(["maybe", "2", "[true]", "nan"])
    if kind is int:
        return st.one_of(st.sampled_from(["abc", "1.5", "nan", "inf", "[1]"]), st.integers(INT64 + 1, 10**40).map(str))
    if kind is float:
        return st.sampled_from(["abc", "nan", "inf", "-inf", ".nan", "[1.0]", "{a: 1}"])
    if kind is list:
        return st.sampled_from(["[nan]", "[abc]", "[1e400]", "[99999999999999999999999]", "abc", "5"])
    return st.sampled_from(["[nan]", "{a: .nan}"])  # str or untyped options: only non-finite numbers are sure errors


def _kind(default, annotation=inspect.Parameter.empty):
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation, None)
    if annotation in (int, float, bool):
        return annotation
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, (list, tuple)):
        return list
    return None


# --net-opt: the DDPM++ U-Net's and EDM preconditioner's options (the shape-derived ones excluded).
_SHAPE = {"data_shape"}  # the others (img_resolution, label_dim, sigma_min, …) are drawn: they must be refused too
NET_OPTS = {
    name: _kind({"model_channels": 128, "channel_mult": [2, 2, 2]}.get(name, p.default))
    for cls in (networks.SongUNet, networks.EDMPrecond.__mro__[1])
    for name, p in inspect.signature(cls).parameters.items()
    if name not in _SHAPE and p.kind is p.POSITIONAL_OR_KEYWORD and name != "self"
}
NET_OPTS = {k: v for k, v in NET_OPTS.items() if k not in ("model_channels", "channel_mult", "num_blocks")}
NET_OPTS.update({"num_blocks": int})  # given by TINY_NET too: a second value is refused as well


@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_train_net_opts(files, data):
    key = data.draw(st.sampled_from(sorted(NET_OPTS)), label="key")
    value = data.draw(_kv_bad(NET_OPTS[key]), label="value")
    args = ["--outdir", f"{files['tmp']}/runs", "--data", files["data"], *TRAIN_BASE, "--net-opt", f"{key}={value}"]
    check_refused(train.main, args, [key])


def _sched_opts(name: str) -> dict:
    sig = inspect.signature(schedulers.scheduler_class(name).__init__)
    return {
        k: _kind(p.default, p.annotation)
        for k, p in sig.parameters.items()
        if k not in ("self", "training_data") and p.kind is p.POSITIONAL_OR_KEYWORD
    }


@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_train_sched_opts(files, data):
    name = data.draw(st.sampled_from(["lognormal", "loguniform", "infonoise"]), label="scheduler")
    opts = _sched_opts(name)
    key = data.draw(st.sampled_from(sorted(opts)), label="key")
    value = data.draw(_kv_bad(opts[key]), label="value")
    args = ["--outdir", f"{files['tmp']}/runs", "--data", files["data"], *TRAIN_BASE, "--scheduler", name]
    check_refused(train.main, args + ["--sched-opt", f"{key}={value}"], [key])


@settings(max_examples=30, **SETTINGS)
@given(
    key=st.sampled_from(["P_mean", "P_std"]),
    value=st.one_of(st.floats(100, 1e300), st.floats(-1e300, -100)),
)
def test_lognormal_options_that_overflow_sigma(files, key, value):
    """P_mean or P_std of ±100 and beyond draws σ outside float32's reach (or a negative spread)."""
    args = ["--outdir", f"{files['tmp']}/runs", "--data", files["data"], *TRAIN_BASE, "--sched-opt", f"{key}={value!r}"]
    check_refused(train.main, args, [key])


# ----------------------------------------------------------------------------------------------------
# generate.py

GENERATE = {
    "--seeds": ["a-b", "5-2", "-1", "1.5", "0-99999999999999", "99999999999999999999999", "", "1,,2", "x"],
    "--batch": Int(1),
    "--steps": Int(1, 100_000),
    "--rho": Float(0.05, 1000),
    "--sigma-min": Float(0, lo_open=True),
    "--sigma-max": Float(0, lo_open=True),
    "--S-churn": Float(0),
    "--S-min": Float(0),
    "--S-max": Float(0, inf_ok=True),
    "--S-noise": Float(0, 10),
    "--class": Int(0),  # an unconditional network: any class is refused
    "--probe-samples": Int(1),
    "--probe-bins": Int(2, 100_000),
    "--grid": Choice("edm", "infogrid", "loguniform"),
    "--solver": Choice("heun", "euler"),
    "--device": ["tpu", "gpu", "mps", "cuda:x", "cpu0"],
}


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_generate_flags(files, data):
    flag = data.draw(st.sampled_from(sorted(GENERATE)), label="flag")
    value = data.draw(bad_value(GENERATE[flag]), label="value")
    args = ["--network", files["snap"], "--outdir", f"{files['tmp']}/gen", "--steps", "2", "-n", f"{flag}={value}"]
    check_refused(generate.main, args, names_of(flag))


# ----------------------------------------------------------------------------------------------------
# fid.py: each command's options

COMMON = {"--batch": Int(1, 2**20), "--workers": Int(0, 256), "--seed": Int(0, 2**32 - 1)}
FID = {
    "ref": (
        ["--data", "{images}", "--dest", "{tmp}/r.npz", "--detector", "lenet-digits"],
        {**COMMON, "--max-size": Int(2)},
    ),
    "calc": (["--images", "{images}", "--ref", "{ref}"], {**COMMON, "--num": Int(2)}),
    "gen": (
        ["--network", "{snap}", "--ref", "{ref}", "--steps", "2"],
        {
            "--seeds": ["a-b", "5-2", "0-99999999999999", "3", "x"],
            "--steps": Int(1, 100_000),
            "--rho": Float(0.05, 1000),
            "--batch": Int(1, 2**20),
            "--probe-samples": Int(1),
            "--probe-bins": Int(2, 100_000),
            "--grid": Choice("edm", "infogrid", "loguniform"),
            "--solver": Choice("heun", "euler"),
            "--device": ["tpu", "gpu", "mps", "cuda:x", "cpu0"],
        },
    ),
    "train-detector": (
        ["--dataset", "digits", "--out", "{tmp}/d.pt", "--limit", "10"],
        {"--seed": Int(0, 2**32 - 1), "--epochs": Int(1, 10_000), "--limit": Int(1), "--dataset": Choice("digits")},
    ),
}


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_fid_flags(files, data):
    command = data.draw(st.sampled_from(sorted(FID)), label="command")
    base, opts = FID[command]
    flag = data.draw(st.sampled_from(sorted(opts)), label="flag")
    value = data.draw(bad_value(opts[flag]), label="value")
    args = [command, *(a.format(**files) for a in base), f"{flag}={value}"]
    check_refused(fid.cli, args, names_of(flag) + (["mnist-subset", "digits"] if flag == "--dataset" else []))


# ----------------------------------------------------------------------------------------------------
# dataset_tool.py and dna_tool.py

DATASET_TOOL = {
    "--max-images": Int(1),
    "--seed": Int(0, 2**32 - 1),
    "--resolution": ["0", "-8", "abc", "8x", "x8", "100000", "1.5", "8x0", "99999999999999999999"],
    "--channels": Choice("1", "3"),
    "--split": Choice("train", "test"),
    "--transform": Choice(*dataset_tool.TRANSFORMS),
}


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_dataset_tool_flags(files, data):
    flag = data.draw(st.sampled_from(sorted(DATASET_TOOL)), label="flag")
    value = data.draw(bad_value(DATASET_TOOL[flag]), label="value")
    args = ["--source", files["folder"], "--dest", f"{files['tmp']}/o.zip", f"{flag}={value}"]
    check_refused(dataset_tool.main, args, names_of(flag) + ([value] if value else []))


DNA = {
    "make-benchmark": (
        ["--out", "{tmp}/d.tsv", "--per-class", "2"],
        {"--per-class": Int(1), "--test-per-class": Int(1), "--length": Int(1, 10**6), "--seed": Int(0, 2**32 - 1)},
    ),
    "train-classifier": (
        ["--train", "{fasta}", "--out", "{tmp}/c.pt", "--epochs", "1"],
        {
            "--seed": Int(0, 2**32 - 1),
            "--epochs": Int(1, 10_000),
            "--batch": Int(1, 2**20),
            "--lr": Float(0, 1, lo_open=True),
            "--threads": Int(1, 1024),
        },
    ),
    "metrics": (
        ["--generated", "{fasta}", "--reference", "{fasta}", "--train", "{fasta}", "--out", "{tmp}/m.json"],
        {"--pvalue": Float(0, 1, lo_open=True), "--seed": Int(0, 2**32 - 1), "--threads": Int(1, 1024)},
    ),
}


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_dna_tool_flags(files, data):
    command = data.draw(st.sampled_from(sorted(DNA)), label="command")
    base, opts = DNA[command]
    flag = data.draw(st.sampled_from(sorted(opts)), label="flag")
    value = data.draw(bad_value(opts[flag]), label="value")
    args = [command, *(a.format(**files) for a in base), f"{flag}={value}"]
    check_refused(dna_tool.cli, args, names_of(flag))


def test_every_option_is_covered():
    """The tables above name every value option of every script (a new option gets a row, or this fails)."""

    def value_options(command) -> set[str]:
        return {
            p.opts[0]
            for p in command.params
            if isinstance(p, __import__("click").Option)
            and not p.is_flag
            and not p.hidden
            and p.opts[0].startswith("--")
        }

    skip_train = {"--outdir", "--net-opt", "--sched-opt", "--desc"}  # paths/names, and the key=value tables
    assert value_options(train.main) - skip_train <= set(TRAIN_FLAGS), value_options(train.main) - set(TRAIN_FLAGS)
    skip_gen = {"--network", "--outdir", "--grid-png", "--npz", "--probe-data"}
    assert value_options(generate.main) - skip_gen <= set(GENERATE)
    for name, (_, opts) in FID.items():
        skip = {"--data", "--dest", "--detector", "--images", "--ref", "--network", "--out", "--inception-weights"}
        skip |= {"--probe-data"}
        assert value_options(fid.cli.commands[name]) - skip <= set(opts), name
    assert value_options(dataset_tool.main) - {"--source", "--dest"} <= set(DATASET_TOOL)
    for name, (_, opts) in DNA.items():
        skip = {"--out", "--train", "--test", "--generated", "--reference", "--classifier", "--motifs", "--release"}
        assert value_options(dna_tool.cli.commands[name]) - skip <= set(opts), name
    from training.options import DEFAULTS

    settable = set(PRESET_NUMBERS) | set(PRESET_BOOLS) | set(PRESET_NAMES) | {"network_kwargs", "scheduler_kwargs"}
    assert set(DEFAULTS) - {"data", "desc", "transfer"} <= settable, set(DEFAULTS) - settable
    assert re.fullmatch(r"\d+", str(INT64))
