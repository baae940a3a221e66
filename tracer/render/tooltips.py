"""The full details behind every node and edge (all statistics, shapes, dtypes, source lines, notes) as lines
of text: they become SVG <title> tooltips."""

from __future__ import annotations

from ..analyse.health import check_cannot_judge
from ..analyse.naming import output_title, step_label, step_ref
from ..model.format import brief, details, number, shape_text
from ..model.records import Leaf, Seed, Step, TensorInfo
from ..model.why_records import StubCause
from .escape import basename_source
from .scene import Scene

DETAIL_PRECISION = 8  # tooltips show more digits than labels


def _indented(scene: Scene, info: TensorInfo | None) -> list[str]:
    """A tensor's details, indented; cached per scene because one gradient shows up in up to three tooltips
    (the sender's vᵀJ, the edge, the receiver's v)."""
    cached = scene.details.get(info)
    if cached is None:
        if scene.compact:  # large graphs: one line per tensor keeps the SVG small
            cached = ["  " + brief(info, DETAIL_PRECISION)]
        else:
            cached = ["  " + line for line in details(info, DETAIL_PRECISION)]
        scene.details[info] = cached
    return cached


def trace(scene: Scene) -> list[str]:
    """The whole pass: how it was run, and what stopped it or could not be recorded."""
    t = scene.trace
    o = t.options
    lines = [f"{t.kind} pass {t.index}: {len(t.steps)} steps run, {len(t.unexecuted)} nodes not run"]
    source = basename_source(t.source)
    if source:
        lines.append(f"started at {source}")
    lines.append(
        f"retain_graph={o.retain_graph} · create_graph={o.create_graph} · capture={o.capture} · "
        f"max_values={o.max_values} · jacobian_limit={o.jacobian_limit}"
    )
    if o.inputs is not None:
        lines.append("inputs=" + ", ".join(o.inputs))
    if not t.complete:
        lines.append(f"incomplete: {t.error or 'the pass stopped early'}")
    lines += [f"note: {note}" for note in t.notes]
    return lines


def seed(scene: Scene, s: Seed) -> list[str]:
    lines = [f"seed v for {output_title(s)} (output {s.index}): {shape_text(s.shape)} {s.dtype}"]
    if s.implicit:
        lines.append("gradient=None: torch made v = 1 (only a one-element output gets one automatically)")
    elif s.implicit is False:
        lines.append("v given as gradient=")
    lines.append(f"enters {scene.ref(s.target)}" if s.target is not None else "enters no node (output needs no grad)")
    return [*lines, "v:", *_indented(scene, s.v)]


def step(scene: Scene, n: Step) -> list[str]:
    lines = [f"{step_ref(n)}: {n.name}" + ("" if n.executed else " (not run)")]
    lines.append(f"forward: {n.op}")
    source = basename_source(n.source)
    if source:
        lines.append(f"source: {source}")
    if n.module:
        lines.append(f"module: {n.module}")
    for k, v in enumerate(n.v):
        parts = scene.incoming.get((n.id, k), [])
        senders = ", ".join(scene.origin(p) for p in parts) or "nothing"
        lines += [f"v[{k}] (gradient arriving for forward output {k}, from {senders}):", *_indented(scene, v)]
    if not n.v:  # a node that raised never reported its v: what was sent to it
        for (target, slot), parts in sorted(scene.incoming.items()):
            if target == n.id:
                for part in parts:
                    lines += [f"v[{slot}] sent by {scene.origin(part)}:", *_indented(scene, part.grad)]
    j = n.jacobian
    if j is not None:
        r, c = j.size
        lines.append(f"local Jacobian J: {r}×{c} (rows: v's elements, columns: vᵀJ's elements; by {_method(n)})")
    if n.check is not None and check_cannot_judge(n):
        lines.append("check vᵀJ = v·J: not checked: v holds Inf/NaN, and Inf·0 in v·J is NaN")
    elif n.check is not None:
        verdict = "ok" if n.check.ok else "FAILED"
        lines.append(
            f"check vᵀJ = v·J: {verdict} (max error {number(n.check.max_error, 3)}, "
            f"tolerance {number(n.check.tolerance, 3)})"
        )
    for k, _ in enumerate(n.edges):
        g = n.vjp[k] if k < len(n.vjp) else None
        lines += [f"vᵀJ[{k}] → {scene.target_text(n, k)}:", *_indented(scene, g)]
    if n.leaf is not None and n.leaf in scene.trace.leaves:
        lines += leaf(scene, scene.trace.leaves[n.leaf])
    for extra in scene.extra_leaves.get(n.id, ()):
        lines += leaf(scene, extra)
    if n.note:
        lines.append(f"note: {n.note}")
    return lines


def _method(n: Step) -> str:
    return n.check.method if n.check is not None else "one-hot"


def leaf(scene: Scene, x: Leaf) -> list[str]:
    lines = [f"{x.kind} {x.name}: {shape_text(x.shape)} {x.dtype}"]
    if x.value is not None:
        lines += ["value:", *_indented(scene, x.value)]
    if x.grad is None:
        return [*lines, f"no gradient: {x.reason or 'none arrived'}"]
    lines += ["gradient of this pass:", *_indented(scene, x.grad)]
    if x.grad_before is not None or x.grad_total is not None:
        lines += [".grad before:", *_indented(scene, x.grad_before), ".grad after:", *_indented(scene, x.grad_total)]
    return lines


def edge(scene: Scene, n: Step, k: int) -> list[str]:
    e = n.edges[k]
    g = n.vjp[k] if k < len(n.vjp) else None
    head = f"{step_label(n)} → {scene.target_text(n, k)}"
    if e.target is None:
        return [
            head,
            f"forward input {k} of {n.name} needs no gradient (a constant, a .detach()ed tensor, or made under "
            "torch.no_grad()), so nothing is sent there",
        ]
    if not n.executed:
        return [head, "not run: no gradient was computed along this edge"]
    return [head, f"vᵀJ[{k}], into slot {e.input_nr} of the target:", *_indented(scene, g)]


def seed_edge(scene: Scene, s: Seed) -> list[str]:
    target = scene.ref(s.target) if s.target is not None else "nothing"
    return [f"seed v for {output_title(s)} → {target}", *_indented(scene, s.v)]


def constant(n: Step, k: int, stub: StubCause | None = None) -> list[str]:
    head = f"input {k} of {n.name} (step {n.id}) needs no gradient"
    if stub is None:
        return [
            head,
            "a constant, a .detach()ed tensor, or something computed under torch.no_grad(): the path is cut here",
        ]
    return [head, f"cut by {stub.cut} ({stub.cause.value}) at {stub.where or 'an unknown line'}"]


def unreached(scene: Scene, x: Leaf) -> list[str]:
    return leaf(scene, x)
