"""torch_utils.checks and the option layer's rules in isolation: numbers by type, range and finiteness,
key=value options typed by their constructor, presets read strictly, and work refused by memory."""

from __future__ import annotations

import math

import click
import pytest
from click.testing import CliRunner

import generate
import train
from sampling import generation
from tests.conftest import TINY_NET
from torch_utils import checks
from training import options


@pytest.mark.parametrize(
    "value,kw,ok",
    [
        (3, dict(integer=True, lo=1), True),
        (0, dict(integer=True, lo=1), False),
        (True, dict(integer=True), False),
        (1.0, dict(integer=True), False),
        (2**63, dict(integer=True), False),
        (2**63 - 1, dict(integer=True), True),
        (0.5, dict(lo=0, hi=1), True),
        (0, dict(lo=0, lo_open=True), False),
        (math.nan, {}, False),
        (math.inf, {}, False),
        (math.inf, dict(allow_inf=True), True),
        (-math.inf, dict(allow_inf=True), False),
        (1e300, dict(hi=1e6), False),
        ("1", {}, False),
    ],
)
def test_check_number(value, kw, ok):
    if ok:
        assert checks.check_number(value, "x", **kw) == value
    else:
        with pytest.raises(ValueError, match="^x must be"):
            checks.check_number(value, "x", **kw)


def test_number_click_type_refuses_what_click_ranges_let_pass():
    @click.command()
    @click.option("--p", type=checks.Float(0, 1))
    @click.option("--n", type=checks.Int(1))
    def cmd(p, n):
        click.echo(f"{p} {n}")

    for args, says in ((["--p", "nan"], "--p"), (["--n", "100000000000000000000"], "--n"), (["--n", "1.5"], "--n")):
        r = CliRunner().invoke(cmd, args)
        assert r.exit_code == 2 and f"Invalid value for '{says}'" in r.output
    assert CliRunner().invoke(cmd, ["--p", "0.5", "--n", "3"]).output == "0.5 3\n"


def test_check_kwargs_types_by_annotation_then_default():
    def f(a: int | str | None = "auto", b: float = 1.0, c=(1, 2), d=None, e: bool = False):
        pass

    checks.check_kwargs(f, dict(a=3, b=2, c=[1, 2], d={"x": [1]}, e=True), "--o")
    checks.check_kwargs(f, dict(a="auto", b=0.5), "--o")
    for bad, says in (
        (dict(a=1.5), "--o a must be"),
        (dict(b="x"), "--o b must be"),
        (dict(b=math.nan), "--o b must be a finite number"),
        (dict(c=5), "--o c must be list"),
        (dict(d=[math.inf]), r"--o d\[0\] must be a finite number"),
        (dict(e=1), "--o e must be bool"),
        (dict(a=10**30), "--o a must be an integer"),
    ):
        with pytest.raises(ValueError, match=says):
            checks.check_kwargs(f, bad, "--o")


def test_preset_duplicate_key_and_numbers(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("lr: 0.1\nbatch: 8\nlr: 0.2\n")
    with pytest.raises(options.OptionError, match=r"p\.yaml: key 'lr' is given twice \(line 1 and line 3\)"):
        options.load_preset(str(p))
    p.write_text("lr: 1e-3\nscheduler_kwargs: {P_mean: -1.2e0}\n")  # YAML 1.1 would read 1e-3 as a string
    assert options.load_preset(str(p)) == {"lr": 0.001, "scheduler_kwargs": {"P_mean": -1.2}}
    p.write_bytes(b"lr: 0.1  # na\xefve\n")
    with pytest.raises(options.OptionError, match=r"p\.yaml: not UTF-8 text \(byte 0xef"):
        options.load_preset(str(p))
    assert options.parse_kv(["a=1e-3", "b=nan", "c=[1, 2]", "d=auto", "e=7"], "--x")["a"] == 0.001
    kv = options.parse_kv(["b=nan", "c=[1, 2]", "d=auto", "e=7"], "--x")
    assert math.isnan(kv["b"]) and kv["c"] == [1, 2] and kv["d"] == "auto" and kv["e"] == 7
    with pytest.raises(options.OptionError, match="--x a is given twice"):
        options.parse_kv(["a=1", "a=2"], "--x")


@pytest.fixture
def small_memory(monkeypatch):
    """A machine of 1 MiB: the memory checks refuse work that a real one would take."""
    monkeypatch.setattr(checks, "memory_bytes", lambda: 2**20)


def test_seed_lists_are_counted_before_they_are_built(small_memory):
    assert generation.parse_int_list("0-99,500") == list(range(100)) + [500]
    with pytest.raises(ValueError, match=r"'0-99999' is 100,000 seeds, whose list alone needs about 6\.1 MiB"):
        generation.parse_int_list("0-99999")
    with pytest.raises(ValueError, match="int64"):
        generation.parse_int_list("0,99999999999999999999")


def test_sizes_refused_with_the_memory_they_need(small_memory, tmp_path, tiny_zip):
    base = ["--outdir", str(tmp_path), "--data", str(tiny_zip), *TINY_NET, "--dry-run", "--sample-grid", "0"]
    r = CliRunner().invoke(train.main, [*base, "--batch", "4096"])
    assert r.exit_code != 0 and "option 'batch' (--batch) = 4096 of [1, 8, 8] needs about 8 MiB" in r.output
    r = CliRunner().invoke(train.main, [*base, "--batch", "8", "--sample-grid", "1024"])
    assert r.exit_code != 0 and "option 'sample_grid' (--sample-grid) = 1024" in r.output


def test_generate_refuses_kept_samples_that_do_not_fit(tmp_path, tiny_zip, monkeypatch):
    """--npz keeps every sample: their size is checked before sampling (here on a machine of 4 MiB)."""
    r = CliRunner().invoke(
        train.main,
        ["--outdir", str(tmp_path), "--data", str(tiny_zip), *TINY_NET, "--batch", "8", "--duration", "0.000008"]
        + ["--sample-grid", "0", "--desc", "r"],
    )
    assert r.exit_code == 0, r.output
    snap = next((tmp_path / "r").glob("network-snapshot-*.pt"))
    monkeypatch.setattr(checks, "memory_bytes", lambda: 4 * 2**20)
    r = CliRunner().invoke(
        generate.main, ["--network", str(snap), "--npz", str(tmp_path / "s.npz"), "--seeds", "0-9999"]
    )
    assert r.exit_code != 0 and "10,000 samples of [1, 8, 8] kept for one file needs about" in r.output
    assert "--seeds" in r.output and not (tmp_path / "s.npz").exists()
