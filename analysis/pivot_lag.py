"""When could the discrete pivot have been found? A replay of a run's schedule.jsonl.

    python -m analysis.pivot_lag runs/infonoise-s0                         # β from its training_options.json
    python -m analysis.pivot_lag results/ttt-dna-cpu/infonoise-s0-schedule.jsonl --ema-beta 0.5

A refresh reads σ_p off m̂, an EMA over refreshes of each refresh's FIFO means ℓ_t (docs/method.md §5):
m̂_t = β·m̂_{t−1} + (1−β)·ℓ_t. The first ℓ come from a young network whose errors below the informative
window are many times its later ones, and the EMA keeps them for ~1/(1−β) refreshes. This tool undoes the
EMA exactly from the recorded m̂ (ℓ_t = (m̂_t − β·m̂_{t−1})/(1 − β)) and applies the valley rule of
docs/method.md §4 to ℓ_t beside what the run read off m̂_t, so the lag between "the statistics show the
valley" and "the run uses it" is measured, not guessed (benchmarks/RESULTS.md §3b).
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import click
import torch

from analysis.plot import load_schedule
from infonoise import information as info
from infonoise.scheduler import InfoNoise

F64 = torch.float64


def fifo_means(mhat: list[torch.Tensor], beta: float) -> list[torch.Tensor]:
    """ℓ_t from the recorded m̂_t: the first refresh's m̂ is its ℓ; each later one undoes one EMA step."""
    if not 0 <= beta < 1:
        raise ValueError(f"ema_beta must be in [0, 1), got {beta}")
    ell = [mhat[0]] + [(m - beta * prev) / (1 - beta) for prev, m in zip(mhat, mhat[1:])]
    for t, e in enumerate(ell):  # means of squared errors are ≥ 0; a wrong β makes some negative
        if (e < -1e-9 * mhat[t].abs().max()).any():
            raise ValueError(
                f"refresh {t + 1}: undoing the EMA with β = {beta:g} gives negative means — is β the run's?"
            )
    return ell


def replay(records: list[dict], beta: float, kappa: float = 1.5, smooth_decades: float = 0.125) -> list[dict]:
    """Per refresh: the run's σ_p, rule and prominence, and the most prominent valley of that refresh's own
    FIFO means (`fresh_*`; `fresh_qualifies` = prominence ≥ ln κ, the rule's entry bar)."""
    if not records:
        raise ValueError("no refresh records to replay")
    sigma = torch.tensor(records[0]["sigma"], dtype=F64)
    mhat = [torch.tensor(r["mmse"], dtype=F64) for r in records]
    rows = []
    for r, ell in zip(records, fifo_means(mhat, beta)):
        if "bayes_cap" in r:  # the run read min(m̂, B) (docs/method.md §4b); so does its replay
            ell = torch.minimum(ell, torch.tensor(r["bayes_cap"], dtype=F64))
        if r.get("pivot_rule") == "onset":  # continuous: the onset of the refresh's own statistics
            onset = info.pivot_onset(info.entropy_rate(ell, sigma), sigma)
            rows.append(
                dict(
                    step=r["step"],
                    kimg=r.get("kimg"),
                    sigma_p=r["sigma_p"],
                    pivot_rule="onset",
                    prominence=None,
                    fresh_valley=onset,
                    fresh_prominence=math.nan,
                    fresh_qualifies=abs(math.log(r["sigma_p"] / onset)) <= info.log_step(sigma) * 1.01,
                )
            )
            continue
        v = info.most_prominent_valley(info.entropy_rate(ell, sigma), sigma, smooth_decades)
        rows.append(
            dict(
                step=r["step"],
                kimg=r.get("kimg"),
                sigma_p=r["sigma_p"],
                pivot_rule=r.get("pivot_rule"),
                prominence=r.get("prominence"),
                fresh_valley=v.sigma,
                fresh_prominence=v.prominence,
                fresh_qualifies=v.prominence >= math.log(kappa),
            )
        )
    return rows


def lag(rows: list[dict]) -> tuple[int | None, int | None]:
    """(first step whose own FIFO means show a qualifying valley, first step the run used a valley)."""
    fresh = next((r["step"] for r in rows if r["fresh_qualifies"]), None)
    used = next((r["step"] for r in rows if r["pivot_rule"] == "valley"), None)
    return fresh, used


def lag_refreshes(rows: list[dict]) -> int | None:
    """How many refreshes the run trails its own statistics (docs/method.md §5, "freshness"). Discrete: from the
    first refresh whose own FIFO means show a qualifying valley to the first that uses the valley rule (None
    if the statistics never show one; len(rows) if the run never follows). Continuous (onset): the longest
    streak of refreshes whose σ_p is more than one bin away from the onset of that refresh's own means."""
    if rows and rows[0]["pivot_rule"] == "onset":
        streak = longest = 0
        for r in rows:
            streak = 0 if r["fresh_qualifies"] else streak + 1
            longest = max(longest, streak)
        return longest
    steps = [r["step"] for r in rows]
    fresh, used = lag(rows)
    if fresh is None:
        return None
    return (steps.index(used) if used is not None else len(rows)) - steps.index(fresh)


def markdown(name: str, rows: list[dict], beta: float) -> str:
    fmt = lambda x: "—" if x is None else f"{x:.3g}"  # noqa: E731
    fresh, used = lag(rows)
    if rows[0]["pivot_rule"] == "onset":
        agree = sum(r["fresh_qualifies"] for r in rows)
        head = f"Onset: σ_p within one bin of its own statistics' onset at {agree} of {len(rows)} refreshes"
    else:
        head = (
            f"Valley in the refresh's own statistics from step {fresh if fresh is not None else 'never'}; "
            f"used by the run from step {used if used is not None else 'never'}"
        )
    lines = [
        f"### {name} (β = {beta:g})",
        "",
        f"{head}; the run trails its own statistics by {lag_refreshes(rows)} refresh(es).",
        "",
        "| step | kimg | run: σ_p | rule | prominence | own FIFO means: valley σ | prominence | ≥ ln κ |",
        "|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {fmt(r['kimg'])} | {r['sigma_p']:.3g} | {r['pivot_rule']} | {fmt(r['prominence'])} "
            f"| {fmt(r['fresh_valley'])} | {r['fresh_prominence']:.2f} | {'yes' if r['fresh_qualifies'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _scheduler_options(path: Path) -> dict | None:
    """The scheduler options a run folder was trained with; None for a bare jsonl file (unknown)."""
    opts = path / "training_options.json"
    return json.loads(opts.read_text()).get("scheduler_kwargs", {}) if opts.is_file() else None


def _default(name: str):
    return inspect.signature(InfoNoise).parameters[name].default


# Refresh records carry their β since the fresh-statistics defaults (docs/method.md §5); a record without it was
# written when the default was 0.9, so a run that set no β had that one.
LEGACY_EMA_BETA = InfoNoise.LEGACY_DEFAULTS["ema_beta"]


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--ema-beta", type=float, default=None, help="β of the run (default: its training_options.json)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the tables to this .md")
@click.option(
    "--max-lag",
    type=click.IntRange(min=0),
    default=None,
    help="Exit 1 if a run trails its own statistics by more than this many refreshes (the freshness check)",
)
def main(paths: tuple[Path, ...], ema_beta: float | None, out: Path | None, max_lag: int | None) -> None:
    """Replay each run's refreshes: the valley in its own FIFO means vs the valley the run used."""
    texts, stale = [], []
    for path in paths:
        try:
            records = load_schedule(path)  # a run folder or a copied schedule .jsonl; clear errors for both
        except (FileNotFoundError, ValueError) as e:
            raise click.ClickException(str(e)) from None
        if "mmse" not in records[0]:
            raise click.ClickException(f"{path}: no InfoNoise refresh records (with m̂) to replay")
        kwargs = _scheduler_options(path) if path.is_dir() else None
        recorded = records[0].get("ema_beta")
        if ema_beta is None and recorded is None and kwargs is None:
            raise click.ClickException(f"{path}: β unknown (no training_options.json beside it) — pass --ema-beta")
        kwargs = kwargs or {}
        beta = next(b for b in (ema_beta, recorded, kwargs.get("ema_beta"), LEGACY_EMA_BETA) if b is not None)
        try:
            rows = replay(
                records,
                float(beta),
                kwargs.get("valley_kappa", _default("valley_kappa")),
                kwargs.get("valley_smooth_decades", _default("valley_smooth_decades")),
            )
        except ValueError as e:
            raise click.ClickException(f"{path}: {e}") from None
        texts.append(markdown(str(path), rows, float(beta)))
        late = lag_refreshes(rows)
        if max_lag is not None and late is not None and late > max_lag:
            stale.append(f"{path}: trails its own statistics by {late} refreshes (more than --max-lag {max_lag})")
    text = "\n".join(texts)
    click.echo(text)
    if out:
        out.write_text(text)
    if stale:
        raise click.ClickException("; ".join(stale))


if __name__ == "__main__":
    main()
