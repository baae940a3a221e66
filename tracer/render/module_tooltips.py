"""The full details behind the module view's boxes and edges, as lines of text for SVG tooltips."""

from __future__ import annotations

from ..analyse.flow_norm import FlowNorm
from ..analyse.module_view import Box, Crossing, Flow, RunBox
from ..model.format import number, shape_text

PRECISION = 8  # tooltips show more digits than labels
LISTED = 24  # crossings, parameters and edge parts listed before '… n more'


def _norm(f: FlowNorm) -> str:
    return f.text(PRECISION)


def _listed(lines: list[str]) -> list[str]:
    if len(lines) <= LISTED:
        return lines
    return [*lines[:LISTED], f"  … {len(lines) - LISTED} more"]


def _crossings(crossings: tuple[Crossing, ...]) -> list[str]:
    lines = []
    for c in crossings:
        shape = "" if c.shape is None else f" {shape_text(c.shape)}"
        senders = ", ".join(c.senders[:4]) + (f" and {len(c.senders) - 4} more" if len(c.senders) > 4 else "")
        lines.append(f"  into node {c.node} slot {c.slot}{shape} from {senders}: ‖·‖ {_norm(c.norm)}")
    return _listed(lines)


def marks(norms: list[FlowNorm]) -> list[str]:
    """What ≈ and ≤ mean, when one of the numbers carries them."""
    out = []
    if any(f.approx and not f.bound for f in norms):
        out.append(
            "≈: the norm of a large intermediate gradient was estimated from a 1,024-element sample "
            "(capture='auto'); record with capture='stats' for exact norms"
        )
    if any(f.bound for f in norms):
        out.append(
            "≤: several gradients summed into one tensor whose values were not kept: the sum of their norms "
            "(an upper bound) is shown; capture='full' keeps the values"
        )
    return out


def box(b: Box) -> list[str]:
    name = b.path or "(model)"
    what = "the operations of" if b.own else "module"
    lines = [f"{what} {name} ({b.cls}): {b.node_count} backward node{'s' if b.node_count != 1 else ''}"]
    if b.shown != b.node_count:
        lines.append(f"{b.shown} of them lie on the focused paths")
    if b.not_run:
        lines.append(f"{b.not_run} node{'s' if b.not_run != 1 else ''} did not run")
    if b.cut:
        lines.append(f"{b.cut} input{'s' if b.cut != 1 else ''} inside need no gradient (constants, detached)")
    lines.append(f"gradient entering (what its nodes received from outside it): ‖·‖ {_norm(b.entering)}")
    lines += _crossings(b.entries)
    lines.append(f"gradient leaving (what it sent to nodes outside it): ‖·‖ {_norm(b.leaving)}")
    lines += _crossings(b.exits) or ["  nothing: no input of this module needs a gradient"]
    params = [p for p in b.params if p.parameter]
    if params:
        lines.append(f"parameters ({len(params)}): total ‖grad‖ {_norm(b.params_norm)}")
        lines += _listed(
            [
                f"  {p.name} {shape_text(p.shape)}: "
                + (number(p.norm, PRECISION) if p.norm is not None else f"no gradient ({p.reason or 'none arrived'})")
                for p in params
            ]
        )
    others = [p for p in b.params if not p.parameter]
    for p in others:
        norm = number(p.norm, PRECISION) if p.norm is not None else "None"
        lines.append(f"{p.kind} {p.name} {shape_text(p.shape)}: ‖grad‖ {norm}")
    lines += marks([b.entering, b.leaving, *(c.norm for c in (*b.entries, *b.exits))])
    if b.openable:
        lines.append(f"open it: trace.svg(view='modules', focus='{b.path}') · CLI: --view modules --focus {b.path}")
    return lines


def run(r: RunBox) -> list[str]:
    lines = [
        f"{len(r.blocks)} repeated blocks {r.run.name} ({r.run.cls}): {r.node_count} backward nodes, "
        f"{r.param_count} parameters",
        f"gradient entering the run: ‖·‖ {_norm(r.entering)}",
        f"gradient leaving the run: ‖·‖ {_norm(r.leaving)}",
        f"parameters: total ‖grad‖ {_norm(r.params_norm)}",
        "per block, in the order the gradient reaches them (in → out · params):",
    ]
    for b in r.blocks:
        lines.append(f"  {b.path}: {_norm(b.entering)} → {_norm(b.leaving)} · {_norm(b.params_norm)}")
    lines += marks([r.entering, r.leaving, *(f for b in r.blocks for f in (b.entering, b.leaving))])
    lines.append("draw each block: trace.svg(view='modules', repeats='expand') · CLI: --repeats expand")
    return lines


def flow(f: Flow, source: str, target: str) -> list[str]:
    count = f.norm.edges
    lines = [
        f"{source} → {target}: gradient ‖·‖ {_norm(f.norm)}"
        + (f", combined from {count} recorded edges" if count > 1 else "")
    ]
    lines += _listed([f"  {p}" for p in f.parts])
    return lines + marks([f.norm])
