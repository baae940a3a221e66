"""The recorded pass as a networkx DiGraph: seeds → backward nodes → constants, data on nodes and edges."""

from __future__ import annotations

import networkx as nx

from .model import Leaf, Trace


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
