"""The house's rules (docs/architecture.md): every package imports on its own (no import cycles), no
library module imports a command-line script, and nothing edits sys.path outside the tests."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGES = [
    "schedulers",
    "training",
    "sampling",
    "evaluation",
    "dna",
    "analysis",
    "torch_utils",
    "dnnlib",
    "benchmarks",
    "models",
]
SCRIPTS = {"train", "generate", "fid", "dataset_tool", "dna_tool"}
# The lowest layers (docs/architecture.md) and what each may import of the project: nothing above them,
# not even lazily inside a function (the registries' lazy imports are for training and up).
LOWEST = {"torch_utils": {"torch_utils"}, "dnnlib": {"dnnlib", "torch_utils"}}


def modules():
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*.py")
    )


def imported_names(path):
    """Top-level names of every module `path` imports, anywhere in the file (lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def module_level_imports(path):
    """Project modules `path` imports at module level (what runs at import time; lazy imports in functions
    cannot form an import-time cycle)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_import_cycles():
    """The module-level import graph of the project's packages is acyclic (depth-first search)."""
    names = set(modules())
    graph = {
        m: sorted({i for i in module_level_imports(REPO / (m.replace(".", "/") + ".py")) if i in names} - {m})
        if (REPO / (m.replace(".", "/") + ".py")).is_file()
        else sorted({i for i in module_level_imports(REPO / m / "__init__.py") if i in names} - {m})
        for m in names
    }
    state, cycle = {}, []

    def visit(m, path):
        state[m] = "open"
        for n in graph[m]:
            if state.get(n) == "open":
                cycle.append(" → ".join(path[path.index(n) :] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(names):
        if m not in state:
            visit(m, [m])
    assert not cycle, cycle


@pytest.mark.parametrize("pkg", PACKAGES)
def test_each_package_imports_alone(pkg):
    """A fresh interpreter imports every module of one package, and nothing else first."""
    mods = [m for m in modules() if m.split(".")[0] == pkg]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    r = subprocess.run([sys.executable, "-c", code, *mods], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("pkg", PACKAGES)
def test_no_library_module_imports_a_script(pkg):
    offenders = [
        f"{p.relative_to(REPO)} imports {name}"
        for p in sorted((REPO / pkg).rglob("*.py"))
        for name in imported_names(p)
        if name in SCRIPTS
    ]
    assert not offenders


@pytest.mark.parametrize("pkg", LOWEST)
def test_lowest_layers_import_nothing_above_them(pkg):
    offenders = [
        f"{p.relative_to(REPO)} imports {name}"
        for p in sorted((REPO / pkg).rglob("*.py"))
        for name in imported_names(p)
        if name in set(PACKAGES) | SCRIPTS and name not in LOWEST[pkg]
    ]
    assert not offenders


def test_no_sys_path_edits_outside_tests():
    offenders = [
        str(p.relative_to(REPO))
        for p in sorted(REPO.glob("**/*.py"))
        if ".venv" not in p.parts and "tests" not in p.parts and "sys.path" in p.read_text()
    ]
    assert not offenders
