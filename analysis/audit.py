"""Does my data set need an adaptive schedule? The paper's offline diagnostic as one command.

    python -m analysis.audit --data data/digits.zip --out audit-digits                 # a short probe run first
    python -m analysis.audit --data data/cifar10-32x32.zip --checkpoint run/network-snapshot-010000.pt --out a

It estimates the data's entropy-rate profile — probed from a checkpoint (fixed weights, docs/method.md §7),
or from a short training run it makes itself (`--probe-kimg`, the network's own errors) — turns it into
InfoNoise's allocation ρ (docs/method.md §3–§4, the same pipeline as training), and takes the informative
window as the 5–95 % mass of ρ. For each fixed schedule it prints the share of its effective emphasis π·w
inside that window and its total-variation distance to ρ, and draws one plot with all of them. Schedules:
EDM's log-normal with its λ weighting, log-uniform (w ≡ 1 and with λ), SD3's logit-normal (t ~ logit-N(0, 1)
in rectified-flow time is σ = t/(1 − t): exactly ln σ ~ N(0, 1)), and any preset's own.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import click
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.diagnostics import resolve_endpoint, scheduler_view
from analysis.plot import emphasis
from infonoise import information as info
from infonoise.lognormal import LogNormal
from infonoise.loguniform import LogUniform

WINDOW = (0.05, 0.95)


def fixed_schedules(sigma: torch.Tensor, sigma_data: float = 0.5) -> dict[str, torch.Tensor]:
    """Effective emphasis π·w per unit ln σ of the fixed schedules on the grid."""
    edges = info.edges_from_grid(sigma).exp()
    lu = LogUniform(float(edges[0]), float(edges[-1])).density(sigma)
    lam = info.loss_weight(sigma, "edm", sigma_data)
    return {
        "EDM log-normal + λ": emphasis(sigma, LogNormal(-1.2, 1.2).density(sigma), lam),
        "log-uniform, w ≡ 1": emphasis(sigma, lu, torch.ones_like(sigma)),
        "log-uniform + λ": emphasis(sigma, lu, lam),
        "SD3 logit-normal, w ≡ 1": emphasis(sigma, LogNormal(0.0, 1.0).density(sigma), torch.ones_like(sigma)),
    }


def preset_schedule(preset: str, sigma: torch.Tensor, endpoint: str) -> tuple[str, torch.Tensor] | None:
    """A preset's fixed schedule and weighting as emphasis (None for an adaptive one)."""
    import schedulers
    from training import options

    opts = options.merge(preset, {})
    if opts["scheduler"] in ("infonoise", "lossvar"):
        return None
    sched = schedulers.build(opts["scheduler"], options.scheduler_context(opts, endpoint), **opts["scheduler_kwargs"])
    w = info.loss_weight(sigma, opts["weighting"], opts["sigma_data"])
    return f"preset {Path(preset).stem}", emphasis(sigma, sched.density(sigma), w)


def window(masses: torch.Tensor, sigma: torch.Tensor) -> tuple[float, float]:
    """σ at the 5 % and 95 % points of a per-bin mass vector (interpolated in ln σ on the bin edges)."""
    table = torch.stack(
        [
            info.edges_from_grid(sigma),
            torch.cat([torch.zeros(1, dtype=masses.dtype), (masses / masses.sum()).cumsum(0)]),
        ]
    )
    table[1, -1] = 1.0
    lo, hi = info.sample_icdf(torch.tensor(WINDOW, dtype=torch.float64), table)
    return float(lo), float(hi)


def audit(
    mmse: torch.Tensor,
    sigma: torch.Tensor,
    endpoint: str,
    sigma_data: float = 0.5,
    extra: dict[str, torch.Tensor] | None = None,
    training_data: torch.Tensor | None = None,
) -> dict:
    """The window of InfoNoise's allocation for this profile and, per schedule, its share inside and TV to it.
    `training_data` (model space): what a discrete endpoint's default cap reads (docs/method.md §4b), as in a run."""
    record = scheduler_view(
        mmse,
        dict(
            sigma_min=float(info.edges_from_grid(sigma)[0].exp()),
            sigma_max=float(info.edges_from_grid(sigma)[-1].exp()),
            endpoint=endpoint,
            weighting="unit",
            sigma_data=sigma_data,
            training_data=training_data,
        ),
        dict(num_bins=len(sigma)),
    )
    rho = info.log_density(torch.tensor(record["allocation"], dtype=torch.float64), sigma)
    lo, hi = window(rho, sigma)
    inside = (sigma >= lo) & (sigma <= hi)
    rows = {}
    for name, phi in {**fixed_schedules(sigma, sigma_data), **(extra or {})}.items():
        rows[name] = dict(share_inside=float(phi[inside].sum() / phi.sum()), tv=info.total_variation(phi, rho))
    return dict(
        window=(lo, hi),
        sigma_p=record["sigma_p"],
        pivot_rule=record.get("pivot_rule"),
        allocation=rho,
        schedules=rows,
        emphasis={**fixed_schedules(sigma, sigma_data), **(extra or {})},
    )


def probe_by_training(data: str, kimg: float, num_bins: int, samples: int, seed: int, workdir: Path) -> torch.Tensor:
    """The network's error profile after a short run (digits-sized network, log-uniform σ, w ≡ 1): probed
    on the training data with its current weights."""
    import modalities
    from models.networks import from_snapshot
    from sampling.probe import probe_network
    from torch_utils import checkpoint
    from training import options, training_loop

    opts = options.resolve(
        None,
        dict(
            data=data,
            arch="ddpmpp",
            network_kwargs=dict(model_channels=32, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[], dropout=0.0),
            scheduler="loguniform",
            weighting="unit",
            batch=128,
            duration=kimg / 1e3,
            tick=kimg,
            snap=1,
            sample_grid=0,
            lr=2e-3,
            lr_rampup=0.0,
            seed=seed,
            desc="probe",
        ),
    )
    if len(opts["network_kwargs"]["data_shape"]) != 3:
        raise click.ClickException("--probe-kimg trains an image network; give --checkpoint for sequence data")
    run_dir = options.prepare_run_dir(workdir, opts, log=lambda m: None)
    (run_dir / "training_options.json").write_text(json.dumps(opts))
    training_loop.run(run_dir, opts, **modalities.for_training(opts))
    net = from_snapshot(checkpoint.latest_snapshot(run_dir), which="net")
    return probe_network(net, modalities.open_for_network(data, net), 0.002, 80.0, samples, num_bins, seed=seed)["mmse"]


def plot(result: dict, sigma: torch.Tensor, path: Path, title: str) -> Path:
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(sigma, result["allocation"], lw=2.5, color="k", label="InfoNoise allocation ρ")
    for name, phi in result["emphasis"].items():
        ax.plot(sigma, phi, lw=1.2, label=f"{name} (in window {100 * result['schedules'][name]['share_inside']:.0f} %)")
    ax.axvspan(*result["window"], color="C2", alpha=0.12, label="informative window (5–95 % of ρ)")
    ax.set(xscale="log", xlabel="σ", ylabel="emphasis per unit ln σ", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


@click.command()
@click.option("--data", required=True, help="Data set (EDM zip/folder, or sequences with --checkpoint)")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for audit.json / .png / .md"
)
@click.option(
    "--checkpoint", default=None, type=str, help="Probe this network: a snapshot .pt, an EDM .pkl, or a URL to either"
)
@click.option(
    "--probe-kimg",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Without --checkpoint: train this long on the data first, then probe",
)
@click.option(
    "--probe-samples", type=click.IntRange(min=2), default=128, show_default=True, help="Examples probed per σ"
)
@click.option("--num-bins", type=click.IntRange(min=8), default=64, show_default=True, help="Log-σ bins")
@click.option("--endpoint", type=click.Choice(["auto", "continuous", "discrete"]), default="auto", show_default=True)
@click.option("--preset", "presets", multiple=True, help="Also audit this preset's fixed schedule (repeatable)")
@click.option("--seed", type=int, default=0, show_default=True)
def main(data, out_dir, checkpoint, probe_kimg, probe_samples, num_bins, endpoint, presets, seed):
    """Print and plot how much of each fixed schedule's emphasis falls in the data's informative window."""
    import modalities
    from analysis.diagnostics import load_data
    from models.networks import from_snapshot
    from sampling.probe import probe_network

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    try:
        sample = load_data(data, max_images=256, seed=seed)
        endpoint = resolve_endpoint(endpoint, sample)
        sigma = info.log_sigma_grid(0.002, 80.0, num_bins)
        if checkpoint:
            net = from_snapshot(checkpoint, which="ema")
            probe_data = modalities.open_for_network(data, net)
            mmse = probe_network(net, probe_data, 0.002, 80.0, probe_samples, num_bins, seed=seed)["mmse"]
            source = f"probed from {Path(str(checkpoint).split('?', 1)[0]).name}"
        else:
            with tempfile.TemporaryDirectory() as tmp:
                mmse = probe_by_training(data, probe_kimg, num_bins, probe_samples, seed, Path(tmp))
            source = f"probed after a {probe_kimg:g}-kimg run"
        extra = dict(filter(None, (preset_schedule(p, sigma, endpoint) for p in presets)))
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    # The probed profile goes through the default rule: on a discrete endpoint capped by the data's coordinate-wise
    # Bayes bound, read (as a run does) from up to 20,000 of its examples.
    training = load_data(data, max_images=20_000, seed=seed) if endpoint == "discrete" else None
    result = audit(mmse, sigma, endpoint, extra=extra, training_data=training)
    lo, hi = result["window"]
    lines = [
        f"# Schedule audit: {Path(data).name}",
        "",
        f"Profile {source}{', capped by the data’s coordinate-wise Bayes bound' if training is not None else ''}; "
        f"{endpoint} endpoint, σ_p = {result['sigma_p']:.3g} ({result['pivot_rule']}); "
        f"informative window (5–95 % of InfoNoise's allocation): σ ∈ [{lo:.3g}, {hi:.3g}].",
        "",
        "| schedule | emphasis inside the window | TV to InfoNoise's allocation |",
        "|---|---:|---:|",
    ]
    lines += [f"| {n} | {100 * r['share_inside']:.1f} % | {r['tv']:.3f} |" for n, r in result["schedules"].items()]
    text = "\n".join(lines) + "\n"
    (out / "audit.md").write_text(text)
    (out / "audit.json").write_text(
        json.dumps(
            dict(
                data=str(data),
                source=source,
                endpoint=endpoint,
                window=result["window"],
                sigma_p=result["sigma_p"],
                schedules=result["schedules"],
                mmse=mmse.tolist(),
                sigma=sigma.tolist(),
            ),
            indent=2,
        )
    )
    plot(result, sigma, out / "audit.png", f"{Path(data).name}: emphasis vs the informative window")
    click.echo(text + f"Wrote {out / 'audit.md'}, {out / 'audit.json'}, {out / 'audit.png'}")
    if not math.isfinite(lo):
        raise click.ClickException("the window is not finite; the profile is degenerate")


if __name__ == "__main__":
    main()
