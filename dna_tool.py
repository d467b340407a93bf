"""DNA data and evaluation commands (offline).

  make-benchmark    write the SYNTHETIC JASPAR-planted benchmark (train TSV, test TSV, JSON recipe)
  train-classifier  train the small cell-type CNN whose features the Fréchet metric uses
  metrics           motif-content KL/TV, k-mer JS, classifier Fréchet distance, nearest-train identity

Examples:
  python dna_tool.py make-benchmark --out data/dna-synth.tsv --per-class 2500 --length 200 --seed 0
  python dna_tool.py train-classifier --train data/dna-synth.tsv --test data/dna-synth-test.tsv \\
      --out data/dna-synth-classifier.pt
  python dna_tool.py metrics --generated run/samples.fasta --reference data/dna-synth-test.tsv \\
      --train data/dna-synth.tsv --classifier data/dna-synth-classifier.pt --out run/dna-metrics.json
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from torch_utils.checks import Float, Int, check_memory
from torch_utils.files import atomic_write, check_writable

SEED = Int(0, 2**32 - 1)
MAX_LENGTH = 1_000_000  # bases per sequence
# What one base of the synthetic set costs while it is made and written (strings, one-hot scans, the table).
BYTES_PER_BASE = 64


@click.group()
def cli():
    """DNA sequence data sets and metrics."""


@cli.command("make-benchmark")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Training-split TSV; the test split goes to <stem>-test.tsv.",
)
@click.option("--per-class", required=True, type=Int(1), help="Training sequences per cell type.")
@click.option(
    "--test-per-class",
    type=Int(1),
    default=None,
    help="Test sequences per cell type [default: per-class/4].",
)
@click.option("--length", type=Int(1, MAX_LENGTH), default=200, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--release", default=None, help="JASPAR release shipped by pyjaspar [default: the pinned one].")
def make_benchmark(out, per_class, test_per_class, length, seed, release):
    """Write the synthetic cell-type benchmark (real JASPAR motifs planted into a Markov background)."""
    from dna import synthetic as dna_synthetic

    kw = dict(release=release) if release else {}
    try:
        check_writable(out, "--out table")
        n = len(dna_synthetic.CELL_TYPE_MOTIFS) * (per_class + (test_per_class or max(per_class // 4, 1)))
        check_memory(
            n * length * BYTES_PER_BASE,
            f"--per-class {per_class} x --length {length} ({n:,} sequences)",
            "Lower --per-class or --length.",
        )
        info = dna_synthetic.make_benchmark(out, per_class, test_per_class, length, seed, **kw)
    except ValueError as e:
        raise click.ClickException(str(e))
    n_types = len(info["cell_types"])
    click.echo(
        f"wrote {info['train']} ({n_types * per_class} seqs), {info['test']} "
        f"({n_types * info['test_per_class']} seqs), {Path(out).with_suffix('.json')}  "
        f"[SYNTHETIC; {info['jaspar_release']}; "
        f"GC {info['stats']['train_gc']:.3f}, CpG o/e {info['stats']['train_cpg_oe']:.2f}]"
    )


@cli.command("train-classifier")
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--test",
    "test_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Held-out labelled set for the reported accuracy.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Weights (.pt: plain state dict + config).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--epochs", type=Int(1, 10_000), default=10, show_default=True)
@click.option("--batch", type=Int(1, 2**20), default=128, show_default=True)
@click.option("--lr", type=Float(0, 1, lo_open=True), default=2e-3, show_default=True)
@click.option("--threads", type=Int(1, 1024), default=None, help="torch CPU threads.")
def train_classifier(train_path, test_path, out, seed, epochs, batch, lr, threads):
    """Train the Fréchet-feature classifier on the training split."""
    from dna.metrics import save_classifier
    from dna.metrics import train_classifier as train_fn
    from dna.sequences import SequenceDataset

    if threads:
        torch.set_num_threads(threads)
    try:
        check_writable(out, "--out classifier")
        train = SequenceDataset(train_path, length=None, use_labels=True)
        test = (
            SequenceDataset(test_path, length=train.seq_length, use_labels=True, label_names=train.label_names)
            if test_path
            else None
        )
    except ValueError as e:
        raise click.ClickException(str(e))
    model, info = train_fn(train, test, seed=seed, epochs=epochs, batch=batch, lr=lr, log=click.echo)
    save_classifier(out, model, info)
    acc = f", test accuracy {info['test_accuracy']:.4f}" if "test_accuracy" in info else ""
    click.echo(f"wrote {out}: train accuracy {info['train_accuracy']:.4f}{acc}")


@cli.command("metrics")
@click.option(
    "--generated",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="FASTA (labels '>id|celltype' or class indices '>id|2', optional) or TSV.",
)
@click.option(
    "--reference", required=True, type=click.Path(exists=True, dir_okay=False), help="Held-out sequences (test split)."
)
@click.option(
    "--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Training split."
)
@click.option(
    "--classifier",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="From train-classifier; enables the Fréchet distance.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="metrics JSON")
@click.option(
    "--motifs", default="all", show_default=True, help="'all' CORE vertebrate motifs, or comma-separated JASPAR IDs."
)
@click.option(
    "--pvalue", type=Float(0, 1, lo_open=True), default=1e-4, show_default=True, help="Per-position motif-hit p-value."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="For the baseline's training subset.")
@click.option("--threads", type=Int(1, 1024), default=None, help="torch CPU threads.")
def metrics(generated, reference, train_path, classifier, out, motifs, pvalue, seed, threads):
    """Compare generated sequences with held-out ones; write a JSON."""
    from dna.metrics import compute_metrics

    if threads:
        torch.set_num_threads(threads)
    ids = None if motifs == "all" else [m.strip() for m in motifs.split(",") if m.strip()]
    if ids == []:  # no motif: the motif metrics would be 0 without measuring anything
        raise click.BadParameter(
            f"{motifs!r} names no motif; give 'all' or comma-separated JASPAR IDs", param_hint="--motifs"
        )
    try:
        check_writable(out, "--out JSON")
        result = compute_metrics(generated, reference, train_path, classifier, ids, pvalue, seed=seed, log=click.echo)
    except ValueError as e:
        raise click.ClickException(str(e))
    with atomic_write(out) as f:
        f.write(json.dumps(result, indent=2) + "\n")
    fd = f", Fréchet {result['frechet']['value']:.3f}" if "frechet" in result else ""
    click.echo(
        f"wrote {out}: motif mean KL {result['motif']['mean_kl']:.4f}, k-mer mean JS "
        f"{result['kmer']['mean_js']:.4f}{fd}, nearest-train identity "
        f"{result['nearest_train_identity']['generated']['mean']:.3f}"
    )


if __name__ == "__main__":
    cli()
