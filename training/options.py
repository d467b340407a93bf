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

import json
import math
import re
from pathlib import Path

import yaml

from torch_utils import checkpoint

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

# The one home of every training option's default.
DEFAULTS = dict(
    data=None,
    cond=False,
    xflip=False,
    max_size=None,
    arch="ddpmpp",
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


def load_preset(name: str, _seen: tuple = ()) -> dict:
    """configs/<name>.yaml or a path to a YAML file; its keys are option names. `extends: other` starts
    from another preset (named, or a path relative to this file); its dict options are merged key by key."""
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise OptionError(f"Unknown preset '{name}' ({path} not found). Valid presets: {', '.join(valid)}")
    if path.resolve() in _seen:
        raise OptionError(f"{path}: 'extends' loops back to itself.")
    try:
        preset = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise OptionError(f"{path}: not valid YAML ({str(e).splitlines()[0]}).") from None
    if not isinstance(preset, dict):
        raise OptionError(f"{path}: a preset is a mapping of option: value, not a {type(preset).__name__}.")
    check_types(preset, str(path))
    unknown = sorted(set(preset) - set(DEFAULTS) - {"extends"})
    if unknown:
        raise OptionError(f"{path}: unknown option(s) {', '.join(unknown)}. Valid: {', '.join(sorted(DEFAULTS))}")
    parent = preset.pop("extends", None)
    if parent is None:
        return preset
    base = load_preset(
        parent if not str(parent).endswith((".yaml", ".yml")) else str(path.parent / parent), _seen + (path.resolve(),)
    )
    for key in ("network_kwargs", "scheduler_kwargs"):
        if key in preset:
            preset[key] = {**base.get(key, {}), **(preset[key] or {})}
    return {**base, **preset}


def parse_kv(pairs, flag: str) -> dict:
    """('refresh_every=500', 'sigma_p=0.2') → {'refresh_every': 500, 'sigma_p': 0.2}; values parsed as YAML."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise OptionError(f"{flag} expects key=value, got '{pair}'.")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
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
    """Each settable option has its documented type (ints are accepted for floats)."""
    for key, kind in _TYPES.items():
        value = opts.get(key)
        if value is None or (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)):
            continue
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise OptionError(f"{where}: option '{key}' must be {names}, got {value!r} ({type(value).__name__}).")


# Ranges of the numeric options: (lowest, highest, whether the lowest is allowed). None = unbounded.
_RANGES = dict(
    max_size=(1, None, True),
    dropout=(0, 1, True),
    sigma_data=(0, None, False),
    sigma_min=(0, None, False),
    sigma_max=(0, None, False),
    duration=(0, None, False),
    batch=(1, None, True),
    batch_gpu=(1, None, True),
    lr=(0, None, False),
    lr_rampup=(0, None, True),
    ema=(0, None, False),
    ema_rampup=(0, None, True),
    grad_clip=(0, None, False),
    tick=(0, None, False),
    snap=(0, None, True),
    sample_grid=(0, None, True),
    seed=(0, 2**32 - 1, True),
    workers=(0, None, True),
    augment=(0, 1, True),
)


def check_ranges(opts: dict, world_size: int = 1) -> None:
    """Numbers in range, finite, and consistent with each other (batch over processes and micro-batches)."""
    for key, (lo, hi, lo_ok) in _RANGES.items():
        v = opts.get(key)
        if v is None:
            continue
        if not math.isfinite(v) or (v < lo if lo_ok else v <= lo) or (hi is not None and v > hi):
            bound = f"{'≥' if lo_ok else '>'} {lo}" + (f" and ≤ {hi}" if hi is not None else "")
            raise OptionError(f"option '{key}' must be {bound}, got {v!r}.")
    if opts["precision"] not in PRECISIONS:
        raise OptionError(f"option 'precision' must be one of {', '.join(PRECISIONS)}, got {opts['precision']!r}.")
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


def network_kwargs(opts: dict, data_shape, label_dim: int) -> dict:
    """The network's constructor options: architecture and preconditioning, the data's shape and label
    count, the σ range, and the preset's network_kwargs (plus --dropout)."""
    kw = dict(opts["network_kwargs"])
    if opts["dropout"] is not None:
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
    from training.network_source import open_snapshot

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
    import schedulers
    from training import networks
    from training.dataset import open_dataset

    opts = merge(preset, flags)
    check_types(opts, f"preset {preset}" if preset else "options")
    check_ranges(opts, world_size)
    if not opts["data"]:
        raise OptionError(
            "No training data: pass --data PATH (a dataset .zip/folder or sequence file) or a --preset that names one."
        )
    try:
        schedulers.scheduler_class(opts["scheduler"])  # unknown names fail here, listing the valid ones
    except ValueError as e:
        raise OptionError(str(e)) from None
    try:
        dataset = open_dataset(opts["data"], use_labels=opts["cond"], max_size=opts["max_size"])
    except (FileNotFoundError, ValueError) as e:
        raise OptionError(str(e)) from None
    opts["label_names"] = list(getattr(dataset, "label_names", None) or []) if opts["cond"] else None
    if opts["transfer"]:
        opts["network_kwargs"] = transfer_network(opts, flags, dataset.data_shape, dataset.label_dim)
    else:
        opts["network_kwargs"] = network_kwargs(opts, dataset.data_shape, dataset.label_dim)
    try:  # wrong resolution for the network, unknown arch/precond, bad kwargs: fail before any work
        networks.build_network(**opts["network_kwargs"])
    except (ValueError, TypeError) as e:
        raise OptionError(f"Network: {e}") from None
    try:
        context = dict(scheduler_context(opts, "continuous"), training_data=lambda: None)  # data read by the run
        schedulers.build(opts["scheduler"], context, **opts["scheduler_kwargs"])
    except (ValueError, TypeError) as e:
        raise OptionError(f"Scheduler: {e}") from None
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
