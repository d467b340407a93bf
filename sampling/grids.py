"""The σ-grids by name, as `generate.py --grid` and the evaluation take them (docs/method.md §6).

The grids themselves (EDM's ρ-grid, log-uniform, InfoGrid) are the library's, `infonoise.grids`, re-exported
here under their old names; this module adds the registry and the command line's message for a snapshot
without a profile.
"""

from __future__ import annotations

import torch

from infonoise.grids import edm_grid, infogrid, infogrid_from_profile, loguniform_grid

__all__ = ["GRIDS", "GRID_KINDS", "edm_grid", "infogrid", "infogrid_from_profile", "loguniform_grid", "make_grid"]


def _infogrid(n: int, sigma_min: float, sigma_max: float, rho: float, profile: dict | None) -> torch.Tensor:
    if profile is None:
        raise ValueError(
            "--grid infogrid needs an information profile, but the snapshot has none "
            "(it was trained with a fixed schedule). Add --probe-data PATH (a data set) "
            "to estimate one by probing the network."
        )
    return infogrid_from_profile(n, profile, sigma_min, sigma_max)


# The grids by name (generate.py's --grid): each takes (n, σ_min, σ_max, ρ, profile) and uses what it needs.
GRIDS = {
    "edm": lambda n, lo, hi, rho, profile: edm_grid(n, lo, hi, rho),
    "infogrid": _infogrid,
    "loguniform": lambda n, lo, hi, rho, profile: loguniform_grid(n, lo, hi),
}
GRID_KINDS = tuple(GRIDS)


def make_grid(
    kind: str, n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, profile: dict | None = None
) -> torch.Tensor:
    """The grid `kind` from the registry. InfoGrid without a profile is an error that says how to get one."""
    if kind not in GRIDS:
        raise ValueError(f"Unknown grid '{kind}'. Valid grids: {', '.join(GRIDS)}")
    return GRIDS[kind](n, sigma_min, sigma_max, rho, profile)
