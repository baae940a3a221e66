"""The recorded pass as a networkx DiGraph: seeds → backward nodes → constants, data on nodes and edges."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..model.records import Leaf, TensorInfo, Trace
from .naming import seed_label, step_label


def node_key(node_id: int) -> str:
    return f"n{node_id}"


def seed_key(index: int) -> str:
    return f"seed{index}"


def constant_key(node_id: int, edge_index: int) -> str:
    return f"const{node_id}_{edge_index}"


def edge_kind(executed_source: bool, grad_present: bool, target_executed: bool | None) -> str:
    """'grad' carries a gradient; 'none' could but carried None; 'cut' leads to an input that needs none
    (a constant, a .detach()ed tensor, something made under no_grad); 'pending' was never run."""
    if target_executed is None:
        return "cut"
    if not executed_source:
        return "pending"
    return "grad" if grad_present else "none"


def build_graph(trace: Trace) -> nx.DiGraph:
    """Nodes: 'seed<k>', 'n<id>' and 'const<id>_<k>'; every edge has `kind` and `parts` (parallel next
    edges between the same two nodes, e.g. x*x, are one DiGraph edge with several parts)."""
    g = nx.DiGraph(kind=trace.kind, complete=trace.complete, index=trace.index)
    by_leaf_node: dict[int, list[Leaf]] = {}
    for leaf in trace.leaves.values():
        if leaf.node is not None:
            by_leaf_node.setdefault(leaf.node, []).append(leaf)
    for s in trace.seeds:
        g.add_node(seed_key(s.index), kind="seed", seed=s, name=s.name, shape=s.shape, v=s.v)
        if s.target is not None:
            g.add_edge(
                seed_key(s.index),
                node_key(s.target),
                kind="grad" if s.v is not None else "none",
                parts=((None, s.input_nr, s.v),),
                grad=s.v,
            )
    for n in trace.nodes:
        g.add_node(
            node_key(n.id),
            kind="node",
            id=n.id,
            step=n.step,
            name=n.name,
            op=n.op,
            executed=n.executed,
            v=n.v,
            vjp=n.vjp,
            jacobian=n.jacobian,
            check=n.check,
            source=n.source,
            module=n.module,
            leaf=n.leaf,
            leaves=tuple(by_leaf_node.get(n.id, ())),
            note=n.note,
            data=n,
        )
    executed = {n.id: n.executed for n in trace.nodes}
    for n, k, e, grad in trace.edges():
        if e.target is None:
            target = constant_key(n.id, k)
            g.add_node(target, kind="constant", source_node=n.id, edge_index=k)
        else:
            target = node_key(e.target)
        part = (k, e.input_nr, grad)
        if g.has_edge(node_key(n.id), target):
            data = g.edges[node_key(n.id), target]
            data["parts"] = (*data["parts"], part)
            if data["kind"] != "grad" and grad is not None:
                data["kind"] = "grad"
            continue
        kind = edge_kind(n.executed, grad is not None, None if e.target is None else executed[e.target])
        g.add_edge(node_key(n.id), target, kind=kind, parts=(part,), grad=grad)
    return g


@dataclass(frozen=True)
class Inflow:
    """One gradient arriving at a node's forward-output slot: from a seed, or along another node's next edge.

    The one record of "what enters a slot": accumulation points, health, the module view and the drawings all
    read inflows(); each words the sender its own way (see naming.py)."""

    grad: TensorInfo | None
    seed: int | None = None  # seed index, when the gradient is a seed
    source: int | None = None  # id of the node that sent it
    edge: int | None = None  # which next edge of `source`

    def label(self, trace: Trace) -> str:
        """'seed y' or 'step 3 PowBackward0, edge 0' (unexecuted sources are 'node 7 ...')."""
        if self.seed is not None:
            return f"seed {seed_label(trace.seeds[self.seed])}"
        assert self.source is not None
        return f"{step_label(trace.node(self.source))}, edge {self.edge}"


Slot = tuple[int, int]  # (node id, forward output index)


def inflows(trace: Trace) -> dict[Slot, list[Inflow]]:
    """Every slot fed by something, with what arrived, in the order the engine summed it: seeds first
    (they are in the input buffers when the pass starts), then the senders in execution order."""
    into: dict[Slot, list[Inflow]] = {}
    for s in trace.seeds:
        if s.target is not None:
            into.setdefault((s.target, s.input_nr), []).append(Inflow(s.v, seed=s.index))
    for n, k, e, grad in trace.edges():
        if e.target is not None:
            into.setdefault((e.target, e.input_nr), []).append(Inflow(grad, source=n.id, edge=k))
    return into


def backward_nodes(g: nx.DiGraph) -> list[str]:
    """The keys of the backward nodes (no seeds, no constants), by id."""
    return sorted((k for k, kind in g.nodes(data="kind") if kind == "node"), key=lambda k: g.nodes[k]["id"])


def topological_ids(g: nx.DiGraph) -> list[int]:
    """A topological order of the backward nodes, smallest id first among the ready ones.

    Ids number executed nodes in execution order, so when the engine ran them in a valid order this is
    exactly the execution order followed by the nodes that did not run."""
    sub = g.subgraph(backward_nodes(g))
    return [sub.nodes[k]["id"] for k in nx.lexicographical_topological_sort(sub, key=lambda k: sub.nodes[k]["id"])]
