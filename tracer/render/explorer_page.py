"""The explorer: one self-contained offline HTML page for a pass of any size, holding its picture once.

The full graph is laid out once by Graphviz; the page's script (assets/explorer.js) adds pan and zoom, search by
leaf, module or operation (the hit is centred), a details panel for the clicked node (v, J, vᵀJ, statistics, source
line) or module (the gradient at its boundary), module boxes — closed at the depth of the model's repeated blocks,
each drawn over its own nodes, opening on a click — and the step-by-step walk as a highlight moving over the one
picture (→ and ←), the steps still to come faded. What the script reads is one JSON record per node and module
(explorer_data.py), so the page grows with the number of nodes, not with nodes × steps.

`choose()` picks the .html page: the stepper (one full picture per step, with the tables) for passes of at most
STEPPER_STEPS steps drawn in full, the explorer for everything larger; above EXPLORER_MAX_NODES, a graph Graphviz
would take long to lay out, the module page (module_page.py) of a pass with module tags — which view='modules'
asks for at any size.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from typing import Literal

from ..analyse.naming import step_label
from ..model.errors import DrawingTooLargeError
from ..model.records import Trace
from .escape import page_text
from .explorer_data import payload, script_json
from .graphviz_call import render_dot
from .html_page import digest_id, document, inline_svg, seed_names, theme_style
from .options import RenderOptions
from .picture import plan

STEPPER_STEPS = 30  # .html: passes of at most this many steps (drawn in full) get the stepper
EXPLORER_MAX_NODES = 6_000  # the explorer lays out the full graph up to this many nodes (Graphviz: ~10 s)
Page = Literal["stepper", "explorer", "modules"]

_NODE_TITLE = re.compile(r'(<g id="[^"]*-n\d+" class="node[^"]*">\n)<title>[^<]*</title>\n')


def choose(trace: Trace, opts: RenderOptions) -> Page:
    """Which page an .html file of this pass is (see the module docstring); view='modules' asks for the module
    page (the module view's drawings, every box a link to its inside)."""
    if opts.view == "modules":
        return "modules"
    if len(trace.steps) <= min(STEPPER_STEPS, opts.max_frames):
        picture = plan(trace, opts)
        if picture.view == "full" and picture.count <= opts.max_nodes:
            return "stepper"
    full = plan(trace, _explorer_options(opts))
    if full.count > EXPLORER_MAX_NODES and full.tagged:
        return "modules"
    return "explorer"


def _explorer_options(opts: RenderOptions) -> RenderOptions:
    return dataclasses.replace(opts, view="full", step=None, max_nodes=max(opts.max_nodes, EXPLORER_MAX_NODES))


def _asset(name: str) -> str:
    return resources.files("tracer.render").joinpath("assets").joinpath(name).read_text(encoding="utf-8")


def page(trace: Trace, opts: RenderOptions) -> str:
    """The complete HTML document (deterministic: the same trace and options give the same bytes)."""
    title = f"gradtrace: explorer of the backward of {seed_names(trace)}"
    return document(title, theme_style(opts.theme), fragment(trace, opts))


def fragment(trace: Trace, opts: RenderOptions, uid: str | None = None) -> str:
    """The explorer as an embeddable fragment; every element id starts with `uid`."""
    picture = plan(trace, _explorer_options(opts))
    if picture.count > EXPLORER_MAX_NODES:
        raise DrawingTooLargeError(
            f"the explorer lays out the full graph, and this one has {picture.count} nodes, more than "
            f"{EXPLORER_MAX_NODES}: draw the module view (view='modules'), or only the paths that feed one leaf "
            "or module (focus='NAME')"
        )
    text = picture.dot()
    if uid is None:
        uid = digest_id(text + repr(opts))
    svg = inline_svg(render_dot(text, "svg").decode("utf-8"), f"{uid}-")
    svg = _NODE_TITLE.sub(r"\1", svg)  # the details panel says all a node's tooltip would, once
    collapse = opts.view != "full" and any(n.module for n in trace.nodes)
    data = payload(trace, opts, collapse=collapse)
    steps = len(trace.steps)
    head = f"{data['title']} · {steps} step{'s' if steps != 1 else ''}"
    if trace.steps:
        head += f" · first: {step_label(trace.steps[0])}"
    out = [f'<div class="gt-x" id="{uid}" tabindex="0" data-step="0" data-steps="{steps}">']
    out.append(f"<style>{_asset('explorer.css')}</style>")
    out.append(
        '<div class="gt-x-bar">'
        f'<span class="gt-x-title">{page_text(head)}</span>'
        '<span class="gt-x-searchbox"><input type="search" class="gt-x-search" '
        'placeholder="Search a leaf, module or operation ( / )" aria-label="Search a leaf, module or operation">'
        '<ul class="gt-x-results" role="listbox" hidden></ul></span>'
        '<button type="button" class="gt-x-prev" aria-label="Previous step">← step</button>'
        '<button type="button" class="gt-x-next" aria-label="Next step">step →</button>'
        '<button type="button" class="gt-x-out" aria-label="Zoom out">−</button>'
        '<button type="button" class="gt-x-in" aria-label="Zoom in">+</button>'
        '<button type="button" class="gt-x-fit">Fit</button>'
        '<button type="button" class="gt-x-width">Fit width</button>'
        '<button type="button" class="gt-x-expand">Open all modules</button>'
        '<button type="button" class="gt-x-collapse">Close to blocks</button>'
        "</div>"
    )
    if data["partial"]:
        out.append(f'<div class="gt-x-warn" role="note">⚠ partial module tags: {page_text(data["coverage"])}</div>')
    out.append('<div class="gt-x-walk" data-idle="true" aria-live="polite"></div>')
    out.append(f'<div class="gt-x-main"><div class="gt-x-view">{svg}</div><aside class="gt-x-panel"></aside></div>')
    out.append(f'<script type="application/json" class="gt-x-data">{script_json(data)}</script>')
    out.append(f"<script>{_asset('explorer.js').replace('%(uid)s', uid)}</script>")
    out.append("</div>")
    return "\n".join(out) + "\n"
