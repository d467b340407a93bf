"""Checking what a user typed before any work: numbers by type, range and finiteness, and sizes by memory.

Why one module: every script and the option layer take numbers from a command line, a preset or a key=value
pair, and every one of them must refuse the same things the same way — a wrong type, NaN/Inf, a value out
of range, an integer beyond int64 (a typo of extra digits), a count whose work would not fit in memory —
with one line naming the option and the fix, instead of a traceback later or a silently wrong number.

`check_number` is the one rule; `Number` is it as a click parameter type; `check_kwargs` applies it to
key=value options of a constructor, typed by its annotations or, where it has none, by its defaults;
`check_memory` refuses work whose memory the machine does not have, saying how much it would need.
"""

from __future__ import annotations

import inspect
import math
import os
import types
import typing
from collections.abc import Callable

import click

INT64_MAX = 2**63 - 1
# A memory check refuses what needs more than this share of the machine's memory (the rest is the process
# itself, the data set, the network and the other processes on the machine).
MEMORY_SHARE = 0.5


def _bound(lo, hi, lo_open: bool, hi_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(
            f"{'>' if lo_open else '≥'} {lo:g}" if isinstance(lo, float) else f"{'>' if lo_open else '≥'} {lo}"
        )
    if hi is not None:
        parts.append(
            f"{'<' if hi_open else '≤'} {hi:g}" if isinstance(hi, float) else f"{'<' if hi_open else '≤'} {hi}"
        )
    return " and ".join(parts)


def number_rule(integer: bool, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> str:
    """'an integer ≥ 1 and ≤ 9223372036854775807', 'a finite number > 0': what a number must be, in words."""
    kind = "an integer" if integer else "a finite number"
    if integer and hi is None:
        hi = INT64_MAX
    bound = _bound(lo, hi, lo_open, hi_open)
    return f"{kind} {bound}" if bound else kind


def check_number(
    value,
    name: str,
    *,
    integer: bool = False,
    lo=None,
    hi=None,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_inf: bool = False,
):
    """`value` if it is a number of the right kind in range, else ValueError '<name> must be …, got …'.

    Integers must be ints (not bools, not 1.5) within int64 — every count ends in a tensor or an array;
    floats may be given as ints and must be finite (allow_inf: +inf too, where it means "no limit").
    `lo`/`hi` bound it (open with lo_open/hi_open)."""
    rule = number_rule(integer, lo, hi, lo_open, hi_open) + (" (or inf)" if allow_inf else "")
    name = f"{name} must be" if name else "must be"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name} {rule}, got {value!r} ({type(value).__name__})")
    if integer:
        ok = -INT64_MAX - 1 <= value <= INT64_MAX
    else:
        ok = math.isfinite(value) or (allow_inf and value == math.inf)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        shown = (
            f"{value:.4g}" if isinstance(value, float) else (str(value) if len(str(value)) <= 24 else f"{value:.4g}")
        )
        raise ValueError(f"{name} {rule}, got {shown}")
    return value


def parse_number(text: str, integer: bool):
    """A command-line string as an int (digits only, no '1.5', no '1e3') or a float; ValueError otherwise."""
    text = str(text).strip()
    if integer:
        try:
            return int(text, 10)
        except ValueError:
            raise ValueError(f"'{text}' is not an integer") from None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None


class Number(click.ParamType):
    """A click type for numbers checked like `check_number`: click.FloatRange lets NaN pass (NaN < 0 is
    False) and IntRange lets 10**30 pass; this refuses both, naming the option in click's one Error line."""

    def __init__(
        self,
        integer: bool = False,
        lo=None,
        hi=None,
        lo_open: bool = False,
        hi_open: bool = False,
        allow_inf: bool = False,
    ):
        self.integer, self.lo, self.hi, self.lo_open, self.hi_open = integer, lo, hi, lo_open, hi_open
        self.allow_inf = allow_inf
        self.name = number_rule(integer, lo, hi, lo_open, hi_open)

    def convert(self, value, param, ctx):
        try:
            if isinstance(value, str):
                value = parse_number(value, self.integer)
            return check_number(
                value,
                "",
                integer=self.integer,
                lo=self.lo,
                hi=self.hi,
                lo_open=self.lo_open,
                hi_open=self.hi_open,
                allow_inf=self.allow_inf,
            )
        except ValueError as e:
            self.fail(str(e), param, ctx)

    def get_metavar(self, param, ctx=None) -> str:
        return "INTEGER" if self.integer else "FLOAT"


def Int(lo=None, hi=None) -> Number:  # noqa: N802 — reads like click.IntRange
    return Number(True, lo, hi)


def Float(lo=None, hi=None, lo_open: bool = False, hi_open: bool = False, allow_inf: bool = False) -> Number:  # noqa: N802
    return Number(False, lo, hi, lo_open, hi_open, allow_inf)


# ----------------------------------------------------------------------------------------------------
# key=value options of a constructor


def _allowed_types(annotation, default) -> tuple[type, ...] | None:
    """The plain types a parameter takes: from its annotation (int, float, str, bool, list, dict, None, and
    unions of them), else from its default's type; None when nothing says (then any value goes through)."""
    if annotation is not inspect.Parameter.empty and annotation is not None:
        args = (
            typing.get_args(annotation)
            if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union,)
            else (annotation,)
        )
        out = []
        for a in args:
            a = typing.get_origin(a) or a
            if a is type(None):
                out.append(type(None))
            elif a in (int, float, str, bool, list, dict, tuple):
                out.append(a)
            else:
                return None  # a type we do not check (a tensor, a callable)
        if list in out or tuple in out:  # a YAML or JSON list stands for a tuple
            out += [list, tuple]
        return tuple(dict.fromkeys(out)) or None
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, (int, float)):
        return (int, float) if isinstance(default, float) else (int,)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return (type(default),)


def _signature_types(fn: Callable) -> dict[str, tuple[type, ...] | None]:
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, ValueError):
        sig = inspect.signature(fn)
    return {
        name: _allowed_types(p.annotation if not isinstance(p.annotation, str) else inspect.Parameter.empty, p.default)
        for name, p in sig.parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name != "self"
    }


def _finite_everywhere(value, name: str) -> None:
    """Every number inside `value` (lists, dicts) is finite and within int64: NaN or 1e400 in a list is as
    bad as a NaN option."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        check_number(value, name, integer=True)
    elif isinstance(value, float):
        check_number(value, name)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _finite_everywhere(v, f"{name}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            _finite_everywhere(v, f"{name}.{k}")


def check_kwargs(fn: Callable, kwargs: dict, flag: str, defaults: dict | None = None) -> None:
    """Every key=value option for `fn` (a constructor) has the type its annotation or default says, and every
    number in it is finite and within int64. ValueError '<flag> key=value: …' naming the option.

    `defaults`: defaults that stand in for the constructor's own (an architecture's registry entry), to
    type options whose constructor default is None. Unknown keys are left to `fn`'s own check."""
    allowed = _signature_types(fn)
    for key, value in kwargs.items():
        name = f"{flag} {key}"
        _finite_everywhere(value, name)
        kinds = allowed.get(key)
        if defaults and key in defaults and kinds is None:
            kinds = _allowed_types(inspect.Parameter.empty, defaults[key])
        if kinds is None:
            continue
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        elif isinstance(value, int) and not isinstance(value, bool) and float in kinds:
            ok = True
        else:
            ok = isinstance(value, kinds)
        if not ok:
            names = " or ".join(
                sorted({"null" if k is type(None) else "list" if k is tuple else k.__name__ for k in kinds})
            )
            raise ValueError(f"{name} must be {names}, got {value!r} ({type(value).__name__})")


def one_line(e: BaseException) -> str:
    """An exception as the one line a user sees. An error raised in a DataLoader worker arrives as 'Caught X in
    DataLoader worker process 0. Original Traceback …' with the original message on its last line: that line,
    without its 'module.Class: ' prefix, is the one."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    lines = text.splitlines()
    if "Original Traceback" in text:
        head, sep, rest = lines[-1].partition(": ")
        return rest if sep and " " not in head else lines[-1]
    return lines[0]


# ----------------------------------------------------------------------------------------------------
# memory


def memory_bytes() -> int:
    """This machine's memory (or the process's cgroup limit, when lower), in bytes."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EiB"


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse, before the work, something that needs more than MEMORY_SHARE of the machine's memory:
    ValueError '<what> needs about X; this machine has Y. <fix>'."""
    have = memory_bytes()
    if nbytes > MEMORY_SHARE * have:
        raise ValueError(
            f"{what} needs about {format_bytes(nbytes)} of memory; this machine has {format_bytes(have)}. {fix}"
        )
