"""What `pip install .` puts into site-packages: the library `infonoise` and nothing with a generic name (issue 27).
The wheel is built offline from a copy of the whole checkout, then installed into a fresh environment that already
has its own `training` and `evaluation` packages: both sides must still import correctly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

pytest.importorskip("setuptools", minversion="70.1")  # the test extra: builds the wheel without a network

FRAMEWORK = {"train", "generate", "fid", "dataset_tool", "dna_tool", "training", "evaluation", "analysis"}
FRAMEWORK |= {"benchmarks", "sampling", "schedulers", "torch_utils", "dna", "dnnlib", "tests", "examples", "configs"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy of the checkout (every room and script present beside the library)."""
    tmp = tmp_path_factory.mktemp("wheel")
    skip = shutil.ignore_patterns(
        ".git", ".venv", "data", "runs", "demo-run", "build", "*.egg-info", "__pycache__", ".pytest_cache"
    )
    shutil.copytree(REPO, tmp / "src", ignore=skip, symlinks=True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    r = subprocess.run([*cmd, "-w", str(tmp / "dist"), str(tmp / "src")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (built,) = (tmp / "dist").glob("infonoise-*.whl")
    return built


def test_wheel_holds_only_the_library(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"infonoise", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, sorted(top)
    assert not top & FRAMEWORK and not any(n.endswith(".py") and "/" not in n for n in names)
    assert {f"infonoise/{p.name}" for p in (REPO / "infonoise").glob("*.py")} <= set(names)
    dist_info = next(t for t in top if t.endswith(".dist-info"))
    assert f"{dist_info}/entry_points.txt" not in names  # no console command pointing at an uninstalled script
    meta = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    requires = [line.split(":", 1)[1] for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = {re.split(r"[<>=!~;\[ ]", r.strip())[0] for r in requires if "extra ==" not in r}
    assert core == {"torch", "numpy", "scipy"}, requires
    assert any("diffusers==" in r and "extra ==" in r for r in requires)  # the examples' pin, optional


DECOY = """NAME = "decoy {name}"\n"""
CHECK = """
import importlib.util, sys
import training, evaluation
import training.loop
import infonoise
from infonoise import DiscreteVP, InfoNoiseSampler, RectifiedFlow

site = sys.argv[1]
assert training.NAME == "decoy training" and training.loop.NAME == "decoy training.loop", training.__file__
assert evaluation.NAME == "decoy evaluation", evaluation.__file__
for module in (training, evaluation, infonoise):
    assert module.__file__.startswith(site), module.__file__
for name in ("schedulers", "sampling", "torch_utils", "dnnlib", "analysis", "dna", "benchmarks", "train", "fid"):
    assert importlib.util.find_spec(name) is None, name
sampler = InfoNoiseSampler(RectifiedFlow(), "velocity", fixed_profile={"sigma": [0.001, 100.0], "mmse": [1e-6, 1.0]})
t = sampler.sample(1000)
assert 0 < float(t.min()) and float(t.max()) < 1 and sampler.grid(4)[-1] == 0
vp = InfoNoiseSampler(DiscreteVP([0.99, 0.9, 0.5, 0.1, 0.01]), "epsilon")
assert vp.sample(10).dtype.is_floating_point is False
print("both import")
"""


def test_installs_beside_decoy_training_and_evaluation_packages(wheel, tmp_path):
    """A fresh environment with its own `training` (and `training.loop`) and `evaluation`; the wheel installed into
    it; an isolated interpreter (`-I`: no checkout, no PYTHONPATH on the path) imports the decoys as they were and
    the library from site-packages, finds none of the framework's names, and runs a sampler."""
    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    site = Path(
        subprocess.run(
            [str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for name in ("training", "evaluation"):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(DECOY.format(name=name))
    (site / "training" / "loop.py").write_text(DECOY.format(name="training.loop"))
    # torch, numpy, scipy from this interpreter's site-packages (a .pth line adds the folder, not its .pth files)
    deps = {str(Path(m.__file__).resolve().parents[1]) for m in (torch, __import__("numpy"), __import__("scipy"))}
    (site / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    before = {p: p.read_text() for p in site.rglob("*.py")}
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "already exists" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert all(p.read_text() == text for p, text in before.items())  # the decoys untouched
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".pth"))) == [
        "evaluation",
        "infonoise",
        "training",
    ]
    r = subprocess.run(
        [str(env / "bin" / "python"), "-I", "-c", CHECK, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and r.stdout.strip() == "both import", r.stdout + r.stderr
