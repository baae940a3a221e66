"""What a drawing needs to know about a trace, worked out once: what enters each node slot (analyse's inflows),
which leaves sit on which node, the colour scale, and each element's state in a step frame."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from ..analyse.graph import Inflow, Slot, constant_key, inflows, node_key
from ..analyse.health import check_cannot_judge
from ..analyse.naming import step_ref
from ..model.format import is_warning
from ..model.records import Leaf, NoteKind, Seed, Step, TensorInfo, Trace
from .options import COMPACT_ABOVE, RenderOptions
from .style import THEMES, ColourScale, Theme, norm_range

State = Literal["done", "active", "pending", "unrun"]


def total_norm(infos: tuple[TensorInfo | None, ...]) -> float | None:
    """The norm of several tensors taken together; None when none of them is there."""
    norms = [i.stats.norm for i in infos if i is not None and i.stats is not None]
    if not norms and not any(i is not None for i in infos):
        return None
    return math.sqrt(sum(n * n for n in norms)) if all(math.isfinite(n) for n in norms) else math.nan


def pass_norms(trace: Trace) -> list[float | None]:
    """Every gradient norm a picture of the pass colours: the seeds, and each node's v and vᵀJ."""
    norms: list[float | None] = [s.v.norm if s.v is not None else None for s in trace.seeds]
    for n in trace.nodes:
        norms.extend(i.norm for i in (*n.v, *n.vjp) if i is not None)
    return norms


def shared_range(traces: Iterable[Trace]) -> tuple[float, float] | None:
    """One colour_range for pictures shown together: from the smallest to the largest norm of all the passes."""
    return norm_range(norm for trace in traces for norm in pass_norms(trace))


def colour_scale(trace: Trace, opts: RenderOptions, extra_norms: Iterable[float | None] = ()) -> ColourScale:
    """The colour scale a picture of the pass draws with (the range fixed by colour_range, else its own norms)."""
    return ColourScale(THEMES[opts.theme], [*pass_norms(trace), *extra_norms], fixed=opts.colour_range)


class Scene:
    """A trace prepared for drawing with one set of options."""

    def __init__(
        self,
        trace: Trace,
        opts: RenderOptions,
        *,
        shown: frozenset[int] | None = None,
        headline: str | None = None,
        extra_norms: Iterable[float | None] = (),
    ) -> None:
        """`shown`: draw only these nodes (and the seeds entering them; no constants or unreached leaves), as
        focus= does; `headline`: a line under the title; `extra_norms`: more norms the colour scale must span."""
        self.trace = trace
        self.opts = opts
        self.theme: Theme = THEMES[opts.theme]
        self.shown = shown
        self.headline = headline
        self.nodes: tuple[Step, ...] = trace.nodes if shown is None else tuple(n for n in trace.nodes if n.id in shown)
        self.seeds: tuple[Seed, ...] = (
            trace.seeds if shown is None else tuple(s for s in trace.seeds if s.target in shown)
        )
        self.incoming: dict[Slot, list[Inflow]] = inflows(trace)  # several into one slot are summed by the engine
        self.extra_leaves: dict[int, list[Leaf]] = {}
        self.unreached: list[tuple[str, Leaf]] = []
        for k, leaf in enumerate(trace.leaves.values()):
            if leaf.node is None:
                if shown is None:
                    self.unreached.append((f"leaf{k}", leaf))
            elif trace.node(leaf.node).leaf != leaf.name:
                self.extra_leaves.setdefault(leaf.node, []).append(leaf)
        self.scale = colour_scale(trace, opts, extra_norms)
        self.details: dict[TensorInfo | None, list[str]] = {}  # tooltip lines per tensor (see tooltips.py)
        self.compact = opts.detail == "compact" or (opts.detail == "auto" and self.node_count() > COMPACT_ABOVE)

    # -- naming

    def ref(self, node_id: int) -> str:
        """How other elements refer to a node: 'step 3', or 'node 7' for one that did not run."""
        return step_ref(self.trace.node(node_id))

    def origin(self, inflow: Inflow) -> str:
        """Where a gradient entering a slot came from, in words: 'seed', or its sender's 'step 3'."""
        return "seed" if inflow.source is None else self.ref(inflow.source)

    def target_text(self, step: Step, k: int) -> str:
        """Where next edge k of a node goes, in words: 'step 2 (x)', 'node 7', or 'no grad needed'."""
        e = step.edges[k]
        if e.target is None:
            return "no grad needed"
        target = self.trace.node(e.target)
        name = f" ({target.leaf})" if target.leaf else ""
        return f"{self.ref(e.target)}{name}"

    def edge_target_key(self, step: Step, k: int) -> str:
        e = step.edges[k]
        return constant_key(step.id, k) if e.target is None else node_key(e.target)

    # -- counts and states

    def node_count(self) -> int:
        constants = 0 if self.shown is not None else sum(1 for n in self.nodes for e in n.edges if e.target is None)
        return len(self.seeds) + len(self.nodes) + constants + len(self.unreached)

    def draws_edge(self, step: Step, k: int) -> bool:
        """Whether next edge k of a drawn node is drawn: under focus only edges between drawn nodes."""
        if self.shown is None:
            return True
        target = step.edges[k].target
        return target is not None and target in self.shown

    def state(self, step: Step) -> State:
        if not step.executed:
            return "unrun"
        frame = self.opts.step
        if frame is None or step.id < frame:
            return "done"
        return "active" if step.id == frame else "pending"

    def time_state(self, time: int) -> State:
        """State of a gradient computed at step `time` (0: the seeds, known before step 1)."""
        frame = self.opts.step
        if frame is None or time < frame:
            return "done"
        return "active" if time == frame else "pending"

    def problems(self, step: Step) -> list[str]:
        """What deserves the warning colour on this node, in words."""
        out = []
        if step.note_kind is NoteKind.RAISED:
            out.append(f"⚠ {step.note}")
        if step.check is not None and not step.check.ok and not check_cannot_judge(step):
            out.append(f"⚠ vᵀJ ≠ v·J: max error {step.check.max_error:.3g} > tolerance {step.check.tolerance:.3g}")
        if any(is_warning(i) for i in (*step.v, *step.vjp)):
            out.append("⚠ NaN or Inf in a gradient")
        return out
