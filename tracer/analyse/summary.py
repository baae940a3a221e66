"""The report a person reads first: the pass, its seeds, structure, leaves, accumulation points, health.

`summary(trace)` is text (Trace.summary(), `gradtrace analyze`); `summary_data(trace)` is the same content
as a JSON-ready dict (`gradtrace analyze --json`): plain types only, non-finite numbers as the strings
"NaN", "Infinity", "-Infinity" (the trace JSON's convention), so json.dumps(..., allow_nan=False) works.
"""

from __future__ import annotations

import os
from typing import Any

from ..model.records import Leaf, Seed, TensorInfo, Trace
from ..model.serial import to_plain
from ..model.textfmt import num, plural, shape, table, tensor
from ..model.visible_text import visible
from .accumulation import AccumulationPoint, accumulation_points
from .health import Health, health
from .naming import seed_label
from .structure import Structure, structure

SUMMARY_VERSION = 1


def summary(trace: Trace) -> str:
    """A compact text report of one pass. User text (names, labels, messages) is shown by visible(): a control
    character, ANSI escape or lone surrogate in a name prints as its escape, never raw to the terminal."""
    st = structure(trace)
    points = accumulation_points(trace)
    h = health(trace)
    lines = [_headline(trace)]
    where = [visible(trace.label)] if trace.label else []
    if trace.source:  # the file name only: the report must not depend on where the script lives
        where.append(f"started at {visible(os.path.basename(trace.source))}")
    if where:
        lines.append("  " + " · ".join(where))
    if not trace.complete:
        lines.append(f"  INCOMPLETE: the pass raised {trace.error}")
    lines += ["", "seeds", _seeds_table(trace.seeds)]
    lines += ["", _structure_text(st)]
    lines += ["", "leaves", _leaves_table(trace)]
    lines += ["", _accumulation_text(points)]
    lines += ["", str(h)]
    if trace.notes:
        lines += ["", "recorder notes"] + [f"  {n}" for n in trace.notes]
    # Names are made visible where they are put (one line, aligned); this covers what the parts quote besides.
    return visible("\n".join(lines), layout=True) + "\n"


def _headline(trace: Trace) -> str:
    seeds = ", ".join(f"{visible(seed_label(s))}{shape(s.shape)}" for s in trace.seeds) or "no outputs"
    how = "torch.autograd.grad" if trace.kind == "grad" else "backward"
    state = "complete" if trace.complete else "incomplete"
    return (
        f"pass #{trace.index}: {how} of {seeds} — {plural(len(trace.steps), 'step')}, "
        f"{plural(len(trace.leaves), 'leaf', 'leaves')}, {state}"
    )


def _seeds_table(seeds: tuple[Seed, ...]) -> str:
    if not seeds:
        return "  (none)"
    rows = [
        [
            visible(seed_label(s)),
            shape(s.shape),
            s.dtype,
            tensor(s.v),
            {True: "implicit (ones)", False: "given", None: "—"}[s.implicit],
            f"node {s.target}" if s.target is not None else "—",
        ]
        for s in seeds
    ]
    return table(["output", "shape", "dtype", "v", "seed", "enters"], rows)


def _structure_text(st: Structure) -> str:
    ops = ", ".join(f"{visible(name)}×{count}" for name, count in st.op_counts)
    order = "agrees with" if st.order_ok else "VIOLATES"
    lines = [
        f"structure: depth {st.depth}, width {st.width}; execution order {order} the graph's topological order",
        f"  ops: {ops or 'none'}",
    ]
    constants = [c for c in st.cut_edges if c.kind == "constant"]
    nones = [c for c in st.cut_edges if c.kind == "none"]
    if constants:
        where = ", ".join(f"node {c.node} edge {c.edge}" for c in constants[:8])
        more = f", … ({len(constants)})" if len(constants) > 8 else ""
        lines.append(f"  cut (constant / detached / no-grad input): {where}{more}")
    for c in nones:
        lines.append(f"  None sent: node {c.node} edge {c.edge} — {c.reason}")
    if st.unexecuted:
        lines.append(f"  reached but not run: {', '.join(f'node {i}' for i in st.unexecuted)}")
    return "\n".join(lines)


def _leaves_table(trace: Trace) -> str:
    if not trace.leaves:
        return "  (none)"
    rows = []
    for leaf in trace.leaves.values():
        grad = tensor(leaf.grad) if leaf.grad is not None else f"None — {visible(leaf.reason or 'no reason recorded')}"
        accumulated = "—"
        if leaf.kind != "input" and (leaf.grad_before is not None or leaf.grad_total is not None):
            accumulated = f"{tensor(leaf.grad_before)} → {tensor(leaf.grad_total)}"
        rows.append([visible(leaf.name), leaf.kind, shape(leaf.shape), num(_norm(leaf.grad)), grad, accumulated])
    return table(["name", "kind", "shape", "‖grad‖", "grad (this pass)", ".grad before → after"], rows)


def _norm(info: TensorInfo | None) -> float | None:
    return None if info is None else info.norm


def _accumulation_text(points: list[AccumulationPoint]) -> str:
    if not points:
        return "accumulation points: none (every gradient arrives once)"
    lines = [f"accumulation points: {len(points)}"]
    for p in points:
        verdict = {True: "parts add up", False: "PARTS DO NOT ADD UP", None: "not checkable"}[p.ok]
        lines.append(f"  {p.kind} at {visible(p.where)}: {len(p.parts)} parts → {tensor(p.total)} ({verdict})")
    return "\n".join(lines)


def summary_data(trace: Trace) -> dict[str, Any]:
    """The summary as a JSON-ready dict (see the module docstring for the conventions)."""
    st = structure(trace)
    h = health(trace)
    data = {
        "summary_version": SUMMARY_VERSION,
        "pass": {
            "index": trace.index,
            "kind": trace.kind,
            "label": trace.label,
            "source": trace.source,
            "complete": trace.complete,
            "error": trace.error,
            "steps": len(trace.steps),
            "nodes": len(trace.nodes),
            "torch_version": trace.torch_version,
            "options": trace.options,
        },
        "seeds": [
            {
                "index": s.index,
                "name": s.name,
                "shape": s.shape,
                "dtype": s.dtype,
                "implicit": s.implicit,
                "target": s.target,
                "v": _tensor_data(s.v),
            }
            for s in trace.seeds
        ],
        "structure": {
            "execution_order_is_topological": st.order_ok,
            "order_violations": [list(v) for v in st.order_violations],
            "depth": st.depth,
            "width": st.width,
            "op_counts": dict(st.op_counts),
            "unexecuted": st.unexecuted,
            "cut_edges": st.cut_edges,
            "unreached_leaves": st.unreached_leaves,
        },
        "leaves": [_leaf_data(leaf) for leaf in trace.leaves.values()],
        "accumulation_points": [_point_data(p) for p in accumulation_points(trace)],
        "health": _health_data(h),
        "notes": trace.notes,
    }
    plain: dict[str, Any] = to_plain(data)
    return plain


def _tensor_data(info: TensorInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    out: dict[str, Any] = {"shape": info.shape, "dtype": info.dtype}
    if info.stats is not None:
        out.update(
            norm=info.stats.norm,
            min=info.stats.min,
            max=info.stats.max,
            mean=info.stats.mean,
            zeros=info.stats.zeros,
            nan=info.stats.nan,
            inf=info.stats.inf,
            exact=info.stats.exact,
        )
    if info.values is not None:
        out["values"] = info.values
    return out


def _leaf_data(leaf: Leaf) -> dict[str, Any]:
    return {
        "name": leaf.name,
        "kind": leaf.kind,
        "shape": leaf.shape,
        "dtype": leaf.dtype,
        "node": leaf.node,
        "grad": _tensor_data(leaf.grad),
        "grad_before": _tensor_data(leaf.grad_before),
        "grad_total": _tensor_data(leaf.grad_total),
        "reason": leaf.reason,
    }


def _point_data(p: AccumulationPoint) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "node": p.node,
        "slot": p.slot,
        "name": p.name,
        "leaf": p.leaf,
        "parts": [{"label": part.label, "grad": _tensor_data(part.grad)} for part in p.parts],
        "total": _tensor_data(p.total),
        "ok": p.ok,
        "max_error": p.max_error,
        "tolerance": p.tolerance,
        "checked_by": p.checked_by,
        "note": p.note,
    }


def _health_data(h: Health) -> dict[str, Any]:
    return {
        "ok": h.ok,
        "seed_norm": h.seed_norm,
        "thresholds": {"vanishing": h.vanishing, "exploding": h.exploding},
        "flags": h.flags,
        "leaf_norms": dict(h.leaf_norms),
        "profile": h.profile,
    }
