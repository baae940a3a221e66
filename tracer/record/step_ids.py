"""Step ids: executed nodes numbered in the order they ran, the node that raised found and numbered next."""

from __future__ import annotations

import re

from .pass_graph import PassGraph

_NAMED_FAILURE = re.compile(r"Function '(\w+)' returned nan values")  # anomaly mode, after the node ran


def failing_node(graph: PassGraph, order: list[int], error: BaseException) -> int | None:
    """The node that raised: the one the error names when it finished first (anomaly mode checks a node's
    output after it ran), else the one the engine would pick next — every producer done, highest priority
    (sequence number; AccumulateGrad nodes have the highest) — among those not done."""
    named = _NAMED_FAILURE.search(str(error))
    if named is not None:
        for i in reversed(order):
            if graph.names[i] == named.group(1):
                return i
    done = set(order)
    producers: dict[int, list[int]] = {}
    for i, node_edges in enumerate(graph.edges):
        for t, _ in node_edges:
            if t >= 0:
                producers.setdefault(t, []).append(i)
    roots = {r[0] for r in graph.roots if r is not None}
    ready = [
        i
        for i in range(len(graph.fns))
        if i not in done and (i in roots or producers.get(i)) and all(p in done for p in producers.get(i, ()))
    ]
    if not ready:
        return None

    def priority(i: int) -> int:
        try:
            return int(graph.fns[i]._sequence_nr())
        except Exception:  # pragma: no cover - private API moved
            return -1

    return max(ready, key=priority)


def assign_ids(order: list[int], failing: int | None, count: int) -> dict[int, int]:
    """Executed nodes get 1..k in execution order (a node that raised comes last); the rest follow in
    traversal order."""
    ids = dict(zip(order, range(1, len(order) + 1), strict=True))
    if len(ids) < len(order):  # a node ran twice: it keeps its first number
        ids = {}
        for i in order:
            ids.setdefault(i, len(ids) + 1)
    if failing is not None and failing not in ids:
        ids[failing] = len(ids) + 1
    if len(ids) < count:
        for i in range(count):
            if i not in ids:
                ids[i] = len(ids) + 1
    return ids
