"""Why each dashed "no grad" stub of a pass has no gradient: the forward call that cut it, and its line.

A node's next edge has no target when its forward input needed no gradient. With `record(forward=True)` the
forward record knows the call that made the node and the inputs it took; following that input back through the
calls that made it finds the cut: the first call whose input carried a gradient and whose result did not
(.detach(), .data, an op under torch.no_grad(), an integer op, torch.tensor(t)), values that left torch and came
back, or a constant that never required grad.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from ..model.forward_events import ForwardOp, ForwardRecord, OpKind, TensorSeen, cut_cause
from ..model.why_records import Cause, StubCause
from .forward_record import ForwardRecorder

# Calls whose backward node takes their tensors in another order: F.linear(x, W, b) is addmm(b, x, Wᵀ)
_EDGE_ORDER = {("linear", "AddmmBackward0"): (2, 0, 1)}


def stub_causes(
    fns: Sequence[Any], edges: Sequence[Sequence[tuple[int, int]]], ids: Mapping[int, int], forward: ForwardRecorder
) -> tuple[StubCause, ...]:
    """The cause of every edge without a target whose node a noted call made (`fns`, `edges`: the pass graph's
    columns; `ids`: node number -> the trace's id)."""
    record: ForwardRecord | None = None
    found: list[StubCause] = []
    for i, node_edges in enumerate(edges):
        missing = [k for k, (target, _) in enumerate(node_edges) if target < 0]
        if not missing:
            continue
        index = forward.op_of(fns[i])
        if index is None:
            continue
        record = record or forward.record
        if index >= len(record.ops):
            continue
        op = record.ops[index]
        for k in missing:
            seen = _input_of(op, type(fns[i]).__name__, k, len(node_edges))
            cause = None if seen is None else _origin(record, op, seen)
            if cause is not None:
                found.append(StubCause(step=ids[i], edge=k, **cause))
    return tuple(found)


def _input_of(op: ForwardOp, node: str, k: int, count: int) -> TensorSeen | None:
    """The forward input behind next edge k: the one input that needed no gradient, else the k-th tensor input
    when the node takes them in call order; None when it cannot be told."""
    constants = [i for i in op.inputs if not i.requires_grad]
    if len(constants) == 1:
        return constants[0]
    if len(op.inputs) != count:
        return None
    order = _EDGE_ORDER.get((op.op, node), tuple(range(count)))
    seen = op.inputs[order[k]]
    return None if seen.requires_grad else seen


def _origin(record: ForwardRecord, user: ForwardOp, seen: TensorSeen) -> dict[str, Any] | None:
    """Follow a tensor back through the calls that made it to where its gradient path was cut."""
    constant: ForwardOp | None = None
    pending = deque([seen])
    visited: set[tuple[int, int]] = set()
    while pending:
        s = pending.popleft()
        if s.made_by is None or s.made_by in visited or s.made_by[0] >= len(record.ops):
            continue
        visited.add(s.made_by)
        op = record.ops[s.made_by[0]]
        out = op.outputs[s.made_by[1]]
        if op.kind is OpKind.BACKWARD:
            continue
        if op.kind is OpKind.REQUIRES_GRAD and not out.requires_grad:
            return _fact(Cause.FROZEN, ".requires_grad_(False)", op)
        if op.values_from:  # a number or list that left torch came back into this call
            escape = record.ops[op.values_from[0]]
            return _fact(Cause.VALUES, f".{escape.op}() round trip", escape)
        if not out.requires_grad and any(i.requires_grad for i in op.inputs):
            cause = cut_cause(op, out)
            return _fact(cause, _cut_words(op, cause), op)
        if not op.inputs and constant is None:
            constant = op
        pending.extend(op.inputs)
    if constant is not None:
        return _fact(Cause.FROZEN, f"constant from {constant.op} (requires_grad=False)", constant)
    if seen.made_by is None:  # made before the record began, and never required grad
        return _fact(Cause.FROZEN, "constant (requires_grad=False)", user)
    return None


def _cut_words(op: ForwardOp, cause: Cause) -> str:
    if cause is Cause.DETACH:
        return f".{op.op}()"
    if cause is Cause.DATA:
        return ".data"
    if cause is Cause.NO_GRAD:
        return f"{op.op} under {'torch.inference_mode()' if op.inference else 'torch.no_grad()'}"
    if cause is Cause.RECREATED:
        return f"re-created by {op.op}(...)"
    if cause is Cause.INTEGER:
        return f"integer op {op.op}"
    return op.op


def _fact(cause: Cause, cut: str, op: ForwardOp) -> dict[str, Any]:
    return {"cause": cause, "cut": cut, "file": op.file, "line": op.line}
