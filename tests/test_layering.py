"""The house rules, checked on the source: rooms import downward only, never in a circle (imports inside functions
and type-checking blocks included), and drawing and analysis read recorded data, never torch's autograd."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
TRACER = ROOT / "tracer"

# Each room and its floor: a module may import its own room and the rooms on lower floors, nothing else.
# record and analyse share a floor and do not import each other (analysis reads recorded data, it never records);
# display and gallery share the top floor of the library. `tracer` (the package's __init__, the public API that
# connects the records to the upper rooms through model/seam.py) and `python -m tracer.native` sit above them all,
# and the command line above the library.
FLOORS = {"model": 0, "record": 1, "analyse": 1, "render": 2, "display": 3, "gallery": 3, "tracer": 4, "cli": 5}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name, e.g. 'tracer.render.dot'
    target: str  # the module it imports (a package's __init__ is the package's name)
    names: tuple[str, ...]  # the names taken from it (empty for `import x`)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, name: str, *, is_package: bool, ours: set[str]) -> list[Import]:
    """Every import of one of `ours` anywhere in the source: module level, inside functions, under TYPE_CHECKING."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(name, a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] in _roots(ours)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] not in _roots(ours):
                continue
            for alias in node.names:  # `from pkg import mod` imports the module pkg.mod
                target = f"{module}.{alias.name}" if f"{module}.{alias.name}" in ours else module
                found.append(Import(name, target, (alias.name,), node.lineno))
    return found


def _roots(ours: set[str]) -> set[str]:
    return {m.split(".")[0] for m in ours}


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "cli":
        return "cli"
    return parts[1] if len(parts) > 1 and parts[1] in FLOORS else "tracer"


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """What breaks the rules among these modules ({name: (source, is_package)}): upward or sideways imports,
    circles, and private names taken from another module."""
    ours = set(sources)
    found = [i for name, (src, pkg) in sources.items() for i in imports_of(src, name, is_package=pkg, ours=ours)]
    problems = []
    for i in found:
        mine, theirs = room(i.importer), room(i.target)
        if mine != theirs and FLOORS[theirs] >= FLOORS[mine]:
            problems.append(f"{i.importer}:{i.line} imports {i.target}: {mine} may not import {theirs}")
        private = [n for n in i.names if n.startswith("_") and not n.startswith("__")]
        if private and i.target != i.importer:
            problems.append(f"{i.importer}:{i.line} imports the private {', '.join(private)} from {i.target}")
    graph = nx.DiGraph((i.importer, i.target) for i in found if i.importer != i.target)
    for cycle in nx.simple_cycles(graph):
        problems.append("import circle: " + " -> ".join([*cycle, cycle[0]]))
    return problems


def _sources() -> dict[str, tuple[str, bool]]:
    files = [*TRACER.rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in files}


def test_rooms_import_downward_only_and_never_in_a_circle() -> None:
    assert violations(_sources()) == []


def test_every_module_lives_in_a_room() -> None:
    loose = sorted(module_name(p) for p in TRACER.glob("*.py")) + sorted(
        d.name for d in TRACER.iterdir() if d.is_dir() and d.name != "__pycache__" and d.name not in FLOORS
    )
    assert loose == ["tracer", "tracer.native"], "tracer/ holds only the public API and its rooms (subpackages)"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"tracer.model.records": "def svg():\n    from ..render.dot import build\n"}, "model may not import render"),
        ({"tracer.analyse.health": "from ..record.tensors import X\n"}, "analyse may not import record"),
        ({"tracer.render.dot": "import tracer\n"}, "render may not import tracer"),
        ({"tracer.record.names": "from tracer.display import notebook\n"}, "record may not import display"),
        ({"tracer.display.notebook": "from ..render.stepper import _inline\n"}, "private _inline"),
        (
            {
                "tracer.render.dot": "from .labels import x\n",
                "tracer.render.labels": "def f():\n    from .dot import y\n",
            },
            "import circle",
        ),
        (
            {"tracer.model.records": "import typing\nif typing.TYPE_CHECKING:\n    from ..display import v\n"},
            "model may not import display",
        ),
    ],
)
def test_the_rules_catch_a_wrong_import(files: dict[str, str], expected: str) -> None:
    """The check itself: an upward, sideways, private or circular import is reported, wherever it is written."""
    sources = {
        "tracer": ("", True),
        "tracer.render.stepper": ("", False),
        "tracer.render.dot": ("", False),
        "tracer.render.labels": ("", False),
        "tracer.record.tensors": ("", False),
        "tracer.display": ("", True),
        "tracer.display.notebook": ("", False),
        "tracer.model.records": ("", False),
        "tracer.analyse.health": ("", False),
        "tracer.record.names": ("", False),
    }
    sources.update({name: (text, False) for name, text in files.items()})
    assert any(expected in p for p in violations(sources)), violations(sources)


# The modules that import torch: recording (hooks, tensors, names, the native build, whole Jacobians by one-hot
# passes) and the one analysis that must compute (the path decomposition multiplies in float64). Everything else
# (the model, JSON, graph, every other analysis, DOT, SVG, HTML, notebook display) works on plain data, so a saved
# trace draws without torch doing anything. The gallery runs its example scripts, which use torch.
TORCH_OUTSIDE_RECORD = {
    "tracer.analyse.paths": "the path decomposition multiplies Jacobians in float64",
    "tracer.model.records": "TensorInfo.as_tensor(), inside the method: only when a user asks for a tensor",
}


def _imports_torch(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def test_only_recording_imports_torch() -> None:
    using = {name for name, (src, _) in _sources().items() if _imports_torch(src)}
    allowed = {n for n in using if room(n) in ("record", "gallery", "cli")} | set(TORCH_OUTSIDE_RECORD)
    assert using - allowed == set(), f"modules outside record/ that import torch: {sorted(using - allowed)}"
    assert not any(room(n) in ("render", "display") for n in using)


def test_importing_tracer_imports_neither_click_nor_ipython() -> None:
    code = "import sys, tracer; print(sorted({'click', 'IPython'} & {m.split('.')[0] for m in sys.modules}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
