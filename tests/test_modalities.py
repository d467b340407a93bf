"""The modality seam: the kind of data is chosen from the data set, each kind writes its own samples, and the
training loop runs on whatever data set and sample writer it is handed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import modalities
from datafiles.sequences import Alphabet
from modalities.dna import DNA
from modalities.images import IMAGES
from modalities.sequences import SequenceModality
from tests.conftest import write_image_dataset
from training import options, training_loop


def _fasta(path: Path, seqs: list[str]) -> Path:
    path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    return path


def test_the_data_set_chooses_its_modality(tmp_path):
    zip_path = write_image_dataset(tmp_path / "d.zip")[0]
    dna = _fasta(tmp_path / "d.fasta", ["ACGTNACG", "TTGACCAA"])
    assert modalities.for_data(zip_path) is IMAGES
    assert modalities.for_data(tmp_path / "folder") is IMAGES  # the image reader says it is missing
    assert modalities.for_data(dna) is DNA
    table = tmp_path / "t.tsv"
    table.write_text("cell_type\tsequence\nK\tACGTACGT\n")  # only the sequence column counts
    assert modalities.for_data(table) is DNA and modalities.open_dataset(table).sequences == ["ACGTACGT"]
    (tmp_path / "odd.tsv").write_text("sequence,label\nACGT,x\n")  # not a tab table: chosen, then named
    with pytest.raises(ValueError, match=r"odd.tsv:1: not FASTA \(no '>'\) and the header row has no 'sequence'"):
        modalities.open_dataset(tmp_path / "odd.tsv")
    assert modalities.for_data(tmp_path / "missing.fa") is DNA  # whose reader says it is missing
    with pytest.raises(FileNotFoundError, match="missing.fa: sequence file not found"):
        modalities.open_dataset(tmp_path / "missing.fa")
    assert modalities.for_shape((1, 8, 8)) is IMAGES and modalities.for_shape((4, 16)) is DNA
    with pytest.raises(ValueError, match=r"no modality generates data of shape \[7, 16\]"):
        modalities.for_shape((7, 16))


AB = SequenceModality("ab", Alphabet("AB", "AB"), kmer_ks=(1,), held_out=())  # a made-up alphabet


def test_a_better_fitting_alphabet_wins_and_ties_go_to_the_first(tmp_path, monkeypatch):
    """One more registry line: its alphabet takes the files it covers better; DNA keeps the ones both cover."""
    ab = AB
    monkeypatch.setattr(modalities, "REGISTRY", (*modalities.REGISTRY, "tests.test_modalities:AB"))
    assert modalities.for_data(_fasta(tmp_path / "ab.fa", ["ABBA", "BAAB"])) is ab
    assert modalities.for_data(_fasta(tmp_path / "a.fa", ["AAAA", "AAAA"])) is DNA
    ds = modalities.open_dataset(tmp_path / "ab.fa")
    assert ds.data_shape == (2, 4) and ab.decode(torch.as_tensor(np.stack([ds[0][0], ds[1][0]]))) == ["ABBA", "BAAB"]


@pytest.mark.parametrize("kind", ["images", "dna"])
def test_each_modality_writes_its_own_snapshot_samples(kind, tmp_path):
    from models.networks import build_network

    if kind == "images":
        modality, shape, net_kw = IMAGES, (1, 8, 8), dict(arch="ddpmpp", model_channels=8)
        net_kw.update(channel_mult=[1, 2], num_blocks=1, attn_resolutions=[])
    else:
        modality, shape = DNA, (4, 16)
        net_kw = dict(arch="dnaunet", model_channels=8, channel_mult=[1, 2], num_blocks=1)
    net = build_network(data_shape=shape, label_dim=2, **net_kw).eval()
    path = modality.write_snapshot_samples(net, tmp_path / "samples", 4, 0, torch.device("cpu"), ["a", "b"])
    assert modality.write_snapshot_samples(net, tmp_path / "none", 0, 0, torch.device("cpu")) is None
    if kind == "images":
        assert path.name == "samples.png" and path.read_bytes()[:4] == b"\x89PNG"
    else:
        text = path.read_text().splitlines()
        assert path.name == "samples.fasta" and [t for t in text if t.startswith(">")] == [
            ">seq0|a",
            ">seq1|b",
            ">seq2|a",
            ">seq3|b",
        ]
        assert all(set(t) <= set("ACGT") and len(t) == 16 for t in text[1::2])


def test_the_loop_runs_on_what_it_is_handed(tmp_path):
    """training_loop.run with the data set and a sample writer of the caller's own: no modality involved."""
    data = write_image_dataset(tmp_path / "d.zip", labels=False)[0]
    flags = dict(data=str(data), batch=8, duration=16e-6, tick=0.008, snap=1, sample_grid=3, desc="seam")
    flags["network_kwargs"] = dict(model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[])
    opts = options.resolve(None, flags)
    assert opts["arch"] == "ddpmpp"  # the images' network: no option names one
    run_dir = options.prepare_run_dir(tmp_path / "runs", opts)
    (run_dir / "training_options.json").write_text(json.dumps(opts))
    calls = []

    def writer(net, stem, count, seed, device, label_names):
        calls.append((stem.name, count, seed, label_names))
        return None

    summary = training_loop.run(run_dir, opts, data=modalities.open_dataset(data), write_samples=writer)
    assert summary["done"] and calls == [("samples-000000", 3, 0, None)] * 2  # a snapshot per tick
