"""The shape of a recorded backward graph: order, depth and width, ops, seeds and leaves, cut edges."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import networkx as nx

from ..model.records import Trace
from ..model.textfmt import plural
from ..model.visible_text import visible
from .graph import backward_nodes, seed_key, topological_ids
from .naming import seed_label

CutKind = Literal["constant", "none"]

CONSTANT_REASON = "the input needs no gradient: a constant, a .detach()ed tensor, or one made under torch.no_grad()"


@dataclass(frozen=True)
class CutEdge:
    """A next edge along which no gradient flows."""

    node: int  # the node whose next edge it is
    edge: int  # its index among the node's next edges
    kind: CutKind  # 'constant': nothing to send to; 'none': the node sent None
    reason: str


@dataclass(frozen=True)
class UnreachedLeaf:
    """A leaf the pass delivered no gradient to, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Structure:
    """Facts about the graph of one pass; node ids are the trace's (executed nodes 1..k in execution order)."""

    execution_order: tuple[int, ...]
    topological_order: tuple[int, ...]  # all backward nodes, smallest id first among the ready ones
    order_violations: tuple[tuple[int, int], ...]  # (sender, receiver) pairs where the receiver ran first
    levels: tuple[tuple[int, ...], ...]  # levels[d]: the nodes whose longest path from a seed has d + 1 nodes
    op_counts: tuple[tuple[str, int], ...]  # node name and count, most frequent first
    seeds: tuple[str, ...]
    leaves: tuple[str, ...]
    unexecuted: tuple[int, ...]
    cut_edges: tuple[CutEdge, ...]
    unreached_leaves: tuple[UnreachedLeaf, ...]

    @property
    def order_ok(self) -> bool:
        """Whether the engine's execution order is a topological order of the graph (it always should be)."""
        return not self.order_violations

    @property
    def depth(self) -> int:
        """Nodes on the longest path from a seed to a leaf."""
        return len(self.levels)

    @property
    def width(self) -> int:
        """The most nodes at one depth level: how many could be in flight at once."""
        return max((len(level) for level in self.levels), default=0)

    def __str__(self) -> str:
        ops = ", ".join(f"{visible(name)}×{count}" for name, count in self.op_counts)
        seeds, leaves = ", ".join(map(visible, self.seeds)), ", ".join(map(visible, self.leaves))
        lines = [
            f"{plural(len(self.execution_order), 'step')}, depth {self.depth}, width {self.width}; "
            f"execution order {'is' if self.order_ok else 'is NOT'} a topological order",
            f"ops: {ops or 'none'}",
            f"seeds: {seeds or 'none'}; leaves: {leaves or 'none'}",
        ]
        if self.unexecuted:
            lines.append(f"reached but not executed: {', '.join(f'node {i}' for i in self.unexecuted)}")
        for c in self.cut_edges:
            lines.append(f"cut edge: node {c.node} edge {c.edge} ({c.kind}): {c.reason}")
        for u in self.unreached_leaves:
            lines.append(f"no gradient for {visible(u.name)}: {u.reason}")
        for a, b in self.order_violations:
            lines.append(f"order violation: node {b} ran before node {a}, which sends it a gradient")
        return visible("\n".join(lines), layout=True)  # a name's control characters as escapes, never raw


def structure(trace: Trace) -> Structure:
    """Order, depth, width, op counts, seeds, leaves, unexecuted nodes, cut edges and unreached leaves."""
    g = trace.graph
    executed = {n.id for n in trace.nodes if n.executed}
    violations = tuple(
        (n.id, e.target)
        for n, _, e, _ in trace.edges()
        if e.target is not None and n.id in executed and e.target in executed and e.target < n.id
    )
    return Structure(
        execution_order=tuple(n.id for n in trace.steps),
        topological_order=tuple(topological_ids(g)),
        order_violations=violations,
        levels=_levels(trace),
        op_counts=tuple(sorted(Counter(n.name for n in trace.nodes).items(), key=lambda kv: (-kv[1], kv[0]))),
        seeds=tuple(seed_label(s) for s in trace.seeds),
        leaves=tuple(trace.leaves),
        unexecuted=tuple(n.id for n in trace.unexecuted),
        cut_edges=cut_edges(trace),
        unreached_leaves=tuple(
            UnreachedLeaf(leaf.name, leaf.reason or "no gradient was recorded for it")
            for leaf in trace.leaves.values()
            if leaf.grad is None
        ),
    )


def _levels(trace: Trace) -> tuple[tuple[int, ...], ...]:
    """Longest-path level of every backward node from the seeds (level 1: a seed's own node)."""
    g = trace.graph
    sub = g.subgraph([*backward_nodes(g), *(seed_key(s.index) for s in trace.seeds)])
    level: dict[int, int] = {}
    for key in nx.topological_sort(sub):
        data = sub.nodes[key]
        if data["kind"] != "node":
            continue
        preds = [p for p in sub.predecessors(key) if sub.nodes[p]["kind"] == "node"]
        level[data["id"]] = 1 + max((level[sub.nodes[p]["id"]] for p in preds), default=0)
    by_level: dict[int, list[int]] = {}
    for node_id, d in level.items():
        by_level.setdefault(d, []).append(node_id)
    return tuple(tuple(sorted(by_level[d])) for d in sorted(by_level))


def cut_edges(trace: Trace) -> tuple[CutEdge, ...]:
    """Edges to inputs that need no gradient, and edges an executed node sent None along."""
    executed = {n.id for n in trace.nodes if n.executed}
    cuts = []
    for n, k, e, grad in trace.edges():
        if e.target is None:
            cuts.append(CutEdge(n.id, k, "constant", CONSTANT_REASON))
        elif n.executed and grad is None:
            cuts.append(CutEdge(n.id, k, "none", _why_none(trace, e.target in executed)))
    return tuple(cuts)


def _why_none(trace: Trace, target_ran: bool) -> str:
    if not target_ran and trace.options.inputs is not None:
        return "the engine did not compute it: nothing on this side is among the pass's inputs="
    if not target_ran and not trace.complete:
        return "the node sent None and the pass stopped before the receiver ran"
    return "the node's backward returned None for this input (it treats the input as not differentiable)"
