"""InfoNoise mathematics: I–MMSE entropy rate, low-noise gate, pivots, log-σ tables and inverse-CDF
sampling (docs/method.md §2–§5). Pure, stateless, vectorised float64 torch; the scheduler owns the state.

Grid convention (docs/method.md §3.5–§3.6, §5). [σ_min, σ_max] is cut into M bins of equal width
Δ = ln(σ_max/σ_min)/M in ln σ. Profiles (m̂, ḣ, ρ, π) are tabulated at the bin *centres*
σ_k = σ_min·exp((k + ½)Δ); errors are routed to the bin that contains their σ. A sampling density
is piecewise constant in ln σ within each bin; its CDF is tabulated at the M+1 bin *edges*, so linear
interpolation of ln σ between the two bracketing edges is the exact inverse CDF and draws are
continuous in σ. A CDF table is a [2, M+1] tensor: row 0 = ln σ at the edges, row 1 = CDF there.

Densities come in two coordinates and the σ Jacobian converts them (§3.5): ρ, π are per unit σ;
`log_density` is per unit ln σ (= σ·π). "Normalised" means unit total mass on the grid
(Σ_k σ_k·π_k·Δ = 1, resp. Σ_k p_k·Δ = 1).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

_F64 = torch.float64
_TINY = 1e-300


def _t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=_F64)


# ----------------------------------------------------------------------------------------------
# Grid (§5).


def log_sigma_edges(sigma_min: float, sigma_max: float, num_bins: int) -> torch.Tensor:
    """ln σ at the M+1 bin edges, uniform in ln σ from ln σ_min to ln σ_max (§5)."""
    return torch.linspace(math.log(sigma_min), math.log(sigma_max), num_bins + 1, dtype=_F64)


def log_sigma_grid(sigma_min: float, sigma_max: float, num_bins: int) -> torch.Tensor:
    """σ at the M bin centres (geometric midpoints of the edges), where every profile is tabulated (§5)."""
    e = log_sigma_edges(sigma_min, sigma_max, num_bins)
    return ((e[:-1] + e[1:]) / 2).exp()


def log_step(sigma: torch.Tensor) -> float:
    """Δ, the common ln σ width of the bins, recovered from the centres."""
    ls = _t(sigma).log()
    return float((ls[-1] - ls[0]) / (len(ls) - 1))


def edges_from_grid(sigma: torch.Tensor) -> torch.Tensor:
    """ln σ at the M+1 edges of the bins whose centres are `sigma`."""
    ls, d = _t(sigma).log(), log_step(sigma)
    return torch.cat([ls[:1] - d / 2, ls + d / 2])


def bin_index(sigma: torch.Tensor, sigma_min: float, sigma_max: float, num_bins: int) -> torch.Tensor:
    """The bin holding each (positive) σ, as a LongTensor clamped to [0, M−1]: out-of-range σ feed the
    end bins (§5, FIFO routing)."""
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    x = (_t(sigma).log() - lo) * (num_bins / (hi - lo))
    return x.floor().clamp(0, num_bins - 1).long()


def profile_on_grid(sigma_src, mmse_src, sigma: torch.Tensor) -> torch.Tensor:
    """An MMSE profile given at other σ (a probed checkpoint, another grid) at the grid `sigma`: ln m̂
    linear in ln σ between the given points (power laws exact), held at the end values outside them."""
    xs, ys = _t(sigma_src).log(), _t(mmse_src)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 2:
        raise ValueError(
            f"a profile needs matching 1-D arrays sigma, mmse (length >= 2), got {tuple(xs.shape)}, {tuple(ys.shape)}"
        )
    if not (torch.isfinite(xs).all() and torch.isfinite(ys).all() and (ys > 0).all() and (xs.diff() > 0).all()):
        raise ValueError("a profile needs finite, increasing sigma > 0 and finite mmse > 0")
    grid = _t(sigma)
    if xs.shape == grid.shape and torch.allclose(xs, grid.log(), rtol=0, atol=1e-12):
        return ys.clone()  # already on this grid: the values themselves
    out = np.interp(grid.log().numpy(), xs.numpy(), ys.log().numpy())
    return torch.from_numpy(out).exp()


# ----------------------------------------------------------------------------------------------
# The coordinate-wise Bayes bound (§4b): an upper bound on the data's MMSE known before any training.

MAX_LEVELS = 256  # distinct values a discrete law may take (8-bit images: 256)


class Marginals(NamedTuple):
    """Per-coordinate discrete laws of a data set, deduplicated: `levels` [L] (the values any coordinate
    takes), `probs` [U, L] (each distinct law), `multiplicity` [U] (how many coordinates have it)."""

    levels: torch.Tensor
    probs: torch.Tensor
    multiplicity: torch.Tensor


def coordinate_marginals(x: torch.Tensor, max_levels: int = MAX_LEVELS) -> Marginals:
    """The empirical marginal law of every coordinate of `x` [N, ...] (model space). Two-valued, one-hot
    and 8-bit data have at most 256 distinct values; more means the data are not discrete (ValueError), and so
    are no examples, no coordinates or a non-finite value: none of them has a law to bound the error by."""
    x = _t(x)
    if x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"the data hold no values (shape {tuple(x.shape)}): pass the training examples as [N, ...]")
    x = x.reshape(len(x), -1)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"the data hold {int((~torch.isfinite(x)).sum())} non-finite values (NaN or inf): "
            "clean the training examples before building the scheduler"
        )
    levels, index = torch.unique(x, return_inverse=True)
    if len(levels) > max_levels:
        raise ValueError(
            f"the data take {len(levels)} distinct values (more than {max_levels}): the coordinate-wise Bayes "
            "bound needs discrete data (two-valued, one-hot or 8-bit)"
        )
    dims = torch.arange(x.shape[1]).expand_as(index)
    counts = torch.zeros(x.shape[1], len(levels), dtype=_F64).index_put_(
        (dims, index), torch.ones((), dtype=_F64), accumulate=True
    )
    probs, mult = torch.unique(counts / len(x), dim=0, return_counts=True)
    return Marginals(levels, probs, mult)


def scalar_bayes_mmse(levels: torch.Tensor, probs: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """mmse(σ) [U, M] of scalars X with P(X = levels_k) = probs[u, k] (one law per row), observed as
    Y = X + σZ: mmse = ∫ p(y)·Var(X | y) dy = ∫ Σ_k p_k φ_σ(y − v_k)·(v_k − E[X | y])² dy — non-negative terms
    (no cancellation when the MMSE is tiny), posterior in log space, float64, trapezoid rule. For ±1 with
    P(+1) = p, E[X | y] = tanh(y/σ² + atanh(2p − 1)).

    Where the mass is: between two neighbouring levels a gap g apart the integrand falls off the midpoint as
    exp(−g·u/(2σ²) − u²/(2σ²)), so it lives within W = 60σ²/g of each midpoint (e^-30 beyond) and varies on
    the scale σ²/g there. Laws are grouped by which levels they use; for σ small enough that these windows
    are disjoint, each window gets its own grid of spacing σ²/(8g) (a few hundred points whatever σ), else
    one grid over [v_min − 12σ, v_max + 12σ] of spacing min(σ, σ²/g_min)/8. Both are accurate to rounding
    (the trapezoid rule's error falls exponentially in 1/h for such integrands)."""
    v = _t(levels).reshape(-1)
    probs = _t(probs).reshape(-1, len(v))
    out = torch.zeros(len(probs), len(sigma), dtype=_F64)
    patterns, group = torch.unique(probs > 0, dim=0, return_inverse=True)
    for g, used in enumerate(patterns):
        rows = (group == g).nonzero().flatten()
        vk, pk = v[used], probs[rows][:, used]
        if len(vk) < 2:
            continue  # a constant coordinate: known exactly, error 0
        gaps, mids = vk.diff(), (vk[:-1] + vk[1:]) / 2
        for m, s in enumerate(_t(sigma).reshape(-1).tolist()):
            half = 60 * s * s / gaps
            if bool((mids[:-1] + half[:-1] < mids[1:] - half[1:]).all()) and bool((half < 12 * s).all()):
                pieces = [torch.linspace(float(c - w), float(c + w), 961, dtype=_F64) for c, w in zip(mids, half)]
            else:
                h = min(s, s * s / float(gaps.min())) / 8
                lo, hi = float(vk[0]) - 12 * s, float(vk[-1]) + 12 * s
                pieces = [torch.linspace(lo, hi, min(int(math.ceil((hi - lo) / h)) + 1, 40_001), dtype=_F64)]
            for y in pieces:
                out[rows, m] += _posterior_variance_integral(vk, pk, y, s)
    return out


def _posterior_variance_integral(v: torch.Tensor, p: torch.Tensor, y: torch.Tensor, s: float) -> torch.Tensor:
    """∫ Σ_k p_k φ_σ(y − v_k)·(v_k − E[X | y])² dy over the grid `y`, for each row of `p` [R, L]."""
    total = torch.zeros(len(p), dtype=_F64)
    logp = p.clamp_min(_TINY).log()
    step = max(1, 2**22 // (len(y) * len(v)))
    for r in range(0, len(p), step):
        logits = (
            logp[r : r + step, None, :] - (y[:, None] - v) ** 2 / (2 * s * s) - math.log(s * math.sqrt(2 * math.pi))
        )
        post = torch.softmax(logits, -1) @ v  # E[X | y]: [R, G]
        total[r : r + step] = torch.trapezoid((logits.exp() * (v - post[..., None]) ** 2).sum(-1), y, dim=-1)
    return total


def coordinate_bayes_mmse(marginals: Marginals, sigma: torch.Tensor) -> torch.Tensor:
    """B(σ) = Σ_i mmse_i(σ), each coordinate denoised alone under its own marginal law (§4b). The vector of
    these scalar estimators is one estimator of X0, so B(σ) ≥ mmse(σ) of the data at every σ."""
    per_law = scalar_bayes_mmse(marginals.levels, marginals.probs, sigma)
    return (marginals.multiplicity.to(_F64)[:, None] * per_law).sum(0)


# ----------------------------------------------------------------------------------------------
# Information quantities (§2) and weights (§1, §3.2).


def entropy_rate(mmse: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ḣ(σ) = dH(X0|X_σ)/dσ = mmse/σ³, per unit σ (I–MMSE, §2)."""
    return _t(mmse) / _t(sigma) ** 3


def entropy_rate_log(mmse: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """dH/d ln σ = mmse/σ² = σ·ḣ, per unit ln σ (§2)."""
    return _t(mmse) / _t(sigma) ** 2


def gate(sigma: torch.Tensor, sigma_p, n: float = 3.0) -> torch.Tensor:
    """g(σ) = σⁿ/(σⁿ + σ_pⁿ) (§3.2), as sigmoid(n·ln(σ/σ_p)) so neither σⁿ can overflow or underflow.
    With n = 2, σ_p = σ_d it equals EDM's 1/λ(σ) divided by σ_d²."""
    return torch.sigmoid(n * (_t(sigma).log() - _t(sigma_p).log()))


def loss_weight(sigma: torch.Tensor, weighting: str = "edm", sigma_data: float = 0.5) -> torch.Tensor:
    """w(σ) (§1): 'edm' → λ(σ) = (σ² + σ_d²)/(σ·σ_d)², 'unit' → 1 (allocation-controlled runs).
    The one home of w; keeps the dtype and device of a floating `sigma` so the loss can call it."""
    sigma = torch.as_tensor(sigma)
    if not sigma.is_floating_point():
        sigma = sigma.to(_F64)
    if weighting in ("edm", "edm2"):  # edm2: λ, divided by the learned exp(u(σ)) in the loss only
        return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    if weighting == "unit":
        return torch.ones_like(sigma)
    raise ValueError(f"Unknown weighting '{weighting}'. Valid weightings: edm, unit, edm2")


# ----------------------------------------------------------------------------------------------
# Smoothing across bins (§3.3, §5).


def smooth(values: torch.Tensor, std_bins: float = 1.0) -> torch.Tensor:
    """Gaussian smoothing across bins (std in bins, kernel truncated at 4 std). Half-sample symmetric
    reflection at both ends (scipy's 'reflect') keeps the total mass exactly and leaves a constant
    unchanged; std_bins = 0 returns a copy."""
    v = _t(values)
    if std_bins <= 0:
        return v.clone()
    r = int(4 * std_bins + 0.5)
    off = torch.arange(-r, r + 1)
    w = torch.exp(-0.5 * (off.to(_F64) / std_bins) ** 2)
    m = len(v)
    idx = (torch.arange(m)[:, None] + off) % (2 * m)  # periodic extension of [v, reversed v]
    idx = torch.where(idx >= m, 2 * m - 1 - idx, idx)
    return (v[idx] * (w / w.sum())).sum(1)


# ----------------------------------------------------------------------------------------------
# Pivot σ_p (§4).


def pivot_onset(hdot: torch.Tensor, sigma: torch.Tensor, tau: float = 0.002, k_persist: int = 3) -> float:
    """Continuous endpoints (§4): r = ḣ/max ḣ on the per-dσ profile; scanning from σ_max downward,
    σ_p is the first grid σ with r ≥ τ that stays so for `k_persist` consecutive bins (itself and the
    k−1 below). If no crossing persists, the highest bin with r ≥ τ."""
    hdot = _t(hdot)
    if not hdot.max() > 0:
        raise ValueError("pivot_onset: the entropy-rate profile has no positive value")
    above = hdot / hdot.max() >= tau
    k = min(int(k_persist), len(hdot))
    runs = above.unfold(0, k, 1).all(1).nonzero()  # runs[j]: bins j … j+k−1 all above τ
    top = int(runs[-1]) + k - 1 if len(runs) else int(above.nonzero()[-1])
    return float(sigma[top])


def _loglog_slopes(hdot: torch.Tensor, sigma: torch.Tensor, smooth_std: float) -> torch.Tensor:
    """s = d ln ḣ / d ln σ between neighbouring grid points (M−1 values), Gaussian-smoothed. Smoothing the
    slopes (not ln ḣ) keeps an exact power law exact up to the boundary."""
    y, x = _t(hdot).clamp_min(_TINY).log(), _t(sigma).log()
    return smooth((y[1:] - y[:-1]) / (x[1:] - x[:-1]), smooth_std)


def pivot_knee(hdot: torch.Tensor, sigma: torch.Tensor, smooth_std: float = 2.0) -> float:
    """Curvature knee in log–log coordinates (§4 fallback): the grid point of largest
    |κ| = |y''|/(1 + y'²)^{3/2}, y = ln ḣ, x = ln σ, among points at least ⌈4·smooth_std⌉ bins (≥ 2) from
    either end. The end bins are the sparsest (the floor's ε/M of the draws) and the smoothing reflects
    there, so their slopes are the noisiest: on young learned profiles an unguarded knee locked onto
    σ_min (benchmarks/RESULTS.md, "Discrete pivot")."""
    s = _loglog_slopes(hdot, sigma, smooth_std)
    x = _t(sigma).log()
    curv = (s[1:] - s[:-1]) / ((x[2:] - x[:-2]) / 2)
    kappa = curv.abs() / (1 + ((s[1:] + s[:-1]) / 2) ** 2) ** 1.5  # kappa[i] belongs to point i + 1
    margin = max(2, math.ceil(4 * smooth_std))
    if len(kappa) > 2 * margin:
        kappa[: margin - 1] = -1
        kappa[len(kappa) - margin + 1 :] = -1
    return float(sigma[1 + int(kappa.argmax())])


def pivot_powerlaw(
    hdot: torch.Tensor, sigma: torch.Tensor, tol: float = 0.25, min_decades: float = 1.0, smooth_std: float = 2.0
) -> float:
    """Discrete endpoints, v1 (§4, `pivot_rule: powerlaw`): the longest run of slopes starting at σ_min
    that all stay within ±tol of the run's median; σ_p is the grid point where the run ends. If the run
    spans < `min_decades` decades, fall back to `pivot_knee`."""
    upper, decades = _powerlaw_run(hdot, sigma, tol, smooth_std)
    if decades >= min_decades:
        return float(sigma[upper])
    return pivot_knee(hdot, sigma, smooth_std)


def _powerlaw_run(hdot: torch.Tensor, sigma: torch.Tensor, tol: float, smooth_std: float) -> tuple[int, float]:
    """(index of the grid point where the longest low-σ run of slopes within ±tol of its median ends,
    the decades it spans)."""
    s = _loglog_slopes(hdot, sigma, smooth_std)
    n = len(s)
    prefix = torch.arange(n)[None, :] <= torch.arange(n)[:, None]  # row i: slopes 0 … i
    med = torch.where(prefix, s, torch.nan).nanmedian(1).values
    ok = ((s[None, :] - med[:, None]).abs() <= tol).logical_or(~prefix).all(1)
    upper = int(ok.nonzero()[-1]) + 1  # slopes 0…i span points 0…i+1
    x = _t(sigma).log()
    return upper, float((x[upper] - x[0]) / math.log(10))


class Valley(NamedTuple):
    """The most prominent valley of the smoothed per-ln σ entropy rate (§4, discrete v2)."""

    sigma: float | None  # its grid σ; None when the profile has no interior valley
    prominence: float  # its topographic prominence in ln units (0 when there is none)


def most_prominent_valley(hdot: torch.Tensor, sigma: torch.Tensor, smooth_decades: float = 0.125) -> Valley:
    """The valley of y = ln(σ·ḣ) = ln(m̂/σ²) (Gaussian-smoothed, std `smooth_decades` decades of σ) with
    the largest topographic prominence, by `scipy.signal.find_peaks` on −y (§4 step 1–2). Levels, not
    slopes: a valley's prominence is a difference of smoothed log levels, which noise moves far less than
    a derivative. The end points are never valleys (find_peaks needs a neighbour on each side)."""
    from scipy.signal import find_peaks

    std_bins = smooth_decades * math.log(10) / log_step(sigma)
    y = smooth((_t(sigma) * _t(hdot)).clamp_min(_TINY).log(), std_bins)
    found, props = find_peaks(-y.numpy(), prominence=0)
    if len(found) == 0:
        return Valley(None, 0.0)
    best = int(props["prominences"].argmax())
    return Valley(float(sigma[int(found[best])]), float(props["prominences"][best]))


def pivot_valley(
    hdot: torch.Tensor, sigma: torch.Tensor, kappa: float = 1.5, smooth_decades: float = 0.125, fallback: float = 0.2
) -> tuple[float, str, float]:
    """Discrete endpoints, v2 (§4): (σ_p, rule, prominence). σ_p is the most prominent valley of the
    smoothed ln(m̂/σ²) if the information bump rises ≥ κ× above it (prominence ≥ ln κ, rule 'valley');
    else `fallback` (rule 'fallback': a young profile that still falls monotonically)."""
    v = most_prominent_valley(hdot, sigma, smooth_decades)
    if v.sigma is not None and v.prominence >= math.log(kappa):
        return v.sigma, "valley", v.prominence
    return float(fallback), "fallback", v.prominence


class Pivot(NamedTuple):
    """σ_p with the rule that set it — pinned, onset (continuous), valley or fallback (discrete v2),
    powerlaw or knee (discrete v1) — and the valley prominence seen (v2 only, else None)."""

    sigma_p: float
    rule: str
    prominence: float | None = None


PIVOT_RULES = ("valley", "powerlaw")


def pivot(
    hdot: torch.Tensor,
    sigma: torch.Tensor,
    endpoint: str,
    pinned: float | None = None,
    *,
    rule: str = "valley",
    tau: float = 0.002,
    k_persist: int = 3,
    tol: float = 0.25,
    min_decades: float = 1.0,
    smooth_std: float = 2.0,
    kappa: float = 1.5,
    smooth_decades: float = 0.125,
    fallback: float = 0.2,
) -> Pivot:
    """σ_p (§4): `pinned` if given; else 'continuous' → onset; 'discrete' → `rule` ('valley', v2, or
    'powerlaw', v1 with its knee fallback)."""
    if pinned is not None:
        return Pivot(float(pinned), "pinned")
    if endpoint == "continuous":
        return Pivot(pivot_onset(hdot, sigma, tau, k_persist), "onset")
    if endpoint != "discrete":
        raise ValueError(f"Unknown endpoint '{endpoint}'. Valid endpoints: continuous, discrete")
    if rule == "valley":
        return Pivot(*pivot_valley(hdot, sigma, kappa, smooth_decades, fallback))
    if rule == "powerlaw":
        upper, decades = _powerlaw_run(hdot, sigma, tol, smooth_std)
        if decades >= min_decades:
            return Pivot(float(sigma[upper]), "powerlaw")
        return Pivot(pivot_knee(hdot, sigma, smooth_std), "knee")
    raise ValueError(f"Unknown pivot rule '{rule}'. Valid rules: {', '.join(PIVOT_RULES)}")


# ----------------------------------------------------------------------------------------------
# Entropy rate → allocation → schedule → per-ln σ density (§3).


def _normalise_sigma_density(f: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Scale a per-unit-σ profile to unit mass on the grid: Σ σ_k f_k Δ = 1."""
    sigma = _t(sigma)
    mass = (sigma * f).sum() * log_step(sigma)
    if not (torch.isfinite(mass) and mass > 0):
        raise ValueError("density has no positive finite mass on the grid")
    return f / mass


def allocation(
    hdot: torch.Tensor, sigma: torch.Tensor, sigma_p: float, n: float = 3.0, smooth_std: float = 1.0
) -> torch.Tensor:
    """ρ ∝ smooth(g·ḣ), per unit σ, normalised (§3.2–§3.3): the emphasis π·w should follow."""
    sigma = _t(sigma)
    return _normalise_sigma_density(smooth(gate(sigma, sigma_p, n) * _t(hdot), smooth_std), sigma)


def schedule_from_allocation(rho: torch.Tensor, sigma: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """π ∝ ρ/w per unit σ, normalised (§3.4): the sampling density whose emphasis π·w ∝ ρ."""
    return _normalise_sigma_density(_t(rho) / _t(w), sigma)


def log_density(pi: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """σ·π, the density per unit ln σ (the Jacobian of §3.5), normalised: Σ_k p_k Δ = 1."""
    sigma = _t(sigma)
    return _normalise_sigma_density(_t(pi), sigma) * sigma


def add_floor(density_log: torch.Tensor, eps_floor: float = 0.02) -> torch.Tensor:
    """(1−ε)·p + ε·log-uniform (§3.7). On a uniform ln σ grid the log-uniform density of equal mass is
    mean(p), so the result keeps p's normalisation."""
    p = _t(density_log)
    return (1 - eps_floor) * p + eps_floor * p.mean()


# ----------------------------------------------------------------------------------------------
# Tables and inverse-CDF sampling (§3.6).


def build_cdf(density_log: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """CDF table [2, M+1] (ln σ at the edges; cumulative mass there, 0 … 1) of the density that is
    constant per bin in ln σ with value `density_log[k]` on the bin centred at `sigma[k]`."""
    p = _t(density_log)
    edges = edges_from_grid(sigma)
    mass = p * (edges[1:] - edges[:-1])
    total = mass.sum()
    if not (torch.isfinite(total) and total > 0) or (p < 0).any():
        raise ValueError("build_cdf: density must be non-negative with positive finite mass")
    cdf = torch.cat([torch.zeros(1, dtype=_F64), mass.cumsum(0) / total])
    cdf[-1] = 1.0
    return torch.stack([edges, cdf])


def bin_masses(table: torch.Tensor) -> torch.Tensor:
    """Probability of each bin under a CDF table."""
    return table[1].diff()


def sample_icdf(u: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """σ = F⁻¹(u) for u ∈ [0, 1]: find the bracketing edges, interpolate ln σ linearly between them
    (exact for the piecewise-constant-in-ln σ density), float64."""
    x, c = table[0], table[1]
    u = _t(u).contiguous()
    k = (torch.searchsorted(c, u, right=True) - 1).clamp(0, len(x) - 2)
    frac = ((u - c[k]) / (c[k + 1] - c[k]).clamp_min(_TINY)).clamp(0, 1)
    return (x[k] + frac * (x[k + 1] - x[k])).exp()


def cdf_at(sigma: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """F(σ) of a table (piecewise linear in ln σ), for KS tests and quantile checks."""
    x, c = table[0], table[1]
    ls = _t(sigma).log().clamp(float(x[0]), float(x[-1])).contiguous()
    k = (torch.searchsorted(x, ls, right=True) - 1).clamp(0, len(x) - 2)
    return c[k] + (c[k + 1] - c[k]) * (ls - x[k]) / (x[k + 1] - x[k])


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """½·Σ|p − q| between two mass vectors over the same atoms (each normalised to sum 1 first)."""
    p, q = _t(p), _t(q)
    return float(0.5 * (p / p.sum() - q / q.sum()).abs().sum())
