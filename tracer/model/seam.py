"""The one door from the lower rooms up to analysis, drawing and display, which they may not import.

A Trace writes its JSON (`t.to_json()`: model/serial.py, which imports the records), draws itself (`t.svg()`),
summarises and shows itself in Jupyter; a Recorder and a JacobianResult show themselves too, a Health report
draws its chart, a Recorder builds its Timeline and a Timeline draws and writes itself. Those rooms sit above the
model, the recorder and the analysis, so these methods call the functions connected here, and `tracer/__init__.py`
(the top of the house, which imports every room) connects them once, when the package is imported. Importing any
part of gradtrace imports the package first, so the door is always connected before a method can knock on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover - typing only; networkx is not ours
    import networkx


class Displayable(Protocol):
    """What a notebook can display: anything with a mime bundle."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]: ...


@dataclass(frozen=True)
class Upstairs:
    """The functions of the upper rooms that the records' own methods call (arguments as the methods take them)."""

    to_json: Callable[..., str]  # model/serial.py: (Trace, indent=) -> JSON text (serial reads the records' classes)
    graph: Callable[[Any], networkx.DiGraph]  # analyse: Trace -> the networkx graph of the pass
    summary: Callable[[Any], str]  # analyse: Trace -> the text report
    to_dot: Callable[..., str]  # render: (Trace, **drawing options) -> DOT text
    svg: Callable[..., str]  # render: (Trace, **drawing options) -> SVG text
    save: Callable[..., Any]  # render: (Trace, path, **drawing options) -> the path written
    chart: Callable[..., str]  # render: (Health, **chart options) -> the gradient-norm profile as SVG
    show: Callable[..., Displayable]  # display: (Trace, steps=, scale=, **drawing options) -> a notebook view
    mimebundle: Callable[..., dict[str, str]]  # display: (Trace | Recorder | JacobianResult, include, exclude)
    timeline: Callable[..., Any]  # analyse: (digests, **thresholds) -> Timeline (Recorder.timeline())
    timeline_svg: Callable[..., str]  # render: (Timeline, **chart options) -> the heatmap and lines as SVG
    timeline_csv: Callable[[Any], str]  # analyse: Timeline -> CSV text of the numbers
    timeline_json: Callable[..., str]  # analyse: (Timeline, indent=) -> JSON text of the numbers
    timeline_save: Callable[..., Any]  # render: (Timeline, path, **chart options) -> the path written (.svg .csv .json)


_connected: list[Upstairs] = []


def connect(upstairs: Upstairs) -> None:
    """Called once by tracer/__init__.py; a second call replaces the first (tests may swap a room out)."""
    _connected[:] = [upstairs]


def upstairs() -> Upstairs:
    if not _connected:
        raise RuntimeError(
            "gradtrace's drawing and display are not connected yet: this method was called while the `tracer` "
            "package was still being imported. Call it after `import tracer` has finished."
        )
    return _connected[0]
