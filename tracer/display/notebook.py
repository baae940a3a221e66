"""Jupyter display: mime bundles for Trace, Recorder and JacobianResult, and `trace.show()`'s picture or stepper.

Nothing here imports IPython: Jupyter calls `_repr_mimebundle_(include=..., exclude=...)` on our objects, and
those call `mimebundle()`. Pictures are drawn when the frontend asks for them, never at import or record time.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection
from typing import Any

from ..analyse.naming import seed_label
from ..model.errors import GradtraceError, GraphvizMissingError
from ..model.records import Trace
from ..model.textfmt import plural, shape
from ..record.jacobian import JacobianResult
from ..record.recorder import Recorder
from ..render.draw import to_dot
from ..render.escape import page_text
from ..render.graphviz_call import INSTALL_HINT
from ..render.html_page import digest_id, inline_svg, without_prologue
from ..render.options import for_trace as checked_options
from ..render.stepper import fragment
from .jacobian_table import jacobian_html

SVG = "image/svg+xml"
HTML = "text/html"
TEXT = "text/plain"

MAX_PASSES = 20  # a Recorder shows this many passes in full; a training loop records thousands

_SIZE = re.compile(r'<svg width="([0-9.]+)pt" height="([0-9.]+)pt"')

# Every displayed stepper or pass list gets a fresh number: two displays of one trace on one page (the same
# trace shown twice, or one view displayed twice) never share element ids. A counter rather than random ids
# keeps a notebook executed from the top byte-identical between runs.
_display_numbers = itertools.count(1)


def mimebundle(
    obj: Any, *, include: Collection[str] | None = None, exclude: Collection[str] | None = None
) -> dict[str, str]:
    """The display data of a Trace, Recorder or JacobianResult, limited to the mime types IPython asks for."""
    wanted = _wanted(include, exclude)
    if isinstance(obj, Trace):
        return picture_bundle(obj, wanted, {}, None)

    if isinstance(obj, Recorder):
        return recorder_bundle(obj, wanted)
    if isinstance(obj, JacobianResult):
        out: dict[str, str] = {}
        if wanted(HTML):
            out[HTML] = jacobian_html(obj)
        if wanted(TEXT):
            out[TEXT] = repr(obj)
        return out
    raise TypeError(
        f"no notebook display for a {type(obj).__name__}: gradtrace displays a Trace, the Recorder of "
        "tracer.record() and the result of tracer.jacobian()"
    )


Wanted = Callable[[str], bool]


def _wanted(include: Collection[str] | None, exclude: Collection[str] | None) -> Wanted:
    """IPython's rule: only types in `include` when it is given, never types in `exclude` (exclude wins)."""

    def wanted(mime: str) -> bool:
        return (not include or mime in include) and not (exclude and mime in exclude)

    return wanted


def no_picture_line(exc: GradtraceError) -> str:
    """One line saying why there is no picture and how to get one."""
    if isinstance(exc, GraphvizMissingError):
        return f"(no picture: Graphviz's `dot` was not found on PATH. {INSTALL_HINT})"
    return f"(no picture: {exc})"


def display_svg(svg: str, scale: float | None = None) -> str:
    """Graphviz SVG as display data: from `<svg` on (no XML prologue or DOCTYPE), optionally scaled."""
    return scale_svgs(without_prologue(svg), scale)


def scale_svgs(text: str, scale: float | None) -> str:
    """Multiply the width and height of every Graphviz <svg> in `text` (the viewBox keeps the drawing whole)."""
    if scale is None or scale == 1:
        return text

    def resize(m: re.Match[str]) -> str:
        width, height = float(m.group(1)) * scale, float(m.group(2)) * scale
        return f'<svg width="{width:.2f}pt" height="{height:.2f}pt"'

    return _SIZE.sub(resize, text)


def check_scale(scale: Any) -> float | None:
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 10:
        raise ValueError(f"scale must be a number between 0 and 10 (1 is Graphviz's natural size), got {scale!r}")
    return float(scale)


def picture_bundle(trace: Trace, wanted: Wanted, options: dict[str, Any], scale: float | None) -> dict[str, str]:
    """The annotated SVG and the text summary; the summary says why when the picture cannot be drawn."""
    out: dict[str, str] = {}
    note = None
    if wanted(SVG):
        try:
            out[SVG] = display_svg(trace.svg(**options), scale)
        except GradtraceError as exc:
            note = no_picture_line(exc)
    if wanted(TEXT):
        out[TEXT] = trace.summary() if note is None else f"{note}\n{trace.summary()}"
    return out


def stepper_bundle(trace: Trace, wanted: Wanted, options: dict[str, Any], scale: float | None) -> dict[str, str]:
    """The self-contained HTML stepper and the text summary; the summary says why when it cannot be drawn."""
    out: dict[str, str] = {}
    note = None
    if wanted(HTML):
        try:
            out[HTML] = stepper_html(trace, options, scale)
        except GradtraceError as exc:
            note = no_picture_line(exc)
    if wanted(TEXT):
        out[TEXT] = trace.summary() if note is None else f"{note}\n{trace.summary()}"
    return out


def stepper_html(trace: Trace, options: dict[str, Any], scale: float | None) -> str:
    """The stepper fragment with element ids no other display on the page has."""

    # The ids start with a digest of what is drawn (the DOT text: no absolute paths, unlike the trace's JSON,
    # so the same notebook cell gives the same ids in every kernel) and end with this display's number.
    uid = f"{digest_id(to_dot(trace, **options))}-{next(_display_numbers)}"
    return scale_svgs(fragment(trace, uid=uid, **options), scale)


def recorder_bundle(rec: Recorder, wanted: Wanted) -> dict[str, str]:
    """Every pass of a record() block, labelled: one picture per pass (HTML) and their summaries (text)."""
    traces: list[Trace] = list(rec.traces)
    shown, rest = traces[:MAX_PASSES], len(traces) - MAX_PASSES
    more = f"… and {plural(rest, 'more pass', 'more passes')}: rec.traces[k] displays one" if rest > 0 else None
    out: dict[str, str] = {}
    note = None
    if wanted(HTML) and shown:
        try:
            out[HTML] = _passes_html(shown, more)
        except GraphvizMissingError as exc:
            note = no_picture_line(exc)
    if wanted(TEXT):
        head = repr(rec) if traces else f"{rec!r}: no backward pass ran inside the block"
        parts = [head] + ([note] if note else []) + [t.summary() for t in shown] + ([more] if more else [])
        out[TEXT] = "\n".join(parts)
    return out


def _passes_html(traces: list[Trace], more: str | None) -> str:
    number = next(_display_numbers)
    out = [f'<div class="gt-passes" id="gt-passes-{number}">']
    for trace in traces:
        out.append(f'<section class="gt-pass" data-pass="{trace.index}">')
        out.append(f'<p style="font-weight:bold;margin:0.5em 0">{page_text(pass_title(trace))}</p>')
        try:
            svg = trace.svg()
        except GraphvizMissingError:
            raise  # no Graphviz at all: the caller shows the summaries with the install line instead
        except GradtraceError as exc:  # one pass too large to lay out: say so there, draw the others
            out.append(f"<p>{page_text(no_picture_line(exc))}</p>")
        else:
            out.append(inline_svg(svg, f"gt-p{number}-{trace.index}-"))
        out.append("</section>")
    if more:
        out.append(f"<p>{page_text(more)}</p>")
    out.append("</div>")
    return "\n".join(out) + "\n"


def pass_title(trace: Trace) -> str:
    """'pass #2 · epoch 3: backward of loss[] — 9 steps, 4 leaves' (record()'s label, when it has one)."""
    seeds = ", ".join(f"{seed_label(s)}{shape(s.shape)}" for s in trace.seeds) or "no outputs"
    how = "torch.autograd.grad" if trace.kind == "grad" else "backward"
    where = f" · {trace.label}" if trace.label else ""
    state = "" if trace.complete else ", incomplete"
    return (
        f"pass #{trace.index}{where}: {how} of {seeds} — {plural(len(trace.steps), 'step')}, "
        f"{plural(len(trace.leaves), 'leaf', 'leaves')}{state}"
    )


class TraceView:
    """What `trace.show()` returns: the picture, or with steps=True the stepper, drawn when Jupyter displays it.

    The options are checked when the view is made, so a wrong option fails at the call, not inside the display.
    """

    def __init__(self, trace: Trace, *, steps: bool = False, scale: float | None = None, **options: Any) -> None:

        if not isinstance(steps, bool):
            raise ValueError(f"steps must be True or False, got {steps!r}")
        if "step" in options and steps:
            raise ValueError("step= draws one frame; steps=True shows them all, one after another: pass only one")
        checked_options(trace, options)
        self.trace = trace
        self.steps = steps
        self.scale = check_scale(scale)
        self.options = dict(options)

    def _repr_mimebundle_(
        self, include: Collection[str] | None = None, exclude: Collection[str] | None = None
    ) -> dict[str, str]:
        bundle = stepper_bundle if self.steps else picture_bundle
        return bundle(self.trace, _wanted(include, exclude), self.options, self.scale)

    def html(self) -> str:
        """The display as an HTML fragment to embed anywhere (the stepper, or the picture), with fresh element ids."""
        if self.steps:
            return stepper_html(self.trace, self.options, self.scale)
        svg = display_svg(self.trace.svg(**self.options), self.scale)
        return inline_svg(svg, f"gt-v{next(_display_numbers)}-")

    def __repr__(self) -> str:
        what = f"stepper through {plural(len(self.trace.steps), 'step')}" if self.steps else "picture"
        return f"<gradtrace {what} of pass #{self.trace.index}>"
