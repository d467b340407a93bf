"""Categorical sequences as diffusion data, over any alphabet: one-hot as ±1, shape [A, L] for an alphabet of A
letters (channel order = the alphabet's order).

+1 for the letter, −1 elsewhere (DNA-Diffusion's encoding), so a sequence is a point of the two-valued
"discrete" data type of the InfoNoise spec and the EDM machinery applies unchanged, whatever the alphabet:
DNA's four bases (dna/sequences.py) and the twenty amino acids (modalities/protein.py) are two `Alphabet`s.

Accepted files (plain or .gz; the format is sniffed from the content, not the extension):

- FASTA. A record may span several lines. The label (a class, e.g. a cell type) is taken from the header,
  first match wins: a `label=NAME` or `cell_type=NAME` token; else the last `|`-separated field
  (`>id|K562`); else DNA-Diffusion's `>id_TAG_NAME`.
- A table with a header row, tab-separated (comma-separated if the file ends in .csv[.gz]): the
  DNA-Diffusion sequence file and our synthetic benchmarks. Required column: `sequence`. Label column,
  first present of: `cell_type`, `celltype`, `cell_line`, `TAG`, `label`, `class` (case-insensitive).
  Optional split column: `split` (train/valid/test), else `chr` with DNA-Diffusion's convention
  (chr1 = test, chr2 = valid, other chromosomes = train). Other columns are ignored.
- Plain text, one sequence per line, no header (unlabelled).

Letters: the alphabet's, in either case (soft-masked lower case is upper-cased). The alphabet's unknown
letter (DNA's N) has no one-hot code: silently dropping or randomising it would change the data
distribution, so a record holding it is refused, or dropped with `skip_unknown=True`. Any other letter, a
wrong length, an empty file or a requested but missing label is a one-line ValueError naming the file,
the line and the fix.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from datafiles.base import one_hot_label

SEQUENCE_EXTS = tuple(e + gz for e in (".fa", ".fasta", ".fna", ".faa", ".tsv", ".txt", ".csv") for gz in ("", ".gz"))
LABEL_COLUMNS = ("cell_type", "celltype", "cell_line", "tag", "label", "class")


@dataclass(frozen=True)
class Alphabet:
    """The letters of a categorical sequence, in channel order; `name` is what messages call a sequence of
    them; `unknown` is the letter that stands for 'not known' (DNA's N), refused or skipped, never encoded."""

    name: str
    letters: str
    unknown: str = ""

    @property
    def size(self) -> int:
        return len(self.letters)

    @property
    def listing(self) -> str:
        return "/".join(self.letters)

    @cached_property
    def lut(self) -> np.ndarray:
        """byte → letter index; 255 = not a letter of the alphabet."""
        lut = np.full(256, 255, dtype=np.uint8)
        for i, c in enumerate(self.letters):
            lut[ord(c)] = lut[ord(c.lower())] = i
        return lut

    @cached_property
    def outside(self) -> re.Pattern:
        """A character that is neither a letter nor the unknown letter (either case)."""
        known = self.letters + self.unknown
        return re.compile(f"[^{re.escape(known.upper() + known.lower())}]")

    def to_index(self, seqs: list[str]) -> np.ndarray:
        """Strings of equal length → uint8 letter indices [N, L] (the alphabet's order)."""
        if len(seqs) == 0:
            return np.zeros([0, 0], dtype=np.uint8)
        lengths = {len(s) for s in seqs}
        if len(lengths) != 1:
            raise ValueError(f"encode: sequences have different lengths {sorted(lengths)[:5]}; all must match.")
        idx = self.lut[np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8)]
        if (idx == 255).any():
            pos, L = int(np.argmax(idx == 255)), lengths.pop()
            raise ValueError(
                f"encode: sequence {pos // L} has invalid character "
                f"{seqs[pos // L][pos % L]!r} at position {pos % L}; only {self.listing} are allowed."
            )
        return idx.reshape(len(seqs), -1)

    def onehot(self, idx: np.ndarray | torch.Tensor) -> np.ndarray:
        """Letter indices [..., L] → float32 model-space one-hot [..., A, L] (±1)."""
        idx = np.asarray(idx)
        x = np.full([*idx.shape[:-1], self.size, idx.shape[-1]], -1, dtype=np.float32)
        np.put_along_axis(x, idx[..., None, :].astype(np.int64), 1.0, axis=-2)
        return x

    def encode(self, seqs: list[str]) -> np.ndarray:
        """Strings → float32 [N, A, L] in model space (+1 for the letter, −1 elsewhere)."""
        return self.onehot(self.to_index(list(seqs)))

    def decode(self, x: np.ndarray | torch.Tensor) -> list[str]:
        """Model-space data [N, A, L] (or one sequence [A, L]) → strings, by argmax over the A channels.
        Works on any real values, so it reads generated samples directly."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().float().numpy()
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1] != self.size:
            raise ValueError(f"decode: expected shape [N, {self.size}, L], got {list(x.shape)}.")
        return self.strings(x.argmax(axis=1))

    def strings(self, idx: np.ndarray) -> list[str]:
        """Letter indices [N, L] → strings."""
        letters = np.frombuffer(self.letters.encode(), dtype=np.uint8)[np.asarray(idx)]
        return [row.tobytes().decode() for row in letters]


def write_fasta(
    path: str | os.PathLike,
    x_or_seqs,
    alphabet: Alphabet,
    names: list[str] | None = None,
    labels=None,
    label_names: list[str] | None = None,
) -> None:
    """Write sequences (strings, or model-space data [N, A, L] / [A, L]) as FASTA.

    Headers are `>name` or `>name|label`, which `read_sequences` reads back. labels: strings, class
    indices, or one-hot rows; indices are mapped through `label_names` when given."""
    seqs = list(x_or_seqs) if _is_str_list(x_or_seqs) else alphabet.decode(x_or_seqs)
    names = [f"seq{i}" for i in range(len(seqs))] if names is None else [str(n) for n in names]
    if len(names) != len(seqs):
        raise ValueError(f"write_fasta: {len(names)} names for {len(seqs)} sequences.")
    if labels is not None:
        labels = _label_strings(labels, label_names)
        if len(labels) != len(seqs):
            raise ValueError(f"write_fasta: {len(labels)} labels for {len(seqs)} sequences.")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _open_text(path, "w") as f:
        for i, s in enumerate(seqs):
            f.write(f">{names[i]}" + (f"|{labels[i]}" if labels is not None else "") + f"\n{s}\n")


def _is_str_list(x) -> bool:
    return isinstance(x, (list, tuple)) and (len(x) == 0 or isinstance(x[0], str))


def _label_strings(labels, label_names: list[str] | None) -> list[str]:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    if _is_str_list(labels):
        return list(labels)
    labels = np.asarray(labels)
    if labels.ndim == 2:  # one-hot rows
        labels = labels.argmax(axis=1)
    return [label_names[int(i)] if label_names is not None else str(int(i)) for i in labels]


# ----------------------------------------------------------------------------------------------------
# Reading files.


@dataclass
class SequenceRecords:
    """What a sequence file holds, before encoding. `lines` are 1-based line numbers for messages."""

    path: str
    seqs: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    labels: list[str] | None = None
    splits: list[str] | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)  # extra table columns, by name


def _open_text(path, mode="r"):
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")


def _fasta_label(header: str) -> str | None:
    m = re.search(r"(?:^|[\s|;])(?:label|cell_type)=([^\s|;]+)", header)
    if m:
        return m.group(1)
    if "|" in header:
        return header.rsplit("|", 1)[1].strip() or None
    m = re.search(r"_TAG_(\S+)$", header.split()[0]) if header.split() else None
    return m.group(1) if m else None


def _chr_split(chrom: str) -> str:
    return {"chr1": "test", "chr2": "valid"}.get(chrom.strip(), "train")


def read_sequences(path: str | os.PathLike, alphabet: Alphabet, want_labels: bool = False) -> SequenceRecords:
    """Read a FASTA, table or plain sequence file (see module docstring); FASTA letters are checked as they are
    read (the line is known there), a table's by `validate`. want_labels: raise if some record has no label."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: sequence file not found.")
    with _open_text(path) as f:
        text = f.read().splitlines()
    rec = SequenceRecords(path)
    first = next((i for i, t in enumerate(text) if t.strip()), None)
    if first is None:
        raise ValueError(
            f"{path}: the file is empty; expected FASTA, a table with a 'sequence' column, or one sequence per line."
        )
    if text[first].startswith(">"):
        _read_fasta(rec, text, alphabet, want_labels)
    else:
        sep = "," if path.lower().endswith((".csv", ".csv.gz")) else "\t"
        header = [h.strip() for h in text[first].split(sep)]
        if "sequence" in [h.lower() for h in header]:
            _read_table(rec, text, first, header, sep, want_labels)
        elif len(header) == 1 and not alphabet.outside.search(header[0]):
            _read_plain(rec, text, first, alphabet, want_labels)
        else:
            raise ValueError(
                f"{path}:{first + 1}: not FASTA (no '>') and the header row has no 'sequence' "
                f"column (found {header[:6]}); add a header 'sequence<TAB>label'."
            )
    if not rec.seqs:
        raise ValueError(f"{path}: no sequences found; the file has a header but no records.")
    return rec


def _read_plain(rec: SequenceRecords, text: list[str], first: int, alphabet: Alphabet, want_labels: bool) -> None:
    for i, t in enumerate(text):
        if t.strip() and alphabet.outside.search(t.strip()):
            raise ValueError(
                f"{rec.path}:{i + 1}: not a {alphabet.name} sequence in a one-sequence-per-line file "
                f"(starts {t.strip()[:20]!r}); fix the line, or write FASTA / a table."
            )
        if t.strip():
            rec.seqs.append(t.strip())
            rec.lines.append(i + 1)
    if want_labels:
        raise ValueError(
            f"{rec.path}:{first + 1}: labels were requested but a plain sequence list "
            f"has none; use FASTA '>id|label' or a table with a label column, "
            f"or train without labels."
        )


def _read_fasta(rec: SequenceRecords, text: list[str], alphabet: Alphabet, want_labels: bool) -> None:
    labels = []
    unknown = f" (and {alphabet.unknown}, see skip_unknown)" if alphabet.unknown else ""
    for i, t in enumerate(text):
        t = t.strip()
        if not t or t.startswith(";"):
            continue
        if t.startswith(">"):
            if rec.seqs and not rec.seqs[-1]:
                raise ValueError(
                    f"{rec.path}:{rec.lines[-1]}: FASTA record '{text[rec.lines[-1] - 1][:40]}' "
                    f"has no sequence; remove the header or add its sequence."
                )
            label = _fasta_label(t[1:])
            if want_labels and label is None:
                raise ValueError(
                    f"{rec.path}:{i + 1}: no class label in header '{t[:40]}'; write "
                    f"'>id|label' or 'label=NAME', or train without labels."
                )
            rec.seqs.append("")
            rec.lines.append(i + 1)
            labels.append(label)
        elif not rec.seqs:
            raise ValueError(
                f"{rec.path}:{i + 1}: sequence data before the first '>' header; add a header line '>id|label'."
            )
        else:
            bad = alphabet.outside.search(t)
            if bad:
                raise ValueError(
                    f"{rec.path}:{i + 1}: invalid character {bad.group()!r} at column "
                    f"{bad.start() + 1}; only {alphabet.listing}{unknown} are allowed in "
                    f"{alphabet.name} — fix or remove this record."
                )
            rec.seqs[-1] += t
    if rec.seqs and not rec.seqs[-1]:
        raise ValueError(
            f"{rec.path}:{rec.lines[-1]}: FASTA record has no sequence; remove the header or add its sequence."
        )
    rec.labels = labels if all(l is not None for l in labels) else None


def _read_table(rec: SequenceRecords, text, first, header, sep, want_labels) -> None:
    lower = [h.lower() for h in header]
    seq_col = lower.index("sequence")
    label_col = next((lower.index(c) for c in LABEL_COLUMNS if c in lower), None)
    split_col = lower.index("split") if "split" in lower else lower.index("chr") if "chr" in lower else None
    if want_labels and label_col is None:
        raise ValueError(
            f"{rec.path}:{first + 1}: labels were requested but the header has no label "
            f"column (one of {', '.join(LABEL_COLUMNS)}); add one or train without labels."
        )
    extra = [j for j in range(len(header)) if j not in (seq_col, label_col, split_col)]
    rec.labels = [] if label_col is not None else None
    rec.splits = [] if split_col is not None else None
    rec.columns = {header[j]: [] for j in extra}
    for i in range(first + 1, len(text)):
        if not text[i].strip():
            continue
        row = text[i].split(sep)
        if len(row) != len(header):
            raise ValueError(
                f"{rec.path}:{i + 1}: {len(row)} fields but the header has {len(header)}; "
                f"the file must be {'comma' if sep == ',' else 'tab'}-separated with one "
                f"value per column."
            )
        rec.seqs.append(row[seq_col].strip())
        rec.lines.append(i + 1)
        if label_col is not None:
            label = row[label_col].strip()
            if want_labels and not label:
                raise ValueError(
                    f"{rec.path}:{i + 1}: empty '{header[label_col]}' value; give every row "
                    f"a label, or train without labels."
                )
            rec.labels.append(label)
        if split_col is not None:
            v = row[split_col].strip()
            rec.splits.append(v.lower() if lower[split_col] == "split" else _chr_split(v))
        for j in extra:
            rec.columns[header[j]].append(row[j])


def validate(
    rec: SequenceRecords, alphabet: Alphabet, length: int | None = None, skip_unknown: bool = False
) -> np.ndarray:
    """Check letters and lengths; return a boolean mask of kept records (False only for a record holding the
    unknown letter, if skip_unknown). length=None takes the first record's length."""
    keep = np.ones(len(rec.seqs), dtype=bool)
    letter = re.compile(f"[^{re.escape(alphabet.letters.upper() + alphabet.letters.lower())}]")
    unknown = alphabet.unknown.upper() + alphabet.unknown.lower()
    for k, (s, line) in enumerate(zip(rec.seqs, rec.lines)):
        bad = letter.search(s)
        if bad and bad.group() in unknown and skip_unknown:
            keep[k] = False
            continue
        if bad:
            fix = (
                f"remove records with {alphabet.unknown}, or pass skip_unknown=True to drop them"
                if bad.group() in unknown
                else f"only {alphabet.listing} are allowed in {alphabet.name}; fix or remove this record"
            )
            raise ValueError(
                f"{rec.path}:{line}: invalid letter {bad.group()!r} at position {bad.start() + 1} of the sequence; "
                f"{fix}."
            )
        if length is None:
            length = len(s)
        if len(s) != length:
            raise ValueError(
                f"{rec.path}:{line}: sequence has length {len(s)}, expected {length}; trim or "
                f"pad every sequence to {length} letters, or set length={len(s)} if that is intended."
            )
    if not keep.any():
        raise ValueError(f"{rec.path}: every sequence contains {alphabet.unknown}; nothing is left to train on.")
    return keep


# ----------------------------------------------------------------------------------------------------
# Dataset.


class SequenceDataset(torch.utils.data.Dataset):
    """Fixed-length sequences over `alphabet` with optional class labels, yielding
    (float32 [A, L] in model space, float32 one-hot label [label_dim] or [0]).

    length: required length (None = the file's first sequence). split: keep only 'train'/'valid'/'test'
    rows of a table with a split or chr column. label_names: fixes the label index order (default: the
    sorted names found), so a test file and generated samples index classes like the training file.
    max_size / random_seed: a seeded random subset, as for the image datasets.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        alphabet: Alphabet,
        length: int | None = None,
        use_labels: bool = False,
        max_size: int | None = None,
        random_seed: int = 0,
        split: str | None = None,
        label_names: list[str] | None = None,
        skip_unknown: bool = False,
    ):
        self.path, self.alphabet = str(path), alphabet
        rec = read_sequences(self.path, alphabet, want_labels=use_labels)
        keep = validate(rec, alphabet, length, skip_unknown=skip_unknown)
        if split is not None:
            if rec.splits is None:
                raise ValueError(
                    f"{self.path}:1: split='{split}' was requested but the table has no 'split' "
                    f"or 'chr' column; pass the split's own file instead."
                )
            keep &= np.array([s == split for s in rec.splits])
            if not keep.any():
                raise ValueError(f"{self.path}: no rows with split '{split}' (found {sorted(set(rec.splits))}).")
        seqs = [s for s, k in zip(rec.seqs, keep) if k]
        self._idx = alphabet.to_index(seqs)  # uint8 [N, L]; one-hot is built per item (A times less memory)
        self._labels = None
        self._label_names = []
        if use_labels:
            self._labels = self._label_indices(rec, keep, label_names)
        self._raw_idx = np.arange(len(seqs), dtype=np.int64)
        if max_size is not None and len(self._raw_idx) > max_size:
            self._raw_idx = np.sort(np.random.RandomState(random_seed).permutation(self._raw_idx)[:max_size])
        self.name = Path(self.path).name.split(".")[0]

    def _label_indices(self, rec: SequenceRecords, keep: np.ndarray, label_names: list[str] | None) -> np.ndarray:
        labels = [l for l, k in zip(rec.labels, keep) if k]
        self._label_names = list(label_names) if label_names is not None else sorted(set(labels))
        lookup = {n: i for i, n in enumerate(self._label_names)}
        unknown = sorted(set(labels) - set(lookup))
        if unknown:
            line = rec.lines[rec.labels.index(unknown[0])]
            raise ValueError(
                f"{self.path}:{line}: label '{unknown[0]}' is not one of {self._label_names}; "
                f"fix the label or pass matching label_names."
            )
        return np.array([lookup[l] for l in labels], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._raw_idx)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        raw = int(self._raw_idx[idx])
        return self.alphabet.onehot(self._idx[raw]), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        return one_hot_label(self._labels, self._raw_idx[idx], self.label_dim)

    @property
    def letter_indices(self) -> np.ndarray:
        """Letter indices [N, L] (the alphabet's order) in dataset order."""
        return self._idx[self._raw_idx]

    @property
    def sequences(self) -> list[str]:
        """The sequences as strings, in dataset order."""
        return self.alphabet.strings(self.letter_indices)

    @property
    def class_indices(self) -> np.ndarray | None:
        """Integer labels [N] in dataset order, or None."""
        return None if self._labels is None else self._labels[self._raw_idx]

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.alphabet.size, self._idx.shape[1])

    @property
    def seq_length(self) -> int:
        return self._idx.shape[1]

    @property
    def label_dim(self) -> int:
        return len(self._label_names)

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    @property
    def label_names(self) -> list[str]:
        return list(self._label_names)

    @property
    def is_binary(self) -> bool:
        return True


def letter_share(path: str | os.PathLike, alphabet: Alphabet, sample: int = 1 << 16) -> float:
    """The share of the sequence letters among the first `sample` characters of a sequence file that are the
    alphabet's (its unknown letter counts as its own): how well the file fits this alphabet, for choosing one.
    0 for a file that cannot be read; FASTA headers, comments and a table's other columns are left out."""
    try:
        with _open_text(path) as f:
            lines = f.read(sample).splitlines()
    except (OSError, UnicodeDecodeError, EOFError):
        return 0.0
    lines = [t.strip() for t in lines if t.strip() and not t.startswith((">", ";"))]
    sep = "," if str(path).lower().endswith((".csv", ".csv.gz")) else "\t"
    header = [h.strip().lower() for h in lines[0].split(sep)] if lines else []
    if "sequence" in header:  # a table: its sequence column
        col = header.index("sequence")
        lines = [row[col] for row in (t.split(sep) for t in lines[1:]) if len(row) > col]
    letters = "".join(lines)
    if not letters:
        return 0.0
    return 1.0 - len(alphabet.outside.findall(letters)) / len(letters)
