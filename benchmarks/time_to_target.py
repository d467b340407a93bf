"""Compute to target: how many processed examples each noise schedule needs to reach a quality target.

Why: the project's claim (docs/method.md §8) is that InfoNoise reaches a baseline's quality with fewer examples
(discrete data 1.5–3×, continuous MNIST-like ≈ 1.0×). Seconds on this shared machine drift several-fold,
so the clock here is processed examples (kEx = thousands of training images/sequences seen).

For a preset family and a list of methods × seeds, every run trains in segments of --eval-every-kex
through training.training_loop.run (in-process; each segment resumes the run from its latest
snapshot, exactly as re-running train.py does), and the EMA model of the snapshot written at the end
of each segment is evaluated on the same seeds every time:

  images  FD of --eval-samples samples (Heun, --eval-steps levels on the --eval-grid grid) against
          reference statistics of the training data, with the LeNet domain detector (fid.evaluate_snapshot)
  DNA     the k-mer spectrum's mean Jensen–Shannon divergence (k = 3..6) against the held-out split
          (<data stem>-test.tsv when present, else the training data), or, with --dna-classifier,
          the Fréchet distance of the cell-type classifier's features (dna.metrics)

Lower is better for both. Outputs in --outdir: `results.csv` (one row per method × seed × evaluation,
flushed as it is written), `quality_vs_kex.png` (mean over seeds, band = min..max), and `table.md`:
final score, kEx@target — target = the best seed-mean score any fixed baseline reaches within the
budget; a method's kEx@target is the first evaluation at which its seed-mean curve reaches it — and
the speedup against the fixed baseline that set the target. `benchmark.json` holds the settings (those that
change what a row means are frozen for the folder), `invocations.jsonl` one line per invocation: when, the
command, the machine and the commit of the code that ran it ('+dirty' with uncommitted changes).

Methods of a family F: `F-<method>.yaml` when it exists (mnist-subset-binary-{loguniform,edm,infonoise});
else F.yaml when it already is that method (digits is EDM log-normal + λ, dna-cpu is InfoNoise); else,
for the fixed baselines, F.yaml with the scheduler (and, for edm, the weighting) overridden (digits →
loguniform: digits with scheduler loguniform). F may also be a path (dir/name) to a folder of YAMLs.

Resumable: run directories, snapshots and the CSV are reused. A killed benchmark restarted with the
same command skips every evaluation already in the CSV, resumes training from the last snapshot and
re-evaluates a snapshot whose row is missing. Evaluated snapshots are deleted except each run's
latest (which resumption and benchmarks/infogrid_nfe.py need), unless --keep-snapshots.

  python benchmarks/time_to_target.py --family mnist-subset-binary --budget-kex 300 --eval-every-kex 20 \\
      --eval-samples 500 --eval-steps 9 --seeds 0,1,2 --outdir benchmarks/results/ttt-mnist-subset-binary
  python benchmarks/time_to_target.py --family digits --budget-kex 300 --eval-every-kex 20 \\
      --outdir benchmarks/results/ttt-digits
  python benchmarks/time_to_target.py --outdir DIR --report-only      # table and plot from the CSV
"""

from __future__ import annotations

import sys  # noqa: I001
from pathlib import Path as _Path

# Run as `python benchmarks/<script>.py` from a checkout: the repository root first (the framework is not installed).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch
import tqdm

from benchmarks import common
from torch_utils.files import atomic_write
from training import options

FIELDS = [
    "method",
    "seed",
    "kex",
    "metric",
    "metric_name",
    "target_kex",
    "step",
    "preset",
    "scheduler",
    "weighting",
    "snapshot",
    "train_seconds",
    "eval_seconds",
]


def _infonoise_variant(label: str, mmse_cap: str, **scheduler_kwargs) -> dict:
    """A method trained from the family's InfoNoise preset with only the cap of m̂ (docs/method.md §4b) and the
    given scheduler options set."""
    spec = dict(label=label, fixed=False, scheduler="infonoise", weighting=None, derive=False, preset_of="infonoise")
    return dict(spec, scheduler_kwargs={"mmse_cap": mmse_cap, **scheduler_kwargs})


# Method → the scheduler (and weighting, when it is part of the recipe) it stands for; `derive`: may be
# made from the family's base preset by overriding those options (InfoNoise has its own preset: its endpoint and
# loss weighting belong to the recipe; its scheduler options are the defaults, docs/method.md §5).
METHODS = {
    "loguniform": dict(label="log-uniform", fixed=True, scheduler="loguniform", weighting=None, derive=True),
    "edm": dict(label="EDM log-normal (transfer)", fixed=True, scheduler="lognormal", weighting="edm", derive=True),
    "infonoise": dict(label="InfoNoise", fixed=False, scheduler="infonoise", weighting=None, derive=False),
    "infonoise-pinned": dict(
        label="InfoNoise, σ_p pinned 0.2", fixed=False, scheduler="infonoise", weighting=None, derive=False
    ),
    # The ceiling (issue 23): InfoNoise's preset and rule, with the allocation fixed from step 0 at a mature
    # model's probed profile (--oracle-from); no online estimate at all, and no cap (the mature profile itself:
    # what every oracle row measured, before and after the cap became the discrete default).
    "infonoise-oracle": _infonoise_variant("InfoNoise oracle (mature profile, fixed)", "none"),
    # The rule without the cap (the default before docs/method.md §4b's 'auto'): the valley or onset rule on m̂ alone.
    "infonoise-nocap": _infonoise_variant("InfoNoise, no cap", "none"),
    # The cap forced on every endpoint (issue 23 item 2's candidate; 'auto', the default, is it on discrete ones).
    "infonoise-bayes": _infonoise_variant("InfoNoise, Bayes cap", "coordinate-bayes"),
    # The cap without the pivot gate (issue 23 item 2): σ_p at the grid's σ_min, so the gate's σⁿ tail never bites.
    "infonoise-nogate": _infonoise_variant("InfoNoise, Bayes cap, no gate", "coordinate-bayes", sigma_p=0.002),
    "lossvar": dict(label="lossvar (Improved DDPM)", fixed=False, scheduler="lossvar", weighting=None, derive=True),
    "edm2": dict(label="EDM2 learned weighting", fixed=False, scheduler=None, weighting="edm2", derive=True),
}
# Settings that change what a CSV row means: a rerun into the same --outdir must keep them.
FROZEN = (
    "family",
    "eval_every_kex",
    "eval_samples",
    "eval_steps",
    "eval_grid",
    "solver",
    "detector",
    "binarize",
    "dna_metric",
    "dna_classifier",
    "overrides",
    "method_overrides",
    "metrics",
)


# ----------------------------------------------------------------------------------------------------
# Which preset each method trains.


def method_preset(family: str, method: str) -> tuple[str, dict]:
    """(preset name or YAML path, option overrides) of `method` within `family`: `F-<method>.yaml` if it
    exists; else `F.yaml` if it already is that method (dna-cpu is InfoNoise, digits is EDM log-normal);
    else `F.yaml` with the method's scheduler (and weighting) overridden, for the fixed baselines."""
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; valid: {', '.join(METHODS)}")
    spec = METHODS[method]
    if spec.get("preset_of") and not _own_preset(family, method).is_file():
        return method_preset(family, spec["preset_of"])
    folder = Path(family).parent if os.sep in family else options.CONFIG_DIR
    stem = Path(family).name
    name = lambda path: str(path) if os.sep in family else path.stem  # noqa: E731
    own, base = folder / f"{stem}-{method}.yaml", folder / f"{stem}.yaml"
    if own.is_file():
        return name(own), {}
    if not base.is_file():
        raise ValueError(f"family '{family}' has no preset for method '{method}': neither {own} nor {base} exists")
    preset = options.load_preset(str(base))
    want = {k: spec[k] for k in ("scheduler", "weighting") if spec[k]}
    overrides = {k: v for k, v in want.items() if preset.get(k, options.DEFAULTS[k]) != v}
    if overrides and not spec["derive"]:
        raise ValueError(
            f"family '{family}': no {own.name}, and {base.name} uses scheduler "
            f"'{preset.get('scheduler', options.DEFAULTS['scheduler'])}', not '{spec['scheduler']}'"
        )
    if "scheduler" in overrides and preset.get("scheduler_kwargs"):
        raise ValueError(
            f"{base}: its scheduler_kwargs belong to '{preset.get('scheduler')}'; write "
            f"{own.name} for method '{method}' instead of overriding the scheduler"
        )
    return name(base), overrides


def _own_preset(family: str, method: str) -> Path:
    folder = Path(family).parent if os.sep in family else options.CONFIG_DIR
    return folder / f"{Path(family).name}-{method}.yaml"


ORACLE_SAMPLES = 512  # examples the oracle's profile is probed on (common random numbers across σ, §6)


def oracle_profile(source: str, opts: dict, outdir: Path, device: str | None) -> Path:
    """`outdir/oracle-profile.json` for the infonoise-oracle method: the probed profile of a mature checkpoint
    (`source` a snapshot .pt: its EMA network on ORACLE_SAMPLES training examples, the scheduler's grid), or a
    copy of a profile JSON {sigma, mmse}. An existing file is kept when it came from the same source."""
    import modalities
    from infonoise.information import profile_on_grid
    from sampling.generation import load_network
    from sampling.probe import probe_network

    dest = outdir / "oracle-profile.json"
    if dest.is_file():
        old = json.loads(dest.read_text())
        if old.get("source") != str(source):
            raise click.ClickException(f"{dest} was made from {old.get('source')}, not {source}: use another --outdir")
        return dest
    if str(source).endswith(".json"):
        try:
            prof = json.loads(Path(source).read_text())
            profile_on_grid(prof["sigma"], prof["mmse"], torch.tensor(prof["sigma"], dtype=torch.float64))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise click.ClickException(f"--oracle-from {source}: not a profile JSON with sigma and mmse ({e})")
        record = dict(prof, source=str(source))
    else:
        try:
            net, _ = load_network(source, device or "cpu")
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise click.ClickException(f"--oracle-from {source}: {e}") from None
        data = modalities.open_for_network(opts["data"], net)
        prof = probe_network(
            net, data, opts["sigma_min"], opts["sigma_max"], ORACLE_SAMPLES, seed=0, device=device or "cpu"
        )
        record = dict(
            sigma=prof["sigma"].tolist(),
            mmse=prof["mmse"].tolist(),
            source=str(source),
            probe=f"EMA network, {ORACLE_SAMPLES} training examples, common random numbers (docs/method.md §6)",
        )
    with atomic_write(dest) as f:
        f.write(json.dumps(record, indent=1))
    return dest


def resolve_run(
    family: str,
    method: str,
    seed: int,
    budget_kex: float,
    every_kex: float,
    overrides: dict,
    method_overrides: dict,
    device: str | None,
) -> dict:
    """Resolved training options of one run (training.options.resolve validates them as train.py does)."""
    preset, forced = method_preset(family, method)
    flags = {**forced, **overrides, **method_overrides.get(method, {})}
    for key in ("network_kwargs", "scheduler_kwargs"):
        own = METHODS[method].get(key, {})  # what the method itself is (infonoise-bayes: its cap)
        flags[key] = {**own, **overrides.get(key, {}), **method_overrides.get(method, {}).get(key, {})}
    if "data" not in flags:  # presets name data relative to the repository
        data = str(options.load_preset(preset).get("data") or "")
        if data and not os.path.exists(data) and (common.REPO / data).exists():
            flags["data"] = str(common.REPO / data)
    flags.update(
        seed=seed,
        duration=budget_kex / 1e3,
        tick=every_kex,
        snap=1,
        sample_grid=0,
        desc=f"{method}-s{seed}",
        device=device,
    )
    try:
        opts = options.resolve(preset, flags)
    except options.OptionError as e:
        raise click.ClickException(str(e)) from None
    opts["method"] = method
    return opts


# ----------------------------------------------------------------------------------------------------
# Metrics.


class Evaluator:
    """Scores one snapshot; built once per benchmark. The automatic metric is the data's modality's
    (`Modality.harness_metric`: FD of images, k-mer JS of sequences, …); custom metrics score one shared set of
    samples against the training set in model space."""

    def __init__(
        self,
        opts: dict,
        outdir: Path,
        samples: int,
        steps: int,
        grid: str,
        solver: str,
        batch: int,
        detector: str,
        binarize: str,
        dna_metric: str,
        dna_classifier: str | None,
        device: str | None,
        first_seed: int = 0,
        metrics: tuple[str, ...] = ("auto",),
    ):
        import modalities
        from datafiles.base import model_space
        from evaluation.metrics import resolve

        self.seeds = list(range(first_seed, first_seed + samples))
        self.steps, self.grid, self.solver, self.batch, self.device = steps, grid, solver, batch, device
        try:
            modality = modalities.for_data(opts["data"])
            ds = modality.open(opts["data"], max_size=opts["max_size"])
        except (OSError, ValueError) as e:
            raise click.ClickException(f"cannot open the runs' training set: {e}") from None
        try:
            self.custom = [(spec, resolve(spec)) for spec in metrics if spec not in ("auto", "none")]
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        self.auto, self.directions = "auto" in metrics, {}
        if self.custom:  # the run's training set in model space, what every custom metric compares with
            self.data = model_space(torch.as_tensor(np.stack([ds[i][0] for i in range(len(ds))])))
        if not self.auto:
            self.name = "+".join(spec for spec, _ in self.custom) or "none"
            return
        per_kind = dict(detector=detector, binarize=binarize, dna_metric=dna_metric, dna_classifier=dna_classifier)
        evaluation = modalities.Evaluation(self.seeds, steps, grid, solver, batch, device, outdir, per_kind)
        try:
            self.metric = modality.harness_metric(ds, opts, evaluation)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        self.name = self.metric.name
        self.directions[self.name] = True

    @classmethod
    def for_settings(
        cls, opts: dict, outdir: Path, settings: dict, batch: int, device: str | None, samples: int, first_seed: int = 0
    ) -> Evaluator:
        """The evaluator a benchmark's settings (benchmark.json) describe, on `samples` seeds from `first_seed`."""
        return cls(
            opts,
            outdir,
            samples,
            settings["eval_steps"],
            settings["eval_grid"],
            settings["solver"],
            batch,
            settings["detector"],
            settings["binarize"],
            settings["dna_metric"],
            settings["dna_classifier"],
            device,
            first_seed=first_seed,
            metrics=tuple(settings.get("metrics") or ("auto",)),  # benchmarks from before --metric: auto
        )

    def __call__(self, snapshot: str) -> dict[str, float]:
        """{metric name: value} of one snapshot: the automatic metric (FD of images, k-mer JS of sequences)
        unless left out, then every custom metric on one shared sample set ({'none': nan} for --metric none)."""
        from evaluation.metrics import lower_is_better

        out = {self.name: self.metric.score(snapshot)} if self.auto else {}
        if self.custom:
            samples = self._samples(snapshot)
            for spec, fn in self.custom:
                values = fn(samples, self.data)
                if not isinstance(values, dict) or not values:
                    raise click.ClickException(f"metric {spec} returned {values!r}, not a dict of name: value")
                for name, value in values.items():
                    out[str(name)] = float(value)
                    self.directions[str(name)] = lower_is_better(fn)
        return out or {"none": math.nan}

    def _samples(self, snapshot: str) -> torch.Tensor:
        """The evaluation seeds' samples in model space (the same seeds and grid as the automatic metric)."""
        from sampling.generation import build_sigmas, generate_batches, load_network

        net, profile = load_network(snapshot, self.device or "cpu")
        sigmas = build_sigmas(net, self.grid, self.steps, profile=profile, device=self.device or "cpu")
        batches = generate_batches(net, self.seeds, self.batch, sigmas, self.solver, device=self.device or "cpu")
        return torch.cat([x for _, _, x, _ in batches])


def rescore(
    outdir: Path,
    settings: dict,
    samples: int,
    first_seed: int,
    batch: int,
    device: str | None,
    metrics: tuple[str, ...] = (),
) -> str:
    """Score every run's final snapshot (its latest, once it has reached the budget: a run still in training is
    skipped) again on `samples` fresh seeds from `first_seed`: a score of a few
    hundred samples is noisy (see RESULTS.md), so the final comparison gets its own, larger evaluation.
    `metrics` (default: the benchmark's own) may add what the curves did not score, e.g. binary-stats for the
    fine structure of the final samples. Writes rescore.csv (one row per run, metric and sample set) and
    rescore.md (mean ± std over seeds per method)."""
    from torch_utils import checkpoint

    runs = sorted(p for p in (outdir / "runs").glob("*-s*") if (p / "training_options.json").is_file())
    latest = {p: checkpoint.list_snapshots(p) for p in runs}
    runs = [p for p in runs if latest[p]]
    if not runs:
        raise click.ClickException(f"{outdir / 'runs'}: no run with a snapshot to rescore")
    opts = json.loads((runs[0] / "training_options.json").read_text())
    own = list(settings.get("metrics") or ["auto"])  # benchmarks from before --metric: auto
    specs = list(metrics) or own
    try:
        evaluate = Evaluator.for_settings(
            opts, outdir, {**settings, "metrics": specs}, batch, device, samples, first_seed
        )
    except click.ClickException as e:
        if not Path(opts["data"]).is_absolute():  # the runs read it relative to where they were trained
            e.message += (
                f" (the runs' relative path is read from {Path.cwd()}: run from the folder they were trained in)"
            )
        raise
    path, fields = (
        outdir / "rescore.csv",
        ["method", "seed", "kex", "metric", "metric_name", "samples", "first_seed", "snapshot", "metrics"],
    )
    # A rescoring is done when the same snapshot was scored on the same seeds with the same metrics (rows of
    # files from before the `metrics` column scored the benchmark's own).
    key = lambda r: (r["method"], int(r["seed"]), r["snapshot"], int(r["samples"]), int(r["first_seed"]), r["metrics"])  # noqa: E731
    run_of = lambda r: (r["method"], int(r["seed"]), r["metrics"])  # noqa: E731
    done: dict[tuple, list[dict]] = {}
    for r in common.read_rows(path):
        r = {**r, "kex": float(r["kex"]), "metric": float(r["metric"]), "metrics": r.get("metrics") or "+".join(own)}
        done.setdefault(key(r), []).append(r)
    rows: list[dict] = []

    def with_kept() -> list[dict]:
        """These rows plus the file's rows of runs not rescored now (a run folder deleted since, another
        method, other metrics): rescoring adds to rescore.csv, it never drops what it holds."""
        visited = {run_of(r) for r in rows}
        return [r for rs in done.values() for r in rs if run_of(r) not in visited] + rows

    def save() -> None:  # after every run, so a killed rescoring keeps what it finished
        common.write_rows(path, with_kept(), fields)

    for run in tqdm.tqdm(runs, desc="rescoring", unit="run"):
        method, _, seed = run.name.rpartition("-s")
        snap = latest[run][-1]
        row = dict(
            method=method,
            seed=int(seed),
            snapshot=snap.name,
            samples=samples,
            first_seed=first_seed,
            metrics="+".join(specs),
        )
        if key(row) in done:  # resumable: a finished run is not scored twice
            rows.extend(done[key(row)])
            continue
        state = checkpoint.load(snap)
        kex = int(state["progress"]["cur_nimg"]) / 1e3
        if kex < float(settings["budget_kex"]):  # a run still in training: its latest snapshot is not its final
            tqdm.tqdm.write(f"{run.name}: skipped, its latest snapshot is at {kex:g} kEx, short of the budget")
            continue
        for name, value in evaluate(str(snap)).items():
            rows.append({**row, "kex": kex, "metric": value, "metric_name": name})
            tqdm.tqdm.write(f"{run.name}: {kex:g} kEx, {name} {value:.4g}")
        save()
    rows = with_kept()
    common.write_rows(path, rows, fields)
    text = rescore_table(rows, settings)
    (outdir / "rescore.md").write_text(text)
    return text


def rescore_table(rows: list[dict], settings: dict) -> str:
    """rescore.md: one table per metric and sample set (rows kept from an earlier rescoring may use
    another), mean ± std over training seeds per method."""
    lines = [f"# Final snapshots re-scored: {settings.get('family')}", ""]
    for name, n, first in dict.fromkeys((r["metric_name"], int(r["samples"]), int(r["first_seed"])) for r in rows):
        block = [r for r in rows if (r["metric_name"], int(r["samples"]), int(r["first_seed"])) == (name, n, first)]
        body = []
        for m in dict.fromkeys(r["method"] for r in block):
            sel = [r for r in block if r["method"] == m]
            v = np.array([r["metric"] for r in sel])
            body.append(
                [
                    METHODS.get(m, {}).get("label", m),
                    len(v),
                    f"{np.mean([r['kex'] for r in sel]):.4g}",
                    f"{v.mean():.4g} ± {v.std():.2g}",
                    " / ".join(f"{x:.4g}" for x in v),
                ]
            )
        lines += [
            f"{name} on {n} seeds {first}–{first + n - 1} (Heun "
            f"{settings['eval_steps']} levels, {settings['eval_grid']} grid). Mean ± std over training seeds.",
            "",
            common.markdown_table(["method", "seeds", "kEx", "score", "per seed"], body),
            "",
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Report: curves, kEx@target, speedup.


def curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Per method, per evaluation point (target kEx): mean kEx and the metric's mean/min/max/std over seeds."""
    out: dict[str, list[dict]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        points = sorted({float(r["target_kex"]) for r in rows if r["method"] == method})
        out[method] = []
        for p in points:
            sel = [r for r in rows if r["method"] == method and float(r["target_kex"]) == p]
            m = np.array([float(r["metric"]) for r in sel])
            out[method].append(
                dict(
                    target_kex=p,
                    kex=float(np.mean([float(r["kex"]) for r in sel])),
                    mean=float(m.mean()),
                    min=float(m.min()),
                    max=float(m.max()),
                    std=float(m.std()),
                    n=len(m),
                )
            )
    return out


def crossing_kex(curve: list[dict], target: float) -> float | None:
    """kEx at which a seed-mean curve first reaches `target`: interpolated linearly in ln(score) between
    the last evaluation above the target and the first at or below it (scores fall roughly
    geometrically with training), so the speedup is not quantised to the evaluation interval. None if
    the curve never reaches it; the first evaluation if that already does (no earlier point to
    interpolate from)."""
    for i, p in enumerate(curve):
        if p["mean"] <= target + abs(target) * 1e-12:
            if i == 0 or p["mean"] >= target:
                return p["kex"]
            a, b = curve[i - 1], p
            if min(a["mean"], b["mean"], target) > 0:
                t = math.log(a["mean"] / target) / math.log(a["mean"] / b["mean"])
            else:  # scores that can be ≤ 0 (e.g. a negated higher-is-better metric): linear
                t = (a["mean"] - target) / (a["mean"] - b["mean"])
            return a["kex"] + t * (b["kex"] - a["kex"])
    return None


def summarize(rows: list[dict], lower_is_better: bool = True, baselines: list[str] | None = None) -> dict:
    """Target, kEx@target (`crossing_kex`) and speedups from the seed-mean curves of one metric. A
    higher-is-better metric is summarised as its negation, and reported with its own sign. The target is the best
    of the fixed METHODS, or of `baselines` (another benchmark's reference arms, e.g. diffusers' uniform draw)."""
    sign = 1.0 if lower_is_better else -1.0
    signed = [{**r, "metric": sign * float(r["metric"])} for r in rows]
    cur = curves(signed)
    fixed = [m for m in cur if (m in baselines if baselines is not None else METHODS.get(m, {}).get("fixed"))]
    best = {m: min(p["mean"] for p in c) for m, c in cur.items()}
    summary = dict(curves=cur, target=None, target_method=None, methods={})
    if fixed:
        summary["target_method"] = min(fixed, key=lambda m: best[m])
        summary["target"] = best[summary["target_method"]]
    for m, c in cur.items():
        reach = None if summary["target"] is None else crossing_kex(c, summary["target"])
        per_seed = []  # each seed's own curve against the common target: the spread of kEx@target
        if summary["target"] is not None:
            for seed in dict.fromkeys(r["seed"] for r in signed if r["method"] == m):
                own = curves([r for r in signed if r["method"] == m and r["seed"] == seed])[m]
                per_seed.append(crossing_kex(own, summary["target"]))
        last = c[-1]
        summary["methods"][m] = dict(
            final=last["mean"],
            final_std=last["std"],
            final_kex=last["kex"],
            seeds=last["n"],
            best=best[m],
            kex_at_target=reach,
            kex_at_target_per_seed=per_seed,
        )
    if sign < 0:  # back to the metric's own sign (min/max swap with the negation)
        for c in cur.values():
            for p in c:
                p["mean"], p["min"], p["max"] = -p["mean"], -p["max"], -p["min"]
        for s in summary["methods"].values():
            s["final"], s["best"] = -s["final"], -s["best"]
        summary["target"] = None if summary["target"] is None else -summary["target"]
    summary["lower_is_better"] = lower_is_better
    ref = summary["target_method"] and summary["methods"][summary["target_method"]]["kex_at_target"]
    for m, s in summary["methods"].items():
        s["speedup_interval"] = None
        if ref and s["kex_at_target"] and m != summary["target_method"]:
            target = sign * summary["target"]  # the signed target the crossings were found against
            s["speedup_interval"] = bootstrap_speedup(signed, m, summary["target_method"], target)
        if ref and s["kex_at_target"]:
            s["speedup"], s["speedup_text"] = ref / s["kex_at_target"], f"{ref / s['kex_at_target']:.2f}×"
        elif ref:  # never reached within the budget: the speedup is below ref / (last evaluated kEx)
            s["speedup"], s["speedup_text"] = None, f"< {ref / s['final_kex']:.2f}× (not reached)"
        else:
            s["speedup"], s["speedup_text"] = None, "—"
    return summary


BOOTSTRAP_DRAWS = 2000


def bootstrap_speedup(signed: list[dict], method: str, ref_method: str, target: float) -> tuple[float, float] | None:
    """95 % percentile interval of the speedup over seeds: the seeds of `method` and of `ref_method` (the
    baseline that set the target) are resampled with replacement, each resample's seed-mean curves cross the
    same target, and the ratio of crossings is taken. A resample that does not reach the target counts as
    reaching it at its last evaluation (for the baseline that understates the speedup, for the method it
    overstates it; both are said in RESULTS). Deterministic (fixed generator); None with one seed or none."""

    def seeds_of(m):
        return {
            sd: [r for r in signed if r["method"] == m and r["seed"] == sd]
            for sd in {r["seed"] for r in signed if r["method"] == m}
        }

    own, ref = seeds_of(method), seeds_of(ref_method)
    if len(own) < 2 or len(ref) < 2:
        return None
    gen = np.random.default_rng(0)

    def crossing(groups, keys):
        rows = [dict(r, seed=f"{i}") for i, k in enumerate(keys) for r in groups[k]]
        curve = next(iter(curves(rows).values()))
        hit = crossing_kex(curve, target)
        return hit if hit is not None else curve[-1]["kex"]

    own_keys, ref_keys = sorted(own), sorted(ref)
    ratios = [
        crossing(ref, gen.choice(ref_keys, len(ref_keys))) / crossing(own, gen.choice(own_keys, len(own_keys)))
        for _ in range(BOOTSTRAP_DRAWS)
    ]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def per_seed_text(reach: list[float | None]) -> str:
    """Mean ± std of the seeds that reached the target, and how many did: '97.3 ± 5.1 (3/3)'."""
    got = [k for k in reach if k is not None]
    if not reach:
        return "—"
    if not got:
        return f"none (0/{len(reach)})"
    return f"{np.mean(got):.4g} ± {np.std(got):.2g} ({len(got)}/{len(reach)})"


def table(summary: dict, rows: list[dict], settings: dict) -> str:
    """One metric's block of table.md."""
    metric = rows[0]["metric_name"] if rows else "metric"
    direction = "lower" if summary.get("lower_is_better", True) else "higher"
    lines = [
        f"## {metric}",
        "",
        f"Metric: {metric} ({direction} is better), {settings.get('eval_samples')} samples, Heun "
        f"{settings.get('eval_steps')} levels on the {settings.get('eval_grid')} grid, every "
        f"{settings.get('eval_every_kex')} kEx. Mean ± std over seeds; kEx@target from the seed-mean curve, "
        "per seed from each seed's own curve against the same target.",
        "",
    ]
    if summary["target"] is not None:
        lines += [
            f"Target: {summary['target']:.4g} = best seed-mean score of the fixed baselines, reached by "
            f"{summary['target_method']}.",
            "",
        ]
    header = [
        "method",
        "preset",
        "scheduler / weighting",
        "seeds",
        "final kEx",
        "final score",
        "best score",
        "kEx@target",
        "per seed: kEx@target",
        "speedup vs best fixed",
        "95 % bootstrap over seeds",
    ]
    body = []
    for m, s in summary["methods"].items():
        r = next(r for r in rows if r["method"] == m)
        body.append(
            [
                METHODS.get(m, {}).get("label", m),
                Path(r["preset"]).stem,
                f"{r['scheduler']} / {r['weighting']}",
                s["seeds"],
                f"{s['final_kex']:.4g}",
                f"{s['final']:.4g} ± {s['final_std']:.2g}",
                f"{s['best']:.4g}",
                "not reached" if s["kex_at_target"] is None else f"{s['kex_at_target']:.4g}",
                per_seed_text(s.get("kex_at_target_per_seed", [])),
                s["speedup_text"],
                "—" if not s.get("speedup_interval") else "{:.2f}–{:.2f}×".format(*s["speedup_interval"]),
            ]
        )
    return "\n".join(lines + [common.markdown_table(header, body), ""])


def plot(blocks: list[tuple[dict, list[dict]]], path: Path, title: str) -> None:
    """One panel per metric: seed-mean curves with min..max bands and the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(blocks), 1, figsize=(7, 4.5 * len(blocks)), squeeze=False)
    for (summary, rows), ax in zip(blocks, axes[:, 0]):
        _plot_metric(ax, summary, rows)
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_metric(ax, summary: dict, rows: list[dict]) -> None:
    for m, c in summary["curves"].items():
        x = [p["kex"] for p in c]
        (line,) = ax.plot(x, [p["mean"] for p in c], marker="o", ms=3, label=METHODS.get(m, {}).get("label", m))
        ax.fill_between(x, [p["min"] for p in c], [p["max"] for p in c], color=line.get_color(), alpha=0.2, lw=0)
    if summary["target"] is not None:
        ax.axhline(summary["target"], color="k", ls="--", lw=0.8, label=f"target ({summary['target']:.3g})")
    values = [float(r["metric"]) for r in rows]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    direction = "lower" if summary.get("lower_is_better", True) else "higher"
    ax.set_xlabel("processed examples (kEx)")
    ax.set_ylabel(f"{rows[0]['metric_name'] if rows else 'metric'} ({direction} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def schedule_history(records: list[dict]) -> str:
    """One run's σ_p over its refreshes, as runs of equal (rule, σ_p): 'fallback 0.2 (steps 100–300) →
    valley 0.299 (steps 350–550, prominence 0.50–0.84)'. Records without a pivot (lossvar) give ''."""
    spans: list[dict] = []
    for r in records:
        if "sigma_p" not in r:
            continue
        rule, sp = r.get("pivot_rule", "?"), float(r["sigma_p"])
        if spans and spans[-1]["rule"] == rule and math.isclose(spans[-1]["sigma_p"], sp, rel_tol=1e-9):
            spans[-1]["last"] = r["step"]
            spans[-1]["prom"].append(r.get("prominence"))
        else:
            spans.append(dict(rule=rule, sigma_p=sp, first=r["step"], last=r["step"], prom=[r.get("prominence", None)]))
    parts = []
    for sp in spans:
        steps = f"step {sp['first']}" if sp["first"] == sp["last"] else f"steps {sp['first']}–{sp['last']}"
        prom = [float(p) for p in sp["prom"] if p is not None and math.isfinite(float(p))]
        extra = f", prominence {min(prom):.2f}–{max(prom):.2f}" if sp["rule"] == "valley" and prom else ""
        parts.append(f"{sp['rule']} {sp['sigma_p']:.3g} ({steps}{extra})")
    return " → ".join(parts)


def schedules_report(outdir: Path) -> str | None:
    """schedules.md: σ_p per refresh and the rule that set it, for every run whose schedule.jsonl the
    benchmark copied (`<method>-s<seed>-schedule.jsonl`)."""
    files = sorted(outdir.glob("*-s*-schedule.jsonl"))
    lines = []
    for path in files:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        text = schedule_history(records)
        if text:
            method, seed = path.name.removesuffix("-schedule.jsonl").rsplit("-s", 1)
            lines.append(f"| {METHODS.get(method, {}).get('label', method)} | {seed} | {len(records)} | {text} |")
    if not lines:
        return None
    text = "\n".join(
        [
            "# Schedule history per run",
            "",
            "σ_p at each refresh, grouped into runs of the same rule and value (docs/method.md §4: `valley` = the",
            "most prominent valley of the smoothed entropy rate, `fallback` = sigma_p_fallback while none",
            "qualifies, `pinned` = a fixed sigma_p, `powerlaw` = the v1 rule).",
            "",
            "| method | seed | refreshes | σ_p history |",
            "|---|---|---|---|",
            *lines,
            "",
        ]
    )
    (outdir / "schedules.md").write_text(text)
    return text


def report(outdir: Path, settings: dict) -> str:
    """table.md and quality_vs_kex.png from the CSV (rows beyond the current budget, from an earlier
    longer benchmark into the same folder, are left out)."""
    budget = settings.get("budget_kex", math.inf)
    rows = [r for r in common.read_rows(outdir / "results.csv") if float(r["target_kex"]) <= budget * (1 + 1e-9)]
    rows = [r for r in rows if r["metric_name"] != "none"]  # --metric none: trained, not scored
    if not rows:
        raise click.ClickException(f"{outdir / 'results.csv'}: no results yet")
    directions = settings.get("metric_directions") or {}
    blocks = []
    for name in dict.fromkeys(r["metric_name"] for r in rows):
        sel = [r for r in rows if r["metric_name"] == name]
        blocks.append((summarize(sel, directions.get(name, True)), sel))
    text = "\n".join([f"# Time to target: {settings.get('family')}", ""] + [table(s, r, settings) for s, r in blocks])
    (outdir / "table.md").write_text(text)
    plot(
        blocks,
        outdir / "quality_vs_kex.png",
        f"{settings.get('family')}: quality vs processed examples (mean, band = min..max over seeds)",
    )
    schedules_report(outdir)
    return text


# ----------------------------------------------------------------------------------------------------


def check_settings(outdir: Path, settings: dict) -> dict:
    """Store the settings on the first run; refuse a rerun whose rows would mean something else."""
    path = outdir / "benchmark.json"
    if path.is_file():
        old = json.loads(path.read_text())
        old.setdefault("metrics", ["auto"])  # benchmarks from before --metric scored the automatic metric
        differ = [k for k in FROZEN if old.get(k) != settings.get(k)]
        if differ:
            changes = ", ".join(f"{k}: {old.get(k)!r} → {settings.get(k)!r}" for k in differ)
            raise click.ClickException(
                f"{outdir} holds a benchmark with other settings ({changes}). "
                f"Use another --outdir, or the same settings to resume (budget, seeds and methods may change)."
            )
        settings = {"metric_directions": old.get("metric_directions", {}), **settings}
    save_settings(outdir, settings)
    return settings


# What must agree for rows of two benchmark folders to sit in one table: the family and how it is evaluated.
SAME_EVALUATION = tuple(k for k in FROZEN if k not in ("overrides", "method_overrides"))


def import_rows(outdir: Path, spec: str) -> str:
    """`DIR:METHOD[,METHOD...]`: copy those methods' rows (and their schedule histories, and the oracle's profile)
    from another benchmark folder of the same family and evaluation into `outdir`, so runs made in two processes
    (or by earlier code shown to reproduce bit for bit) form one table. The source's options and command are
    recorded under `imported` in benchmark.json. Refused when the evaluations differ or the rows already exist."""
    src_text, sep, methods_text = spec.rpartition(":")
    if not sep or not src_text or not methods_text:
        raise click.BadParameter(f"'{spec}' is not DIR:METHOD[,METHOD...]", param_hint="--import-rows")
    src, methods = Path(src_text), common.parse_list(methods_text)
    if not (src / "benchmark.json").is_file() or not (outdir / "benchmark.json").is_file():
        raise click.ClickException(f"--import-rows: {src} and {outdir} must both hold a benchmark (benchmark.json)")
    theirs, ours = json.loads((src / "benchmark.json").read_text()), json.loads((outdir / "benchmark.json").read_text())
    theirs.setdefault("metrics", ["auto"])
    ours.setdefault("metrics", ["auto"])
    differ = [k for k in SAME_EVALUATION if theirs.get(k) != ours.get(k)]
    if differ:
        changes = ", ".join(f"{k}: {theirs.get(k)!r} vs {ours.get(k)!r}" for k in differ)
        raise click.ClickException(f"--import-rows: {src} was evaluated otherwise ({changes})")
    rows = [r for r in common.read_rows(src / "results.csv") if r["method"] in methods]
    missing = [m for m in methods if not any(r["method"] == m for r in rows)]
    if missing:
        raise click.ClickException(f"--import-rows: {src}/results.csv has no rows of {', '.join(missing)}")
    existing = common.read_rows(outdir / "results.csv")
    clash = sorted({r["method"] for r in existing} & set(methods))
    if clash:
        raise click.ClickException(f"--import-rows: {outdir} already has rows of {', '.join(clash)}")
    common.write_rows(outdir / "results.csv", existing + rows, FIELDS)
    for m in methods:
        for path in sorted(src.glob(f"{m}-s*-schedule.jsonl")):
            (outdir / path.name).write_bytes(path.read_bytes())
    if "infonoise-oracle" in methods and (src / "oracle-profile.json").is_file():
        (outdir / "oracle-profile.json").write_bytes((src / "oracle-profile.json").read_bytes())
    record = dict(
        source=str(src),
        methods=methods,
        rows=len(rows),
        **{k: theirs.get(k) for k in ("overrides", "method_overrides", "command", "machine")},
    )
    ours["imported"] = [*ours.get("imported", []), record]
    save_settings(outdir, ours)
    return f"imported {len(rows)} rows of {', '.join(methods)} from {src}"


def save_settings(outdir: Path, settings: dict) -> None:
    with atomic_write(outdir / "benchmark.json") as f:
        f.write(json.dumps(settings, indent=2))


def prepare_run(opts: dict, runs_dir: Path) -> Path:
    """train.py's run directory handling (refuses a folder holding other options), then the options file."""
    try:
        run_dir = options.prepare_run_dir(runs_dir, opts)
    except options.OptionError as e:
        raise click.ClickException(str(e)) from None
    with atomic_write(run_dir / "training_options.json") as f:
        f.write(json.dumps(opts, indent=2))
    return run_dir


def eval_points(budget_kex: float, every_kex: float) -> list[int]:
    """Evaluation points in whole examples: the k-th at round(k·E), the last at the budget. Each is rounded
    on its own, never accumulated in floats: 3 × 25.6 kEx is 76,800 examples, not 76.80000000000001 kEx
    (a float target past the examples a run had processed stopped the harness)."""
    budget = round(budget_kex * 1e3)
    if round(every_kex * 1e3) < 1:
        raise click.ClickException(f"--eval-every-kex {every_kex} is less than one example")
    count = max(1, math.ceil(budget_kex / every_kex - 1e-9))
    return [min(round(k * every_kex * 1e3), budget) for k in range(1, count + 1)]


def method_opts(pairs: tuple[str, ...]) -> dict:
    """('infonoise:scheduler_kwargs.warmup_steps=10', …) → {'infonoise': {'scheduler_kwargs': {...}}}."""
    out: dict = {}
    for pair in pairs:
        method, sep, rest = pair.partition(":")
        if not sep or method not in METHODS:
            raise click.BadParameter(f"'{pair}' is not METHOD:key=value with METHOD in {', '.join(METHODS)}")
        merged = common.parse_overrides([rest])
        for key, value in merged.items():
            if isinstance(value, dict):
                out.setdefault(method, {}).setdefault(key, {}).update(value)
            else:
                out.setdefault(method, {})[key] = value
    return out


@click.command(context_settings={"show_default": True})
@click.option("--family", default=None, help="Preset family (e.g. mnist-subset-binary, digits) or dir/name of YAMLs")
@click.option("--methods", default="loguniform,edm,infonoise", help=f"Comma-separated, of {', '.join(METHODS)}")
@click.option("--seeds", default="0,1,2", help="Training seeds")
@click.option("--budget-kex", type=click.FloatRange(min=0, min_open=True), default=300.0, help="Training budget (kEx)")
@click.option(
    "--eval-every-kex", type=click.FloatRange(min=0, min_open=True), default=20.0, help="Evaluation interval E"
)
@click.option("--eval-samples", type=click.IntRange(min=2), default=500, help="Samples per evaluation (seeds 0..n-1)")
@click.option("--eval-steps", type=click.IntRange(min=1), default=9, help="Sampling levels N (Heun: 2N−1 NFE)")
@click.option(
    "--eval-grid",
    type=click.Choice(["edm", "loguniform"]),
    default="edm",
    help="σ-grid for evaluation (the same for every method; InfoGrid is benchmarks/infogrid_nfe.py's)",
)
@click.option("--solver", type=click.Choice(["heun", "euler"]), default="heun", help="Sampler")
@click.option("--eval-batch", type=click.IntRange(min=1), default=250, help="Sampling batch")
@click.option("--detector", default="auto", help="FD detector for images: auto (by data shape), lenet-mnist, ...")
@click.option(
    "--binarize",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    help="Threshold image samples before scoring; auto: when the data are two-valued",
)
@click.option("--dna-metric", type=click.Choice(["kmer_js", "classifier_fd"]), default="kmer_js", help="DNA metric")
@click.option("--dna-classifier", default=None, help="Classifier .pt for --dna-metric classifier_fd")
@click.option(
    "--metric",
    "metric_specs",
    multiple=True,
    help="Metrics (repeatable; default auto): auto (FD of images, k-mer JS of sequences), none (train only), "
    "binary-stats, train-copies, or module:function (evaluation/metrics.py says how to write one); with "
    "--rescore-samples, what the final snapshots are scored on (default: the benchmark's own)",
)
@click.option(
    "--opt",
    "opt_pairs",
    multiple=True,
    help="Training option for every run: key=value, network_kwargs.key=value (YAML values; e.g. batch=64)",
)
@click.option(
    "--method-opt",
    "method_pairs",
    multiple=True,
    help="Training option for one method: METHOD:key=value (e.g. infonoise:scheduler_kwargs.warmup_steps=100)",
)
@click.option(
    "--oracle-from",
    default=None,
    help="For method infonoise-oracle: a mature snapshot .pt to probe (or a profile .json {sigma, mmse})",
)
@click.option("--threads", type=click.IntRange(min=1), default=1, help="torch threads (1 is fastest on the shared CPU)")
@click.option("--device", default=None, help="cpu | cuda (default: cuda if available)")
@click.option("--keep-snapshots", is_flag=True, help="Keep every evaluated snapshot (default: each run's latest)")
@click.option("--outdir", required=True, help="Benchmark folder (runs/, results.csv, table.md, plot)")
@click.option("--report-only", is_flag=True, help="Only rebuild table.md and the plot from results.csv")
@click.option(
    "--import-rows",
    "import_specs",
    multiple=True,
    help="DIR:METHOD[,METHOD...]: copy those rows from another folder of the same family and evaluation, then report",
)
@click.option(
    "--rescore-samples",
    type=click.IntRange(min=2),
    default=None,
    help="Only score each run's latest snapshot again on this many fresh seeds (rescore.csv/.md)",
)
@click.option(
    "--rescore-first-seed", type=click.IntRange(min=0), default=10000, help="First seed for --rescore-samples"
)
def main(
    metric_specs,
    family,
    methods,
    seeds,
    budget_kex,
    eval_every_kex,
    eval_samples,
    eval_steps,
    eval_grid,
    solver,
    eval_batch,
    detector,
    binarize,
    dna_metric,
    dna_classifier,
    opt_pairs,
    method_pairs,
    oracle_from,
    threads,
    device,
    keep_snapshots,
    outdir,
    report_only,
    import_specs,
    rescore_samples,
    rescore_first_seed,
):
    """Train each method × seed for a budget of processed examples, evaluating every E kEx; report
    kEx-to-target and the speedup vs the best fixed baseline."""
    outdir = Path(outdir)
    for spec in import_specs:
        click.echo(import_rows(outdir, spec))
    if report_only or import_specs:
        settings = json.loads((outdir / "benchmark.json").read_text()) if (outdir / "benchmark.json").is_file() else {}
        click.echo(report(outdir, settings))
        return
    if rescore_samples:
        if not (outdir / "benchmark.json").is_file():
            raise click.ClickException(f"{outdir}: no benchmark.json — run the benchmark first")
        common.set_threads(threads)
        settings = json.loads((outdir / "benchmark.json").read_text())
        click.echo(
            rescore(outdir, settings, rescore_samples, rescore_first_seed, eval_batch, device, tuple(metric_specs))
        )
        return
    if not family:
        raise click.UsageError("--family is required (unless --report-only)")
    metric_specs = tuple(metric_specs) or ("auto",)
    common.set_threads(threads)
    method_list, seed_list = common.parse_list(methods), common.parse_list(seeds, int)
    try:
        overrides = common.parse_overrides(opt_pairs)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    per_method = method_opts(method_pairs)
    targets = eval_points(budget_kex, eval_every_kex)
    if "infonoise-oracle" in method_list:
        oracle = oracle_method(family, seed_list[0], budget_kex, eval_every_kex, overrides, oracle_from, outdir, device)
        per_method.setdefault("infonoise-oracle", {}).setdefault("scheduler_kwargs", {}).update(oracle)
    runs = resolve_runs(family, method_list, seed_list, budget_kex, eval_every_kex, overrides, per_method, device)
    outdir.mkdir(parents=True, exist_ok=True)
    settings = check_settings(
        outdir,
        dict(
            family=family,
            methods=method_list,
            seeds=seed_list,
            budget_kex=budget_kex,
            eval_every_kex=eval_every_kex,
            eval_samples=eval_samples,
            eval_steps=eval_steps,
            eval_grid=eval_grid,
            solver=solver,
            detector=detector,
            binarize=binarize,
            dna_metric=dna_metric,
            dna_classifier=dna_classifier,
            metrics=list(metric_specs),
            overrides=overrides,
            method_overrides=per_method,
            machine=common.machine_note(),
            command=common.invoked_command("python -m benchmarks.time_to_target"),
        ),
    )
    # benchmark.json holds the latest invocation's settings; every invocation, with the commit it ran, is one line here
    common.append_jsonl(
        outdir / "invocations.jsonl",
        dict(
            started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            code=common.code_version(),
            **{k: settings[k] for k in ("methods", "seeds", "budget_kex", "machine", "command")},
        ),
    )
    evaluate = Evaluator.for_settings(next(iter(runs.values())), outdir, settings, eval_batch, device, eval_samples)
    bench = Benchmark(outdir, runs, evaluate, settings, keep_snapshots)
    bench.run(targets, method_list, seed_list)
    if list(metric_specs) == ["none"]:
        click.echo(f"Trained every run to {budget_kex:g} kEx without scoring (--metric none): {outdir / 'runs'}")
        return
    click.echo(report(outdir, settings))
    click.echo(f"Wrote {bench.csv_path}, {outdir / 'table.md'}, {outdir / 'quality_vs_kex.png'}")


def oracle_method(
    family: str,
    seed: int,
    budget_kex: float,
    every_kex: float,
    overrides: dict,
    oracle_from: str | None,
    outdir: Path,
    device: str | None,
) -> dict:
    """The infonoise-oracle method's scheduler options: its fixed profile, probed from --oracle-from once."""
    if not oracle_from:
        raise click.UsageError("method infonoise-oracle needs --oracle-from SNAPSHOT.pt (a mature run) or a .json")
    try:
        base = resolve_run(family, "infonoise-oracle", seed, budget_kex, every_kex, overrides, {}, device)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    outdir.mkdir(parents=True, exist_ok=True)
    return {"fixed_profile": str(oracle_profile(oracle_from, base, outdir, device).resolve())}


def resolve_runs(
    family: str,
    methods: list[str],
    seeds: list[int],
    budget_kex: float,
    every_kex: float,
    overrides: dict,
    per_method: dict,
    device: str | None,
) -> dict[tuple[str, int], dict]:
    """{(method, seed): resolved options} for every run; an interval shorter than one batch is refused."""
    try:
        runs = {
            (m, s): resolve_run(family, m, s, budget_kex, every_kex, overrides, per_method, device)
            for s in seeds
            for m in methods
        }
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    batch = max(o["batch"] for o in runs.values())
    if every_kex * 1e3 < batch:
        raise click.ClickException(f"--eval-every-kex {every_kex} is less than one batch ({batch} examples)")
    return runs


class Benchmark:
    """The training and evaluation of a benchmark folder: every run trained in segments, each segment's
    snapshot scored, one CSV row per metric; resumable (what the CSV holds is not done again)."""

    def __init__(self, outdir: Path, runs: dict, evaluate: Evaluator, settings: dict, keep_snapshots: bool):
        self.outdir, self.runs, self.evaluate, self.settings = outdir, runs, evaluate, settings
        self.keep_snapshots, self.csv_path = keep_snapshots, outdir / "results.csv"

    @staticmethod
    def key(nimg: int) -> str:
        """A row's target kEx as the CSV writes it."""
        return f"{nimg / 1e3:.6g}"

    def run(self, targets: list[int], methods: list[str], seeds: list[int]) -> None:
        """Every evaluation point not yet in the CSV, point-major: a stopped benchmark has comparable curves
        for every method and seed. A run whose loss turns non-finite stops its curve there."""
        s = self.settings
        done = {(r["method"], int(r["seed"]), r["target_kex"]) for r in common.read_rows(self.csv_path)}
        todo = [(t, sd, m) for t in targets for sd in seeds for m in methods if (m, sd, self.key(t)) not in done]
        click.echo(
            f"{s['family']}: {len(methods)} method(s) × {len(seeds)} seed(s) × {len(targets)} evaluation(s) "
            f"every {s['eval_every_kex']:g} kEx up to {s['budget_kex']:g} kEx; metric {self.evaluate.name}; "
            f"{len(todo)} to do, {len(done)} already in {self.csv_path}"
        )
        diverged = set()
        for target, seed, method in tqdm.tqdm(todo, desc="evaluations", unit="eval"):
            if (method, seed) not in diverged and not self.point(target, seed, method):
                diverged.add((method, seed))
        if diverged:
            click.echo(f"Diverged (non-finite loss; rows stop at the last good evaluation): {sorted(diverged)}")

    def point(self, target: int, seed: int, method: str) -> bool:
        """Train run (method, seed) on to `target` examples and score its snapshot; False if it diverged."""
        import modalities
        from training import training_loop

        opts = self.runs[(method, seed)]
        run_dir = prepare_run(opts, self.outdir / "runs")
        t0 = time.time()
        try:
            segment = {**{k: v for k, v in opts.items() if k != "method"}, "duration": target / 1e6}
            summary = training_loop.run(run_dir, segment, **modalities.for_training(segment))
        except training_loop.NonFiniteLossError as e:
            tqdm.tqdm.write(f"{method} seed {seed} diverged; its curve stops here. {e}")
            return False
        t_train = time.time() - t0
        nimg, step, snapshot = summary["cur_nimg"], summary["global_step"], summary["snapshot"]
        del summary
        if snapshot is None or not target <= nimg < target + opts["batch"]:
            raise click.ClickException(
                f"{run_dir}: expected a snapshot within one batch after {target} examples, "
                f"the run is at {nimg} ({snapshot}); was the folder used with other settings?"
            )
        t0 = time.time()
        scores = self.evaluate(snapshot)
        row = dict(
            method=method,
            seed=seed,
            kex=f"{nimg / 1e3:.6g}",
            target_kex=self.key(target),
            step=step,
            preset=opts["preset"],
            scheduler=opts["scheduler"],
            weighting=opts["weighting"],
            snapshot=str(Path(snapshot).relative_to(self.outdir)),
            train_seconds=f"{t_train:.1f}",
            eval_seconds=f"{time.time() - t0:.1f}",
        )
        self.write_rows(row, scores)
        tqdm.tqdm.write(
            f"{method} seed {seed}: {nimg / 1e3:g} kEx, "
            + ", ".join(f"{name} {v:.4g}" for name, v in scores.items())
            + f" (train {t_train:.0f} s, eval {float(row['eval_seconds']):.0f} s)"
        )
        self.keep_schedule(run_dir, method, seed)
        if not self.keep_snapshots:
            from torch_utils import checkpoint

            for old in checkpoint.list_snapshots(run_dir)[:-1]:
                old.unlink()
        return True

    def write_rows(self, row: dict, scores: dict[str, float]) -> None:
        """One row per metric; a point's rows land together, so a killed benchmark never holds half a point.
        A metric's direction, learned from its first scores, goes into benchmark.json."""
        new = [{**row, "metric": f"{v:.8g}", "metric_name": name} for name, v in scores.items()]
        if len(new) == 1:
            common.append_row(self.csv_path, new[0], FIELDS)
        else:
            common.write_rows(self.csv_path, common.read_rows(self.csv_path) + new, FIELDS)
        if self.evaluate.directions != self.settings.get("metric_directions"):
            self.settings["metric_directions"] = {
                **self.settings.get("metric_directions", {}),
                **self.evaluate.directions,
            }
            save_settings(self.outdir, self.settings)

    def keep_schedule(self, run_dir: Path, method: str, seed: int) -> None:
        """InfoNoise's σ_p history beside the table (schedules.md); lossvar's (a table every step, MBs, no σ_p)
        stays in its run folder."""
        history = run_dir / "schedule.jsonl"
        if history.is_file():
            with history.open() as f:
                first = f.readline()
            if '"sigma_p"' in first:
                with atomic_write(self.outdir / f"{method}-s{seed}-schedule.jsonl") as f:
                    f.write(history.read_text())


if __name__ == "__main__":
    main()
