"""JASPAR motifs, the log-odds scanner (against brute force) and the synthetic benchmark generator."""

import itertools
import json

import numpy as np
import pytest

pytest.importorskip("pyjaspar")

from dna import synthetic as ds  # noqa: E402
from dna.motifs import JASPAR_RELEASE, MotifScanner, gc_background, load_motifs, pvalue_threshold, score_distribution  # noqa: E402
from dna.sequences import SequenceDataset, encode, reverse_complement  # noqa: E402

BENCH_IDS = [i for ids in ds.CELL_TYPE_MOTIFS.values() for i in ids]
BG = gc_background(0.41)


def test_benchmark_motifs_are_the_documented_jaspar_matrices():
    names = {m.matrix_id: m.name for m in load_motifs(BENCH_IDS)}
    assert JASPAR_RELEASE == "JASPAR2024"
    assert names == {
        "MA0035.5": "GATA1",
        "MA0140.3": "GATA1::TAL1",
        "MA0114.5": "HNF4A",
        "MA0047.4": "FOXA2",
        "MA0142.1": "Pou5f1::Sox2",
        "MA0143.5": "SOX2",
        "MA0154.5": "EBF1",
        "MA0080.7": "Spi1",
    }
    with pytest.raises(ValueError, match="MA9999.1.*not in JASPAR2024"):
        load_motifs(["MA9999.1"])


def brute_force_scores(seq: str, log_odds: np.ndarray) -> tuple[list, list]:
    """Forward and reverse-strand log-odds of every full window, in float64, one window at a time."""
    W, fwd, rev = log_odds.shape[1], [], []
    for p in range(len(seq) - W + 1):
        w = seq[p : p + W]
        fwd.append(sum(log_odds["ACGT".index(b), j] for j, b in enumerate(w)))
        rev.append(sum(log_odds["ACGT".index(b), j] for j, b in enumerate(reverse_complement(w))))
    return fwd, rev


def test_scanner_equals_brute_force_log_odds():
    motifs = load_motifs(["MA0035.5", "MA0154.5", "MA0140.3"])  # 7, 11 and 17 bp; EBF1 is palindromic
    scanner = MotifScanner(motifs, BG, pvalue=1e-2, group_size=2)  # two width groups
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 40, p=BG)) for _ in range(12)]
    scores = scanner.scores(encode(seqs)).double().numpy()  # [N, M, 2, L]
    expected_counts = np.zeros([len(seqs), len(motifs)], dtype=np.int64)
    for n, s in enumerate(seqs):
        for k, m in enumerate(motifs):
            fwd, rev = brute_force_scores(s, m.log_odds(BG))
            W = m.width
            np.testing.assert_allclose(scores[n, k, 0, : len(fwd)], fwd, atol=1e-4)
            np.testing.assert_allclose(scores[n, k, 1, : len(rev)], rev, atol=1e-4)
            assert np.isneginf(scores[n, k, :, 40 - W + 1 :]).all()
            expected_counts[n, k] = sum(v >= scanner.thresholds[k] for v in fwd + rev)
    np.testing.assert_array_equal(scanner.count(encode(seqs), batch=5), expected_counts)
    assert expected_counts.sum() > 0  # the comparison covered hits, not just misses


def test_pvalue_threshold_matches_enumeration():
    """GATA1 (7 bp): the score distribution over all 4^7 words under the background."""
    lo = load_motifs(["MA0035.5"])[0].log_odds(BG)
    words = np.array(list(itertools.product(range(4), repeat=7)))
    score = lo[words, np.arange(7)].sum(axis=1)
    prob = BG[words].prod(axis=1)
    for p in (1e-2, 1e-3):
        t = pvalue_threshold(lo, BG, p)
        assert prob[score >= t + 0.004].sum() <= p  # tail above the threshold is within p
        nxt = score[score < t - 0.004].max()  # the next lower word would exceed p
        assert prob[score >= nxt].sum() > p
    grid, pmf = score_distribution(lo, BG)
    assert abs(pmf.sum() - 1) < 1e-12 and abs((grid * pmf).sum() - (score * prob).sum()) < 0.01


def test_background_has_the_documented_composition():
    T, pi = ds.markov_background()
    np.testing.assert_allclose(T.sum(axis=1), 1)
    np.testing.assert_allclose(pi @ T, pi, atol=1e-12)
    assert abs(pi[1] + pi[2] - ds.GC) < 1e-9 and abs(pi[0] - pi[3]) < 1e-9
    assert abs(T[1, 2] / pi[2] - ds.CPG_OE) < 1e-9  # CpG observed/expected


def test_generator_is_deterministic_per_seed():
    a, b, c = ds.generate(6, length=60, seed=3), ds.generate(6, length=60, seed=3), ds.generate(6, length=60, seed=4)
    assert a == b and a != c
    assert [r["cell_type"] for r in a] == [t for t in ds.CELL_TYPE_MOTIFS for _ in range(6)]
    assert ds.generate(6, length=60, seed=3, split="test") != a


def test_make_benchmark_files(tmp_path):
    out = tmp_path / "synth.tsv"
    info = ds.make_benchmark(out, per_class=30, test_per_class=5, seed=1)
    first = out.read_bytes()
    ds.make_benchmark(out, per_class=30, test_per_class=9, seed=1)  # the test size does not move the training set
    assert out.read_bytes() == first
    train = SequenceDataset(out, length=200, use_labels=True)
    test = SequenceDataset(tmp_path / "synth-test.tsv", length=200, use_labels=True, label_names=train.label_names)
    assert len(train) == 120 and len(test) == 36 and train.label_names == sorted(ds.CELL_TYPE_MOTIFS)
    assert SequenceDataset(out, length=200, split="train").sequences == train.sequences
    side = json.loads((tmp_path / "synth.json").read_text())
    assert side["synthetic"] is True and side["jaspar_release"] == JASPAR_RELEASE and info["seed"] == 1
    assert 0.38 < side["stats"]["train_gc"] < 0.44


def test_planted_motifs_are_recovered_at_the_planted_positions():
    rows = ds.generate(150, length=200, seed=0)
    motifs = {m.matrix_id: m for m in load_motifs(BENCH_IDS)}
    scanner = MotifScanner(list(motifs.values()), BG)
    col = {mid: k for k, mid in enumerate(motifs)}
    found, total = {m: 0 for m in motifs}, {m: 0 for m in motifs}
    for chunk in range(0, len(rows), 100):
        part = rows[chunk : chunk + 100]
        scores = scanner.scores(encode([r["sequence"] for r in part])).double().numpy()
        for n, r in enumerate(part):
            plants = ds.parse_plants(r["motifs"])
            assert 1 <= len(plants) <= 3 and ds.format_plants(plants) == r["motifs"]
            assert all(mid in ds.CELL_TYPE_MOTIFS[r["cell_type"]] for mid, _, _ in plants)
            for (mid, pos, strand), word in zip(plants, ds.planted_windows(r["sequence"], plants, motifs)):
                lo = motifs[mid].log_odds(BG)
                s = scores[n, col[mid], 0 if strand == "+" else 1, pos]
                assert abs(s - sum(lo["ACGT".index(b), j] for j, b in enumerate(word))) < 1e-4
                found[mid] += s >= scanner.thresholds[col[mid]]
                total[mid] += 1
    # Instances are PFM samples, so some are weak: the recovered fraction must match the exact
    # probability that a PFM sample scores above the threshold (score distribution under the motif).
    for mid, m in motifs.items():
        grid, pmf = score_distribution(m.log_odds(BG), m.probs(BG))
        recall = pmf[grid >= scanner.thresholds[col[mid]]].sum()
        sd = np.sqrt(recall * (1 - recall) / total[mid])
        assert total[mid] > 80 and abs(found[mid] / total[mid] - recall) < 4 * sd + 0.01, (
            mid,
            found[mid],
            total[mid],
            recall,
        )
    assert sum(found.values()) / sum(total.values()) > 0.6


def test_plant_records_round_trip():
    plants = [("MA0035.5", 0, "+"), ("MA0140.3", 120, "-")]
    assert ds.parse_plants(ds.format_plants(plants)) == plants and ds.parse_plants("") == []
