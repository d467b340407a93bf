"""EDM's augmentation pipe (training/augment.py): identity at p = 0, deterministic per seed, labels zero
exactly where a transformation was not applied, flips exact, and a run that trains with it."""

from __future__ import annotations

import torch
from click.testing import CliRunner

import train
from tests.conftest import train_tiny, write_image_dataset
from torch_utils import checkpoint
from training.augment import AugmentPipe, edm_pipe


def images(n=16, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_identity_at_p0():
    x = images()
    y, labels = edm_pipe(0.0)(x)
    assert torch.equal(y, x) and labels.shape == (16, 9) and not labels.any()


def test_deterministic_per_seed():
    x = images()
    a = edm_pipe(0.5)(x, torch.Generator().manual_seed(7))
    b = edm_pipe(0.5)(x, torch.Generator().manual_seed(7))
    c = edm_pipe(0.5)(x, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_flips_are_exact_and_labelled():
    x = images(64)
    y, labels = AugmentPipe(1.0, xflip=1, yflip=1)(x, torch.Generator().manual_seed(1))
    assert labels.shape == (64, 2) and 0 < labels[:, 0].sum() < 64 and 0 < labels[:, 1].sum() < 64
    for i in range(64):
        expect = x[i]
        if labels[i, 0]:
            expect = expect.flip(2)
        if labels[i, 1]:
            expect = expect.flip(1)
        assert torch.equal(y[i], expect)


def test_labels_are_zero_exactly_where_nothing_was_applied():
    x = images(64)
    pipe = AugmentPipe(0.5, scale=1, rotate=1, translate=1)
    y, labels = pipe(x, torch.Generator().manual_seed(2))
    assert labels.shape == (64, pipe.label_dim) == (64, 5)
    changed = (y != x).flatten(1).any(1)
    labelled = (labels != 0).any(1)
    assert torch.equal(changed, labelled) and 0 < labelled.sum() < 64
    # a rotation label is (cos θ − 1, sin θ): on the unit circle shifted by (−1, 0)
    rot = labels[:, 1:3]
    torch.testing.assert_close((rot[:, 0] + 1) ** 2 + rot[:, 1] ** 2, torch.ones(64))


def test_training_with_augment(tmp_path):
    data = write_image_dataset(tmp_path / "d.zip", n=16, res=8, channels=3)[0]
    r = train_tiny(tmp_path, data, "--sample-grid", "4", "--augment", "0.5", "--desc", "aug")
    snap = checkpoint.load(checkpoint.latest_snapshot(tmp_path / "aug"))
    assert snap["options"]["network_kwargs"]["augment_dim"] == 9 and "model.map_augment.weight" in snap["net"]
    assert all(torch.isfinite(v).all() for v in snap["net"].values())
    fasta = tmp_path / "x.fa"
    fasta.write_text("".join(f">s{i}\n{'ACGT' * 4}\n" for i in range(8)))
    r = CliRunner().invoke(
        train.main, ["--outdir", str(tmp_path), "--data", str(fasta), "--arch", "dnaunet", "--augment", "0.1", "-n"]
    )
    assert r.exit_code != 0 and "augmentation is for images" in r.output
