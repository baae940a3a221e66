"""focus=: the part of a pass that feeds one leaf or module — every node on a path from a seed to it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from ..model.errors import DrawingOptionError
from ..model.records import Trace
from .graph import node_key
from .module_tree import ModuleTree, natural_key

EXAMPLES = 4  # names listed when nothing is close to a misspelt focus


@dataclass(frozen=True)
class Focus:
    """What focus= named and the nodes to draw for it."""

    name: str
    kind: Literal["leaf", "module"]
    targets: frozenset[int]  # the leaf's node, or every node of the module
    shown: frozenset[int]  # the targets and every node that sends gradient to them, directly or not
    module: str | None = None  # the module the module view opens: this one, or the one using the leaf

    def describe(self, total: int) -> str:
        what = "leaf" if self.kind == "leaf" else "module"
        return f"focus: {what} {self.name} — the {len(self.shown)} of {total} nodes on paths from the seed to it"


def resolve(trace: Trace, name: str, tree: ModuleTree | None = None) -> Focus:
    """The Focus for a leaf name or a module path of this pass; a clear error for anything else."""
    tree = tree if tree is not None else ModuleTree(trace)
    leaf = trace.leaves.get(name)
    if leaf is not None:
        if leaf.node is None:
            raise DrawingOptionError(
                f"focus={name!r}: that leaf got no gradient in this pass ({leaf.reason or 'not reached'}), so no "
                "path feeds it; focus on a leaf or module the gradient reached"
            )
        targets = frozenset({leaf.node})
        kind: Literal["leaf", "module"] = "leaf"
        module = next((n.module for n in trace.nodes if n.id == leaf.node), None)
    elif name in tree:
        targets = frozenset(n.id for n in trace.nodes if n.module is not None and tree.contains(name, n.module))
        if not targets:
            raise DrawingOptionError(
                f"focus={name!r}: that module made no backward node in this pass (its forward did not run, or "
                "nothing it computed needed a gradient); focus on another module or a leaf"
            )
        kind = "module"
        module = name
    else:
        raise DrawingOptionError(unknown_message(trace, tree, name))
    return Focus(name, kind, targets, feeding(trace, targets), module)


def feeding(trace: Trace, targets: frozenset[int]) -> frozenset[int]:
    """The targets and their ancestors in the gradient-flow direction (seed → … → leaf) of Trace.graph."""
    g = trace.graph
    seen = {node_key(t) for t in targets}
    todo = list(seen)
    while todo:  # one walk from all targets at once: linear in the graph, however many targets
        key = todo.pop()
        for sender in g.predecessors(key):
            if sender not in seen:
                seen.add(sender)
                todo.append(sender)
    nodes = g.nodes
    return frozenset(nodes[k]["id"] for k in seen if nodes[k]["kind"] == "node")


def unknown_message(trace: Trace, tree: ModuleTree, name: str) -> str:
    leaves = sorted(trace.leaves, key=natural_key)
    modules = sorted((p for p in tree.classes if p), key=natural_key)
    close = difflib.get_close_matches(name, leaves + modules, n=5, cutoff=0.6)
    head = f"unknown focus: {name!r} (not a leaf or module of this pass)"
    if close:
        return f"{head}; close matches: {close}"
    examples = leaves[:EXAMPLES] + modules[:EXAMPLES]
    if not modules:
        return (
            f"{head}; its leaves are e.g. {leaves[:EXAMPLES]}. Module paths need module tags: record with "
            "tracer.record(model=model)"
        )
    return f"{head}; give a leaf or module path, e.g. {examples}"
