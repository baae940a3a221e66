"""Accumulation points: where several gradients are summed, with the parts, the sum, and a check that they add up.

Two kinds. 'fan-in': one forward output used several times (x*x, a tensor feeding two branches, several
outputs sharing an input) gets one gradient per use, and the engine sums them before the node runs — the
tutorials' "cumulative grad". '.grad': a leaf whose .grad already held something when the pass started gets
this pass's gradient added to it (why the tutorials zero .grad between passes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ..model.records import TensorInfo, Trace
from ..model.textfmt import eps, num, table, tensor
from ..model.visible_text import visible
from .graph import Inflow, inflows

AccumulationKind = Literal["fan-in", ".grad"]


@dataclass(frozen=True)
class Part:
    """One addend: what it is and the gradient it brought (None: it brought nothing)."""

    label: str  # 'seed y', 'step 3 PowBackward0, edge 0', '.grad before the pass', 'this pass'
    grad: TensorInfo | None
    seed: int | None = None
    node: int | None = None  # the sending node
    edge: int | None = None


@dataclass(frozen=True)
class AccumulationPoint:
    """Several gradients summed at one place; `ok` says whether the recorded parts add up to the recorded sum."""

    kind: AccumulationKind
    node: int  # the receiving node (an AccumulateGrad for leaves)
    slot: int  # which of its forward outputs
    name: str  # the receiving node's name
    leaf: str | None  # the leaf or retained tensor whose gradient this is, when there is one
    parts: tuple[Part, ...]
    total: TensorInfo | None  # the recorded sum
    computed: tuple[float, ...] | None  # the parts summed here in float64, when their values were kept
    max_error: float | None  # largest |computed - total| (values), or |Σ means - mean| (statistics)
    tolerance: float | None
    checked_by: Literal["values", "means"] | None  # None: too little was kept to check
    note: str | None = None

    @property
    def ok(self) -> bool | None:
        """True/False when checkable; None when only sampled statistics were kept."""
        if self.max_error is None or self.tolerance is None:
            return None
        return self.max_error <= self.tolerance

    @property
    def where(self) -> str:
        target = f" ({self.leaf})" if self.leaf else ""
        slot = f" output {self.slot}" if self.slot else ""
        return f"node {self.node} {self.name}{slot}{target}"

    def __str__(self) -> str:
        verdict = {True: "parts add up", False: "PARTS DO NOT ADD UP", None: "not checkable"}[self.ok]
        head = f"{self.kind} at {self.where}: {len(self.parts)} parts, sum {tensor(self.total)} — {verdict}"
        if self.max_error is not None:
            head += f" (max error {num(self.max_error)}, tolerance {num(self.tolerance)})"
        rows = [[p.label, tensor(p.grad)] for p in self.parts]
        return visible(head, layout=True) + "\n" + table(["part", "gradient"], rows, indent="    ")


def accumulation_points(trace: Trace) -> list[AccumulationPoint]:
    """Every fan-in slot (two or more incoming gradients) and every leaf whose .grad already held a value,
    ordered by receiving node id, fan-in before .grad."""
    points: list[AccumulationPoint] = []
    leaf_at = {(leaf.node, leaf.input_nr): leaf for leaf in trace.leaves.values() if leaf.node is not None}
    for (node_id, slot), arriving in sorted(inflows(trace).items()):
        if len(arriving) < 2:
            continue
        node = trace.node(node_id)
        leaf = leaf_at.get((node_id, slot))
        total = node.v[slot] if node.executed and slot < len(node.v) else None
        if total is None and leaf is not None and not node.executed:
            total = leaf.grad  # torch.autograd.grad captured the sum instead of running AccumulateGrad
        parts = tuple(_part(trace, a) for a in arriving)
        points.append(_checked("fan-in", node_id, slot, node.name, leaf.name if leaf else None, parts, total))
    for leaf in trace.leaves.values():
        if leaf.node is None or leaf.grad_before is None or leaf.grad is None or leaf.kind != "leaf":
            continue
        parts = (Part(".grad before the pass", leaf.grad_before), Part("this pass", leaf.grad))
        node = trace.node(leaf.node)
        points.append(_checked(".grad", leaf.node, leaf.input_nr, node.name, leaf.name, parts, leaf.grad_total))
    return sorted(points, key=lambda p: (p.node, p.slot, p.kind != "fan-in"))


def _fsum(values: Iterable[float]) -> float:
    """math.fsum, but +inf and -inf add up to NaN as in the engine (fsum raises ValueError for them)."""
    items = list(values)
    try:
        return math.fsum(items)
    except ValueError:
        return sum(items)


def _part(trace: Trace, a: Inflow) -> Part:
    return Part(a.label(trace), a.grad, seed=a.seed, node=a.source, edge=a.edge)


def _checked(
    kind: AccumulationKind,
    node: int,
    slot: int,
    name: str,
    leaf: str | None,
    parts: tuple[Part, ...],
    total: TensorInfo | None,
) -> AccumulationPoint:
    present = [p.grad for p in parts if p.grad is not None]
    point = AccumulationPoint(kind, node, slot, name, leaf, parts, total, None, None, None, None)
    if total is None:
        if present:
            return _with(point, note="the sum was not recorded (the pass stopped before this node ran)")
        return _with(point, note="no part carried a gradient")
    precision = eps(total.dtype)
    total_values = total.flat()
    part_values = [g.flat() for g in present]
    if total_values is not None and all(p is not None and p.shape == total_values.shape for p in part_values):
        parts_matrix = np.stack(part_values)  # type: ignore[arg-type]
        # inf + -inf is NaN here as in the engine: no RuntimeWarning for it (the comparison below handles NaN)
        with np.errstate(invalid="ignore", over="ignore"):
            computed = parts_matrix.sum(axis=0)
            size = np.abs(parts_matrix).sum(axis=0)
            gap = np.abs(computed - total_values)
        # the same non-finite value on both sides (NaN in a part gives NaN in the sum) agrees
        agree = (computed == total_values) | (np.isnan(computed) & np.isnan(total_values))
        gap[agree] = 0.0
        # The engine adds in the gradient's dtype, one rounding per addition.
        tolerance = len(present) * precision * (float(size.max()) if size.size else 0.0) + 1e-300
        return _with(
            point,
            computed=tuple(float(c) for c in computed) if total.values is not None else None,
            max_error=float(gap.max()) if gap.size else 0.0,
            tolerance=tolerance,
            checked_by="values",
        )
    stats = [g.stats for g in present]
    if total.stats is not None and total.stats.exact and all(s is not None and s.exact for s in stats):
        mean = _fsum(s.mean for s in stats if s is not None)
        magnitude = _fsum(max(abs(s.min), abs(s.max)) for s in stats if s is not None)
        # Each recorded mean comes from a sum in the tensor's dtype: pairwise summation errs by ~log2(n) eps.
        rounding = (len(present) + 1) * (math.log2(max(total.numel, 2)) + 1) * precision
        return _with(
            point,
            max_error=_error(mean, total.stats.mean),
            tolerance=rounding * magnitude + 1e-300,
            checked_by="means",
            note="large tensors: checked that the means add up (values were not kept)",
        )
    return _with(point, note="only sampled statistics were kept; record with capture='stats' to check the sum")


def _error(computed: float, recorded: float) -> float:
    """|computed - recorded|; the same non-finite value on both sides (NaN in a part gives NaN in the sum) agrees."""
    if computed == recorded or (math.isnan(computed) and math.isnan(recorded)):
        return 0.0
    return abs(computed - recorded)


def _with(point: AccumulationPoint, **changes: object) -> AccumulationPoint:
    return replace(point, **changes)  # type: ignore[arg-type]
