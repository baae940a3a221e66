"""The house rules of the design, checked on the source: drawing and analysis read recorded data, never torch."""

from __future__ import annotations

import ast
from pathlib import Path

TRACER = Path(__file__).resolve().parent.parent / "tracer"

# The modules that record (hooks, tensors, names, the native build), run torch for an analysis that must
# (tracer.jacobian re-runs backward; the path decomposition multiplies with torch in float64), or run
# the gallery's scripts. Everything else (the model, JSON, graph, every analysis over the recorded data,
# DOT, SVG, HTML, notebook display) works on plain data, so a saved trace draws without torch doing anything.
USES_TORCH = {
    "gallery_entries",
    "gradient_edges",
    "jacobian",
    "local_jacobian",
    "modules",
    "names",
    "native",
    "native_table",
    "numeric_reference",
    "pass_recorder",
    "paths",
    "recorder",
    "saved_arguments",
    "tensors",
}
DRAWING = {"dot", "labels", "render", "scene", "stepper", "module_dot", "module_page", "picture", "tooltips"}


def _imports_torch(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def test_only_recording_modules_import_torch() -> None:
    found = {p.stem for p in TRACER.glob("*.py") if _imports_torch(p)} - {"model"}  # Trace.as_tensor, on request
    assert found == USES_TORCH, (
        f"new torch imports: {sorted(found - USES_TORCH)}; no longer importing: {sorted(USES_TORCH - found)}"
    )
    assert not DRAWING & found
    assert all((TRACER / f"{name}.py").exists() for name in DRAWING)
