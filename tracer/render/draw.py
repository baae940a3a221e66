"""Draw a trace: DOT text (no Graphviz needed), SVG/PNG/PDF through Graphviz's `dot`, per-step frames, files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analyse.health import health
from ..model.records import Trace
from .frames import frame_paths, frames_of
from .graphviz_call import render_dot
from .module_page import page as module_page
from .options import for_trace
from .picture import Picture, plan
from .side_by_side import CHART_WIDTH, side_by_side
from .stepper import page

FORMATS: tuple[str, ...] = ("svg", "png", "pdf", "dot", "json", "html")


def to_dot(trace: Trace, **opts: Any) -> str:
    """The annotated graph as DOT text; needs no Graphviz. Same trace and options → byte-identical text.

    The same picture svg() draws (the module view above max_nodes for a pass with module tags), without the
    size limit."""
    return plan(trace, for_trace(trace, opts)).dot()


def svg(trace: Trace, **opts: Any) -> str:
    """The annotated graph as SVG text (needs Graphviz's `dot`); with profile=True the gradient-norm profile
    chart stands beside it in the same SVG document."""
    checked = for_trace(trace, opts)
    picture = plan(trace, checked)
    picture.check_size()
    return _svg(picture)


def _svg(picture: Picture) -> str:
    graph = render_dot(picture.dot(), "svg").decode("utf-8")
    if not picture.opts.profile:
        return graph
    return side_by_side(graph, health(picture.trace).chart(width=CHART_WIDTH))


def save(trace: Trace, path: Any, **opts: Any) -> Path:
    """Write the trace in the format its suffix names (.svg .png .pdf .dot .json .html); returns the path.

    `steps=True` writes one file per step beside it (`g-step01.svg`, …) and returns the first; `.html` is
    always the step-by-step page.
    """
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown format: {target.suffix!r} (must be one of {['.' + f for f in FORMATS]}); "
            "the file name's suffix picks the format"
        )
    steps = opts.pop("steps", False)
    if not isinstance(steps, bool):
        raise ValueError(f"steps must be True or False, got {steps!r}")
    checked = for_trace(trace, opts)
    if fmt == "json":
        if steps:
            raise ValueError("steps=True draws one picture per step; a .json file holds the whole trace")
        target.write_text(trace.to_json(), encoding="utf-8")
        return target
    if fmt == "html":
        picture = plan(trace, checked)
        # The step-by-step page needs a frame per step; a tagged pass with more steps gets the module page.
        too_many = checked.view == "auto" and picture.tagged and len(trace.steps) > checked.max_frames
        if picture.view == "modules" or too_many:
            target.write_text(module_page(trace, checked), encoding="utf-8")
            return target
        target.write_text(page(trace, **opts), encoding="utf-8")
        return target
    if steps:
        data = frames_of(trace, checked, fmt)
        paths = frame_paths(target, len(data))
        for p, d in zip(paths, data, strict=True):
            p.write_bytes(d)
        return paths[0]
    picture = plan(trace, checked)
    text = picture.dot()
    if fmt == "dot":
        target.write_text(text, encoding="utf-8")
        return target
    picture.check_size()
    if fmt == "svg":
        target.write_text(_svg(picture), encoding="utf-8")
        return target
    target.write_bytes(render_dot(text, fmt))
    return target
