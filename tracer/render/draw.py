"""Draw a trace: DOT text (no Graphviz needed), SVG/PNG/PDF through Graphviz's `dot`, per-step frames, files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..model.records import Trace
from .beside_chart import chart_beside
from .explorer_page import choose
from .explorer_page import page as explorer_page
from .frames import frame_paths, frames_of
from .graphviz_call import render_dot
from .module_page import page as module_page
from .options import for_trace
from .picture import Picture, plan
from .side_by_side import side_by_side
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
    return side_by_side(graph, chart_beside(picture))


def save(trace: Trace, path: Any, **opts: Any) -> Path:
    """Write the trace in the format its suffix names (.svg .png .pdf .dot .json .html); returns the path.

    `steps=True` writes one file per step beside it (`g-step01.svg`, …) and returns the first. `.html` is one
    self-contained page: the stepper for a pass of up to 30 steps, the explorer (pan, zoom, search, details, the
    steps as a moving highlight) above; with view='modules' the module page (explorer_page.choose).
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
        which = choose(trace, checked)
        if which == "modules":
            text = module_page(trace, checked)
        elif which == "explorer":
            text = explorer_page(trace, checked)
        else:
            text = page(trace, **opts)
        target.write_text(text, encoding="utf-8")
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
