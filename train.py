"""Train a diffusion model with a pluggable noise scheduler (log-normal, log-uniform, InfoNoise).

Options come from three places, later winning: training.options.DEFAULTS → a preset YAML (--preset)
→ flags actually given on the command line. The resolved options are written to
<outdir>/<desc>/training_options.json; re-running the same command resumes from the latest snapshot.

  python train.py --preset digits-infonoise --outdir runs
  torchrun --nproc_per_node=2 train.py --preset mnist-subset --outdir runs --batch 256
  python train.py --data data/cifar10-32x32.zip --cond --outdir runs --scheduler infonoise \
      --transfer https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-cifar10-32x32-cond-vp.pkl
"""

from __future__ import annotations

import json

import click

import schedulers
from torch_utils import distributed as du
from torch_utils.checks import Float, Int, one_line
from torch_utils.files import atomic_write
from training import options as opt
from training.edm_cli import EDMCommand

# EDM's train.py spellings (training/edm_cli.py): what means the same here, and where to go for the rest.
EDM_SPELLINGS = dict(
    bools={"--cond": "--cond", "--xflip": "--xflip", "--bench": "--cudnn-benchmark"},
    aliases={"--fp16": "--precision"},
    values={"--fp16": {"1": "fp16", "true": "fp16", "True": "fp16", "0": "fp32", "false": "fp32", "False": "fp32"}},
    unsupported={
        "--ls": "no loss scaling option: --precision fp16 scales the loss dynamically; drop it",
        "--cache": "the data set is read per item; drop --cache",
        "--nosubdir": "runs always go to <outdir>/<desc>; use --desc to name the folder",
        "--dump": "every snapshot holds the full training state; use --snap",
        "--resume": "re-run the same command with the same --outdir and --desc: it resumes from the latest snapshot",
    },
)


@click.command(cls=EDMCommand, edm=EDM_SPELLINGS, context_settings={"show_default": True})
@click.option("--outdir", required=True, type=str, help="Parent folder of run directories")
@click.option("--preset", type=str, help="configs/<name>.yaml or a YAML path")
@click.option("--data", type=str, help="Dataset: .zip/folder of PNGs, or FASTA/TSV sequences")
@click.option("--cond/--no-cond", default=None, help="Class-conditional (needs labels); EDM's --cond=1/0 too")
@click.option("--xflip/--no-xflip", default=None, help="Add mirrored images; EDM's --xflip=1/0 too")
@click.option("--max-size", type=int, help="Use a seeded subset of this many items")
@click.option("--arch", type=str, help="ddpmpp | ncsnpp | adm | dnaunet")
@click.option("--precond", type=click.Choice(["edm", "vp", "ve"]), help="Preconditioning")
@click.option("--cbase", type=int, help="Base channel count (network model_channels)")
@click.option("--cres", type=str, help="Channel multipliers per resolution, e.g. 1,2,2")
@click.option("--dropout", type=float, help="Dropout probability")
@click.option("--net-opt", multiple=True, help="Extra network option key=value (repeatable)")
@click.option(
    "--weighting",
    type=click.Choice(["edm", "unit", "edm2"]),
    help="Loss weight w(σ): EDM λ(σ), 1, or edm2 = λ(σ)/exp(u(σ)) + u(σ) with u learned (EDM2)",
)
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
@click.option("--grad-clip", type=float, help="Clip the gradient norm to this value (may change on resume)")
@click.option("--ema", type=float, help="EMA half-life in Mimg")
@click.option("--tick", type=float, help="Status interval in kimg")
@click.option("--snap", type=int, help="Snapshot interval in ticks")
@click.option("--sample-grid", type=int, help="EMA samples drawn at each snapshot (0 = none)")
@click.option("--seed", type=int, help="Random seed")
@click.option("--device", type=str, help="cpu | cuda (default: cuda if available)")
@click.option("--augment", type=click.FloatRange(0, 1), help="EDM's augmentation pipe probability (images; 0 = off)")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help="Mixed precision (autocast)")
@click.option("--workers", type=click.IntRange(min=0), help="DataLoader worker processes (default: 0 CPU, 4 CUDA)")
@click.option("--tf32/--no-tf32", default=None, help="TF32 matmuls and convolutions on CUDA")
@click.option("--cudnn-benchmark/--no-cudnn-benchmark", default=None, help="cuDNN autotuning on CUDA")
@click.option(
    "--channels-last/--no-channels-last", default=None, help="Channels-last memory (image networks, CPU and CUDA)"
)
@click.option("--compile/--no-compile", default=None, help="torch.compile the network (opt-in)")
@click.option(
    "--transfer",
    type=str,
    help="Fine-tune: start from this network's weights, EMA too (snapshot .pt, EDM .pkl or a URL; read without "
    "running code), with a fresh optimizer and the chosen scheduler; the network's shape comes from it",
)
@click.option("--desc", type=str, help="Run directory name (default from preset/data, scheduler, weighting)")
@click.option("-n", "--dry-run", is_flag=True, help="Print the options and exit")
@click.option(
    "--dist-timeout",
    type=Float(0, 1e7, lo_open=True),
    default=None,
    help="Seconds a rank may wait for the others before the job fails (default: 600 on CPU, 1800 on CUDA)",
)
@click.option("--stop-after-steps", type=Int(1), hidden=True, help="Stop (with a snapshot) after N steps in this call")
def main(outdir, preset, dry_run, dist_timeout, stop_after_steps, cbase, cres, net_opt, sched_opt, **flags):
    """Train a diffusion model; re-run the same command to resume."""
    try:
        du.init(flags.get("device"), dist_timeout)
        net_kw = opt.parse_kv(net_opt, "--net-opt")
        for flag, key, value in (("--cbase", "model_channels", cbase), ("--cres", "channel_mult", cres)):
            if value is not None and key in net_kw:  # which one was meant? neither is dropped silently
                raise opt.OptionError(
                    f"{flag} {value} and --net-opt {key}={net_kw[key]!r} both set {key}; give one of them."
                )
        if cbase is not None:
            net_kw["model_channels"] = cbase
        if cres is not None:
            try:
                net_kw["channel_mult"] = [int(c) for c in cres.split(",")]
            except ValueError:
                raise opt.OptionError(f"--cres '{cres}': give comma-separated integers, e.g. 1,2,2") from None
        flags.update(network_kwargs=net_kw, scheduler_kwargs=opt.parse_kv(sched_opt, "--sched-opt"))
        opts = opt.resolve(preset, flags, du.get_world_size())
        if dry_run:
            click.echo(json.dumps(opts, indent=2))
            return
        run_dir = opt.prepare_run_dir(outdir, opts, log=du.print0)
    except ValueError as e:  # OptionError and device errors: one line naming the option and the fix
        raise click.ClickException(str(e)) from None
    if du.get_rank() == 0:
        with atomic_write(run_dir / "training_options.json") as f:
            f.write(json.dumps(opts, indent=2))
    du.barrier()

    import modalities
    from datafiles.base import DatasetError
    from training import training_loop

    try:
        training_loop.run(run_dir, opts, **modalities.for_training(opts), stop_after_steps=stop_after_steps)
    except (training_loop.TrainingError, DatasetError) as e:  # a cause named in one line, not a traceback
        raise click.ClickException(one_line(e)) from None
    finally:
        du.shutdown()


if __name__ == "__main__":
    main()
