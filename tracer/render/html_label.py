"""Tiny builders for Graphviz HTML-like labels: tables, cells and fonts, and a tensor in nested brackets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..model.format import grid, has_values, inline, is_warning, shape_text, stats_text, summary
from ..model.records import TensorInfo
from .escape import label_text

VECTOR_WRAP = 8  # a printed vector breaks its line after this many numbers


@dataclass(frozen=True)
class Ink:
    """The colours of one element in its current state (done, active, pending, not run)."""

    text: str
    muted: str
    faint: str
    border: str
    panel: str
    header: str
    badge: str
    badge_text: str
    warning: str
    none: str


def font(html: str, colour: str, *, size: float | None = None, bold: bool = False) -> str:
    """Wrap already-escaped label html in a FONT (and B) element."""
    if not html:  # Graphviz rejects an empty <B></B> or <FONT></FONT> (an empty name: names={"": x})
        return ""
    inner = f"<B>{html}</B>" if bold else html
    point = f' POINT-SIZE="{size:g}"' if size is not None else ""
    return f'<FONT COLOR="{colour}"{point}>{inner}</FONT>'


def text(s: str, colour: str, *, size: float | None = None, bold: bool = False) -> str:
    """Escape user text, then colour it."""
    return font(label_text(s), colour, size=size, bold=bold)


def cell(
    html: str,
    *,
    align: str = "LEFT",
    colspan: int = 1,
    rowspan: int = 1,
    bgcolor: str | None = None,
    sides: str | None = None,
    colour: str | None = None,
    balign: str | None = None,
) -> str:
    attrs = [f'ALIGN="{align}"']
    if balign:
        attrs.append(f'BALIGN="{balign}"')
    if colspan > 1:
        attrs.append(f'COLSPAN="{colspan}"')
    if rowspan > 1:
        attrs.append(f'ROWSPAN="{rowspan}"')
    if bgcolor:
        attrs.append(f'BGCOLOR="{bgcolor}"')
    if sides:
        attrs.append(f'BORDER="1" SIDES="{sides}"')
    if colour:
        attrs.append(f'COLOR="{colour}"')
    return f"<TD {' '.join(attrs)}>{html}</TD>"


def row(*cells: str) -> str:
    return "<TR>" + "".join(cells) + "</TR>"


def table(rows: list[str], *, padding: int = 1, spacing: int = 0, extra: str = "") -> str:
    head = f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="{spacing}" CELLPADDING="{padding}"{extra}>'
    return head + "".join(rows) + "</TABLE>"


def tensor(info: TensorInfo | None, ink: Ink, *, precision: int, max_elements: int, stats: bool, size: float) -> str:
    """A tensor as label html: the values (matrices as matrices) when small, else shape, dtype and statistics."""
    if info is None:
        return text("None", ink.none, size=size)
    colour = ink.warning if is_warning(info) else ink.text
    if info.numel == 0:
        return text(f"{shape_text(info.shape)} (empty)", colour, size=size)
    if not has_values(info, max_elements):
        lines = [text(summary(info), colour, size=size)]
        if info.stats is not None:
            line = stats_text(info.stats, precision) if stats else inline(info, precision, 0)
            lines.append(text(line, colour if is_warning(info) else ink.muted, size=size - 1))
        return '<BR ALIGN="LEFT"/>'.join(lines) + '<BR ALIGN="LEFT"/>'
    shown = grid(info, precision)
    if not info.shape:
        return text(shown.rows[0][0], colour, size=size)
    if len(info.shape) == 1:
        return font(_wrapped(list(shown.rows[0]), "[", "]"), colour, size=size)
    if len(info.shape) == 2 and info.shape[1] == 1:
        # a column vector, which one number per line would make tall: '[[1], [2]]' on wrapped lines
        return font(_wrapped([f"[{r[0]}]" for r in shown.rows], "[", "]"), colour, size=size)
    return brackets(shown.rows, info.shape, colour, size=size)


def _wrapped(numbers: list[str], opening: str, closing: str) -> str:
    """Numbers joined by commas between brackets, the line broken after every VECTOR_WRAP of them."""
    chunks = [", ".join(numbers[i : i + VECTOR_WRAP]) for i in range(0, len(numbers), VECTOR_WRAP)]
    body = ',<BR ALIGN="LEFT"/>'.join(label_text(c) for c in chunks)
    return label_text(opening) + body + label_text(closing)


def brackets(rows: tuple[tuple[str, ...], ...], shape: tuple[int, ...], colour: str, *, size: float) -> str:
    """A tensor of two or more dimensions in the nested brackets torch prints and edges show ('[[1, 0]]'): one row
    of its last dimension per line, a line longer than VECTOR_WRAP numbers going on under itself. The brackets give
    the shape; there are no vertical bars to read as a determinant. Numbers are padded with figure spaces (the
    width of a digit) so that columns line up: a nested table would do it, but Graphviz stretches nested tables."""
    lead = shape[:-1]
    index = [0] * len(lead)
    widths = [max((len(r[c]) for r in rows if c < len(r)), default=0) for c in range(max(map(len, rows), default=0))]
    lines = []
    for r, values in enumerate(rows):
        opens = 1 + _run_at_end(index, lambda k, i: i == 0)
        closes = 1 + _run_at_end(index, lambda k, i: i == lead[k] - 1)
        indent = " " * (len(lead) + 1 - opens)
        padded = [FIGURE_SPACE * (widths[c] - len(v)) + v for c, v in enumerate(values)]
        chunks = [padded[i : i + VECTOR_WRAP] for i in range(0, len(padded), VECTOR_WRAP)] or [[]]
        for c, chunk in enumerate(chunks):
            head = indent + "[" * opens if c == 0 else " " * (len(lead) + 1)
            tail = "]" * closes + ("" if r == len(rows) - 1 else ",") if c == len(chunks) - 1 else ","
            lines.append(head + ", ".join(chunk) + tail)
        _advance(index, lead)
    return font('<BR ALIGN="LEFT"/>'.join(label_text(line) for line in lines) + '<BR ALIGN="LEFT"/>', colour, size=size)


FIGURE_SPACE = "\u2007"  # as wide as a digit


def _run_at_end(index: list[int], test: Callable[[int, int], bool]) -> int:
    """How many of the last entries of a multi-index pass `test(position, value)`, counted from the end."""
    count = 0
    for k in range(len(index) - 1, -1, -1):
        if not test(k, index[k]):
            break
        count += 1
    return count


def _advance(index: list[int], shape: tuple[int, ...]) -> None:
    """The next multi-index in row-major order (in place)."""
    for k in range(len(index) - 1, -1, -1):
        index[k] += 1
        if index[k] < shape[k]:
            return
        index[k] = 0
