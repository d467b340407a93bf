"""Pictures of what InfoNoise learned, from a run directory (issue 3 item 3; docs/method.md §5 "Observable").

`python -m analysis.plot RUN_DIR [--out DIR]` reads `schedule.jsonl` (one line per refresh, written
by the training loop from `InfoNoise.step`'s record) and `training_options.json`, and draws
  (a) schedule-evolution.png — the sampling density per unit ln σ vs. kimg as a heat map, with σ_p
      overlaid (paper Fig. 5);
  (b) schedule-emphasis.png — the latest effective emphasis π·w beside the fixed schedules' emphasis,
      log-normal with EDM's λ and log-uniform with the run's weighting (paper Fig. 4 left, Fig. 6 right).
Every curve is normalised per unit ln σ (docs/method.md §3.5) so schedules with different weightings compare on
one axis. The Agg canvas is used directly: no display, no pyplot global state.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import click
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from infonoise import information as info
from infonoise.lognormal import LogNormal
from infonoise.loguniform import LogUniform
from schedulers import build

RECORD_KEYS = ("sigma", "log_density", "sigma_p")


def load_schedule(run_dir: str | Path) -> list[dict]:
    """The refresh records of `run_dir/schedule.jsonl` (or of a schedule .jsonl file itself, e.g. one a
    benchmark copied beside its table), oldest first. A truncated last line (a run killed mid-write, or one
    still writing) is skipped with a warning; anything else malformed raises."""
    run_dir = Path(run_dir)
    if run_dir.suffix == ".jsonl" and run_dir.is_file():
        run_dir, path = run_dir.parent, run_dir
    elif not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory not found.")
    else:
        path = run_dir / "schedule.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found. Only InfoNoise runs write schedule.jsonl (one line per "
            f"refresh, after the warm-up); train with --scheduler infonoise."
        )
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1 and records:
                warnings.warn(f"{path}: skipping a truncated last line ({e}).")
                continue
            raise ValueError(f"{path}, line {i + 1}: not valid JSON ({e}).") from None
    if not records:
        raise ValueError(
            f"{path}: empty — the run has not refreshed its schedule yet (InfoNoise writes a "
            f"line per refresh, after its warm-up steps)."
        )
    for i, rec in enumerate(records):
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            raise ValueError(f"{path}, record {i + 1}: missing key(s) {', '.join(missing)}.")
    return records


def load_options(run_dir: str | Path) -> dict:
    """`run_dir/training_options.json`; an error names the file if it or the keys the plots need
    (weighting, sigma_data) are missing."""
    path = Path(run_dir) / "training_options.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; it holds the run's weighting and σ_data.")
    options = json.loads(path.read_text())
    missing = [k for k in ("weighting", "sigma_data") if k not in options]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}.")
    return options


def emphasis(sigma: torch.Tensor, pi: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """φ = π·w (docs/method.md §1) as a density per unit ln σ, normalised on the grid (docs/method.md §3.5)."""
    return info.log_density(torch.as_tensor(pi) * torch.as_tensor(weight), sigma)


def fixed_emphasis(sigma: torch.Tensor, weighting: str, sigma_data: float) -> dict[str, torch.Tensor]:
    """The fixed baselines' emphasis on `sigma` (docs/method.md §1), keyed 'lognormal' (EDM's log-normal with its
    λ) and 'loguniform' (over the grid's range, with the run's weighting)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    edges = info.edges_from_grid(sigma).exp()
    loguniform = LogUniform(float(edges[0]), float(edges[-1]))
    return {
        "lognormal": emphasis(sigma, LogNormal().density(sigma), info.loss_weight(sigma, "edm", sigma_data)),
        "loguniform": emphasis(sigma, loguniform.density(sigma), info.loss_weight(sigma, weighting, sigma_data)),
    }


def fixed_label(name: str, weighting: str) -> str:
    return {"lognormal": "log-normal · λ_EDM", "loguniform": f"log-uniform · w={weighting}"}[name]


def warmup_log_density(options: dict, sigma: torch.Tensor, legacy: bool = False) -> torch.Tensor | None:
    """The warm-up sampler's density per unit ln σ on `sigma`, from the run's own InfoNoise configuration
    (its `density` before the first refresh), or None if the options do not rebuild it on this grid. `legacy`:
    the run predates the automatic defaults (its records carry no β), when 'auto' meant the floored log-normal
    for continuous endpoints and log-uniform for discrete ones."""
    context = {k: options[k] for k in ("sigma_min", "sigma_max", "sigma_data", "weighting") if k in options}
    kwargs = dict(options.get("scheduler_kwargs") or {})
    endpoint = options.get("endpoint") if options.get("endpoint") in ("continuous", "discrete") else "continuous"
    kwargs["endpoint"] = endpoint
    kwargs["mmse_cap"] = "none"  # the warm-up does not read the cap (and the training data are not needed for it)
    try:
        sched = build("infonoise", context, **kwargs)
    except (ValueError, TypeError) as e:
        warnings.warn(f"cannot rebuild the run's warm-up sampler ({e}); the heat map starts at the first refresh.")
        return None
    if legacy:  # the scheduler knows what its options meant then (as when such a snapshot resumes)
        sched.adopt_legacy_defaults()
    if sched.sigma.shape != sigma.shape or not torch.allclose(sched.sigma, sigma):
        return None
    return info.log_density(sched.density(sigma), sigma)


def _x_edges(t: torch.Tensor, starts_at_zero: bool) -> torch.Tensor:
    """Time cells: each table is in force from its refresh to the next; the last one for one more gap.
    With the warm-up column, the first cell runs from 0 to the first refresh."""
    gap = float(t[-1] - t[-2]) if len(t) > 1 else max(0.1 * float(t[-1]), 1e-3)
    edges = torch.cat([t, t[-1:] + gap])
    return torch.cat([torch.zeros(1, dtype=t.dtype), edges]) if starts_at_zero else edges


def plot_evolution(records: list[dict], path: Path, title: str = "", warmup: torch.Tensor | None = None) -> Path:
    """(a) Heat map of the per-ln σ sampling density over kimg (paper Fig. 5), each table drawn from its
    refresh to the next and, if given, the `warmup` density from 0 to the first refresh; σ_p overlaid,
    with the refreshes whose σ_p came from the fallback (no qualifying valley) marked."""
    time_key = "kimg" if all("kimg" in r for r in records) else "step"
    t = torch.tensor([float(r[time_key]) for r in records], dtype=torch.float64)
    sigma = torch.tensor(records[-1]["sigma"], dtype=torch.float64)
    density = torch.tensor([r["log_density"] for r in records], dtype=torch.float64)
    if warmup is not None:
        density = torch.cat([warmup[None], density])
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(
        _x_edges(t, warmup is not None).numpy(),
        info.edges_from_grid(sigma).exp().numpy(),
        density.T.numpy(),
        shading="flat",
        cmap="viridis",
    )
    fig.colorbar(mesh, ax=ax, label="sampling density per unit ln σ")
    sigma_p = [r["sigma_p"] for r in records]
    ax.plot(
        _x_edges(t, False).numpy(),
        sigma_p + sigma_p[-1:],
        drawstyle="steps-post",
        color="white",
        lw=1.5,
        ls="--",
        label="σ_p (pivot)",
    )
    # Which rule set σ_p at each refresh (docs/method.md §4): the fallback is marked apart, so a profile that
    # had no bump yet (or lost it) is visible at a glance. Records from before v2 name no rule.
    rules = [r.get("pivot_rule") for r in records]
    for rule, style in (
        ("fallback", dict(marker="x", color="tab:red", s=36)),
        ("valley", dict(marker="o", color="white", s=14)),
    ):
        at = [i for i, r in enumerate(rules) if r == rule]
        if at:
            ax.scatter(t[at].numpy(), [sigma_p[i] for i in at], zorder=3, label=f"σ_p set by: {rule}", **style)
    ax.set(yscale="log", xlabel=time_key, ylabel="σ", title=title or "InfoNoise schedule over training")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_emphasis(record: dict, weighting: str, sigma_data: float, path: Path, title: str = "") -> Path:
    """(b) The latest effective emphasis π·w against the fixed schedules' (paper Fig. 4 left)."""
    sigma = torch.tensor(record["sigma"], dtype=torch.float64)
    pi = torch.tensor(record["log_density"], dtype=torch.float64) / sigma
    when = f"{record['kimg']:g} kimg" if "kimg" in record else f"step {record.get('step', '?')}"
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    curves = [
        (
            f"InfoNoise π·w ({when})",
            emphasis(sigma, pi, info.loss_weight(sigma, weighting, sigma_data)),
            dict(lw=2.2, color="C3"),
        )
    ]
    if "allocation" in record:
        curves.append(
            (
                "InfoNoise target ρ (π·w without the floor)",
                info.log_density(record["allocation"], sigma),
                dict(lw=1.2, ls=":", color="C3"),
            )
        )
    for (name, curve), color in zip(fixed_emphasis(sigma, weighting, sigma_data).items(), ("C0", "C2")):
        curves.append((fixed_label(name, weighting), curve, dict(lw=1.4, ls="--", color=color)))
    for label, curve, style in curves:
        ax.plot(sigma.numpy(), curve.numpy(), label=label, **style)
    ax.axvline(record["sigma_p"], color="0.4", lw=1, ls=":", label=f"σ_p = {record['sigma_p']:.3g}")
    top = max(float(c.max()) for _, c, _ in curves)
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(top * 1e-4, top * 2),
        xlabel="σ",
        ylabel="emphasis π·w per unit ln σ (normalised)",
        title=title or f"Effective emphasis, weighting={weighting}",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw (a) and (b) for `run_dir` into `out_dir` (default: the run directory); return the paths."""
    run_dir = Path(run_dir)
    records = load_schedule(run_dir)
    options = load_options(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    weighting, sigma_data = options["weighting"], float(options["sigma_data"])
    sigma = torch.tensor(records[-1]["sigma"], dtype=torch.float64)
    warmup = warmup_log_density(options, sigma, legacy="ema_beta" not in records[0])
    return [
        plot_evolution(records, out / "schedule-evolution.png", f"InfoNoise schedule — {run_dir.name}", warmup),
        plot_emphasis(
            records[-1],
            weighting,
            sigma_data,
            out / "schedule-emphasis.png",
            f"Effective emphasis — {run_dir.name} (w={weighting})",
        ),
    ] + ([plot_uncertainty(run_dir, out / "uncertainty.png")] if weighting == "edm2" else [])


def plot_uncertainty(run_dir: Path, path: Path) -> Path:
    """EDM2's learned u(σ) of the latest snapshot (--weighting edm2): where the network expects its weighted
    error to be large; the loss divides by exp(u)."""
    from models.networks import from_snapshot
    from torch_utils import checkpoint

    snap = checkpoint.latest_snapshot(run_dir)
    if snap is None:
        raise FileNotFoundError(f"{run_dir}: no snapshot to read u(σ) from")
    net = from_snapshot(snap, which="ema")
    sigma = torch.logspace(math.log10(net.sigma_min), math.log10(net.sigma_max), 200)
    with torch.no_grad():
        u = net.logvar(sigma)
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(sigma, u, lw=2)
    ax.set(
        xscale="log",
        xlabel="σ",
        ylabel="u(σ) = learned log of the weighted error",
        title=f"EDM2 uncertainty — {snap.name}",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Output folder (default: RUN_DIR)")
def main(run_dir: Path, out_dir: Path | None) -> None:
    """Plot the InfoNoise schedule of RUN_DIR: its evolution over training and its current emphasis."""
    try:
        paths = plot_run(run_dir, out_dir)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    for p in paths:
        click.echo(p)


if __name__ == "__main__":
    main()
