"""Two SVG documents side by side in one: the graph (Graphviz, in points) and the profile chart (pixels) beside it.

Each keeps its own coordinate system as a nested <svg> positioned in the outer one, so tooltips, links and ids
of both survive unchanged; the result is still one well-formed SVG document.
"""

from __future__ import annotations

import re

from .html_page import without_prologue

GAP = 24  # pixels between the two pictures
CHART_WIDTH = 640  # pixels of the profile chart beside a graph: narrow enough for both on a laptop screen
PT = 4 / 3  # CSS pixels per point

_OPEN = re.compile(r"<svg\b([^>]*)>")
_SIZE = re.compile(r'\s(width|height)="([0-9.]+)(pt|px)?"')


def _pixels(svg: str) -> tuple[str, float, float]:
    """The <svg> element (no XML prologue or DOCTYPE) and its width and height in pixels."""
    body = without_prologue(svg).strip()
    head = _OPEN.match(body)
    if head is None:
        raise ValueError("not an SVG document: no <svg> element at the start")
    size = {name: float(value) * (PT if unit == "pt" else 1.0) for name, value, unit in _SIZE.findall(head.group(1))}
    if "width" not in size or "height" not in size:
        raise ValueError("the SVG document has no width and height to place it by")
    return body, size["width"], size["height"]


def _placed(body: str, x: float, width: float, height: float) -> str:
    """The element with its size in pixels and its position in the outer picture."""

    def opening(m: re.Match[str]) -> str:
        rest = _SIZE.sub("", m.group(1))
        return f'<svg x="{x:.2f}" y="0" width="{width:.2f}" height="{height:.2f}"{rest}>'

    return _OPEN.sub(opening, body, count=1)


def side_by_side(left: str, right: str) -> str:
    """One SVG document with `left` at the left edge and `right` beside it, both top-aligned."""
    a, aw, ah = _pixels(left)
    b, bw, bh = _pixels(right)
    width, height = aw + GAP + bw, max(ah, bh)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width:.2f}px" height="{height:.2f}px" viewBox="0 0 {width:.2f} {height:.2f}">\n'
        f"{_placed(a, 0, aw, ah)}\n{_placed(b, aw + GAP, bw, bh)}\n</svg>\n"
    )
