"""The house's rules (docs/architecture.md): the layers, lowest first, and every import statement of every
package and script with them — a package imports only itself and the packages listed before it, counting
imports inside functions, relative imports and registry entries ('module:Class' strings); every package
imports on its own (no module-level cycles); no library module imports a script; nothing edits sys.path
outside the tests; the training loop imports no modality (it is handed what it needs)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO


def layers(doc: Path = REPO / "docs" / "architecture.md") -> list[tuple[str, list[str]]]:
    """The layer list, lowest first, as docs/architecture.md writes it in its ```layers block:
    one floor a line, 'name: package package …'."""
    block = re.search(r"```layers\n(.*?)```", doc.read_text(), re.S)
    assert block, f"{doc}: no ```layers block"
    floors = []
    for line in block.group(1).splitlines():
        if line.strip():
            name, _, packages = line.partition(":")
            floors.append((name.strip(), packages.split()))
    return floors


# What the installed library may import at all (pyproject.toml's dependencies), besides the standard library.
LIBRARY_DEPENDENCIES = {"torch", "numpy", "scipy"}


ORDER = [pkg for _, packages in layers() for pkg in packages]  # a package may import those before it
SCRIPTS = set(layers()[-1][1])
PACKAGES = [p for p in ORDER if p not in SCRIPTS]
REGISTRY_ENTRY = re.compile(r"([A-Za-z_]\w*(?:\.\w+)*):[A-Za-z_]\w*")  # "models.sequence_unet:SequenceUNet"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def modules() -> list[str]:
    return sorted(module_name(p) for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def imports(source: str, module: str, is_package: bool = False):
    """(line, imported module) for every import in `source` of `module`: module level and inside functions,
    `from . import x` resolved against the module's package, registry entries 'pkg.mod:Name' and
    importlib.import_module('pkg.mod') with a literal name."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            yield from ((node.lineno, base or alias.name) for alias in node.names)  # `from .. import pkg`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = REGISTRY_ENTRY.fullmatch(node.value)
            if m:
                yield node.lineno, m.group(1)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def upward_imports(source: str, path: str) -> list[str]:
    """Each import in `source` (the file at `path`, relative to the repository) of a package listed after the
    file's own package: 'path:line: pkg imports other, a layer above it'."""
    module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    own = module.split(".")[0]
    rank = {pkg: i for i, pkg in enumerate(ORDER)}
    return [
        f"{path}:{line}: {own} imports {name} ({target}), a layer above it"
        for line, name in imports(source, module, path.endswith("__init__.py"))
        if (target := name.split(".")[0]) in rank and rank[target] > rank[own]
    ]


def project_files() -> list[Path]:
    return sorted([p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")] + [REPO / f"{s}.py" for s in SCRIPTS])


def test_layers_name_every_package_once():
    """The layer list names each package and script of the repository exactly once."""
    on_disk = {p.parent.name for p in REPO.glob("*/__init__.py")} | {p.stem for p in REPO.glob("*.py")}
    assert len(ORDER) == len(set(ORDER)), ORDER
    assert sorted(on_disk - {"tests"}) == sorted(ORDER)


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_import_runs_up_the_layers(path):
    """Every import statement of the file (lazy ones inside functions, relative ones, registry entries)
    names its own package or one on a lower layer."""
    assert not upward_imports(path.read_text(), str(path.relative_to(REPO)))


def test_an_upward_import_is_caught():
    """The checker on sources that break the rule, one way each: a lazy import inside a function, a relative
    import climbing out, a registry entry naming a higher package; and on the same code going down."""
    lazy = textwrap.dedent(
        """
        def _collect(data):
            from training import options  # sampling reaching up into the training loop's package
            return options
        """
    )
    assert upward_imports(lazy, "sampling/probe.py") == [
        "sampling/probe.py:3: sampling imports training (training), a layer above it"
    ]
    assert upward_imports("from .. import modalities\n", "datafiles/images.py") == [
        "datafiles/images.py:1: datafiles imports modalities (modalities), a layer above it"
    ]
    registry = 'ARCHS = {"dnaunet": ("dna.model:SequenceUNet", {})}\n'
    assert upward_imports(registry, "models/networks.py") == [
        "models/networks.py:1: models imports dna.model (dna), a layer above it"
    ]
    assert not upward_imports(lazy, "benchmarks/time_to_target.py")  # the harness may use the loop
    assert not upward_imports("from . import information\n", "schedulers/infonoise.py")


def test_the_training_loop_imports_no_modality():
    """The loop is handed its data set and sample writer (modalities.for_training); it knows no kind of data."""
    path = REPO / "training" / "training_loop.py"
    names = {name.split(".")[0] for _, name in imports(path.read_text(), "training.training_loop")}
    assert not names & {"modalities", "dna", "sampling", "evaluation"}, names


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
        for _, name in imports(p.read_text(), module_name(p), p.name == "__init__.py")
        if name.split(".")[0] in SCRIPTS
    ]
    assert not offenders


# Scripts run by path from a checkout (`python benchmarks/time_to_target.py`, `python examples/<trainer>.py`) put
# their root on sys.path, since the framework is not installed (pyproject: only `infonoise` is); nothing else may.
RUN_BY_PATH = ("benchmarks", "examples")


def test_no_sys_path_edits_outside_tests():
    offenders = [
        str(p.relative_to(REPO))
        for p in sorted(REPO.glob("**/*.py"))
        if ".venv" not in p.parts
        and "tests" not in p.parts
        and p.relative_to(REPO).parts[0] not in RUN_BY_PATH
        and "sys.path" in p.read_text()
    ]
    assert not offenders
    for folder in RUN_BY_PATH:  # and there only to put the repository (or the example's folder) first
        for p in sorted((REPO / folder).glob("*.py")):
            edits = [line.strip() for line in p.read_text().splitlines() if "sys.path" in line and "#" not in line[:1]]
            assert all(
                e.startswith("sys.path.insert(0, str(_Path(__file__)")
                or e.startswith("sys.path.insert(0, str(Path(__file__)")
                for e in edits
            ), (p, edits)


def imported_names(path):
    """Top-level names of every module `path` imports, anywhere in the file (lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_library_imports_only_its_dependencies():
    """`infonoise` is what a foreign loop installs: anywhere in its files (lazy imports included) it imports only
    itself (relative imports), the standard library and its declared dependencies — a user's own `training` or
    `sampling` must never be reached from it."""
    allowed = LIBRARY_DEPENDENCIES | set(sys.stdlib_module_names) | {"infonoise"}
    offenders = [
        f"{p.relative_to(REPO)} imports {name}"
        for p in sorted((REPO / "infonoise").rglob("*.py"))
        for name in imported_names(p)
        if name not in allowed
    ]
    assert not offenders
    assert "training" not in allowed and "schedulers" not in allowed  # the check can fail


def test_moved_modules_keep_their_old_paths():
    """The modules that moved into the library import under their old names as the very same module objects (one
    InfoNoise class, one set of maths), in a fresh interpreter, however they are spelled."""
    code = """
import importlib
import schedulers
import schedulers.information
from schedulers.infonoise import InfoNoise
from schedulers.information import loss_weight
from schedulers import lognormal
import infonoise
for old, new in schedulers.MOVED.items():
    assert importlib.import_module(f"schedulers.{old}") is importlib.import_module(new), old
    assert getattr(schedulers, old) is importlib.import_module(new), old
assert InfoNoise is infonoise.InfoNoise and loss_weight is infonoise.information.loss_weight
assert schedulers.scheduler_class("infonoise") is InfoNoise and lognormal is infonoise.lognormal
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert set(__import__("schedulers").MOVED) == {"base", "information", "infonoise", "lognormal", "loguniform"}
