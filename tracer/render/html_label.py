"""Tiny builders for Graphviz HTML-like labels: tables, cells and fonts, and a tensor laid out as text or matrix."""

from __future__ import annotations

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
    if len(info.shape) == 1 or (len(info.shape) == 2 and info.shape[1] == 1):
        # vectors, and column vectors (which as a matrix would stand one number per line), as wrapped text
        column = len(info.shape) == 2
        numbers = [f"[{r[0]}]" for r in shown.rows] if column else list(shown.rows[0])
        chunks = [", ".join(numbers[i : i + VECTOR_WRAP]) for i in range(0, len(numbers), VECTOR_WRAP)]
        body = (',<BR ALIGN="LEFT"/>').join(label_text(c) for c in chunks)
        return font(label_text("[") + body + label_text("]"), colour, size=size)
    return matrix(shown.rows, shown.labels, colour, ink, size=size)


def matrix(
    rows: tuple[tuple[str, ...], ...], labels: tuple[str, ...] | None, colour: str, ink: Ink, *, size: float
) -> str:
    """Numbers in aligned columns between thin vertical bars; `labels` index the rows of an n-d tensor.

    (Graphviz stretches a nested table to fill its cell, so the bars are borders of the outer number cells.)
    """
    out = []
    for r, values in enumerate(rows):
        cells = []
        if labels is not None:
            cells.append(cell(text(labels[r], ink.muted, size=size - 1), align="RIGHT"))
        last = len(values) - 1
        for c, v in enumerate(values):
            sides = ("L" if c == 0 else "") + ("R" if c == last else "")
            cells.append(cell(text(v, colour, size=size), align="CENTER", sides=sides or None, colour=ink.muted))
        out.append(row(*cells))
    return table(out, padding=1)
