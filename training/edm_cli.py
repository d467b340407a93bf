"""EDM's command-line spellings, accepted where they mean the same thing here.

An EDM user types `--cond=1`, `--xflip=0`, `--S_churn=40`, `--sigma_min=0.002`, `--disc=edm`, `-n`. Our
commands spell booleans as on/off flags and options with hyphens; `EDMCommand` rewrites EDM's spellings
before click parses the line, so both work. An EDM option that has no meaning here is a one-line error
naming the nearest option of ours instead of click's generic "no such option".
"""

from __future__ import annotations

import click

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class EDMCommand(click.Command):
    """A click command that also takes EDM's spellings. `edm` (given to the decorator as `cls=EDMCommand,
    edm=dict(...)`) holds: `bools` — EDM's `--x=1/0` of our `--x/--no-x` flags (a dict when our flag has
    another name); `aliases` — EDM's name →
    ours; `values` — per EDM option, EDM value → ours (None: this tool's only behaviour, dropped; others are
    errors listing ours); `unsupported` —
    EDM option → what to use instead; `ignored_false` — EDM booleans that may only be off here."""

    def __init__(self, *args, edm: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.edm = {"bools": (), "aliases": {}, "values": {}, "unsupported": {}, "ignored_false": {}, **(edm or {})}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, translate(args, self.edm))


def _split(args: list[str], i: int) -> tuple[str, str | None, int]:
    """(option, value or None, index after it) for `--opt=value` or `--opt value` (value only if not an option)."""
    arg = args[i]
    if "=" in arg:
        name, value = arg.split("=", 1)
        return name, value, i + 1
    if i + 1 < len(args) and not args[i + 1].startswith("-"):
        return arg, args[i + 1], i + 2
    return arg, None, i + 1


def translate(args: list[str], edm: dict) -> list[str]:
    """Rewrite EDM's spellings in `args` into ours (see EDMCommand); raise click.UsageError for an EDM option
    that means nothing here."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if not name.startswith("--"):
            out.append(arg)
            i += 1
            continue
        if name in edm["unsupported"]:
            raise click.UsageError(f"EDM's {name} has no counterpart here: {edm['unsupported'][name]}")
        if name in edm["bools"] or name in edm["ignored_false"]:
            ours = edm["bools"].get(name, name) if isinstance(edm["bools"], dict) else name
            opt, value, j = _split(args, i)
            if value is None or value.lower() not in _TRUE | _FALSE:
                out.append(arg)  # our own flag spelling (--cond), or a value click will reject
                i += 1
                continue
            on = value.lower() in _TRUE
            if name in edm["ignored_false"]:
                if on:
                    raise click.UsageError(f"EDM's {name}=1 has no counterpart here: {edm['ignored_false'][name]}")
            else:
                out.append(ours if on else f"--no-{ours[2:]}")
            i = j
            continue
        if name in edm["aliases"] or name in edm["values"]:
            opt, value, j = _split(args, i)
            ours = edm["aliases"].get(name, name)
            if name in edm["values"] and value is not None:
                table = edm["values"][name]
                if value not in table:
                    valid = ", ".join(sorted({v for v in table.values() if v} or set(table)))
                    raise click.UsageError(f"EDM's {name}={value} has no counterpart here; {ours} takes {valid}")
                value = table[value]
                if value is None:  # EDM's setting is this tool's only behaviour: nothing to pass on
                    i = j
                    continue
            out += [ours] if value is None else [ours, value]
            i = j
            continue
        out.append(arg)
        i += 1
    return out
