"""InfoNoise: the training schedule that follows the online entropy-rate estimate (docs/method.md §3–§5).

Per step the loop draws σ (`sample`), pushes each sample's unweighted error ‖D − x0‖² into a per-bin
FIFO (`observe`), and calls `step`. At a refresh the FIFO means, combined over ranks, update the
running MMSE estimate m̂; ḣ = m̂/σ³ gives the pivot, the allocation ρ, the schedule π ∝ ρ/w and
the CDF table that `sample` inverts. All maths lives in `information.py`.

Warm-up (docs/method.md §5): the sampler π0 must fill every bin so the first refresh can come at the end of
warm-up. Discrete endpoints warm up log-uniformly (each of the M bins gets 1/M of the draws: n_min is
reached after ≈ n_min·M/batch steps). Continuous ones use EDM's log-normal with the same coverage floor
ε as every table: a pure log-normal practically never visits the end bins of [0.002, 80] (≈1e-6 per
draw); with ε = 0.02 each bin gets ε/M of the draws. floor = 0 gives exactly `LogNormal`.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Callable

import torch

from . import distributed
from . import information as info
from .base import NoiseScheduler, std_normal_icdf, uniform
from .lognormal import LogNormal
from .loguniform import LogUniform

_QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(f"infonoise: {msg}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _fixed_profile(source: str | dict, sigma: torch.Tensor) -> torch.Tensor:
    """m̂ at the grid from a profile {sigma, mmse}: a dict, or a JSON file holding one (as
    `benchmarks.time_to_target` writes for the oracle from a probed checkpoint)."""
    if isinstance(source, str):
        try:
            with open(source, encoding="utf-8") as f:
                source = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"infonoise: fixed_profile {source}: cannot read a JSON profile ({e})") from None
    if not isinstance(source, dict) or not {"sigma", "mmse"} <= set(source):
        raise ValueError("infonoise: fixed_profile must be a JSON object (or dict) with 'sigma' and 'mmse' arrays")
    try:
        return info.profile_on_grid(source["sigma"], source["mmse"], sigma)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"infonoise: fixed_profile: {e}") from None


MMSE_CAPS = ("none", "coordinate-bayes", "auto")


class InfoNoise(NoiseScheduler):
    """Defaults are docs/method.md §5's. `smooth_std` smooths the allocation across bins.
    Discrete pivot (docs/method.md §4): `pivot_rule` 'valley' (v2: the most prominent valley of ln(m̂/σ²) smoothed over
    `valley_smooth_decades`, if its prominence ≥ ln `valley_kappa`, else `sigma_p_fallback`) or
    'powerlaw' (v1, kept for comparison: `powerlaw_tol`, `powerlaw_min_decades`, and `slope_smooth_std`
    bins of smoothing on the log–log slopes it reads). Once a refresh has found a valley, the next one
    keeps the valley rule while the prominence stays ≥ `valley_hysteresis`·ln κ (ours, 0.5; 1 = stateless):
    a bump hovering at κ would otherwise flip σ_p between the valley and the fallback every refresh (a
    recorded binarized-MNIST profile fell from 1.72× to 1.48× while its valley stayed put).
    `weighting` is the loss weight w(σ) of §3.4 (π ∝ ρ/w): 'edm', 'unit', 'edm2', or a function of σ for a foreign
    loop's own objective (`infonoise.loop.InfoNoiseSampler` derives it, docs/method.md §10).
    `warmup_sampler` 'auto' is log-uniform for both endpoints (docs/method.md §5: the warm-up ends when every bin
    is filled, which a log-uniform sampler does fastest); 'lognormal' is EDM's log-normal with the floor ε."""

    name = "infonoise"

    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        num_bins: int = 128,
        fifo_size: int = 256,
        ema_beta: float = 0.0,
        refresh_every: int | str | None = "auto",
        warmup_steps: int | str | None = "auto",
        min_count: int = 8,
        refresh_fifo_fraction: float = 0.125,
        refresh_run_fraction: float = 1 / 32,
        fixed_profile: str | dict | None = None,
        mmse_cap: str = "auto",
        training_data=None,
        smooth_std: float = 1.0,
        gate_n: float = 3.0,
        tau: float = 0.002,
        k_persist: int = 3,
        powerlaw_tol: float = 0.25,
        powerlaw_min_decades: float = 1.0,
        slope_smooth_std: float = 2.0,
        floor: float = 0.02,
        endpoint: str = "continuous",
        sigma_p: float | None = None,
        weighting: str | Callable[[torch.Tensor], torch.Tensor] = "edm",
        sigma_data: float = 0.5,
        warmup_P_mean: float = -1.2,
        warmup_P_std: float = 1.2,
        pivot_rule: str = "valley",
        valley_kappa: float = 1.5,
        valley_smooth_decades: float = 0.125,
        sigma_p_fallback: float = 0.2,
        valley_hysteresis: float = 0.5,
        warmup_sampler: str = "auto",
    ):
        _check(0 < sigma_min < sigma_max < math.inf, f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        _check(_is_int(num_bins) and num_bins >= 3, f"num_bins must be an integer >= 3, got {num_bins!r}")
        _check(_is_int(fifo_size) and fifo_size >= 1, f"fifo_size must be an integer >= 1, got {fifo_size!r}")
        _check(
            _is_int(min_count) and 1 <= min_count <= fifo_size,
            f"min_count must be an integer in [1, fifo_size={fifo_size}], got {min_count!r}",
        )
        _check(0 <= ema_beta < 1, f"ema_beta must be in [0, 1), got {ema_beta}")
        refresh_every = None if refresh_every == "auto" else refresh_every
        warmup_steps = None if warmup_steps == "auto" else warmup_steps
        _check(
            refresh_every is None or (_is_int(refresh_every) and refresh_every >= 1),
            f"refresh_every must be 'auto' or an integer >= 1, got {refresh_every!r}",
        )
        _check(
            warmup_steps is None or (_is_int(warmup_steps) and warmup_steps >= 0),
            f"warmup_steps must be 'auto' or an integer >= 0, got {warmup_steps!r}",
        )
        _check(0 < refresh_fifo_fraction <= 1, f"refresh_fifo_fraction must be in (0, 1], got {refresh_fifo_fraction}")
        _check(mmse_cap in MMSE_CAPS, f"unknown mmse_cap '{mmse_cap}'. Valid: {', '.join(MMSE_CAPS)}")
        _check(0 <= refresh_run_fraction <= 1, f"refresh_run_fraction must be in [0, 1], got {refresh_run_fraction}")
        _check(smooth_std >= 0, f"smooth_std must be >= 0, got {smooth_std}")
        _check(gate_n > 0, f"gate_n must be > 0, got {gate_n}")
        _check(0 < tau <= 1, f"tau must be in (0, 1], got {tau}")
        _check(
            _is_int(k_persist) and 1 <= k_persist <= num_bins,
            f"k_persist must be an integer in [1, num_bins], got {k_persist!r}",
        )
        _check(powerlaw_tol > 0, f"powerlaw_tol must be > 0, got {powerlaw_tol}")
        _check(powerlaw_min_decades >= 0, f"powerlaw_min_decades must be >= 0, got {powerlaw_min_decades}")
        _check(slope_smooth_std >= 0, f"slope_smooth_std must be >= 0, got {slope_smooth_std}")
        _check(0 <= floor < 1, f"floor must be in [0, 1), got {floor}")
        _check(
            endpoint != "auto",
            "endpoint 'auto' must be resolved to 'continuous' or 'discrete' by the "
            "caller (it depends on the data set) before building the scheduler",
        )
        _check(endpoint in ("continuous", "discrete"), f"unknown endpoint '{endpoint}'. Valid: continuous, discrete")
        _check(sigma_p is None or 0 < sigma_p < math.inf, f"sigma_p (pinned pivot) must be None or > 0, got {sigma_p}")
        _check(
            callable(weighting) or weighting in ("edm", "unit", "edm2"),
            f"unknown weighting {weighting!r}. Valid: edm, unit, edm2, or a function σ → w(σ) (a loop's own weight)"
            if isinstance(weighting, str)
            else f"weighting must be 'edm', 'unit', 'edm2' or a function σ → w(σ), got {type(weighting).__name__}",
        )
        _check(sigma_data > 0, f"sigma_data must be > 0, got {sigma_data}")
        _check(warmup_P_std > 0, f"warmup_P_std must be > 0, got {warmup_P_std}")
        _check(
            pivot_rule in info.PIVOT_RULES, f"unknown pivot_rule '{pivot_rule}'. Valid: {', '.join(info.PIVOT_RULES)}"
        )
        _check(valley_kappa >= 1, f"valley_kappa must be >= 1, got {valley_kappa}")
        _check(valley_smooth_decades >= 0, f"valley_smooth_decades must be >= 0, got {valley_smooth_decades}")
        _check(0 < sigma_p_fallback < math.inf, f"sigma_p_fallback must be > 0, got {sigma_p_fallback}")
        _check(0 < valley_hysteresis <= 1, f"valley_hysteresis must be in (0, 1], got {valley_hysteresis}")
        _check(
            warmup_sampler in ("auto", "lognormal", "loguniform"),
            f"unknown warmup_sampler '{warmup_sampler}'. Valid: auto, lognormal, loguniform",
        )

        self.sigma_min, self.sigma_max, self.num_bins = float(sigma_min), float(sigma_max), num_bins
        self.fifo_size, self.min_count, self.ema_beta = fifo_size, min_count, float(ema_beta)
        self.refresh_every, self.warmup_steps = refresh_every, warmup_steps
        self.refresh_fifo_fraction, self.refresh_run_fraction = (
            float(refresh_fifo_fraction),
            float(refresh_run_fraction),
        )
        self.smooth_std, self.gate_n, self.tau, self.k_persist = float(smooth_std), float(gate_n), float(tau), k_persist
        self.powerlaw_tol, self.powerlaw_min_decades = float(powerlaw_tol), float(powerlaw_min_decades)
        self.slope_smooth_std, self.floor = float(slope_smooth_std), float(floor)
        self.endpoint, self.pinned = endpoint, None if sigma_p is None else float(sigma_p)
        self.weighting, self.sigma_data = weighting, float(sigma_data)
        self.pivot_rule, self.valley_kappa = pivot_rule, float(valley_kappa)
        self.valley_smooth_decades, self.sigma_p_fallback = float(valley_smooth_decades), float(sigma_p_fallback)
        self.valley_hysteresis = float(valley_hysteresis)
        self._warmup_sampler_auto = warmup_sampler == "auto"
        if warmup_sampler == "auto":  # every bin 1/M of the draws: filled after ≈ n_min·M/batch steps (§5)
            warmup_sampler = "loguniform"
        self.warmup_sampler = warmup_sampler
        self.warmup = LogNormal(warmup_P_mean, warmup_P_std)
        self.loguniform = LogUniform(sigma_min, sigma_max)

        self.sigma = info.log_sigma_grid(sigma_min, sigma_max, num_bins)  # bin centres
        if callable(weighting):  # a foreign loop's own loss weight in x0-error units (docs/method.md §10)
            self.weighting, self.weight = "custom", torch.as_tensor(weighting(self.sigma), dtype=torch.float64)
            ok = self.weight.shape == self.sigma.shape and bool((torch.isfinite(self.weight) & (self.weight > 0)).all())
            _check(ok, "weighting: the function must return one finite w(σ) > 0 per grid σ")
        else:
            self.weight = info.loss_weight(self.sigma, weighting, sigma_data)
        self._buf = torch.zeros(num_bins, fifo_size, dtype=torch.float64)  # FIFO ring buffers
        self._ptr = torch.zeros(num_bins, dtype=torch.int64)  # next write slot
        self._count = torch.zeros(num_bins, dtype=torch.int64)  # filled slots
        self._staged: list[tuple[torch.Tensor, torch.Tensor]] = []  # observed, not yet in the FIFOs
        self.mhat = self.hdot = self.alloc = self.log_dens = self.table = None
        self.sigma_p, self.pivot_set_by, self.prominence = None, None, None
        self.refreshes, self.last_refresh_step, self.n_observed, self.n_nonfinite, self.n_outside = 0, -1, 0, 0, 0
        self.history: list[dict] = []
        # Automatic cadence (docs/method.md §5): the first step this scheduler saw, and the interval in steps
        # that brings refresh_fifo_fraction·M·B new errors (set at the first refresh from all ranks' counts).
        self.first_step, self.auto_every = None, None
        # 'auto': the cap where the endpoint is discrete, none where it is continuous (docs/method.md §4b: there the
        # bound only removes the low-σ divergence that the onset rule normalises by, and moves σ_p up a decade).
        asked, self._mmse_cap_auto = mmse_cap, mmse_cap == "auto"
        if mmse_cap == "auto":
            mmse_cap = "coordinate-bayes" if endpoint == "discrete" else "none"
            if mmse_cap != "none" and training_data is None:  # a library user without the data: say what it costs
                warnings.warn(
                    "InfoNoise: the default mmse_cap 'auto' caps m̂ on a discrete endpoint by the coordinate-wise Bayes "
                    "bound (docs/method.md §4b), which needs the training data; none was given, so this run has no "
                    "cap. Pass training_data=<tensor [N, ...] in model space> (or mmse_cap='none' to silence this).",
                    stacklevel=2,
                )
                mmse_cap = "none"
        _check(
            mmse_cap == "none" or training_data is not None,
            f"mmse_cap '{asked}' with endpoint {endpoint} needs the training data (the training loop passes it; a "
            "library user passes training_data=<tensor [N, ...] in model space, or a function returning one>)",
        )
        self.mmse_cap, self._training_data, self._cap = mmse_cap, training_data, None
        if self.mmse_cap != "none":  # read the data now: a data set the bound cannot take fails at start-up
            self.cap
        self.fixed = None if fixed_profile is None else _fixed_profile(fixed_profile, self.sigma)
        self._fixed_record = None
        if self.fixed is not None:  # the oracle: the allocation of a given profile, fixed from step 0
            self._fixed_record = self._refresh(self.fixed, 0, 0)

    @property
    def cap(self) -> torch.Tensor | None:
        """B(σ) on the grid (§4b), computed from the training data once, at construction (or when a resumed
        run adopts its snapshot's cap) — identically on every rank, which all read the same data — and None
        without the cap."""
        if self.mmse_cap == "none":
            return None
        if self._cap is None:
            data = self._training_data() if callable(self._training_data) else self._training_data
            try:
                marginals = info.coordinate_marginals(torch.as_tensor(data))
            except (ValueError, TypeError, RuntimeError) as e:
                raise ValueError(f"infonoise: mmse_cap '{self.mmse_cap}': {e}") from None
            self._cap = info.coordinate_bayes_mmse(marginals, self.sigma)
            levels = marginals.levels
            if self.pinned is None and not set(levels.tolist()) <= {-1.0, 1.0}:
                warnings.warn(  # the valley rule and the cap scale with the data; the fallback pivot does not
                    f"InfoNoise: the discrete pivot's fallback σ_p = {self.sigma_p_fallback:g} is the paper's value "
                    f"for ±1 data, but these data take {len(levels)} levels in [{float(levels.min()):g}, "
                    f"{float(levels.max()):g}]: map them to ±1 (one-hot as ±1), or pass sigma_p_fallback= scaled "
                    "to them (docs/method.md §4).",
                    stacklevel=2,
                )
        return self._cap

    # -- sampling ------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """σ ~ π: inverse CDF of the current table, or of the warm-up mixture before the first refresh.
        One uniform per draw, so a resumed run with the same generator draws the same σ."""
        if self.table is None and self.warmup_sampler == "loguniform":
            return self.loguniform.sample(n, generator)
        u = uniform(n, generator)
        if self.table is not None:
            return info.sample_icdf(u, self.table).float()
        eps, lo, hi = self.floor, math.log(self.sigma_min), math.log(self.sigma_max)
        z = std_normal_icdf(((u - eps) / (1 - eps)).clamp(1e-12, 1 - 1e-12))
        ln_sigma = torch.where(
            u < eps, lo + (hi - lo) * u / max(eps, 1e-300), self.warmup.P_mean + self.warmup.P_std * z
        )
        return ln_sigma.exp().float()

    def density(self, sigma: torch.Tensor) -> torch.Tensor:
        """π(σ) per unit σ of the distribution `sample` draws from (warm-up mixture before the first refresh)."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        if self.table is None and self.warmup_sampler == "loguniform":
            return self.loguniform.density(sigma)
        if self.table is None:
            return (1 - self.floor) * self.warmup.density(sigma) + self.floor * self.loguniform.density(sigma)
        k = info.bin_index(sigma, self.sigma_min, self.sigma_max, self.num_bins)
        inside = (sigma >= self.sigma_min) & (sigma <= self.sigma_max)
        return torch.where(inside, self.log_dens[k] / sigma, 0.0)

    # -- statistics ----------------------------------------------------------------------------
    def observe(self, sigma: torch.Tensor, error: torch.Tensor) -> None:
        """Stage per-sample errors (detached, where they live: no copy to the host, no synchronisation in
        the training step). They enter the FIFOs, in batch order, when a refresh or a snapshot needs them
        (`flush`) — the same FIFO contents as pushing every batch at once."""
        sigma, error = sigma.detach().reshape(-1), error.detach().reshape(-1)
        if sigma.numel() != error.numel():
            raise ValueError(f"infonoise.observe: {sigma.numel()} sigmas but {error.numel()} errors")
        self._staged.append((sigma, error))
        if len(self._staged) >= 256:  # bounded memory between refreshes (same FIFO contents either way)
            self.flush()

    def flush(self) -> None:
        """Push the staged errors into FIFO[bin(σ)], keeping the last B per bin (in batch order).
        Vectorised: stable sort by bin, rank within bin, one scatter. Non-finite entries are dropped
        and counted; so are σ outside [σ_min, σ_max] (the warm-up log-normal's rare tails), which would
        bias the end bins' estimate of m̂ at their own σ (a float32 rounding margin is kept)."""
        if not self._staged:
            return
        sigma = torch.cat([s.to("cpu", torch.float64) for s, _ in self._staged])
        error = torch.cat([e.to("cpu", torch.float64) for _, e in self._staged])
        self._staged = []
        finite = error.isfinite() & sigma.isfinite()
        inside = (sigma >= self.sigma_min * (1 - 1e-6)) & (sigma <= self.sigma_max * (1 + 1e-6))
        good = finite & inside
        self.n_nonfinite += int((~finite).sum())
        self.n_outside += int((finite & ~inside).sum())
        k = info.bin_index(sigma[good], self.sigma_min, self.sigma_max, self.num_bins)
        k, order = k.sort(stable=True)
        error = error[good][order]
        n_k = torch.bincount(k, minlength=self.num_bins)
        rank = torch.arange(len(k)) - (n_k.cumsum(0) - n_k)[k]
        keep = rank >= n_k[k] - self.fifo_size  # a flood larger than B keeps only its last B
        self._buf[k[keep], (self._ptr[k[keep]] + rank[keep]) % self.fifo_size] = error[keep]
        self._ptr = (self._ptr + n_k) % self.fifo_size
        self._count = (self._count + n_k).clamp(max=self.fifo_size)
        self.n_observed += len(k)

    # The FIFOs as seen from outside: every staged error folded in first.
    buf = property(lambda self: (self.flush(), self._buf)[1])
    ptr = property(lambda self: (self.flush(), self._ptr)[1])
    count = property(lambda self: (self.flush(), self._count)[1])

    def step(self, global_step: int) -> dict | None:
        """Refresh when due (docs/method.md §5), once every bin holds ≥ n_min errors over all ranks. Must be
        called with the same step on every rank: it runs a collective then. Returns the refresh's log
        record, else None. Automatic warm-up: a refresh is tried at every step until the first succeeds.
        Automatic cadence: afterwards every max(K_obs, ⌈refresh_run_fraction·step⌉) steps, K_obs being the
        steps that bring refresh_fifo_fraction·M·B new errors. Explicit integers: step ≥ N_warm and
        step % K == 0, as before. A fixed profile (the oracle) never refreshes: its one record is step 0's."""
        first_call = self.first_step is None
        if first_call:
            self.first_step = int(global_step)
        if self.fixed is not None:  # its table was built at construction; logged once, by a fresh run
            return self._fixed_record if first_call else None
        if not self.due(int(global_step)):
            return None
        local = torch.stack(
            [self._bin_sums(self.buf), self.count.to(torch.float64), torch.zeros(self.num_bins, dtype=torch.float64)]
        )  # flushes; empty slots hold 0
        local[2, 0] = self.n_observed
        sums, counts, observed = distributed.all_reduce_sum(local)  # identical on every rank
        if counts.min() < self.min_count:
            return None
        if self.auto_every is None and self.refresh_every is None:
            per_step = float(observed[0]) / (int(global_step) - self.first_step + 1)
            self.auto_every = max(1, math.ceil(self.refresh_fifo_fraction * self.num_bins * self.fifo_size / per_step))
        return self._refresh(sums / counts, global_step, int(counts.min()))

    def due(self, s: int) -> bool:
        """Whether a refresh is due at step `s` (it still needs every bin filled, checked in `step`)."""
        if s == self.last_refresh_step:
            return False
        if self.table is None:  # warm-up: explicit length, or until every bin is filled (checked in step)
            if self.warmup_steps is not None and s < self.warmup_steps:
                return False
            return self.refresh_every is None or self.warmup_steps is None or s % self.refresh_every == 0
        if self.refresh_every is not None:
            return s % self.refresh_every == 0
        return s - self.last_refresh_step >= max(self.auto_every, math.ceil(self.refresh_run_fraction * s))

    def _bin_sums(self, buf: torch.Tensor) -> torch.Tensor:
        """Per-bin sum of the statistic a refresh averages: the errors themselves (m̂, docs/method.md §5)."""
        return buf.sum(1)

    def _refresh(self, ell: torch.Tensor, global_step: int, min_count: int) -> dict:
        """ℓ → m̂ (EMA) → ḣ → σ_p → ρ → π → floored per-ln σ density → CDF table (docs/method.md §5)."""
        self.mhat = ell.clone() if self.mhat is None else self.ema_beta * self.mhat + (1 - self.ema_beta) * ell
        # With the cap, ḣ reads min(m̂, B): the network's excess error where B shows no information left (§4b)
        used = self.mhat if self.mmse_cap == "none" else torch.minimum(self.mhat, self.cap)
        self.hdot = info.entropy_rate(used, self.sigma)
        kappa = self.valley_kappa ** (self.valley_hysteresis if self.pivot_set_by == "valley" else 1.0)
        self.sigma_p, self.pivot_set_by, self.prominence = info.pivot(
            self.hdot,
            self.sigma,
            self.endpoint,
            self.pinned,
            rule=self.pivot_rule,
            tau=self.tau,
            k_persist=self.k_persist,
            tol=self.powerlaw_tol,
            min_decades=self.powerlaw_min_decades,
            smooth_std=self.slope_smooth_std,
            kappa=kappa,
            smooth_decades=self.valley_smooth_decades,
            fallback=self.sigma_p_fallback,
        )
        self.alloc = info.allocation(self.hdot, self.sigma, self.sigma_p, self.gate_n, self.smooth_std)
        pi = info.schedule_from_allocation(self.alloc, self.sigma, self.weight)
        self.log_dens = info.add_floor(info.log_density(pi, self.sigma), self.floor)
        previous = self._masses()
        self.table = info.build_cdf(self.log_dens, self.sigma)
        self.refreshes += 1
        self.last_refresh_step = int(global_step)

        q = torch.tensor(_QUANTILES, dtype=torch.float64)
        alloc_q = info.sample_icdf(q, info.build_cdf(info.log_density(self.alloc, self.sigma), self.sigma))
        sched_q = info.sample_icdf(q, self.table)
        summary = dict(
            step=int(global_step),
            refresh=self.refreshes,
            sigma_p=self.sigma_p,
            pivot_rule=self.pivot_set_by,
            prominence=self.prominence,
            tv_change=info.total_variation(self._masses(), previous),
            min_count=min_count,
            ema_beta=self.ema_beta,
            n_nonfinite=self.n_nonfinite,
            n_outside=self.n_outside,
            **{f"alloc_q{round(100 * p):02d}": float(v) for p, v in zip(_QUANTILES, alloc_q)},
            **{f"sched_q{round(100 * p):02d}": float(v) for p, v in zip(_QUANTILES, sched_q)},
        )
        self.history.append(summary)
        return dict(
            summary,
            sigma=self.sigma.tolist(),
            mmse=self.mhat.tolist(),
            hdot=self.hdot.tolist(),
            allocation=self.alloc.tolist(),
            log_density=self.log_dens.tolist(),
            cdf=self.table[1].tolist(),
            **({} if self.mmse_cap == "none" else {"bayes_cap": self.cap.tolist()}),
        )

    def _masses(self) -> torch.Tensor:
        """Bin masses of the current sampler plus its mass outside [σ_min, σ_max] (M+1 atoms), for the
        TV change. Before the first refresh: the warm-up mixture (log-normal part exact per bin)."""
        if self.table is not None:
            return torch.cat([info.bin_masses(self.table), torch.zeros(1, dtype=torch.float64)])
        if self.warmup_sampler == "loguniform":
            return torch.cat(
                [
                    torch.full((self.num_bins,), 1 / self.num_bins, dtype=torch.float64),
                    torch.zeros(1, dtype=torch.float64),
                ]
            )
        edges = info.log_sigma_edges(self.sigma_min, self.sigma_max, self.num_bins)
        cdf = torch.special.ndtr((edges - self.warmup.P_mean) / self.warmup.P_std)
        eps = self.floor
        outside = (1 - eps) * (cdf[0] + 1 - cdf[-1])
        return torch.cat([(1 - eps) * cdf.diff() + eps / self.num_bins, outside[None]])

    # -- export and checkpointing --------------------------------------------------------------
    def profile(self) -> dict | None:
        """The learned profile at the bin centres (None before the first refresh): m̂, ḣ (per dσ), the
        allocation ρ and the sampling density π (per dσ, floor included), its per-ln σ form, σ_p, and
        the CDF table (edges in σ, CDF there) for InfoGrid and plots."""
        if self.table is None:
            return None
        return dict(
            sigma=self.sigma.clone(),
            mmse=self.mhat.clone(),
            hdot=self.hdot.clone(),
            allocation=self.alloc.clone(),
            schedule=self.log_dens / self.sigma,
            log_density=self.log_dens.clone(),
            sigma_p=float(self.sigma_p),
            sigma_edges=self.table[0].exp(),
            cdf=self.table[1].clone(),
            refreshes=self.refreshes,
        )

    _STRUCTURE = ("sigma_min", "sigma_max", "num_bins", "fifo_size")
    _TENSORS = ("buf", "ptr", "count", "mhat", "hdot", "alloc", "log_dens", "table")
    _SCALARS = (
        "sigma_p",
        "pivot_set_by",
        "prominence",
        "refreshes",
        "last_refresh_step",
        "n_observed",
        "n_nonfinite",
        "n_outside",
        "first_step",
        "auto_every",
    )

    def state_dict(self) -> dict:
        """Everything needed to continue identically, as tensors and Python scalars (weights_only-safe)."""
        self.flush()
        state = {name: getattr(self, name) for name in self._STRUCTURE + self._SCALARS}
        state.update(
            {name: None if getattr(self, name) is None else getattr(self, name).clone() for name in self._TENSORS}
        )
        state["history"] = [dict(h) for h in self.history]
        state["mmse_cap"] = self.mmse_cap
        return state

    def load_state_dict(self, state: dict) -> None:
        for name in self._STRUCTURE:
            if state[name] != getattr(self, name):
                raise ValueError(
                    f"infonoise: checkpoint has {name}={state[name]}, this scheduler "
                    f"{getattr(self, name)}; the grid/FIFO layout cannot change on resume"
                )
        self._staged = []
        for name in self._TENSORS:
            value = state[name]
            value = None if value is None else value.detach().to("cpu").clone()
            setattr(self, f"_{name}" if name in ("buf", "ptr", "count") else name, value)
        if "first_step" not in state:  # written before the fresh-statistics defaults: keep that run's behaviour
            self.adopt_legacy_defaults()
        if self._mmse_cap_auto:  # the default: the cap the run had (none before 'auto' became the default, §4b)
            self._adopt_cap(state.get("mmse_cap", "none"))
        optional = ("pivot_set_by", "prominence", "first_step", "auto_every")  # newer than some snapshots
        for name in self._SCALARS:
            setattr(self, name, state.get(name) if name in optional else state[name])
        self.history = [dict(h) for h in state["history"]]

    # The defaults before docs/method.md §5's fresh statistics (β 0.9, refresh every 500 steps after 1,000).
    LEGACY_DEFAULTS = dict(ema_beta=0.9, refresh_every=500, warmup_steps=1000)

    def adopt_legacy_defaults(self) -> None:
        """A snapshot from before the automatic defaults resumes as it ran: each of β, K and N_warm that is at
        today's default (so the run did not set it) takes the default that run had."""
        if self.ema_beta == 0.0:
            self.ema_beta = self.LEGACY_DEFAULTS["ema_beta"]
        if self.refresh_every is None:
            self.refresh_every = self.LEGACY_DEFAULTS["refresh_every"]
        if self.warmup_steps is None:
            self.warmup_steps = self.LEGACY_DEFAULTS["warmup_steps"]
        if self._warmup_sampler_auto and self.endpoint == "continuous":  # it warmed up on the floored log-normal
            self.warmup_sampler = "lognormal"

    def _adopt_cap(self, mmse_cap: str) -> None:
        if mmse_cap != self.mmse_cap:
            _check(
                mmse_cap == "none" or self._training_data is not None,
                f"the checkpoint ran with mmse_cap '{mmse_cap}', which needs the training data; pass "
                "training_data=<tensor> (or mmse_cap='none' explicitly to continue without the cap)",
            )
            self.mmse_cap, self._cap = mmse_cap, None
            if mmse_cap != "none":
                self.cap

    def __repr__(self) -> str:
        return (
            f"InfoNoise(endpoint={self.endpoint}, pivot_rule={self.pivot_rule}, warmup={self.warmup_sampler}, "
            f"weighting={self.weighting}, M={self.num_bins}, "
            f"B={self.fifo_size}, K={'auto' if self.refresh_every is None else self.refresh_every}, "
            f"warmup={'auto' if self.warmup_steps is None else self.warmup_steps}, "
            f"beta={self.ema_beta}, cap={self.mmse_cap}, {'fixed profile, ' if self.fixed is not None else ''}"
            f"sigma_p={'pinned ' + str(self.pinned) if self.pinned is not None else 'auto'}, "
            f"refreshes={self.refreshes})"
        )
