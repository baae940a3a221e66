"""Plain records of an opt-in forward record: every torch call seen, with tensor serials, versions and lines."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .why_records import Cause

Shape = tuple[int, ...]


class OpKind(Enum):
    """What a forward call does to the gradient path, so that readers test the kind, never the op's name."""

    CALL = "call"  # an ordinary operation
    DETACH = "detach"  # .detach() / .detach_(): same values, no grad_fn
    DATA = "data"  # .data: the values behind autograd's back
    VALUES = "values"  # .item() / .tolist() / .numpy() / float(t): the values leave torch
    FROM_VALUES = "from-values"  # torch.tensor(...) / as_tensor / new_tensor: a new tensor built from values
    REQUIRES_GRAD = "requires-grad"  # .requires_grad_(flag)
    BACKWARD = "backward"  # Tensor.backward / torch.autograd.backward / torch.autograd.grad


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorSeen:
    """A tensor as one call saw it: never the tensor itself, only what identifies and describes it."""

    serial: int  # the same tensor object has the same serial for the whole record
    version: int  # its version counter (each in-place change adds one)
    requires_grad: bool
    grad_fn: str | None  # the name of its grad_fn node ('MulBackward0'); None for leaves and cut tensors
    dtype: str
    shape: Shape
    made_by: tuple[int, int] | None = None  # inputs: (op index, output position) that last wrote it; None: unseen


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardOp:
    """One torch call made by the user's code, in call order."""

    index: int
    op: str  # 'mul', 'detach', 'data', 'item', 'add_', 'backward', ...
    kind: OpKind
    inputs: tuple[TensorSeen, ...]
    outputs: tuple[TensorSeen, ...]
    grad_enabled: bool
    inference: bool  # inside torch.inference_mode()
    file: str | None = None  # the user's file and line that made the call
    line: int | None = None
    bumped: tuple[tuple[int, int, int], ...] = ()  # inputs changed in place: (serial, version before, after)
    retain_graph: bool | None = None  # backward calls: whether the graph was kept for another pass
    values_from: tuple[int, ...] = ()  # ops whose .item()/.tolist()/.numpy() result this call took as an argument
    output_name: str | None = None  # backward calls: the user's variable holding the output, when one does
    raised: str | None = None  # the exception the call raised ('RuntimeError: ...'), re-raised unchanged

    @property
    def where(self) -> str:
        """'file.py:12', or 'an unknown line'."""
        return f"{self.file}:{self.line}" if self.file is not None else "an unknown line"


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardRecord:
    """Every call seen while the record was open; `dropped` counts calls gradtrace failed to note (never the
    user's failure: the calls themselves ran)."""

    ops: tuple[ForwardOp, ...] = ()
    dropped: int = 0

    @property
    def backward_calls(self) -> list[ForwardOp]:
        return [op for op in self.ops if op.kind is OpKind.BACKWARD]


_FLOATING = ("float", "double", "half", "bfloat16", "complex")


def is_floating(dtype: str) -> bool:
    return dtype.startswith(_FLOATING)


def cut_cause(op: ForwardOp, out: TensorSeen) -> Cause:
    """Why this call's output carries no gradient though an input did."""
    if op.kind is OpKind.DETACH:
        return Cause.DETACH
    if op.kind is OpKind.DATA:
        return Cause.DATA
    if not op.grad_enabled or op.inference:
        return Cause.NO_GRAD
    if op.kind is OpKind.FROM_VALUES:
        return Cause.RECREATED
    if not is_floating(out.dtype):
        return Cause.INTEGER
    return Cause.CUT
