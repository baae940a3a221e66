"""The timeline chart as one self-contained SVG: a heatmap of gradient norms (rows × passes, log colour) and lines.

Pure string work, like profile_chart.py: the same Timeline gives byte-identical SVG. The heatmap has a row per
module (or per leaf) — under torch.distributed a row per module and rank, the ranks of a module side by side — and a
column per pass; a long run's passes are binned so the picture stays a few hundred columns wide (a bin shows its
largest norm, and NaN or Inf when any of its passes had one). Below, lines for a few modules: the gradient norm
and, where the digests saw the parameters change, the update ratio ‖Δw‖ / ‖w‖, both on log axes. Every cell and
point carries a <title> tooltip; every name goes through escape.page_text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analyse.timeline import to_csv, to_json
from ..model.textfmt import num
from ..model.timeline_records import CellMark, Series, Timeline
from .escape import page_text
from .output_files import write_atomic
from .style import THEMES, ColourScale, Theme, tick_labels

MAX_COLUMNS = 400  # heatmap columns at most: beyond, passes are binned
MAX_LINES = 6  # modules drawn as lines when none are chosen
LINE_COLOURS = ("#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#546e7a")
MARK_COLOUR = "#ef6c00"  # the outline of a vanishing / exploding cell, and of a flagged pass in the strip
INF_COLOUR = "#4a148c"  # Inf cells: a deep purple, apart from NaN's warning red and from every ramp colour
_LEFT_PAD, _RIGHT, _TOP = 12, 24, 44
_ROW = 16  # heatmap row height
_PANEL = 150  # height of a line panel's log area
_BAND = 12  # the NaN/Inf band above a line panel
_CHAR = 6.4  # average width of one character at font-size 11, for the row labels
FORMATS = ("svg", "csv", "json")
FLAG_ROW = "flags · kept"  # the label of the strip above the heatmap


@dataclass(frozen=True)
class _Bin:
    """The passes one heatmap column stands for: columns first..last of the Timeline."""

    first: int
    last: int


def timeline_svg(
    line: Timeline,
    *,
    modules: Sequence[str] | None = None,
    rows: str = "modules",
    width: int = 960,
    max_columns: int = MAX_COLUMNS,
    theme: str = "light",
    title: str | None = None,
) -> str:
    """SVG text of the timeline: the heatmap of `rows` ("modules" or "leaves") and lines for `modules` (default:
    the flagged ones, then the largest, at most six)."""
    if rows not in ("modules", "leaves"):
        raise ValueError(f"unknown rows: {rows!r} (must be one of ['modules', 'leaves'])")
    if theme not in THEMES:
        raise ValueError(f"unknown theme: {theme!r} (must be one of {list(THEMES)})")
    if isinstance(max_columns, bool) or not isinstance(max_columns, int) or max_columns < 1:
        raise ValueError(f"max_columns must be a whole number >= 1, got {max_columns!r}")
    look = THEMES[theme]
    series = _interleaved(list(line.modules if rows == "modules" else line.leaves))
    chosen = _chosen(line, modules)
    label_w = min(max((len(s.title) for s in series), default=0) * _CHAR, 260)
    label_w = max(label_w, len(FLAG_ROW) * _CHAR) + _LEFT_PAD + 8
    plot_w = max(width - label_w - _RIGHT, 200)
    total_w = label_w + plot_w + _RIGHT
    bins = _bins(len(line.passes), max_columns)
    cell_w = plot_w / max(len(bins), 1)
    scale = ColourScale(look, (n for s in series for n in s.grad_norm))

    def x_of(column: float) -> float:  # a Timeline column (may be fractional) to pixels
        return label_w + (column + 0.5) * plot_w / max(len(line.passes), 1)

    heading = title or f"Gradient norm per {rows[:-1]} across {len(line.passes)} passes"
    out: list[str] = []
    y: float = _TOP
    out.append(
        f'<text x="{_LEFT_PAD}" y="20" font-size="13" font-weight="bold" fill="{look.text}">{page_text(heading)}</text>'
    )
    out.append(f'<text x="{_LEFT_PAD}" y="35" fill="{look.muted}">{page_text(_subtitle(line, len(bins)))}</text>')
    y = _flag_row(out, line, bins, label_w, cell_w, y, look)
    for s in series:
        out.append(_row_label(s, y, label_w, look))
        for b, span in enumerate(bins):
            out.append(_cell(line, s, span, label_w + b * cell_w, y, cell_w, scale, look))
        y += _ROW
    out.append(
        f'<rect x="{label_w}" y="{_TOP + _ROW}" width="{plot_w:.1f}" height="{len(series) * _ROW}" fill="none" '
        f'stroke="{look.faint}"/>'
    )
    y = _pass_axis(out, line, label_w, plot_w, y + 4, x_of, look)
    y = _legend(out, scale, label_w, y + 6, look, ranks=len(line.ranks) > 1)
    if chosen:
        y = _line_panel(out, line, chosen, "grad_norm", "‖grad‖ (log scale)", label_w, plot_w, y + 12, x_of, look)
        if any(r is not None for s in chosen for r in s.update_ratio):
            y = _line_panel(
                out,
                line,
                chosen,
                "update_ratio",
                "update ratio ‖Δw‖/‖w‖ (log scale)",
                label_w,
                plot_w,
                y + 8,
                x_of,
                look,
            )
        y = _line_legend(out, chosen, label_w, label_w + plot_w, y + 4, look)
    total_h = y + 12
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{total_h:.0f}" '
        f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" font-family="{look.font}, Helvetica, Arial, sans-serif" '
        f'font-size="11">'
    )
    background = (
        ""
        if look.background == "transparent"
        else f'<rect x="0" y="0" width="{total_w:.0f}" height="{total_h:.0f}" fill="{look.background}"/>'
    )
    return "\n".join([head, f"<title>{page_text(heading)}</title>", background, *out, "</svg>"]) + "\n"


def save_timeline(line: Timeline, path: str | Path, **options: Any) -> Path:
    """Write the chart (.svg) or the numbers (.csv, .json), picked by the suffix; the path written."""
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown timeline format: {target.suffix or '(no suffix)'!r} (must be one of "
            f"{['.' + f for f in FORMATS]}): give a file name that ends in one of them, e.g. timeline.svg"
        )
    if fmt != "svg" and options:
        raise ValueError(f"{sorted(options)} are options of the chart; a .{fmt} file holds the numbers only")
    text = timeline_svg(line, **options) if fmt == "svg" else to_csv(line) if fmt == "csv" else to_json(line)
    write_atomic(target, text.encode("utf-8"))
    return target


# --------------------------------------------------------------------------- what to draw


def _interleaved(series: list[Series]) -> list[Series]:
    """Rows in first-seen order of their names, each name's ranks side by side (rank 0, rank 1, ...)."""
    order: dict[str, int] = {}
    for s in series:
        order.setdefault(s.name, len(order))
    return sorted(series, key=lambda s: (order[s.name], -1 if s.rank is None else s.rank))


def _chosen(line: Timeline, names: Sequence[str] | None) -> list[Series]:
    """The module series drawn as lines: those named (any rank), or the flagged ones first, then the largest."""
    if names is not None:
        unknown = [n for n in names if not any(s.name == n for s in (*line.modules, *line.leaves))]
        if unknown:
            have = [s.name for s in line.modules]
            raise ValueError(f"no module or leaf {unknown[0]!r} in this timeline (modules: {have[:10]})")
        picked: dict[tuple[str, int | None], Series] = {}
        for n in names:
            for s in (*line.modules, *line.leaves):
                if s.name == n:
                    picked.setdefault((s.name, s.rank), s)  # a module and a leaf of one name: the module
        return list(picked.values())

    def size(s: Series) -> float:
        finite = [n for n in s.grad_norm if n is not None and math.isfinite(n) and n > 0]
        return max(finite, default=0.0)

    flagged = [s for s in line.modules if any(s.marks)]
    rest = sorted((s for s in line.modules if s not in flagged), key=size, reverse=True)
    return (flagged + rest)[:MAX_LINES]


def _bins(columns: int, max_columns: int) -> list[_Bin]:
    if columns <= max_columns:
        return [_Bin(k, k) for k in range(columns)]
    per = math.ceil(columns / max_columns)
    return [_Bin(k, min(k + per, columns) - 1) for k in range(0, columns, per)]


def _subtitle(line: Timeline, columns: int) -> str:
    ranks = [r for r in line.ranks if r is not None]
    parts = ["colour: log10 of the gradient norm of the pass"]
    if columns < len(line.passes):
        per = math.ceil(len(line.passes) / columns)
        parts.append(f"{per} passes per column (the largest norm; NaN/Inf if any)")
    if len(ranks) > 1:
        parts.append(f"ranks {', '.join(str(r) for r in ranks)} side by side")
    return "; ".join(parts)


def _span_text(line: Timeline, span: _Bin) -> str:
    first, last = line.passes[span.first], line.passes[span.last]
    return f"pass {first}" if first == last else f"passes {first}–{last}"


# --------------------------------------------------------------------------- heatmap


def _flag_row(
    out: list[str], line: Timeline, bins: list[_Bin], left: float, cell_w: float, y: float, look: Theme
) -> float:
    """A strip above the heatmap: which passes the digests flagged (red NaN/Inf, orange vanishing/exploding) and
    which were kept whole (a dark tick: the passes gradtrace run draws)."""
    out.append(f'<text x="{left - 6:.1f}" y="{y + 11}" text-anchor="end" fill="{look.muted}">{FLAG_ROW}</text>')
    for b, span in enumerate(bins):
        flags = sorted({f for k in range(span.first, span.last + 1) for f in line.flags[k]})
        kept = [line.passes[k] for k in range(span.first, span.last + 1) if line.kept[k]]
        x = left + b * cell_w
        if flags:
            colour = look.warning if {"nan", "inf"} & set(flags) else MARK_COLOUR
            out.append(
                f'<rect x="{x:.2f}" y="{y + 2}" width="{max(cell_w, 1.5):.2f}" height="7" fill="{colour}">'
                f"<title>{page_text(_span_text(line, span))}: {page_text(', '.join(flags))}</title></rect>"
            )
        if kept:
            out.append(
                f'<rect x="{x + cell_w / 2 - 0.75:.2f}" y="{y + 10}" width="1.5" height="5" fill="{look.text}">'
                f"<title>kept (drawn): pass{'es' if len(kept) > 1 else ''} "
                f"{page_text(', '.join(str(i) for i in kept[:20]))}{' …' if len(kept) > 20 else ''}</title></rect>"
            )
    return y + _ROW


def _row_label(s: Series, y: float, label_w: float, look: Theme) -> str:
    room = int((label_w - _LEFT_PAD - 8) / _CHAR)
    text = s.title if len(s.title) <= room else s.title[: max(room - 1, 1)] + "…"
    return (
        f'<text x="{label_w - 6:.1f}" y="{y + 12}" text-anchor="end" fill="{look.text}">{page_text(text)}'
        f"<title>{page_text(s.title)} ({s.kind}: {page_text(', '.join(s.leaves[:8]))}"
        f"{' …' if len(s.leaves) > 8 else ''})</title></text>"
    )


def _bin_value(s: Series, span: _Bin) -> tuple[float | None, set[CellMark]]:
    """The bin's norm (NaN / Inf when any pass had one, else the largest) and the marks of its passes."""
    values = [s.grad_norm[k] for k in range(span.first, span.last + 1)]
    marks = {m for k in range(span.first, span.last + 1) for m in s.marks[k]}
    present = [v for v in values if v is not None]
    if not present:
        return None, marks
    if any(math.isnan(v) for v in present) or "nan" in marks:
        return math.nan, marks
    if any(math.isinf(v) for v in present) or "inf" in marks:
        return math.inf, marks
    return max(present), marks


def _cell(line: Timeline, s: Series, span: _Bin, x: float, y: float, w: float, scale: ColourScale, look: Theme) -> str:
    value, marks = _bin_value(s, span)
    if value is None:
        return ""  # no gradient in these passes: the background shows through
    if math.isnan(value):
        fill, shown = look.warning, "NaN"
    elif math.isinf(value):
        fill, shown = INF_COLOUR, "Inf"
    else:
        fill, shown = scale.colour(value), num(value)
    ratios = [s.update_ratio[k] for k in range(span.first, span.last + 1) if s.update_ratio[k] is not None]
    tip = f"{s.title}, {_span_text(line, span)}: ‖grad‖ = {shown}"
    if span.first != span.last and shown not in ("NaN", "Inf"):
        tip += " (largest)"
    if ratios and span.first == span.last:
        tip += f", update ratio = {num(ratios[0])}"
    if marks:
        tip += f" [{', '.join(sorted(marks))}]"
    cell = (
        f'<rect x="{x:.2f}" y="{y + 1}" width="{max(w, 0.5):.2f}" height="{_ROW - 2}" fill="{fill}">'
        f"<title>{page_text(tip)}</title></rect>"
    )
    # a band along the cell's foot marks it: visible however narrow the cells of a long run are
    band = None
    if "diverged" in marks:
        band = look.text
    elif {"vanishing", "exploding"} & marks and math.isfinite(value):
        band = MARK_COLOUR
    if band is not None:
        cell += f'<rect x="{x:.2f}" y="{y + _ROW - 4}" width="{max(w, 0.5):.2f}" height="3" fill="{band}"/>'
    return cell


def _pass_axis(
    out: list[str],
    line: Timeline,
    left: float,
    plot_w: float,
    y: float,
    x_of: Callable[[float], float],
    look: Theme,
) -> float:
    n = len(line.passes)
    every = max(1, math.ceil(n / 10))
    for k in range(0, n, every):
        out.append(
            f'<text x="{x_of(k):.1f}" y="{y + 10}" text-anchor="middle" fill="{look.muted}">{line.passes[k]}</text>'
        )
    if n > 1 and (n - 1) % every:
        out.append(
            f'<text x="{left + plot_w:.1f}" y="{y + 10}" text-anchor="end" fill="{look.muted}">{line.passes[-1]}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{y + 24}" text-anchor="middle" fill="{look.text}">backward pass</text>'
    )
    return y + 28


def _legend(out: list[str], scale: ColourScale, left: float, y: float, look: Theme, *, ranks: bool) -> float:
    """The colour bar (log scale) with its ticks, then the swatches for NaN, Inf, zero and no gradient."""
    x = left
    bar_w = 300
    ticks = scale.ticks(5)
    if ticks:
        steps = 44
        for i in range(steps):
            position = i / (steps - 1)
            value = 10 ** ((scale.low or 0) + ((scale.high or 0) - (scale.low or 0)) * position)
            out.append(
                f'<rect x="{x + i * bar_w / steps:.2f}" y="{y}" width="{bar_w / steps + 0.3:.2f}" height="10" '
                f'fill="{scale.colour(value)}"/>'
            )
        for i, (tick, text) in enumerate(zip(ticks, tick_labels(ticks), strict=True)):
            tx = x + (bar_w * i / (len(ticks) - 1) if len(ticks) > 1 else bar_w / 2)
            anchor = "middle"
            if len(ticks) > 1 and i in (0, len(ticks) - 1):
                anchor = "start" if i == 0 else "end"
            out.append(
                f'<text x="{tx:.1f}" y="{y + 22}" text-anchor="{anchor}" fill="{look.muted}">{text}'
                f"<title>{num(tick)}</title></text>"
            )
        x += bar_w + 18
    for colour, text in (
        (look.warning, "NaN"),
        (INF_COLOUR, "Inf"),
        (look.zero, "zero"),
        ("none", "no gradient"),
    ):
        stroke = f' stroke="{look.faint}"' if colour == "none" else ""
        out.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="10" fill="{colour}"{stroke}/>')
        out.append(f'<text x="{x + 16:.1f}" y="{y + 9}" fill="{look.text}">{text}</text>')
        x += 24 + len(text) * _CHAR
    out.append(
        f'<rect x="{x:.1f}" y="{y + 7}" width="12" height="3" fill="{MARK_COLOUR}"/>'
        f'<text x="{x + 16:.1f}" y="{y + 9}" fill="{look.text}">vanishing / exploding</text>'
    )
    if ranks:
        x += 24 + len("vanishing / exploding") * _CHAR
        out.append(
            f'<rect x="{x:.1f}" y="{y + 7}" width="12" height="3" fill="{look.text}"/>'
            f'<text x="{x + 16:.1f}" y="{y + 9}" fill="{look.text}">rank apart from the others</text>'
        )
    return y + 28


# --------------------------------------------------------------------------- lines


def _line_panel(
    out: list[str],
    line: Timeline,
    chosen: list[Series],
    field: str,
    caption: str,
    left: float,
    plot_w: float,
    y: float,
    x_of: Callable[[float], float],
    look: Theme,
) -> float:
    """A log-y panel with one polyline per chosen series; NaN/Inf sit as crosses in a band above the axes."""
    values = [list(getattr(s, field)) for s in chosen]
    positive = [v for vs in values for v in vs if v is not None and math.isfinite(v) and v > 0]
    lo = math.floor(math.log10(min(positive))) if positive else -1
    hi = math.ceil(math.log10(max(positive))) if positive else 1
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    out.append(f'<text x="{left:.1f}" y="{y + 10}" font-weight="bold" fill="{look.text}">{page_text(caption)}</text>')
    top = y + 16 + _BAND
    bottom = top + _PANEL

    def y_of(value: float) -> float:
        return top + (hi - math.log10(value)) / (hi - lo) * _PANEL

    every = max(1, math.ceil((hi - lo) / (_PANEL / 14)))
    decades = list(range(lo, hi + 1))
    for decade, text in zip(decades, tick_labels([10.0**d for d in decades]), strict=True):
        yy = y_of(10.0**decade)
        out.append(
            f'<line x1="{left:.1f}" y1="{yy:.1f}" x2="{left + plot_w:.1f}" y2="{yy:.1f}" stroke="{look.faint}"/>'
        )
        if (decade - lo) % every == 0:
            out.append(f'<text x="{left - 6:.1f}" y="{yy + 4:.1f}" text-anchor="end" fill="{look.muted}">{text}</text>')
    out.append(f'<line x1="{left:.1f}" y1="{top}" x2="{left:.1f}" y2="{bottom}" stroke="{look.muted}"/>')
    out.append(f'<line x1="{left:.1f}" y1="{bottom}" x2="{left + plot_w:.1f}" y2="{bottom}" stroke="{look.muted}"/>')
    for s, vs, colour in zip(chosen, values, _colours(len(chosen)), strict=True):
        runs: list[list[str]] = [[]]
        for k, v in enumerate(vs):
            if v is not None and math.isfinite(v) and v > 0:
                runs[-1].append(f"{x_of(k):.1f},{y_of(v):.1f}")
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) == 1:
                px, py = run[0].split(",")
                out.append(f'<circle cx="{px}" cy="{py}" r="2" fill="{colour}"/>')
            elif run:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.4">'
                    f"<title>{page_text(s.title)}</title></polyline>"
                )
        for k, v in enumerate(vs):
            if v is not None and not math.isfinite(v):
                cx, cy = x_of(k), top - _BAND / 2
                what = "NaN" if math.isnan(v) else "Inf"
                out.append(
                    f'<path d="M{cx - 3:.1f},{cy - 3:.1f} L{cx + 3:.1f},{cy + 3:.1f} M{cx - 3:.1f},{cy + 3:.1f} '
                    f'L{cx + 3:.1f},{cy - 3:.1f}" stroke="{look.warning}" stroke-width="1.6">'
                    f"<title>{page_text(s.title)}, pass {line.passes[k]}: {what}</title></path>"
                )
    n = len(line.passes)
    every_pass = max(1, math.ceil(n / 10))
    for k in range(0, n, every_pass):
        out.append(
            f'<text x="{x_of(k):.1f}" y="{bottom + 12}" text-anchor="middle" fill="{look.muted}">'
            f"{line.passes[k]}</text>"
        )
    if any(v is not None and not math.isfinite(v) for vs in values for v in vs):
        out.append(
            f'<text x="{left + plot_w:.1f}" y="{top - _BAND - 2:.1f}" text-anchor="end" fill="{look.warning}">'
            "× NaN / Inf</text>"
        )
    return bottom + 18


def _colours(count: int) -> list[str]:
    return [LINE_COLOURS[i % len(LINE_COLOURS)] for i in range(count)]


def _line_legend(out: list[str], chosen: list[Series], left: float, right: float, y: float, look: Theme) -> float:
    x = left
    for s, colour in zip(chosen, _colours(len(chosen)), strict=True):
        text = s.title if len(s.title) <= 40 else s.title[:39] + "…"
        if x > left and x + 34 + len(text) * _CHAR > right:  # wrap instead of running off the picture
            x, y = left, y + 16
        out.append(
            f'<line x1="{x:.1f}" y1="{y + 6}" x2="{x + 16:.1f}" y2="{y + 6}" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{x + 20:.1f}" y="{y + 10}" fill="{look.text}">{page_text(text)}</text>')
        x += 34 + len(text) * _CHAR
    return y + 16
