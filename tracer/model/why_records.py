"""Plain records of a `why` question and its answer: what the target tensor is, the cause, the line, the path."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

Shape = tuple[int, ...]
GradState = Literal["none", "zero", "some"]


class Cause(Enum):
    """Why a gradient is None, zero or broken; readers test the cause, never the wording of the explanation."""

    REACHED = "reached"  # not a problem: the gradient arrived (the answer shows its path)
    UNUSED = "unused"  # not on any path from the output (an unused parameter, a branch not taken)
    DETACH = "detach"  # the path was cut by .detach()
    NO_GRAD = "no-grad"  # ... by an op run under torch.no_grad() / torch.inference_mode()
    DATA = "data"  # ... by .data
    VALUES = "values"  # ... by .item() / .tolist() / .numpy(), the values coming back as a new tensor
    RECREATED = "recreated"  # ... by a tensor re-created from values (torch.tensor(t), torch.tensor([a, b]))
    INTEGER = "integer"  # ... by an integer or boolean op (argmax, comparisons, .long())
    CUT = "cut"  # ... by some other op that returned a tensor without grad
    FROZEN = "frozen"  # requires_grad=False
    NON_LEAF = "non-leaf"  # a non-leaf without retain_grad(): .grad is None by design
    DEAD_RELU = "dead-relu"  # zero but present: a ReLU whose inputs were all negative
    MASK = "mask"  # ... multiplied by (or filled through) a mask that is zero there
    WHERE = "where"  # ... a torch.where that took the other branch
    CLAMP = "clamp"  # ... a clamp at its bound
    STEP = "step"  # ... a piecewise-constant op (round, floor, sign): its derivative is zero
    ZERO = "zero"  # ... some other node sent zeros
    NOT_RUN = "not-run"  # no backward pass ran (after the target was used)
    INPLACE = "inplace"  # error: a saved tensor was modified by an in-place operation
    SECOND_BACKWARD = "second-backward"  # error: backward through a graph already freed
    NO_GRAD_FN = "no-grad-fn"  # error: the output does not require grad and has no grad_fn


ZERO_CAUSES = frozenset({Cause.DEAD_RELU, Cause.MASK, Cause.WHERE, Cause.CLAMP, Cause.STEP, Cause.ZERO})
ERROR_CAUSES = frozenset({Cause.INPLACE, Cause.SECOND_BACKWARD, Cause.NO_GRAD_FN})


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetFacts:
    """The tensor asked about, as it is after the user's code ran: never the tensor itself."""

    name: str
    serial: int | None  # its serial in the forward record; None: no recorded call used it
    shape: Shape
    dtype: str
    is_leaf: bool
    requires_grad: bool
    retains_grad: bool
    grad_fn: str | None
    grad: GradState  # .grad is None, all zeros, or holds something non-zero
    zero_share: float | None = None  # share of .grad's elements that are zero


@dataclass(frozen=True, slots=True, kw_only=True)
class PathStep:
    """One stop on the way from the output towards the target: a backward node, the cut, or the target."""

    node: str  # 'MulBackward0', 'detach', 'w'
    op: str  # the forward operation in plain words
    file: str | None = None
    line: int | None = None
    kind: Literal["output", "node", "cut", "target"] = "node"
    note: str | None = None  # e.g. '100% of the gradient it sent is zero'


@dataclass(frozen=True, slots=True, kw_only=True)
class WhyAnswer:
    """Why `target` got no (or a zero) gradient, or why backward raised: the cause, its line, the path."""

    target: str  # the name asked about, or the output for an error
    cause: Cause
    explanation: str  # plain words, with the line
    file: str | None = None  # the user's line that caused it
    line: int | None = None
    code: str | None = None  # that line's text
    node: str | None = None  # the backward node involved ('ReluBackward0', 'SigmoidBackward0')
    share: float | None = None  # zero but present: the share of the gradient's elements that are zero
    path: tuple[PathStep, ...] = ()  # from the output towards the target, ending where it was cut
    also: tuple[str, ...] = ()  # further lines worth a look ('re-created at file.py:9')
    error: str | None = None  # the error explained, first line

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file is not None and self.line is not None else "an unknown line"

    @property
    def text(self) -> str:
        """The answer as a person reads it: the explanation, then the lines worth a look."""
        lines = [self.explanation]
        if self.code is not None:
            lines.append(f"    {self.line} | {self.code}")
        lines += [f"  {note}" for note in self.also]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class StubCause:
    """Why a node's forward input needed no gradient (a dashed "no grad" stub of the picture): the cause and the
    user's line that cut it, read from a forward record (`record(forward=True)`)."""

    step: int  # the node's id in the trace
    edge: int  # which of its next edges has no target
    cause: Cause
    cut: str  # the call that cut it, as the user wrote it: '.detach()', 'mul under torch.no_grad()', 'argmax'
    file: str | None = None
    line: int | None = None

    @property
    def where(self) -> str | None:
        """'file.py:12' (the file's base name), or None when the line is unknown."""
        if self.file is None or self.line is None:
            return None
        return f"{self.file.replace(chr(92), '/').rsplit('/', 1)[-1]}:{self.line}"
