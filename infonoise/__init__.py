"""InfoNoise as a library: information-guided noise allocation for any diffusion training loop.

What installs from this distribution is this package only (docs/architecture.md): the maths
(`infonoise.information`), the InfoNoise scheduler in EDM's σ (`infonoise.scheduler`), the σ-grids with InfoGrid
(`infonoise.grids`) and the collectives a refresh needs (`infonoise.distributed`). It imports torch, numpy and
scipy only; the EDM-style framework around it (train.py, training/, sampling/, ...) runs from a checkout.
"""

__version__ = "0.1.0"
