"""Scheduler registry: `build(name, context, **kwargs)` and `names()`.

The schedules and their maths live in the installable library `infonoise` (the contract `infonoise.base`, the
fixed samplers, `infonoise.information`, the InfoNoise class `infonoise.scheduler`); this room is the framework's
registry and the rival `lossvar`. The modules that moved keep their old import paths (`schedulers.information`,
`schedulers.infonoise`, `schedulers.base`, `schedulers.lognormal`, `schedulers.loguniform`): each is the
library's module itself, registered under the old name, so scripts and tests written against them keep working.

A new schedule is one new file plus one line in `_REGISTRY`. `context` carries facts the training
run knows (σ range, σ_data, loss weighting, data endpoint type); each scheduler receives only the
context keys its constructor names, and user kwargs override them.
"""

from __future__ import annotations

import importlib
import inspect
import sys

from infonoise.base import NoiseScheduler

# Old module path -> the library module that now holds it (registered as the same module object, not a copy).
MOVED = {
    "base": "infonoise.base",
    "information": "infonoise.information",
    "infonoise": "infonoise.scheduler",
    "lognormal": "infonoise.lognormal",
    "loguniform": "infonoise.loguniform",
}
for _old, _new in MOVED.items():
    sys.modules[f"{__name__}.{_old}"] = globals()[_old] = importlib.import_module(_new)

# name -> "module:Class" (imported lazily so a broken optional scheduler cannot break the others)
_REGISTRY: dict[str, str] = {
    "lognormal": "infonoise.lognormal:LogNormal",
    "loguniform": "infonoise.loguniform:LogUniform",
    "infonoise": "infonoise.scheduler:InfoNoise",
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


__all__ = ["MOVED", "NoiseScheduler", "build", "names", "scheduler_class"]
