"""DNA encoding and loaders: exact round trips, the documented file conventions, one-line errors."""

import gzip

import numpy as np
import pytest
import torch

from dna.sequences import (
    SequenceDataset,
    decode,
    encode,
    index_to_onehot,
    read_sequences,
    reverse_complement,
    write_fasta,
)


def random_seqs(n, L, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), L)) for _ in range(n)]


def test_one_hot_round_trip_and_encoding():
    seqs = random_seqs(50, 37)
    x = encode(seqs)
    assert x.shape == (50, 4, 37) and x.dtype == np.float32
    assert set(np.unique(x)) == {-1.0, 1.0} and (x.sum(axis=1) == -2).all()  # one +1, three −1 per position
    assert decode(x) == seqs
    assert decode(torch.from_numpy(x)) == seqs and decode(x[3]) == [seqs[3]]
    np.testing.assert_array_equal(encode(["ACGT"])[0], 2 * np.eye(4, dtype=np.float32) - 1)  # channel order A,C,G,T
    noisy = x + 0.9 * np.random.default_rng(1).uniform(-1, 1, x.shape).astype(np.float32)
    assert decode(noisy) == seqs  # argmax survives noise below the ±1 gap
    assert encode(["acgt"]).tolist() == encode(["ACGT"]).tolist()
    assert reverse_complement("AACGTT") == "AACGTT" and reverse_complement("AAAC") == "GTTT"
    x = encode(["AAACGT"])[0]
    assert decode(x[::-1, ::-1].copy()) == [reverse_complement("AAACGT")]  # flipping both axes = reverse complement


def test_fasta_round_trip_with_labels(tmp_path):
    seqs = random_seqs(6, 20)
    names = ["K562", "HepG2", "K562", "hESC", "GM12878", "HepG2"]
    write_fasta(tmp_path / "a.fasta", seqs, labels=names)
    ds = SequenceDataset(tmp_path / "a.fasta", length=20, use_labels=True)
    assert ds.label_names == ["GM12878", "HepG2", "K562", "hESC"] and ds.label_dim == 4 and ds.has_labels
    assert ds.sequences == seqs and ds.data_shape == (4, 20) and ds.is_binary and ds.name == "a" and len(ds) == 6
    x, y = ds[3]
    assert x.dtype == np.float32 and x.shape == (4, 20) and decode(x) == [seqs[3]]
    assert y.tolist() == [0, 0, 0, 1]
    # model-space arrays and integer labels with label_names (what generate.py writes)
    write_fasta(tmp_path / "b.fa", encode(seqs), labels=[2, 1, 2, 3, 0, 1], label_names=ds.label_names)
    assert read_sequences(tmp_path / "b.fa").labels == names
    write_fasta(tmp_path / "c.fa", torch.from_numpy(encode(seqs)), labels=torch.eye(4)[[2, 1, 2, 3, 0, 1]])
    assert read_sequences(tmp_path / "c.fa").labels == ["2", "1", "2", "3", "0", "1"]
    unlabelled = SequenceDataset(tmp_path / "a.fasta", length=20)
    assert unlabelled[0][1].shape == (0,) and unlabelled.label_dim == 0 and not unlabelled.has_labels


def test_fasta_header_conventions_and_multiline(tmp_path):
    p = tmp_path / "h.fa"
    p.write_text(">s1 label=K562 extra\nACGT\nACGT\n>s2|HepG2\nAAAA\nCCCC\n>chr1_5_TAG_hESC\nGGGGTTTT\n")
    rec = read_sequences(p, want_labels=True)
    assert rec.seqs == ["ACGTACGT", "AAAACCCC", "GGGGTTTT"] and rec.labels == ["K562", "HepG2", "hESC"]
    assert rec.lines == [1, 4, 7]


def test_tsv_dna_diffusion_format(tmp_path):
    seqs = random_seqs(5, 12, seed=2)
    rows = ["dhs_id\tchr\tsequence\tTAG\tcomponent"] + [
        f"d{i}\tchr{i + 1}\t{s}\t{t}\t{i}"
        for i, (s, t) in enumerate(zip(seqs, ["K562", "HEPG2", "K562", "GM12878", "hESCT0"]))
    ]
    p = tmp_path / "dd.txt"
    p.write_text("\n".join(rows) + "\n")
    ds = SequenceDataset(p, length=None, use_labels=True)
    assert ds.sequences == seqs and ds.label_names == ["GM12878", "HEPG2", "K562", "hESCT0"]
    assert SequenceDataset(p, length=12, split="test").sequences == [seqs[0]]  # chr1 = test
    assert SequenceDataset(p, length=12, split="valid").sequences == [seqs[1]]  # chr2 = valid
    assert SequenceDataset(p, length=12, split="train").sequences == seqs[2:]
    fixed = SequenceDataset(p, length=12, use_labels=True, label_names=["K562", "HEPG2", "GM12878", "hESCT0"])
    assert fixed[0][1].tolist() == [1, 0, 0, 0]
    gz = tmp_path / "dd.tsv.gz"
    with gzip.open(gz, "wt") as f:
        f.write("sequence\tcell_type\tsplit\n" + "".join(f"{s}\tK562\ttrain\n" for s in seqs))
    assert SequenceDataset(gz, length=12, use_labels=True).sequences == seqs
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(seqs) + "\n")
    assert SequenceDataset(plain, length=12).sequences == seqs


def test_max_size_is_a_seeded_subset(tmp_path):
    seqs = random_seqs(40, 8, seed=3)
    write_fasta(tmp_path / "m.fa", seqs)
    a = SequenceDataset(tmp_path / "m.fa", length=8, max_size=10, random_seed=1)
    b = SequenceDataset(tmp_path / "m.fa", length=8, max_size=10, random_seed=1)
    c = SequenceDataset(tmp_path / "m.fa", length=8, max_size=10, random_seed=2)
    assert len(a) == 10 and a.sequences == b.sequences != c.sequences and set(a.sequences) <= set(seqs)


def test_open_dataset_dispatches_sequence_files(tmp_path):
    import modalities
    from dna.sequences import DNA
    from modalities.dna import DNA as DNA_MODALITY

    write_fasta(tmp_path / "o.fasta", random_seqs(4, 200), labels=["a", "b", "a", "b"])
    ds = modalities.open_dataset(tmp_path / "o.fasta", use_labels=True, max_size=None, random_seed=0)
    assert modalities.for_data(tmp_path / "o.fasta") is DNA_MODALITY
    assert ds.alphabet is DNA and ds.data_shape == (4, 200) and ds.label_dim == 2


@pytest.mark.parametrize(
    "text,kw,match",
    [
        (">a|K\nACGT\n>b|K\nACXT\n", {}, r":4: invalid character 'X' at column 3.*fix or remove"),
        (">a|K\nACGT\n>b|K\nACG\n", dict(length=4), r":3: sequence has length 3, expected 4; trim or pad"),
        (">a|K\nACGT\n>b|K\nACNT\n", dict(length=4), r":3: invalid letter 'N' at position 3.*skip_unknown=True"),
        (
            ">a|K\nACGT\n>b\nACGT\n",
            dict(length=4, use_labels=True),
            r":3: no class label in header '>b'.*'>id\|label'",
        ),
        ("", {}, r": the file is empty"),
        ("\n\n", {}, r": the file is empty"),
        ("sequence\tcell_type\n", {}, r": no sequences found"),
        (
            "sequence\tother\nACGT\tx\n",
            dict(length=4, use_labels=True),
            r":1: labels were requested but the header has no label column",
        ),
        ("sequence\tcell_type\nACGT\tK\nACGT\n", dict(length=4), r":3: 1 fields but the header has 2"),
        ("sequence\tcell_type\nACGT\tK\nAC-T\tK\n", dict(length=4), r":3: invalid letter '-' at position 3"),
        ("seq\tlabel\nACGT\tK\n", {}, r":1: not FASTA.*no 'sequence' column"),
        ("ACGT\n>a\nACGT\n", {}, r":2: not a DNA sequence in a one-sequence-per-line file"),
        (">a\n\n>b\nACGT\n", {}, r":1: FASTA record .* has no sequence"),
        ("sequence\tsplit\nACGT\ttrain\n", dict(length=4, split="test"), r": no rows with split 'test'"),
    ],
)
def test_loader_errors_name_file_line_and_fix(tmp_path, text, kw, match):
    p = tmp_path / "bad.fa"
    p.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        SequenceDataset(p, **kw)
    msg = str(e.value)
    assert msg.startswith(str(p)) and "\n" not in msg


def test_skip_unknown_drops_records_with_n(tmp_path):
    p = tmp_path / "n.fa"
    p.write_text(">a|K\nACGT\n>b|H\nANGT\n>c|H\nTTTT\n")
    ds = SequenceDataset(p, length=4, use_labels=True, skip_unknown=True)
    assert ds.sequences == ["ACGT", "TTTT"] and ds.label_names == ["H", "K"]


def test_index_to_onehot_matches_encode():
    idx = np.random.default_rng(0).integers(0, 4, size=(3, 9))
    np.testing.assert_array_equal(index_to_onehot(idx), encode(["".join("ACGT"[i] for i in r) for r in idx]))
