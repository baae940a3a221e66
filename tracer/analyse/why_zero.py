"""Why a gradient arrived as zeros (or partly zeros), read from a recorded backward pass: the node that turned a
non-zero gradient into zeros, what kind of node it is, the share of zero elements, and the path it lies on."""

from __future__ import annotations

import itertools
from collections import deque

from ..model.forward_events import ForwardOp
from ..model.records import Leaf, Step, TensorInfo, Trace
from ..model.why_records import Cause, PathStep, TargetFacts, WhyAnswer
from .why_text import at_line, target_step

ZERO_NODES = {
    "ReluBackward0": Cause.DEAD_RELU,
    "ThresholdBackward0": Cause.DEAD_RELU,
    "ThresholdBackward1": Cause.DEAD_RELU,
    "MulBackward0": Cause.MASK,
    "MaskedFillBackward0": Cause.MASK,
    "WhereBackward0": Cause.WHERE,
    "ClampBackward0": Cause.CLAMP,
    "ClampBackward1": Cause.CLAMP,
    "ClampMinBackward0": Cause.CLAMP,
    "ClampMaxBackward0": Cause.CLAMP,
    "HardtanhBackward0": Cause.CLAMP,
    "RoundBackward0": Cause.STEP,
    "RoundBackward1": Cause.STEP,
    "FloorBackward0": Cause.STEP,
    "CeilBackward0": Cause.STEP,
    "SignBackward0": Cause.STEP,
    "TruncBackward0": Cause.STEP,
}
ZERO_WORDS = {
    Cause.DEAD_RELU: "a ReLU whose inputs were ≤ 0 there lets no gradient through (a dead ReLU); check the "
    "pre-activations (bias, initialisation, learning rate) or use LeakyReLU",
    Cause.MASK: "it multiplies by (or fills through) a mask that is zero there, so the gradient is zero there too",
    Cause.WHERE: "torch.where took the other branch there, so this side gets zero gradient",
    Cause.CLAMP: "the clamp is at its bound there, where its derivative is zero",
    Cause.STEP: "it is piecewise constant (round, floor, sign), so its derivative is zero everywhere",
    Cause.ZERO: "its local derivative is zero there",
}


_GRAD_NOTES = {"zero": ".grad is all zeros", "some": "got its gradient", "none": ".grad is None"}


def leaf_of(trace: Trace, facts: TargetFacts) -> Leaf | None:
    """The target's leaf in the pass: by name, else the one leaf of its shape and dtype."""
    leaf = trace.leaves.get(facts.name)
    if leaf is not None:
        return leaf
    same = [v for v in trace.leaves.values() if v.shape == facts.shape and v.dtype == facts.dtype]
    return same[0] if len(same) == 1 else None


def _zeros(info: TensorInfo | None) -> float:
    if info is None:
        return 1.0
    return 1.0 if info.stats is None else info.stats.zeros


def _reaching(trace: Trace, goal: int) -> set[int]:
    """Every node with a path to `goal` (itself included)."""
    parents: dict[int, list[int]] = {}
    for node, _, edge, _ in trace.edges():
        if edge.target is not None:
            parents.setdefault(edge.target, []).append(node.id)
    seen, pending = {goal}, deque([goal])
    while pending:
        for p in parents.get(pending.popleft(), []):
            if p not in seen:
                seen.add(p)
                pending.append(p)
    return seen


def _zeroing(trace: Trace, reaching: set[int], goal: int) -> tuple[Step, float] | None:
    """The executed node that adds the most zeros to the gradient on its way to `goal`: (node, share of zeros in
    what it sends on)."""
    best: tuple[float, Step, float] | None = None
    for step in trace.steps:
        if step.id == goal or step.id not in reaching:
            continue
        arriving = [v for v in step.v if v is not None]
        if not arriving:
            continue
        before = min(_zeros(v) for v in arriving)
        for k, edge in enumerate(step.edges):
            if edge.target is None or edge.target not in reaching:
                continue
            after = _zeros(step.vjp[k] if k < len(step.vjp) else None)
            if after > before and (best is None or after - before > best[0]):
                best = (after - before, step, after)
    return None if best is None else (best[1], best[2])


def _route(trace: Trace, reaching: set[int], via: int | None, goal: int) -> list[Step]:
    """Nodes from the seed to `goal` (through `via` when given), shortest first."""
    starts = [s.target for s in trace.seeds if s.target is not None and s.target in reaching]
    if not starts:
        return []
    legs = [starts[0], *([via] if via is not None else []), goal]
    nodes: list[int] = []
    for a, b in itertools.pairwise(legs):
        leg = _shortest(trace, a, b)
        nodes += leg if not nodes else leg[1:]
    return [trace.node(n) for n in nodes]


def _shortest(trace: Trace, a: int, b: int) -> list[int]:
    parents: dict[int, int | None] = {a: None}
    pending = deque([a])
    while pending:
        n = pending.popleft()
        if n == b:
            path: list[int] = []
            cur: int | None = n
            while cur is not None:
                path.append(cur)
                cur = parents[cur]
            return list(reversed(path))
        for edge in trace.node(n).edges:
            if edge.target is not None and edge.target not in parents:
                parents[edge.target] = n
                pending.append(edge.target)
    return [a]


def _place(step: Step, forward: list[ForwardOp]) -> tuple[str | None, int | None]:
    """The forward line of a node: its recorded source, else the recorded call that made a node of its name."""
    if step.source is not None and ":" in step.source:
        file, _, line = step.source.rpartition(":")
        if line.isdigit():
            return file, int(line)
    made = [op for op in forward if any(o.grad_fn == step.name for o in op.outputs)]
    return (made[-1].file, made[-1].line) if made else (None, None)


def zero_or_reached(
    facts: TargetFacts, trace: Trace, backward: ForwardOp | None, output: str, uses: list[ForwardOp]
) -> WhyAnswer | None:
    """The answer for a target whose gradient arrived (zero or not); None when the pass has no leaf for it.
    `uses`: the recorded calls on its gradient path (to place a node at its forward line); a gradient that
    arrived is answered at the line of `backward`, the call that delivered it."""
    leaf = leaf_of(trace, facts)
    if leaf is None or leaf.node is None:
        return None
    reaching = _reaching(trace, leaf.node)
    zeroing = _zeroing(trace, reaching, leaf.node)
    route = _route(trace, reaching, None if zeroing is None else zeroing[0].id, leaf.node)
    path = (*(_path_step(s, uses, zeroing) for s in route[:-1]), target_step(facts.name, _GRAD_NOTES[facts.grad]))
    if route:
        start = PathStep(node=output, op="the output", kind="output")
        if backward is not None:  # where the pass started from it
            start = PathStep(node=output, op=f".{backward.op}()", file=backward.file, line=backward.line, kind="output")
        path = (start, *path)
    if facts.grad == "zero":
        if zeroing is None:
            text = (
                f"{facts.name}.grad is all zeros: the gradient reached it as zeros all the way from {output} "
                "(the seed v, or every path's gradient, is zero)"
            )
            return at_line(facts.name, Cause.ZERO, text, None, None, path=path, share=1.0)
        step, share = zeroing
        cause = ZERO_NODES.get(step.name, Cause.ZERO)
        file, line = _place(step, uses)
        where = f"{file}:{line}" if file is not None else "an unknown line"
        text = (
            f"{facts.name}.grad is all zeros: {step.name} (`{step.op.split('(')[0]}`) at {where} sent zeros for "
            f"{share:.0%} of the elements of the gradient on the way to {facts.name}: {ZERO_WORDS[cause]}."
        )
        return at_line(facts.name, cause, text, file, line, path=path, node=step.name, share=share)
    norm = None if leaf.grad is None else leaf.grad.norm
    got = f"a gradient (norm {norm:.4g})" if norm is not None else "a gradient"
    chain = " → ".join([output, *(s.name for s in route[:-1]), facts.name]) if route else output
    text = f"{facts.name} got {got} from {output}, along {chain}."
    also: tuple[str, ...] = ()
    if facts.zero_share and zeroing is not None:
        step, share = zeroing
        file, line = _place(step, uses)
        cause = ZERO_NODES.get(step.name, Cause.ZERO)
        also = (
            f"{facts.zero_share:.0%} of {facts.name}.grad is zero; most zeros come from {step.name} at "
            f"{file}:{line} ({share:.0%} of what it sent): {ZERO_WORDS[cause]}",
        )
    file, line = (None, None) if backward is None else (backward.file, backward.line)
    return at_line(facts.name, Cause.REACHED, text, file, line, path=path, also=also)


def _path_step(step: Step, uses: list[ForwardOp], zeroing: tuple[Step, float] | None) -> PathStep:
    file, line = _place(step, uses)
    note = None
    if zeroing is not None and zeroing[0].id == step.id:
        note = f"{zeroing[1]:.0%} zeros sent"
    return PathStep(node=step.name, op=step.op, file=file, line=line, note=note)
