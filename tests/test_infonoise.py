"""The InfoNoise scheduler (docs/method.md §5) against the Gaussian oracle (§7), its own state machine, the
checkpoint round trip, and two ranks under torchrun."""

import collections
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch

import schedulers
from schedulers import information as info
from schedulers.base import uniform
from schedulers.infonoise import InfoNoise
from schedulers.lognormal import LogNormal

F64 = torch.float64
# These tests drive the rule on synthetic profiles, with no data set behind them: on a discrete endpoint that is the
# rule without the Bayes cap, which the default warns about (docs/method.md §4b; tests/test_bayes_cap.py tests it).
pytestmark = pytest.mark.filterwarnings("ignore:InfoNoise. the default mmse_cap:UserWarning")
REPO = Path(__file__).resolve().parents[1]
C, D = 0.5, 3072  # Gaussian oracle X0 ~ N(0, c²·I_D)


def gauss_mmse(s):
    return D * C**2 * s**2 / (C**2 + s**2)


def gauss_hdot(s):
    return D * C**2 / (s * (C**2 + s**2))


def feed_grid(sched, errors_fn, reps):
    """Push errors_fn(σ_k) for every bin centre `reps` times: bin means are then exact."""
    for _ in range(reps):
        sched.observe(sched.sigma, errors_fn(sched.sigma))


def onset_scan(r, tau=0.002, k=3):
    """Independent docs/method.md §4 onset rule: first σ from the top with r ≥ τ on k consecutive bins."""
    return next(i for i in range(len(r) - 1, k - 2, -1) if all(r[i - d] >= tau for d in range(k)))


def loguniform_cdf(x):
    return np.clip(np.log(np.asarray(x) / 0.002) / math.log(40000), 0, 1)


def exact(**kw):
    return InfoNoise(**dict(dict(warmup_steps=0, refresh_every=1, min_count=8), **kw))


# -- Gaussian oracle (§7) ------------------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["edm", "unit"])
def test_gaussian_oracle_exact(weighting):
    s = exact(weighting=weighting, smooth_std=0)
    feed_grid(s, gauss_mmse, 8)
    rec = s.step(0)
    sg = s.sigma.numpy()
    np.testing.assert_allclose(s.hdot, gauss_hdot(sg), rtol=1e-12)
    h = gauss_hdot(sg)
    sp = sg[onset_scan(h / h.max())]
    assert rec["sigma_p"] == s.sigma_p == sp
    rho = sg**3 / (sg**3 + sp**3) * h
    rho /= (sg * rho).sum() * math.log(80 / 0.002) / 128
    np.testing.assert_allclose(s.alloc, rho, rtol=1e-10)
    w = (sg**2 + 0.25) / (sg * 0.5) ** 2 if weighting == "edm" else np.ones_like(sg)
    p = sg * rho / w
    p = 0.98 * p / p.mean() + 0.02  # floor, in units of the log-uniform density
    np.testing.assert_allclose(s.log_dens / s.log_dens.mean(), p, rtol=1e-10)
    np.testing.assert_allclose(s.density(s.sigma), s.log_dens / s.sigma, rtol=1e-12)
    prof = s.profile()
    np.testing.assert_allclose(prof["schedule"], s.density(s.sigma), rtol=1e-12)
    assert prof["sigma_p"] == sp and prof["refreshes"] == 1


def test_gaussian_oracle_smoothing_and_ema():
    s = exact(smooth_std=1.0, ema_beta=0.9)
    feed_grid(s, gauss_mmse, 8)
    s.step(0)
    sg, h = s.sigma.numpy(), gauss_hdot(s.sigma.numpy())
    gh = sg**3 / (sg**3 + s.sigma_p**3) * h
    expect = scipy.ndimage.gaussian_filter1d(gh, 1.0, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(s.alloc / s.alloc.sum(), expect / expect.sum(), rtol=1e-10)
    feed_grid(s, lambda x: 2 * gauss_mmse(x), s.fifo_size)  # flush the FIFO with doubled errors
    s.step(1)
    np.testing.assert_allclose(s.mhat, 1.1 * gauss_mmse(s.sigma), rtol=1e-12)  # β·m + (1−β)·2m


def test_gaussian_oracle_online():
    """Realistic path: σ drawn by the scheduler itself, exact mmse(σ_i) as errors."""
    s = InfoNoise(warmup_steps=200, refresh_every=50, fifo_size=64, min_count=8)
    gen, recs = torch.Generator().manual_seed(0), []
    for step in range(1, 451):
        sigma = s.sample(512, gen)
        s.observe(sigma, gauss_mmse(sigma.double()))
        recs.append(s.step(step))
    assert [r["step"] for r in recs if r] == [200, 250, 300, 350, 400, 450]
    rel = (s.hdot / gauss_hdot(s.sigma) - 1).abs()  # within-bin spread of mmse(σ_i) only;
    assert rel.max() < 0.03 and rel.mean() < 0.005  # one bin off would be ≈ 8 % at low σ


# -- state machine ---------------------------------------------------------------------------------


def test_refresh_timing_warmup_and_min_count():
    s = InfoNoise(num_bins=8, fifo_size=4, min_count=2, warmup_steps=20, refresh_every=10, warmup_sampler="lognormal")
    assert s.profile() is None and s.step(20) is None
    x = np.logspace(-3, 2, 50)
    loguniform = ((x >= 0.002) & (x <= 80)) / (x * math.log(40000))
    expect = 0.98 * scipy.stats.lognorm.pdf(x, 1.2, scale=math.exp(-1.2)) + 0.02 * loguniform
    np.testing.assert_allclose(s.density(torch.from_numpy(x)), expect, rtol=1e-12)
    feed_grid(s, gauss_mmse, 1)
    assert s.step(20) is None  # one bin-count short of min_count
    feed_grid(s, gauss_mmse, 1)
    assert s.step(10) is None and s.step(25) is None  # before warm-up / off the cadence
    assert s.step(20)["refresh"] == 1 and s.step(20) is None  # at most once per step
    assert s.step(30)["refresh"] == 2 and s.profile()["refreshes"] == 2


def test_warmup_sampler():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    lognormal = dict(warmup_sampler="lognormal")
    assert torch.equal(InfoNoise(floor=0, **lognormal).sample(1000, g1), LogNormal(-1.2, 1.2).sample(1000, g2))
    s = InfoNoise(floor=0.1, warmup_P_mean=-0.5, warmup_P_std=1.5, **lognormal).sample(20000, g1).double().numpy()
    cdf = lambda x: (
        0.9 * scipy.stats.norm.cdf((np.log(x) + 0.5) / 1.5) + 0.1 * np.clip(np.log(x / 0.002) / math.log(40000), 0, 1)
    )
    assert scipy.stats.kstest(s, cdf).pvalue > 0.01


def test_discrete_warmup_is_loguniform_and_fills_every_bin():
    """Spec §5: discrete endpoints warm up log-uniformly (KS), so at batch 128 and M = 128 every bin holds
    n_min = 8 errors well before a warm-up of 64 steps ends (expected 64 per bin; v1's floored log-normal
    gave each end bin ε/M ≈ 1.6e-4 of the draws: ≈ 1 error there by then) and the first refresh comes at
    the configured warm-up end."""
    g = torch.Generator().manual_seed(0)
    x = InfoNoise(endpoint="discrete").sample(20000, g).double().numpy()
    assert scipy.stats.kstest(x, loguniform_cdf).pvalue > 0.01
    assert InfoNoise(endpoint="discrete").warmup_sampler == "loguniform"
    assert InfoNoise(endpoint="continuous").warmup_sampler == "loguniform"  # the automatic warm-up, both endpoints
    firsts = {}
    for sampler in ("loguniform", "lognormal"):
        s = InfoNoise(endpoint="discrete", warmup_sampler=sampler, warmup_steps=64, refresh_every=16, min_count=8)
        g = torch.Generator().manual_seed(1)
        firsts[sampler] = None
        for step in range(1, 641):
            sigma = s.sample(128, g)
            if firsts[sampler] is None:  # only the warm-up sampler matters here
                s.observe(sigma, torch.ones(128))
                if s.step(step) is not None:
                    firsts[sampler] = step
                    break
    assert firsts["loguniform"] == 64  # at the configured warm-up end
    assert firsts["lognormal"] is None or firsts["lognormal"] > 320
    s = InfoNoise(endpoint="discrete")
    np.testing.assert_allclose(
        s.density(torch.tensor([0.002, 1.0, 80.0], dtype=F64)),
        1 / (np.array([0.002, 1.0, 80.0]) * math.log(40000)),
        rtol=1e-12,
    )
    masses = s._masses()
    assert torch.allclose(masses[:-1], torch.full((128,), 1 / 128, dtype=F64)) and masses[-1] == 0


def test_observe_matches_reference_fifo():
    """Vectorised ring buffer == one deque(maxlen=B) per bin, fed in batch order, incl. floods > B."""
    M, B = 8, 5
    s = InfoNoise(num_bins=M, fifo_size=B, min_count=1)
    ref = [collections.deque(maxlen=B) for _ in range(M)]
    gen = torch.Generator().manual_seed(0)
    for n in (3, 40, 1, 17, 64):
        sigma = torch.exp(math.log(0.002) + math.log(40000) * torch.rand(n, generator=gen, dtype=F64))
        if n == 17:
            sigma[:12] = s.sigma[3]  # 12 > B in one bin and one batch
        err = torch.rand(n, generator=gen, dtype=F64)
        s.observe(sigma.float(), err)
        for k, e in zip(info.bin_index(sigma.float(), 0.002, 80, M).tolist(), err.tolist()):
            ref[k].append(e)
        for k in range(M):
            assert s.count[k] == len(ref[k])
            assert sorted(s.buf[k, : len(ref[k])].tolist()) == sorted(ref[k])


def test_observe_ignores_nonfinite_and_out_of_range():
    a, b = exact(num_bins=16, min_count=2), exact(num_bins=16, min_count=2)
    sigma = torch.cat([a.sigma, a.sigma, torch.tensor([0.1, 0.2, math.nan, 0.3, 1e-4, 200.0], dtype=F64)])
    err = torch.cat(
        [
            gauss_mmse(a.sigma),
            gauss_mmse(a.sigma),
            torch.tensor([math.nan, math.inf, 1.0, -math.inf, 5.0, 5.0], dtype=F64),
        ]
    )
    a.observe(sigma, err)
    b.observe(sigma[:32], err[:32])
    a.flush()  # observations are staged until a refresh or a snapshot needs them (no host sync per step)
    assert a.n_nonfinite == 4 and a.n_outside == 2  # out-of-range σ: dropped, counted
    assert torch.equal(a.buf, b.buf) and torch.equal(a.count, b.count)
    assert a.step(0)["n_nonfinite"] == 4 and torch.isfinite(a.table).all()
    b.step(0)
    assert torch.equal(a.table, b.table)


@pytest.mark.parametrize(
    "kw",
    [
        dict(sigma_min=0),
        dict(sigma_min=1, sigma_max=0.5),
        dict(num_bins=2),
        dict(num_bins=12.5),
        dict(fifo_size=0),
        dict(min_count=0),
        dict(min_count=300),
        dict(ema_beta=1.0),
        dict(refresh_every=0),
        dict(warmup_steps=-1),
        dict(smooth_std=-1),
        dict(gate_n=0),
        dict(tau=0),
        dict(tau=2),
        dict(k_persist=0),
        dict(k_persist=200),
        dict(powerlaw_tol=0),
        dict(powerlaw_min_decades=-1),
        dict(slope_smooth_std=-0.5),
        dict(floor=1.0),
        dict(floor=-0.1),
        dict(endpoint="images"),
        dict(sigma_p=0.0),
        dict(weighting="snr"),
        dict(sigma_data=0),
        dict(warmup_P_std=0),
        dict(pivot_rule="knee"),
        dict(valley_kappa=0.9),
        dict(valley_smooth_decades=-1),
        dict(sigma_p_fallback=0),
        dict(valley_hysteresis=0),
        dict(valley_hysteresis=1.5),
        dict(warmup_sampler="uniform"),
    ],
)
def test_bad_arguments_raise(kw):
    with pytest.raises(ValueError, match="infonoise"):
        InfoNoise(**kw)


def test_auto_endpoint_must_be_resolved_by_caller():
    with pytest.raises(ValueError, match="resolved"):
        InfoNoise(endpoint="auto")


def test_observe_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        InfoNoise().observe(torch.ones(3), torch.ones(4))


# -- pivots and Jacobian through the scheduler -------------------------------------------------


def test_discrete_endpoint_v1_and_pinned_pivot():
    s = exact(endpoint="discrete", pivot_rule="powerlaw")
    j = 55  # σ ≈ 0.2: two decades of power law
    x = s.sigma.log() - s.sigma[j].log()
    hdot = torch.exp(torch.where(torch.arange(128) <= j, -0.5 * x, -3.0 * x))
    feed_grid(s, lambda sg: hdot * sg**3, 8)
    rec = s.step(0)
    assert -3 <= int((s.sigma - rec["sigma_p"]).abs().argmin()) - j <= 0  # 2-bin slope smoothing: ≤ 3 bins low
    assert rec["pivot_rule"] == "powerlaw" and rec["prominence"] is None
    p = exact(sigma_p=0.2)
    feed_grid(p, gauss_mmse, 8)
    rec = p.step(0)
    assert rec["sigma_p"] == 0.2 and rec["pivot_rule"] == "pinned"


def valley_mmse(sigma, ratio, s_valley=0.3, s_bump=1.0, s1=0.02):
    """m̂ of a learned-looking ±1 profile (docs/method.md §7): y = ln(m̂/σ²) flat below s1, slope −2 to the valley,
    rising ln(ratio) to the bump, slope −2 above (as tests/test_information.py's `learned_profile`)."""
    x = sigma.log()
    xv, xb = math.log(s_valley), math.log(s_bump)
    y = torch.where(x < math.log(s1), 0.0, -2 * (x - math.log(s1)))
    yv = -2 * (xv - math.log(s1))
    y = torch.where((x > xv) & (x <= xb), yv + math.log(ratio) * (x - xv) / (xb - xv), y)
    y = torch.where(x > xb, yv + math.log(ratio) - 2 * (x - xb), y)
    return sigma**2 * y.exp()


def test_fallback_is_the_pinned_control_draw_for_draw():
    """While no valley qualifies, the automatic run *is* the pinned control (σ_p = sigma_p_fallback = 0.2):
    same table, same draws from the same generator; only the recorded rule differs. RESULTS.md §3b reads a
    run that never left the fallback as its pinned control on this ground."""
    auto, pinned = exact(endpoint="discrete"), exact(endpoint="discrete", sigma_p=0.2)
    for step, ratio in enumerate((1.0, 1.2)):  # no bump, then one below κ = 1.5
        for s in (auto, pinned):
            feed_grid(s, lambda sg: valley_mmse(sg, ratio), 8)
        a, p = auto.step(step), pinned.step(step)
        assert (a["pivot_rule"], p["pivot_rule"]) == ("fallback", "pinned") and a["sigma_p"] == p["sigma_p"] == 0.2
        assert torch.equal(auto.log_dens, pinned.log_dens)
        draw = lambda s: s.sample(4096, torch.Generator().manual_seed(step))  # noqa: E731
        assert torch.equal(draw(auto), draw(pinned))


def test_discrete_valley_pivot_records_and_hysteresis():
    """v2 through the scheduler: a bump of 4× gives the valley (rule and prominence recorded); a young
    monotone profile the fallback; once a valley was found, a bump that sags to a prominence between
    ½·ln κ and ln κ keeps the valley rule (hysteresis), while valley_hysteresis = 1 is the stateless rule."""
    s = exact(endpoint="discrete", ema_beta=0.0, fifo_size=8)  # each feed replaces the FIFOs
    feed_grid(s, lambda sg: valley_mmse(sg, 1.0), 8)
    rec = s.step(0)
    assert (rec["sigma_p"], rec["pivot_rule"]) == (0.2, "fallback") and rec["prominence"] < math.log(1.5)
    feed_grid(s, lambda sg: valley_mmse(sg, 4.0), 8)
    rec = s.step(1)
    assert rec["pivot_rule"] == "valley" and 0.29 < rec["sigma_p"] < 0.36 and rec["prominence"] > math.log(1.5)
    assert s.profile()["sigma_p"] == rec["sigma_p"] and s.history[-1]["pivot_rule"] == "valley"
    sagged = lambda sg: valley_mmse(sg, 2.0)  # noqa: E731
    prom = info.most_prominent_valley(info.entropy_rate(sagged(s.sigma), s.sigma), s.sigma).prominence
    assert 0.5 * math.log(1.5) <= prom < math.log(1.5)
    feed_grid(s, sagged, 8)
    assert s.step(2)["pivot_rule"] == "valley"
    stateless = exact(endpoint="discrete", ema_beta=0.0, fifo_size=8, valley_hysteresis=1.0)
    for step, ratio in enumerate((4.0, 2.0)):
        feed_grid(stateless, lambda sg: valley_mmse(sg, ratio), 8)
        rec = stateless.step(step)
    assert (rec["sigma_p"], rec["pivot_rule"]) == (0.2, "fallback")
    feed_grid(s, lambda sg: valley_mmse(sg, 1.0), 8)  # the bump gone: fallback even with hysteresis
    assert s.step(3)["pivot_rule"] == "fallback"


def _has_profile(path) -> bool:
    """InfoNoise's records carry m̂ ("mmse"); lossvar's (its loss second moments) do not."""
    with open(path) as f:
        return "mmse" in json.loads(f.readline() or "{}")


RECORDED = sorted(p for p in REPO.glob("benchmarks/results/*/*schedule.jsonl") if _has_profile(p))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valley_pivot_on_recorded_profiles_never_jumps(path):
    """Regression on real learned profiles (every InfoNoise schedule.jsonl under benchmarks/results/, v1 and
    v2 runs): replaying their m̂ through the v2 rule, once a refresh has found a valley, every later refresh
    finds one too, within 2 bins of the previous."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    sigma = torch.tensor(records[0]["sigma"], dtype=F64)
    s = exact(endpoint="discrete", num_bins=len(sigma), ema_beta=0.0)
    assert torch.allclose(s.sigma, sigma, rtol=1e-12)
    found = []
    for i, r in enumerate(records):
        rec = s._refresh(torch.tensor(r["mmse"], dtype=F64), i, 8)
        found.append((rec["pivot_rule"], int(info.bin_index(torch.tensor(rec["sigma_p"]), 0.002, 80, len(sigma)))))
    first = next((i for i, (rule, _) in enumerate(found) if rule == "valley"), len(found))
    assert all(rule == "valley" for rule, _ in found[first:]), found
    assert all(abs(a[1] - b[1]) <= 2 for a, b in zip(found[first:], found[first + 1 :])), found


def test_jacobian_flat_allocation_samples_loguniform():
    """errors = σ² ⇒ σ·ḣ = 1: flat per ln σ. With w ≡ 1, no gate, no smoothing, σ must be log-uniform;
    a scheduler that tabulated π per unit σ as if per ln σ would sample ∝ 1/σ in ln σ and fail."""
    s = exact(weighting="unit", sigma_p=1e-12, smooth_std=0)
    feed_grid(s, lambda sg: sg**2, 8)
    s.step(0)
    x = s.sample(20000, torch.Generator().manual_seed(1)).double().numpy()
    assert scipy.stats.kstest(x, loguniform_cdf).pvalue > 0.01


def test_edm_weighted_schedule_density_ks():
    """Same flat allocation with w = λ_EDM: per ln σ the draws follow (0.98·∝1/λ(σ_k) + 0.02) per bin."""
    s = exact(weighting="edm", sigma_p=1e-12, smooth_std=0)
    feed_grid(s, lambda sg: sg**2, 8)
    s.step(0)
    sg = s.sigma.numpy()
    p = sg**2 / (sg**2 + 0.25)  # ∝ 1/λ
    p = 0.98 * p / p.sum() + 0.02 / 128
    edges = np.linspace(math.log(0.002), math.log(80), 129)
    cdf = lambda x: np.interp(np.log(x), edges, np.concatenate([[0], np.cumsum(p)]))
    x = s.sample(20000, torch.Generator().manual_seed(2)).double().numpy()
    assert scipy.stats.kstest(x, cdf).pvalue > 0.01
    assert scipy.stats.kstest(x, loguniform_cdf).pvalue < 1e-10


# -- records, checkpoints, registry ------------------------------------------------------------------


def test_record_is_json_and_consistent():
    s = exact()
    feed_grid(s, gauss_mmse, 8)
    rec = s.step(0)
    json.dumps(rec)
    assert 0 < rec["tv_change"] <= 1 and rec["refresh"] == 1 and rec["step"] == 0 and rec["min_count"] == 8
    for kind in ("alloc", "sched"):
        q = [rec[f"{kind}_q{p}"] for p in ("05", "25", "50", "75", "95")]
        assert q == sorted(q) and 0.002 <= q[0] and q[-1] <= 80
    assert all(len(rec[k]) == 128 for k in ("sigma", "mmse", "hdot", "allocation", "log_density"))
    assert len(rec["cdf"]) == 129
    rec2 = s.step(1)  # same FIFO ⇒ same m̂ ⇒ no change
    assert rec2["tv_change"] < 1e-12 and s.history[-1]["refresh"] == 2 and "cdf" not in s.history[-1]


def run(sched, gen, steps):
    draws, recs = [], []
    for step in steps:
        sigma = sched.sample(256, gen)
        sched.observe(sigma, gauss_mmse(sigma.double()) * (1 + 0.3 * torch.rand(256, generator=gen, dtype=F64)))
        draws.append(sigma)
        recs.append(sched.step(step))
    return torch.cat(draws), [r for r in recs if r]


def test_state_dict_round_trip_continues_identically():
    kw = dict(num_bins=16, fifo_size=16, min_count=2, warmup_steps=20, refresh_every=10, floor=0.1)
    a, gen = InfoNoise(**kw), torch.Generator().manual_seed(0)
    assert len(run(a, gen, range(1, 36))[1]) == 2  # refreshed at 20 and 30; FIFO mid-way
    buf = io.BytesIO()
    torch.save(dict(sched=a.state_dict(), rng=gen.get_state()), buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b, gen_b = InfoNoise(**kw), torch.Generator()
    b.load_state_dict(saved["sched"])
    gen_b.set_state(saved["rng"])
    draws_a, recs_a = run(a, gen, range(36, 71))
    draws_b, recs_b = run(b, gen_b, range(36, 71))
    assert torch.equal(draws_a, draws_b) and len(recs_a) == 4 and recs_a == recs_b
    assert torch.equal(a.table, b.table) and a.history == b.history
    with pytest.raises(ValueError, match="num_bins"):
        InfoNoise(**dict(kw, num_bins=32)).load_state_dict(saved["sched"])


def test_registry_build():
    ctx = dict(
        sigma_min=0.002,
        sigma_max=80.0,
        sigma_data=0.5,
        weighting="unit",
        endpoint="discrete",
        P_mean=-1.2,
        dataset="mnist",
    )
    s = schedulers.build("infonoise", context=ctx, refresh_every=10)
    assert isinstance(s, InfoNoise) and s.refresh_every == 10 and s.weighting == "unit" and s.endpoint == "discrete"
    assert "infonoise" in schedulers.names()


# -- two ranks -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["fixed", "auto"])
def test_two_ranks_build_identical_tables(tmp_path, mode):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(REPO / "tests" / "dist_infonoise_worker.py"),
        str(tmp_path),
        mode,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["steps"] == r1["steps"] and len(r0["steps"]) >= 5
    s0, s1 = r0["state"], r1["state"]
    assert not torch.equal(s0["buf"], s1["buf"])  # ranks saw different errors ...
    for key in ("mhat", "hdot", "alloc", "log_dens", "table"):  # ... yet hold identical tables
        assert torch.equal(s0[key], s1[key]), key
    assert s0["sigma_p"] == s1["sigma_p"] and s0["history"] == s1["history"]
    f0, f1 = r0["first"], r1["first"]  # first refresh: m̂ = Σsums/Σcounts
    pooled = (f0["buf"].sum(1) + f1["buf"].sum(1)) / (f0["count"] + f1["count"]).double()
    np.testing.assert_allclose(f0["mhat"], pooled, rtol=1e-14)
    if mode == "auto":  # the cadence counts both ranks' errors: ⌈0.125·32·64 / (128 + 64)⌉ = 2 steps
        assert s0["auto_every"] == s1["auto_every"] == 2
        gaps = np.diff(r0["steps"])
        assert all(g == max(2, math.ceil(s / 32)) for g, s in zip(gaps, r0["steps"][1:])), r0["steps"]


def test_staged_observations_give_the_same_fifos_and_tables():
    """Observations staged over many steps and folded in at the refresh give bitwise the FIFOs and the table
    of pushing every batch at once (the pre-staging behaviour), floods larger than B included."""
    gen = torch.Generator().manual_seed(3)
    batches = [
        (torch.exp(math.log(0.002) + math.log(40000) * torch.rand(n, generator=gen)), torch.rand(n, generator=gen))
        for n in (64, 300, 7, 128, 1000)
    ]
    staged, eager = exact(num_bins=16, fifo_size=32, min_count=1), exact(num_bins=16, fifo_size=32, min_count=1)
    for sigma, err in batches:
        staged.observe(sigma.float(), err.float())
        eager.observe(sigma.float(), err.float())
        eager.flush()
    assert staged._staged and not eager._staged
    staged.step(0), eager.step(0)
    for name in ("buf", "ptr", "count", "table", "mhat"):
        assert torch.equal(getattr(staged, name), getattr(eager, name)), name
    assert staged.n_observed == eager.n_observed == sum(len(s) for s, _ in batches)


# -- Automatic warm-up and cadence, fresh statistics (docs/method.md §5) --------------------------------


def test_auto_warmup_ends_at_the_first_step_every_bin_is_filled():
    """Log-uniform warm-up, no length given: the first refresh is the first step at which every bin holds
    n_min errors — counted here independently from the drawn σ."""
    for batch in (32, 256):
        s = InfoNoise(endpoint="discrete", min_count=8)
        assert s.warmup_steps is None and s.refresh_every is None and s.ema_beta == 0.0
        gen, counts = torch.Generator().manual_seed(batch), torch.zeros(s.num_bins, dtype=torch.int64)
        for step in range(1, 1000):
            sigma = s.sample(batch, gen)
            counts += torch.bincount(info.bin_index(sigma.double(), 0.002, 80.0, s.num_bins), minlength=s.num_bins)
            s.observe(sigma, sigma.double() ** 2)
            record = s.step(step)
            assert (record is not None) == (counts.min() >= 8 and s.refreshes == 1 and step == s.last_refresh_step)
            if record is not None:
                break
        assert counts.min() >= 8 and s.last_refresh_step == step
        # the cadence then brings ⌈0.125·M·B / batch⌉ steps' worth of new errors per refresh
        assert s.auto_every == math.ceil(0.125 * 128 * 256 / batch)


def test_auto_cadence_counts_errors_and_grows_with_the_run():
    s = InfoNoise(endpoint="discrete", num_bins=16, fifo_size=64, min_count=2)
    gen, steps = torch.Generator().manual_seed(0), []
    for step in range(1, 3001):
        sigma = s.sample(16, gen)
        s.observe(sigma, sigma.double() ** 2)
        if s.step(step) is not None:
            steps.append(step)
    assert s.auto_every == math.ceil(0.125 * 16 * 64 / 16) == 8
    gaps = np.diff(steps)
    assert all(g == max(8, math.ceil(t / 32)) for g, t in zip(gaps, steps[1:]))
    assert gaps[0] == 8 and gaps[-1] == math.ceil(steps[-1] / 32) > 8  # later: 1/32 of the run so far


def test_auto_cadence_resumes_exactly():
    def run(split):
        s, gen, steps = InfoNoise(endpoint="discrete", num_bins=16, fifo_size=32, min_count=2), None, []
        gen = torch.Generator().manual_seed(1)
        for step in range(1, 401):
            if step == split:
                state, g = s.state_dict(), gen.get_state()
                s = InfoNoise(endpoint="discrete", num_bins=16, fifo_size=32, min_count=2)
                s.load_state_dict(torch.load(io.BytesIO(_saved(state)), weights_only=True))
                gen.set_state(g)
            sigma = s.sample(8, gen)
            s.observe(sigma, sigma.double() ** 2 * (1 + torch.rand(8, generator=gen, dtype=torch.float64)))
            if s.step(step) is not None:
                steps.append(step)
        return steps, s.table

    (a, ta), (b, tb) = run(None), run(137)
    assert a == b and torch.equal(ta, tb)


def _saved(state) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_snapshot_from_before_the_auto_defaults_resumes_with_its_own():
    """A state without the automatic-cadence fields was written under β 0.9, K 500, N_warm 1000: a resume
    that does not set them keeps them; options the run set explicitly stay as set."""
    old = InfoNoise(ema_beta=0.9, refresh_every=500, warmup_steps=1000).state_dict()
    del old["first_step"], old["auto_every"]
    s = InfoNoise()
    s.load_state_dict(old)
    assert (s.ema_beta, s.refresh_every, s.warmup_steps) == (0.9, 500, 1000)
    assert s.warmup_sampler == "lognormal"  # continuous runs warmed up on the floored log-normal then
    s = InfoNoise(endpoint="discrete")
    s.load_state_dict(old)
    assert s.warmup_sampler == "loguniform"
    s = InfoNoise(ema_beta=0.5, refresh_every=50, warmup_steps=100)
    s.load_state_dict(old)
    assert (s.ema_beta, s.refresh_every, s.warmup_steps) == (0.5, 50, 100)
    s = InfoNoise()
    s.load_state_dict(InfoNoise().state_dict())  # a new snapshot keeps the new defaults
    assert (s.ema_beta, s.refresh_every, s.warmup_steps) == (0.0, None, None)


def test_refresh_records_carry_their_beta():
    s = exact(ema_beta=0.25)
    feed_grid(s, gauss_mmse, 8)
    assert s.step(0)["ema_beta"] == 0.25


# -- The oracle: a fixed profile from step 0 ------------------------------------------------------------------


def test_fixed_profile_is_the_table_of_that_profile_from_step_0(tmp_path):
    """fixed_profile builds at construction exactly the table a refresh would build from the same m̂
    (interpolated onto the grid, exact at the grid's own σ), never refreshes, and logs its one record once."""
    ref = exact(endpoint="discrete")
    feed_grid(ref, gauss_mmse, 8)
    ref.step(0)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"sigma": ref.sigma.tolist(), "mmse": ref.mhat.tolist()}))
    s = InfoNoise(endpoint="discrete", fixed_profile=str(path))
    assert torch.equal(s.table, ref.table) and s.sigma_p == ref.sigma_p and s.pivot_set_by == ref.pivot_set_by
    gen = torch.Generator().manual_seed(0)
    draws = s.sample(4096, gen)
    assert torch.equal(draws, info.sample_icdf(uniform(4096, torch.Generator().manual_seed(0)), ref.table).float())
    records = []
    for step in range(1, 300):
        sigma = s.sample(64, gen)
        s.observe(sigma, sigma.double() ** 2)
        records.append(s.step(step))
    assert records[0]["refresh"] == 1 and records[0]["step"] == 0 and all(r is None for r in records[1:])
    assert torch.equal(s.table, ref.table) and s.refreshes == 1
    resumed = InfoNoise(endpoint="discrete", fixed_profile=str(path))
    resumed.load_state_dict(s.state_dict())
    assert resumed.step(300) is None and torch.equal(resumed.table, ref.table)
    # a coarser profile is interpolated as a power law in σ: exact for a pure power law
    coarse = {"sigma": [0.001, 100.0], "mmse": [1e-6, 1e4]}  # m̂ = σ²
    np.testing.assert_allclose(InfoNoise(fixed_profile=coarse).mhat, s.sigma**2, rtol=1e-12)


@pytest.mark.parametrize(
    "content, match",
    [
        ("not json", "cannot read a JSON profile"),
        ('{"sigma": [1, 2]}', "'sigma' and 'mmse'"),
        ('{"sigma": [1, 2], "mmse": [1, -1]}', "mmse > 0"),
        ('{"sigma": [2, 1], "mmse": [1, 1]}', "increasing sigma"),
        ('{"sigma": [1, 2], "mmse": [1]}', "matching 1-D"),
    ],
)
def test_fixed_profile_bad_files_are_named(tmp_path, content, match):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        InfoNoise(fixed_profile=str(path))
    with pytest.raises(ValueError, match="cannot read"):
        InfoNoise(fixed_profile=str(tmp_path / "missing.json"))
