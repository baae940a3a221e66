"""The pieces every why answer is built from: the answer at a recorded call's line (with that line's text), and
the steps of its path."""

from __future__ import annotations

import linecache
from collections.abc import Iterable, Mapping

from ..model.forward_events import ForwardOp
from ..model.why_records import Cause, PathStep, WhyAnswer


def code_at(file: str | None, line: int | None) -> str | None:
    """The text of the user's line, when its file can be read."""
    if file is None or line is None:
        return None
    text = linecache.getline(file, line).strip()
    return text or None


def answer_at(
    target: str,
    cause: Cause,
    explanation: str,
    op: ForwardOp | None,
    *,
    path: tuple[PathStep, ...] = (),
    also: tuple[str, ...] = (),
    node: str | None = None,
    share: float | None = None,
    error: str | None = None,
) -> WhyAnswer:
    file, line = (None, None) if op is None else (op.file, op.line)
    return at_line(target, cause, explanation, file, line, path=path, also=also, node=node, share=share, error=error)


def at_line(
    target: str,
    cause: Cause,
    explanation: str,
    file: str | None,
    line: int | None,
    *,
    path: tuple[PathStep, ...] = (),
    also: tuple[str, ...] = (),
    node: str | None = None,
    share: float | None = None,
    error: str | None = None,
) -> WhyAnswer:
    return WhyAnswer(
        target=target,
        cause=cause,
        explanation=explanation,
        file=file,
        line=line,
        code=code_at(file, line),
        node=node,
        share=share,
        path=path,
        also=also,
        error=error,
    )


def node_of(op: ForwardOp) -> str:
    """The backward node a call made (its first output's grad_fn), else the call's name."""
    return next((o.grad_fn for o in op.outputs if o.grad_fn is not None), op.op)


NO_GRAD_FN = "no grad_fn"  # the note of a call on the path that ran on values already cut off


def op_path_steps(ops: Iterable[ForwardOp]) -> list[PathStep]:
    """The calls as path stops: their backward node, or, for a call whose result has none (it ran on values
    already cut off), the call itself, noted."""
    return [
        PathStep(node=node_of(op), op=op.op, file=op.file, line=op.line)
        if any(o.grad_fn is not None for o in op.outputs)
        else PathStep(node=op.op, op="", file=op.file, line=op.line, note=NO_GRAD_FN)
        for op in ops
    ]


def output_step(name: str, made_by: ForwardOp | None) -> PathStep:
    if made_by is None:
        return PathStep(node=name, op="the output", kind="output")
    return PathStep(
        node=name, op=f"{node_of(made_by)} ({made_by.op})", file=made_by.file, line=made_by.line, kind="output"
    )


def target_step(name: str, note: str) -> PathStep:
    return PathStep(node=name, op="the tensor asked about", kind="target", note=note)


def output_name(backward: ForwardOp, names: Mapping[int, str]) -> str:
    """The output a backward call started from, by its variable's name when known."""
    named = next((names[i.serial] for i in backward.inputs if i.serial in names), None)
    return named or backward.output_name or "the output"
