"""The installable library's foreign-loop API (`infonoise.InfoNoiseSampler`) and its time variables
(docs/method.md §10) against known answers: the σ-space allocation reproduced in each loop's variable (KS and χ²
tests, each shown to have power), the error conversion exact on the Gaussian toy of §7, the loss weight of §3.4,
resume, bad input, and two ranks under torchrun through the public API."""

from __future__ import annotations

import io
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

import infonoise
from infonoise import DiscreteVP, EDMSigma, InfoNoiseSampler, RectifiedFlow
from infonoise import information as info

F64 = torch.float64
REPO = Path(__file__).resolve().parents[1]
C = 0.5  # the Gaussian toy X0 ~ N(0, c²·I_D) of docs/method.md §7


def ddpm_alphas_cumprod(T: int = 1000) -> torch.Tensor:
    """DDPM's linear β schedule (Ho et al. 2020; diffusers' DDPMScheduler default), written out here."""
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=F64), 0)


def gauss_mmse(sigma, d=1):
    sigma = torch.as_tensor(sigma, dtype=F64)
    return d * C**2 * sigma**2 / (C**2 + sigma**2)


def gauss_profile(d=1):
    s = torch.logspace(-4, 3, 300, dtype=F64)
    return {"sigma": s.tolist(), "mmse": gauss_mmse(s, d).tolist()}


# The loops' own conventions, written out independently of infonoise.timevars: σ(t) and (α, s) of x_t = α·x0 + s·ε.
AC = ddpm_alphas_cumprod()
SIGMA_OF = {
    "edm": lambda t: t.double(),
    "rf": lambda t: t.double() / (1 - t.double()),
    "ddpm": lambda t: ((1 - AC[t]) / AC[t]).sqrt(),
}
SCALES = {
    "edm": lambda t: (torch.ones_like(t.double()), t.double()),
    "rf": lambda t: (1 - t.double(), t.double()),
    "ddpm": lambda t: (AC[t].sqrt(), (1 - AC[t]).sqrt()),
}
# Each loop's stock draw (what InfoNoise replaces), for the power checks.
STOCK = {
    "edm": lambda n, g: (torch.randn(n, generator=g, dtype=F64) * 1.2 - 1.2).exp(),  # EDM's log-normal
    "rf": lambda n, g: torch.rand(n, generator=g, dtype=F64),  # uniform t
    "ddpm": lambda n, g: torch.randint(0, 1000, (n,), generator=g),  # uniform timesteps
}


def make_time(kind):
    return {"edm": EDMSigma(), "rf": RectifiedFlow(), "ddpm": DiscreteVP(AC)}[kind]


def fixed(kind, objective="x0", **kw):
    """A sampler whose allocation is the Gaussian toy's, built at construction (InfoNoise's fixed_profile, §4c)."""
    return InfoNoiseSampler(make_time(kind), objective, fixed_profile=gauss_profile(), **kw)


# -- draws: the σ-space allocation in the loop's variable ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["edm", "rf"])
def test_continuous_draws_reproduce_the_sigma_allocation_ks(kind):
    """t = t(σ) is monotone, so F_t(t) = F_σ(σ(t)) with F_σ the table's CDF (§3.6): KS on 20,000 draws. The test
    has power: it rejects the loop's stock draw and draws mapped through a σ off by 10 % (≈ 1.3 bins)."""
    sampler = fixed(kind)
    table = sampler.scheduler.table
    cdf = lambda t: info.cdf_at(SIGMA_OF[kind](torch.as_tensor(t)), table).numpy()  # noqa: E731
    t = sampler.sample(20000, torch.Generator().manual_seed(1))
    assert t.dtype == torch.float32
    assert scipy.stats.kstest(t.double().numpy(), cdf).pvalue > 0.01
    stock = STOCK[kind](20000, torch.Generator().manual_seed(2))
    assert scipy.stats.kstest(stock.numpy(), cdf).pvalue < 1e-6
    sigma = info.sample_icdf(torch.rand(20000, generator=torch.Generator().manual_seed(3), dtype=F64), table)
    off = sampler.time.from_sigma(1.1 * sigma)
    assert scipy.stats.kstest(off.double().numpy(), cdf).pvalue < 1e-6


@pytest.mark.parametrize("kind", ["edm", "rf"])
def test_continuous_density_is_the_sigma_density_times_the_jacobian(kind):
    """density(t) = π(σ(t))·dσ/dt (§1 change of coordinate, §10) is the derivative of F_t(t) = F_σ(σ(t)), at every
    bin centre, for the learned table and for the log-uniform warm-up draw alike (central differences, h = 1e-6·t)."""
    for sampler in (fixed(kind), InfoNoiseSampler(make_time(kind), "x0")):
        table = sampler.scheduler.table
        if table is None:
            cdf = lambda t: SIGMA_OF[kind](t).div(0.002).log() / math.log(80 / 0.002)  # noqa: E731
        else:
            cdf = lambda t: info.cdf_at(SIGMA_OF[kind](t), table)  # noqa: E731
        t = sampler.time.from_sigma(sampler.scheduler.sigma).double()
        h = 1e-6 * t
        np.testing.assert_allclose(sampler.density(t), (cdf(t + h) - cdf(t - h)) / (2 * h), rtol=1e-6)


def ddpm_cell_probs(table) -> torch.Tensor:
    """P(t) = π-mass of t's σ-cell, cells bounded by the geometric midpoints of neighbouring σ_t (written out)."""
    ls = ((1 - AC) / AC).sqrt().log()
    inner = ((ls[1:] + ls[:-1]) / 2).exp()
    cdf = torch.cat([torch.zeros(1, dtype=F64), info.cdf_at(inner, table), torch.ones(1, dtype=F64)])
    return cdf.diff()


def test_discrete_draws_keep_the_allocation_chi2_and_ks():
    """Snapped to integers, the draws have P(t) = π-mass of t's cell: `timestep_probs` equals the cell masses
    computed here, and 50,000 draws pass χ² (cells pooled to ≥ 20 expected draws) and a (conservative) discrete KS,
    while diffusers' stock uniform timesteps fail both."""
    sampler = fixed("ddpm", "epsilon")
    p = ddpm_cell_probs(sampler.scheduler.table)
    np.testing.assert_allclose(sampler.timestep_probs(), p, rtol=1e-12, atol=1e-15)
    assert abs(float(p.sum()) - 1) < 1e-12
    t = sampler.sample(50000, torch.Generator().manual_seed(4))
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) <= 999

    def pooled_chi2(x):
        counts = torch.bincount(x, minlength=1000).double()
        exp, obs = [], []
        e_acc = o_acc = 0.0
        for e, o in zip((p * len(x)).tolist(), counts.tolist()):
            e_acc, o_acc = e_acc + e, o_acc + o
            if e_acc >= 20:
                exp.append(e_acc), obs.append(o_acc)
                e_acc = o_acc = 0.0
        exp[-1] += e_acc
        obs[-1] += o_acc
        return scipy.stats.chisquare(obs, exp).pvalue

    cdf = lambda x: p.cumsum(0)[torch.as_tensor(x).long().clamp(0, 999)].numpy()  # noqa: E731
    assert pooled_chi2(t) > 0.01 and scipy.stats.kstest(t.numpy(), cdf).pvalue > 0.01
    stock = STOCK["ddpm"](50000, torch.Generator().manual_seed(5))
    assert pooled_chi2(stock) < 1e-6 and scipy.stats.kstest(stock.numpy(), cdf).pvalue < 1e-6
    assert torch.equal(sampler.density(torch.arange(1000)), sampler.timestep_probs())


def test_discrete_cells_and_orphan_bins():
    """Cells: bounded by the ln-midpoints of neighbouring σ_t, the end cells mirrored, tiling [σ_min, σ_max]; each σ_t
    lies in its own. Where cells are wider than the grid's bins (DDPM's first timesteps) the bins without any σ_t
    receive the errors of the timestep whose cell holds their centre, so the warm-up ends (every bin filled) and m̂
    there is that timestep's error exactly. diffusers' float32 table gives the same cells to float32 rounding."""
    time = DiscreteVP(AC)
    ls = time.sigmas.log()
    np.testing.assert_allclose(time.log_edges[1:-1], (ls[1:] + ls[:-1]) / 2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(time.log_edges[[0, -1]], [1.5 * ls[0] - 0.5 * ls[1], 1.5 * ls[-1] - 0.5 * ls[-2]])
    assert torch.equal(time.cell(time.sigmas), torch.arange(1000))
    np.testing.assert_allclose(DiscreteVP(AC.float()).sigmas, time.sigmas, rtol=1e-3)
    sampler = InfoNoiseSampler(time, "epsilon", min_count=4, fifo_size=16)
    cells, centres = sampler._orphans
    assert 3 <= len(cells) <= 20 and int(cells.max()) < 10  # DDPM's widest cells, at t < 10
    err = lambda t: 1.0 + t.double()  # a per-timestep error with a known value  # noqa: E731
    gen, first = torch.Generator().manual_seed(0), None
    for step in range(1, 500):
        t = sampler.sample(128, gen)
        sampler.observe(t, err(t))
        if sampler.step(step) is not None:
            first = step
            break
    assert first is not None
    bins = info.bin_index(centres, time.sigma_min, time.sigma_max, sampler.scheduler.num_bins)
    np.testing.assert_allclose(sampler.scheduler.mhat[bins], err(cells), rtol=1e-12)


# -- the error conversion, exact on the Gaussian toy (§7) ------------------------------------------------------------

CASES = [
    ("edm", "x0"),
    ("edm", "epsilon"),
    ("edm", "v"),
    ("edm", "velocity"),
    ("rf", "x0"),
    ("rf", "epsilon"),
    ("rf", "v"),
    ("rf", "velocity"),
    ("ddpm", "x0"),
    ("ddpm", "epsilon"),
    ("ddpm", "v"),
]


def bayes_predictions(kind, t, x0, eps):
    """The exact Bayes prediction of each parameterisation and its regression target, for X0 ~ N(0, c²I):
    E[x0 | x_t] = α·c²/(α²c² + s²)·x_t, E[ε | x_t] = s/(α²c² + s²)·x_t (jointly Gaussian), and v, velocity by
    linearity: v = α·ε − s·x0; velocity = dx_t/dt = α'·x0 + s'·ε (rectified flow: ε − x0; EDM's σ: ε)."""
    a, s = (x[:, None] for x in SCALES[kind](t))
    xt = a * x0 + s * eps
    x0_hat = a * C**2 / (a**2 * C**2 + s**2) * xt
    eps_hat = s / (a**2 * C**2 + s**2) * xt
    pairs = {"x0": (x0_hat, x0), "epsilon": (eps_hat, eps), "v": (a * eps_hat - s * x0_hat, a * eps - s * x0)}
    if kind == "rf":
        pairs["velocity"] = (eps_hat - x0_hat, eps - x0)
    if kind == "edm":
        pairs["velocity"] = (eps_hat, eps)
    return x0_hat, pairs


@pytest.mark.parametrize("kind, objective", CASES)
def test_x0_error_is_exact_on_the_gaussian_toy(kind, objective):
    """x0_error(t, Bayes prediction, target) is ‖E[x0|x_t] − x0‖² per sample (to rounding), and its mean over the
    toy is mmse(σ) = D·c²σ²/(c² + σ²) (each sample's ratio to it has mean 1 and variance 2/D)."""
    D, n = 64, 4096
    sampler = InfoNoiseSampler(make_time(kind), objective)
    g = torch.Generator().manual_seed(7)
    t = sampler.sample(n, g)
    x0, eps = C * torch.randn(n, D, generator=g, dtype=F64), torch.randn(n, D, generator=g, dtype=F64)
    x0_hat, pairs = bayes_predictions(kind, t, x0, eps)
    pred, target = pairs[objective]
    got = sampler.x0_error(t, pred.reshape(n, 8, 8), target.reshape(n, 8, 8))
    exact = ((x0_hat - x0) ** 2).sum(1)
    np.testing.assert_allclose(got, exact, rtol=1e-9)
    ratio = got / gauss_mmse(SIGMA_OF[kind](t), D)
    assert abs(float(ratio.mean()) - 1) < 4 * math.sqrt(2 / D / n)
    if objective != "x0":  # the unconverted error is not the x0 error: the conversion is doing the work
        assert not torch.allclose(((pred - target) ** 2).sum(1), exact, rtol=0.01)


@pytest.mark.parametrize("kind, objective", [("rf", "velocity"), ("ddpm", "epsilon"), ("ddpm", "v")])
def test_online_profile_recovers_the_gaussian_mmse(kind, objective):
    """The loop's own draws, Bayes predictions in its parameterisation, converted and observed: after the
    refreshes InfoNoise's m̂ at the bin centres is mmse(σ) of the toy (full FIFOs of 64 errors of a χ²_D/D spread:
    ≈ 2 % per bin)."""
    D = 64
    sampler = InfoNoiseSampler(make_time(kind), objective, fifo_size=64)
    g = torch.Generator().manual_seed(11)
    for step in range(1, 151):
        t = sampler.sample(512, g)
        x0, eps = C * torch.randn(512, D, generator=g, dtype=F64), torch.randn(512, D, generator=g, dtype=F64)
        pred, target = bayes_predictions(kind, t, x0, eps)[1][objective]
        sampler.observe(t, sampler.x0_error(t, pred, target))
        sampler.step(step)
    s = sampler.scheduler
    full = s.count == s.fifo_size
    if kind == "ddpm":  # orphan bins hold their cell's error, at σ_t rather than the centre (checked above)
        full[info.bin_index(sampler._orphans[1], s.sigma_min, s.sigma_max, s.num_bins)] = False
    assert full.sum() >= 40  # the bins the allocation visits most, over 3+ decades
    rel = s.mhat[full] / gauss_mmse(s.sigma[full], D) - 1
    assert float(rel.abs().median()) < 0.03 and float(rel.abs().max()) < 0.2


# -- the loss weight (§3.4) ------------------------------------------------------------------------------------------


def test_loss_weight_is_the_loops_objective_in_x0_units():
    """w(σ) = λ(t)/c(σ): an unweighted ε-loss is 1/σ² in x0 units, rectified flow's velocity loss 1/t² =
    ((1 + σ)/σ)², a v-loss on VP (1 + σ²)/σ², an x0 loss with EDM's λ that λ; π ∝ ρ/w (the table checked exactly)."""
    edm = InfoNoiseSampler(EDMSigma(), "epsilon", fixed_profile=gauss_profile())
    s = edm.scheduler
    np.testing.assert_allclose(s.weight, 1 / s.sigma**2, rtol=1e-12)
    rf = InfoNoiseSampler(RectifiedFlow(), "velocity").scheduler
    np.testing.assert_allclose(rf.weight, ((1 + rf.sigma) / rf.sigma) ** 2, rtol=1e-9)
    lam = lambda sigma: (sigma**2 + 0.25) / (0.5 * sigma) ** 2  # noqa: E731
    edm_x0 = InfoNoiseSampler(EDMSigma(), "x0", loss_weight=lam).scheduler
    np.testing.assert_allclose(edm_x0.weight, info.loss_weight(edm_x0.sigma, "edm"), rtol=1e-6)
    vp = InfoNoiseSampler(DiscreteVP(AC), "v").scheduler
    cell_sigma = DiscreteVP(AC).sigmas[DiscreteVP(AC).cell(vp.sigma)]
    np.testing.assert_allclose(vp.weight, (1 + cell_sigma**2) / cell_sigma**2, rtol=1e-12)
    # the table: per ln σ, 0.98·(σρ/w normalised) + 0.02 of the mean (§3.5, §3.7)
    p = s.sigma * s.alloc * s.sigma**2
    p = 0.98 * p / p.mean() + 0.02
    np.testing.assert_allclose(s.log_dens / s.log_dens.mean(), p, rtol=1e-10)


# -- resume, grids, bad input ----------------------------------------------------------------------------------------


def test_state_dict_resumes_identically_and_checks_the_time_variable():
    def run(sampler, gen, steps):
        out = []
        for step in steps:
            t = sampler.sample(64, gen)
            sampler.observe(t, gauss_mmse(sampler.time.to_sigma(t)) * (1 + torch.rand(64, generator=gen, dtype=F64)))
            sampler.step(step)
            out.append(t)
        return torch.cat(out)

    kw = dict(num_bins=32, fifo_size=32, min_count=2)
    a, gen = InfoNoiseSampler(RectifiedFlow(), "velocity", **kw), torch.Generator().manual_seed(0)
    run(a, gen, range(1, 60))
    buf = io.BytesIO()
    torch.save(dict(sampler=a.state_dict(), rng=gen.get_state()), buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b, gen_b = InfoNoiseSampler(RectifiedFlow(), "velocity", **kw), torch.Generator()
    b.load_state_dict(saved["sampler"])
    gen_b.set_state(saved["rng"])
    assert a.scheduler.refreshes >= 3
    assert torch.equal(run(a, gen, range(60, 120)), run(b, gen_b, range(60, 120)))
    assert torch.equal(a.scheduler.table, b.scheduler.table) and a.scheduler.history == b.scheduler.history
    with pytest.raises(ValueError, match="time"):
        InfoNoiseSampler(RectifiedFlow(sigma_max=40), "velocity", **kw).load_state_dict(saved["sampler"])
    with pytest.raises(ValueError, match="objective"):
        InfoNoiseSampler(RectifiedFlow(), "epsilon", **kw).load_state_dict(saved["sampler"])


def test_grids_in_the_loops_variable():
    """grid(n): InfoGrid's σ levels (§6) mapped to t — continuous: exactly t(σ_i), then the clean end 0; discrete:
    n distinct descending timesteps, each the nearest in ln σ where they do not crowd."""
    from infonoise.grids import infogrid_from_profile

    rf = fixed("rf")
    sig = infogrid_from_profile(18, rf.scheduler.profile(), rf.time.sigma_min, rf.time.sigma_max)
    grid = rf.grid(18)
    assert len(grid) == 19 and grid[-1] == 0 and (grid.diff() < 0).all()
    np.testing.assert_allclose(grid[:-1], (sig[:-1] / (1 + sig[:-1])).float().double(), rtol=0, atol=1e-7)
    ddpm = fixed("ddpm", "epsilon")
    sig = infogrid_from_profile(25, ddpm.scheduler.profile(), ddpm.time.sigma_min, ddpm.time.sigma_max)
    steps = ddpm.grid(25)
    assert len(steps) == 25 and (steps.diff() < 0).all() and int(steps[-1]) >= 0 and int(steps[0]) <= 999
    nearest = (sig[:-1].log()[:, None] - ddpm.time.sigmas.log()[None, :]).abs().argmin(1)
    assert (steps == nearest).float().mean() > 0.7  # crowded low-σ levels are pushed apart, the rest are nearest
    assert len(ddpm.grid(1000).unique()) == 1000
    prof = ddpm.profile()
    assert prof["probs"].shape == (1000,) and torch.equal(prof["t"], ddpm.time.cell(prof["sigma"]))
    assert "density_t" in rf.profile()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: InfoNoiseSampler("rectified-flow", "velocity"), "time must be a time variable"),
        (lambda: InfoNoiseSampler(RectifiedFlow(), "score"), "unknown objective 'score'"),
        (lambda: InfoNoiseSampler(DiscreteVP(AC), "velocity"), "velocity.*continuous"),
        (lambda: InfoNoiseSampler(RectifiedFlow(), "velocity", sigma_max=10), "sigma_max"),
        (lambda: InfoNoiseSampler(RectifiedFlow(), "velocity", weighting="edm"), "weighting"),
        (lambda: InfoNoiseSampler(RectifiedFlow(), "velocity", loss_weight=2.0), "loss_weight"),
        (lambda: InfoNoiseSampler(RectifiedFlow(), "velocity", num_bins=2), "num_bins"),
        (
            lambda: InfoNoiseSampler(RectifiedFlow(), "velocity", num_bin=64),
            "unknown InfoNoise option.*num_bin.*num_bins",
        ),
        (lambda: RectifiedFlow(sigma_min=0), "sigma_min"),
        (lambda: EDMSigma(sigma_min=5, sigma_max=1), "sigma_min"),
        (lambda: DiscreteVP(torch.cat([AC[:-1], torch.zeros(1, dtype=F64)])), "alphas_cumprod.*zero terminal SNR"),
        (lambda: DiscreteVP(AC.flip(0)), "alphas_cumprod must be strictly decreasing"),
        (lambda: DiscreteVP(AC[None]), "alphas_cumprod must be a 1-D"),
        (lambda: DiscreteVP(AC).to_sigma(torch.tensor([0.5])), "timesteps must be integers"),
        (lambda: InfoNoiseSampler(RectifiedFlow(), "velocity").grid(10), "no learned profile yet"),
        (lambda: fixed("ddpm").grid(1001), "only 1000 timesteps"),
        (lambda: fixed("rf").grid(0), "n must be an integer >= 1"),
        (lambda: fixed("rf").sample(-1), "n must be an integer >= 0"),
        (lambda: fixed("rf").observe(torch.rand(3), torch.rand(4)), "3 times but 4 errors"),
        (lambda: fixed("rf").x0_error(torch.rand(3), torch.rand(3, 2), torch.rand(3, 3)), "one shape"),
        (lambda: fixed("rf").timestep_probs(), "only for discrete"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_option(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_public_names():
    for name in infonoise.__all__:
        assert getattr(infonoise, name) is not None
    assert infonoise.InfoNoise is infonoise.scheduler.InfoNoise


# -- two ranks under torchrun, through the public API ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_through_the_public_api(tmp_path):
    """Two gloo ranks of a loop that only uses `InfoNoiseSampler` (DDPM timesteps, ε-prediction), with the process
    group initialised by the loop itself: each rank sees its own errors, yet both hold the identical table after
    every refresh, and the first refresh's m̂ is the pooled bin means of both ranks (all-reduced, §5)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(REPO / "tests" / "dist_library_worker.py"),
        str(tmp_path),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["steps"] == r1["steps"] and len(r0["steps"]) >= 4
    s0, s1 = r0["state"]["infonoise"], r1["state"]["infonoise"]
    assert not torch.equal(s0["buf"], s1["buf"])
    for key in ("mhat", "hdot", "alloc", "log_dens", "table"):
        assert torch.equal(s0[key], s1[key]), key
    assert torch.equal(r0["probs"], r1["probs"]) and torch.equal(r0["grid"], r1["grid"])
    f0, f1 = r0["first"]["infonoise"], r1["first"]["infonoise"]
    pooled = (f0["buf"].sum(1) + f1["buf"].sum(1)) / (f0["count"] + f1["count"]).double()
    np.testing.assert_allclose(f0["mhat"], pooled, rtol=1e-14)


# -- the README's block ---------------------------------------------------------------------------------------------


def test_readme_own_loop_block_runs_as_written(tmp_path, monkeypatch):
    """README "InfoNoise in your own loop": the block runs as written (in a scratch folder: it saves a file), its
    sampler refreshed, and what it prints is the learned allocation's InfoGrid."""
    block = re.search(r"## InfoNoise in your own loop.*?```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README has no 'InfoNoise in your own loop' python block"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    sampler = scope["sampler"]
    assert sampler.scheduler.refreshes >= 1 and (tmp_path / "infonoise-sampler.pt").exists()
    state = torch.load(tmp_path / "infonoise-sampler.pt", weights_only=True)
    assert torch.equal(state["infonoise"]["table"], sampler.scheduler.table)


def test_discrete_data_get_the_bayes_cap_from_the_data_they_pass():
    """docs/method.md §4b through the library: endpoint 'discrete' with training_data caps m̂ by the data's
    coordinate-wise Bayes bound (the default 'auto'); without the data the user is warned and runs uncapped."""
    x = torch.where(torch.rand(300, 6, generator=torch.Generator().manual_seed(0), dtype=F64) < 0.3, 1.0, -1.0)
    kw = dict(num_bins=32, fifo_size=32, min_count=2, endpoint="discrete")
    capped = InfoNoiseSampler(RectifiedFlow(), "velocity", training_data=x, **kw)
    gen = torch.Generator().manual_seed(1)
    for step in range(1, 40):
        t = capped.sample(64, gen)
        capped.observe(t, 6 * torch.rand(64, generator=gen, dtype=F64))  # a young network: errors at every σ
        capped.step(step)
    s = capped.scheduler
    bound = info.coordinate_bayes_mmse(info.coordinate_marginals(x), s.sigma)
    assert s.refreshes >= 1 and s.mmse_cap == "coordinate-bayes" and torch.equal(s.cap, bound)
    torch.testing.assert_close(s.hdot, torch.minimum(s.mhat, bound) / s.sigma**3, rtol=0, atol=0)
    assert capped.state_dict()["infonoise"]["mmse_cap"] == "coordinate-bayes"
    with pytest.warns(UserWarning, match="needs the training data"):
        bare = InfoNoiseSampler(RectifiedFlow(), "velocity", **kw)
    assert bare.scheduler.mmse_cap == "none"
