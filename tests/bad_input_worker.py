"""Run by tests/test_bad_inputs.py: one command-line entry point over many argument lists, in one process
(a fresh interpreter per case would cost seconds each). Each case runs as the console would run it —
click's standalone mode, so a ClickException prints "Error: …" and exits 1 — and anything that escapes
is recorded with its traceback, as Python would print it. Prints JSON: one result per case."""

import sys  # noqa: E402,I001
from pathlib import Path as _Path  # noqa: E402

# The repository root first: run as a script under torchrun, the framework is not installed (pyproject).
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import contextlib
import importlib
import io
import json
import sys
import traceback

import torch

torch.set_num_threads(1)
target, cases = sys.argv[1], json.load(open(sys.argv[2]))
module, _, name = target.partition(":")
command = getattr(importlib.import_module(module), name)
results = []
for args in cases:
    out, err = io.StringIO(), io.StringIO()
    code, tb = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            command.main(args, prog_name=module, standalone_mode=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 — this is what would reach the user as a traceback
            code, tb = 1, traceback.format_exc()
    results.append(dict(args=args, code=code, stderr=err.getvalue() + (tb or ""), stdout=out.getvalue()))
json.dump(results, sys.stdout)
