"""DNA sequences as diffusion data: one-hot A/C/G/T as ±1, shape [4, L] (channel order A, C, G, T).

This is DNA-Diffusion's encoding (+1 for the base, −1 elsewhere), so a sequence is a point of the
two-valued "discrete" data type of the InfoNoise spec and the EDM machinery applies unchanged.

Accepted files (plain or .gz; the format is sniffed from the content, not the extension):

- FASTA. A record may span several lines. The label (cell type) is taken from the header, first match
  wins: a `label=NAME` or `cell_type=NAME` token; else the last `|`-separated field (`>id|K562`);
  else DNA-Diffusion's `>id_TAG_NAME`.
- A table with a header row, tab-separated (comma-separated if the file ends in .csv[.gz]): the
  DNA-Diffusion sequence file and our synthetic benchmark. Required column: `sequence`. Label column,
  first present of: `cell_type`, `celltype`, `cell_line`, `TAG`, `label`, `class` (case-insensitive).
  Optional split column: `split` (train/valid/test), else `chr` with DNA-Diffusion's convention
  (chr1 = test, chr2 = valid, other chromosomes = train). Other columns are ignored.
- Plain text, one sequence per line, no header (unlabelled).

Bases: A/C/G/T in either case (soft-masked lower case is upper-cased). Sequences containing N are
rejected by default, because an N has no one-hot code and silently dropping or randomising them
would change the data distribution; `skip_n=True` drops those records (DNA-Diffusion does the same).
Any other character, a wrong length, an empty file or a requested but missing label is a one-line
ValueError naming the file, the line and the fix.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from training.dataset import one_hot_label

BASES = "ACGT"
LABEL_COLUMNS = ("cell_type", "celltype", "cell_line", "tag", "label", "class")
_LUT = np.full(256, 255, dtype=np.uint8)  # byte -> base index; 255 = invalid
for _i, _b in enumerate(BASES):
    _LUT[ord(_b)] = _LUT[ord(_b.lower())] = _i

# ----------------------------------------------------------------------------------------------------
# Encoding.


def to_index(seqs: list[str]) -> np.ndarray:
    """Strings of equal length → uint8 base indices [N, L] (A=0, C=1, G=2, T=3)."""
    if len(seqs) == 0:
        return np.zeros([0, 0], dtype=np.uint8)
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1:
        raise ValueError(f"encode: sequences have different lengths {sorted(lengths)[:5]}; all must match.")
    idx = _LUT[np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8)]
    if (idx == 255).any():
        pos, L = int(np.argmax(idx == 255)), lengths.pop()
        raise ValueError(
            f"encode: sequence {pos // L} has invalid character "
            f"{seqs[pos // L][pos % L]!r} at position {pos % L}; only A/C/G/T are allowed."
        )
    return idx.reshape(len(seqs), -1)


def index_to_onehot(idx: np.ndarray | torch.Tensor) -> np.ndarray:
    """Base indices [..., L] → float32 model-space one-hot [..., 4, L] (±1)."""
    idx = np.asarray(idx)
    x = np.full([*idx.shape[:-1], 4, idx.shape[-1]], -1, dtype=np.float32)
    np.put_along_axis(x, idx[..., None, :].astype(np.int64), 1.0, axis=-2)
    return x


def encode(seqs: list[str]) -> np.ndarray:
    """Strings → float32 [N, 4, L] in model space (+1 for the base, −1 elsewhere)."""
    return index_to_onehot(to_index(list(seqs)))


def decode(x: np.ndarray | torch.Tensor) -> list[str]:
    """Model-space data [N, 4, L] (or one sequence [4, L]) → strings, by argmax over the 4 channels.
    Works on any real values, so it reads generated samples directly."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"decode: expected shape [N, 4, L], got {list(x.shape)}.")
    letters = np.frombuffer(BASES.encode(), dtype=np.uint8)[x.argmax(axis=1)]
    return [row.tobytes().decode() for row in letters]


def reverse_complement(seq: str) -> str:
    return seq.translate(str.maketrans("ACGTacgt", "TGCAtgca"))[::-1]


def write_fasta(
    path: str | os.PathLike,
    x_or_seqs,
    names: list[str] | None = None,
    labels=None,
    label_names: list[str] | None = None,
) -> None:
    """Write sequences (strings, or model-space data [N, 4, L] / [4, L]) as FASTA.

    Headers are `>name` or `>name|label`, which `read_sequences` reads back. labels: strings, class
    indices, or one-hot rows; indices are mapped through `label_names` when given."""
    seqs = list(x_or_seqs) if _is_str_list(x_or_seqs) else decode(x_or_seqs)
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


def read_sequences(path: str | os.PathLike, want_labels: bool = False) -> SequenceRecords:
    """Read a FASTA, table or plain sequence file (see module docstring) without validating bases.
    want_labels: raise if some record has no label (with the line and the fix)."""
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
        _read_fasta(rec, text, want_labels)
    else:
        sep = "," if path.lower().endswith((".csv", ".csv.gz")) else "\t"
        header = [h.strip() for h in text[first].split(sep)]
        if "sequence" in [h.lower() for h in header]:
            _read_table(rec, text, first, header, sep, want_labels)
        elif len(header) == 1 and re.fullmatch(r"[ACGTNacgtn]+", header[0]):
            for i, t in enumerate(text):
                if t.strip() and not re.fullmatch(r"[ACGTNacgtn]+", t.strip()):
                    raise ValueError(
                        f"{path}:{i + 1}: not a DNA sequence in a one-sequence-per-line file "
                        f"(starts {t.strip()[:20]!r}); fix the line, or write FASTA / a table."
                    )
                if t.strip():
                    rec.seqs.append(t.strip())
                    rec.lines.append(i + 1)
            if want_labels:
                raise ValueError(
                    f"{path}:{first + 1}: labels were requested but a plain sequence list "
                    f"has none; use FASTA '>id|celltype' or a table with a cell_type column, "
                    f"or train without labels."
                )
        else:
            raise ValueError(
                f"{path}:{first + 1}: not FASTA (no '>') and the header row has no 'sequence' "
                f"column (found {header[:6]}); add a header 'sequence<TAB>cell_type'."
            )
    if not rec.seqs:
        raise ValueError(f"{path}: no sequences found; the file has a header but no records.")
    return rec


def _read_fasta(rec: SequenceRecords, text: list[str], want_labels: bool) -> None:
    labels = []
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
                    f"{rec.path}:{i + 1}: no cell-type label in header '{t[:40]}'; write "
                    f"'>id|celltype' or 'label=celltype', or train without labels."
                )
            rec.seqs.append("")
            rec.lines.append(i + 1)
            labels.append(label)
        elif not rec.seqs:
            raise ValueError(
                f"{rec.path}:{i + 1}: sequence data before the first '>' header; add a header line '>id|celltype'."
            )
        else:
            bad = re.search(r"[^ACGTNacgtn]", t)
            if bad:
                raise ValueError(
                    f"{rec.path}:{i + 1}: invalid character {bad.group()!r} at column "
                    f"{bad.start() + 1}; only A/C/G/T (and N, see skip_n) are allowed — "
                    f"fix or remove this record."
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
            f"{rec.path}:{first + 1}: labels were requested but the header has no cell-type "
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
                    f"a cell type, or train without labels."
                )
            rec.labels.append(label)
        if split_col is not None:
            v = row[split_col].strip()
            rec.splits.append(v.lower() if lower[split_col] == "split" else _chr_split(v))
        for j in extra:
            rec.columns[header[j]].append(row[j])


def validate(rec: SequenceRecords, length: int | None = None, skip_n: bool = False) -> np.ndarray:
    """Check bases and lengths; return a boolean mask of kept records (False only for N, if skip_n).
    length=None takes the first record's length."""
    keep = np.ones(len(rec.seqs), dtype=bool)
    for k, (s, line) in enumerate(zip(rec.seqs, rec.lines)):
        bad = re.search(r"[^ACGTacgt]", s)
        if bad and bad.group() in "Nn" and skip_n:
            keep[k] = False
            continue
        if bad:
            fix = (
                "remove records with N, or pass skip_n=True to drop them"
                if bad.group() in "Nn"
                else "only A/C/G/T are allowed; fix or remove this record"
            )
            raise ValueError(
                f"{rec.path}:{line}: invalid base {bad.group()!r} at position {bad.start() + 1} of the sequence; {fix}."
            )
        if length is None:
            length = len(s)
        if len(s) != length:
            raise ValueError(
                f"{rec.path}:{line}: sequence has length {len(s)}, expected {length}; trim or "
                f"pad every sequence to {length} bp, or set length={len(s)} if that is intended."
            )
    if not keep.any():
        raise ValueError(f"{rec.path}: every sequence contains N; nothing is left to train on.")
    return keep


# ----------------------------------------------------------------------------------------------------
# Dataset.


class SequenceDataset(torch.utils.data.Dataset):
    """Fixed-length DNA sequences with optional cell-type labels, yielding
    (float32 [4, L] in model space, float32 one-hot label [label_dim] or [0]).

    length: required length (None = the file's first sequence). split: keep only 'train'/'valid'/'test'
    rows of a table with a split or chr column. label_names: fixes the label index order (default: the
    sorted names found), so a test file and generated samples index classes like the training file.
    max_size / random_seed: a seeded random subset, as for the image datasets.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        length: int | None = 200,
        use_labels: bool = False,
        max_size: int | None = None,
        random_seed: int = 0,
        split: str | None = None,
        label_names: list[str] | None = None,
        skip_n: bool = False,
    ):
        self.path = str(path)
        rec = read_sequences(self.path, want_labels=use_labels)
        keep = validate(rec, length, skip_n=skip_n)
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
        self._idx = to_index(seqs)  # uint8 [N, L]; one-hot is built per item (4x less memory)
        self._labels = None
        self._label_names = []
        if use_labels:
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
            self._labels = np.array([lookup[l] for l in labels], dtype=np.int64)
        self._raw_idx = np.arange(len(seqs), dtype=np.int64)
        if max_size is not None and len(self._raw_idx) > max_size:
            self._raw_idx = np.sort(np.random.RandomState(random_seed).permutation(self._raw_idx)[:max_size])
        self.name = Path(self.path).name.split(".")[0]

    def __len__(self) -> int:
        return len(self._raw_idx)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        raw = int(self._raw_idx[idx])
        return index_to_onehot(self._idx[raw]), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        return one_hot_label(self._labels, self._raw_idx[idx], self.label_dim)

    @property
    def base_indices(self) -> np.ndarray:
        """Base indices [N, L] (A=0, C=1, G=2, T=3) in dataset order."""
        return self._idx[self._raw_idx]

    @property
    def sequences(self) -> list[str]:
        """The sequences as strings, in dataset order."""
        letters = np.frombuffer(BASES.encode(), dtype=np.uint8)[self.base_indices]
        return [row.tobytes().decode() for row in letters]

    @property
    def class_indices(self) -> np.ndarray | None:
        """Integer labels [N] in dataset order, or None."""
        return None if self._labels is None else self._labels[self._raw_idx]

    @property
    def data_shape(self) -> tuple[int, int]:
        return (4, self._idx.shape[1])

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
