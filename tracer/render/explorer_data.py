"""The explorer page's data: one JSON record per node (its details, its step's caption) and per module (class,
depth, node count, the gradient at its boundary), so the page's script can search, show details and walk the steps
over the one picture. Linear in the size of the pass: nothing here is per step × per node.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..analyse import module_view
from ..analyse.module_coverage import coverage
from ..analyse.module_tree import ModuleTree
from ..analyse.naming import step_label
from ..model.format import number
from ..model.records import Step, Trace
from . import tooltips
from .escape import basename_source
from .options import RenderOptions
from .scene import Scene
from .stepper import caption

JACOBIAN_SHOWN = 16  # a node's local Jacobian is put on the page in full up to this many rows and columns


def payload(trace: Trace, opts: RenderOptions, *, collapse: bool) -> dict[str, Any]:
    """Everything the page's script reads. `collapse`: modules start closed at the depth of the model's repeated
    blocks (the module view's default); else every module starts open."""
    detailed = Scene(trace, dataclasses.replace(opts, detail="full"))  # the panel shows every statistic
    nodes = [_node(trace, detailed, n, opts) for n in trace.nodes]
    tree = ModuleTree(trace)
    modules = _modules(trace, tree, opts) if tree else []
    covered = coverage(trace)
    return {
        "title": tooltips.trace(detailed)[0],
        "steps": len(trace.steps),
        "nodes": nodes,
        "leaves": {name: leaf.node for name, leaf in trace.leaves.items() if leaf.node is not None},
        "modules": modules,
        "open_below": tree.default_depth() if collapse and tree else None,
        "coverage": covered.explain() if tree else None,
        "partial": covered.partial,
    }


def _node(trace: Trace, scene: Scene, n: Step, opts: RenderOptions) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": n.id,
        "step": n.step,
        "label": step_label(n),
        "name": n.name,
        "op": n.op,
        "module": n.module,
        "leaf": n.leaf,
        "source": basename_source(n.source),
        "details": tooltips.step(scene, n),
    }
    if n.executed:
        out["caption"] = caption(trace, n, opts)
    j = n.jacobian
    if j is not None and j.matrix and len(j.matrix) <= JACOBIAN_SHOWN and len(j.matrix[0]) <= JACOBIAN_SHOWN:
        out["jacobian"] = [[number(x, opts.precision) for x in row] for row in j.matrix]
    return out


def _modules(trace: Trace, tree: ModuleTree, opts: RenderOptions) -> list[dict[str, Any]]:
    """Every module with nodes in the pass, outermost first, with its boundary's gradient norms (the module view's
    numbers, read at each depth)."""
    found: dict[str, dict[str, Any]] = {}
    for depth in range(tree.deepest + 1):
        view = module_view.build(trace, depth=depth, repeats="expand", tree=tree)
        for b in view.boxes:
            if b.own or b.path in found:
                continue
            found[b.path] = {
                "path": b.path,
                "cls": b.cls,
                "depth": tree.depth(b.path),
                "parent": tree.parent(b.path),
                "nodes": b.node_count,
                "grad_in": b.entering.text(opts.precision),
                "grad_out": b.leaving.text(opts.precision),
                "params": b.params_norm.text(opts.precision),
                "param_count": len([p for p in b.params if p.parameter]),
            }
    return sorted(found.values(), key=lambda m: (m["depth"], m["path"]))


def script_json(data: dict[str, Any]) -> str:
    """JSON safe inside <script type="application/json">: no '</' can end the element early."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).replace("</", "<\\/")
