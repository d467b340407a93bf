"""What InfoNoise costs per training step, as a share of the smallest preset's step (goal: ≤ 1 %).

Why: InfoNoise is only worth it if the machinery is free compared with what it saves. Its per-step
work is `sample` (an inverse CDF), `observe` (a sort + scatter into per-bin FIFOs) and `step` (a
counter check); every K steps `step` refreshes the table (O(M) maths plus one all-reduce). The
default is the smallest image preset (configs/digits.yaml, 8×8 images, batch 256); the cheapest steps
are the worst case, so time the DNA preset too (its batch-64 step is cheaper still):
--preset dna-cpu --infonoise-preset dna-cpu. Log-normal and log-uniform are timed for reference.

The denominator is forward + backward + Adam of the preset's network at its batch on random data,
without data loading: a lower bound of a real step, so the reported share is an upper bound.
Scheduler timings are taken in the steady state (after the warm-up, with a built table) unless the
row says 'warm-up'. Every number is the median over --repeats; nothing here asserts a timing.

  python benchmarks/scheduler_overhead.py --out benchmarks/results/scheduler_overhead.csv
  python benchmarks/scheduler_overhead.py --preset dna-cpu --infonoise-preset dna-cpu \
      --out benchmarks/results/scheduler_overhead-dna-cpu.csv
  python benchmarks/scheduler_overhead.py --quick          # a few seconds, for smoke tests
"""

from __future__ import annotations

import sys  # noqa: I001
from pathlib import Path as _Path

# Run as `python benchmarks/<script>.py` from a checkout: the repository root first (the framework is not installed).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import click
import torch
import tqdm

from benchmarks import common

FIELDS = ["preset", "batch", "threads", "scheduler", "phase", "op", "median_us", "share_pct", "repeats", "calls"]


def time_train_step(opts: dict, batch: int, repeats: int, steps: int, device: torch.device, seed: int = 0) -> float:
    """Median seconds of one forward + backward + Adam step of the preset's network (random data and σ
    from log-normal: the network's cost does not depend on the values)."""
    from models import networks
    from training.loss import DenoisingLoss

    torch.manual_seed(seed)
    net = networks.build_network(**opts["network_kwargs"]).to(device).train().requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = DenoisingLoss(opts["weighting"], opts["sigma_data"])
    shape = opts["network_kwargs"]["data_shape"]
    label_dim = opts["network_kwargs"]["label_dim"]
    x0 = torch.rand([batch, *shape], device=device) * 2 - 1
    labels = torch.eye(label_dim, device=device)[torch.arange(batch) % label_dim] if label_dim else None
    sigma = (torch.randn(batch) * 1.2 - 1.2).exp().to(device)
    sync = common.device_sync(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = loss_fn(net, x0, sigma, labels)
        (loss.sum() / batch).backward()
        optimizer.step()

    step()  # first call allocates; not timed
    per_step = []
    for _ in tqdm.trange(repeats, desc="train step", leave=False):
        per_step.append(common.timed(lambda: [step() for _ in range(steps)], sync) / steps)
    return common.median(per_step)


def time_scheduler(sched, batch: int, repeats: int, calls: int, start_step: int, seed: int = 0) -> dict[str, float]:
    """Median seconds per call of sample, observe and a non-refresh step, each over `calls` calls."""
    gen = torch.Generator().manual_seed(seed)
    sigma = sched.sample(batch, generator=gen)
    error = (sigma.double() ** 2).float() + torch.rand(batch, generator=gen)  # float32 like the loss's error
    due = getattr(sched, "due", lambda s: False)
    steps = [s for s in range(start_step + 1, start_step + 10 * calls) if not due(s)][:calls]
    out = {"sample": [], "observe": [], "step": []}
    for _ in range(repeats):
        out["sample"].append(common.timed(lambda: [sched.sample(batch, generator=gen) for _ in range(calls)]) / calls)
        out["observe"].append(common.timed(lambda: [sched.observe(sigma, error) for _ in range(calls)]) / calls)
        out["step"].append(common.timed(lambda: [sched.step(s) for s in steps]) / calls)
    return {k: common.median(v) for k, v in out.items()}


def time_refresh(sched, batch: int, repeats: int, start_step: int, seed: int = 0) -> float:
    """Median seconds of one refresh: `step` at a due step (FIFO means → m̂ → ḣ → σ_p → table)."""
    gen = torch.Generator().manual_seed(seed)
    times, step = [], start_step
    for _ in range(repeats):
        sigma = sched.sample(batch, generator=gen)
        sched.observe(sigma, sigma.double() ** 2 / (1 + sigma.double() ** 2))
        step += 1
        while not sched.due(step):
            step += 1
        before = sched.refreshes
        times.append(common.timed(lambda: sched.step(step)))
        if sched.refreshes != before + 1:
            raise RuntimeError(f"step {step} did not refresh {sched!r}")
    return common.median(times)


@click.command(context_settings={"show_default": True})
@click.option("--preset", default="digits", help="Preset whose training step is the denominator (the smallest)")
@click.option("--infonoise-preset", default="digits-infonoise", help="Preset whose InfoNoise options are timed")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size (default: the preset's)")
@click.option("--threads", type=click.IntRange(min=1), default=1, help="torch intra-op threads")
@click.option("--repeats", type=click.IntRange(min=1), default=9, help="Repeats; medians are reported")
@click.option("--train-steps", type=click.IntRange(min=1), default=5, help="Training steps per repeat")
@click.option("--calls", type=click.IntRange(min=1), default=200, help="Scheduler calls per repeat")
@click.option("--out", "out_csv", default="benchmarks/results/scheduler_overhead.csv", help="CSV to write")
@click.option("--quick", is_flag=True, help="Tiny repeats and calls (smoke test; numbers are rough)")
def main(preset, infonoise_preset, batch, threads, repeats, train_steps, calls, out_csv, quick):
    """Time sample + observe (+ step) per training step and one refresh, as a share of a training step."""
    if quick:
        repeats, train_steps, calls = 2, 1, 10
    threads = common.set_threads(threads)
    device = torch.device("cpu")
    try:
        opts = common.preset_setup(preset)
        info_opts = common.preset_setup(infonoise_preset)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if info_opts["scheduler"] != "infonoise":
        raise click.ClickException(f"--infonoise-preset {infonoise_preset} uses scheduler '{info_opts['scheduler']}'")
    batch = batch or opts["batch"]
    click.echo(
        f"{common.machine_note()}\npreset {preset}: {opts['num_params'] / 1e6:.2f} M parameters, "
        f"data {tuple(opts['network_kwargs']['data_shape'])} ({opts['shape_source']}), batch {batch}"
    )

    step_s = time_train_step(opts, batch, repeats, train_steps, device)
    rows = [dict(scheduler="-", phase="-", op="train step (fwd+bwd+Adam)", median_us=step_s * 1e6, calls=train_steps)]

    candidates = [
        ("infonoise", "warm-up", info_opts, False),
        ("infonoise", "steady", info_opts, True),
        ("lognormal", "fixed", opts, False),
        ("loguniform", "fixed", opts, False),
    ]
    for name, phase, o, prime in tqdm.tqdm(candidates, desc="schedulers", leave=False):
        sched = common.build_scheduler(o, name)
        start = common.prime_scheduler(sched, batch) if prime else 0
        t = time_scheduler(sched, batch, repeats, calls, start)
        for op in ("sample", "observe", "step"):
            rows.append(dict(scheduler=name, phase=phase, op=op, median_us=t[op] * 1e6, calls=calls))
        rows.append(
            dict(
                scheduler=name,
                phase=phase,
                op="per step (sample+observe+step)",
                median_us=sum(t.values()) * 1e6,
                calls=calls,
            )
        )
        if prime:
            r = time_refresh(sched, batch, repeats, start)
            rows.append(dict(scheduler=name, phase=phase, op="one refresh", median_us=r * 1e6, calls=1))
            every = sched.refresh_every or sched.auto_every  # the automatic cadence: its interval at this batch
            rows.append(
                dict(
                    scheduler=name,
                    phase=phase,
                    op=f"refresh amortised over K={every}",
                    median_us=r / every * 1e6,
                    calls=1,
                )
            )

    for r in rows:
        r.update(
            preset=preset,
            batch=batch,
            threads=threads,
            repeats=repeats,
            share_pct=100 * r["median_us"] / (step_s * 1e6),
        )
    common.write_rows(
        out_csv, [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows], FIELDS
    )
    click.echo(
        common.markdown_table(
            ["scheduler", "phase", "op", "median µs", "% of train step"],
            [[r["scheduler"], r["phase"], r["op"], f"{r['median_us']:.1f}", f"{r['share_pct']:.3f}"] for r in rows],
        )
    )
    steady = next(
        r for r in rows if r["scheduler"] == "infonoise" and r["phase"] == "steady" and r["op"].startswith("per step")
    )
    amort = next(r for r in rows if r["op"].startswith("refresh amortised"))
    total = steady["share_pct"] + amort["share_pct"]
    click.echo(
        f"InfoNoise per step incl. amortised refresh: {total:.3f} % of a {step_s * 1e3:.1f} ms step "
        f"(goal ≤ 1 %: {'met' if total <= 1 else 'NOT met'}). Wrote {out_csv}"
    )


if __name__ == "__main__":
    main()
