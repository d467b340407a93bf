"""Examples to a target FD for diffusers' own DDPM trainer: its uniform timestep draw vs InfoNoise's.

Trains examples/diffusers_ddpm_digits.py (a diffusers `UNet2DModel`, `DDPMScheduler`, ε-prediction, scikit-learn's
8×8 digits) once per arm and seed, and scores the model every `--eval-every` optimizer steps with this repository's
evaluation: `--eval-samples` images drawn (with the weights' EMA, diffusers' `EMAModel` as its trainer's `--use_ema`
keeps it; `--no-ema` for the raw weights) by diffusers' DDPM sampler on its own evenly spaced timesteps (the same
sampler for every arm, so the numbers compare training alone), FD of their LeNet-digits features against the
training images' (evaluation/frechet.py, the harness's detector for 8×8 data). InfoNoise arms are also scored at
their last evaluation on InfoGrid's timesteps (`fd_lenet_digits_infogrid`). The scoring draws from its own
generator, so it leaves the training run untouched.

Arms: `uniform` (diffusers' `torch.randint` draw), `infonoise` (the library's defaults), `infonoise-bayes` (the
same with the coordinate-wise Bayes cap, docs/method.md §4b). The table gives each arm's examples to the target
— the best seed-mean FD of the uniform arm — from the seed-mean curve and from each seed's own, and a 95 %
bootstrap interval over seeds of the speedup (benchmarks/time_to_target.py's crossing and bootstrap).

    python -m benchmarks.diffusers_ddpm --arms uniform,infonoise --seeds 0,1,2 --steps 4000 --eval-every 500 \\
        --outdir benchmarks/results/diffusers-ddpm-digits

Resumable per run: a run (arm, seed) with every evaluation in results.csv is skipped; an unfinished one is trained
again from step 0 (the same seed gives the same run) and only its missing evaluations are written.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import diffusers_ddpm_digits as trainer  # noqa: E402
from digits_common import load_digits  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.time_to_target import per_seed_text, plot, summarize  # noqa: E402
from evaluation.detectors import get_detector  # noqa: E402
from evaluation.frechet import compute_stats, frechet_distance  # noqa: E402

ARMS = {
    "uniform": [],
    "infonoise": [],
    "infonoise-bayes": ["--mmse-cap", "coordinate-bayes"],
    # diagnostic: the cap, and π ∝ ρ instead of ρ/w (the ε-loss's w = 1/σ² left out of the allocation)
    "infonoise-bayes-density": ["--mmse-cap", "coordinate-bayes", "--allocation", "density"],
}
FIELDS = ["method", "seed", "kex", "metric", "metric_name", "target_kex", "step", "train_seconds", "eval_seconds"]
METRIC = "fd_lenet_digits"


class Scorer:
    """FD of a model's DDPM samples against the digits' LeNet features (reference computed once)."""

    def __init__(self, samples: int, sample_steps: int, seed: int):
        self.samples, self.sample_steps, self.seed = samples, sample_steps, seed
        self.detector = get_detector("lenet-digits", "cpu")
        ref = ((load_digits() + 1) * 127.5).round().to(torch.uint8)  # = dataset_tool's round(v·255/16)
        self.ref = compute_stats([ref], self.detector, merge=False).mean_cov()

    def __call__(self, model, noise_scheduler, sampler=None, ema=None) -> float:
        images = trainer.sample(model, noise_scheduler, sampler, self.samples, self.sample_steps, self.seed, ema)
        feats = compute_stats([torch.from_numpy(images).permute(0, 3, 1, 2)], self.detector, merge=False)
        return frechet_distance(*feats.mean_cov(), *self.ref)


def train_and_score(arm: str, seed: int, args: dict, points: list[int], done: set, scorer: Scorer, csv: Path):
    """One run; after each evaluation step not yet in the CSV, its rows are appended."""
    argv = ["--timesteps", "uniform" if arm == "uniform" else "infonoise", *ARMS[arm]]
    argv += ["--steps", str(points[-1]), "--seed", str(seed), "--batch", str(args["batch"])]
    argv += ["--lr", str(args["lr"]), "--width", str(args["width"])] + (["--ema"] if args["ema"] else [])
    clock = dict(start=time.time(), eval=0.0)
    bar = click.progressbar(length=points[-1], label=f"{arm} seed {seed}", file=sys.stderr)

    def on_step(steps: int, model, sampler, noise_scheduler, ema) -> None:
        bar.update(1)
        if steps not in points or (arm, seed, steps) in done:
            return
        t0 = time.time()
        scores = {METRIC: scorer(model, noise_scheduler, None, ema)}
        if sampler is not None and steps == points[-1] and sampler.scheduler.profile() is not None:
            scores[METRIC + "_infogrid"] = scorer(model, noise_scheduler, sampler, ema)
        t_eval = time.time() - t0
        clock["eval"] += t_eval
        kex = steps * args["batch"] / 1e3
        for name, value in scores.items():
            row = dict(method=arm, seed=seed, kex=f"{kex:.6g}", metric=f"{value:.8g}", metric_name=name)
            row.update(target_kex=f"{kex:.6g}", step=steps, eval_seconds=f"{t_eval:.1f}")
            row["train_seconds"] = f"{time.time() - clock['start'] - clock['eval']:.1f}"
            common.append_row(csv, row, FIELDS)
        click.echo(
            f"\n{arm} seed {seed}: step {steps} ({kex:g} kEx) " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
        )

    with bar:
        trainer.main(argv, on_step=on_step)


def report(outdir: Path) -> str:
    rows = common.read_rows(outdir / "results.csv")
    settings = json.loads((outdir / "benchmark.json").read_text())
    lines = [
        "# diffusers DDPM on 8×8 digits: uniform timesteps vs InfoNoise",
        "",
        f"{settings['eval_samples']} samples per evaluation, diffusers' DDPM sampler on {settings['sample_steps']} "
        f"evenly spaced timesteps (every arm), FD of LeNet-digits features vs the 1,797 training images; batch "
        f"{settings['batch']}, evaluation every {settings['eval_every']} steps, "
        f"{'EMA' if settings.get('ema') else 'raw'} weights. Mean ± std over seeds. Command: "
        f"`{settings['command']}`",
        "",
    ]
    main_rows = [r for r in rows if r["metric_name"] == METRIC]
    if not any(r["method"] == "uniform" for r in main_rows):
        return "\n".join(lines + ["(no uniform rows yet: no target)"])
    s = summarize(main_rows, baselines=["uniform"])
    lines += [f"Target: {s['target']:.4g} = best seed-mean FD of the uniform draw.", ""]
    header = ["arm", "seeds", "final kEx", "final FD", "best FD", "kEx@target", "per seed: kEx@target", "speedup"]
    header += ["95 % bootstrap over seeds", "final FD on InfoGrid"]
    body = []
    for arm, m in s["methods"].items():
        grid = [float(r["metric"]) for r in rows if r["method"] == arm and r["metric_name"] == METRIC + "_infogrid"]
        body.append(
            [
                arm,
                m["seeds"],
                f"{m['final_kex']:.4g}",
                f"{m['final']:.4g} ± {m['final_std']:.2g}",
                f"{m['best']:.4g}",
                "not reached" if m["kex_at_target"] is None else f"{m['kex_at_target']:.4g}",
                per_seed_text(m["kex_at_target_per_seed"]),
                m["speedup_text"],
                "—" if not m["speedup_interval"] else "{:.2f}–{:.2f}×".format(*m["speedup_interval"]),
                "—" if not grid else f"{np.mean(grid):.4g} ± {np.std(grid):.2g} ({len(grid)})",
            ]
        )
    plot([(s, main_rows)], outdir / "fd_vs_kex.png", "diffusers DDPM, 8×8 digits: FD vs processed examples")
    return "\n".join(lines + [common.markdown_table(header, body), ""])


@click.command(context_settings={"show_default": True})
@click.option("--arms", default="uniform,infonoise", help=f"Comma-separated, of {', '.join(ARMS)}")
@click.option("--seeds", default="0,1,2")
@click.option("--steps", type=click.IntRange(min=1), default=4000, help="Optimizer steps per run")
@click.option("--eval-every", type=click.IntRange(min=1), default=500, help="Steps between evaluations")
@click.option("--eval-samples", type=click.IntRange(min=2), default=1000)
@click.option("--sample-steps", type=click.IntRange(min=1), default=50, help="DDPM sampling steps")
@click.option("--batch", type=click.IntRange(min=1), default=64)
@click.option("--lr", type=float, default=1e-3)
@click.option("--width", type=click.IntRange(min=1), default=32)
@click.option("--ema/--no-ema", default=True, help="Score diffusers' EMAModel of the weights (its trainer's --use_ema)")
@click.option("--threads", type=click.IntRange(min=1), default=1)
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--report-only", is_flag=True, help="Only rebuild table.md and the plot from results.csv")
def main(
    arms, seeds, steps, eval_every, eval_samples, sample_steps, batch, lr, width, ema, threads, outdir, report_only
):
    if not report_only:
        arm_list, seed_list = common.parse_list(arms), common.parse_list(seeds, int)
        if unknown := [a for a in arm_list if a not in ARMS]:
            raise click.BadParameter(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
        common.set_threads(threads)
        settings = dict(eval_every=eval_every, eval_samples=eval_samples, sample_steps=sample_steps, batch=batch)
        settings.update(lr=lr, width=width, ema=ema)
        outdir.mkdir(parents=True, exist_ok=True)
        path = outdir / "benchmark.json"
        if path.is_file():
            old = json.loads(path.read_text())
            if differ := [k for k in settings if old.get(k) != settings[k]]:
                raise click.ClickException(f"{path}: other settings ({', '.join(differ)}); use another --outdir")
        settings.update(
            machine=common.machine_note(), command=common.invoked_command("python -m benchmarks.diffusers_ddpm")
        )
        path.write_text(json.dumps(settings, indent=1))
        points = list(range(eval_every, steps + 1, eval_every))
        if not points or points[-1] != steps:
            points.append(steps)
        csv = outdir / "results.csv"
        scorer = Scorer(eval_samples, sample_steps, seed=0)
        for seed in seed_list:
            for arm in arm_list:
                done = {
                    (r["method"], int(r["seed"]), int(r["step"]))
                    for r in common.read_rows(csv)
                    if r["metric_name"] == METRIC
                }
                if all((arm, seed, p) in done for p in points):
                    continue
                train_and_score(arm, seed, dict(batch=batch, lr=lr, width=width, ema=ema), points, done, scorer, csv)
    text = report(outdir)
    (outdir / "table.md").write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
