"""The gradient-norm profile as a self-contained SVG string: ‖v‖ per step on a log scale, flags marked.

Pure string work (no plotting library, no Graphviz): the same Health gives byte-identical SVG. Every point
has a <title> tooltip; zero and missing norms sit in a band under the axis, NaN/Inf in a band above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..model.textfmt import num
from .escape import page_text

if TYPE_CHECKING:  # pragma: no cover
    from ..analyse.health import Health, NormPoint

COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0", "ok": "#37474f", "leaf": "#2e7d32"}
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 24, 40, 56
_BAND = 14  # height of the zero/None band below the plot and the NaN/Inf band above it


def norm_profile_svg(
    health: Health,
    *,
    height: int = 260,
    width: int | None = None,
    title: str | None = None,
    colour: Callable[[float], str] | None = None,
) -> str:
    """SVG text of ‖v‖ (gradient arriving) per executed step, in execution order.

    Thresholds (seed norm × vanishing / exploding) are drawn as dashed lines when they fall in the plotted
    range; points carry the colour of the worst flag at their node; leaves (AccumulateGrad) are squares.
    `colour` (norm -> colour): fill each point with the colour a graph drawn beside the chart gives that norm, so
    both pictures share one colour scale; the worst flag then colours the point's ring."""
    points = list(health.profile)
    n = max(len(points), 1)
    plot_w = width - _LEFT - _RIGHT if width is not None else min(max(12 * n, 360), 1200)
    plot_h = max(height - _TOP - _BOTTOM - 2 * _BAND, 60)
    total_w, total_h = plot_w + _LEFT + _RIGHT, plot_h + _TOP + _BOTTOM + 2 * _BAND
    y0 = _TOP + _BAND  # top of the log-scale area

    positive = [p.norm for p in points if p.norm is not None and p.norm > 0 and math.isfinite(p.norm)]
    lines = _threshold_lines(health)
    # The range covers the data and the seed's norm; a threshold line is drawn only when it falls inside.
    logs = [math.log10(v) for v in positive] + [math.log10(v) for label, v in lines if label == "seed norm"]
    lo = math.floor(min(logs)) if logs else -1
    hi = math.ceil(max(logs)) if logs else 1
    if hi == lo:
        lo, hi = lo - 1, hi + 1

    def x_of(i: int) -> float:
        return _LEFT + (i + 0.5) * plot_w / n

    def y_of(value: float) -> float:
        return y0 + (hi - math.log10(value)) / (hi - lo) * plot_h

    worst = _worst_flags(health)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
        f'viewBox="0 0 {total_w} {total_h}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f"<title>{page_text(title or 'gradient norm per backward step')}</title>",
        f'<rect x="0" y="0" width="{total_w}" height="{total_h}" fill="white"/>',
        f'<text x="{_LEFT}" y="18" font-size="13" font-weight="bold">'
        f"{page_text(title or '‖v‖ arriving at each backward step (log scale)')}</text>",
    ]
    label_every = max(1, math.ceil(14 / (plot_h / (hi - lo))))  # keep decade labels 14 px apart
    for decade in range(lo, hi + 1):
        y = y_of(10.0**decade)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        if (decade - lo) % label_every == 0:
            out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">1e{decade}</text>')
    out.append(f'<line x1="{_LEFT}" y1="{y0}" x2="{_LEFT}" y2="{y0 + plot_h}" stroke="#424242"/>')
    out.append(f'<line x1="{_LEFT}" y1="{y0 + plot_h}" x2="{_LEFT + plot_w}" y2="{y0 + plot_h}" stroke="#424242"/>')
    for label, value in lines:
        if value > 0 and lo <= math.log10(value) <= hi:
            y = y_of(value)
            out.append(
                f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="#9e9e9e" '
                f'stroke-dasharray="4 3"><title>{page_text(label)}: {num(value)}</title></line>'
            )
            out.append(
                f'<text x="{_LEFT + plot_w}" y="{y - 3:.1f}" text-anchor="end" fill="#757575">{page_text(label)}</text>'
            )
    out.extend(_polylines(points, x_of, y_of))
    for i, p in enumerate(points):
        out.append(_marker(p, x_of(i), y_of, y0, plot_h, worst.get(p.step), colour))
    step_every = max(1, math.ceil(n / 20))
    for i, p in enumerate(points):
        if i % step_every == 0 or i == len(points) - 1:
            out.append(
                f'<text x="{x_of(i):.1f}" y="{y0 + plot_h + _BAND + 14:.1f}" text-anchor="middle">{p.step}</text>'
            )
    key = "colour: worst flag" if colour is None else "fill: ‖v‖ in the graph's colours, ring: worst flag"
    out.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{total_h - 8}" text-anchor="middle">'
        f"backward step (execution order); ○ node, □ leaf; {key}</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _threshold_lines(health: Health) -> list[tuple[str, float]]:
    seed = health.seed_norm
    if seed is None or seed <= 0 or not math.isfinite(seed):
        return []
    return [("seed norm", seed), ("vanishing", seed * health.vanishing), ("exploding", seed * health.exploding)]


def _worst_flags(health: Health) -> dict[int, str]:
    rank = {"error": 0, "warning": 1, "info": 2}
    worst: dict[int, str] = {}
    for f in health.flags:
        if f.node is None:
            continue
        current = worst.get(f.node)
        if current is None or rank[f.severity] < rank[current]:
            worst[f.node] = f.severity
    return worst


def _plottable(p: NormPoint) -> bool:
    return p.norm is not None and p.norm > 0 and math.isfinite(p.norm)


def _polylines(points: list[NormPoint], x_of: Callable[[int], float], y_of: Callable[[float], float]) -> list[str]:
    """One polyline per run of plottable points (a zero or missing norm breaks the line)."""
    runs: list[list[str]] = [[]]
    for i, p in enumerate(points):
        if _plottable(p):
            assert p.norm is not None
            runs[-1].append(f"{x_of(i):.1f},{y_of(p.norm):.1f}")
        elif runs[-1]:
            runs.append([])
    return [
        f'<polyline points="{" ".join(run)}" fill="none" stroke="#90a4ae" stroke-width="1.5"/>' for run in runs if run
    ]


def _marker(
    p: NormPoint,
    x: float,
    y_of: Callable[[float], float],
    y0: float,
    plot_h: float,
    severity: str | None,
    shared: Callable[[float], str] | None = None,
) -> str:
    colour = COLOURS[severity] if severity else (COLOURS["leaf"] if p.leaf else COLOURS["ok"])
    approx = " ≈ (estimated from a sample)" if p.estimated else ""
    leaf = f" → {p.leaf}" if p.leaf else ""
    tip = f"step {p.step} {p.name}{leaf}: ‖v‖ = {num(p.norm)}, ‖vᵀJ‖ = {num(p.sent)}{approx}"
    if severity:
        tip += f" [{severity}]"
    if _plottable(p):
        assert p.norm is not None
        y = y_of(p.norm)
        fill = shared(p.norm) if shared is not None else colour
    elif p.norm is not None and not math.isfinite(p.norm):
        y, fill = y0 - _BAND / 2, COLOURS["error"]
    else:
        y, fill = y0 + plot_h + _BAND / 2, "white"
    if p.leaf:
        shape = f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{fill}" stroke="{colour}"'
    else:
        shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" stroke="{colour}"'
    return f"{shape}><title>{page_text(tip)}</title>{'</rect>' if p.leaf else '</circle>'}"
