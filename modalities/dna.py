"""DNA as a modality: categorical sequences over A/C/G/T (N unknown), with DNA's harness metrics — the k-mer
spectrum (k = 3..6) against `<stem>-test.tsv` as `dna_tool.py make-benchmark` writes it, or with
`--dna-metric classifier_fd` the Fréchet distance of a cell-type classifier's features (dna.metrics)."""

from __future__ import annotations

from dna import metrics as dna_metrics
from dna.sequences import DNA as DNA_ALPHABET
from modalities.base import Evaluation, HarnessMetric
from modalities.sequences import KmerMetric, SequenceModality


class DNAModality(SequenceModality):
    def harness_metric(self, dataset, options: dict, evaluation: Evaluation) -> HarnessMetric:
        metric = evaluation.options.get("dna_metric", "kmer_js")
        if metric == "kmer_js":
            return KmerMetric(self, dataset, options, evaluation)
        if metric == "classifier_fd":
            return ClassifierMetric(self, dataset, options, evaluation)
        raise ValueError(f"unknown --dna-metric '{metric}'; valid: kmer_js, classifier_fd")


class ClassifierMetric(KmerMetric):
    """The Fréchet distance between the cell-type classifier's features (--dna-classifier) of the evaluation
    samples and of the held-out split (else the training data)."""

    def __init__(self, modality: DNAModality, dataset, options: dict, evaluation: Evaluation):
        super().__init__(modality, dataset, options, evaluation)
        self.name = f"{modality.name}_classifier_fd_vs_{self.against}"
        path = evaluation.options.get("dna_classifier")
        if not path:
            raise ValueError("--dna-metric classifier_fd needs --dna-classifier (dna_tool.py train-classifier)")
        self.classifier, _ = dna_metrics.load_classifier(path)
        self.ref_stats = dna_metrics.feature_stats(dna_metrics.classifier_features(self.classifier, self.ref_idx))

    def score(self, snapshot: str) -> float:
        features = dna_metrics.classifier_features(self.classifier, self.letter_indices(snapshot))
        stats = dna_metrics.feature_stats(features)
        return float(dna_metrics.frechet_distance(*stats, *self.ref_stats))


DNA = DNAModality("dna", DNA_ALPHABET, kmer_ks=dna_metrics.KMER_KS, held_out=("-test.tsv", "-test.tsv.gz"))
