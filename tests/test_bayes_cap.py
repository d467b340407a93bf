"""The coordinate-wise Bayes bound B(σ) (docs/method.md §4b): exact for one scalar coordinate (the ±1
closed form, Monte Carlo), an upper bound on the exact empirical-Bayes MMSE of a data set at every σ
(§7's oracle, paired Monte Carlo), and read as min(m̂, B) by InfoNoise — in the scheduler and in a run."""

from __future__ import annotations

import inspect
import json
import math
import warnings

import numpy as np
import pytest
import scipy.integrate
import torch

from analysis.diagnostics import EmpiricalBayes
from schedulers import information as info
from schedulers.infonoise import InfoNoise
from tests.conftest import train_tiny, write_image_dataset
from tests.test_infonoise import exact, feed_grid, valley_mmse

F64 = torch.float64


@pytest.mark.parametrize("p", [0.5, 0.3, 0.02])
def test_two_valued_coordinate_matches_the_tanh_closed_form(p):
    """±1 with P(+1) = p: E[X | y] = tanh(y/σ² + atanh(2p − 1)); mmse by adaptive quadrature over y."""
    sigma = torch.tensor([0.05, 0.2, 0.45, 1.0, 3.0, 20.0], dtype=F64)
    got = info.scalar_bayes_mmse(torch.tensor([-1.0, 1.0]), torch.tensor([1 - p, p]), sigma)[0]
    for s, b in zip(sigma.tolist(), got.tolist()):

        def integrand(y, x, prob):
            return (
                prob
                * math.exp(-((y - x) ** 2) / (2 * s * s))
                / (s * math.sqrt(2 * math.pi))
                * (x - math.tanh(y / s**2 + math.atanh(2 * p - 1))) ** 2
            )

        want = sum(
            scipy.integrate.quad(integrand, x - 12 * s, x + 12 * s, args=(x, prob), epsabs=1e-13, limit=200)[0]
            for x, prob in ((1.0, p), (-1.0, 1 - p))
        )
        assert b == pytest.approx(want, rel=1e-7, abs=1e-12)
    big = info.scalar_bayes_mmse(torch.tensor([-1.0, 1.0]), torch.tensor([1 - p, p]), torch.tensor([1e4]))
    assert float(big) == pytest.approx(4 * p * (1 - p), rel=1e-6)  # σ → ∞: the variance


def test_two_valued_coordinate_matches_monte_carlo():
    p, n, gen = 0.3, 400_000, torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(n, generator=gen, dtype=F64) < p, 1.0, -1.0)
    for s in (0.3, 0.6, 1.5, 8.0):
        e = (x - torch.tanh((x + s * torch.randn(n, generator=gen, dtype=F64)) / s**2 + math.atanh(2 * p - 1))) ** 2
        b = float(info.scalar_bayes_mmse(torch.tensor([-1.0, 1.0]), torch.tensor([1 - p, p]), torch.tensor([s])))
        assert abs(b - float(e.mean())) < 4 * float(e.std()) / math.sqrt(n)


def coordinate_posterior_mean(y: torch.Tensor, marg: info.Marginals, x: torch.Tensor, s: float) -> torch.Tensor:
    """Each coordinate's own posterior mean under its own marginal law — written out independently."""
    levels = marg.levels
    counts = torch.stack([(x == v).to(F64).mean(0) for v in levels], -1)  # [D, L]
    logits = counts.clamp_min(1e-300).log() - (y[..., None] - levels) ** 2 / (2 * s * s)
    logits = torch.where(counts > 0, logits, -math.inf)
    return torch.softmax(logits, -1) @ levels


@pytest.mark.parametrize("binarize", [False, True])
def test_bound_is_above_the_exact_empirical_bayes_mmse(tmp_path, binarize):
    """B(σ) ≥ mmse_EB(σ) at every σ, on digits and binarized digits (a 300-image subset, so the empirical
    posterior is exact and cheap): paired Monte Carlo — the same x0 and noise for the coordinate-wise
    estimator and the empirical-Bayes one — and the quadrature B agrees with the former's Monte Carlo."""
    pytest.importorskip("sklearn")
    import sklearn.datasets

    images = sklearn.datasets.load_digits().images[:300]
    x = torch.as_tensor(images / 16.0 * 2 - 1, dtype=F64).reshape(300, -1)
    if binarize:
        x = torch.where(x > 0, 1.0, -1.0)
    marg = info.coordinate_marginals(x)
    eb = EmpiricalBayes(x)
    sigma = info.log_sigma_grid(0.002, 80.0, 128)[::4]
    bound = info.coordinate_bayes_mmse(marg, sigma)
    gen = torch.Generator().manual_seed(1)
    x0 = x.repeat(4, 1)
    eps = torch.randn(x0.shape, generator=gen, dtype=F64)
    for s, b in zip(sigma.tolist(), bound.tolist()):
        y = x0 + s * eps
        e_cb = (coordinate_posterior_mean(y, marg, x, s) - x0).square().sum(1)
        e_eb = (eb.denoise(y, s) - x0).square().sum(1)
        n = len(x0)
        diff = e_cb - e_eb
        assert float(diff.mean()) >= -4 * float(diff.std()) / math.sqrt(n) - 1e-12, s
        if b > 0.05:  # below, errors are rare events (σ ≪ level spacing) that 1,200 draws barely see
            assert abs(b - float(e_cb.mean())) <= 4 * float(e_cb.std()) / math.sqrt(n), s
        assert b >= float(e_eb.mean()) - 4 * float(diff.std()) / math.sqrt(n) - 1e-12, s


def test_marginals_group_coordinates_and_refuse_continuous_data():
    x = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])
    m = info.coordinate_marginals(x)
    assert m.levels.tolist() == [-1.0, 1.0] and m.probs.tolist() == [[0.25, 0.75]] and m.multiplicity.tolist() == [3]
    with pytest.raises(ValueError, match="257 distinct values"):
        info.coordinate_marginals(torch.linspace(0, 1, 257)[:, None])


def test_scheduler_reads_min_of_estimate_and_bound():
    data = torch.where(torch.rand(500, 16, generator=torch.Generator().manual_seed(0)) < 0.4, 1.0, -1.0)
    s = exact(endpoint="discrete", mmse_cap="coordinate-bayes", training_data=lambda: data)
    feed_grid(s, lambda sg: valley_mmse(sg, 4.0), 8)
    record = s.step(0)
    bound = info.coordinate_bayes_mmse(info.coordinate_marginals(data), s.sigma)
    assert torch.equal(s.cap, bound) and record["bayes_cap"] == bound.tolist()
    torch.testing.assert_close(s.hdot, torch.minimum(s.mhat, bound) / s.sigma**3, rtol=0, atol=0)
    assert record["mmse"] == s.mhat.tolist()  # the estimate itself is logged unchanged
    with pytest.raises(ValueError, match="needs the training data"):
        InfoNoise(mmse_cap="coordinate-bayes")
    with pytest.raises(ValueError, match="unknown mmse_cap"):
        InfoNoise(mmse_cap="bayes")
    with pytest.raises(ValueError, match="distinct values"):  # at construction, not at the first refresh
        exact(mmse_cap="coordinate-bayes", training_data=torch.rand(10, 300, dtype=F64))


def test_auto_cap_is_the_cap_on_discrete_endpoints_and_none_on_continuous_ones():
    """mmse_cap 'auto': on a discrete endpoint the same bound and table as 'coordinate-bayes'; on a continuous one
    the same table as 'none' and no training data needed (docs/method.md §4b: the onset rule's normaliser)."""
    data = torch.where(torch.rand(500, 16, generator=torch.Generator().manual_seed(1)) < 0.3, 1.0, -1.0)
    auto, cap = (
        exact(endpoint="discrete", mmse_cap=c, training_data=lambda: data) for c in ("auto", "coordinate-bayes")
    )
    cont_auto, cont_none = exact(mmse_cap="auto"), exact()
    for s in (auto, cap):
        feed_grid(s, lambda sg: valley_mmse(sg, 4.0), 8)
        s.step(0)
    for s in (cont_auto, cont_none):
        feed_grid(s, lambda sg: 64 * sg**2 / (sg**2 + 0.25), 8)
        s.step(0)
    assert auto.mmse_cap == "coordinate-bayes" and torch.equal(auto.cap, cap.cap)
    assert torch.equal(auto.table, cap.table) and auto.sigma_p == cap.sigma_p
    assert cont_auto.mmse_cap == "none" and cont_auto.cap is None
    assert torch.equal(cont_auto.table, cont_none.table) and cont_auto.sigma_p == cont_none.sigma_p
    assert inspect.signature(InfoNoise).parameters["mmse_cap"].default == "auto" and InfoNoise().mmse_cap == "none"
    assert exact(endpoint="discrete", training_data=data).mmse_cap == "coordinate-bayes"
    with pytest.warns(UserWarning, match="needs the training data; none was given, so this run has no cap"):
        bare = InfoNoise(endpoint="discrete")  # a library user without the data: told, and the rule without the cap
    assert bare.mmse_cap == "none" and bare.cap is None


def test_a_snapshot_from_before_the_auto_default_resumes_without_the_cap():
    """A resumed run keeps its behaviour (docs/method.md §5): a snapshot written before 'auto' became the default
    (no 'mmse_cap' in it) resumes without the cap unless the cap is asked for; one written since keeps its cap."""
    data = torch.where(torch.rand(500, 16, generator=torch.Generator().manual_seed(2)) < 0.3, 1.0, -1.0)
    old = exact(endpoint="discrete", mmse_cap="none")
    feed_grid(old, lambda sg: valley_mmse(sg, 4.0), 8)
    old.step(0)
    state = old.state_dict()
    assert state.pop("mmse_cap") == "none"  # what an older snapshot looks like
    for asked, want in (("auto", "none"), ("coordinate-bayes", "coordinate-bayes")):
        new = exact(endpoint="discrete", mmse_cap=asked, training_data=data)
        new.load_state_dict(state)
        assert new.mmse_cap == want
    capped = exact(endpoint="discrete", training_data=data)
    feed_grid(capped, lambda sg: valley_mmse(sg, 4.0), 8)
    capped.step(0)
    again = exact(endpoint="discrete", training_data=data)
    again.load_state_dict(capped.state_dict())
    feed_grid(again, lambda sg: valley_mmse(sg, 3.0), 8)
    feed_grid(capped, lambda sg: valley_mmse(sg, 3.0), 8)
    assert again.mmse_cap == "coordinate-bayes" and again.step(1) == capped.step(1)
    with pytest.raises(ValueError, match="checkpoint ran with mmse_cap 'coordinate-bayes'"):
        with pytest.warns(UserWarning):
            bare = exact(endpoint="discrete")
        bare.load_state_dict(capped.state_dict())


@pytest.mark.parametrize("asked", [("--sched-opt", "mmse_cap=coordinate-bayes"), ()], ids=["explicit", "default"])
def test_a_run_with_the_cap_reads_its_own_training_data(tmp_path, asked):
    data, images, _ = write_image_dataset(tmp_path / "bin.zip", n=64, binary=True)
    train_tiny(
        tmp_path / "run",
        data,
        "--scheduler",
        "infonoise",
        "--weighting",
        "unit",
        *asked,
        "--sched-opt",
        "min_count=1",
        duration="0.0016",
        batch=32,
    )
    run = next((tmp_path / "run").iterdir())
    records = [json.loads(line) for line in (run / "schedule.jsonl").open()]
    x = torch.as_tensor(np.where(images > 0, 1.0, -1.0), dtype=F64).reshape(64, -1)
    want = info.coordinate_bayes_mmse(info.coordinate_marginals(x), info.log_sigma_grid(0.002, 80.0, 128))
    assert records and records[0]["bayes_cap"] == want.tolist()


def test_fallback_pivot_warns_on_discrete_data_that_are_not_plus_minus_one():
    """The fallback σ_p = 0.2 is the paper's value for ±1 levels (docs/method.md §4): {0, 1} data move the window
    by ½ and the constant with it would be wrong, so a user is told; ±1 data (and a pinned σ_p) say nothing."""
    g = torch.Generator().manual_seed(0)
    pm1 = torch.where(torch.rand(200, 8, generator=g) < 0.5, 1.0, -1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact(endpoint="discrete", training_data=pm1)
        exact(endpoint="discrete", training_data=(pm1 + 1) / 2, sigma_p=0.1)
    with pytest.warns(UserWarning, match=r"2 levels in \[0, 1\].*sigma_p_fallback"):
        exact(endpoint="discrete", training_data=(pm1 + 1) / 2)


@pytest.mark.parametrize(
    "data, message",
    [
        (torch.tensor([[1.0, float("nan")], [-1.0, 1.0]]), "1 non-finite values"),
        (torch.tensor([[1.0, float("inf")], [-1.0, -float("inf")]]), "2 non-finite values"),
        (torch.empty(0, 4), r"no values \(shape \(0, 4\)\)"),
        (torch.tensor(1.0), r"no values \(shape \(\)\)"),
    ],
)
def test_training_data_without_a_law_fail_with_a_message_naming_the_fix(data, message):
    """NaN, inf or no examples have no marginal law: the scheduler refuses them when it is built, in words."""
    with pytest.raises(ValueError, match=message):
        info.coordinate_marginals(data)
    with pytest.raises(ValueError, match=f"infonoise: mmse_cap 'coordinate-bayes': the data hold {message}"):
        exact(endpoint="discrete", training_data=data, mmse_cap="coordinate-bayes")
