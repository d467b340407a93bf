"""Training options: the one home of every default, the presets, flag merging and validation.

Options come from three places, later winning: `DEFAULTS` → a preset YAML (`configs/<name>.yaml`, or a
path; `extends: other` inherits, dict options merged key by key) → explicit flags. `resolve` validates
them, opens the data set once to derive the network's shape, builds the network and the scheduler once
to fail before any work, and returns one flat dict (written as training_options.json). `groups` splits
it per part — data, network, loss, scheduler, optimizer, EMA, run — so each constructor receives only
its own options (EDM2's setup_training_config is the model). Errors are `OptionError` (a ValueError):
one line naming the option and the fix; the command line prints it as is.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from pathlib import Path

import yaml

from torch_utils import checkpoint
from torch_utils.checks import check_kwargs, check_memory, check_number

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

# The one home of every training option's default.
DEFAULTS = dict(
    data=None,
    cond=False,
    xflip=False,
    max_size=None,
    arch=None,  # None: the network that suits the data's modality (images: ddpmpp, sequences: dnaunet)
    precond="edm",
    network_kwargs={},
    dropout=None,
    weighting="edm",
    sigma_data=0.5,
    sigma_min=0.002,
    sigma_max=80.0,
    endpoint="auto",
    scheduler="lognormal",
    scheduler_kwargs={},
    duration=200.0,
    batch=512,
    batch_gpu=None,
    lr=1e-3,
    lr_rampup=0.01,
    ema=0.5,
    ema_rampup=0.05,
    grad_clip=None,
    tick=50.0,
    snap=50,
    sample_grid=64,
    seed=0,
    device=None,
    desc=None,
    # Fine-tuning: start from this network's weights (a snapshot .pt, an EDM .pkl or a URL; EMA too), with a fresh
    # optimizer and the chosen scheduler. The network's shape then comes from it (training.options.transfer_network).
    transfer=None,
    # Speed: numerics (precision: fp32 | bf16 | fp16 autocast, fp16 with a gradient scaler) and switches
    # (data-loader workers: None = 0 on CPU, 4 on CUDA; TF32 matmuls and cuDNN autotuning, CUDA only;
    # channels-last memory for image networks and torch.compile, any device: they reorder float sums).
    augment=0.0,
    precision="fp32",
    workers=None,
    tf32=True,
    cudnn_benchmark=True,
    channels_last=False,
    compile=False,
)
PRECISIONS = ("fp32", "bf16", "fp16")
# Keys `resolve` adds to the options (not settable): which preset, and the data set's class names.
DERIVED = ("preset", "label_names")
# Options that may change between the runs of one run directory (the rest must match to resume): the
# length and the bookkeeping of a run, and what a restart after a failure needs (a lower learning rate
# after a NaN, clipping). scheduler_kwargs may be retuned mid-run (e.g. refresh interval); the scheduler
# itself refuses changes to its state's layout (grid, FIFO size). Each change is logged old → new.
RESUMABLE_CHANGES = {
    "duration",
    "tick",
    "snap",
    "sample_grid",
    "device",
    "batch_gpu",
    "scheduler_kwargs",
    "lr",
    "lr_rampup",
    "grad_clip",
    "workers",
    "tf32",
    "cudnn_benchmark",
    "channels_last",
    "compile",
}

_NUMBER = (int, float)
# Expected types of the options a preset or a flag can set (None is allowed where the default is None).
_TYPES = dict(
    data=str,
    cond=bool,
    xflip=bool,
    max_size=int,
    arch=str,
    precond=str,
    network_kwargs=dict,
    dropout=_NUMBER,
    weighting=str,
    sigma_data=_NUMBER,
    sigma_min=_NUMBER,
    sigma_max=_NUMBER,
    endpoint=str,
    scheduler=str,
    scheduler_kwargs=dict,
    duration=_NUMBER,
    batch=int,
    batch_gpu=int,
    lr=_NUMBER,
    lr_rampup=_NUMBER,
    ema=_NUMBER,
    ema_rampup=_NUMBER,
    grad_clip=_NUMBER,
    tick=_NUMBER,
    snap=int,
    sample_grid=int,
    seed=int,
    device=str,
    desc=str,
    transfer=str,
    augment=(int, float),
    precision=str,
    workers=int,
    tf32=bool,
    cudnn_benchmark=bool,
    channels_last=bool,
    compile=bool,
)


class OptionError(ValueError):
    """A bad option, preset or run directory; the message names it and the fix."""


class _DuplicateKey(Exception):
    def __init__(self, key, first: str, again: str):
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


class _PresetLoader(yaml.SafeLoader):
    """YAML as presets need it: a key given twice in one mapping is an error (PyYAML keeps the last one
    without a word), and 1e-3 is a number (PyYAML's YAML 1.1 reads it as a string without a '.')."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            mark = key_node.start_mark
            where = f"line {mark.line + 1}" + (f", column {mark.column + 1}" if node.flow_style else "")
            if first is not None:
                raise _DuplicateKey(key, first, where)
            seen[key] = where
        return super().construct_mapping(node, deep)


_PresetLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
_NUMBER_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|infinity|nan)", re.IGNORECASE)


def _read_preset(path: Path):
    """The YAML of one preset file: not UTF-8, not YAML or a key given twice is one line naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise OptionError(
            f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); save the preset as UTF-8."
        ) from None
    except OSError as e:
        raise OptionError(f"{path}: cannot be read ({e.strerror}).") from None
    try:
        return yaml.load(text, Loader=_PresetLoader)
    except _DuplicateKey as e:
        raise OptionError(
            f"{path}: key '{e.key}' is given twice ({e.first} and {e.again}); keep one of them."
        ) from None
    except yaml.YAMLError as e:
        raise OptionError(f"{path}: not valid YAML ({str(e).splitlines()[0]}).") from None


def load_preset(name: str, _seen: tuple = ()) -> dict:
    """configs/<name>.yaml or a path to a YAML file; its keys are option names. `extends: other` starts
    from another preset (named, or a path relative to this file); its dict options are merged key by key."""
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise OptionError(f"Unknown preset '{name}' ({path} not found). Valid presets: {', '.join(valid)}")
    if path.resolve() in _seen:
        raise OptionError(f"{path}: 'extends' loops back to itself.")
    preset = _read_preset(path)
    preset = {} if preset is None else preset
    if not isinstance(preset, dict):
        raise OptionError(f"{path}: a preset is a mapping of option: value, not a {type(preset).__name__}.")
    unknown = sorted(str(k) for k in set(preset) - set(DEFAULTS) - {"extends"})
    if unknown:
        raise OptionError(f"{path}: unknown option(s) {', '.join(unknown)}. Valid: {', '.join(sorted(DEFAULTS))}")
    check_types(preset, str(path))
    parent = preset.pop("extends", None)
    if parent is None:
        return preset
    if not isinstance(parent, str):
        raise OptionError(f"{path}: 'extends' must name a preset or a .yaml path, got {parent!r}.")
    base = load_preset(
        parent if not str(parent).endswith((".yaml", ".yml")) else str(path.parent / parent), _seen + (path.resolve(),)
    )
    for key in ("network_kwargs", "scheduler_kwargs"):
        if key in preset:
            preset[key] = {**base.get(key, {}), **(preset[key] or {})}
    return {**base, **preset}


def parse_value(text: str):
    """One key=value value as YAML (lists, dicts, true/false), with numbers read as numbers: 1e-3, nan and
    inf too (YAML 1.1 reads those as strings, which would then pass as a name)."""
    if _NUMBER_TEXT.fullmatch(text.strip()):
        number = float(text)
        return int(text) if re.fullmatch(r"[-+]?\d+", text.strip()) else number
    try:
        return yaml.load(text, Loader=_PresetLoader)
    except _DuplicateKey as e:
        raise OptionError(f"'{text}': key '{e.key}' is given twice; keep one of them.") from None
    except yaml.YAMLError as e:
        raise OptionError(f"'{text}' is not a valid value ({str(e).splitlines()[0]}).") from None


def parse_kv(pairs, flag: str) -> dict:
    """('refresh_every=500', 'sigma_p=0.2') → {'refresh_every': 500, 'sigma_p': 0.2}; values parsed as YAML.
    A key given twice is an error (which one was meant?)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise OptionError(f"{flag} expects key=value, got '{pair}'.")
        key, value = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise OptionError(f"{flag} '{pair}': the key is empty; give key=value.")
        if key in out:
            raise OptionError(f"{flag} {key} is given twice ({key}={out[key]!r} and {pair}); keep one.")
        try:
            out[key] = parse_value(value)
        except OptionError as e:
            raise OptionError(f"{flag} {key}: {e}") from None
    return out


def merge(preset: str | None, flags: dict) -> dict:
    """DEFAULTS ← preset ← flags (None flags are 'not given'; dict options merged key by key)."""
    flags = dict(flags)
    opts = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    if preset:
        opts.update(load_preset(preset))
        opts["preset"] = preset
    for key in ("network_kwargs", "scheduler_kwargs"):
        opts[key] = {**(opts.get(key) or {}), **(flags.pop(key, None) or {})}
    opts.update({k: v for k, v in flags.items() if v is not None})
    return opts


def check_types(opts: dict, where: str = "options") -> None:
    """Each settable option has its documented type (ints are accepted for floats); the keys of the dict
    options (network_kwargs, scheduler_kwargs) are names."""
    for key, kind in _TYPES.items():
        value = opts.get(key)
        if value is None or (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)):
            if isinstance(value, dict):
                bad = [k for k in value if not isinstance(k, str)]
                if bad:
                    raise OptionError(f"{where}: {option_name(key)} has a key {bad[0]!r} that is not a name.")
            continue
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise OptionError(f"{where}: {option_name(key)} must be {names}, got {value!r} ({type(value).__name__}).")


# Ranges of the numeric options: (lowest, highest, whether the lowest itself is allowed). Every option has an
# upper bound: a float by what it means (a probability ≤ 1, σ where σ² stays far inside float32), an integer at
# least by int64 (every count ends in a tensor or an array); counts that allocate are checked against memory too.
_RANGES = dict(
    max_size=(1, None, True),
    dropout=(0, 1, True),
    sigma_data=(0, 1e4, False),
    sigma_min=(0, 1e6, False),
    sigma_max=(0, 1e6, False),
    duration=(0, 1e9, False),  # Mimg
    batch=(1, None, True),
    batch_gpu=(1, None, True),
    lr=(0, 1, False),
    lr_rampup=(0, 1e9, True),  # Mimg
    ema=(0, 1e9, False),  # Mimg
    ema_rampup=(0, 1e9, True),
    grad_clip=(0, None, False),
    tick=(0, 1e9, False),  # kimg
    snap=(0, None, True),
    sample_grid=(0, None, True),
    seed=(0, 2**32 - 1, True),
    workers=(0, 256, True),
    augment=(0, 1, True),
)
_CHOICES = dict(
    precision=PRECISIONS,
    weighting=("edm", "unit", "edm2"),
    endpoint=("auto", "continuous", "discrete"),
    precond=("edm", "vp", "ve"),
)
# The command-line flag of an option, where it is not the option's name with hyphens.
_FLAGS = dict(network_kwargs="--net-opt", scheduler_kwargs="--sched-opt")


def option_name(key: str) -> str:
    """How a message names an option: its preset key and its flag, so either spelling finds it."""
    return f"option '{key}' ({_FLAGS.get(key, '--' + key.replace('_', '-'))})"


def check_ranges(opts: dict, world_size: int = 1) -> None:
    """Numbers in range, finite, and consistent with each other (batch over processes and micro-batches)."""
    for key, (lo, hi, lo_ok) in _RANGES.items():
        v = opts.get(key)
        if v is None:
            continue
        integer = _TYPES[key] is int
        try:
            check_number(v, option_name(key), integer=integer, lo=lo, hi=hi, lo_open=not lo_ok)
        except ValueError as e:
            raise OptionError(str(e)) from None
    for key, valid in _CHOICES.items():
        if opts.get(key) not in valid:
            raise OptionError(f"{option_name(key)} must be one of {', '.join(valid)}, got {opts.get(key)!r}.")
    check_device(opts.get("device"))
    if round(opts["duration"] * 1e6) < 1:
        raise OptionError(f"{option_name('duration')} is {opts['duration']:g} Mimg, not one image: give a longer one.")
    if opts.get("desc") is not None and set(opts["desc"]) <= {"."}:  # '.' or '..' would be --outdir or its parent
        raise OptionError(f"{option_name('desc')} names the run's folder; {opts['desc']!r} is none, give a name.")
    if opts["sigma_min"] >= opts["sigma_max"]:
        raise OptionError(f"sigma_min ({opts['sigma_min']}) must be below sigma_max ({opts['sigma_max']}).")
    if opts["batch"] % world_size:
        raise OptionError(f"--batch {opts['batch']} is not divisible by {world_size} processes.")
    per_rank = opts["batch"] // world_size
    if opts["batch_gpu"] is not None and per_rank % opts["batch_gpu"]:
        raise OptionError(
            f"--batch-gpu {opts['batch_gpu']} does not divide the per-process batch {per_rank} "
            f"(--batch {opts['batch']} over {world_size} process(es)); use a divisor of {per_rank}."
        )


def check_device(device: str | None) -> None:
    """A device torch knows and this project runs on (cpu, cuda, cuda:N), and that is there — checked with the
    other options, whether a flag or a preset names it."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise OptionError(f"{option_name('device')}: unknown device '{device}'; use cpu, cuda or cuda:N.") from None
    if dev.type not in ("cpu", "cuda"):
        raise OptionError(f"{option_name('device')}: device '{device}' is not supported here; use cpu, cuda or cuda:N.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"{option_name('device')}: '{device}' was requested but this machine has no usable CUDA GPU.")


# What a training step holds per example, in copies of the example as float32, at the very least (data, noise,
# noisy input, denoised output, their gradients): a batch needing more than the machine's memory for these
# alone cannot run, whatever the network.
_COPIES_PER_EXAMPLE = 8


def check_sizes(opts: dict, data_shape, world_size: int = 1) -> None:
    """Counts that allocate, refused up front with the memory they would need: the micro-batch of a training
    step and the sample grid drawn at a snapshot (one batch through the sampler)."""
    per_example = math.prod(int(s) for s in data_shape) * 4 * _COPIES_PER_EXAMPLE
    micro = opts["batch_gpu"] or opts["batch"] // world_size
    for key, count, fix in (
        ("batch_gpu" if opts["batch_gpu"] else "batch", micro, "Lower it, or split it with --batch-gpu."),
        ("sample_grid", opts["sample_grid"], "Lower it (64 is usual; 0 = none)."),
    ):
        try:
            check_memory(count * per_example, f"{option_name(key)} = {count} of {list(data_shape)}", fix)
        except ValueError as e:
            raise OptionError(str(e)) from None


def network_kwargs(opts: dict, data_shape, label_dim: int) -> dict:
    """The network's constructor options: architecture and preconditioning, the data's shape and label
    count, the σ range, and the preset's network_kwargs (plus --dropout)."""
    kw = dict(opts["network_kwargs"])
    if opts["dropout"] is not None:
        if "dropout" in kw and kw["dropout"] != opts["dropout"]:
            raise OptionError(
                f"--dropout {opts['dropout']} and network_kwargs dropout={kw['dropout']!r} (--net-opt) both set the "
                f"dropout; give one of them."
            )
        kw["dropout"] = opts["dropout"]
    if opts["weighting"] == "edm2":  # the learned uncertainty head beside the network (EDM2)
        kw.setdefault("logvar_channels", 128)
    if opts.get("augment"):  # the augment labels condition the network (training/augment.py)
        if len(data_shape) != 3:
            raise OptionError(
                f"--augment {opts['augment']}: augmentation is for images; this data is {list(data_shape)}"
            )
        from training.augment import edm_pipe

        kw["augment_dim"] = edm_pipe(opts["augment"]).label_dim
    return dict(
        arch=opts["arch"],
        precond=opts["precond"],
        data_shape=list(data_shape),
        label_dim=label_dim if opts["cond"] else 0,
        sigma_min=opts["sigma_min"],
        sigma_max=opts["sigma_max"],
        sigma_data=opts["sigma_data"],
        **kw,
    )


def transfer_network(opts: dict, flags: dict, data_shape, label_dim: int) -> dict:
    """The network options of a --transfer run: the source network's (architecture, shape, σ range, every
    model option), with --dropout applied; the data, --cond, --augment and --weighting must fit it.
    Explicit --arch/--precond/--cbase/--cres/--net-opt that differ from it are errors (it fixes the shape)."""
    from models.network_source import open_snapshot

    source = opts["transfer"]
    try:
        src = dict(open_snapshot(source)["options"]["network_kwargs"])
    except (FileNotFoundError, ValueError) as e:
        raise OptionError(f"--transfer {e}") from None
    except (KeyError, TypeError):
        raise OptionError(f"--transfer {source}: holds no network options (not written by train.py)") from None
    for key in ("arch", "precond", "sigma_data"):
        if flags.get(key) is not None and flags[key] != src.get(key):
            raise OptionError(
                f"--{key.replace('_', '-')} {flags[key]}: the --transfer network has {key} {src.get(key)!r}; "
                f"drop --{key.replace('_', '-')} (the network comes from {source})"
            )
    differ = sorted(k for k, v in (flags.get("network_kwargs") or {}).items() if src.get(k) != v and k != "dropout")
    if differ:
        raise OptionError(
            f"--transfer {source}: its network has {', '.join(f'{k}={src.get(k)!r}' for k in differ)}; drop the "
            f"--cbase/--cres/--net-opt that change them (the network's shape comes from --transfer)"
        )
    if list(src["data_shape"]) != list(data_shape):
        raise OptionError(
            f"--transfer {source}: a network for data of shape {list(src['data_shape'])}, but --data {opts['data']} "
            f"holds {list(data_shape)}; convert the data to that resolution and channel count (dataset_tool.py)"
        )
    want = label_dim if opts["cond"] else 0
    if src.get("label_dim", 0) != want:
        fix = (
            f"add --cond (with data of {src.get('label_dim')} classes)"
            if not opts["cond"]
            else "drop --cond"
            if not src.get("label_dim")
            else f"use data with {src.get('label_dim')} classes"
        )
        raise OptionError(
            f"--transfer {source}: the network takes {src.get('label_dim', 0)} class labels, the run gives "
            f"{want}; {fix}"
        )
    if opts["dropout"] is not None:
        src["dropout"] = opts["dropout"]
    augment_dim = 0
    if opts.get("augment"):
        from training.augment import edm_pipe

        augment_dim = edm_pipe(opts["augment"]).label_dim
    if augment_dim and src.get("augment_dim", 0) != augment_dim:
        raise OptionError(
            f"--augment {opts['augment']}: the --transfer network takes {src.get('augment_dim', 0)} augment labels, "
            f"EDM's pipe gives {augment_dim}; drop --augment"
        )
    if not augment_dim:  # no augment labels: the network's augment mapping is never used; its weights are left out
        src.pop("augment_dim", None)
    if opts["weighting"] == "edm2":  # EDM2's uncertainty head: the source's, or a fresh one beside its network
        src.setdefault("logvar_channels", 128)
    else:  # a head the loss would not use: left out like the augment mapping
        src.pop("logvar_channels", None)
    opts["arch"], opts["precond"], opts["sigma_data"] = src["arch"], src["precond"], src.get("sigma_data", 0.5)
    return src


def scheduler_context(opts: dict, endpoint: str | None = None) -> dict:
    """What a scheduler may know of the run besides its own options (schedulers.build's context)."""
    return dict(
        sigma_min=opts["sigma_min"],
        sigma_max=opts["sigma_max"],
        sigma_data=opts["sigma_data"],
        weighting=opts["weighting"],
        endpoint=endpoint or opts["endpoint"],
    )


def resolve(preset: str | None, flags: dict, world_size: int = 1) -> dict:
    """DEFAULTS ← preset ← flags, validated; `network_kwargs` derived from the data set; `desc` named."""
    import modalities
    import schedulers

    opts = merge(preset, flags)
    check_types(opts, f"preset {preset}" if preset else "options")
    check_ranges(opts, world_size)
    if not opts["data"]:
        raise OptionError(
            "No training data: pass --data PATH (a dataset .zip/folder or sequence file) or a --preset that names one."
        )
    try:
        schedulers.scheduler_class(opts["scheduler"])  # unknown names fail here, listing the valid ones
        modality = modalities.for_data(opts["data"])
    except ValueError as e:
        raise OptionError(str(e)) from None
    opts["arch"] = opts["arch"] or modality.default_arch
    # Every value by its type first, then what needs the data (the network's shape) and the builds.
    check_network_options(opts["network_kwargs"], opts["arch"], opts["precond"])
    check_scheduler_options(opts["scheduler"], opts["scheduler_kwargs"])
    try:
        dataset = modality.open(opts["data"], use_labels=opts["cond"], max_size=opts["max_size"])
    except (FileNotFoundError, ValueError) as e:
        raise OptionError(str(e)) from None
    if opts["xflip"] and len(dataset.data_shape) != 3:  # it would be dropped without a word
        raise OptionError(f"--xflip mirrors images; {opts['data']} holds data of shape {list(dataset.data_shape)}.")
    opts["label_names"] = list(getattr(dataset, "label_names", None) or []) if opts["cond"] else None
    check_sizes(opts, dataset.data_shape, world_size)
    given = dict(opts["network_kwargs"])
    if opts["transfer"]:
        opts["network_kwargs"] = transfer_network(opts, flags, dataset.data_shape, dataset.label_dim)
    else:
        opts["network_kwargs"] = network_kwargs(opts, dataset.data_shape, dataset.label_dim)
    check_network(opts["network_kwargs"], given)
    check_scheduler(opts)
    if not opts["desc"]:  # the preset's name, plus what the flags changed of its recipe
        if opts.get("preset"):
            parts = [Path(opts["preset"]).stem] + [str(flags[k]) for k in ("scheduler", "weighting") if flags.get(k)]
        else:
            parts = [Path(str(opts["data"])).name.split(".")[0], opts["scheduler"], opts["weighting"]]
        if opts["transfer"]:
            parts.append("from-" + Path(str(opts["transfer"]).split("?", 1)[0].rstrip("/")).stem)
        opts["desc"] = "-".join(parts)
    opts["desc"] = re.sub(r"[^\w.+-]", "_", opts["desc"])
    return opts


def _given(kwargs: dict, flag: str) -> str:
    return " ".join(f"{flag} {k}={v!r}" for k, v in kwargs.items()) or "defaults"


# Network options that come from the data or from training options, never from --net-opt / network_kwargs.
_DERIVED_NETWORK_KEYS = dict(
    data_shape="the data set",
    img_resolution="the data set",
    in_channels="the data set",
    out_channels="the data set",
    seq_length="the data set",
    label_dim="the data set's labels (--cond)",
    augment_dim="--augment",
    sigma_min="--sigma-min",
    sigma_max="--sigma-max",
    sigma_data="sigma_data (a training option)",
    arch="--arch",
    precond="--precond",
)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_network_options(kwargs: dict, arch: str, precond: str) -> None:
    """The network options a preset or --net-opt gives, before anything is built: each of the type its
    constructor's annotation or default says (the architecture's registry defaults count as defaults), every
    number finite; a count (an integer option) ≥ 1, or ≥ 0 where its default is 0, and a list whose default
    holds counts (channel_mult, attn_resolutions) holds counts; any other number ≥ 0, and a probability
    (…dropout) ≤ 1. Unknown names are left to build_network, which lists the valid ones."""
    from models import networks

    for key in kwargs:
        if key in _DERIVED_NETWORK_KEYS:  # set from the data or another option: a value here would be overridden
            raise OptionError(
                f"Network: --net-opt {key} is set by {_DERIVED_NETWORK_KEYS[key]}; drop it from --net-opt."
            )
    try:
        entry = networks.ARCHS.get(arch)
        targets = [networks.PRECONDS[precond]] if precond in networks.PRECONDS else []
        if entry is not None:
            targets.insert(0, networks._resolve(entry.target))
    except (ImportError, AttributeError):
        return  # build_network names the missing module
    for key, value in kwargs.items():
        owner = next((t for t in targets if key in inspect.signature(t).parameters), None)
        if owner is None:
            continue
        default = inspect.signature(owner).parameters[key].default
        if entry is not None and key in entry.defaults:
            default = entry.defaults[key]
        name = f"--net-opt {key}"
        try:
            check_kwargs(owner, {key: value}, "--net-opt", defaults=entry.defaults if entry else None)
            counts = isinstance(default, (list, tuple)) and all(_is_count(v) and v >= 1 for v in default)
            if counts and isinstance(value, (list, tuple)):  # a list of counts (channel_mult, resolutions) holds counts
                for i, v in enumerate(value):
                    check_number(v, f"{name}[{i}]", integer=True, lo=1)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(value, int) and not isinstance(default, float):
                check_number(value, name, integer=True, lo=0 if default == 0 else 1)
            else:
                check_number(value, name, lo=0, hi=1 if "dropout" in key else None)
        except ValueError as e:
            raise OptionError(f"Network: {e}.") from None


# What training holds per parameter, in float32 copies: weights, EMA, gradient and Adam's two moments.
_COPIES_PER_PARAMETER = 5


def check_network(kwargs: dict, given: dict | None = None) -> None:
    """Build the network once without memory (on torch's meta device) to fail before any work — a resolution
    the architecture cannot take, an unknown option, a size that cannot be built — and refuse one whose
    parameters, EMA and optimizer state would not fit in memory, saying how much they would need. `given`: the
    network options the user set (named in the messages; default: all but the data's shape)."""
    import torch

    from models import networks

    user = given if given is not None else {k: v for k, v in kwargs.items() if k not in ("data_shape", "label_dim")}
    try:
        with torch.device("meta"):
            net = networks.build_network(**kwargs)
    except (ValueError, TypeError) as e:
        raise OptionError(f"Network: {str(e).splitlines()[0]}") from None
    except Exception as e:  # noqa: BLE001 — a size torch cannot build (negative, too large): one line, the options
        raise OptionError(
            f"Network {kwargs.get('arch')} cannot be built with {_given(user, '--net-opt')} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); fix those options."
        ) from None
    sigma = torch.logspace(math.log10(net.sigma_min), math.log10(net.sigma_max), 64, dtype=torch.float64)
    try:  # the preconditioning's own numbers (VP's beta_d, beta_min, M) give finite coefficients over the σ range
        finite = all(bool(torch.isfinite(torch.as_tensor(c)).all()) for c in net.precond_coefficients(sigma))
    except Exception:  # noqa: BLE001 — a coefficient that cannot be computed is as bad as a non-finite one
        finite = False
    if not finite:
        raise OptionError(
            f"Network preconditioning {kwargs.get('precond')} with {_given(user, '--net-opt')} gives non-finite "
            f"coefficients for σ in [{net.sigma_min:g}, {net.sigma_max:g}]; fix those options."
        )
    count = sum(p.numel() for p in net.parameters())
    try:
        check_memory(
            count * 4 * _COPIES_PER_PARAMETER,
            f"Network {kwargs.get('arch')} with {_given(user, '--net-opt')}: {count / 1e6:,.1f} M parameters, "
            f"with its EMA and optimizer state,",
            "Lower those options (--cbase is model_channels, --cres channel_mult).",
        )
    except ValueError as e:
        raise OptionError(str(e)) from None


# σ a training step can use: σ² and 1/σ² stay far inside float32 (the loss weights σ and 1/σ²).
SIGMA_LIMITS = (1e-12, 1e12)


def check_scheduler_options(name: str, kwargs: dict) -> None:
    """Each scheduler option of the type the constructor's annotation (or default) says, every number in it
    finite and within int64 (the constructors check their own ranges)."""
    import schedulers

    try:
        check_kwargs(schedulers.scheduler_class(name).__init__, kwargs, "--sched-opt")
    except ValueError as e:
        raise OptionError(f"Scheduler: {e}.") from None


def check_scheduler(opts: dict) -> None:
    """The scheduler options by the constructor's annotations (numbers finite), then the scheduler built once
    — its own checks raise ValueError — and a few thousand σ drawn from it: a σ that is not finite or outside
    SIGMA_LIMITS is a scheduler option that would make every loss NaN, refused now instead of as a
    'non-finite loss' later."""
    import torch

    import schedulers

    name, kwargs = opts["scheduler"], opts["scheduler_kwargs"]
    given = _given(kwargs, "--sched-opt")
    check_scheduler_options(name, kwargs)
    try:
        # The run hands the scheduler its data (the Bayes cap reads them at construction); the check only
        # validates options, so a two-valued stand-in takes their place.
        context = dict(scheduler_context(opts, "continuous"), training_data=torch.tensor([[-1.0], [1.0]]))
        sched = schedulers.build(name, context, **kwargs)
        sigma = sched.sample(4096, generator=torch.Generator().manual_seed(0))
    except (ValueError, TypeError) as e:
        raise OptionError(f"Scheduler: {str(e).splitlines()[0]}") from None
    except Exception as e:  # noqa: BLE001 — a file it reads, a size it cannot allocate: one line, the options
        raise OptionError(
            f"Scheduler '{name}' cannot be built with {given} ({type(e).__name__}: {str(e).splitlines()[0][:200]})."
        ) from None
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    lo, hi = SIGMA_LIMITS
    bad = sigma[~(torch.isfinite(sigma) & (sigma >= lo) & (sigma <= hi))]
    if len(bad):
        raise OptionError(
            f"Scheduler '{name}' with {given} draws σ = {bad[0].item():.3g}, outside [{lo:g}, {hi:g}] where the "
            f"loss stays finite; fix those options (or --sigma-min/--sigma-max)."
        )


def nonfinite_causes(opts: dict) -> str:
    """The options that can make a loss non-finite, with their values: what the non-finite-loss message
    points at (a non-finite option itself never gets that far: resolve refuses it)."""
    causes = [f"--lr {opts['lr']:g} (lower it; it may change on resume)"]
    causes.append(
        "--grad-clip (none; set one, e.g. 1)" if opts["grad_clip"] is None else f"--grad-clip {opts['grad_clip']:g}"
    )
    if opts["precision"] != "fp32":
        causes.append(f"--precision {opts['precision']} (try fp32)")
    if opts["scheduler_kwargs"]:
        causes.append(_given(opts["scheduler_kwargs"], "--sched-opt"))
    causes.append(f"--sigma-min {opts['sigma_min']:g} / --sigma-max {opts['sigma_max']:g}")
    return "; ".join(causes)


def check_complete(opts: dict) -> None:
    """`training_loop.run` takes resolved options only: every option present, nothing unknown."""
    unknown = sorted(set(opts) - set(DEFAULTS) - set(DERIVED))
    missing = sorted(set(DEFAULTS) - set(opts))
    if unknown or missing:
        raise OptionError(
            "training options "
            + "; ".join(
                ([f"unknown: {', '.join(unknown)}"] if unknown else [])
                + ([f"missing: {', '.join(missing)}"] if missing else [])
            )
            + " (build them with training.options.resolve)."
        )


def groups(opts: dict) -> dict[str, dict]:
    """The resolved options per part; each part's constructor takes its group and nothing else."""
    return dict(
        data=dict(path=opts["data"], use_labels=opts["cond"], xflip=opts["xflip"], max_size=opts["max_size"]),
        network=dict(opts["network_kwargs"]),
        loss=dict(weighting=opts["weighting"], sigma_data=opts["sigma_data"], augment=opts["augment"]),
        scheduler=dict(name=opts["scheduler"], context=scheduler_context(opts), options=dict(opts["scheduler_kwargs"])),
        optimizer=dict(lr=opts["lr"], lr_rampup=opts["lr_rampup"], grad_clip=opts["grad_clip"]),
        ema=dict(halflife=opts["ema"], rampup=opts["ema_rampup"]),
        run=dict(
            duration=opts["duration"],
            batch=opts["batch"],
            batch_gpu=opts["batch_gpu"],
            tick=opts["tick"],
            snap=opts["snap"],
            sample_grid=opts["sample_grid"],
            seed=opts["seed"],
            device=opts["device"],
        ),
        loader=dict(workers=opts["workers"]),
        speed=dict(
            precision=opts["precision"],
            tf32=opts["tf32"],
            cudnn_benchmark=opts["cudnn_benchmark"],
            channels_last=opts["channels_last"],
            compile=opts["compile"],
        ),
    )


def prepare_run_dir(outdir: str | Path, opts: dict, log=print) -> Path:
    """Create (or re-open, to resume) <outdir>/<desc>; refuse to mix two configurations in one folder."""
    run_dir = Path(outdir) / opts["desc"]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OptionError(f"{run_dir}: cannot write there ({e.strerror}). Choose another --outdir.") from None
    opts_path = run_dir / "training_options.json"
    if opts_path.exists() and checkpoint.list_snapshots(run_dir):  # without a snapshot nothing is locked yet
        try:
            old = json.loads(opts_path.read_text())
        except json.JSONDecodeError:
            raise OptionError(f"{opts_path}: not valid JSON; delete it (the snapshots keep their options)") from None
        old = {**{k: v for k, v in DEFAULTS.items() if k not in old}, **old}  # options added since: their default
        differ = sorted(
            k for k in set(old) | set(opts) if k not in RESUMABLE_CHANGES | {"run_dir"} and old.get(k) != opts.get(k)
        )
        if differ:
            raise OptionError(
                f"{run_dir} holds a run with other options ({', '.join(differ)} differ). "
                f"Use another --desc or --outdir, or re-run with the same options to resume it."
            )
        for key in sorted(RESUMABLE_CHANGES):
            if key in old and old[key] != opts.get(key):
                log(f"Note: {key} changes on resume: {old[key]!r} -> {opts.get(key)!r}")
    return run_dir
