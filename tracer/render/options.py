"""The drawing options: one frozen record, checked once, with errors that name the value and the allowed set."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..model.records import Trace

DIRECTIONS = ("TB", "LR")
THEME_NAMES = ("light", "dark", "transparent")
DETAILS = ("auto", "full", "compact")
VIEWS = ("auto", "full", "modules")
REPEATS = ("compact", "expand")
COMPACT_ABOVE = 300  # detail='auto' draws graphs with more nodes than this compactly


@dataclass(frozen=True)
class RenderOptions:
    """How a trace is drawn. Every field is a keyword argument of to_dot / svg / save."""

    direction: str = "TB"  # 'TB': seed at the top, leaves at the bottom; 'LR': left to right
    precision: int = 4  # significant digits of every number shown
    max_elements: int = 25  # tensors (and Jacobian sides) up to this many elements are printed in full
    jacobian: bool = True  # show the local Jacobian J where it was recorded and is small enough
    edge_labels: bool = True  # write the gradient flowing along each edge next to it
    stats: bool = True  # statistics line (min, max, mean, zeros) for tensors too large to print
    legend: bool = True  # the colour scale and line styles
    clusters: bool = True  # group nodes by the nn.Module that created them, where that was recorded
    detail: str = "auto"  # 'full' tables, 'compact' (name and norms; no edge labels), 'auto': compact when large
    theme: str = "light"  # 'light', 'dark', or 'transparent' (reads on light and dark notebook backgrounds)
    step: int | None = None  # draw the frame of this step: it active, earlier ones done, later ones pending
    max_nodes: int = 2000  # refuse to lay out larger graphs (Graphviz would take minutes)
    max_frames: int = 200  # refuse to draw a step-by-step page / frames for more steps than this
    view: str = "auto"  # 'full' every node, 'modules' one box per nn.Module, 'auto': modules above max_nodes
    depth: int | None = None  # module view: collapse below this depth (0: the whole model); None: its repeated blocks
    focus: str | None = None  # draw only the paths from the seed to this leaf or module
    repeats: str = "compact"  # module view: repeated blocks (a transformer's layers) as one box, or 'expand'
    profile: bool = False  # SVG: the gradient-norm profile chart beside the graph (HTML pages always have it)
    # The colour scale's range of gradient norms (low, high), so that pictures shown together (the passes of one
    # gallery entry) colour a norm alike; None: the smallest and largest norm of this pass.
    colour_range: tuple[float, float] | None = None


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RenderOptions))


def parse_options(options: dict[str, Any], *, extra: tuple[str, ...] = ()) -> RenderOptions:
    """RenderOptions from keyword arguments; `extra` names keywords the caller handles itself (ignored here)."""
    allowed = OPTION_NAMES + extra
    for key in options:
        if key not in allowed:
            raise TypeError(f"unknown option: {key!r} (must be one of {sorted(allowed)})")
    values = {k: v for k, v in options.items() if k in OPTION_NAMES}
    if "colour_range" in values:
        values["colour_range"] = _colour_range(values["colour_range"])
    opts = RenderOptions(**values)
    _check_choice("direction", opts.direction, DIRECTIONS)
    _check_choice("theme", opts.theme, THEME_NAMES)
    _check_choice("detail", opts.detail, DETAILS)
    _check_choice("view", opts.view, VIEWS)
    _check_choice("repeats", opts.repeats, REPEATS)
    _check_int("precision", opts.precision, 1, 17)
    _check_int("max_elements", opts.max_elements, 0, None)
    _check_int("max_nodes", opts.max_nodes, 1, None)
    _check_int("max_frames", opts.max_frames, 1, None)
    if opts.depth is not None:
        _check_int("depth", opts.depth, 0, None)
    if opts.focus is not None and (not isinstance(opts.focus, str) or not opts.focus):
        raise ValueError(
            f"focus must be the name of a leaf ('x', 'model.0.weight') or a module path ('model.layers.3'), "
            f"got {opts.focus!r}"
        )
    for name in ("jacobian", "edge_labels", "stats", "legend", "clusters", "profile"):
        value = getattr(opts, name)
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    if opts.step is not None:
        _check_int("step", opts.step, 1, None)
    return opts


def _colour_range(value: Any) -> tuple[float, float] | None:
    """(low, high) as two floats: positive, finite, low <= high."""
    if value is None:
        return None
    problem = (
        f"colour_range must be two gradient norms (low, high) with 0 < low <= high, e.g. (0.01, 100), got {value!r}"
    )
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(problem)
    if any(isinstance(x, bool) or not isinstance(x, int | float) for x in value):
        raise ValueError(problem)
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise ValueError(problem)
    return low, high


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name}: {value!r} (must be one of {list(allowed)})")


def _check_int(name: str, value: Any, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a whole number {bound}, got {value!r}")


def for_trace(trace: Trace, given: dict[str, Any], *, extra: tuple[str, ...] = ()) -> RenderOptions:
    """Checked RenderOptions for this trace (a frame's step must be one of its steps)."""
    if "steps" in given and "steps" not in extra:
        raise TypeError(
            "steps=True makes one picture per step, which needs several files: use trace.save(path, steps=True) "
            "or tracer.render.frames.frames(trace); step=k draws the frame of step k alone"
        )
    opts = parse_options(given, extra=extra)
    if opts.step is not None and opts.step > len(trace.steps):
        raise ValueError(f"step must be between 1 and {len(trace.steps)} (the steps this pass ran), got {opts.step}")
    return opts
