"""Plain-text formatting shared by the analysis reports: numbers at a fixed precision, tensors, aligned tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .records import TensorInfo
from .visible_text import visible

# Machine epsilon by recorded dtype name, so tolerances can be set without importing torch.
_EPS = {
    "float64": 2.220446049250313e-16,
    "float32": 1.1920928955078125e-07,
    "float16": 0.0009765625,
    "bfloat16": 0.0078125,
    "complex128": 2.220446049250313e-16,
    "complex64": 1.1920928955078125e-07,
}


def eps(dtype: str) -> float:
    """Machine epsilon of a recorded dtype name ('float32'); float32's for anything unknown."""
    return _EPS.get(dtype, _EPS["float32"])


def num(x: float | int | None, digits: int = 4) -> str:
    """A number at `digits` significant digits, the same text on every platform ('—' for None)."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    return text.replace("e+0", "e+").replace("e-0", "e-")


def shape(s: Sequence[int] | None) -> str:
    return "—" if s is None else "[" + ", ".join(str(d) for d in s) + "]"


def tensor(info: TensorInfo | None, *, max_values: int = 6) -> str:
    """Values when few were kept, else norm and range; '≈' marks statistics estimated from a sample."""
    if info is None:
        return "None"
    if info.values is not None and len(info.values) <= max_values:
        if not info.shape:
            return num(info.values[0])
        return "[" + ", ".join(num(v) for v in info.values) + "]"
    if info.stats is None:
        return f"{shape(info.shape)} (empty)"
    mark = "" if info.stats.exact else "≈"
    return f"{shape(info.shape)} ‖·‖{mark}={num(info.stats.norm)} in [{num(info.stats.min)}, {num(info.stats.max)}]"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Left-aligned columns separated by two spaces; trailing spaces stripped. Each cell is shown on one line by
    visible() (a name's newline as `\\n`, an ANSI escape as `\\x1b`), so user text never acts on the terminal."""
    rows = [[visible(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        lines.append((indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))).rstrip())
    return "\n".join(lines)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"
