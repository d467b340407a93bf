"""Fréchet distance, streaming feature statistics, and the fid.py command line (offline, CPU)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import fid
from evaluation.detectors import get_detector, load_digit_data
from evaluation.frechet import FeatureStats, compute_stats, frechet_distance, load_stats, save_stats


def _closed_form(mu1, a, mu2, b) -> float:
    """Fréchet distance of N(mu1, Q diag(a) Qᵀ) and N(mu2, Q diag(b) Qᵀ) (commuting covariances)."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_fd_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    a, b = rng.uniform(0.1, 4, size=16), rng.uniform(0.1, 4, size=16)
    fd = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert fd == pytest.approx(_closed_form(mu1, a, mu2, b), rel=1e-10, abs=1e-10)


def test_fd_commuting_closed_form():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    a, b = rng.uniform(0.01, 9, size=24), rng.uniform(0.01, 9, size=24)
    mu1, mu2 = rng.normal(size=24), rng.normal(size=24) + 3
    fd = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert fd == pytest.approx(_closed_form(mu1, a, mu2, b), rel=1e-8)
    # Same means: only the covariance term remains; scalar case is (√a − √b)².
    assert frechet_distance(mu1, q @ np.diag(a) @ q.T, mu1, q @ np.diag(b) @ q.T) == pytest.approx(
        _closed_form(mu1, a, mu1, b), rel=1e-8
    )
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_fd_identical_is_zero_and_shapes_checked():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 32)) ** 2
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    # Fewer samples than dimensions: a singular covariance still gives ~0 against itself.
    y = rng.normal(size=(12, 32))
    assert abs(frechet_distance(y.mean(0), np.cov(y, rowvar=False), y.mean(0), np.cov(y, rowvar=False))) < 1e-4
    with pytest.raises(ValueError, match="shapes differ"):
        frechet_distance(mu, sigma, mu[:8], sigma[:8, :8])


def test_stats_streaming_matches_numpy_and_batch_size():
    rng = np.random.default_rng(3)
    feats = (rng.normal(size=(257, 16)) * rng.uniform(0.5, 3, 16) + 5).astype(np.float32)
    results = []
    for batch in [1, 7, 64, 257]:
        stats = compute_stats(
            (torch.from_numpy(feats[i : i + batch]) for i in range(0, len(feats), batch)), _Identity(16)
        )
        assert stats.count == len(feats)
        results.append(stats.mean_cov())
    f64 = feats.astype(np.float64)
    for mu, sigma in results:
        np.testing.assert_allclose(mu, f64.mean(0), rtol=1e-12)
        np.testing.assert_allclose(sigma, np.cov(f64, rowvar=False, ddof=1), rtol=1e-9, atol=1e-12)  # N − 1, as EDM
        np.testing.assert_allclose(mu, results[0][0], rtol=1e-13)
        np.testing.assert_allclose(sigma, results[0][1], rtol=1e-10, atol=1e-13)


def test_stats_errors():
    stats = FeatureStats(4)
    with pytest.raises(ValueError, match=r"expected features \[N, 4\]"):
        stats.append(torch.zeros(3, 5))
    stats.append(torch.ones(1, 4))
    with pytest.raises(ValueError, match="at least 2"):
        stats.mean_cov()
    stats.merge_ranks()  # single process: identity
    with pytest.raises(RuntimeError, match="twice"):
        stats.merge_ranks()


class _Identity(torch.nn.Module):
    """A 'detector' returning its input, to test the statistics alone."""

    name, fingerprint = "identity", None

    def __init__(self, dim: int):
        super().__init__()
        self.feature_dim = dim

    def forward(self, x):
        return x


def test_digit_halves_far_closer_than_noise():
    """Two disjoint halves of the 8×8 digits score far lower than digits vs. uniform noise."""
    det = get_detector("lenet-digits")
    images, _ = load_digit_data("digits")
    perm = np.random.RandomState(1).permutation(len(images))
    a, b = images[perm[:898]], images[perm[898:1796]]
    noise = np.random.RandomState(2).randint(0, 256, size=a.shape, dtype=np.uint8)

    def stats(x):
        return compute_stats([torch.from_numpy(x[i : i + 300]) for i in range(0, len(x), 300)], det).mean_cov()

    sa, sb, sn = stats(a), stats(b), stats(noise)
    halves, vs_noise = frechet_distance(*sa, *sb), frechet_distance(*sa, *sn)
    assert 0 < halves < vs_noise / 20, (halves, vs_noise)


# ----------------------------------------------------------------------------------------------
# Command line


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory):
    """A folder of 60 8×8 digit PNGs and the same images as an NHWC .npz (generate.py's format)."""
    root = tmp_path_factory.mktemp("fid")
    images = load_digit_data("digits")[0][:60]
    folder = root / "pngs"
    (folder / "sub").mkdir(parents=True)
    for i, img in enumerate(images):
        PIL.Image.fromarray(img[0], "L").save(folder / ("sub" if i % 2 else "") / f"{i:06d}.png")
    np.savez(root / "images.npz", images=images.transpose(0, 2, 3, 1))
    (folder / ".complete.json").write_text('{"count": 60, "seeds": [0, 59]}')  # as generate.py leaves a folder
    return root, folder


def _run(*args):
    return CliRunner().invoke(fid.cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_ref_then_calc(digit_pngs):
    root, folder = digit_pngs
    ref = root / "ref.npz"
    r = _run("ref", "--data", folder, "--dest", ref, "--detector", "lenet-digits", "--batch", 16, "--workers", 0)
    assert r.exit_code == 0, r.output
    stats = load_stats(ref)
    assert stats["detector"] == "lenet-digits" and stats["count"] == 60 and stats["mu"].shape == (128,)
    with np.load(ref) as z:  # EDM-compatible keys, no pickled objects
        assert {"mu", "sigma"} <= set(z.files) and z["sigma"].shape == (128, 128)
    for images in [folder, root / "images.npz"]:
        r = _run("calc", "--images", images, "--ref", ref, "--batch", 7, "--workers", 0)
        assert r.exit_code == 0, r.output
        assert abs(float(r.stdout.strip().splitlines()[-1])) < 1e-3  # 60 images, 128-d: singular Σ
    r = _run("calc", "--images", root / "images.npz", "--ref", ref, "--num", 100, "--workers", 0)
    assert r.exit_code != 0 and "found 60 images but --num 100" in r.output


def test_cli_errors(digit_pngs, tmp_path):
    root, folder = digit_pngs
    ref = tmp_path / "ref.npz"
    save_stats(ref, np.zeros(128), np.eye(128), "lenet-mnist", 10)
    r = _run("calc", "--images", folder, "--ref", ref, "--detector", "lenet-digits", "--workers", 0)
    assert r.exit_code != 0 and "detector 'lenet-mnist'" in r.output and "not comparable" in r.output
    r = _run("calc", "--images", tmp_path / "missing", "--ref", ref, "--workers", 0)
    assert r.exit_code != 0 and "missing: not found" in r.output
    r = _run("calc", "--images", folder, "--ref", tmp_path / "nope.npz", "--workers", 0)
    assert r.exit_code != 0 and "nope.npz: reference statistics not found" in r.output
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    r = _run("calc", "--images", folder, "--ref", bad, "--workers", 0)
    assert r.exit_code != 0 and "corrupt.npz: not a readable statistics .npz" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = _run("ref", "--data", tmp_path / "nodata", "--dest", tmp_path / "x.npz", "--workers", 0)
    assert r.exit_code != 0 and "nodata" in r.output
    np.savez(tmp_path / "edm.npz", mu=np.zeros(2048), sigma=np.eye(2048))  # EDM's reference files
    edm = load_stats(tmp_path / "edm.npz")
    assert edm["detector"] == "inception" and edm["count"] is None and edm["fingerprint"] is None
    save_stats(ref, np.zeros(128), np.eye(128), "lenet-digits", 10, fingerprint="0123456789abcdef")
    r = _run("calc", "--images", folder, "--ref", ref, "--workers", 0)
    assert r.exit_code != 0 and "other weights of detector lenet-digits" in r.output


def test_cli_torchrun_two_ranks_match_one(digit_pngs, tmp_path):
    """Images dealt out over 2 CPU ranks (gloo), sums all-reduced: the same statistics as 1 rank."""
    import subprocess
    import sys
    from pathlib import Path

    root, folder = digit_pngs
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    args = [
        "ref",
        "--data",
        str(folder),
        "--dest",
        "{}",
        "--detector",
        "lenet-digits",
        "--batch",
        "8",
        "--workers",
        "0",
    ]
    assert _run(*[a.format(one) for a in args]).exit_code == 0
    repo = Path(fid.__file__).resolve().parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(repo / "fid.py"),
            *[a.format(two) for a in args],
        ],
        check=True,
        cwd=repo,
        timeout=300,
    )
    a, b = load_stats(one), load_stats(two)
    assert a["count"] == b["count"] == 60
    # The images' float32 features may round differently in another batch composition or thread count (measured on
    # an AVX2 host with 2 threads: 1e-8 relative); a lost, doubled or unmerged image would move them by far more.
    np.testing.assert_allclose(a["mu"], b["mu"], rtol=1e-6)
    np.testing.assert_allclose(a["sigma"], b["sigma"], rtol=1e-5, atol=1e-6)


def test_calc_refuses_partial_folders(digit_pngs, tmp_path):
    """A folder a killed generate.py left (no completion marker), or one whose image count differs from the
    marker's, is refused in one line; --allow-partial scores it anyway."""
    import shutil

    root, folder = digit_pngs
    ref = tmp_path / "ref.npz"
    assert _run("ref", "--data", root / "images.npz", "--dest", ref, "--detector", "lenet-digits").exit_code == 0
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / ".complete.json").unlink()
    r = _run("calc", "--images", partial, "--ref", ref, "--workers", 0)
    assert r.exit_code != 0 and "no .complete.json" in r.output and "--allow-partial" in r.output
    assert _run("calc", "--images", partial, "--ref", ref, "--workers", 0, "--allow-partial").exit_code == 0
    (partial / ".complete.json").write_text('{"count": 61, "seeds": [0, 60]}')
    r = _run("calc", "--images", partial, "--ref", ref, "--workers", 0)
    assert r.exit_code != 0 and "60 images but generate.py wrote 61" in r.output


def test_ref_checks_its_output_and_input_before_work(digit_pngs, tmp_path):
    root, folder = digit_pngs
    r = _run("ref", "--data", folder, "--dest", tmp_path, "--detector", "lenet-digits")
    assert r.exit_code != 0 and "is a folder" in r.output
    one = tmp_path / "one.npz"
    np.savez(one, images=np.zeros((1, 8, 8, 1), np.uint8))
    r = _run("ref", "--data", one, "--dest", tmp_path / "r.npz", "--detector", "lenet-digits")
    assert r.exit_code != 0 and "1 image(s)" in r.output and "at least 2" in r.output
    nan = tmp_path / "nan.npz"
    save_stats(nan, np.full(128, np.nan), np.eye(128), "lenet-digits", 10)
    r = _run("calc", "--images", root / "images.npz", "--ref", nan)
    assert r.exit_code != 0 and "NaN" in r.output


def test_reference_records_the_image_shape_and_calc_checks_it(digit_pngs, tmp_path):
    """`ref` stores channels and resolution; `calc` scores images of that shape — stored NHWC or, with their
    layout, NCHW, to the same value as the statistics computed here — and refuses other shapes, an array
    that reads both ways, and notes (once) that an old reference cannot be checked."""
    root, folder = digit_pngs
    images = load_digit_data("digits")[0][:60]  # [N, 1, 8, 8]
    np.savez(tmp_path / "first.npz", images=images[:30].transpose(0, 2, 3, 1))
    ref = tmp_path / "ref.npz"
    assert _run("ref", "--data", tmp_path / "first.npz", "--dest", ref, "--detector", "lenet-digits").exit_code == 0
    stats = load_stats(ref)
    assert (stats["channels"], stats["resolution"]) == (1, (8, 8))
    det = get_detector("lenet-digits")
    expected = frechet_distance(
        *compute_stats([torch.from_numpy(images[30:])], det).mean_cov(), stats["mu"], stats["sigma"]
    )
    np.savez(tmp_path / "nhwc.npz", images=images[30:].transpose(0, 2, 3, 1))
    np.savez(tmp_path / "nchw.npz", images=images[30:], layout="NCHW")
    for name in ("nhwc.npz", "nchw.npz"):
        r = _run("calc", "--images", tmp_path / name, "--ref", ref, "--workers", 0)
        assert r.exit_code == 0, r.output
        assert float(r.stdout.strip().splitlines()[-1]) == pytest.approx(expected, rel=1e-5) and expected > 1
    for shape, says in (((10, 8, 6, 1), "1x8x6"), ((10, 16, 16, 1), "1x16x16"), ((10, 8, 8, 3), "3x8x8")):
        np.savez(tmp_path / "other.npz", images=np.zeros(shape, np.uint8))
        r = _run("calc", "--images", tmp_path / "other.npz", "--ref", ref, "--workers", 0)
        assert r.exit_code != 0 and says in r.output and "1x8x8" in r.output and "Traceback" not in r.output
    np.savez(tmp_path / "both.npz", images=np.zeros((10, 3, 8, 3), np.uint8))  # NHWC 3x8x3 or NCHW 3x8x3
    r = _run("calc", "--images", tmp_path / "both.npz", "--ref", ref, "--workers", 0)
    assert r.exit_code != 0 and "reads as [N, H, W, C] and as [N, C, H, W]" in r.output and "layout=" in r.output
    old = tmp_path / "old.npz"
    save_stats(old, stats["mu"], stats["sigma"], "lenet-digits", 30)  # as refs were written before
    r = _run("calc", "--images", tmp_path / "nhwc.npz", "--ref", old, "--workers", 0)
    assert r.exit_code == 0 and r.output.count("Note:") == 1 and "does not record the resolution" in r.output
    assert float(r.stdout.strip().splitlines()[-1]) == pytest.approx(expected, rel=1e-5)


def test_reference_sigma_must_be_a_covariance(tmp_path):
    """Σ symmetric and PSD within rounding: a singular one (fewer images than dimensions) and rounding-level
    asymmetry pass; a negative eigenvalue or a visible asymmetry is one line naming the file."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 32))
    sigma = np.cov(x, rowvar=False)
    sigma[0, 1] += 1e-14
    save_stats(tmp_path / "ok.npz", x.mean(0), sigma, "lenet-digits", 12)
    assert load_stats(tmp_path / "ok.npz")["sigma"].shape == (32, 32)
    bad = np.eye(32)
    bad[5, 5] = -0.5
    save_stats(tmp_path / "neg.npz", np.zeros(32), bad, "lenet-digits", 12)
    with pytest.raises(ValueError, match=r"neg\.npz: sigma is not positive semi-definite \(eigenvalue -0\.5\)"):
        load_stats(tmp_path / "neg.npz")
    asym = np.eye(32)
    asym[2, 7] = 0.3
    save_stats(tmp_path / "asym.npz", np.zeros(32), asym, "lenet-digits", 12)
    with pytest.raises(ValueError, match=r"asym\.npz: sigma is not symmetric"):
        load_stats(tmp_path / "asym.npz")
