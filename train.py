"""Train a diffusion model with a pluggable noise scheduler (log-normal, log-uniform, InfoNoise).

Options come from three places, later winning: DEFAULTS below → a preset YAML (--preset) → flags
actually given on the command line. The resolved options are written to
<outdir>/<desc>/training_options.json; re-running the same command resumes from the latest snapshot.

  python train.py --preset digits-infonoise --outdir runs
  torchrun --nproc_per_node=2 train.py --preset mnist-subset --outdir runs --batch 256
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click
import yaml

import schedulers
from torch_utils import distributed as du

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# The one home of every training option's default.
DEFAULTS = dict(
    data=None, cond=False, xflip=False, max_size=None,
    arch="ddpmpp", precond="edm", network_kwargs={}, dropout=None,
    weighting="edm", sigma_data=0.5, sigma_min=0.002, sigma_max=80.0, endpoint="auto",
    scheduler="lognormal", scheduler_kwargs={},
    duration=200.0, batch=512, batch_gpu=None, lr=1e-3, lr_rampup=0.01, ema=0.5, ema_rampup=0.05,
    grad_clip=None, tick=50.0, snap=50, sample_grid=64, seed=0, device=None, desc=None,
)
# Options that may change between the runs of one run directory (the rest must match to resume).
# scheduler_kwargs may be retuned mid-run (e.g. refresh interval); the scheduler itself refuses changes
# to its state's layout (grid, FIFO size).
RESUMABLE_CHANGES = {"duration", "tick", "snap", "sample_grid", "device", "batch_gpu", "scheduler_kwargs"}


def load_preset(name: str, _seen: tuple = ()) -> dict:
    """A preset is configs/<name>.yaml or a path to a YAML file; its keys are option names.
    `extends: other` starts from another preset (its dict options are merged key by key)."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise click.ClickException(f"Unknown preset '{name}' ({path} not found). Valid presets: {', '.join(valid)}")
    if path.resolve() in _seen:
        raise click.ClickException(f"{path}: 'extends' loops back to itself.")
    try:
        preset = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise click.ClickException(f"{path}: not valid YAML ({e}).") from None
    unknown = sorted(set(preset) - set(DEFAULTS) - {"extends"})
    if unknown:
        raise click.ClickException(f"{path}: unknown option(s) {', '.join(unknown)}. Valid: {', '.join(sorted(DEFAULTS))}")
    parent = preset.pop("extends", None)
    if parent is None:
        return preset
    base = load_preset(parent if not parent.endswith((".yaml", ".yml")) else str(path.parent / parent),
                       _seen + (path.resolve(),))
    for key in ("network_kwargs", "scheduler_kwargs"):
        if key in preset:
            preset[key] = {**base.get(key, {}), **(preset[key] or {})}
    return {**base, **preset}


def parse_kv(pairs: tuple[str, ...], flag: str) -> dict:
    """--sched-opt K=500 --sched-opt sigma_p=0.2 → {'K': 500, 'sigma_p': 0.2} (values parsed as YAML)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.ClickException(f"{flag} expects key=value, got '{pair}'.")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def resolve_options(preset: str | None, flags: dict) -> dict:
    """DEFAULTS ← preset ← explicit flags; then validate and derive the network's kwargs."""
    from training import networks
    from training.dataset import open_dataset

    opts = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    if preset:
        opts.update(load_preset(preset))
        opts["preset"] = preset
    for key in ("network_kwargs", "scheduler_kwargs"):
        opts[key] = {**(opts.get(key) or {}), **flags.pop(key, {})}
    opts.update({k: v for k, v in flags.items() if v is not None})

    if not opts["data"]:
        raise click.ClickException("No training data: pass --data PATH (a dataset .zip/folder or sequence file) "
                                   "or a --preset that names one.")
    try:
        schedulers.scheduler_class(opts["scheduler"])  # unknown names fail here, listing the valid ones
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    try:
        dataset = open_dataset(opts["data"], use_labels=opts["cond"], max_size=opts["max_size"])
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    opts["label_names"] = list(getattr(dataset, "label_names", None) or []) if opts["cond"] else None
    net_kwargs = dict(opts["network_kwargs"])
    if opts["dropout"] is not None:
        net_kwargs["dropout"] = opts["dropout"]
    opts["network_kwargs"] = dict(
        arch=opts["arch"], precond=opts["precond"], data_shape=list(dataset.data_shape),
        label_dim=dataset.label_dim if opts["cond"] else 0, sigma_min=opts["sigma_min"],
        sigma_max=opts["sigma_max"], sigma_data=opts["sigma_data"], **net_kwargs)
    try:  # wrong resolution for the network, unknown arch/precond, bad kwargs: fail before any work
        networks.build_network(**opts["network_kwargs"])
    except (ValueError, TypeError) as e:
        raise click.ClickException(f"Network: {e}") from None
    try:
        context = dict(sigma_min=opts["sigma_min"], sigma_max=opts["sigma_max"], sigma_data=opts["sigma_data"],
                       weighting=opts["weighting"], endpoint="continuous")
        schedulers.build(opts["scheduler"], context, **opts["scheduler_kwargs"])
    except (ValueError, TypeError) as e:
        raise click.ClickException(f"Scheduler: {e}") from None
    if opts["batch"] % du.get_world_size():
        raise click.ClickException(f"--batch {opts['batch']} is not divisible by {du.get_world_size()} processes.")
    if not opts["desc"]:  # the preset's name, plus what the flags changed of its recipe
        if opts.get("preset"):
            parts = [Path(opts["preset"]).stem] + [str(flags[k]) for k in ("scheduler", "weighting") if flags.get(k)]
        else:
            parts = [Path(str(opts["data"])).name.split(".")[0], opts["scheduler"], opts["weighting"]]
        opts["desc"] = "-".join(parts)
    opts["desc"] = re.sub(r"[^\w.+-]", "_", opts["desc"])
    return opts


def prepare_run_dir(outdir: str, opts: dict) -> Path:
    """Create (or re-open, to resume) <outdir>/<desc>; refuse to mix two configurations in one folder."""
    run_dir = Path(outdir) / opts["desc"]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise click.ClickException(f"{run_dir}: cannot write there ({e.strerror}). Choose another --outdir.") from None
    opts_path = run_dir / "training_options.json"
    if opts_path.exists():
        old = json.loads(opts_path.read_text())
        differ = sorted(k for k in set(old) | set(opts) if k not in RESUMABLE_CHANGES | {"run_dir"}
                        and old.get(k) != opts.get(k))
        if differ:
            raise click.ClickException(
                f"{run_dir} holds a run with other options ({', '.join(differ)} differ). "
                f"Use another --desc or --outdir, or re-run with the same options to resume it.")
    if opts_path.exists() and old.get("scheduler_kwargs") != opts["scheduler_kwargs"]:
        du.print0(f"Note: scheduler options change on resume: {old.get('scheduler_kwargs')} -> {opts['scheduler_kwargs']}")
    return run_dir


@click.command(context_settings={"show_default": True})
@click.option("--outdir", required=True, type=str, help="Parent folder of run directories")
@click.option("--preset", type=str, help="configs/<name>.yaml or a YAML path")
@click.option("--data", type=str, help="Dataset: .zip/folder of PNGs, or FASTA/TSV sequences")
@click.option("--cond/--no-cond", default=None, help="Class-conditional (needs labels)")
@click.option("--xflip/--no-xflip", default=None, help="Add mirrored images")
@click.option("--max-size", type=int, help="Use a seeded subset of this many items")
@click.option("--arch", type=str, help="ddpmpp | ncsnpp | adm | dnaunet")
@click.option("--precond", type=click.Choice(["edm", "vp", "ve"]), help="Preconditioning")
@click.option("--cbase", type=int, help="Base channel count (network model_channels)")
@click.option("--cres", type=str, help="Channel multipliers per resolution, e.g. 1,2,2")
@click.option("--dropout", type=float, help="Dropout probability")
@click.option("--net-opt", multiple=True, help="Extra network option key=value (repeatable)")
@click.option("--weighting", type=click.Choice(["edm", "unit"]), help="Loss weight w(σ): EDM λ(σ) or 1")
@click.option("--endpoint", type=click.Choice(["auto", "continuous", "discrete"]), help="Data type for the pivot rule")
@click.option("--scheduler", type=str, help=f"Noise scheduler: {', '.join(schedulers.names())}")
@click.option("--sched-opt", multiple=True, help="Scheduler option key=value (repeatable)")
@click.option("--sigma-min", type=float, help="Smallest σ")
@click.option("--sigma-max", type=float, help="Largest σ")
@click.option("--duration", type=float, help="Training length in Mimg")
@click.option("--batch", type=int, help="Total batch size")
@click.option("--batch-gpu", type=int, help="Per-process micro-batch (gradient accumulation)")
@click.option("--lr", type=float, help="Learning rate")
@click.option("--lr-rampup", type=float, help="Learning-rate ramp-up in Mimg")
@click.option("--ema", type=float, help="EMA half-life in Mimg")
@click.option("--tick", type=float, help="Status interval in kimg")
@click.option("--snap", type=int, help="Snapshot interval in ticks")
@click.option("--sample-grid", type=int, help="EMA samples drawn at each snapshot (0 = none)")
@click.option("--seed", type=int, help="Random seed")
@click.option("--device", type=str, help="cpu | cuda (default: cuda if available)")
@click.option("--desc", type=str, help="Run directory name (default from preset/data, scheduler, weighting)")
@click.option("--dry-run", is_flag=True, help="Print the options and exit")
@click.option("--stop-after-steps", type=int, hidden=True, help="Stop (with a snapshot) after N steps in this call")
def main(outdir, preset, dry_run, stop_after_steps, cbase, cres, net_opt, sched_opt, **flags):
    """Train a diffusion model; re-run the same command to resume."""
    du.init(flags.get("device"))
    net_kw = parse_kv(net_opt, "--net-opt")
    if cbase is not None:
        net_kw["model_channels"] = cbase
    if cres is not None:
        net_kw["channel_mult"] = [int(c) for c in cres.split(",")]
    flags.update(network_kwargs=net_kw, scheduler_kwargs=parse_kv(sched_opt, "--sched-opt"))
    opts = resolve_options(preset, flags)
    if dry_run:
        click.echo(json.dumps(opts, indent=2))
        return
    run_dir = prepare_run_dir(outdir, opts)
    if du.get_rank() == 0:
        tmp = run_dir / "training_options.json.tmp"
        tmp.write_text(json.dumps(opts, indent=2))
        os.replace(tmp, run_dir / "training_options.json")
    du.barrier()

    from training import training_loop
    try:
        training_loop.run(run_dir=str(run_dir), stop_after_steps=stop_after_steps, **opts)
    except training_loop.NonFiniteLossError as e:
        raise click.ClickException(str(e)) from None
    finally:
        du.shutdown()


if __name__ == "__main__":
    main()
