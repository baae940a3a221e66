"""Pictures a learner reads at a glance, checked on the parsed SVG: one colour scale for pictures shown together,
text no smaller than 12 px (9 points) at 100%, nodes no wider than MAX_NODE_PX, one tensor notation in nodes and on
edges — and the unit behind each (tick labels, colour_range, wrapping, compact norms, CopySlices, J's axes,
defaults, the gallery page)."""

from __future__ import annotations

import math
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

import tracer
from tests.render_helpers import SVG, case_trace, groups, svg_root, texts
from tracer.analyse.slice_write import index_text, slice_write
from tracer.gallery.builder import build
from tracer.model.format import nested
from tracer.render.options import RenderOptions, parse_options
from tracer.render.style import THEMES, ColourScale, tick_labels

# The smallest text a picture may have at 100% zoom: 9 points, 12 px. A reader needs 9 px; 12 leaves room for a
# picture shown at 75% (and the 8-point, 10.7 px labels of before were too faint to read in their pale grey).
MIN_TEXT_PX = 12.0
MAX_NODE_PX = 1000.0  # the widest a node may be at 100% (a failed node was 2,400 px: its message on one line)
FIGURE_SPACE = "\u2007"


# -- reading a Graphviz SVG


def pixels_per_unit(root: ET.Element) -> float:
    """CSS pixels per SVG user unit at 100% zoom (Graphviz gives width in points and a viewBox in points)."""
    width = root.attrib["width"]
    value = float(re.match(r"[0-9.]+", width).group(0))  # type: ignore[union-attr]
    unit = 4 / 3 if width.endswith("pt") else 1.0
    return value * unit / float(root.attrib["viewBox"].split()[2])


def font_sizes_px(root: ET.Element) -> list[float]:
    k = pixels_per_unit(root)
    return [float(t.attrib["font-size"]) * k for t in root.iter(f"{SVG}text") if "font-size" in t.attrib]


def node_widths_px(root: ET.Element) -> dict[str, float]:
    """The width of every node (seed, backward node, leaf, legend), from the outline polygons Graphviz draws."""
    k = pixels_per_unit(root)
    widths = {}
    for g in root.iter(f"{SVG}g"):
        if "node" not in g.attrib.get("class", "").split():
            continue
        xs = [float(p.split(",")[0]) for poly in g.iter(f"{SVG}polygon") for p in poly.attrib["points"].split()]
        xs += [
            float(x) for path in g.iter(f"{SVG}path") for x in re.findall(r"(-?[0-9.]+),-?[0-9.]+", path.attrib["d"])
        ]
        if xs:
            widths[g.attrib["id"]] = (max(xs) - min(xs)) * k
    return widths


def legend_ticks(root: ET.Element) -> list[str]:
    """The tick labels under the legend's colour bar."""
    legend = groups(root)["legend"]
    words = texts(legend)
    start = words.index("gradient size ‖g‖, log scale") + 1
    return [w for w in words[start:] if re.fullmatch(r"[0-9.e-]+", w)]


def edge_colours(root: ET.Element) -> dict[str, str]:
    """Each edge's stroke colour, by DOT id."""
    out = {}
    for key, g in groups(root).items():
        if "edge" in g.attrib.get("class", "").split():
            path = next(g.iter(f"{SVG}path"), None)
            if path is not None:
                out[key] = path.attrib["stroke"]
    return out


def picture_problems(gallery: Path) -> list[str]:
    """What makes a written gallery's pictures hard to read: text under MIN_TEXT_PX, a node wider than MAX_NODE_PX,
    or passes of one entry whose legends differ (not one colour scale)."""
    problems = []
    for entry in sorted({p.parent for p in (gallery / "out").rglob("pass*.svg")}):
        ticks = {}
        for picture in sorted(entry.glob("pass*.svg")):
            root = ET.parse(picture).getroot()
            name = picture.relative_to(gallery).as_posix()
            if min(font_sizes_px(root)) < MIN_TEXT_PX - 0.01:
                problems.append(f"{name}: text of {min(font_sizes_px(root)):.1f} px")
            widest = max(node_widths_px(root).items(), key=lambda kv: kv[1])
            if widest[1] > MAX_NODE_PX:
                problems.append(f"{name}: node {widest[0]} is {widest[1]:.0f} px wide")
            ticks[name] = legend_ticks(root)
        if len({tuple(t) for t in ticks.values()}) > 1:
            problems.append(f"{entry.relative_to(gallery).as_posix()}: passes with different legends {ticks}")
    return problems


@pytest.mark.graphviz
def test_the_committed_gallery_pictures_are_readable() -> None:
    """Every picture of the repository's gallery (as last built): text, node width, one scale per entry."""
    assert picture_problems(Path(__file__).parents[1] / "gallery") == []


# -- the shared colour scale


TWO_PASSES = '''
"""Two passes over one graph

The same [1, 1, 1] gradient reaches x in both passes, with a seed ten times larger in the second.
"""

import torch

import tracer

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * 1.0
tracer.trace(y, gradient=torch.ones(3), retain_graph=True)
tracer.trace(y, gradient=torch.full((3,), 10.0))
'''


@pytest.mark.graphviz
def test_passes_of_one_gallery_entry_share_one_colour_scale(tmp_path: Path) -> None:
    folder = tmp_path / "gallery"
    topic = folder / "cases" / "01-t"
    topic.mkdir(parents=True)
    (topic / "README.md").write_text("# Topic\n\nFor the test.\n", encoding="utf-8")
    (topic / "01-two.py").write_text(textwrap.dedent(TWO_PASSES).lstrip(), encoding="utf-8")
    build(folder)
    out = folder / "out" / "01-t" / "01-two"
    first, second = (svg_root((out / f"pass{k}.svg").read_text(encoding="utf-8")) for k in (1, 2))
    assert legend_ticks(first) == legend_ticks(second)
    ticks = [float(t) for t in legend_ticks(first)]
    # the scale spans both passes: from ‖[1, 1, 1]‖ = √3 to ‖[10, 10, 10]‖ = 10√3
    assert math.isclose(ticks[0], math.sqrt(3), rel_tol=0.05) and math.isclose(
        ticks[-1], 10 * math.sqrt(3), rel_tol=0.05
    )
    # the seed edge carries √3 in pass 1 and 10√3 in pass 2: the two ends of one scale, so two colours
    one, two = edge_colours(first)["eseed0"], edge_colours(second)["eseed0"]
    assert one == THEMES["light"].ramp[0] and two == THEMES["light"].ramp[-1]
    # drawn alone, each pass would span only its own norms (all equal): the middle colour for both
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    alone = tracer.trace(x * 1.0, gradient=torch.ones(3))
    assert edge_colours(svg_root(alone.svg()))["eseed0"] != one


def test_a_fixed_colour_range_colours_a_norm_alike_in_every_pass() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    small = tracer.trace(x * 2, gradient=torch.ones(2))
    x.grad = None
    large = tracer.trace(x * 2, gradient=torch.full((2,), 100.0))
    shared = {"colour_range": (1.0, 1000.0)}
    for t in (small, large):
        assert 'BGCOLOR="#2f6fba"' in t.to_dot(**shared)  # the legend's first swatch: the low end, 1
    edge = re.compile(r'seed0 -> n1 \[[^\]]*color="(#[0-9a-f]+)"')
    low = edge.search(small.to_dot(**shared)).group(1)  # type: ignore[union-attr]
    high = edge.search(large.to_dot(**shared)).group(1)  # type: ignore[union-attr]
    scale = ColourScale(THEMES["light"], [], fixed=(1.0, 1000.0))
    assert low == scale.colour(small.seeds[0].v.norm)  # type: ignore[union-attr]
    assert high == scale.colour(large.seeds[0].v.norm)  # type: ignore[union-attr]
    assert low != high


def test_colour_range_is_checked() -> None:
    assert parse_options({"colour_range": [0.5, 2]}).colour_range == (0.5, 2.0)
    assert RenderOptions().colour_range is None
    for bad in [(0, 1), (2, 1), (1,), "1,2", (1, math.inf), (True, 2)]:
        with pytest.raises(ValueError, match=r"colour_range must be two gradient norms \(low, high\)"):
            parse_options({"colour_range": bad})


def test_tick_labels_have_one_number_format() -> None:
    assert tick_labels([2.2, 40.0, 400.0, 170.0]) == ["2.2", "40", "400", "170"]  # not "4e2", "1.7e2"
    assert tick_labels([0.0123, 1.0, 9.96]) == ["0.012", "1.0", "10"]
    assert tick_labels([1e-8, 1.7e-6, 3e3]) == ["1.0e-8", "1.7e-6", "3.0e3"]  # all as powers when one must be


@pytest.mark.graphviz
def test_the_profile_chart_beside_a_graph_uses_the_graphs_colours() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    t = tracer.trace((x**2).sum())
    root = svg_root(t.svg(profile=True))
    graph, chart = list(root)[:2]
    edge_fill = {path.attrib["stroke"] for path in graph.iter(f"{SVG}path")}
    points = {c.attrib["fill"] for c in chart.iter(f"{SVG}circle")}
    assert points and points <= edge_fill | {"white"}


# -- text size, node width, notation


@pytest.mark.graphviz
@pytest.mark.parametrize(
    "case_id", ["mm_column_default", "z_ones", "item_assign_scalar_to_vector", "many_points_ones_like"]
)
def test_no_text_under_9_px_and_no_node_too_wide(case_id: str) -> None:
    trace, _, _ = case_trace(case_id)
    for detail in ("full", "compact"):
        root = svg_root(trace.svg(detail=detail))
        assert min(font_sizes_px(root)) >= MIN_TEXT_PX - 0.01  # Graphviz rounds sizes to 2 decimals
        assert max(node_widths_px(root).values()) <= MAX_NODE_PX


@pytest.mark.graphviz
def test_the_module_view_has_no_text_under_9_px() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    with tracer.record(model=model) as rec:
        model(torch.randn(3, 4)).sum().backward()
    root = svg_root(rec.traces[0].svg(view="modules"))
    assert min(font_sizes_px(root)) >= MIN_TEXT_PX - 0.01  # Graphviz rounds sizes to 2 decimals
    assert max(node_widths_px(root).values()) <= MAX_NODE_PX


@pytest.mark.graphviz
def test_a_failed_node_wraps_its_long_message() -> None:
    """The second backward without retain_graph: torch's message is 300 characters; the node stays narrow."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x**2
    with tracer.record() as rec:
        y.backward(torch.ones(2))
        with pytest.raises(RuntimeError, match="a second time"):
            y.backward(torch.ones(2))
    failed = rec.traces[1]
    assert not failed.complete
    for detail in ("full", "compact"):
        root = svg_root(failed.svg(detail=detail))
        widths = node_widths_px(root)
        assert max(widths.values()) <= 600, widths
        assert min(font_sizes_px(root)) >= MIN_TEXT_PX - 0.01  # Graphviz rounds sizes to 2 decimals
        words = " ".join(texts(groups(root)["n1"]))
        assert "Trying to backward through the graph a" in words  # the message is there, on several lines
    title_words = " ".join(texts(next(root.iter(f"{SVG}g"))))
    assert "pass 2 · backward of y" in title_words


@pytest.mark.graphviz
def test_one_notation_in_nodes_and_on_edges() -> None:
    """A [1, 2] and a [2, 3] tensor read as the nested brackets the edges show, with no bars beside them."""
    a = torch.tensor([[1.0, 2.0]], requires_grad=True)
    t = tracer.trace(a * 2, torch.tensor([[1.0, 0.0]]))
    root = svg_root(t.svg(jacobian=False))
    g = groups(root)
    assert "[[1, 0]]" in texts(g["seed0"]) and "[[1, 0]]" in texts(g["eseed0"])  # one row: one line, as on the edge
    leaf = t.leaves["a"]
    assert nested(leaf.grad, 4) == "[[2, 0]]"  # type: ignore[arg-type]
    assert "[[2, 0]]" in texts(g[f"n{leaf.node}"]) and "[[2, 0]]" in texts(g["e1_0"])
    # no tensor drawn between vertical bars: every vertical line in a node is a table's outer border
    for key, group in g.items():
        if key.startswith("n"):
            assert not [p for p in group.iter(f"{SVG}polyline") if _vertical(p.attrib["points"])], key

    # a matrix of two rows: one line per row, columns padded with figure spaces, the brackets as torch prints them
    x = torch.tensor([[1.0, -2.0, 3.0], [10.0, 5.0, 6.0]], requires_grad=True)
    m = tracer.trace(x * 1.0, torch.ones(2, 3))
    lines = texts(groups(svg_root(m.svg(jacobian=False)))["seed0"])
    rows = [line.replace(FIGURE_SPACE, "") for line in lines if line.lstrip().startswith("[")]
    assert rows == ["[[1, 1, 1],", " [1, 1, 1]]"]
    dot = m.to_dot(jacobian=False)
    leaf_line = next(line for line in dot.splitlines() if line.lstrip().startswith("n2 "))
    assert f"[[{FIGURE_SPACE}1, -2, 3&#93;," in leaf_line  # 1 padded to the width of 10
    assert " [10,  5, 6&#93;&#93;" in leaf_line.replace(FIGURE_SPACE, " ")


def _vertical(points: str) -> bool:
    xy = [tuple(map(float, p.split(","))) for p in points.split()]
    return len(xy) == 2 and xy[0][0] == xy[1][0]


@pytest.mark.graphviz
def test_row_and_column_labels_and_axes_of_an_mm_jacobian() -> None:
    """mm with a [2, 1] column x: J's columns are x's elements [0,0] and [1,0]; the node says which axis is which."""
    trace, _, _ = case_trace("mm_column_default")
    root = svg_root(trace.svg())
    node = texts(groups(root)["n1"])
    assert node.count("[0,0]") == 2 and "[1,0]" in node  # v's row, and x's two columns
    assert "J: a row per element of v [1, 1]," in node
    assert "a column per element of x [2, 1]," in node
    label = trace.to_dot().split("n1 [", 1)[1]
    row_label = re.search(r'<FONT COLOR="(#[0-9a-f]+)" POINT-SIZE="([0-9.]+)">\[0,0&#93;', label)
    assert row_label is not None
    assert row_label.group(1) == THEMES["light"].muted and float(row_label.group(2)) >= 9  # not pale 8 pt


def test_compact_nodes_show_one_norm_per_edge() -> None:
    """An add sends its v on to both inputs unchanged: 5, 5 — not their combined norm 7.07 (gradients 'growing')."""
    a = torch.tensor([3.0, 4.0], requires_grad=True)
    b = torch.tensor([1.0, 1.0], requires_grad=True)
    t = tracer.trace(a + b, torch.tensor([3.0, 4.0]))
    add = next(n for n in t.steps if n.name == "AddBackward0")
    assert [g.norm for g in add.vjp] == [5.0, 5.0]  # type: ignore[union-attr]
    dot = t.to_dot(detail="compact")
    assert f"step {add.id} · AddBackward0\\n‖v‖ 5 → ‖vᵀJ‖ 5, 5" in dot
    assert "7.071" not in dot
    assert "‖vᵀJ‖ it sent along each next edge" in dot  # the legend says what the numbers are


def test_copyslices_says_which_elements_were_written() -> None:
    x = torch.tensor([2.0, 3.0], requires_grad=True)
    y = torch.zeros(3, 2)
    y[1:3, 0] = x * 1.0
    t = tracer.trace(y, torch.ones(3, 2))
    node = next(n for n in t.steps if n.name == "CopySlices")
    write = slice_write(node)
    assert write is not None and write.source == "J"
    assert write.written == ((1, 0), (2, 0)) and write.index_text == "[1:3, 0]"
    assert "wrote [1:3, 0] of [3, 2] (read from J)" in _shown(t.to_dot())

    # without J (not recorded), the gradient sent to the tensor before the write tells it while v has no zero
    base = torch.ones(4, requires_grad=True)
    z = base * 1.0
    z[2] = x[0] * 1.0
    u = tracer.trace(z, torch.tensor([1.0, 2.0, 3.0, 4.0]), jacobian_limit=0)
    write = slice_write(next(n for n in u.steps if n.name == "CopySlices"))
    assert write is not None and write.source == "gradient" and write.index_text == "[2]"
    assert "wrote [2] of [4] (read from the gradients)" in _shown(u.to_dot())

    # a zero in v hides whether that element was written: said, not guessed
    z = base * 1.0
    z[2] = x[0] * 1.0
    w = tracer.trace(z, torch.tensor([1.0, 0.0, 3.0, 4.0]), jacobian_limit=0)
    write = slice_write(next(n for n in w.steps if n.name == "CopySlices"))
    assert write is not None and write.written is None
    shown = w.to_dot()
    assert "which elements were written is not known (torch does not expose" in shown and "wrote [" not in shown


def _shown(dot: str) -> str:
    """DOT text with the entity Graphviz labels need for ']' turned back into the character."""
    return dot.replace("&#93;", "]")


def test_index_text() -> None:
    assert index_text(((0, 0),), (3, 1)) == "[0]"
    assert index_text(((1,), (2,)), (3,)) == "[1:3]"
    assert index_text(((0, 2), (1, 2)), (2, 3)) == "[:, 2]"
    assert index_text(((0, 0), (1, 1)), (2, 2)) == "[0, 0], [1, 1]"


def test_every_pass_names_its_number_in_the_title() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as rec:
        (x * 2).sum().backward()
        (x * 3).sum().backward()
    first, second = (t.to_dot() for t in rec.traces)
    assert "<B>pass 1 · backward of " in first and "<B>pass 2 · backward of " in second


def test_the_tutorials_5x4_jacobian_example_is_drawn_in_full() -> None:
    """The official autograd tutorial: (inp + 1).pow(2).t() on a 4×5 eye, seed ones: 20 elements, J 20×20."""
    inp = torch.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    t = tracer.trace(out, torch.ones_like(out), retain_graph=True)
    assert RenderOptions().max_elements >= 20
    dot = t.to_dot()
    assert "not drawn" not in dot
    pow_line = next(line for line in dot.splitlines() if "PowBackward0" in line and "<TABLE" in line)
    assert "[3,4&#93;" in pow_line  # its columns carry their indices
    assert pow_line.count('<TD ALIGN="RIGHT" BORDER="1" SIDES="T"') == 20  # the vᵀJ row: one entry per element
    assert torch.equal(inp.grad, 2 * (torch.eye(4, 5) + 1))  # type: ignore[arg-type]


def test_a_wide_jacobian_is_listed_not_drawn() -> None:
    """16 columns of 7-character numbers: about 1,100 px of J. v and vᵀJ are listed instead, and the node says why."""
    w = torch.linspace(-0.5, 0.5, 16, dtype=torch.float64).reshape(16, 1).requires_grad_()
    t = tracer.trace(w.t(), torch.linspace(-0.3, 0.4, 16, dtype=torch.float64).reshape(1, 16) + 0.0123)
    assert "16×16 (not drawn: too wide to read in a node)" in t.to_dot()


WIDE = '''
"""A wide picture

Eight parallel branches make a picture wider than the page's column.
"""

import torch

import tracer

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = sum(x * float(k) for k in range(1, 9))
tracer.trace(y, gradient=torch.ones(2))
'''


@pytest.mark.browser
@pytest.mark.graphviz
def test_the_gallery_index_shows_every_picture_at_its_own_size(tmp_path: Path) -> None:
    """In Chromium at 100%: no picture of index.html is shrunk (its smallest text stays 12 px), a wide one scrolls
    inside its frame, and each is a link to its full-size SVG."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"no Chromium at {chromium}")
    folder = tmp_path / "gallery"
    topic = folder / "cases" / "01-t"
    topic.mkdir(parents=True)
    (topic / "README.md").write_text("# Topic\n\nFor the test.\n", encoding="utf-8")
    (topic / "01-two.py").write_text(textwrap.dedent(TWO_PASSES).lstrip(), encoding="utf-8")
    (topic / "02-wide.py").write_text(textwrap.dedent(WIDE).lstrip(), encoding="utf-8")
    build(folder)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((folder / "index.html").as_uri())
        page.wait_for_load_state("load")
        shown = page.eval_on_selector_all(
            "figure img",
            "is => is.map(i => [i.getAttribute('src'), i.naturalWidth, i.getBoundingClientRect().width, "
            "i.closest('a').getAttribute('href'), i.closest('.frame').scrollWidth > i.closest('.frame').clientWidth])",
        )
        browser.close()
    assert len(shown) == 3
    for src, natural, width, href, _ in shown:
        assert natural > 0 and abs(width - natural) < 1, (src, natural, width)
        assert href == src
    assert any(scrolls for *_, scrolls in shown)  # the wide one scrolls in its frame instead of shrinking


def test_gallery_pages_show_pictures_at_their_own_size() -> None:
    """index.html never shrinks a picture (it scrolls in its frame, a click opens the SVG); the gallery's README.md
    sets no width; the README's pictures keep their smallest text at 9 px or more at the width they are shown."""
    from tracer.gallery import markdown, page

    assert "figure img { display: block; max-width: none;" in page.STYLE
    assert "figure .frame { overflow: auto;" in page.STYLE
    assert not hasattr(markdown, "PICTURE_WIDTH")
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"<img ([^>]*)>", readme)
    assert pictures
    for attributes in pictures:
        src = re.search(r'src="([^"]+)"', attributes).group(1)  # type: ignore[union-attr]
        svg = ET.parse(root / src).getroot()
        natural = pixels_per_unit(svg) * float(svg.attrib["viewBox"].split()[2])  # its width in px at 100%
        shown = re.search(r'width="([0-9.]+)"', attributes)
        scale = float(shown.group(1)) / natural if shown else 1.0
        sizes = [float(e.attrib["font-size"]) for e in svg.iter() if "font-size" in e.attrib]
        smallest = min(sizes) * pixels_per_unit(svg)
        assert smallest * scale >= 9 - 0.01, f"{src}: its smallest text is {smallest * scale:.1f} px in the README"
