"""InfoGrid vs the EDM ρ-grid at equal NFE: FD of one checkpoint's samples as the number of steps grows.

Why: the paper claims the learned information profile is also a better *inference* discretisation
(docs/method.md §6): place the N sampling levels uniformly in Φ(σ) ∝ ∫ s·ḣ(s) ds instead of EDM's ρ = 7 grid,
with the same solver (Heun) and the same NFE. The gap matters most at small NFE, so the default sweep
is N = 3, 5, 9, 18 levels (NFE 5, 9, 17, 35). Three grids per N:

  edm               EDM's ρ-grid (the reference)
  infogrid-learned  InfoGrid from the profile InfoNoise saved in the snapshot (skipped, with a note,
                    for a checkpoint trained with a fixed schedule: it has none)
  infogrid-probed   InfoGrid from a profile probed from the network's own denoising error on data
                    (sampling.probe.probe_network; works for any checkpoint, probed once per run)

Every grid samples the same seeds, so differences are the grids', not sampling noise. FD uses the
LeNet domain detector against the training data's statistics (computed once, cached in --outdir),
or --ref. Outputs in --outdir: infogrid_nfe.csv (with the σ-grid of every row), infogrid_nfe.md and
infogrid_nfe.png. Rows already in the CSV for the same snapshot and samples are reused, so a killed
run resumes.

  python benchmarks/infogrid_nfe.py --network runs/infonoise-s0/network-snapshot-000300.pt \\
      --seeds 0-999 --outdir benchmarks/results/infogrid-digits
"""

from __future__ import annotations

import sys  # noqa: I001
from pathlib import Path as _Path

# Run as `python benchmarks/<script>.py` from a checkout: the repository root first (the framework is not installed).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import os
import time
from pathlib import Path

import click
import tqdm

from benchmarks import common

FIELDS = ["network", "grid", "steps", "nfe", "fd", "metric_name", "samples", "solver", "sigmas", "seconds"]
GRIDS = ("edm", "infogrid-learned", "infogrid-probed")


def data_path(options: dict) -> str:
    """The snapshot's training data (presets name it relative to the repository)."""
    data = str(options.get("data") or "")
    if not data:
        raise click.ClickException("the snapshot's options name no data set; pass --probe-data and --ref")
    return data if os.path.exists(data) or not (common.REPO / data).exists() else str(common.REPO / data)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for grid in GRIDS:
        pts = sorted((int(r["nfe"]), float(r["fd"])) for r in rows if r["grid"] == grid)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=grid)
    ax.set_xscale("log")
    nfes = sorted({int(r["nfe"]) for r in rows})
    ax.set_xticks(nfes)
    ax.set_xticklabels([str(n) for n in nfes])
    if rows and min(float(r["fd"]) for r in rows) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("NFE (Heun)")
    ax.set_ylabel(f"{rows[0]['metric_name'] if rows else 'FD'} (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command(context_settings={"show_default": True})
@click.option("--network", "network_path", required=True, help="Snapshot (network-snapshot-*.pt)")
@click.option("--steps", default="3,5,9,18", help="Sampling levels N (Heun NFE = 2N − 1)")
@click.option("--seeds", default="0-999", help="Sample seeds (the same for every grid)")
@click.option("--grids", default=",".join(GRIDS), help=f"Subset of {', '.join(GRIDS)}")
@click.option("--ref", "ref_path", default=None, help="Reference statistics .npz (default: the training data's)")
@click.option("--detector", default="auto", help="Detector for the default reference: auto (by data shape) or a name")
@click.option(
    "--binarize",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    help="Threshold samples before scoring; auto: when the training data are two-valued",
)
@click.option("--probe-data", default=None, help="Data to probe the profile from (default: the training data)")
@click.option("--probe-samples", type=click.IntRange(min=1), default=128, help="Examples probed per σ bin")
@click.option("--probe-bins", type=click.IntRange(min=2), default=128, help="Log-σ bins of the probed profile")
@click.option("--solver", type=click.Choice(["heun", "euler"]), default="heun", help="ODE solver")
@click.option("--rho", type=float, default=7.0, help="EDM grid exponent")
@click.option("--batch", type=click.IntRange(min=1), default=250, help="Sampling batch")
@click.option("--threads", type=click.IntRange(min=1), default=1, help="torch threads")
@click.option("--device", default=None, help="cpu | cuda (default: cuda if available)")
@click.option("--outdir", required=True, help="Folder for infogrid_nfe.csv/.md/.png (and the cached reference)")
def main(
    network_path,
    steps,
    seeds,
    grids,
    ref_path,
    detector,
    binarize,
    probe_data,
    probe_samples,
    probe_bins,
    solver,
    rho,
    batch,
    threads,
    device,
    outdir,
):
    """FD vs NFE for the EDM grid and InfoGrid (learned and probed profiles) of one checkpoint."""
    import modalities
    from evaluation.detectors import auto_detector
    from evaluation.evaluate import evaluate_snapshot
    from evaluation.frechet import load_stats, reference_stats
    from models import networks
    from sampling.generation import build_sigmas, parse_int_list, sigma_range
    from sampling.probe import probe_network
    from sampling.solvers import nfe
    from torch_utils import checkpoint
    from torch_utils import distributed as dist

    common.set_threads(threads)
    dev = dist.init(device)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    level_list, grid_list = common.parse_list(steps, int), common.parse_list(grids)
    unknown = sorted(set(grid_list) - set(GRIDS))
    if unknown:
        raise click.BadParameter(
            f"unknown grid(s) {', '.join(unknown)}; valid: {', '.join(GRIDS)}", param_hint="--grids"
        )
    try:
        seed_list = parse_int_list(seeds)
        snapshot = checkpoint.load(network_path)
        net = networks.from_snapshot(snapshot, which="ema", device=dev)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if len(net.data_shape) != 3:
        raise click.ClickException(f"{network_path}: a sequence model; FD vs NFE needs images")
    options = snapshot.get("options", {})
    learned = snapshot.get("profile")
    del snapshot
    if "infogrid-learned" in grid_list and learned is None:
        click.echo(
            f"note: {network_path} has no learned profile (trained with scheduler "
            f"'{options.get('scheduler')}'): infogrid-learned is skipped",
            err=True,
        )
        grid_list = [g for g in grid_list if g != "infogrid-learned"]

    train_data = data_path(options) if (ref_path is None or probe_data is None or binarize == "auto") else None
    if ref_path is None:
        name = auto_detector(net.data_shape) if detector == "auto" else detector
        ref_path = reference_stats(
            train_data, name, outdir, options.get("max_size"), log=lambda m: click.echo(m, err=True)
        )
    refstats = load_stats(ref_path)
    metric_name = f"fd_{Path(refstats['detector']).stem}"
    binarize = bool(modalities.open_dataset(train_data).is_binary) if binarize == "auto" else binarize == "on"
    metric_name += "_binarized" if binarize else ""

    csv_path = outdir / "infogrid_nfe.csv"
    key = str(Path(network_path).resolve())
    rows = [
        r
        for r in common.read_rows(csv_path)
        if r["network"] == key and int(r["samples"]) == len(seed_list) and r["solver"] == solver
    ]
    done = {(r["grid"], int(r["steps"])) for r in rows}
    todo = [(g, n) for n in level_list for g in grid_list if (g, n) not in done]

    probed = None
    if any(g == "infogrid-probed" for g, _ in todo):
        t0 = time.time()
        lo, hi = sigma_range(net, None, None)
        data = modalities.open_for_network(probe_data or train_data, net)
        probed = probe_network(net, data, lo, hi, probe_samples, probe_bins, batch_size=256, device=dev)
        click.echo(
            f"probed profile: {probe_samples} examples x {probe_bins} bins in {time.time() - t0:.0f} s", err=True
        )
    profiles = {"edm": None, "infogrid-learned": learned, "infogrid-probed": probed}

    for grid, n in tqdm.tqdm(todo, desc="grids x NFE", unit="eval"):
        kind = "edm" if grid == "edm" else "infogrid"
        sigmas = build_sigmas(net, kind, n, rho, profile=profiles[grid])
        t0 = time.time()
        fd = evaluate_snapshot(
            net,
            ref_path,
            seed_list,
            n,
            kind,
            solver,
            batch,
            rho=rho,
            profile=profiles[grid],
            binarize=binarize,
            device=device,
        )
        row = dict(
            network=key,
            grid=grid,
            steps=n,
            nfe=nfe(solver, n),
            fd=f"{fd:.8g}",
            metric_name=metric_name,
            samples=len(seed_list),
            solver=solver,
            sigmas=" ".join(f"{s:.4g}" for s in sigmas.tolist()),
            seconds=f"{time.time() - t0:.1f}",
        )
        common.append_row(csv_path, row, FIELDS)
        rows.append(row)
        tqdm.tqdm.write(f"{grid:>16} N={n:<3d} NFE={row['nfe']:<3d} {metric_name} {fd:.4g}")

    rows = [r for r in rows if int(r["steps"]) in level_list and r["grid"] in grid_list]
    nfes = sorted({(int(r["steps"]), int(r["nfe"])) for r in rows})
    shown = [g for g in GRIDS if g in grid_list]
    cell = {(r["grid"], int(r["steps"])): float(r["fd"]) for r in rows}
    md = [
        f"# FD vs NFE: {network_path}",
        "",
        f"{metric_name} of {len(seed_list)} samples ({solver}, the same seeds for every grid); lower is better.",
        "",
        common.markdown_table(
            ["N", "NFE", *shown],
            [[n, e, *(f"{cell[(g, n)]:.4g}" if (g, n) in cell else "—" for g in shown)] for n, e in nfes],
        ),
        "",
    ]
    (outdir / "infogrid_nfe.md").write_text("\n".join(md))
    plot(
        rows,
        outdir / "infogrid_nfe.png",
        f"{Path(network_path).parent.name}/{Path(network_path).name}: FD vs NFE, {len(seed_list)} samples",
    )
    click.echo("\n".join(md))
    click.echo(f"Wrote {csv_path}, {outdir / 'infogrid_nfe.md'}, {outdir / 'infogrid_nfe.png'}")


if __name__ == "__main__":
    main()
