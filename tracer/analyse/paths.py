"""Paths from the seeds to a leaf, and the chain rule made explicit: the leaf's gradient as a sum over paths.

A path runs through slots: it enters a node at one of its forward outputs (the `input_nr` of the edge it
came along) and leaves along one next edge. Along a path the gradient is v times the block of each node's
local Jacobian for (that slot's rows, that edge's columns); summing those products over every path gives
the leaf's gradient — the chain rule with all its terms written out. Parallel edges count separately: in
x * x both factors are their own path to x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..model.errors import GradtraceError
from ..model.records import Leaf, Step, Trace
from ..model.textfmt import num, table
from ..model.visible_text import visible
from .naming import seed_label

DEFAULT_MAX_PATHS = 1000


class TooManyPaths(GradtraceError):
    """More paths lead to the leaf than the limit allows."""


class DecompositionUnavailable(GradtraceError):
    """The chain-rule decomposition needs numbers the trace did not keep."""


class UnknownLeaf(GradtraceError, KeyError):
    """A leaf name that is not in the trace."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class Hop:
    """One node on a path: entered at forward output `slot`, left along next edge `edge` (None at the end)."""

    node: int
    slot: int
    edge: int | None


@dataclass(frozen=True)
class GradPath:
    """A path from seed `seed` to a leaf: the nodes it passes, the last one being the leaf's node."""

    seed: int
    hops: tuple[Hop, ...]

    def describe(self, trace: Trace) -> str:
        """'seed y → 1 MulBackward0 →(edge 0) 2 AccumulateGrad'."""
        seed = trace.seeds[self.seed]
        text = f"seed {seed_label(seed)}"
        for hop in self.hops:
            node = trace.node(hop.node)
            slot = f"[{hop.slot}]" if hop.slot else ""
            text += f" → {node.id} {node.name}{slot}"
            if hop.edge is not None and len(node.edges) > 1:
                text += f" (edge {hop.edge})"
        return text


@dataclass(frozen=True)
class PathTerm:
    """One path's share of the leaf's gradient: v times the Jacobian blocks along it (flat, float64)."""

    path: GradPath
    contribution: tuple[float, ...]


@dataclass(frozen=True)
class Decomposition:
    """The leaf's gradient as a sum over paths, checked against what the pass recorded."""

    leaf: str
    shape: tuple[int, ...]
    terms: tuple[PathTerm, ...]
    total: tuple[float, ...]  # Σ over paths, flat
    recorded: tuple[float, ...] | None  # the recorded gradient, flat (None when only statistics were kept)
    max_error: float  # vs recorded values, or |‖total‖ - recorded norm| when values were not kept
    tolerance: float
    checked_by: str  # 'values' or 'norm'
    descriptions: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "equals" if self.ok else "DOES NOT EQUAL"
        rows = [[d, _vector(t.contribution)] for d, t in zip(self.descriptions, self.terms, strict=True)]
        recorded = _vector(self.recorded) if self.recorded is not None else "(statistics only)"
        return (
            f"gradient of {visible(self.leaf)} as a sum over {len(self.terms)} path(s):\n"
            + table(["path", "v · J along it"], rows)
            + f"\n  sum {_vector(self.total)} {verdict} the recorded {recorded}"
            + f" (max error {num(self.max_error)}, tolerance {num(self.tolerance)}, by {self.checked_by})"
        )


def _vector(values: tuple[float, ...] | None, limit: int = 8) -> str:
    if values is None:
        return "None"
    shown = ", ".join(num(v) for v in values[:limit])
    return f"[{shown}{', …' if len(values) > limit else ''}]"


def _leaf(trace: Trace, leaf: str | Leaf) -> Leaf:
    if isinstance(leaf, Leaf):
        return leaf
    found = trace.leaves.get(leaf)
    if found is None:
        raise UnknownLeaf(f"no leaf {leaf!r} in this trace (its leaves are {sorted(trace.leaves)})")
    return found


def count_paths(trace: Trace, leaf: str | Leaf) -> int:
    """How many paths lead from the seeds to the leaf, counted without listing them (exact, any size)."""
    target = _leaf(trace, leaf)
    if target.node is None:
        return 0
    counts = _counts(trace, (target.node, target.input_nr))
    return sum(_entry_count(counts, s.target, s.input_nr, target) for s in trace.seeds if s.target is not None)


def _entry_count(counts: dict[int, int], node: int, slot: int, target: Leaf) -> int:
    if (node, slot) == (target.node, target.input_nr):
        return 1
    return counts.get(node, 0) if node != target.node else 0


def _counts(trace: Trace, goal: tuple[int, int]) -> dict[int, int]:
    """Paths from any slot of each node to `goal` (the node's own slot does not matter once inside it)."""
    counts: dict[int, int] = {}
    for node_id in _reverse_topological(trace):
        if node_id == goal[0]:
            counts[node_id] = 0  # a path ends at the goal; it does not run on through it
            continue
        total = 0
        for e in trace.node(node_id).edges:
            if e.target is None:
                continue
            total += 1 if (e.target, e.input_nr) == goal else counts.get(e.target, 0)
        counts[node_id] = total
    return counts


def _reverse_topological(trace: Trace) -> list[int]:
    """Node ids, every node after all the nodes it sends gradient to (iterative: graphs can be deep)."""
    children = {n.id: [e.target for e in n.edges if e.target is not None] for n in trace.nodes}
    order: list[int] = []
    done: set[int] = set()
    for root in sorted(children):
        if root in done:
            continue
        stack = [(root, iter(children[root]))]
        done.add(root)
        while stack:
            node, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                order.append(node)
            elif child not in done:
                done.add(child)
                stack.append((child, iter(children[child])))
    return order


def paths(trace: Trace, leaf: str | Leaf, *, max_paths: int = DEFAULT_MAX_PATHS) -> list[GradPath]:
    """Every path from a seed to the leaf, seeds in order, edges in next-edge order.

    Raises TooManyPaths (with the exact count) when there are more than `max_paths`."""
    target = _leaf(trace, leaf)
    if target.node is None:
        return []
    total = count_paths(trace, target)
    if total > max_paths:
        raise TooManyPaths(
            f"{total} paths lead from the seed{'s' if len(trace.seeds) > 1 else ''} to {target.name!r}, more than "
            f"max_paths={max_paths}; pass a larger max_paths= to list them all, or use count_paths() and "
            "accumulation_points() to see where they merge"
        )
    goal = (target.node, target.input_nr)
    counts = _counts(trace, goal)
    found: list[GradPath] = []
    for s in trace.seeds:
        if s.target is None or _entry_count(counts, s.target, s.input_nr, target) == 0:
            continue
        # Depth-first with an explicit stack; only edges that still lead to the goal are followed.
        stack: list[tuple[tuple[Hop, ...], int, int]] = [((), s.target, s.input_nr)]
        while stack:
            prefix, node_id, slot = stack.pop()
            if (node_id, slot) == goal:
                found.append(GradPath(s.index, (*prefix, Hop(node_id, slot, None))))
                continue
            branches = []
            for k, e in enumerate(trace.node(node_id).edges):
                if e.target is None:
                    continue
                if (e.target, e.input_nr) == goal or counts.get(e.target, 0) > 0:
                    branches.append(((*prefix, Hop(node_id, slot, k)), e.target, e.input_nr))
            stack.extend(reversed(branches))
    return found


def decompose(
    trace: Trace, leaf: str | Leaf, *, max_paths: int = DEFAULT_MAX_PATHS, rtol: float = 1e-6
) -> Decomposition:
    """The leaf's gradient as Σ over paths of (seed v) · J₁ · J₂ · …, checked against the recorded gradient.

    The check allows `rtol` relative to the size of the terms (max over elements of Σ|term|, at least 1):
    the pass itself rounded in its own dtype. Needs every seed's values and every node's Jacobian on the
    paths (record with a larger jacobian_limit= for bigger nodes)."""
    target = _leaf(trace, leaf)
    if target.grad is None:
        raise DecompositionUnavailable(
            f"{target.name!r} got no gradient in this pass ({target.reason}); there is nothing to decompose"
        )
    found = paths(trace, target, max_paths=max_paths)
    width = math.prod(target.shape)
    cache: dict[int, torch.Tensor] = {}
    terms = []
    for path in found:
        seed = trace.seeds[path.seed]
        if seed.v is None or seed.v.values is None:
            raise DecompositionUnavailable(
                f"the values of seed {seed_label(seed)} were not kept (it has {math.prod(seed.shape)} "
                "elements); record with a larger max_values= to decompose"
            )
        vec = torch.tensor(seed.v.values, dtype=torch.float64)
        for hop in path.hops[:-1]:
            assert hop.edge is not None
            block = _block(trace.node(hop.node), hop.slot, hop.edge, trace, cache)
            if block is None:
                vec = torch.zeros(width, dtype=torch.float64)
                break
            vec = vec @ block
        if vec.numel() != width:  # pragma: no cover - the recorder keeps shapes consistent
            raise DecompositionUnavailable(f"path ends with {vec.numel()} elements, {target.name!r} has {width}")
        terms.append(PathTerm(path, tuple(vec.tolist())))
    stacked = torch.tensor([t.contribution for t in terms], dtype=torch.float64).reshape(len(terms), width)
    total = stacked.sum(0)
    scale = max(1.0, float(stacked.abs().sum(0).max())) if terms else 1.0
    tolerance = rtol * scale
    grad = target.grad
    recorded: tuple[float, ...] | None = None
    if grad.values is not None:
        recorded = tuple(float(v) for v in grad.values)
        diff = (total - torch.tensor(recorded, dtype=torch.float64)).abs()
        max_error, checked_by = (float(diff.max()) if diff.numel() else 0.0), "values"
    else:
        assert grad.stats is not None
        max_error, checked_by = abs(float(total.norm()) - grad.stats.norm), "norm"
    return Decomposition(
        leaf=target.name,
        shape=target.shape,
        terms=tuple(terms),
        total=tuple(total.tolist()),
        recorded=recorded,
        max_error=max_error,
        tolerance=tolerance,
        checked_by=checked_by,
        descriptions=tuple(t.path.describe(trace) for t in terms),
    )


def _block(node: Step, slot: int, edge: int, trace: Trace, cache: dict[int, torch.Tensor]) -> torch.Tensor | None:
    """The rows of forward output `slot` and the columns of next edge `edge` in the node's Jacobian;
    None when no gradient arrived at that slot or the node sent none along that edge (the path carries 0)."""
    jac = node.jacobian
    if jac is None:
        why = node.note or (
            f"it is larger than jacobian_limit={trace.options.jacobian_limit}; record with a larger jacobian_limit="
            if node.executed
            else "it did not run in this pass"
        )
        raise DecompositionUnavailable(f"node {node.id} {node.name} on a path has no recorded Jacobian: {why}")
    rows, n_rows = _span(jac.rows, slot)
    cols, n_cols = _span(jac.cols, edge)
    if n_rows is None or n_cols is None:
        return None
    matrix = cache.get(node.id)
    if matrix is None:
        matrix = cache[node.id] = torch.tensor(jac.matrix, dtype=torch.float64).reshape(jac.size)
    return matrix[rows : rows + n_rows, cols : cols + n_cols]


def _span(shapes: tuple[tuple[int, ...] | None, ...], k: int) -> tuple[int, int | None]:
    """Offset and length of part k in the concatenation of the present parts (None: part k is absent)."""
    offset = sum(math.prod(s) for s in shapes[:k] if s is not None)
    if k >= len(shapes) or shapes[k] is None:
        return offset, None
    return offset, math.prod(shapes[k])  # type: ignore[arg-type]
