"""The HTML stepper: one frame per step, a page that parses, self-contained, escaped, embeddable twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import tracer
from tests.render_helpers import case_trace, check_html, groups, svg_root
from tracer.render.options import for_trace as checked_options
from tracer.render.stepper import caption, fragment, page

pytestmark = pytest.mark.graphviz

FRAME = re.compile(r'<figure class="gt-frame" data-step="(\d+)" data-active="(true|false)"( hidden)?>')
SVG_BLOCK = re.compile(r"<svg\b.*?</svg>", re.DOTALL)


@pytest.mark.parametrize("case_id", ["many_points_ones_like", "matrix_valued_10", "item_assign_vector_to_vector"])
def test_one_frame_per_step(case_id: str, tmp_path: Path) -> None:
    trace, _, _ = case_trace(case_id)
    html = trace.save(tmp_path / "s.html").read_text(encoding="utf-8")
    frames = FRAME.findall(html)
    assert [int(k) for k, _, _ in frames] == [s.step for s in trace.steps]
    assert [(active, hidden) for _, active, hidden in frames] == [("true", "")] + [("false", " hidden")] * (
        len(frames) - 1
    )
    svgs = SVG_BLOCK.findall(html)
    assert len(svgs) == len(trace.steps)
    for k, svg in enumerate(svgs, start=1):
        g = groups(svg_root(svg))  # every frame is well-formed XML
        classes = {key: el.attrib.get("class", "").split() for key, el in g.items()}
        active = [key for key, c in classes.items() if "gt-active" in c and "gt-node" in c]
        assert active == [next(key for key in g if key.endswith(f"-n{k}"))]
    parser = check_html(html)
    assert len(parser.ids) == len(set(parser.ids)), "element ids must be unique on the page"
    assert 'data-step="1"' in html and f'data-steps="{len(trace.steps)}"' in html
    assert ">Previous</button>" in html and ">Next</button>" in html and 'class="gt-slider"' in html
    assert "ArrowLeft" in html and "ArrowRight" in html


def test_page_is_self_contained_and_deterministic(tmp_path: Path) -> None:
    trace, _, _ = case_trace("x_times_x_ones")
    html = page(trace)
    assert html == page(tracer.load(trace.to_json()))
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no network resources"
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )
    assert str(Path.cwd()) not in html and str(tmp_path) not in html


def test_captions_tell_the_step_in_words() -> None:
    trace, leaves, _ = case_trace("many_points_ones_like")
    opts = checked_options(trace, {})
    first = caption(trace, trace.steps[0], opts)
    assert first == (
        "Step 1 of 2: PowBackward0 (forward: pow(self=[-2, -1, 0, 1, 2], exponent=2)) receives "
        "v = [1, 1, 1, 1, 1] and sends vᵀJ = [-4, -2, 0, 2, 4] to step 2 (x)."
    )
    last = caption(trace, trace.steps[1], opts)
    assert last.endswith("adds it to x.grad: None → [-4, -2, 0, 2, 4].")
    assert leaves["x"].grad.tolist() == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_two_fragments_on_one_page_do_not_collide() -> None:
    trace, _, _ = case_trace("square")
    a = fragment(trace, uid="first")
    b = fragment(trace, uid="second")
    both = check_html(a + b)
    assert len(both.ids) == len(set(both.ids))
    assert 'document.getElementById("first")' in a and 'document.getElementById("second")' in b
    assert fragment(trace) == fragment(trace)  # the default id comes from the trace, not from a counter
    with pytest.raises(ValueError, match="uid must start with a letter"):
        fragment(trace, uid='x" onload="alert(1)')


def test_page_escapes_user_text() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    nasty = "<b>&\"x'\n</script>"
    t = tracer.trace((x * x).sum(), names={nasty: x})
    html = page(t)
    check_html(html)
    assert html.count("</script>") == 2  # the stepper's script and the page's focus script only
    assert "<b>&" not in html
    assert "&lt;b&gt;&amp;&quot;x&#x27;\\n&lt;/script&gt;" in html  # captions: escaped, newline visible


def test_stepper_limits_and_options() -> None:
    trace, _, _ = case_trace("z_ones")
    with pytest.raises(tracer.DrawingTooLargeError, match=r"ran 6 steps, more than max_frames=2"):
        page(trace, max_frames=2)
    dark = page(trace, theme="dark")
    assert "background:#0d1117" in dark
    with pytest.raises(ValueError, match="unknown theme"):
        page(trace, theme="neon")


def test_no_steps_shows_the_picture() -> None:
    trace, _, _ = case_trace("square")
    empty = trace.__class__(kind=trace.kind, seeds=(), nodes=(), leaves={})
    html = page(empty)
    check_html(html)
    assert "ran no step" in html and not FRAME.search(html)
    assert len(SVG_BLOCK.findall(html)) == 1


def test_the_page_does_not_depend_on_the_folder_the_script_ran_in() -> None:
    import dataclasses

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace((x * x).sum())
    here = dataclasses.replace(trace, source="/tmp/ra/s.py:3")
    there = dataclasses.replace(trace, source="/home/someone/rb/s.py:3")
    assert page(here) == page(there)
