"""Offline oracle: the exact empirical-Bayes denoiser of a finite data set and its MMSE profile.

Spec §7 "Empirical Bayes" (paper App. A.2, D.1). For the empirical prior X0 ~ Uniform{x_1..x_N} the
Bayes denoiser is a softmax over squared distances, so its MMSE — and through the I–MMSE identity
(docs/method.md §2) the entropy rate ḣ = mmse/σ³ and the allocation it implies (docs/method.md §3) — is computable
exactly up to Monte-Carlo error. It is the reference the online scheduler is compared against
(paper Fig. 4 left; issue 3 item 4). Memorisation makes it differ from a generalising model's profile
at low σ (docs/method.md §7), which is why a probed checkpoint is the other reference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

import schedulers
from analysis.plot import fixed_emphasis, fixed_label, load_options, load_schedule
from datafiles.base import model_space
from infonoise import information as info
from infonoise.base import NoiseScheduler
from modalities import open_dataset


class EmpiricalBayes:
    """Exact posterior-mean denoiser D*(x; σ) = Σ_i w_i x_i of the empirical distribution of `data`.

    Weights w = softmax_i(−‖x − x_i‖²/(2σ²)) are evaluated in log space; distances use the expansion
    ‖x‖² − 2xᵀx_i + ‖x_i‖² with the ‖x_i‖² precomputed once (paper D.1). Queries and data are both
    chunked, merging data chunks with a streaming log-sum-exp, so memory is O(query_chunk·data_chunk)
    whatever N is; by default the query chunk fills a budget of `chunk_elements` logits (tiny chunks
    cost more in per-call overhead than in arithmetic). Everything is float64: at σ = 0.002 in 784-D a
    float32 distance error of ~1e-4 would be ~10 nats in the logits.
    """

    def __init__(
        self, data: torch.Tensor, query_chunk: int | None = None, data_chunk: int = 8192, chunk_elements: int = 2**22
    ):
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"EmpiricalBayes: need data of shape [N, ...] with N ≥ 1, got {tuple(data.shape)}")
        self.data = data.reshape(data.shape[0], -1).to(torch.float64)
        self.sqnorm = self.data.square().sum(1)
        self.data_chunk = int(data_chunk)
        self.query_chunk = int(query_chunk or max(1, chunk_elements // min(self.num_points, self.data_chunk)))

    @property
    def num_points(self) -> int:
        return self.data.shape[0]

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """D*(x; σ) for queries x [Q, D] (float64 result). `sigma` is a scalar or one σ per query."""
        x = x.reshape(x.shape[0], -1).to(torch.float64)
        sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(x.shape[0])
        return (
            torch.cat(
                [
                    self._denoise_chunk(x[q : q + self.query_chunk], sigma[q : q + self.query_chunk])
                    for q in range(0, x.shape[0], self.query_chunk)
                ]
            )
            if x.shape[0]
            else x.clone()
        )

    def _denoise_chunk(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        inv_two_var = (0.5 / sigma.square())[:, None]
        x_sqnorm = x.square().sum(1, keepdim=True)
        run_max = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
        run_sum = torch.zeros(x.shape[0], dtype=torch.float64)
        acc = torch.zeros_like(x)
        for d in range(0, self.num_points, self.data_chunk):
            xi, xi_sqnorm = self.data[d : d + self.data_chunk], self.sqnorm[d : d + self.data_chunk]
            sqdist = (x_sqnorm - 2.0 * x @ xi.T + xi_sqnorm).clamp_min_(0.0)  # rounding can go below 0
            logits = -sqdist * inv_two_var
            new_max = torch.maximum(run_max, logits.amax(1))
            rescale = torch.exp(run_max - new_max)  # exp(-inf) = 0 on the first chunk
            p = torch.exp(logits - new_max[:, None])
            run_sum = run_sum * rescale + p.sum(1)
            acc = acc * rescale[:, None] + p @ xi
            run_max = new_max
        return acc / run_sum[:, None]

    def mmse_profile(
        self,
        sigma: torch.Tensor,
        samples_per_sigma: int = 256,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Monte-Carlo mmse(σ) = E‖D*(x_j + σε; σ) − x_j‖² (summed over dims, docs/method.md §2) on a σ grid.

        Returns (mmse, standard error), float64 [M]. Variance reduction: the K draws (j, ε) are common
        to every σ, so the profile's *shape* carries far less noise than each point; and j is
        stratified (each point ⌊K/N⌋ times plus a random subset), so with K a multiple of N each
        point is used equally and the σ → ∞ limit equals the data set's total variance exactly.
        """
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        k = int(samples_per_sigma)
        if k < 2:
            raise ValueError(f"samples_per_sigma must be ≥ 2 (for a standard error), got {k}")
        full, rest = divmod(k, self.num_points)  # every point `full` times, then a random subset
        j = torch.cat(
            [torch.arange(self.num_points).repeat(full), torch.randperm(self.num_points, generator=generator)[:rest]]
        )
        eps = torch.randn(k, self.dim, generator=generator, dtype=torch.float64)
        x0 = self.data[j]
        mmse, sem = torch.empty_like(sigma), torch.empty_like(sigma)
        for m, s in enumerate(tqdm(sigma.tolist(), desc="empirical-Bayes MMSE", unit="σ", disable=not progress)):
            err = (self.denoise(x0 + s * eps, s) - x0).square().sum(1)
            mmse[m], sem[m] = err.mean(), err.std() / math.sqrt(k)
        return mmse, sem


# ----------------------------------------------------------------------------------------------
# From a data set (and optionally a run and a checkpoint) to a saved, plotted oracle profile.

_DRIVE = dict(warmup_steps=0, refresh_every=1, min_count=1, fifo_size=1)


def load_data(path: str | Path, max_images: int | None = None, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """A seeded subset of N examples from `modalities.open_dataset`, in model space ([-1, 1] for images), float64
    [N, *data_shape] — the set whose empirical distribution the oracle is exact for."""
    dataset = open_dataset(path, max_size=max_images, random_seed=seed)
    items = [dataset[i] for i in tqdm(range(len(dataset)), desc="loading data", unit="ex", disable=not progress)]
    x = torch.stack([torch.as_tensor(it[0] if isinstance(it, (tuple, list)) else it) for it in items])
    return model_space(x).to(torch.float64)


def resolve_endpoint(endpoint: str, data: torch.Tensor) -> str:
    """'auto' → 'discrete' when the data take only two values (docs/method.md §4, issue 3 item 2), else 'continuous'."""
    if endpoint != "auto":
        return endpoint
    return "discrete" if torch.unique(data).numel() <= 2 else "continuous"


def build_scheduler(context: dict, scheduler_kwargs: dict) -> NoiseScheduler:
    """An InfoNoise scheduler with the run's configuration whose first refresh fires at step 1 on one
    error per bin: feeding it an MMSE profile turns that profile into ḣ, σ_p, ρ and π by exactly the
    online pipeline (docs/method.md §5, §7: "drive the scheduler with this denoiser's errors"), with no second copy
    of the maths. The FIFO/cadence options it overrides do not affect a first refresh (m̂ = ℓ)."""
    return schedulers.build("infonoise", context, **{**scheduler_kwargs, **_DRIVE})


def scheduler_view(mmse: torch.Tensor, context: dict, scheduler_kwargs: dict) -> dict:
    """The refresh record InfoNoise computes from `mmse` tabulated on its own grid."""
    sched = build_scheduler(context, scheduler_kwargs)
    sched.observe(sched.sigma, torch.as_tensor(mmse, dtype=torch.float64))
    record = sched.step(1)
    if record is None:
        raise RuntimeError("infonoise did not refresh on a full table of errors")
    return record


def bin_masses(sigma: torch.Tensor, per_sigma_density: torch.Tensor) -> torch.Tensor:
    """Probability per bin of a per-unit-σ density tabulated at the centres of a uniform ln σ grid:
    ∝ σ_k·f_k (the Jacobian, docs/method.md §3.5). The atoms `information.total_variation` compares."""
    return torch.as_tensor(sigma, dtype=torch.float64) * torch.as_tensor(per_sigma_density, dtype=torch.float64)


def probe_checkpoint(
    checkpoint: str | Path, data: torch.Tensor, sigma: torch.Tensor, n_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """mmse(σ) of a trained network with fixed weights (docs/method.md §7, the paper's offline diagnostic), by
    `sampling.grids.probe_profile` on the same data and grid."""
    from models.networks import from_snapshot
    from sampling.probe import probe_profile

    net = from_snapshot(str(checkpoint))
    return probe_profile(net, data, sigma, n_samples=n_samples, generator=generator)["mmse"]


def oracle_config(
    run_dir: str | Path | None,
    data: torch.Tensor,
    *,
    num_bins: int | None = None,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    weighting: str | None = None,
    endpoint: str | None = None,
) -> tuple[dict, dict, dict | None]:
    """(scheduler context, scheduler kwargs, the run's latest refresh record or None). Explicit values
    win; unset ones come from `run_dir`'s training_options.json, else InfoNoise's own defaults, so a run
    is compared on its own grid, weighting, endpoint rule and pivot settings."""
    options, latest = {}, None
    if run_dir is not None:
        latest, options = load_schedule(run_dir)[-1], load_options(run_dir)
        missing = [k for k in ("allocation", "mmse") if k not in latest]
        if missing:
            raise ValueError(f"{Path(run_dir) / 'schedule.jsonl'}: the last record lacks {', '.join(missing)}.")
    net_kw = options.get("network_kwargs") or {}
    kwargs = dict(options.get("scheduler_kwargs") or {})
    if num_bins is not None:
        kwargs["num_bins"] = num_bins
    context = dict(
        sigma_min=_first(sigma_min, options.get("sigma_min"), net_kw.get("sigma_min")),
        sigma_max=_first(sigma_max, options.get("sigma_max"), net_kw.get("sigma_max")),
        sigma_data=_first(options.get("sigma_data"), net_kw.get("sigma_data")),
        weighting=_first(weighting, options.get("weighting")),
        endpoint=resolve_endpoint(_first(endpoint, options.get("endpoint"), "auto"), data),
        training_data=data,  # what the Bayes cap reads (§4b; a discrete endpoint's default), as in a run
    )
    return {k: v for k, v in context.items() if v is not None}, kwargs, latest


def run_oracle(
    data_path: str | Path,
    out_dir: str | Path,
    *,
    max_images: int | None = 5000,
    samples_per_sigma: int = 256,
    seed: int = 0,
    run_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
    probe_samples: int = 256,
    progress: bool = True,
    **overrides,
) -> dict:
    """Compute, save (oracle.npz, oracle.json) and plot (oracle.png) the empirical-Bayes profile of a
    data set; with `run_dir` also the run's latest online allocation, with `checkpoint` a probed profile.
    `overrides`: num_bins, sigma_min, sigma_max, weighting, endpoint (see `oracle_config`). Returns the
    result (arrays as tensors) with `tv`: total-variation distances between allocations' bin masses."""
    data = load_data(data_path, max_images, seed, progress)
    context, kwargs, latest = oracle_config(run_dir, data, **overrides)
    sched = build_scheduler(context, kwargs)
    sigma, weighting, sigma_data = sched.sigma, sched.weighting, sched.sigma_data
    if latest is not None and (len(latest["sigma"]) != len(sigma) or not torch.allclose(_f64(latest["sigma"]), sigma)):
        raise ValueError(
            f"{run_dir}: the run's σ grid ({len(latest['sigma'])} bins over [{latest['sigma'][0]:.4g}, "
            f"{latest['sigma'][-1]:.4g}]) differs from the oracle's; drop --num-bins/--sigma-min/"
            f"--sigma-max to use the run's grid."
        )

    eb = EmpiricalBayes(data)
    mmse, sem = eb.mmse_profile(sigma, samples_per_sigma, torch.Generator().manual_seed(seed), progress)
    result = dict(
        data=str(data_path),
        num_images=eb.num_points,
        dim=eb.dim,
        samples_per_sigma=samples_per_sigma,
        seed=seed,
        endpoint=sched.endpoint,
        weighting=weighting,
        sigma_data=sigma_data,
        scheduler_kwargs=kwargs,
        total_variance=float(eb.data.var(0, unbiased=False).sum()),
        sigma=sigma,
        mmse=mmse,
        mmse_sem=sem,
        **_profile_arrays(scheduler_view(mmse, context, kwargs)),
    )
    allocations = {"oracle": result["allocation"]}
    if latest is not None:
        result.update(
            run=str(run_dir),
            online_kimg=latest.get("kimg"),
            online_step=latest.get("step"),
            online_sigma_p=latest["sigma_p"],
            online_mmse=_f64(latest["mmse"]),
            online_allocation=_f64(latest["allocation"]),
        )
        allocations["online"] = result["online_allocation"]
    if checkpoint is not None:
        probed = probe_checkpoint(checkpoint, data, sigma, probe_samples, torch.Generator().manual_seed(seed))
        view = _profile_arrays(scheduler_view(probed, context, kwargs), mmse=probed)
        result.update(checkpoint=str(checkpoint), **{f"probed_{k}": v for k, v in view.items()})
        allocations["probed"] = result["probed_allocation"]
    masses = {name: bin_masses(sigma, rho) for name, rho in allocations.items()}
    masses.update(fixed_emphasis(sigma, weighting, sigma_data))  # per-ln σ densities: ∝ bin masses already
    pairs = [
        ("oracle", "online"),
        ("oracle", "probed"),
        ("probed", "online"),
        ("oracle", "lognormal"),
        ("oracle", "loguniform"),
    ]
    result["tv"] = {
        f"{a}_vs_{b}": info.total_variation(masses[a], masses[b]) for a, b in pairs if a in masses and b in masses
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result["paths"] = [str(p) for p in save_result(result, out) + [plot_oracle(result, out / "oracle.png")]]
    return result


def _first(*values):
    return next((v for v in values if v is not None), None)


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def _profile_arrays(record: dict, **extra) -> dict:
    return dict(
        hdot=_f64(record["hdot"]),
        sigma_p=float(record["sigma_p"]),
        allocation=_f64(record["allocation"]),
        log_density=_f64(record["log_density"]),
        **extra,
    )


def save_result(result: dict, out: Path) -> list[Path]:
    """oracle.npz (arrays, scalars, tv_* distances) and oracle.json (everything, arrays as lists)."""
    arrays = {k: v.numpy() for k, v in result.items() if isinstance(v, torch.Tensor)}
    plain = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in result.items() if k != "paths"}
    scalars = {k: v for k, v in plain.items() if isinstance(v, (int, float)) and k not in arrays}
    scalars.update({f"tv_{k}": v for k, v in result["tv"].items()})
    np.savez(out / "oracle.npz", **arrays, **scalars)
    (out / "oracle.json").write_text(json.dumps(plain, indent=1))
    return [out / "oracle.npz", out / "oracle.json"]


def plot_oracle(result: dict, path: Path) -> Path:
    """Left: allocations per unit ln σ — oracle, online (latest refresh), probed checkpoint — over the
    fixed schedules' emphasis (paper Fig. 4 left). Right: the MMSE profiles with their σ → 0 bound
    σ²·D (the identity denoiser) and σ → ∞ limit (the data set's total variance)."""
    sigma, weighting = result["sigma"], result["weighting"]
    x = sigma.numpy()
    fig = Figure(figsize=(12, 4.4))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    curves = [("empirical-Bayes oracle", result["allocation"], dict(color="k", lw=2.2))]
    if "online_allocation" in result:
        curves.append((f"InfoNoise online ({_when(result)})", result["online_allocation"], dict(color="C3", lw=1.8)))
    if "probed_allocation" in result:
        curves.append(("probed checkpoint", result["probed_allocation"], dict(color="C4", lw=1.6)))
    dens = [(label, info.log_density(rho, sigma), style) for label, rho, style in curves]
    dens += [
        (fixed_label(name, weighting), curve, dict(color=c, lw=1.3, ls="--"))
        for (name, curve), c in zip(fixed_emphasis(sigma, weighting, result["sigma_data"]).items(), ("C0", "C2"))
    ]
    for label, d, style in dens:
        left.plot(x, d.numpy(), label=label, **style)
    left.axvline(result["sigma_p"], color="0.4", lw=1, ls=":", label=f"oracle σ_p = {result['sigma_p']:.3g}")
    top = max(float(d.max()) for _, d, _ in dens)
    left.set(
        xscale="log",
        yscale="log",
        ylim=(top * 1e-4, top * 2),
        xlabel="σ",
        ylabel="allocation / emphasis per unit ln σ (normalised)",
        title=f"Allocation vs. fixed emphasis (endpoint={result['endpoint']})",
    )
    left.legend(fontsize=7)

    mmse, sem, var = result["mmse"], result["mmse_sem"], result["total_variance"]
    right.plot(x, mmse.numpy(), color="k", lw=2, label=f"empirical Bayes (N={result['num_images']})")
    right.fill_between(x, (mmse - 2 * sem).clamp_min(0).numpy(), (mmse + 2 * sem).numpy(), color="k", alpha=0.15)
    if "online_mmse" in result:
        right.plot(x, result["online_mmse"].numpy(), color="C3", lw=1.6, label=f"online m̂ ({_when(result)})")
    if "probed_mmse" in result:
        right.plot(x, result["probed_mmse"].numpy(), color="C4", lw=1.4, label="probed checkpoint")
    right.plot(x, (sigma**2 * result["dim"]).numpy(), color="0.5", ls="--", lw=1, label="σ²·D")
    right.axhline(var, color="0.5", ls=":", lw=1, label="total variance")
    positive = mmse[mmse > 0]
    bottom = max(float(positive.min()) if len(positive) else 0.0, var * 1e-6)
    right.set(
        xscale="log",
        yscale="log",
        ylim=(bottom, var * 3),
        xlabel="σ",
        ylabel="mmse(σ), summed over dims",
        title="MMSE profiles",
    )
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _when(result: dict) -> str:
    if result.get("online_kimg") is not None:
        return f"{result['online_kimg']:g} kimg"
    return f"step {result.get('online_step')}"


@click.command()
@click.option("--data", "data_path", required=True, type=str, help="Dataset (.zip / folder of images, or sequences)")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder")
@click.option("--max-images", type=int, default=5000, show_default=True, help="Seeded subset size N")
@click.option("--num-bins", type=int, help="σ grid bins  [default: the run's, else InfoNoise's (128)]")
@click.option("--sigma-min", type=float, help="[default: the run's, else 0.002]")
@click.option("--sigma-max", type=float, help="[default: the run's, else 80]")
@click.option("--samples-per-sigma", type=int, default=256, show_default=True, help="Monte-Carlo draws per σ")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weighting", type=click.Choice(["edm", "unit"]), help="[default: the run's, else edm]")
@click.option(
    "--endpoint", type=click.Choice(["continuous", "discrete", "auto"]), help="[default: the run's, else auto]"
)
@click.option("--run", "run_dir", type=click.Path(path_type=Path), help="InfoNoise run dir to compare with")
@click.option("--checkpoint", type=str, help="Network to probe: a snapshot .pt, an EDM .pkl, or a URL (sampling.probe)")
@click.option("--probe-samples", type=int, default=256, show_default=True, help="Examples for the probe")
def main(data_path: str, out_dir: Path, **kwargs) -> None:
    """Offline oracle: exact empirical-Bayes MMSE profile of a data set, its entropy rate and allocation."""
    try:
        r = run_oracle(data_path, out_dir, **kwargs)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    peak = float(r["sigma"][int(r["hdot"].argmax())])
    click.echo(
        f"Empirical Bayes on {r['num_images']} examples × {r['dim']} dims ({r['endpoint']} endpoint, "
        f"w={r['weighting']}): ḣ peaks at σ = {peak:.4g}, σ_p = {r['sigma_p']:.4g}; "
        f"mmse(σ_max)/total variance = {float(r['mmse'][-1]) / r['total_variance']:.3f}"
    )
    for name, value in r["tv"].items():
        if name != "oracle_vs_online":
            click.echo(f"TV({name.replace('_vs_', ', ')}) = {value:.4f}")
    if "oracle_vs_online" in r["tv"]:
        click.echo(
            f"TV distance, oracle allocation vs. online allocation at {_when(r)}: {r['tv']['oracle_vs_online']:.4f}"
        )
    for p in r["paths"]:
        click.echo(p)


if __name__ == "__main__":
    main()
