"""InfoNoise in a foreign training loop: draw the loop's own time variable, observe its errors, refresh.

`InfoNoiseSampler` wraps the InfoNoise scheduler (docs/method.md §3–§5, which lives in EDM's σ) with a time variable
(`infonoise.timevars`) and the loop's objective, so that a loop that draws `t = torch.rand(b)` or
`torch.randint(0, T, (b,))` replaces that one line with `t = sampler.sample(b)` and adds two: `observe` and `step`.
The conversions it applies are derived in docs/method.md §10:
- draws: σ ~ π, then t = t(σ) (monotone: the t-density is π(σ(t))·|dσ/dt|; discrete t snaps σ to its cell);
- errors: what InfoNoise estimates m̂ from is the unweighted x0-space error ‖x̂0 − x0‖², which `x0_error` computes
  exactly from any parameterisation's prediction (ε, v, x0, velocity);
- the loss weight: the loop's loss λ(t)·‖pred − target‖² is λ/c·‖x̂0 − x0‖², so w(σ) = λ(t(σ))/c(σ) in §3.4's
  π ∝ ρ/w, and the emphasis π·w follows the information rate whatever the loop optimises.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import torch

from . import information as info
from .grids import infogrid_from_profile
from .scheduler import InfoNoise
from .timevars import TimeVariable, x0_error_factor

# What the network predicts (the loop's regression target), with the names diffusers and others use for them.
OBJECTIVES = ("x0", "epsilon", "v", "velocity")
ALIASES = {"sample": "x0", "eps": "epsilon", "v_prediction": "v", "flow": "velocity", "flow_prediction": "velocity"}
# InfoNoise options the time variable and the objective decide.
_DECIDED = ("sigma_min", "sigma_max", "weighting", "sigma_data")


class InfoNoiseSampler:
    """InfoNoise for a loop with time variable `time` whose network predicts `objective` ('x0', 'epsilon', 'v',
    'velocity'; diffusers' 'sample', 'v_prediction', 'flow_prediction' too) under the per-sample loss
    `loss_weight(t)·‖pred − target‖²` (None: unweighted, as diffusers' training scripts). `options` are InfoNoise's
    own (docs/method.md §5: `endpoint` 'discrete' for ±1 or one-hot data, `num_bins`, `min_count`, `sigma_p`, ...);
    its defaults need none. Every rank of a DDP job builds it alike and calls `step` with the same step."""

    def __init__(
        self,
        time: TimeVariable,
        objective: str,
        loss_weight: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **options,
    ):
        if not isinstance(time, TimeVariable):
            raise ValueError(
                f"time must be a time variable (infonoise.EDMSigma(), RectifiedFlow(), DiscreteVP(alphas_cumprod)), "
                f"got {type(time).__name__}"
            )
        objective = ALIASES.get(objective, objective) if isinstance(objective, str) else objective
        if objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {objective!r}: what the network predicts, one of {', '.join(OBJECTIVES)} "
                f"(or {', '.join(ALIASES)})"
            )
        if objective == "velocity" and time.velocity_scales(torch.ones(1, dtype=torch.float64)) is None:
            raise ValueError(
                f"objective 'velocity' needs a continuous time variable; {time.name} has integer timesteps"
            )
        if loss_weight is not None and not callable(loss_weight):
            raise ValueError(
                f"loss_weight must be None or a function of the loop's t, got {type(loss_weight).__name__}"
            )
        known = [name for name in inspect.signature(InfoNoise.__init__).parameters if name not in ("self", *_DECIDED)]
        unknown = sorted(set(options) - set(known) - set(_DECIDED))
        if unknown:
            raise ValueError(f"unknown InfoNoise option(s) {', '.join(unknown)}. Valid options: {', '.join(known)}")
        decided = sorted(set(options) & set(_DECIDED))
        if decided:
            raise ValueError(
                f"option(s) {', '.join(decided)} are set by the time variable (its σ range) and the objective "
                "(the loss weight): give the range to the time variable, the weight as loss_weight"
            )
        self.time, self.objective, self.loss_weight = time, objective, loss_weight
        self.scheduler = InfoNoise(
            sigma_min=time.sigma_min, sigma_max=time.sigma_max, weighting=self._weight, **options
        )
        self._orphans = self._orphan_bins() if time.discrete else None

    # -- the conversions (docs/method.md §10) ---------------------------------------------------------------------
    def _weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """w(σ) = λ(t(σ))/c(σ) at the grid σ: the loop's loss in units of the x0-space error. For discrete t, the
        weight of the timestep that a draw at σ trains."""
        t = self.time.from_sigma(sigma)
        at = self.time.to_sigma(t) if self.time.discrete else torch.as_tensor(sigma, dtype=torch.float64)
        lam = 1.0 if self.loss_weight is None else torch.as_tensor(self.loss_weight(t), dtype=torch.float64)
        return lam / x0_error_factor(self.time, at, self.objective)

    def _orphan_bins(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Discrete t: grid bins that hold no σ_t (where cells are wider than bins, at the smallest t) would never
        be observed, yet draws land in them and train their cell's timestep. They receive that timestep's errors:
        (the timestep of each such bin, its centre σ)."""
        s = self.scheduler
        occupied = torch.zeros(s.num_bins, dtype=torch.bool)
        occupied[info.bin_index(self.time.sigmas, s.sigma_min, s.sigma_max, s.num_bins)] = True
        centres = s.sigma[~occupied]
        return self.time.cell(centres), centres

    def x0_error(self, t: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample ‖x̂0 − x0‖², summed over all but the batch dimension (docs/method.md §2), from the network's
        prediction and the loop's regression target in the loop's parameterisation: c(σ(t))·‖pred − target‖²
        (§10). Detached, float64, on pred's device; what `observe` takes."""
        if pred.shape != target.shape or pred.ndim < 1:
            raise ValueError(
                f"x0_error: pred and target must have one shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
            )
        err = (pred.detach().double() - target.detach().double()).pow(2).reshape(len(pred), -1).sum(1)
        sigma = self.time.to_sigma(torch.as_tensor(t, device=pred.device).reshape(-1))
        if len(sigma) != len(err):
            raise ValueError(f"x0_error: {len(sigma)} times but {len(err)} predictions")
        return x0_error_factor(self.time, sigma, self.objective) * err

    # -- the loop's three calls -----------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None):
        """n times in the loop's variable drawn from the current allocation (the warm-up sampler until the first
        refresh): float32 for continuous t, int64 timesteps for discrete t. One uniform per draw from `generator`
        (CPU), so a resumed loop with the same generator draws the same times."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"sample: n must be an integer >= 0, got {n!r}")
        t = self.time.from_sigma(self.scheduler.sample(n, generator).double())
        return t if device is None else t.to(device)

    def observe(self, t: torch.Tensor, error: torch.Tensor) -> None:
        """Record the per-sample unweighted x0-space errors ‖x̂0 − x0‖² (`x0_error`) of the times `t` the loop
        trained. Staged where they live (no host synchronisation) until a refresh."""
        t, error = torch.as_tensor(t).reshape(-1), torch.as_tensor(error).detach().reshape(-1)
        if len(t) != len(error):
            raise ValueError(f"observe: {len(t)} times but {len(error)} errors")
        sigma = self.time.to_sigma(t)
        if self._orphans is not None and len(self._orphans[0]):
            cells, centres = (x.to(t.device) for x in self._orphans)
            i, j = (t.long()[:, None] == cells[None, :]).nonzero(as_tuple=True)
            sigma, error = torch.cat([sigma, centres[j]]), torch.cat([error, error[i]])
        self.scheduler.observe(sigma, error)

    def step(self, global_step: int) -> dict | None:
        """Call once per optimizer step, with the same step on every rank (a refresh all-reduces the statistics).
        Returns the refresh's record (docs/method.md §5, "Observable") when the allocation was rebuilt, else None."""
        return self.scheduler.step(global_step)

    # -- resume ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Tensors and plain values only (torch.load(weights_only=True) reads it back)."""
        return dict(infonoise=self.scheduler.state_dict(), time=self.time.describe(), objective=self.objective)

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("time", self.time.describe()), ("objective", self.objective)):
            if state.get(key) != mine:
                raise ValueError(
                    f"load_state_dict: the state was saved with {key} {state.get(key)!r}, this sampler has {mine!r}"
                )
        self.scheduler.load_state_dict(state["infonoise"])

    # -- what it learned -------------------------------------------------------------------------------------------
    def density(self, t: torch.Tensor) -> torch.Tensor:
        """The current draw's law in the loop's variable: per unit t, π(σ(t))·dσ/dt, for continuous t; the
        probability P(t) = π-mass of t's cell for discrete t (docs/method.md §10)."""
        if self.time.discrete:
            t = torch.as_tensor(t).long().cpu()
            return self.timestep_probs()[t]
        t = torch.as_tensor(t, dtype=torch.float64).cpu()
        return self.scheduler.density(self.time.to_sigma(t)) * self.time.dsigma_dt(t)

    def timestep_probs(self) -> torch.Tensor:
        """Discrete t: P(t) for t = 0 … T−1 under the current draw (the mass of each σ-cell)."""
        if not self.time.discrete:
            raise ValueError("timestep_probs: only for discrete time variables (DiscreteVP)")
        edges = self.time.log_edges[1:-1].exp()
        cdf = torch.cat(
            [torch.zeros(1, dtype=torch.float64), self._cdf_sigma(edges), torch.ones(1, dtype=torch.float64)]
        )
        return cdf.diff()

    def _cdf_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """F(σ) of the current σ draw: the table's, or the warm-up sampler's (log-uniform, or the floored
        log-normal of `warmup_sampler='lognormal'`)."""
        s, ls = self.scheduler, torch.as_tensor(sigma, dtype=torch.float64).log()
        if s.table is not None:
            return info.cdf_at(sigma, s.table)
        uniform = ((ls - math.log(s.sigma_min)) / math.log(s.sigma_max / s.sigma_min)).clamp(0, 1)
        if s.warmup_sampler == "loguniform":
            return uniform
        return (1 - s.floor) * torch.special.ndtr((ls - s.warmup.P_mean) / s.warmup.P_std) + s.floor * uniform

    def profile(self) -> dict | None:
        """The learned profile (None before the first refresh): InfoNoise's, in σ at the grid's bin centres (m̂, ḣ,
        the allocation ρ, the schedule π, σ_p, the CDF; docs/method.md §5 "Exportable"), plus `t` (the bin centres
        in the loop's variable) and `density_t` (continuous: the draw's density per unit t there) or `probs`
        (discrete: P(t) for every timestep)."""
        prof = self.scheduler.profile()
        if prof is None:
            return None
        prof["t"] = self.time.from_sigma(prof["sigma"])
        if self.time.discrete:
            prof["probs"] = self.timestep_probs()
        else:
            prof["density_t"] = self.density(prof["t"].double())
        return prof

    def grid(self, n: int) -> torch.Tensor:
        """InfoGrid (docs/method.md §6) with n sampling levels, in the loop's variable, from the noisiest down.
        Continuous t: n + 1 values, the last the clean end (t = 0); EDM's Φ is invariant under the monotone map
        t ⇄ σ, so the levels are uniform in entropic time for the loop as they are in σ. Discrete t: n distinct
        timesteps, descending, each the one nearest its InfoGrid σ in ln σ (ties and crowding resolved by keeping
        them strictly decreasing); diffusers' `set_timesteps(timesteps=...)` takes them as they are."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"grid: n must be an integer >= 1, got {n!r}")
        prof = self.scheduler.profile()
        if prof is None:
            raise ValueError("grid: no learned profile yet; the first refresh builds one (see step's return value)")
        sigmas = infogrid_from_profile(n, prof, self.time.sigma_min, self.time.sigma_max)
        if not self.time.discrete:
            return torch.cat([self.time.from_sigma(sigmas[:-1]).double(), torch.zeros(1, dtype=torch.float64)])
        T = self.time.num_timesteps
        if n > T:
            raise ValueError(f"grid: n = {n} levels but the loop has only {T} timesteps")
        ls = self.time.sigmas.log()
        t = (sigmas[:-1].log()[:, None] - ls[None, :]).abs().argmin(1)  # nearest timestep in ln σ
        for i in range(1, n):  # strictly decreasing ...
            t[i] = min(int(t[i]), int(t[i - 1]) - 1)
        t[n - 1] = max(int(t[n - 1]), 0)
        for i in range(n - 2, -1, -1):  # ... and never below 0 (n ≤ T keeps the first ≤ T − 1)
            t[i] = max(int(t[i]), int(t[i + 1]) + 1)
        return t

    def __repr__(self) -> str:
        return f"InfoNoiseSampler({self.time!r}, objective={self.objective!r}, {self.scheduler!r})"
