"""Why backward raised, read from the forward record (and the failed pass): the in-place change that bumped a
saved tensor's version, the earlier pass that freed the graph, or where the output lost its grad_fn."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..model.forward_events import ForwardOp, ForwardRecord, OpKind, TensorSeen, cut_cause
from ..model.records import NoteKind, Trace
from ..model.why_records import Cause, PathStep, WhyAnswer
from .forward_flow import ancestry, chain, output_slots
from .why_missing import CUT_WORDS, cut_name
from .why_text import answer_at, node_of, op_path_steps, output_name, output_step

INPLACE = "modified by an inplace operation"
SECOND = "backward through the graph a second time"
NO_GRAD_FN = "does not require grad and does not have a grad_fn"
KNOWN = (INPLACE, SECOND, NO_GRAD_FN)

_BACKWARD = re.compile(r"Backward\d*$")
_VERSION = re.compile(
    r"\[torch\.\w+ \[([\d, ]*)\]\](?:, which is output (\d+) of (\w+),)? is at version (\d+); "
    r"expected version (\d+) instead"
)


def is_known(message: str) -> bool:
    return any(k in message for k in KNOWN)


def explain_error(
    record: ForwardRecord, failed: ForwardOp, traces: Sequence[Trace], names: Mapping[int, str]
) -> WhyAnswer | None:
    """The answer for the backward call `failed` (which raised); None for an error we do not explain."""
    message = failed.raised or ""
    if INPLACE in message:
        return _inplace(record, failed, traces, names)
    if SECOND in message:
        return _second(record, failed, names)
    if NO_GRAD_FN in message:
        return _no_grad_fn(record, failed, names)
    return None


def _name(seen: TensorSeen, names: Mapping[int, str]) -> str:
    named = names.get(seen.serial)
    shape = "×".join(str(d) for d in seen.shape) or "scalar"
    return f"`{named}`" if named else f"a {shape} {seen.dtype} tensor"


def _inplace(
    record: ForwardRecord, failed: ForwardOp, traces: Sequence[Trace], names: Mapping[int, str]
) -> WhyAnswer | None:
    match = _VERSION.search(failed.raised or "")
    if match is None:
        return None
    shape = tuple(int(p) for p in match.group(1).split(",") if p.strip())
    made_by_node, expected = match.group(3), int(match.group(5))
    reach = ancestry(record, output_slots(failed))
    in_graph = {i.serial for index, _ in reach for i in record.ops[index].inputs} | {
        record.ops[i].outputs[p].serial for i, p in reach if p < len(record.ops[i].outputs)
    }
    candidates: list[tuple[ForwardOp, TensorSeen]] = []
    for op in record.ops[: failed.index]:
        for serial, before, _ in op.bumped:
            seen = next((i for i in op.inputs if i.serial == serial), None)
            if seen is None or before != expected or seen.shape != shape:
                continue
            if made_by_node is not None and not _same_node(seen.grad_fn, made_by_node):
                continue
            candidates.append((op, seen))
    if not candidates:
        return None
    bump, seen = next(((o, s) for o, s in candidates if s.serial in in_graph), candidates[0])
    creator = None if seen.made_by is None else record.ops[seen.made_by[0]]
    node = _raised_node(traces)
    saver = _saver(record, bump, seen, expected, creator, node)
    needer = node or (node_of(saver) if saver is not None else "a backward node")
    made = f" (the result of `{creator.op}` at {creator.where})" if creator is not None else ""
    saved = f" (from `{saver.op}` at {saver.where})" if saver is not None else ""
    text = (
        f"backward failed because {_name(seen, names)}{made} was changed in place by `{bump.op}` at {bump.where}, "
        f"after {needer}{saved} had saved it for the backward pass: its version went from {expected} to "
        f"{expected + 1}, and {needer} needs the old value. Use the out-of-place form (x = x + 1 rather than "
        f"x += 1 or x.{bump.op}(...)), or .clone() it before changing it."
    )
    also = (f"{needer} comes from `{saver.op}` at {saver.where}",) if saver is not None else ()
    path = (
        PathStep(
            node=needer,
            op="needs the old value",
            file=None if saver is None else saver.file,
            line=None if saver is None else saver.line,
        ),
        PathStep(
            node=bump.op,
            op=f"in-place: version {expected} → {expected + 1}",
            file=bump.file,
            line=bump.line,
            kind="cut",
        ),
    )
    return answer_at(
        _name(seen, names).strip("`"),
        Cause.INPLACE,
        text,
        bump,
        path=path,
        also=also,
        node=needer,
        error=failed.raised,
    )


def _saver(
    record: ForwardRecord,
    bump: ForwardOp,
    seen: TensorSeen,
    expected: int,
    creator: ForwardOp | None,
    node: str | None,
) -> ForwardOp | None:
    """The call whose backward node saved the tensor at the expected version: the node that raised (its creator,
    which saved its own result, or a call that took it as input), else the last such call."""
    users = [
        op
        for op in record.ops[: bump.index]
        if any(i.serial == seen.serial and i.version == expected for i in op.inputs)
        and any(o.grad_fn is not None for o in op.outputs)
    ]
    if node is not None:
        if creator is not None and node_of(creator) == node:
            return creator
        named = [op for op in users if node_of(op) == node]
        if named:
            return named[-1]
    return users[-1] if users else creator


def _same_node(grad_fn: str | None, named: str) -> bool:
    """torch names the node in this message as 'SigmoidBackward0' or, since 2.x, as the op 'Sigmoid'."""
    return grad_fn is not None and (grad_fn == named or _BACKWARD.sub("", grad_fn) == named)


def _raised_node(traces: Sequence[Trace]) -> str | None:
    """The backward node that raised in the last failed pass."""
    for trace in reversed(traces):
        if trace.complete:
            continue
        return next((s.name for s in trace.nodes if s.note_kind is NoteKind.RAISED), None)
    return None


def _second(record: ForwardRecord, failed: ForwardOp, names: Mapping[int, str]) -> WhyAnswer | None:
    mine = {s for s in ancestry(record, output_slots(failed)) if _has_graph(record, s)}
    earlier = [
        op
        for op in record.backward_calls
        if op.index < failed.index
        and op.raised is None
        and not op.retain_graph
        and mine & {s for s in ancestry(record, output_slots(op)) if _has_graph(record, s)}
    ]
    if not earlier:
        return None
    freed = earlier[-1]
    text = (
        f"backward at {failed.where} failed because the backward call at {freed.where} already went through "
        f"this graph and freed what it saved (it ran without retain_graph=True). Pass retain_graph=True to the "
        f"call at {freed.where} if the graph is needed again, or recompute the forward before the second backward."
    )
    path = (
        PathStep(
            node=f"{freed.op} #1",
            op="freed the graph",
            file=freed.file,
            line=freed.line,
            kind="cut",
            note="graph freed",
        ),
        PathStep(node=f"{failed.op} #2", op="needed it again", file=failed.file, line=failed.line, kind="output"),
    )
    also = (f"the failing call: {failed.where}",)
    return answer_at(
        output_name(failed, names), Cause.SECOND_BACKWARD, text, freed, path=path, also=also, error=failed.raised
    )


def _has_graph(record: ForwardRecord, slot: tuple[int, int]) -> bool:
    outputs = record.ops[slot[0]].outputs
    return slot[1] < len(outputs) and outputs[slot[1]].grad_fn is not None


def _no_grad_fn(record: ForwardRecord, failed: ForwardOp, names: Mapping[int, str]) -> WhyAnswer:
    starts = output_slots(failed)
    reach = ancestry(record, starts)
    output = output_name(failed, names)
    for index, position in sorted(reach, reverse=True):  # the cut nearest the output is where it lost grad_fn
        op = record.ops[index]
        out = op.outputs[position] if position < len(op.outputs) else None
        if out is None or out.requires_grad or op.kind is OpKind.BACKWARD:
            continue
        if any(i.requires_grad for i in op.inputs):
            cause = cut_cause(op, out)
            text = (
                f"backward failed because {output} has no grad_fn: it lost it at {op.where}, where "
                f"{cut_name(op, cause)} cut the path: {CUT_WORDS[cause]}. Everything computed from there on has no "
                "graph to go back through."
            )
            ops = chain(record, starts[0], (index, position)) if starts else []
            path = (
                output_step(output, record.ops[starts[0][0]] if starts else None),
                *op_path_steps(ops[1:-1]),
                PathStep(node=cut_name(op, cause).strip("`"), op=cause.value, file=op.file, line=op.line, kind="cut"),
            )
            return answer_at(output, Cause.NO_GRAD_FN, text, op, path=path, node=cause.value, error=failed.raised)
    made = record.ops[starts[0][0]] if starts else failed
    text = (
        f"backward failed because {output} (computed at {made.where}) has no grad_fn: nothing it was computed "
        "from requires grad. Create the inputs (or parameters) with requires_grad=True before computing it."
    )
    return answer_at(output, Cause.NO_GRAD_FN, text, made, path=(output_step(output, made),), error=failed.raised)
