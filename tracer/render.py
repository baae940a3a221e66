"""Draw a trace: DOT text (no Graphviz needed), SVG/PNG/PDF through Graphviz's `dot`, per-step frames, files."""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import graphviz

from . import dot
from .errors import DrawingTooLargeError, GradtraceError, GraphvizMissingError
from .model import Trace
from .picture import Picture, plan
from .render_options import RenderOptions, parse_options

FORMATS: tuple[str, ...] = ("svg", "png", "pdf", "dot", "json", "html")
LAID_OUT: tuple[str, ...] = ("svg", "png", "pdf")  # the formats that need Graphviz's dot

INSTALL_HINT = (
    "Install Graphviz: `sudo apt-get install graphviz` (Debian/Ubuntu), `sudo dnf install graphviz` (Fedora), "
    "`brew install graphviz` (macOS), `winget install graphviz` (Windows) or `conda install -c conda-forge graphviz` "
    "(conda), then make sure `dot -V` works in a new shell."
)


def options(trace: Trace, given: dict[str, Any], *, extra: tuple[str, ...] = ()) -> RenderOptions:
    """Checked RenderOptions for this trace (a frame's step must be one of its steps)."""
    if "steps" in given and "steps" not in extra:
        raise TypeError(
            "steps=True makes one picture per step, which needs several files: use trace.save(path, steps=True) "
            "or tracer.render.frames(trace); step=k draws the frame of step k alone"
        )
    opts = parse_options(given, extra=extra)
    if opts.step is not None and opts.step > len(trace.steps):
        raise ValueError(f"step must be between 1 and {len(trace.steps)} (the steps this pass ran), got {opts.step}")
    return opts


def to_dot(trace: Trace, **opts: Any) -> str:
    """The annotated graph as DOT text; needs no Graphviz. Same trace and options → byte-identical text.

    The same picture svg() draws (the module view above max_nodes for a pass with module tags), without the
    size limit."""
    return plan(trace, options(trace, opts)).dot()


def svg(trace: Trace, **opts: Any) -> str:
    """The annotated graph as SVG text (needs Graphviz's `dot`); with profile=True the gradient-norm profile
    chart stands beside it in the same SVG document."""
    checked = options(trace, opts)
    picture = plan(trace, checked)
    picture.check_size()
    return _svg(picture)


def _svg(picture: Picture) -> str:
    graph = render_dot(picture.dot(), "svg").decode("utf-8")
    if not picture.opts.profile:
        return graph
    from .health import health
    from .side_by_side import CHART_WIDTH, side_by_side

    return side_by_side(graph, health(picture.trace).chart(width=CHART_WIDTH))


def frames(trace: Trace, fmt: str = "svg", **opts: Any) -> list[bytes]:
    """One picture per executed step (the whole graph; that step active, earlier ones done, later ones pending)."""
    if fmt not in ("dot", *LAID_OUT):
        raise ValueError(f"unknown frame format: {fmt!r} (must be one of {['dot', *LAID_OUT]})")
    checked = options(trace, opts)
    return _frames(trace, checked, fmt)


def _frames(trace: Trace, opts: RenderOptions, fmt: str) -> list[bytes]:
    count = len(trace.steps)
    if count == 0:
        raise ValueError("this pass ran no step, so there are no step frames; draw it without steps=True")
    if count > opts.max_frames:
        raise DrawingTooLargeError(
            f"this pass ran {count} steps, more than max_frames={opts.max_frames}: one frame per step would "
            f"take very long to draw. Draw the whole pass as one picture instead (save it as .svg, without "
            f"steps=True), or raise the limit with max_frames={count}."
        )
    picture = plan(trace, opts, full_only=True)
    if fmt != "dot":
        picture.check_size()
    shown = picture.focus.shown if picture.focus is not None else None
    texts = [dot.build(trace, dataclasses.replace(opts, step=k), shown=shown) for k in range(1, count + 1)]
    if fmt == "dot":
        return [t.encode("utf-8") for t in texts]
    # Each frame is its own dot process: run a few at once (the output order stays the step order).
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda t: render_dot(t, fmt), texts))


def check_size(trace: Trace, opts: RenderOptions) -> None:
    """Refuse to lay out a picture larger than `max_nodes`, with the ways to a readable one (see picture.py)."""
    plan(trace, opts).check_size()


_TOOLTIP = re.compile(r'<title>[^<]*</title>\n(<g id="a_[^"]*"><a(?: xlink:href="[^"]*")?) xlink:title="([^"]*)">')
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)


def render_dot(text: str, fmt: str) -> bytes:
    """Run Graphviz's dot on DOT text; SVG gets each element's full details as its <title> tooltip."""
    try:
        data: bytes = graphviz.pipe("dot", fmt, text.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissingError(
            f"Graphviz's `dot` program is needed to draw {fmt.upper()} and was not found on PATH. {INSTALL_HINT} "
            "Without it, trace.to_dot() and saving .dot or .json still work."
        ) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip()
        raise GradtraceError(f"Graphviz's dot could not draw this picture ({fmt}): {detail}") from None
    if fmt != "svg":
        return data
    svg_text = data.decode("utf-8")
    # Graphviz puts the node's DOT name in <title> (browsers show it on hover) and the tooltip on an inner
    # <a>; moving the tooltip into <title> shows the details in every browser and viewer, and once only.
    svg_text = _TOOLTIP.sub(lambda m: f"<title>{m.group(2)}</title>\n{m.group(1)}>", svg_text)
    svg_text = _COMMENT.sub("", svg_text)
    return svg_text.encode("utf-8")


def frame_paths(path: Path, count: int) -> list[Path]:
    """`g.svg` → `g-step01.svg`, `g-step02.svg`, … (zero-padded so they sort)."""
    width = max(2, len(str(count)))
    return [path.with_name(f"{path.stem}-step{k:0{width}d}{path.suffix}") for k in range(1, count + 1)]


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
    checked = options(trace, opts)
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
            from .module_page import page as module_page

            target.write_text(module_page(trace, checked), encoding="utf-8")
            return target
        from .stepper import page

        target.write_text(page(trace, **opts), encoding="utf-8")
        return target
    if steps:
        data = _frames(trace, checked, fmt)
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
