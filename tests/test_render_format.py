"""Text building blocks of the picture: numbers at a fixed precision, statistics, escaping, the colour scale."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracer.model import Stats, TensorInfo
from tracer.model.format import grid, inline, nested, number, percent, shape_text, stats_text
from tracer.render.escape import basename_source, dot_string, label_text, page_text, plain_label, visible
from tracer.render.style import THEMES, ColourScale


@pytest.mark.parametrize(
    ("value", "precision", "text"),
    [
        (2.0, 4, "2"),
        (-0.0, 4, "0"),
        (0.70730001, 4, "0.7073"),
        (3.14159, 3, "3.14"),
        (12345.0, 4, "1.234e4"),
        (1e-8, 4, "1e-8"),
        (-2.5e-5, 2, "-2.5e-5"),
        (math.nan, 4, "nan"),
        (-math.inf, 4, "-inf"),
        (7, 4, "7"),
        (True, 4, "True"),
    ],
)
def test_number(value: float, precision: int, text: str) -> None:
    assert number(value, precision) == text


@given(st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(1, 9))
def test_number_round_trips_to_precision(value: float, precision: int) -> None:
    shown = float(number(value, precision))
    assert shown == pytest.approx(value, rel=10 ** (1 - precision), abs=1e-300)


def test_shapes_and_shares() -> None:
    assert shape_text(()) == "0-d" and shape_text((3, 2)) == "[3, 2]"
    assert percent(0.0) == "0%" and percent(0.2) == "20%" and percent(1 / 3) == "33.3%" and percent(1.0) == "100%"


def test_stats_text_marks_estimates_and_problems() -> None:
    exact = Stats(norm=6.3246, min=-4, max=4, mean=0, zeros=0.2, nan=0, inf=0)
    assert stats_text(exact, 3) == "‖·‖ 6.32 · min -4 · max 4 · mean 0 · 20% zeros"
    sampled = Stats(norm=1.5, min=0, max=1, mean=0.5, zeros=0, nan=2, inf=1, sampled=1024, norm_exact=False)
    assert stats_text(sampled, 2) == "‖·‖ ≈1.5 · min ≈0 · max ≈1 · mean ≈0.5 · ≈0% zeros · ≈2 NaN · ≈1 Inf"
    # a leaf's gradient: sampled, but its norm (and so the NaN/Inf counts) read from every element
    leaf = Stats(norm=1.5, min=0, max=1, mean=0.5, zeros=0, nan=0, inf=0, sampled=1024, norm_exact=True)
    assert stats_text(leaf, 2) == "‖·‖ 1.5 · min ≈0 · max ≈1 · mean ≈0.5 · ≈0% zeros"


def _info(values: tuple[float, ...], shape: tuple[int, ...]) -> TensorInfo:
    stats = Stats(norm=1.0, min=0, max=1, mean=0.5, zeros=0, nan=0, inf=0)
    return TensorInfo(shape=shape, dtype="float32", values=values, stats=stats)


def test_grids_and_nesting() -> None:
    m = _info((1.0, 2.0, 3.0, 4.0, 5.0, 6.0), (3, 2))
    assert grid(m, 4).rows == (("1", "2"), ("3", "4"), ("5", "6")) and grid(m, 4).labels is None
    assert nested(m, 4) == "[[1, 2], [3, 4], [5, 6]]"
    cube = _info(tuple(float(i) for i in range(8)), (2, 2, 2))
    assert grid(cube, 4).labels == ("[0,0]", "[0,1]", "[1,0]", "[1,1]")
    assert nested(_info((2.5,), ()), 4) == "2.5"
    assert inline(m, 4, 4) == "[3, 2] ‖·‖ 1"  # too many elements: shape and norm
    assert inline(None, 4, 4) == "None"


def test_escaping() -> None:
    nasty = "<b>&\"x'\n\\N ]"
    assert visible(nasty) == "<b>&\"x'\\n\\N ]"
    assert label_text(nasty) == "&lt;b&gt;&amp;&quot;x&#39;\\\\n\\\\N &#93;"
    assert dot_string(nasty) == '"<b>&\\"x\'\\\\\\\\n\\\\\\\\N ]"'
    assert plain_label([nasty, "two"]) == '"<b>&\\"x\'\\\\n\\\\N ]\\ntwo"'
    assert page_text(nasty) == "&lt;b&gt;&amp;&quot;x&#x27;\\n\\N ]"
    assert basename_source("/home/me/project/train.py:12") == "train.py:12"
    assert basename_source("C:\\work\\nb.py:3") == "nb.py:3" and basename_source("<stdin>") == "<stdin>"
    assert basename_source(None) is None


def test_colour_scale_is_logarithmic() -> None:
    theme = THEMES["light"]
    scale = ColourScale(theme, [0.01, 1.0, 100.0, None, 0.0, math.nan])
    assert scale.position(0.01) == 0 and scale.position(100.0) == 1 and scale.position(1.0) == pytest.approx(0.5)
    assert scale.colour(0.01) == theme.ramp[0] and scale.colour(100.0) == theme.ramp[-1]
    assert scale.colour(1.0) == theme.ramp[2]  # the middle of five stops is the middle of the log range
    assert scale.colour(None) == theme.none and scale.colour(0.0) == theme.zero
    assert scale.colour(math.inf) == theme.warning and scale.colour(1.0, finite=False) == theme.warning
    assert [round(math.log10(t)) for t in scale.ticks()] == [-2, -1, 0, 1, 2]
    flat = ColourScale(theme, [3.0, 3.0])
    assert flat.ticks() == [pytest.approx(3.0)] and flat.position(3.0) == 0.5
    assert ColourScale(theme, [None, 0.0]).empty
