"""Which picture a trace and options give — the full graph or the module view, of the whole pass or of the paths
that feed focus= — its DOT text, and the size check that refuses what Graphviz cannot lay out in good time.

view='auto' (the default) draws every node up to max_nodes and, above it, the module view when the pass has
module tags (tracer.record(model=...)). Without tags, or with an explicit view='full', a picture above the limit
is refused with a message naming the ways to a readable one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..analyse import module_view
from ..analyse.focus import Focus, resolve
from ..analyse.module_coverage import coverage
from ..analyse.module_tree import ModuleTree
from ..analyse.module_view import ModuleView
from ..model.errors import DrawingOptionError, DrawingTooLargeError
from ..model.records import Trace
from . import dot, module_dot
from .options import RenderOptions
from .scene import Scene

View = Literal["full", "modules"]

HOW_TO_TAG = "with tracer.record(modules=True): loss = model(x).sum(); loss.backward()"
CLI_HINT = "(CLI: --view modules, --depth N, --focus NAME, --max-nodes N)"


@dataclass(frozen=True)
class Picture:
    """A picture decided but not yet drawn."""

    trace: Trace
    opts: RenderOptions
    view: View
    focus: Focus | None
    modules: ModuleView | None
    tagged: bool  # the pass carries module tags
    count: int  # things Graphviz would lay out
    full_count: int  # nodes of the full picture (of the focused paths, under focus=)
    note: str | None = None  # module view: why part of the pass has no module tags (drawn under the title)

    def dot(self, links: Mapping[str, str] | None = None) -> str:
        """The DOT text; `links` (module view only) maps box ids to URLs."""
        if self.modules is None:
            headline = self.focus.describe(len(self.trace.nodes)) if self.focus is not None else None
            shown = self.focus.shown if self.focus is not None else None
            return dot.build(self.trace, self.opts, shown=shown, headline=headline)
        scene = module_dot.scene_for(self.trace, self.opts, self.modules, note=self.note)
        return module_dot.build(scene, self.modules, links=links)

    def check_size(self) -> None:
        """Refuse to lay out more than `max_nodes` things, with the ways to a readable picture."""
        limit = self.opts.max_nodes
        if self.count <= limit:
            return
        if self.modules is not None:
            depth = self.modules.depth
            smaller = f"choose a smaller depth (depth={depth - 1}), " if depth > 0 else ""
            partial = f"{coverage(self.trace).explain()} " if self.note else ""
            raise DrawingTooLargeError(
                f"{partial}the module view at depth {depth} still has {self.count} boxes and nodes to draw, more than "
                f"max_nodes={limit}: {smaller}draw only the paths that feed one module or leaf with "
                f"focus='NAME', keep repeated blocks as one box (repeats='compact'), or raise the limit with "
                f"max_nodes={self.count}. {CLI_HINT}"
            )
        what = "the focused paths have" if self.focus is not None else "this pass has"
        head = (
            f"{what} {self.count} nodes to draw, more than max_nodes={limit}: Graphviz would take very long to "
            "lay it out."
        )
        if self.tagged:
            ways = (
                "This pass has module tags: view='modules' draws one box per module (what view='auto', the "
                "default, does above the limit; depth=N picks how deep)"
            )
        else:
            ways = (
                f"For the module view (one box per nn.Module, the default above the limit) record the pass with "
                f"module tags: `{HOW_TO_TAG}`"
            )
        raise DrawingTooLargeError(
            f"{head} {ways}; or draw only the paths that feed one leaf or module with focus='NAME'; or raise the "
            f"limit with max_nodes={self.count}. {CLI_HINT} DOT and JSON output have no limit."
        )


def plan(trace: Trace, opts: RenderOptions, *, full_only: bool = False) -> Picture:
    """Decide the picture. `full_only`: step frames, which exist for the full graph only."""
    tree = ModuleTree(trace)
    focus = resolve(trace, opts.focus, tree) if opts.focus is not None else None
    shown = focus.shown if focus is not None else None
    full_count = Scene(trace, opts, shown=shown).node_count()
    tagged = any(n.module is not None for n in trace.nodes if shown is None or n.id in shown)
    view: View
    if opts.view == "modules":
        view = "modules"
    elif opts.view == "full" or full_only:
        view = "full"
    else:
        view = "modules" if tagged and full_count > opts.max_nodes else "full"
    if view == "full":
        return Picture(trace, opts, "full", focus, None, tagged, full_count, full_count)
    if full_only:
        raise DrawingOptionError(
            "step frames draw the full graph one step at a time; the module view has no steps: pass view='full' "
            "(with focus='NAME' to keep the frames small), or draw the module view as one picture"
        )
    if not tagged:
        raise DrawingOptionError(
            f"view='modules' needs module tags, and this pass has none ({coverage(trace).explain()}), so that every "
            "backward node knows the nn.Module that created it"
        )
    mv = module_view.build(trace, depth=opts.depth, focus=focus, repeats=opts.repeats, tree=tree)
    constants = sum(1 for i in mv.nodes for e in trace.node(i).edges if e.target is None)
    covered = coverage(trace)  # partial tags are said in the picture, never drawn as if the model were whole
    note = covered.short() if covered.partial else None
    return Picture(trace, opts, "modules", focus, mv, tagged, mv.item_count() + constants, full_count, note)
