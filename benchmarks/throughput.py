"""Training and sampling speed of every network preset, with the noise scheduler's share of a step.

Why: budgets in this project are counted in processed examples (kEx), because this machine's speed
drifts several-fold with other jobs; this script is where examples are converted to seconds, so a
reader can plan a run and see that the scheduler is not where the time goes. It measures

  * training: optimizer steps/s and images/s of forward + backward + Adam at the preset's batch, with
    the preset's own scheduler in the loop exactly as training_loop calls it (sample → loss →
    observe → step) and the share of step time spent in those scheduler calls. An adaptive
    scheduler is first brought past its warm-up with synthetic errors, so the share is the one that
    lasts all of training;
  * sampling: images/s of deterministic Heun on the EDM grid for each number of levels N (NFE 2N − 1);

on CPU for each thread count in --threads (and on CUDA when present). Presets sharing one network
and batch are timed once (their names are listed together; an InfoNoise member, if any, is the
scheduler in the loop). On CPU, presets above --max-params (GPU-sized: full MNIST, CIFAR-10) are
skipped unless named in --presets. Every time is a median over --repeats; nothing asserts a timing.

  python benchmarks/throughput.py --out-dir benchmarks/results
  python benchmarks/throughput.py --presets mnist-subset --threads 1 --batch 64
  python benchmarks/throughput.py --quick --out-dir /tmp/tp       # seconds; smoke test
"""

from __future__ import annotations

import sys  # noqa: I001
from pathlib import Path as _Path

# Run as `python benchmarks/<script>.py` from a checkout: the repository root first (the framework is not installed).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import json
import time
from pathlib import Path

import click
import torch
import tqdm

from benchmarks import common

FIELDS = [
    "device",
    "threads",
    "kind",
    "presets",
    "scheduler",
    "params_M",
    "data_shape",
    "shape_source",
    "batch",
    "steps",
    "nfe",
    "median_s",
    "steps_per_s",
    "img_per_s",
    "sched_share_pct",
    "repeats",
]


def preset_groups(
    names: list[str], explicit: bool, max_params: float, device: torch.device, batch: int | None, log
) -> list[dict]:
    """Presets grouped by (network, batch): one timing per group. GPU-sized presets are dropped on CPU
    unless they were asked for by name."""
    groups: dict[str, dict] = {}
    for name in names:
        try:
            opts = common.preset_setup(name, {"batch": batch} if batch else None)
        except (FileNotFoundError, ValueError) as e:
            log(f"skip {name}: {e}")
            continue
        if device.type == "cpu" and not explicit and opts["num_params"] > max_params:
            log(
                f"skip {name} on CPU: {opts['num_params'] / 1e6:.1f} M parameters > --max-params "
                f"{max_params / 1e6:g} M (name it in --presets to time it anyway)"
            )
            continue
        key = json.dumps([opts["network_kwargs"], opts["batch"]], sort_keys=True)
        group = groups.setdefault(key, {"presets": [], "opts": opts})
        group["presets"].append(name)
        if opts["scheduler"] == "infonoise" and group["opts"]["scheduler"] != "infonoise":
            group["opts"] = opts
    return list(groups.values())


def time_training(opts: dict, device: torch.device, repeats: int, steps: int, warmup: int, seed: int = 0) -> dict:
    """Median step time and the scheduler's share, with the loop's call order (training_loop.run)."""
    from models import networks
    from training.loss import DenoisingLoss

    batch = opts["batch"]
    torch.manual_seed(seed)
    net = networks.build_network(**opts["network_kwargs"]).to(device).train().requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = DenoisingLoss(opts["weighting"], opts["sigma_data"])
    sched = common.build_scheduler(opts)
    global_step = common.prime_scheduler(sched, batch, seed)
    shape, label_dim = opts["network_kwargs"]["data_shape"], opts["network_kwargs"]["label_dim"]
    x0 = torch.rand([batch, *shape], device=device) * 2 - 1
    labels = torch.eye(label_dim, device=device)[torch.arange(batch) % label_dim] if label_dim else None
    gen = torch.Generator().manual_seed(seed)
    sync = common.device_sync(device)

    def step() -> float:
        """One optimizer step; returns the seconds spent inside scheduler calls."""
        nonlocal global_step
        optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        sigma = sched.sample(batch, generator=gen)
        t_sched = time.perf_counter() - t0
        loss, error = loss_fn(net, x0, sigma.to(device), labels)
        (loss.sum() / batch).backward()
        if sync:
            sync()
        t0 = time.perf_counter()
        sched.observe(sigma, error)
        t_sched += time.perf_counter() - t0
        optimizer.step()
        global_step += 1
        t0 = time.perf_counter()
        sched.step(global_step)
        return t_sched + time.perf_counter() - t0

    for _ in range(warmup):
        step()
    per_step, shares = [], []
    for _ in tqdm.trange(repeats, desc=f"train {opts['preset']}", leave=False):
        if sync:
            sync()
        start, in_sched = time.perf_counter(), 0.0
        for _ in range(steps):
            in_sched += step()
        if sync:
            sync()
        elapsed = time.perf_counter() - start
        per_step.append(elapsed / steps)
        shares.append(in_sched / elapsed)
    s = common.median(per_step)
    return dict(
        median_s=s,
        steps_per_s=1 / s,
        img_per_s=batch / s,
        sched_share_pct=100 * common.median(shares),
        scheduler=opts["scheduler"],
    )


# ----------------------------------------------------------------------------------------------------
# The real training loop, per precision (--precisions): steps/s, the loader's share, host syncs per step.

LOOP_FIELDS = [
    "device",
    "threads",
    "presets",
    "precision",
    "params_M",
    "batch",
    "steps_per_s",
    "img_per_s",
    "loader_share_pct",
    "host_syncs_per_step",
    "ticks",
]


def synthetic_data(shape, root: Path, n: int = 512) -> Path:
    """An EDM-format zip of random images of `shape` (the step's cost does not depend on the pixels)."""
    import io
    import zipfile

    import numpy as np
    import PIL.Image

    path = root / f"synthetic-{'x'.join(map(str, shape))}.zip"
    if not path.exists():
        rnd = np.random.RandomState(0)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
            for i in range(n):
                img = rnd.randint(0, 256, (shape[1], shape[2], shape[0])).astype(np.uint8)
                buf = io.BytesIO()
                PIL.Image.fromarray(img[..., 0] if shape[0] == 1 else img).save(buf, format="png")
                z.writestr(f"{i:06d}.png", buf.getvalue())
    return path


def time_loop(
    preset: str, device: str, precision: str, batch: int | None, steps: int, repeats: int, root: Path, **overrides
) -> dict:
    """`training_loop.run` itself for (1 + repeats) ticks of `steps` steps (the first, with warm-up and
    compilation, untimed): medians of the tick times and of the loader's share from stats.jsonl; host syncs
    per step counted between steps (HostSyncCounter)."""
    import json

    import modalities
    from training import options, training_loop

    compile_net = precision.endswith("+compile")
    precision = precision.removesuffix("+compile")
    base = options.merge(preset, {})
    data = base["data"] and (common.REPO / base["data"] if not Path(base["data"]).is_absolute() else Path(base["data"]))
    shape = common.ASSUMED_SHAPES.get(next((k for k in common.ASSUMED_SHAPES if preset.startswith(k)), ""), None)
    if not (data and Path(data).exists()):
        if shape is None or len(shape) != 3:
            raise click.ClickException(f"{preset}: its data is not here and no image shape is known to stand in")
        data = synthetic_data(shape, root)
    batch = batch or base["batch"]
    opts = options.resolve(
        preset,
        dict(
            data=str(data),
            batch=batch,
            duration=1e3,
            tick=steps * batch / 1e3,
            snap=0,
            sample_grid=0,
            device=device,
            precision=precision,
            compile=compile_net,
            desc="-".join(
                [Path(preset).stem, precision] + ["compile"] * compile_net + [f"{k}{v}" for k, v in overrides.items()]
            ),
            **overrides,
        ),
    )
    run_dir = options.prepare_run_dir(root / "runs", opts, log=lambda m: None)
    for old in run_dir.iterdir():
        old.unlink()
    (run_dir / "training_options.json").write_text(json.dumps(opts))
    marks, real_build = [], training_loop.schedulers.build

    def build(*a, **k):
        sched = real_build(*a, **k)
        inner = sched.step
        sched.step = lambda step: (marks.append(len(counter.calls)), inner(step))[1]
        return sched

    training_loop.schedulers.build = build
    try:
        with common.HostSyncCounter() as counter:
            training_loop.run(run_dir, opts, **modalities.for_training(opts), stop_after_steps=(1 + repeats) * steps)
    finally:
        training_loop.schedulers.build = real_build
    ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()][1:]
    # marks[i] is taken at step i + 1; the span to the next mark holds a tick when step i + 1 ends one
    per_step = [marks[i + 1] - marks[i] for i in range(len(marks) - 1) if (i + 1) % steps]
    sec = common.median([t["sec_per_tick"] for t in ticks]) / steps
    return dict(
        precision=precision + "+compile" * compile_net,
        batch=batch,
        steps_per_s=1 / sec,
        img_per_s=batch / sec,
        loader_share_pct=100 * common.median([t["loader_share"] for t in ticks]),
        host_syncs_per_step=common.median(per_step) if per_step else 0,
        ticks=len(ticks),
        params_M=sum(v.numel() for v in training_loop.networks.build_network(**opts["network_kwargs"]).parameters())
        / 1e6,
    )


EDM_STEP = """
import sys, time, statistics, torch
torch.set_num_threads({threads})
from training.networks import EDMPrecond
from training.loss import EDMLoss
torch.manual_seed(0)
kw = dict(model_type='SongUNet', embedding_type='positional', encoder_type='standard', decoder_type='standard',
          channel_mult_noise=1, resample_filter=[1, 1], model_channels=128, channel_mult=[2, 2, 2], dropout=0.13)
net = EDMPrecond(img_resolution={res}, img_channels={ch}, label_dim=0, **kw).train().requires_grad_(True)
opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
loss_fn, x = EDMLoss(), torch.rand({batch}, {ch}, {res}, {res}) * 2 - 1
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(net=net, images=x).sum().mul(1 / {batch}).backward()
    opt.step()
for _ in range({warmup}):
    step()
times = []
for _ in range({repeats}):
    t0 = time.perf_counter()
    for _ in range({steps}):
        step()
    times.append((time.perf_counter() - t0) / {steps})
print(statistics.median(times))
"""


def time_edm(edm_repo: str, shape, batch: int, threads: int, steps: int, repeats: int, warmup: int) -> float:
    """Seconds per step of NVIDIA EDM's own DDPM++ training step (EDMPrecond + EDMLoss + Adam) on the same
    config, run from the given checkout in its own interpreter (its packages share our names; never vendored)."""
    import subprocess
    import sys

    code = EDM_STEP.format(
        threads=threads, res=shape[1], ch=shape[0], batch=batch, steps=steps, repeats=repeats, warmup=warmup
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=edm_repo,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": edm_repo, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": str(threads)},
    )
    if proc.returncode:
        raise click.ClickException(f"EDM's step failed in {edm_repo}: {proc.stderr.strip().splitlines()[-1:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def side_by_side(
    edm_repo: str, batch: int, threads: int, steps: int, rounds: int, warmup: int, root: Path, out_dir: Path
) -> dict:
    """The same DDPM++ config (CIFAR-10 shape, fp32, CPU): ours through the real loop (plain and with
    --channels-last) and EDM's bare step through its own code, measured in alternation `rounds` times so that
    a shared machine whose speed drifts slows all three alike; each ratio is the median of per-round ratios.
    Writes edm_side_by_side.csv (one row per round)."""
    shape, per_round = (3, 32, 32), []
    for r in range(rounds):
        row = dict(round=r, batch=batch, threads=threads)
        for key, extra in (("ours_s", {}), ("ours_cl_s", dict(channels_last=True))):
            timed = time_loop("cifar10", "cpu", "fp32", batch, steps, 1, root, augment=0.0, **extra)  # as EDM's step
            row[key] = 1 / timed["steps_per_s"]
        row["edm_s"] = time_edm(edm_repo, shape, batch, threads, steps, 1, warmup)
        per_round.append(row)
        click.echo(
            f"  round {r}: ours {row['ours_s']:.3f} s, channels-last {row['ours_cl_s']:.3f} s, "
            f"EDM {row['edm_s']:.3f} s per step",
            err=True,
        )
    common.write_rows(
        out_dir / "edm_side_by_side.csv",
        [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in per_round],
        ["round", "batch", "threads", "ours_s", "ours_cl_s", "edm_s"],
    )
    med = {k: common.median([r[k] for r in per_round]) for k in ("ours_s", "ours_cl_s", "edm_s")}
    return dict(
        shape="x".join(map(str, shape)),
        batch=batch,
        threads=threads,
        rounds=rounds,
        **med,
        ratio=common.median([r["ours_s"] / r["edm_s"] for r in per_round]),
        ratio_cl=common.median([r["ours_cl_s"] / r["edm_s"] for r in per_round]),
    )


def side_by_side_text(edm: dict) -> str:
    return (
        f"NVIDIA EDM's own step beside ours, same DDPM++ config ({edm['shape']}, batch {edm['batch']}, fp32, "
        f"{edm['threads']} thread(s), {edm['rounds']} alternating rounds, medians): EDM {edm['edm_s']:.3f} s; "
        f"ours {edm['ours_s']:.3f} s → ratio ours/EDM = {edm['ratio']:.3f}; ours with --channels-last "
        f"{edm['ours_cl_s']:.3f} s → {edm['ratio_cl']:.3f}. Ours is the whole loop step (loader, scheduler, "
        "EMA, statistics); EDM's is its bare step (network, loss, Adam). Per round: edm_side_by_side.csv."
    )


def loop_report(rows: list[dict], out_dir: Path, edm: dict | None) -> str:
    """throughput.md + throughput_loop.csv for the per-precision rows; edm_side_by_side.md for the EDM
    comparison (each file only when there is something to put in it)."""
    text = [common.machine_note(), ""]
    if edm:
        text += ["# NVIDIA EDM's training step beside ours", "", side_by_side_text(edm), ""]
        (out_dir / "edm_side_by_side.md").write_text("\n".join(text))
    if rows:
        header = ["device", "preset", "precision", "params (M)", "batch", "steps/s", "img/s", "loader share"]
        body = [
            [
                r["device"],
                r["presets"],
                r["precision"],
                f"{r['params_M']:.1f}",
                r["batch"],
                f"{r['steps_per_s']:.3g}",
                f"{r['img_per_s']:.4g}",
                f"{r['loader_share_pct']:.2f} %",
                f"{r['host_syncs_per_step']:g}",
            ]
            for r in rows
        ]
        table = ["# Training loop throughput", "", common.machine_note(), ""]
        table += [common.markdown_table(header + ["host syncs/step"], body), ""]
        (out_dir / "throughput.md").write_text("\n".join(table))
        common.write_rows(
            out_dir / "throughput_loop.csv",
            [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
            LOOP_FIELDS,
        )
        text += table
    return "\n".join(text)


@torch.no_grad()
def time_sampling(
    opts: dict, device: torch.device, levels: list[int], batch: int, repeats: int, seed: int = 0
) -> list[dict]:
    """Median seconds of Heun sampling `batch` images per number of levels (untrained weights: the
    cost does not depend on them)."""
    from models import networks
    from sampling.grids import edm_grid
    from sampling.solvers import nfe, sample_heun

    torch.manual_seed(seed)
    net = networks.build_network(**opts["network_kwargs"]).to(device).eval().requires_grad_(False)
    shape, label_dim = opts["network_kwargs"]["data_shape"], opts["network_kwargs"]["label_dim"]
    labels = torch.eye(label_dim, device=device)[torch.arange(batch) % label_dim] if label_dim else None
    latents = torch.randn([batch, *shape], generator=torch.Generator().manual_seed(seed)).to(device, torch.float64)
    sync = common.device_sync(device)
    sample_heun(net, latents * 80, edm_grid(2, net.sigma_min, net.sigma_max), class_labels=labels)  # warm-up
    rows = []
    for n in tqdm.tqdm(levels, desc=f"sample {opts['preset']}", leave=False):
        sigmas = edm_grid(n, net.sigma_min, net.sigma_max).to(device)
        times = [
            common.timed(lambda: sample_heun(net, latents * sigmas[0], sigmas, class_labels=labels), sync)
            for _ in range(repeats)
        ]
        s = common.median(times)
        rows.append(dict(steps=n, nfe=nfe("heun", n), median_s=s, img_per_s=batch / s, batch=batch))
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Left: training images/s per preset group and (device, threads). Right: sampling images/s vs NFE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    train = [r for r in rows if r["kind"] == "train"]
    groups = sorted({r["presets"] for r in train})
    configs = sorted({(r["device"], r["threads"]) for r in train})
    width = 0.8 / max(len(configs), 1)
    for j, (dev, th) in enumerate(configs):
        vals = [
            next((r["img_per_s"] for r in train if r["presets"] == g and (r["device"], r["threads"]) == (dev, th)), 0.0)
            for g in groups
        ]
        ax1.bar([i + j * width for i in range(len(groups))], vals, width, label=f"{dev}, {th} thread(s)")
    ax1.set_xticks([i + width * (len(configs) - 1) / 2 for i in range(len(groups))])
    ax1.set_xticklabels([g.replace(" ", "\n") for g in groups], fontsize=7)
    ax1.set_ylabel("training images/s (fwd+bwd+Adam)")
    ax1.set_title("Training throughput at the preset batch")
    ax1.legend(fontsize=8)
    for key in sorted({(r["presets"], r["device"], r["threads"]) for r in rows if r["kind"] == "sample"}):
        pts = sorted(
            (r["nfe"], r["img_per_s"])
            for r in rows
            if r["kind"] == "sample" and (r["presets"], r["device"], r["threads"]) == key
        )
        ax2.plot(*zip(*pts), marker="o", label=f"{key[0].split(' ')[0]} ({key[1]}, {key[2]} thr)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    nfes = sorted({int(r["nfe"]) for r in rows if r["kind"] == "sample"})
    ax2.set_xticks(nfes)
    ax2.set_xticklabels([str(n) for n in nfes])
    ax2.minorticks_off()
    ax2.set_xlabel("NFE (Heun, 2N − 1)")
    ax2.set_ylabel("sampling images/s")
    ax2.set_title("Sampling throughput")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(rows: list[dict], out_dir: Path) -> None:
    """The plot and the two markdown tables (training; sampling per NFE)."""
    plot(rows, out_dir / "throughput.png")
    click.echo(
        common.markdown_table(
            ["device", "thr", "presets", "params", "batch", "steps/s", "img/s", "sched % of step"],
            [
                [
                    r["device"],
                    r["threads"],
                    r["presets"],
                    f"{r['params_M']:.2f} M",
                    r["batch"],
                    f"{r['steps_per_s']:.3g}",
                    f"{r['img_per_s']:.4g}",
                    f"{r['sched_share_pct']:.3f}",
                ]
                for r in rows
                if r["kind"] == "train"
            ],
        )
    )
    if any(r["kind"] == "sample" for r in rows):
        click.echo()
        click.echo(
            common.markdown_table(
                ["device", "thr", "presets", "N", "NFE", "batch", "s/batch", "img/s"],
                [
                    [
                        r["device"],
                        r["threads"],
                        r["presets"],
                        r["steps"],
                        r["nfe"],
                        r["batch"],
                        f"{r['median_s']:.3g}",
                        f"{r['img_per_s']:.4g}",
                    ]
                    for r in rows
                    if r["kind"] == "sample"
                ],
            )
        )
    click.echo(f"\nWrote {out_dir / 'throughput.csv'} and {out_dir / 'throughput.png'}")


@click.command(context_settings={"show_default": True})
@click.option("--presets", default=None, help="Comma-separated presets (default: every configs/*.yaml that fits)")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Override every preset's batch")
@click.option("--threads", default="1,2", help="CPU thread counts to compare")
@click.option("--devices", default=None, help="cpu,cuda (default: cpu, plus cuda when present)")
@click.option("--repeats", type=click.IntRange(min=1), default=5, help="Repeats; medians are reported")
@click.option("--steps", type=click.IntRange(min=1), default=3, help="Training steps per repeat")
@click.option("--warmup", type=click.IntRange(min=0), default=1, help="Untimed training steps first")
@click.option("--sample-steps", default="3,5,9,18", help="Heun levels N to time (NFE 2N − 1); empty: no sampling")
@click.option("--sample-batch", type=click.IntRange(min=1), default=64, help="Images per sampling batch")
@click.option("--sample-repeats", type=click.IntRange(min=1), default=3, help="Repeats per sampling timing")
@click.option("--max-params", type=float, default=5e6, help="On CPU, skip larger presets unless named")
@click.option("--out-dir", default="benchmarks/results", help="Writes throughput.csv and throughput.png here")
@click.option("--quick", is_flag=True, help="digits only, 1 thread, tiny repeats (smoke test; rough numbers)")
@click.option("--replot", is_flag=True, help="Only redraw the plot and tables from --out-dir's throughput.csv")
@click.option(
    "--precisions",
    default=None,
    help="Time the real training loop instead, per precision: e.g. fp32,bf16,bf16+compile (throughput.md)",
)
@click.option(
    "--edm-repo",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="A checkout of NVIDIA EDM: its own DDPM++ step beside ours (CPU), in --repeats alternating rounds",
)
def main(
    precisions,
    edm_repo,
    presets,
    batch,
    threads,
    devices,
    repeats,
    steps,
    warmup,
    sample_steps,
    sample_batch,
    sample_repeats,
    max_params,
    out_dir,
    quick,
    replot,
):
    """Time training steps/s, images/s and sampling images/s per NFE of each network preset."""
    if replot:
        rows = common.read_rows(Path(out_dir) / "throughput.csv")
        if not rows:
            raise click.ClickException(f"{Path(out_dir) / 'throughput.csv'}: nothing to replot")
        numeric = ("params_M", "median_s", "steps_per_s", "img_per_s", "sched_share_pct")
        rows = [
            {
                k: (float(v) if k in numeric and v != "" else int(v) if k in ("nfe", "steps") and v != "" else v)
                for k, v in r.items()
            }
            for r in rows
        ]
        report(rows, Path(out_dir))
        return
    explicit = presets is not None
    names = common.parse_list(presets) if explicit else sorted(p.stem for p in (common.REPO / "configs").glob("*.yaml"))
    if precisions or edm_repo:
        return loop_main(
            names if explicit else ["digits"],
            precisions,
            edm_repo,
            devices,
            batch,
            common.parse_list(threads, int)[0],
            steps,
            repeats,
            warmup,
            Path(out_dir),
        )
    thread_list = common.parse_list(threads, int)
    device_list = common.parse_list(devices) if devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    levels = common.parse_list(sample_steps, int)
    if quick:
        names = names if explicit else ["digits"]
        thread_list, repeats, steps, warmup = thread_list[:1], 2, 1, 1
        levels, sample_batch, sample_repeats = [2, 3], 8, 1
    if "cuda" in device_list and not torch.cuda.is_available():
        raise click.ClickException("--devices cuda: no CUDA device here")
    out_dir = Path(out_dir)
    rows = []
    for dev_name in device_list:
        device = torch.device(dev_name)
        groups = preset_groups(names, explicit, max_params, device, batch, lambda m: click.echo(m, err=True))
        for th in thread_list if device.type == "cpu" else thread_list[:1]:  # threads matter on CPU only
            th = common.set_threads(th)
            click.echo(f"{dev_name}: {common.machine_note()}", err=True)
            for g in groups:
                opts, label = g["opts"], " ".join(g["presets"])
                base = dict(
                    device=dev_name,
                    threads=th,
                    presets=label,
                    params_M=opts["num_params"] / 1e6,
                    data_shape="x".join(map(str, opts["network_kwargs"]["data_shape"])),
                    shape_source=opts["shape_source"],
                    repeats=repeats,
                )
                t = time_training(opts, device, repeats, steps, warmup)
                rows.append(dict(base, kind="train", batch=opts["batch"], **t))
                click.echo(
                    f"  {label}: {t['steps_per_s']:.3g} steps/s, {t['img_per_s']:.4g} img/s at batch "
                    f"{opts['batch']}, scheduler {t['scheduler']} {t['sched_share_pct']:.3f} % of the step",
                    err=True,
                )
                for r in time_sampling(opts, device, levels, sample_batch, sample_repeats) if levels else []:
                    rows.append(dict(base, kind="sample", scheduler="-", repeats=sample_repeats, **r))
    if not rows:
        raise click.ClickException("no preset could be timed (see the messages above)")

    fmt = [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    common.write_rows(out_dir / "throughput.csv", fmt, FIELDS)
    report(rows, out_dir)


def loop_main(names, precisions, edm_repo, devices, batch, threads, steps, repeats, warmup, out_dir: Path) -> None:
    import tempfile

    threads = common.set_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, edm = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for dev in common.parse_list(devices) if devices else ["cuda" if torch.cuda.is_available() else "cpu"]:
            for name in names if precisions else []:  # --edm-repo alone: only the side-by-side
                for precision in common.parse_list(precisions):
                    r = time_loop(name, dev, precision, batch, steps, repeats, Path(tmp))
                    rows.append(dict(device=dev, threads=threads, presets=name, **r))
                    click.echo(
                        f"  {dev} {name} {r['precision']}: {r['steps_per_s']:.3g} steps/s, loader "
                        f"{r['loader_share_pct']:.2f} %, {r['host_syncs_per_step']:g} host syncs/step",
                        err=True,
                    )
        if edm_repo:
            edm = side_by_side(edm_repo, batch or 32, threads, steps, repeats, warmup, Path(tmp), out_dir)
    click.echo(loop_report(rows, out_dir, edm))


if __name__ == "__main__":
    main()
