"""Reading a forward record as a data flow: which outputs come from a tensor, which carry its gradient, where
that gradient path was cut, and what an output was computed from."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..model.forward_events import ForwardOp, ForwardRecord, OpKind, TensorSeen, cut_cause
from ..model.why_records import Cause

Slot = tuple[int, int]  # (op index, output position): one tensor as one call left it


@dataclass(frozen=True, slots=True)
class Cut:
    """A call whose input carried the gradient and whose output did not."""

    op: ForwardOp
    position: int
    cause: Cause


@dataclass
class Flow:
    """What follows from one tensor (by serial) through the recorded calls."""

    data: set[Slot] = field(default_factory=set)  # outputs computed from it
    grad: set[Slot] = field(default_factory=set)  # outputs its gradient can flow back from
    cuts: list[Cut] = field(default_factory=list)
    escapes: list[ForwardOp] = field(default_factory=list)  # values from it left torch (.item(), .tolist(), .numpy())
    uses: list[ForwardOp] = field(default_factory=list)  # calls that took it (or what came from it) as input


def flow_from(record: ForwardRecord, serial: int, *, carries_grad: bool) -> Flow:
    """Follow `serial` forward through every call, in call order. `carries_grad`: whether the tensor itself
    requires grad (else only the data flow is followed)."""
    flow = Flow()
    for op in record.ops:
        if op.kind is OpKind.BACKWARD:
            continue
        grad_in = any(_carries(i, serial, flow, carries_grad) for i in op.inputs)
        data_in = grad_in or any(i.serial == serial or i.made_by in flow.data for i in op.inputs)
        if not data_in:
            continue
        flow.uses.append(op)
        if op.kind is OpKind.VALUES:
            flow.escapes.append(op)
        grad_serials = {i.serial for i in op.inputs if _carries(i, serial, flow, carries_grad)}
        for position, out in enumerate(op.outputs):
            slot = (op.index, position)
            flow.data.add(slot)
            if not grad_in:
                continue
            # a tensor that requires grad but has no grad_fn is a new leaf (torch.tensor(t, requires_grad=True)):
            # the path ends there as well, unless it is the tensor itself, changed in place or passed through
            if out.requires_grad and (out.grad_fn is not None or out.serial == serial or out.serial in grad_serials):
                flow.grad.add(slot)
            else:
                flow.cuts.append(Cut(op, position, cut_cause(op, out)))
    return flow


def _carries(seen: TensorSeen, serial: int, flow: Flow, carries_grad: bool) -> bool:
    if seen.serial == serial:
        return carries_grad and seen.requires_grad
    return seen.made_by in flow.grad


def ancestry(record: ForwardRecord, starts: Iterable[Slot]) -> set[Slot]:
    """Every output slot the given slots were computed from (themselves included)."""
    seen: set[Slot] = set()
    pending = deque(s for s in starts)
    while pending:
        slot = pending.popleft()
        if slot in seen or slot[0] >= len(record.ops):
            continue
        seen.add(slot)
        pending.extend(i.made_by for i in record.ops[slot[0]].inputs if i.made_by is not None)
    return seen


def chain(record: ForwardRecord, start: Slot, goal: Slot) -> list[ForwardOp]:
    """The calls from `start` (the output) back to `goal`, following inputs: start's op first, goal's op last;
    empty when goal is not among start's ancestry."""
    parents: dict[Slot, Slot | None] = {start: None}
    pending = deque([start])
    while pending:
        slot = pending.popleft()
        if slot == goal:
            path: list[ForwardOp] = []
            current: Slot | None = slot
            while current is not None:
                path.append(record.ops[current[0]])
                current = parents[current]
            return list(reversed(path))
        for i in record.ops[slot[0]].inputs:
            if i.made_by is not None and i.made_by not in parents:
                parents[i.made_by] = slot
                pending.append(i.made_by)
    return []


def output_slots(backward: ForwardOp) -> list[Slot]:
    """The slots of the tensors a backward call started from (its outputs and seeds, as recorded)."""
    return [i.made_by for i in backward.inputs if i.made_by is not None]


def unseen_since(record: ForwardRecord, op: ForwardOp) -> int:
    """The largest serial given out up to `op`: a tensor with a larger one was first seen after it."""
    return max(
        (t.serial for o in record.ops[: op.index + 1] for t in (*o.inputs, *o.outputs)),
        default=0,
    )
