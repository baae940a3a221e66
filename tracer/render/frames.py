"""One picture per executed step (that step active, earlier ones done, later ones pending), and their file names."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..model.errors import DrawingTooLargeError
from ..model.records import Trace
from . import dot
from .graphviz_call import render_dot
from .options import RenderOptions, for_trace
from .picture import plan

LAID_OUT: tuple[str, ...] = ("svg", "png", "pdf")  # the formats that need Graphviz's dot


def frames(trace: Trace, fmt: str = "svg", **opts: Any) -> list[bytes]:
    """One picture per executed step (the whole graph; that step active, earlier ones done, later ones pending)."""
    if fmt not in ("dot", *LAID_OUT):
        raise ValueError(f"unknown frame format: {fmt!r} (must be one of {['dot', *LAID_OUT]})")
    return frames_of(trace, for_trace(trace, opts), fmt)


def frames_of(trace: Trace, opts: RenderOptions, fmt: str) -> list[bytes]:
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


def frame_paths(path: Path, count: int) -> list[Path]:
    """`g.svg` → `g-step01.svg`, `g-step02.svg`, … (zero-padded so they sort)."""
    width = max(2, len(str(count)))
    return [path.with_name(f"{path.stem}-step{k:0{width}d}{path.suffix}") for k in range(1, count + 1)]
