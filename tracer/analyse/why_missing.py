"""Why a tensor's .grad is None, read from a forward record: frozen, a non-leaf, not on any path, or the path
was cut (and where)."""

from __future__ import annotations

from collections.abc import Mapping

from ..model.forward_events import ForwardOp, ForwardRecord, OpKind
from ..model.why_records import Cause, PathStep, TargetFacts, WhyAnswer
from .forward_flow import Cut, Flow, ancestry, chain, flow_from, output_slots, unseen_since
from .why_text import answer_at, op_path_steps, output_name, output_step, target_step

CUT_WORDS = {
    Cause.DETACH: "`.detach()` returns the same values without a grad_fn, so no gradient flows back through it",
    Cause.DATA: "`.data` hands over the values behind autograd's back, so no gradient flows back through it",
    Cause.NO_GRAD: (
        "it ran with gradients turned off (inside `torch.no_grad()` or `torch.inference_mode()`), so its result "
        "has no grad_fn"
    ),
    Cause.RECREATED: (
        "a new tensor was built from the values (`torch.tensor(...)` copies them), so it has no grad_fn and no "
        "link back"
    ),
    Cause.INTEGER: (
        "it gives integers or booleans (argmax, a comparison, .long()), which have no gradient, so the path ends there"
    ),
    Cause.CUT: "it returned a tensor that does not require grad, so the path ends there",
}
FIXES = {
    Cause.DETACH: "drop the `.detach()` if the gradient should flow through it",
    Cause.DATA: "use the tensor itself instead of `.data` (or `.detach()` where no gradient is wanted, said openly)",
    Cause.NO_GRAD: "compute it outside `torch.no_grad()` / `torch.inference_mode()`",
    Cause.RECREATED: "keep the tensor itself (or `torch.stack([...])` for several) instead of `torch.tensor(...)`",
    Cause.INTEGER: (
        "use a differentiable stand-in (softmax instead of argmax, a sigmoid instead of a comparison) if the "
        "gradient should flow"
    ),
    Cause.CUT: "check that this call keeps the graph",
    Cause.VALUES: "keep the computation in tensors (no `.item()` / `.tolist()` / `.numpy()` on the way)",
}


def cut_name(op: ForwardOp, cause: Cause) -> str:
    """The call that cut a path, as the user wrote it: `.detach()`, `.data`, `mul` inside inference_mode."""
    if cause is Cause.NO_GRAD and op.inference:
        return f"`{op.op}` inside `torch.inference_mode()`"
    if op.kind is OpKind.DETACH:
        return f"`.{op.op}()`"
    if op.kind is OpKind.DATA:
        return "`.data`"
    if op.kind is OpKind.FROM_VALUES:
        return f"`.{op.op}(...)`" if op.op == "new_tensor" else f"`torch.{op.op}(...)`"
    return f"`{op.op}`"


_ESCAPED_AS = {"tolist": "a Python list", "numpy": "a numpy array", "__array__": "a numpy array"}


def frozen(facts: TargetFacts, record: ForwardRecord) -> WhyAnswer:
    """requires_grad=False: said where it was turned off, else where the tensor was first used."""
    turned_off = [
        op
        for op in record.ops
        if op.kind is OpKind.REQUIRES_GRAD and any(o.serial == facts.serial and not o.requires_grad for o in op.outputs)
    ]
    made = [op for op in record.ops if any(o.serial == facts.serial for o in op.outputs)]
    used = [op for op in record.ops if any(i.serial == facts.serial for i in op.inputs)]
    at = turned_off[-1] if turned_off else next(iter(made or used), None)
    how = (
        "`.requires_grad_(False)` turned it off"
        if turned_off
        else ("it was created without requires_grad=True" if made else "it does not require grad")
    )
    text = (
        f"{facts.name}.grad is None because {facts.name} has requires_grad=False (a frozen tensor or parameter): "
        f"{how}{'' if at is None else f' at {at.where}'}, so autograd never computes a gradient for it. "
        f"Set {facts.name}.requires_grad_(True) (for a model: leave the parameter unfrozen) to get one."
    )
    return answer_at(facts.name, Cause.FROZEN, text, at, path=(target_step(facts.name, "requires_grad=False"),))


def non_leaf(facts: TargetFacts, record: ForwardRecord) -> WhyAnswer:
    """A non-leaf's .grad is None by design: the line that made it."""
    made = [op for op in record.ops if any(o.serial == facts.serial for o in op.outputs)]
    at = made[0] if made else None
    text = (
        f"{facts.name}.grad is None by design: {facts.name} is not a leaf (it was computed by "
        f"{facts.grad_fn or 'an operation'}{'' if at is None else f' at {at.where}'}), and torch keeps .grad only "
        f"for leaves. Call {facts.name}.retain_grad() before backward to keep it, or ask for it with "
        f"torch.autograd.grad(loss, {facts.name})."
    )
    return answer_at(facts.name, Cause.NON_LEAF, text, at, path=(target_step(facts.name, "non-leaf"),))


def missing(
    facts: TargetFacts, record: ForwardRecord, backward: ForwardOp, names: Mapping[int, str]
) -> WhyAnswer | None:
    """Why a tensor that requires grad got no gradient from `backward`; None when its gradient path reaches
    the output (then the backward pass itself is to be asked)."""
    if facts.serial is None:
        return _unused(facts, record, backward, names, Flow())
    flow = flow_from(record, facts.serial, carries_grad=True)
    starts = output_slots(backward)
    if any(s in flow.grad for s in starts):
        return None
    reach = ancestry(record, starts)
    cuts = [c for c in flow.cuts if (c.op.index, c.position) in reach]
    if cuts:
        return _cut(facts, record, backward, names, cuts)
    round_trip = _round_trip(record, flow, reach)
    if round_trip is not None:
        return _values(facts, record, backward, names, *round_trip)
    return _unused(facts, record, backward, names, flow)


def _cut(
    facts: TargetFacts, record: ForwardRecord, backward: ForwardOp, names: Mapping[int, str], cuts: list[Cut]
) -> WhyAnswer:
    first = cuts[0]
    output = output_name(backward, names)
    text = (
        f"{facts.name}.grad is None because the path from {output} back to {facts.name} was cut by "
        f"{cut_name(first.op, first.cause)} at {first.op.where}: {CUT_WORDS[first.cause]}. "
        f"To fix: {FIXES[first.cause]}."
    )
    also = tuple(f"also cut by {cut_name(c.op, c.cause)} at {c.op.where}" for c in cuts[1:4])
    path = _path(record, backward, names, (first.op.index, first.position), first.op, first.cause, facts.name)
    return answer_at(facts.name, first.cause, text, first.op, path=path, also=also)


def _round_trip(record: ForwardRecord, flow: Flow, reach: set[tuple[int, int]]) -> tuple[ForwardOp, ForwardOp] | None:
    """(where the values left torch, where they came back) when the output depends on them: a call took the very
    number, list or array back, or a tensor was built from values (torch.tensor, as_tensor) or first seen
    (torch.from_numpy) after they left."""
    ops = [record.ops[index] for index in sorted({index for index, _ in reach})]
    escaped = {e.index: e for e in flow.escapes}
    for op in ops:
        back = [escaped[i] for i in op.values_from if i in escaped]
        if back:
            return back[0], op
    for escape in flow.escapes:
        newer = unseen_since(record, escape)
        for op in ops:
            if op.index <= escape.index:
                continue
            if op.kind is OpKind.FROM_VALUES or any(i.made_by is None and i.serial > newer for i in op.inputs):
                return escape, op
    return None


def _values(
    facts: TargetFacts,
    record: ForwardRecord,
    backward: ForwardOp,
    names: Mapping[int, str],
    escape: ForwardOp,
    rebuilt: ForwardOp,
) -> WhyAnswer:
    output = output_name(backward, names)
    form = _ESCAPED_AS.get(escape.op, "plain numbers")
    if rebuilt.kind is OpKind.FROM_VALUES:
        back = f"the tensor built from them again at {rebuilt.where} (`{rebuilt.op}`) has no link back"
    elif rebuilt.values_from:  # the very number or list was passed back in
        back = f"they came back into `{rebuilt.op}` at {rebuilt.where} with no link back"
    else:  # a tensor first seen then (torch.from_numpy)
        back = f"the tensor made from them again (first used by `{rebuilt.op}` at {rebuilt.where}) has no link back"
    text = (
        f"{facts.name}.grad is None because the path from {output} back to {facts.name} was cut by "
        f"`.{escape.op}()` at {escape.where}: the values left torch as {form}, and {back}. "
        f"To fix: {FIXES[Cause.VALUES]}."
    )
    path = _path(record, backward, names, (rebuilt.index, 0), escape, Cause.VALUES, facts.name)
    also = (f"the values came back at {rebuilt.where} (`{rebuilt.op}`)",)
    return answer_at(facts.name, Cause.VALUES, text, escape, path=path, also=also)


def _unused(
    facts: TargetFacts, record: ForwardRecord, backward: ForwardOp, names: Mapping[int, str], flow: Flow
) -> WhyAnswer:
    output = output_name(backward, names)
    starts = output_slots(backward)
    made = record.ops[starts[0][0]] if starts else backward
    uses = [op for op in flow.uses if any(o.serial != facts.serial for o in op.outputs)]  # not init, not steps
    left = f"; values from it left torch at {flow.escapes[0].where} (`.{flow.escapes[0].op}()`)" if flow.escapes else ""
    used = (
        f" It is used at {uses[0].where} (`{uses[0].op}`), but nothing computed from it reaches {output}{left}."
        if uses
        else f" No recorded operation used {facts.name} (a parameter the forward skips, or a branch not taken)."
    )
    text = (
        f"{facts.name}.grad is None because {facts.name} is not on any path from {output}: {output} (computed at "
        f"{made.where}) does not depend on it.{used}"
    )
    path = (
        output_step(output, made),
        PathStep(node="not used", op=f"{output} does not depend on {facts.name}", kind="cut", note="unused"),
        target_step(facts.name, ".grad is None"),
    )
    return answer_at(facts.name, Cause.UNUSED, text, made, path=path)


def _path(
    record: ForwardRecord,
    backward: ForwardOp,
    names: Mapping[int, str],
    goal: tuple[int, int],
    cut_at: ForwardOp,
    cause: Cause,
    target: str,
) -> tuple[PathStep, ...]:
    """The output, the calls between it and the cut (as their backward nodes), the cut, the target."""
    starts = output_slots(backward)
    ops: list[ForwardOp] = []
    for start in starts:
        ops = chain(record, start, goal)
        if ops:
            break
    between = [op for op in ops[1:] if op.index != cut_at.index and op.index != goal[0]]
    if ops and goal[0] != cut_at.index:  # values round trip: the re-creating call is on the path too
        between.append(record.ops[goal[0]])
    first = record.ops[starts[0][0]] if starts else backward
    return (
        output_step(output_name(backward, names), first),
        *op_path_steps(between),
        PathStep(
            node=cut_name(cut_at, cause).strip("`"), op=cause.value, file=cut_at.file, line=cut_at.line, kind="cut"
        ),
        target_step(target, ".grad is None"),
    )
