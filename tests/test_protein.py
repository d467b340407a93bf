"""Protein, the modality added as one file (modalities/protein.py) plus one registry line, end to end on CPU:
the synthetic protein-like set, the choice from the data set, train.py with no architecture named, FASTA
samples, generate.py, the k-mer metric of the twenty amino acids, a harness table; and the one-line error for
a letter outside the alphabet."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import generate
import modalities
import train
from benchmarks import common
from benchmarks import time_to_target as ttt
from modalities.dna import DNA
from modalities.protein import AMINO_ACIDS, CLASS_MOTIFS, PROTEIN, make_synthetic, synthetic_set

NET = ["--cbase", "8", "--cres", "1,2", "--net-opt", "num_blocks=1", "--net-opt", "dropout=0.0"]


def invoke(command, *args):
    r = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
    return r


@pytest.fixture(scope="module")
def protein_set(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("protein") / "prot.fasta", per_class=8, length=32, seed=0)


def test_synthetic_set_plants_each_class_motifs(protein_set):
    seqs, labels = synthetic_set(50, 32, seed=3, mutation=0.0)
    assert len(seqs) == 150 and all(len(s) == 32 and set(s) <= set(AMINO_ACIDS) for s in seqs)
    for s, label in zip(seqs, labels):
        assert all(m in s for m in CLASS_MOTIFS[label])  # unmutated: every motif of its class, intact
    assert synthetic_set(5, 32, seed=1) == synthetic_set(5, 32, seed=1) != synthetic_set(5, 32, seed=2)
    with pytest.raises(ValueError, match="--length 10: the motifs of a class need 17 residues"):
        synthetic_set(5, 10)
    train_path, test_path = protein_set
    assert test_path.name == "prot-test.fasta" and test_path.read_text().count(">") == 2 * len(CLASS_MOTIFS)


def test_protein_is_chosen_from_the_data_set(protein_set, tmp_path):
    train_path, _ = protein_set
    assert modalities.for_data(train_path) is PROTEIN
    dna = tmp_path / "dna.fasta"
    dna.write_text(">a\nACGTNACGTA\n>b\nGGCATTACAA\n")  # amino acids too (A, C, G, T, N), but DNA first
    assert modalities.for_data(dna) is DNA
    ds = modalities.open_dataset(train_path, use_labels=True)
    assert ds.data_shape == (20, 32) and ds.label_names == sorted(CLASS_MOTIFS)
    assert PROTEIN.decode(torch.as_tensor(ds[0][0])) == [ds.sequences[0]]
    assert modalities.for_shape((20, 32)) is PROTEIN


def test_a_letter_outside_the_alphabet_is_one_line_naming_file_line_and_letter(tmp_path):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">p1|x\nMKVLAAGLLS\n>p2|x\nMKVLJAGLLS\n")
    with pytest.raises(ValueError) as e:
        modalities.open_dataset(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}:4: invalid character 'J' at column 5;") and "\n" not in msg
    r = invoke(train.main, "--outdir", tmp_path / "runs", "--data", bad, *NET, "--duration", "0.00001")
    assert r.exit_code != 0 and f"Error: {bad}:4: invalid character 'J'" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_train_sample_and_score(protein_set, tmp_path):
    """train.py picks the sequence U-Net itself and writes FASTA of amino acids at the snapshot; generate.py
    writes FASTA; the harness metric scores the snapshot against the held-out split."""
    train_path, _ = protein_set
    args = ["--outdir", tmp_path / "runs", "--data", train_path, "--cond", *NET, "--batch", "8"]
    args += ["--duration", "0.000032", "--tick", "0.032", "--sample-grid", "6", "--desc", "prot"]
    r = invoke(train.main, *args)
    assert r.exit_code == 0, r.output
    run = tmp_path / "runs" / "prot"
    opts = json.loads((run / "training_options.json").read_text())
    assert opts["arch"] == "dnaunet" and opts["network_kwargs"]["data_shape"] == [20, 32]
    fasta = (run / "samples-000000.fasta").read_text().splitlines()
    assert [h.split("|")[1] for h in fasta[0::2]] == sorted(CLASS_MOTIFS) * 2
    assert all(len(s) == 32 and set(s) <= set(AMINO_ACIDS) for s in fasta[1::2])

    snapshot = sorted(run.glob("network-snapshot-*.pt"))[-1]
    r = invoke(generate.main, "--network", snapshot, "--outdir", tmp_path / "gen", "--seeds", "0-3", "--steps", 3)
    assert r.exit_code == 0, r.output
    generated = (tmp_path / "gen" / "samples.fasta").read_text().splitlines()
    assert generated[0].startswith(">seed000000|") and set("".join(generated[1::2])) <= set(AMINO_ACIDS)

    evaluation = modalities.Evaluation(list(range(8)), 3, "edm", "heun", 8, "cpu", tmp_path)
    metric = PROTEIN.harness_metric(modalities.open_dataset(train_path), opts, evaluation)
    score = metric.score(str(snapshot))
    assert metric.name == "protein_kmer_js_vs_test" and 0 < score < 1


def test_harness_table_on_the_protein_set(protein_set, tmp_path):
    """time_to_target on a family of the user's own presets: rows and a table of protein_kmer_js_vs_test."""
    train_path, _ = protein_set
    folder = tmp_path / "presets"
    folder.mkdir()
    recipe = "network_kwargs: {model_channels: 8, channel_mult: [1, 2], num_blocks: 1, dropout: 0.0}\n"
    recipe += f"data: {train_path}\nweighting: unit\nendpoint: discrete\nbatch: 8\nlr_rampup: 0\n"
    (folder / "prot-loguniform.yaml").write_text(recipe + "scheduler: loguniform\n")
    (folder / "prot-infonoise.yaml").write_text(recipe + "scheduler: infonoise\n")
    out = tmp_path / "bench"
    args = ["--family", folder / "prot", "--methods", "loguniform,infonoise", "--seeds", "0", "--budget-kex", "0.032"]
    args += ["--eval-every-kex", "0.016", "--eval-samples", "8", "--eval-steps", "2", "--eval-batch", "8"]
    args += ["--method-opt", "infonoise:scheduler_kwargs.warmup_steps=1", "--outdir", out]
    r = invoke(ttt.main, *args)
    assert r.exit_code == 0, r.output
    rows = common.read_rows(out / "results.csv")
    assert {(row["method"], row["target_kex"], row["metric_name"]) for row in rows} == {
        (m, t, "protein_kmer_js_vs_test") for m in ("loguniform", "infonoise") for t in ("0.016", "0.032")
    }
    table = (out / "table.md").read_text()
    assert "## protein_kmer_js_vs_test" in table and "| InfoNoise | prot-infonoise |" in table
