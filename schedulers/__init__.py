"""Scheduler registry: `build(name, context, **kwargs)` and `names()`.

A new schedule is one new file plus one line in `_REGISTRY`. `context` carries facts the training
run knows (σ range, σ_data, loss weighting, data endpoint type); each scheduler receives only the
context keys its constructor names, and user kwargs override them.
"""

from __future__ import annotations

import importlib
import inspect

from .base import NoiseScheduler

# name -> "module:Class" (imported lazily so a broken optional scheduler cannot break the others)
_REGISTRY: dict[str, str] = {
    "lognormal": "schedulers.lognormal:LogNormal",
    "loguniform": "schedulers.loguniform:LogUniform",
    "infonoise": "schedulers.infonoise:InfoNoise",
    "lossvar": "schedulers.lossvar:LossVar",
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def scheduler_class(name: str) -> type[NoiseScheduler]:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown scheduler '{name}'. Valid schedulers: {', '.join(names())}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, context: dict | None = None, **kwargs) -> NoiseScheduler:
    """Construct scheduler `name`. Unknown names or options raise ValueError listing the valid ones."""
    cls = scheduler_class(name)
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"Scheduler '{name}' has no option(s) {', '.join(unknown)}. "
            f"Valid options: {', '.join(accepted) or '(none)'}"
        )
    merged = {k: v for k, v in (context or {}).items() if k in accepted}
    merged.update(kwargs)
    return cls(**merged)


__all__ = ["NoiseScheduler", "build", "names", "scheduler_class"]
