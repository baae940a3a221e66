"""Themes and the log-scale colour map of gradient size (norm) that every picture and its legend share."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Theme:
    """Colours of one look. `ramp` runs from the smallest gradient norm to the largest."""

    name: str
    background: str
    text: str
    muted: str  # secondary text: forward op, row names, Jacobian entries
    faint: str  # what is not computed yet in a step frame; zeros inside a Jacobian
    panel: str  # fill of node tables and label boxes
    header: str  # fill of a node's title row
    none: str  # None gradients, cut inputs, nodes that did not run
    zero: str  # a gradient that is exactly zero
    warning: str  # NaN/Inf, a failed vᵀJ check, the node that raised
    active: str  # the step being shown in a frame
    badge: str  # fill of the step-number badge
    badge_text: str
    ramp: tuple[str, ...]
    # Measured by Graphviz and named in the SVG: a wide font, so a browser lacking it falls back to a narrower
    # one that still fits the boxes (measuring Helvetica made text overflow where browsers drew DejaVu).
    font: str = "DejaVu Sans"


THEMES: dict[str, Theme] = {
    "light": Theme(
        name="light",
        background="white",
        text="#1f2328",
        muted="#57606a",
        faint="#c8ccd0",
        panel="#ffffff",
        header="#f0f2f5",
        none="#9aa0a6",
        zero="#8c8c8c",
        warning="#d1242f",
        active="#8250df",
        badge="#1f2328",
        badge_text="#ffffff",
        ramp=("#2f6fba", "#1b9e8f", "#5a9e1e", "#c98a00", "#e0570b"),
    ),
    "dark": Theme(
        name="dark",
        background="#0d1117",
        text="#e6edf3",
        muted="#9da7b3",
        faint="#3d444d",
        panel="#161b22",
        header="#21262d",
        none="#6e7681",
        zero="#8b949e",
        warning="#ff6b6b",
        active="#c297ff",
        badge="#e6edf3",
        badge_text="#0d1117",
        ramp=("#6fa8ff", "#3cc7b6", "#8ccf4d", "#f2b632", "#ff8a3d"),
    ),
    # Every text sits on its own filled box, and lines use mid tones: readable on white and on dark pages.
    "transparent": Theme(
        name="transparent",
        background="transparent",
        text="#1f2328",
        muted="#57606a",
        faint="#b8bcc2",
        panel="#fbfbfc",
        header="#e9ecf0",
        none="#8f969e",
        zero="#8c8c8c",
        warning="#e5323b",
        active="#9a6bff",
        badge="#1f2328",
        badge_text="#ffffff",
        ramp=("#3d7fd6", "#20a898", "#6aab2a", "#d69500", "#ea6a1a"),
    ),
}


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _mix(a: str, b: str, t: float) -> str:
    (r1, g1, b1), (r2, g2, b2) = _rgb(a), _rgb(b)
    return f"#{round(r1 + (r2 - r1) * t):02x}{round(g1 + (g2 - g1) * t):02x}{round(b1 + (b2 - b1) * t):02x}"


class ColourScale:
    """Maps a gradient norm to a colour on a log10 scale from `low` to `high`: the smallest and largest norm in the
    trace, or a range fixed by the caller (`fixed`), so that pictures shown together colour a norm alike."""

    def __init__(
        self, theme: Theme, norms: Iterable[float | None], *, fixed: tuple[float, float] | None = None
    ) -> None:
        self.theme = theme
        if fixed is not None:
            logs = [math.log10(fixed[0]), math.log10(fixed[1])]
        else:
            logs = [math.log10(n) for n in norms if n is not None and math.isfinite(n) and n > 0]
        self.low = min(logs) if logs else None
        self.high = max(logs) if logs else None

    @property
    def empty(self) -> bool:
        return self.low is None

    def position(self, norm: float) -> float:
        """Where a positive finite norm sits on the scale, 0..1 (norms outside a fixed range sit at its ends)."""
        assert self.low is not None and self.high is not None
        if self.high - self.low < 1e-12:
            return 0.5
        return min(1.0, max(0.0, (math.log10(norm) - self.low) / (self.high - self.low)))

    def colour(self, norm: float | None, finite: bool = True) -> str:
        if norm is None:
            return self.theme.none
        if not finite or not math.isfinite(norm):
            return self.theme.warning
        if norm == 0 or self.empty:
            return self.theme.zero
        ramp = self.theme.ramp
        x = self.position(norm) * (len(ramp) - 1)
        i = min(int(x), len(ramp) - 2)
        return _mix(ramp[i], ramp[i + 1], x - i)

    def ticks(self, count: int = 5) -> list[float]:
        """Norms evenly spaced on the log scale, for the legend (one when all norms are equal)."""
        if self.low is None or self.high is None:
            return []
        if self.high - self.low < 1e-12:
            return [_ten_to(self.low)]
        return [_ten_to(self.low + (self.high - self.low) * k / (count - 1)) for k in range(count)]


def norm_range(norms: Iterable[float | None]) -> tuple[float, float] | None:
    """The smallest and largest positive finite norm: the range a ColourScale spans; None when there is none."""
    shown = [n for n in norms if n is not None and math.isfinite(n) and n > 0]
    return (min(shown), max(shown)) if shown else None


PLAIN_LOW, PLAIN_HIGH = 1e-3, 1e5  # tick labels inside this range are written as plain decimals


def tick_labels(ticks: list[float]) -> list[str]:
    """The legend's tick labels in one number format, two significant digits each: plain decimals ('0.012', '2.2',
    '170', '400') when every tick lies between 0.001 and 100,000, else all in powers of ten ('1.7e-8', '4.0e3')."""
    if all(PLAIN_LOW <= x < PLAIN_HIGH for x in ticks):
        return [_plain(x) for x in ticks]
    return [_power(x) for x in ticks]


def _plain(x: float) -> str:
    digits = 1 - math.floor(math.log10(x))  # decimals that keep two significant digits
    rounded = round(x, digits)
    if rounded >= 10 ** (2 - digits):  # rounding up to a new power of ten (9.96 -> 10): one digit fewer
        digits -= 1
        rounded = round(x, digits)
    return f"{rounded:.{max(digits, 0)}f}"


def _power(x: float) -> str:
    mantissa, _, exponent = f"{x:.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def _ten_to(exponent: float) -> float:
    """10**exponent; log10 of float's maximum rounds up, and its power would overflow."""
    try:
        return float(10**exponent)
    except OverflowError:
        return sys.float_info.max
