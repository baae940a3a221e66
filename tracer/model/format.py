"""Numbers, shapes, statistics and tensors as text at a fixed precision (plain strings, no markup)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .records import Scalar, Shape, Stats, TensorInfo

APPROX = "≈"


def number(x: Scalar, precision: int) -> str:
    """`precision` significant digits, no trailing zeros, a compact exponent ('1.5e4'), and 0 for -0.0."""
    if x.__class__ is float:  # the common case first: this runs for every number in every picture
        text = f"{x:.{precision}g}"  # also gives 'nan', 'inf', '-inf'
        if "e" in text:
            mantissa, _, exponent = text.partition("e")
            return f"{mantissa}e{int(exponent)}"
        return "0" if text == "-0" else text
    if isinstance(x, bool):
        return "True" if x else "False"
    if isinstance(x, int):
        return str(x)
    return number(float(x), precision)


def shape_text(shape: Shape) -> str:
    return "0-d" if not shape else "[" + ", ".join(str(d) for d in shape) + "]"


def percent(share: float) -> str:
    if share == 0 or share == 1:
        return f"{share * 100:.0f}%"
    return f"{share * 100:.3g}%"


def has_values(info: TensorInfo, max_elements: int) -> bool:
    """Whether the tensor is printed in full: its values were kept and it is small enough to read."""
    return info.values is not None and info.numel <= max_elements


def is_warning(info: TensorInfo | None) -> bool:
    """NaN or Inf somewhere in the tensor."""
    return info is not None and info.stats is not None and not info.stats.finite


@dataclass(frozen=True)
class Grid:
    """A tensor's values laid out for reading: one row for 0-d/1-d, rows of a matrix for 2-d, and for n-d one
    row per index of the leading dimensions (`labels` holds those indices)."""

    rows: tuple[tuple[str, ...], ...]
    labels: tuple[str, ...] | None = None


def grid(info: TensorInfo, precision: int) -> Grid:
    values = info.values if info.values is not None else ()
    cells = [number(v, precision) for v in values]
    shape = info.shape
    if len(shape) <= 1:
        return Grid((tuple(cells),))
    width = shape[-1]
    rows = tuple(tuple(cells[i : i + width]) for i in range(0, len(cells), width)) if width else ()
    if len(shape) == 2:
        return Grid(rows)
    labels = tuple("[" + ",".join(str(i) for i in index) + "]" for index in _indices(shape[:-1]))
    return Grid(rows, labels)


def _indices(shape: Shape) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for d in shape:
        out = [(*prefix, i) for prefix in out for i in range(d)]
    return out


def nested(info: TensorInfo, precision: int) -> str:
    """The values as one line, nested like the tensor: '[[1, 2], [3, 4]]'; a bare number for 0-d."""
    values = [number(v, precision) for v in (info.values or ())]
    if not info.shape:
        return values[0] if values else "?"
    return _nest(values, info.shape)


def _nest(values: list[str], shape: Shape) -> str:
    if len(shape) == 1:
        return "[" + ", ".join(values) + "]"
    step = math.prod(shape[1:])
    return "[" + ", ".join(_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])) + "]"


def norm_text(stats: Stats, precision: int) -> str:
    mark = "" if stats.exact or stats.norm_exact else APPROX
    return f"‖·‖ {mark}{number(stats.norm, precision)}"


def stats_text(stats: Stats, precision: int) -> str:
    """One compact line: norm, min, max, mean, zeros, and NaN/Inf counts when there are any."""
    mark = "" if stats.exact else APPROX
    counts_mark = "" if stats.exact or stats.norm_exact else APPROX  # an exact norm makes the counts exact
    parts = [
        norm_text(stats, precision),
        f"min {mark}{number(stats.min, precision)}",
        f"max {mark}{number(stats.max, precision)}",
        f"mean {mark}{number(stats.mean, precision)}",
        f"{mark}{percent(stats.zeros)} zeros",
    ]
    if stats.nan:
        parts.append(f"{counts_mark}{stats.nan} NaN")
    if stats.inf:
        parts.append(f"{counts_mark}{stats.inf} Inf")
    return " · ".join(parts)


def summary(info: TensorInfo) -> str:
    """Shape and dtype: '[1000, 10] float32'."""
    return f"{shape_text(info.shape)} {info.dtype}"


def inline(info: TensorInfo | None, precision: int, max_elements: int) -> str:
    """One short line for an edge label: the values when printed in full, else shape and norm."""
    if info is None:
        return "None"
    if info.numel == 0:
        return f"{shape_text(info.shape)} (empty)"
    if has_values(info, max_elements):
        return nested(info, precision)
    if info.stats is None:
        return summary(info)
    text = f"{shape_text(info.shape)} {norm_text(info.stats, precision)}"
    if not info.stats.finite:
        text += f" · {info.stats.nan} NaN · {info.stats.inf} Inf"
    return text


def brief(info: TensorInfo | None, precision: int) -> str:
    """All statistics on one line (tooltips of large graphs, which must stay small)."""
    if info is None:
        return "None (no gradient)"
    head = f"{shape_text(info.shape)} {info.dtype}"
    if info.stats is None:
        return head
    s = info.stats
    how = "" if s.exact else f" (≈ from {s.sampled} elements)"
    return f"{head} · {stats_text(s, precision)}{how}"


TOOLTIP_VALUES = 16  # values listed in a tooltip; the rest are in the trace's JSON


def details(info: TensorInfo | None, precision: int) -> list[str]:
    """Every recorded fact about a tensor, one per line, for tooltips (the first TOOLTIP_VALUES values)."""
    if info is None:
        return ["None (no gradient)"]
    lines = [f"shape {shape_text(info.shape)} · {info.dtype} · {info.device} · {info.numel} elements"]
    stats = info.stats
    if stats is not None and info.dtype.startswith("complex"):
        lines.append("statistics of the magnitudes |z| (complex values are not kept)")
    if stats is not None:
        sampled = f"estimated from {stats.sampled} of {info.numel} elements"
        how = "exact" if stats.exact or stats.norm_exact else sampled
        rest = "" if stats.exact else f" ({sampled})"
        lines += [
            f"norm {number(stats.norm, precision)} ({how})",
            f"min {number(stats.min, precision)} · max {number(stats.max, precision)} · "
            f"mean {number(stats.mean, precision)}{rest}",
            f"zeros {percent(stats.zeros)} · NaN {stats.nan} · Inf {stats.inf}",
        ]
    if info.values is not None and info.numel:
        if info.numel <= TOOLTIP_VALUES:
            lines.append("values " + nested(info, precision))
        else:
            lines.append(f"values: {info.numel} kept in the trace (not listed here)")
    return lines
