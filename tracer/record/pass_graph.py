"""The graph of one pass, walked from its outputs breadth-first: its nodes as columns, in traversal order."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Collection
from typing import Any

import torch

from .gradient_edges import gradient_edge
from .modules import ever_tagged, module_tag
from .node_ops import ACCUMULATE, anomaly_source

NodeEdges = list[tuple[int, int]]  # per node: (target node or -1 for none, input_nr), in next_functions order


@dataclasses.dataclass
class PassGraph:
    """The graph as columns indexed by node (its number in traversal order), not as an object per node: the
    walk is on the user's backward clock, and thousands of small objects cost more there than the hooks."""

    fns: list[Any] = dataclasses.field(default_factory=list)  # each node's grad_fn (dropped by release)
    names: list[str] = dataclasses.field(default_factory=list)
    edges: list[NodeEdges] = dataclasses.field(default_factory=list)
    fan_in_many: list[Collection[int]] = dataclasses.field(default_factory=list)  # v slots fed by several edges
    leaf_vars: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)  # AccumulateGrad -> its leaf
    roots: list[tuple[int, int] | None] = dataclasses.field(default_factory=list)  # per output: (node, input_nr)
    sources: dict[int, str] = dataclasses.field(default_factory=dict)  # anomaly mode's forward line
    modules: dict[int, tuple[str, str]] = dataclasses.field(default_factory=dict)  # (path, class) from modules.py
    _index: dict[Any, int] | None = None

    def index(self) -> dict[Any, int]:
        """grad_fn -> node number (made when first asked: most passes never need it)."""
        if self._index is None:
            self._index = dict(zip(self.fns, range(len(self.fns)), strict=True))
        return self._index

    def release(self) -> None:
        """Drop the grad_fns and leaves, so the graph and its tensors are freed as without tracing."""
        self.fns = []
        self.leaf_vars = {}
        self._index = None


def walk(outputs: tuple[Any, ...], native: Any) -> PassGraph:
    """Breadth-first from the outputs, in next_functions order: deterministic traversal (by the native module
    when it is built: the same order, names, edges, fan-in and leaves)."""
    graph = _walk_native(outputs, native) if native is not None else _walk_python(outputs)
    _read_sources(graph)
    _read_modules(graph)
    return graph


def _walk_python(outputs: tuple[Any, ...]) -> PassGraph:
    graph = PassGraph(_index={})
    queue: deque[Any] = deque()
    fns, names, edges, index = graph.fns, graph.names, graph.edges, graph.index()
    fan_in: list[dict[int, int]] = []

    def visit(fn: Any) -> int:
        i = index.get(fn)
        if i is None:
            i = index[fn] = len(fns)
            fns.append(fn)
            names.append(str(fn.name()).rsplit("::", 1)[-1])
            edges.append([])
            fan_in.append({})
            if names[i] == ACCUMULATE:
                variable = getattr(fn, "variable", None)
                if variable is not None:
                    graph.leaf_vars[i] = variable
            queue.append(fn)
        return i

    for out in outputs:
        edge = gradient_edge(out)
        if edge is None:
            graph.roots.append(None)
            continue
        i = visit(edge[0])
        fan_in[i][edge[1]] = fan_in[i].get(edge[1], 0) + 1
        graph.roots.append((i, edge[1]))
    while queue:
        fn = queue.popleft()
        node_edges = edges[index[fn]]
        for next_fn, input_nr in fn.next_functions:
            if next_fn is None:
                node_edges.append((-1, input_nr))
                continue
            j = visit(next_fn)
            fan_in[j][input_nr] = fan_in[j].get(input_nr, 0) + 1
            node_edges.append((j, input_nr))
    graph.fan_in_many = [frozenset(k for k, count in slots.items() if count > 1) for slots in fan_in]
    return graph


def _walk_native(outputs: tuple[Any, ...], native: Any) -> PassGraph:
    edges_of = [gradient_edge(out) for out in outputs]
    nodes, names, edges, many, leaves, root_index = native.walk([e for e in edges_of if e is not None])
    at = iter(root_index)
    return PassGraph(
        fns=nodes,
        names=names,
        edges=edges,
        fan_in_many=many,
        leaf_vars=dict(leaves),
        roots=[None if e is None else (next(at), e[1]) for e in edges_of],
    )


def _read_sources(graph: PassGraph) -> None:
    """Anomaly mode's forward lines, when it was on for the forward (the first node tells)."""
    if graph.fns and anomaly_source(graph.fns[0]) is not None:
        for i, fn in enumerate(graph.fns):
            source = anomaly_source(fn)
            if source is not None:
                graph.sources[i] = source


def _read_modules(graph: PassGraph) -> None:
    if ever_tagged():  # reading node.metadata costs a little: only once a model was ever tagged
        for i, fn in enumerate(graph.fns):
            tag = module_tag(fn)
            if tag is not None:
                graph.modules[i] = tag
