"""DNA metrics: exact values on small cases; each is zero for identical sets and grows when the motifs
are shuffled away; the classifier and the CLI end to end on a tiny synthetic benchmark."""

import json
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("pyjaspar")

import dna_tool  # noqa: E402
from dna import metrics as dm  # noqa: E402
from dna import synthetic as ds  # noqa: E402
from dna.sequences import read_sequences, to_index, write_fasta  # noqa: E402

BENCH_IDS = [i for ids in ds.CELL_TYPE_MOTIFS.values() for i in ids]


def test_divergences_exact():
    p, q = np.array([0.5, 0.5, 0, 0]), np.array([0, 0, 0.5, 0.5])
    assert dm.js_divergence(p, p) == 0 and dm.total_variation(p, p) == 0
    assert dm.js_divergence(p, q) == pytest.approx(1.0) and dm.total_variation(p, q) == pytest.approx(1.0)
    assert dm.kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(2 / 3))


def test_kmer_frequencies_exact():
    f = dm.kmer_frequencies(to_index(["ACGTA"]), 2)  # AC, CG, GT, TA
    expected = np.zeros(16)
    expected[[0 * 4 + 1, 1 * 4 + 2, 2 * 4 + 3, 3 * 4 + 0]] = 0.25
    np.testing.assert_array_equal(f, expected)
    assert dm.kmer_frequencies(to_index(["AAAA", "AAAA"]), 3)[0] == 1.0


def test_nearest_identity_exact():
    train = to_index(["AAAAAAAAAA", "CCCCCCCCCC", "ACGTACGTAC"])
    gen = to_index(["ACGTACGTAC", "ACGTACGTAA", "GGGGGGGGGG", "AAAAACCCCC"])  # G matches ACGTACGTAC twice
    np.testing.assert_allclose(dm.nearest_identity(gen, train, chunk=2), [1.0, 0.9, 0.2, 0.5])


def test_motif_distance_zero_for_identical_and_laplace_smoothed():
    counts = np.array([[1, 0, 2], [0, 0, 1]])
    assert dm.motif_distance(counts, counts) == dict(kl=0.0, tv=0.0)
    np.testing.assert_allclose(dm.motif_distribution(counts), np.array([2, 1, 3]) / 6)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A tiny benchmark, a classifier trained on it, the test split as FASTA, and its base-shuffled copy."""
    d = tmp_path_factory.mktemp("dna")
    ds.make_benchmark(d / "train.tsv", per_class=150, test_per_class=75, seed=0)
    runner = CliRunner()
    r = runner.invoke(
        dna_tool.cli,
        [
            "train-classifier",
            "--train",
            str(d / "train.tsv"),
            "--test",
            str(d / "train-test.tsv"),
            "--out",
            str(d / "clf.pt"),
            "--epochs",
            "8",
            "--batch",
            "32",
            "--seed",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    rec = read_sequences(d / "train-test.tsv")
    write_fasta(d / "same.fasta", rec.seqs, labels=rec.labels)
    rnd = random.Random(0)
    names = sorted(set(rec.labels))  # integer labels, as the training loop writes them
    write_fasta(
        d / "shuffled.fasta",
        ["".join(rnd.sample(s, len(s))) for s in rec.seqs],
        labels=[names.index(label) for label in rec.labels],
    )
    return d


def test_classifier_is_reproducible_and_loads_weights_only(bench):
    data = torch.load(bench / "clf.pt", weights_only=True)
    assert set(data) == {"state_dict", "config", "info"} and data["info"]["label_names"] == sorted(ds.CELL_TYPE_MOTIFS)
    assert data["info"]["test_accuracy"] > 0.4  # 4 classes: chance is 0.25
    runner = CliRunner()
    r = runner.invoke(
        dna_tool.cli,
        [
            "train-classifier",
            "--train",
            str(bench / "train.tsv"),
            "--out",
            str(bench / "clf2.pt"),
            "--epochs",
            "8",
            "--batch",
            "32",
            "--seed",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    again = torch.load(bench / "clf2.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, again[k]) for k, v in data["state_dict"].items())


def test_metrics_zero_for_identical_sets_and_grow_when_motifs_are_shuffled(bench):
    kw = dict(
        reference=str(bench / "train-test.tsv"),
        train=str(bench / "train.tsv"),
        classifier=str(bench / "clf.pt"),
        motif_ids=BENCH_IDS,
        log=lambda *a: None,
    )
    same = dm.compute_metrics(str(bench / "same.fasta"), **kw)
    shuf = dm.compute_metrics(str(bench / "shuffled.fasta"), **kw)
    assert set(same["motif"]["per_group"]) == {"all", *ds.CELL_TYPE_MOTIFS}
    assert same["motif"]["mean_kl"] == 0 and all(v == dict(kl=0.0, tv=0.0) for v in same["motif"]["per_group"].values())
    assert same["kmer"]["mean_js"] == 0 and same["frechet"]["value"] == pytest.approx(0, abs=1e-6)
    assert same["frechet"]["generated_label_accuracy"] == pytest.approx(same["frechet"]["classifier_test_accuracy"])
    # shuffling each sequence's bases keeps its composition but destroys motifs and the CpG depletion
    assert shuf["motif"]["mean_kl"] > 0.1 > 3 * same["baseline"]["motif"]["all"]["kl"]
    assert all(shuf["motif"]["per_group"][c]["tv"] > same["baseline"]["motif"][c]["tv"] for c in ds.CELL_TYPE_MOTIFS)
    for k in "3456":  # k = 6 has 4,096 bins for ~60k words here: the baseline's sampling noise is larger
        assert shuf["kmer"][k]["js"] > 2 * same["baseline"]["kmer"][k]["js"]
    assert shuf["kmer"]["3"]["js"] > 10 * same["baseline"]["kmer"]["3"]["js"]
    assert shuf["frechet"]["value"] > 5 * max(same["baseline"]["frechet"], 0.1)
    assert shuf["frechet"]["generated_label_accuracy"] < 0.45
    # the reference is not memorised; the identical set is as far from the training set as the reference
    assert same["nearest_train_identity"]["generated"] == same["nearest_train_identity"]["reference"]
    assert same["nearest_train_identity"]["generated"]["max"] < 0.6


def test_metrics_cli_writes_json_and_detects_memorisation(bench):
    rec = read_sequences(bench / "train.tsv")
    write_fasta(bench / "copied.fasta", rec.seqs[:40])  # unlabelled copies of training sequences
    out = bench / "m.json"
    r = CliRunner().invoke(
        dna_tool.cli,
        [
            "metrics",
            "--generated",
            str(bench / "copied.fasta"),
            "--reference",
            str(bench / "train-test.tsv"),
            "--train",
            str(bench / "train.tsv"),
            "--motifs",
            ",".join(BENCH_IDS),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["nearest_train_identity"]["generated"]["frac_eq_1"] == 1.0 and "frechet" not in m
    assert list(m["motif"]["per_group"]) == ["all"] and m["motif"]["num_motifs"] == 8 and m["n_generated"] == 40


def test_metrics_reject_unknown_labels(tmp_path, bench):
    write_fasta(tmp_path / "g.fa", ["A" * 200], labels=["liver"])
    with pytest.raises(ValueError, match=r"labels \['liver'\] are neither cell types"):
        dm.compute_metrics(
            str(tmp_path / "g.fa"),
            str(bench / "train-test.tsv"),
            str(bench / "train.tsv"),
            motif_ids=BENCH_IDS[:1],
            log=lambda *a: None,
        )


def test_metrics_compare_sequences_of_one_length_only(tmp_path, bench):
    """A generated set, or a classifier, of another length than the reference is refused naming the file:
    k-mer shares and positions of sequences of other lengths would be numbers, and meaningless ones."""
    rec = read_sequences(bench / "train-test.tsv")
    write_fasta(tmp_path / "short.fa", [s[:100] for s in rec.seqs[:20]])
    kw = dict(motif_ids=BENCH_IDS[:1], log=lambda *a: None)
    with pytest.raises(ValueError, match=r"short\.fa: sequences of 100 bp but the reference .* has 200 bp"):
        dm.compute_metrics(str(tmp_path / "short.fa"), str(bench / "train-test.tsv"), str(bench / "train.tsv"), **kw)
    write_fasta(tmp_path / "ref100.fa", [s[:100] for s in rec.seqs[20:40]])
    train100 = [s[:100] for s in read_sequences(bench / "train.tsv").seqs[:40]]
    write_fasta(tmp_path / "train100.fa", train100)
    with pytest.raises(ValueError, match=r"clf\.pt: trained on sequences of 200 bp, these have 100 bp"):
        dm.compute_metrics(
            str(tmp_path / "short.fa"),
            str(tmp_path / "ref100.fa"),
            str(tmp_path / "train100.fa"),
            classifier=str(bench / "clf.pt"),
            **kw,
        )
