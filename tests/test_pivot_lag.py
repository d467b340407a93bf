"""`python -m analysis.pivot_lag`: undoing the m̂ EMA recovers each refresh's FIFO means exactly, the valley
rule on them shows the valley a stale EMA hides, a wrong β is refused, and the command reads β from a run."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from analysis import pivot_lag
from tests.test_infonoise import exact, feed_grid, valley_mmse

F64 = torch.float64
# These tests drive the rule on synthetic profiles, with no data set behind them: on a discrete endpoint that is the
# rule without the Bayes cap, which the default warns about (docs/method.md §4b; tests/test_bayes_cap.py tests it).
pytestmark = pytest.mark.filterwarnings("ignore:InfoNoise. the default mmse_cap:UserWarning")


def young(sigma):
    """A young network's profile: flat ln(m̂/σ²) far above the trained one (no valley)."""
    return 1e3 * sigma**2


def recorded_run(beta: float, profiles) -> tuple[list[dict], list[torch.Tensor]]:
    """Refresh records of a discrete InfoNoise fed one profile per refresh (each feed replaces the FIFOs)."""
    s = exact(endpoint="discrete", ema_beta=beta, fifo_size=8)
    records, fed = [], []
    for step, fn in enumerate(profiles):
        feed_grid(s, fn, 8)
        fed.append(fn(s.sigma).to(F64))
        records.append(json.loads(json.dumps(s.step(step))))  # as schedule.jsonl stores it
    return records, fed


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_fifo_means_are_recovered_exactly(beta):
    records, fed = recorded_run(beta, [young] + [lambda sg: valley_mmse(sg, 4.0)] * 3)
    mhat = [torch.tensor(r["mmse"], dtype=F64) for r in records]
    scale = max(float(m.abs().max()) for m in mhat)  # undoing the EMA cancels terms of this size
    for got, want in zip(pivot_lag.fifo_means(mhat, beta), fed):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * scale)


def test_replay_shows_the_valley_the_stale_ema_hides():
    """β = 0.9: after a young refresh the run stays on the fallback for all three valley refreshes (the young
    estimate still dominates m̂), while each of those refreshes' own means shows the valley at σ ≈ 0.3."""
    records, _ = recorded_run(0.9, [young] + [lambda sg: valley_mmse(sg, 4.0)] * 3)
    rows = pivot_lag.replay(records, 0.9)
    assert [r["pivot_rule"] for r in rows] == ["fallback"] * 4
    assert [r["fresh_qualifies"] for r in rows] == [False, True, True, True]
    assert all(0.27 < r["fresh_valley"] < 0.36 for r in rows[1:])
    assert pivot_lag.lag(rows) == (1, None)
    fresh = pivot_lag.replay(recorded_run(0.0, [young] + [lambda sg: valley_mmse(sg, 4.0)] * 3)[0], 0.0)
    assert pivot_lag.lag(fresh) == (1, 1)  # without memory the run uses the valley as soon as it shows


def test_wrong_beta_is_refused():
    records, _ = recorded_run(0.5, [young] + [lambda sg: valley_mmse(sg, 4.0)] * 2)
    with pytest.raises(ValueError, match="β = 0.9"):
        pivot_lag.replay(records, 0.9)


def test_command_reads_beta_from_the_run(tmp_path):
    records, _ = recorded_run(0.9, [young] + [lambda sg: valley_mmse(sg, 4.0)] * 2)
    assert all(r.pop("ema_beta") == 0.9 for r in records)  # as written before records carried β
    run = tmp_path / "infonoise-s0"
    run.mkdir()
    (run / "schedule.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "training_options.json").write_text(json.dumps({"scheduler_kwargs": {"min_count": 4}}))  # β: default
    out = tmp_path / "lag.md"
    result = CliRunner().invoke(pivot_lag.main, [str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(β = 0.9)" in out.read_text() and "from step 1; used by the run from step never" in out.read_text()
    bare = CliRunner().invoke(pivot_lag.main, [str(run / "schedule.jsonl")])
    assert bare.exit_code != 0 and "pass --ema-beta" in bare.output
    with open(run / "schedule.jsonl", "a") as f:
        f.write('{"step": 3, "sigma"')  # a run killed mid-write: the truncated line is skipped
    with pytest.warns(UserWarning, match="truncated"):
        copied = CliRunner().invoke(pivot_lag.main, [str(run / "schedule.jsonl"), "--ema-beta", "0.9"])
    assert copied.exit_code == 0 and copied.output.split("\n", 1)[1] == result.output.split("\n", 1)[1]
    # Records that carry their β need no options file; the record wins over the options' default
    new, _ = recorded_run(0.5, [young] + [lambda sg: valley_mmse(sg, 4.0)] * 2)
    (tmp_path / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))
    carried = CliRunner().invoke(pivot_lag.main, [str(tmp_path / "new.jsonl")])
    assert carried.exit_code == 0 and "(β = 0.5)" in carried.output, carried.output
    missing = CliRunner().invoke(pivot_lag.main, [str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "nowhere: run directory not found" in missing.output


def test_freshness_lag_in_refreshes():
    """The freshness check (docs/method.md §5): with β = 0.5 the run trails the valley its own statistics show;
    with today's β = 0 it uses it at the refresh that shows it; --max-lag fails a stale run."""
    profiles = [young, young] + [lambda sg: valley_mmse(sg, 4.0)] * 4
    stale = pivot_lag.replay(recorded_run(0.5, profiles)[0], 0.5)
    fresh = pivot_lag.replay(recorded_run(0.0, profiles)[0], 0.0)
    assert pivot_lag.lag_refreshes(fresh) == 0 and pivot_lag.lag_refreshes(stale) >= 1
    never = pivot_lag.replay(recorded_run(0.0, [young] * 3)[0], 0.0)
    assert pivot_lag.lag_refreshes(never) is None


def test_freshness_check_on_a_recorded_run_with_the_default_settings(tmp_path):
    """A recorded profile sequence of the tables' new defaults (benchmarks/results/ttt-digits-binary-defaults,
    seed 0): the run uses the valley no later than one refresh after its own statistics show it."""
    from benchmarks.common import REPO

    path = REPO / "benchmarks" / "results" / "ttt-digits-binary-defaults" / "infonoise-s0-schedule.jsonl"
    if not path.is_file():
        pytest.skip("the digits-binary defaults table has not recorded seed 0 yet")
    ok = CliRunner().invoke(pivot_lag.main, [str(path), "--max-lag", "1"])
    assert ok.exit_code == 0, ok.output
    rows = pivot_lag.replay(pivot_lag.load_schedule(path), 0.0)
    late = pivot_lag.lag_refreshes(rows)
    assert late is None or late <= 1  # None: its statistics have shown no valley yet (a table still running)
    fresh, used = pivot_lag.lag(rows)
    assert (fresh is None) == (used is None)  # with β = 0 the run uses a valley exactly when its statistics show it
    old = REPO / "benchmarks" / "results" / "ttt-digits-binary" / "infonoise-s0-schedule.jsonl"
    failed = CliRunner().invoke(pivot_lag.main, [str(old), "--ema-beta", "0.5", "--max-lag", "1"])
    assert failed.exit_code != 0 and "trails its own statistics by 3 refreshes" in failed.output


def test_onset_rows_compare_the_runs_pivot_with_its_own_statistics():
    from tests.test_infonoise import gauss_mmse

    s = exact(ema_beta=0.0)
    records = []
    for step in range(3):
        feed_grid(s, gauss_mmse, 8)
        records.append(json.loads(json.dumps(s.step(step))))
    rows = pivot_lag.replay(records, 0.0)
    assert all(r["pivot_rule"] == "onset" and r["fresh_qualifies"] for r in rows)
    assert pivot_lag.lag_refreshes(rows) == 0
    records[1]["sigma_p"] *= 3  # a pivot that does not follow its statistics
    assert pivot_lag.lag_refreshes(pivot_lag.replay(records, 0.0)) == 1
