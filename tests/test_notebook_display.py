"""Notebook display data: the mime bundles of Trace, Recorder and JacobianResult, and trace.show()."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
import torch
from IPython.core.formatters import DisplayFormatter

import tracer
import tracer.display.notebook
from tests.render_helpers import check_html, groups, svg_root, texts
from tracer.display.notebook import HTML, SVG, TEXT, TraceView, mimebundle
from tracer.model.format import number

pytestmark = pytest.mark.graphviz

SVG_BLOCK = re.compile(r"<svg\b.*?</svg>", re.DOTALL)


def _vector(values: list[float]) -> str:
    return "[" + ", ".join(number(v, 4) for v in values) + "]"


def _stack_trace() -> tuple[tracer.Trace, torch.Tensor, torch.Tensor]:
    """y = [Σx, Σx²] with v = [1, 0.5]: x.grad = 1 + 0.5·2x, as torch computes it."""
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = torch.stack([x.sum(), (x**2).sum()])
    v = torch.tensor([1.0, 0.5])
    return tracer.trace(y, gradient=v), x, v


def test_trace_bundle_is_the_picture_and_the_summary() -> None:
    t, x, v = _stack_trace()
    bundle = t._repr_mimebundle_()
    assert set(bundle) == {SVG, TEXT}
    assert bundle[TEXT] == t.summary()
    assert bundle[SVG].startswith("<svg")  # no XML prologue or DOCTYPE: ready to be inlined
    g = groups(svg_root(bundle[SVG]))
    for step in t.steps:
        assert f"step {step.id}" in texts(g[f"n{step.id}"])
    assert _vector(v.tolist()) in texts(g["seed0"])
    expected = (1 + 0.5 * 2 * x.detach()).tolist()
    assert x.grad.tolist() == expected  # torch's own answer …
    leaf = " ".join(texts(g[f"n{t.leaves['x'].node}"]))
    assert leaf.count(_vector(expected)) == 2  # … is what the picture shows as added and as .grad after
    stack = t.steps[0]
    assert stack.name == "StackBackward0"
    for k, sent in enumerate(stack.vjp):  # vᵀJ of the first step: the seed's parts, sent on along each edge
        assert sent is not None and sent.values is not None
        assert " ".join(texts(g[f"e{stack.id}_{k}"])).count(number(v[k].item(), 4)) >= 1


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (None, None, {SVG, TEXT}),
        ({TEXT}, None, {TEXT}),
        ([SVG], None, {SVG}),
        (None, {SVG}, {TEXT}),
        (None, (TEXT,), {SVG}),
        ({SVG, TEXT}, {SVG}, {TEXT}),  # exclude wins, as in IPython
        ({"text/html"}, None, set()),
    ],
)
def test_include_and_exclude(include: object, exclude: object, expected: set[str]) -> None:
    t, _, _ = _stack_trace()
    assert set(mimebundle(t, include=include, exclude=exclude)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (None, None, {HTML, TEXT}),
        ({TEXT}, None, {TEXT}),
        (None, {HTML}, {TEXT}),
        ({HTML, TEXT}, (TEXT,), {HTML}),
        ({SVG}, None, set()),
    ],
)
def test_include_and_exclude_for_record_blocks_and_jacobians(
    include: object, exclude: object, expected: set[str]
) -> None:
    """A record() block shows its passes as HTML pictures, a Jacobian as an HTML table; both filter like a Trace."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as rec:
        (x * x).sum().backward()
    jac = tracer.jacobian(lambda x: x**2, x.detach())
    for shown in (rec, jac):
        assert set(shown._repr_mimebundle_(include=include, exclude=exclude)) == expected, shown


def test_an_excluded_picture_is_not_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    t, _, _ = _stack_trace()

    def no_drawing(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("dot ran for a display that did not ask for the picture")

    monkeypatch.setattr("tracer.render.draw.render_dot", no_drawing)
    assert set(t._repr_mimebundle_(include={TEXT})) == {TEXT}
    assert set(t._repr_mimebundle_(exclude={SVG})) == {TEXT}


def test_ipython_formats_a_trace() -> None:
    t, _, _ = _stack_trace()
    data, _ = DisplayFormatter().format(t)
    assert set(data) == {SVG, TEXT} and data[TEXT] == t.summary()
    ET.fromstring(data[SVG])
    data, _ = DisplayFormatter().format(t, exclude={SVG})
    assert set(data) == {TEXT}


def test_no_dot_falls_back_to_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    t, _, _ = _stack_trace()
    monkeypatch.setenv("PATH", "")
    bundle = t._repr_mimebundle_()
    assert set(bundle) == {TEXT}
    first, rest = bundle[TEXT].split("\n", 1)
    assert first.startswith("(no picture: Graphviz's `dot` was not found on PATH.")
    assert "sudo apt-get install graphviz" in first and "brew install graphviz" in first
    assert rest == t.summary()
    stepper = t.show(steps=True)._repr_mimebundle_()
    assert set(stepper) == {TEXT} and stepper[TEXT] == bundle[TEXT]
    with tracer.record() as rec:
        pass
    rec.traces.append(t)
    shown = rec._repr_mimebundle_()
    assert set(shown) == {TEXT} and first in shown[TEXT] and t.summary() in shown[TEXT]


def test_too_large_to_draw_says_how_to_get_a_picture() -> None:
    t, _, _ = _stack_trace()
    bundle = t.show(max_nodes=2)._repr_mimebundle_()
    assert set(bundle) == {TEXT}
    first = bundle[TEXT].split("\n", 1)[0]
    assert first.startswith("(no picture: this pass has") and "max_nodes=2" in first


def test_recorder_shows_every_pass_labelled() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    z = 2 * x + 3 * x[1]
    with tracer.record(label="two seeds") as rec:
        z.backward(torch.tensor([1.0, 0.0]), retain_graph=True)
        z.backward(torch.tensor([0.0, 1.0]))
    assert x.grad.tolist() == [2.0, 8.0]  # [2, 3] + [0, 5]: accumulated, never zeroed
    bundle = rec._repr_mimebundle_()
    assert set(bundle) == {HTML, TEXT}
    html = bundle[HTML]
    check_html(html)
    titles = re.findall(r"<p [^>]*>(pass #\d+[^<]*)</p>", html)
    assert titles == [
        "pass #1 · two seeds: backward of z[2] — 5 steps, 1 leaf",
        "pass #2 · two seeds: backward of z[2] — 5 steps, 1 leaf",
    ]
    pictures = SVG_BLOCK.findall(html)
    assert len(pictures) == 2
    for svg, trace in zip(pictures, rec.traces, strict=True):
        g = {key.split("-", 3)[-1]: el for key, el in groups(ET.fromstring(svg)).items()}
        leaf = " ".join(texts(g[f"n{trace.leaves['x'].node}"]))
        assert _vector(trace.leaves["x"].grad_total.values) in leaf  # type: ignore[union-attr, arg-type]
    assert _vector([2.0, 8.0]) in " ".join(texts(ET.fromstring(pictures[1])))
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "two pictures in one output must not share element ids"
    assert bundle[TEXT] == "\n".join([repr(rec), rec.traces[0].summary(), rec.traces[1].summary()])
    again = rec._repr_mimebundle_()[HTML]
    assert set(re.findall(r'\bid="([^"]+)"', again)).isdisjoint(ids), "a second display gets its own ids"


def test_recorder_without_passes_and_with_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    with tracer.record() as rec:
        pass
    assert rec._repr_mimebundle_() == {TEXT: "<tracer.record: 0 passes>: no backward pass ran inside the block"}
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as many:
        for _ in range(3):
            (x * x).sum().backward()
    monkeypatch.setattr(tracer.display.notebook, "MAX_PASSES", 2)
    bundle = many._repr_mimebundle_()
    assert len(SVG_BLOCK.findall(bundle[HTML])) == 2
    assert "… and 1 more pass: rec.traces[k] displays one" in bundle[HTML]
    assert bundle[TEXT].endswith("… and 1 more pass: rec.traces[k] displays one")
    assert bundle[TEXT].count("pass #") == 2


class _Table(HTMLParser):
    """The header and body cells of the one table in a fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None


def _table(html: str) -> list[list[str]]:
    parser = _Table()
    parser.feed(html)
    return parser.rows


def test_jacobian_shows_the_matrix_and_the_method() -> None:
    """Tutorial 002's y = x·M: the table holds d y / d x as torch.autograd.functional.jacobian computes it."""
    M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = torch.tensor([[10.0, 5.0]])
    result = tracer.jacobian(lambda x: torch.mm(x, M), x)
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {HTML, TEXT}
    assert bundle[TEXT] == repr(result)
    check_html(bundle[HTML])
    rows = _table(bundle[HTML])
    assert rows[0] == ["", "x[0,0]", "x[0,1]"]
    reference = torch.autograd.functional.jacobian(lambda x: torch.mm(x, M), x).reshape(2, 2)
    assert [r[0] for r in rows[1:]] == ["output[0,0]", "output[0,1]"]
    assert [[float(c) for c in r[1:]] for r in rows[1:]] == reference.tolist() == M.T.tolist()
    text = bundle[HTML]
    assert f"method: {result._method_text()}" in text and result.method in ("vmap", "loop")
    assert "check: equals torch.autograd.functional.jacobian" in text
    assert "recorded: 2 one-hot passes in .traces" in text
    looped = tracer.jacobian(lambda x: torch.mm(x, M), x, method="loop")._repr_mimebundle_(include={HTML})
    assert set(looped) == {HTML}
    assert "method: loop (one pass per row); not vmap: method=&#x27;loop&#x27; was asked for" in looped[HTML]


def test_a_large_jacobian_shows_its_corner() -> None:
    x = torch.linspace(-1, 1, 30)
    result = tracer.jacobian(lambda x: x**3, x, record=False)
    html = result._repr_mimebundle_()[HTML]
    rows = _table(html)
    assert len(rows) == 1 + 24 + 1 and len(rows[0]) == 1 + 24 + 1  # labels, 24 shown, then … / ⋮
    assert rows[0][-1] == "…" and rows[-1][0] == "⋮"
    diagonal = [float(rows[1 + i][1 + i]) for i in range(24)]
    assert diagonal == pytest.approx((3 * x[:24] ** 2).tolist(), rel=1e-3)
    assert "showing the first 24 of 30 rows and 24 of 30 columns" in html


def test_show_steps_gives_the_stepper_with_fresh_ids() -> None:
    t, _, _ = _stack_trace()
    view = t.show(steps=True)
    assert isinstance(view, TraceView) and repr(view) == "<gradtrace stepper through 5 steps of pass #1>"
    first, second = view._repr_mimebundle_(), view._repr_mimebundle_()
    assert set(first) == {HTML, TEXT} and first[TEXT] == t.summary()
    html = first[HTML]
    assert html.startswith('<div class="gt-stepper"') and f'data-steps="{len(t.steps)}"' in html
    assert len(re.findall(r'<figure class="gt-frame"', html)) == len(t.steps)
    assert ">Previous</button>" in html and 'class="gt-slider"' in html and ">Next</button>" in html
    both = check_html(first[HTML] + second[HTML] + t.show(steps=True).html())
    assert len(both.ids) == len(set(both.ids)), "three displays of one trace on one page share no id"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "nothing is loaded from the network"


def test_show_passes_options_through_and_checks_them() -> None:
    t, _, _ = _stack_trace()
    picture = t.show(direction="LR", theme="dark")._repr_mimebundle_()
    assert set(picture) == {SVG, TEXT}
    assert picture[SVG] == tracer.display.notebook.display_svg(t.svg(direction="LR", theme="dark"))
    assert picture[SVG] != t._repr_mimebundle_()[SVG]
    small = t.show(scale=0.5)._repr_mimebundle_()[SVG]
    full = t._repr_mimebundle_()[SVG]
    width, height = (float(v) for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', full).groups())  # type: ignore[union-attr]
    assert small.startswith(f'<svg width="{width / 2:.2f}pt" height="{height / 2:.2f}pt"')
    assert 'viewBox="0.00 0.00' in small  # the drawing itself is unchanged, only shown smaller
    frames = t.show(steps=True, scale=0.5, jacobian=False)._repr_mimebundle_()[HTML]
    assert len(re.findall(r'<svg width="[\d.]+pt"', frames)) == len(t.steps)
    with pytest.raises(TypeError, match=r"unknown option: 'colour' \(must be one of \["):
        t.show(colour="red")
    with pytest.raises(ValueError, match=r"unknown direction: 'up' \(must be one of \['TB', 'LR'\]\)"):
        t.show(steps=True, direction="up")
    with pytest.raises(ValueError, match="scale must be a number between 0 and 10"):
        t.show(scale=0)
    with pytest.raises(ValueError, match="steps must be True or False, got 'yes'"):
        t.show(steps="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step= draws one frame"):
        t.show(steps=True, step=1)
    embedded = check_html(t.show().html() + t.show().html())
    assert len(embedded.ids) == len(set(embedded.ids)) and embedded.ids
    frame = t.show(step=2)._repr_mimebundle_()[SVG]
    assert frame == tracer.display.notebook.display_svg(t.svg(step=2))


def test_only_our_objects_are_displayed() -> None:
    with pytest.raises(TypeError, match="no notebook display for a str"):
        mimebundle("x")


def test_importing_tracer_does_not_import_ipython() -> None:
    code = "import sys, tracer, tracer.display.notebook; print('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
