"""InfoNoise as a library: information-guided noise allocation for any diffusion training loop.

What installs from this distribution is this package only (docs/architecture.md): the maths
(`infonoise.information`), the InfoNoise scheduler in EDM's σ (`infonoise.scheduler`), the σ-grids with InfoGrid
(`infonoise.grids`) and the collectives a refresh needs (`infonoise.distributed`), plus what a foreign loop uses:
`InfoNoiseSampler` (`infonoise.loop`) over the loop's own time variable (`infonoise.timevars`: EDM's σ, rectified
flow's t, DDPM's integer timesteps). It imports torch, numpy and scipy only; the EDM-style framework around it
(train.py, training/, sampling/, ...) runs from a checkout.

    sampler = InfoNoiseSampler(RectifiedFlow(), objective="velocity")   # README, "InfoNoise in your own loop"
    t = sampler.sample(batch)                                           # instead of torch.rand(batch)
    sampler.observe(t, sampler.x0_error(t, pred, target)); sampler.step(global_step)
"""

from .grids import edm_grid, infogrid, infogrid_from_profile, loguniform_grid
from .loop import OBJECTIVES, InfoNoiseSampler
from .scheduler import InfoNoise
from .timevars import DiscreteVP, EDMSigma, RectifiedFlow, TimeVariable, x0_error_factor

__version__ = "0.1.0"
__all__ = [
    "OBJECTIVES",
    "DiscreteVP",
    "EDMSigma",
    "InfoNoise",
    "InfoNoiseSampler",
    "RectifiedFlow",
    "TimeVariable",
    "edm_grid",
    "infogrid",
    "infogrid_from_profile",
    "loguniform_grid",
    "x0_error_factor",
]
