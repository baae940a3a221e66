"""SVG/PNG/PDF through Graphviz: parsed SVG shows the step numbers, v, vᵀJ and leaf gradients that torch computes,
and every node and edge carries its full details as a <title> tooltip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tracer
from tests.cases import CASES
from tests.render_helpers import SVG, case_trace, groups, svg_root, texts, title
from tracer.model import TensorInfo
from tracer.model.format import nested, number
from tracer.render.frames import frames

pytestmark = pytest.mark.graphviz


def _vector(values: list[float]) -> str:
    return "[" + ", ".join(number(v, 4) for v in values) + "]"


def test_square_shows_v_vjp_and_leaf_from_torch() -> None:
    """y = x**2, v = ones: the picture shows v, J = diag(2x), vᵀJ = 2x and x.grad, as torch computes them."""
    x = torch.linspace(-2, 2, 5, requires_grad=True)
    y = x**2
    v = torch.ones_like(y)
    t = tracer.trace(y, v)
    expected = (2 * x.detach() * v).tolist()
    assert torch.equal(x.grad, torch.tensor(expected))

    g = groups(svg_root(t.svg()))
    seed = texts(g["seed0"])
    assert "v for y" in seed and _vector(v.tolist()) in seed
    pow_node = texts(g["n1"])
    assert "step 1" in pow_node and "PowBackward0" in pow_node
    assert pow_node.count("1") >= 5  # the v column
    bottom = pow_node[pow_node.index("vᵀJ") + 1 :][:5]
    assert bottom == [number(e, 4) for e in expected]  # the vᵀJ row under J
    diagonal = [number(2 * xi, 4) for xi in x.detach().tolist()]
    assert all(d in pow_node for d in diagonal)
    leaf = texts(g["n2"])
    assert "step 2" in leaf and "AccumulateGrad" in leaf and "x" in leaf
    assert leaf.count(_vector(x.grad.tolist())) == 2  # the gradient added, and .grad after
    assert "None" in leaf  # .grad before
    edge = texts(g["e1_0"])
    assert _vector(expected) in edge


@pytest.mark.parametrize("case_id", ["matrix_valued_10", "stack_sum_and_squares_2", "z_ones", "zero_d_100"])
def test_every_step_and_leaf_in_svg(case_id: str) -> None:
    trace, leaves, _ = case_trace(case_id)
    g = groups(svg_root(trace.svg()))
    for step in trace.steps:
        shown = texts(g[f"n{step.id}"])
        assert f"step {step.id}" in shown and step.name in shown
        for k, sent in enumerate(step.vjp):
            if sent is None or step.edges[k].target is None:
                continue
            label = texts(g[f"e{step.id}_{k}"])
            assert nested(sent, 4) in label, (step.id, k, label)
    for name, x in leaves.items():
        node = trace.leaves[name].node
        shown = " ".join(texts(g[f"n{node}"]))
        assert name in shown
        for value in x.grad.reshape(-1).tolist():  # torch's own .grad, as printed in the leaf
            assert number(value, 4) in shown


def test_matrix_valued_one_hot_picks_one_derivative() -> None:
    """004: y = [x**0 .. x**5] viewed 3×2 with v one-hot at [1, 0] gives d(x**2)/dx = 2x."""
    trace, leaves, _ = case_trace("matrix_valued_10")
    x = leaves["x"]
    assert x.grad.item() == 2 * x.item()
    root = svg_root(trace.svg())
    g = groups(root)
    view = texts(g["n1"])
    assert view[view.index("[1,0]") : view.index("[1,0]") + 2] == ["[1,0]", "1"]  # the one-hot row of v
    leaf = trace.leaves["x"].node
    assert "v = sum of 6 incoming gradients" in texts(g[f"n{leaf}"])
    assert texts(g[f"n{leaf}"])[-1] == number(x.grad.item(), 4)


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_every_case_shows_each_v_its_jacobian_rows_and_every_tooltip(case_id: str) -> None:
    """In every tutorial case: each seed's v in the seed box, each element of v beside the J of a node that has
    one (the left column), the leaf's own values, and a <title> with the details on every node and edge."""
    trace, _, _ = case_trace(case_id)
    g = groups(svg_root(trace.svg()))
    for s in trace.seeds:
        if s.v is not None and s.v.values is not None and s.target is not None:
            shown = " ".join(texts(g[f"seed{s.index}"]))
            assert all(number(float(v), 4) in shown for v in s.v.values), (case_id, s.index, shown)
    for step in trace.steps:
        if step.jacobian is None:
            continue
        shown = texts(g[f"n{step.id}"])
        column = shown[shown.index("v") + 1 :]  # after the v header: the column, J and the vᵀJ row
        for v in step.v:
            if v is not None and v.values is not None:
                assert all(number(float(x), 4) in column for x in v.values), (case_id, step.id, shown)
    for leaf in trace.leaves.values():
        if leaf.value is not None and leaf.node is not None and leaf.value.values is not None:
            shown = texts(g[f"n{leaf.node}"])
            after = " ".join(shown[shown.index("value") + 1 :])  # a vector as one text, a matrix cell by cell
            assert all(number(float(x), 4) in after for x in leaf.value.values), (case_id, leaf.name, shown)
    nodes = [k for k, el in g.items() if "node" in el.attrib.get("class", "").split()]
    edges = [k for k, el in g.items() if "edge" in el.attrib.get("class", "").split()]
    assert len(edges) == len(trace.seeds) + sum(len(n.edges) for n in trace.nodes)
    for key in nodes + edges:
        tip = title(g[key])
        assert tip != key and len(tip) > 20, (case_id, key, tip)


def test_every_node_and_edge_has_a_full_tooltip() -> None:
    trace, _, _ = case_trace("item_assign_scalar_to_vector")
    g = groups(svg_root(trace.svg()))
    nodes = [k for k, el in g.items() if "node" in el.attrib.get("class", "").split()]
    edges = [k for k, el in g.items() if "edge" in el.attrib.get("class", "").split()]
    assert len(nodes) == len(trace.graph.nodes) + 1  # + legend
    assert len(edges) == len(trace.seeds) + sum(len(n.edges) for n in trace.nodes)
    for key in nodes + edges:
        tip = title(g[key])
        assert tip != key and len(tip) > 20, (key, tip)
    first = title(g["n1"])
    assert "step 1: CopySlices" in first and "norm" in first and "float32" in first and "check vᵀJ = v·J: ok" in first
    assert "zeros" in title(g["e1_0"]) and "shape" in title(g["e1_0"])


def test_incomplete_and_cut_render() -> None:
    trace, _, _ = case_trace("detach")
    root = svg_root(trace.svg(theme="transparent", direction="LR"))
    assert any("no grad: constant or detached" in t for t in texts(root))


def test_png_pdf_svg_files(tmp_path: Path) -> None:
    trace, _, _ = case_trace("square")
    assert trace.save(tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    assert trace.save(tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")
    svg_path = trace.save(tmp_path / "g.svg")
    assert svg_root(svg_path.read_text(encoding="utf-8")).tag == f"{SVG}svg"
    first = trace.save(tmp_path / "f.svg", steps=True)
    frames = sorted(tmp_path.glob("f-step*.svg"))
    assert first == frames[0] and len(frames) == len(trace.steps)
    for k, frame in enumerate(frames, start=1):
        g = groups(svg_root(frame.read_text(encoding="utf-8")))
        active = [key for key, el in g.items() if "gt-active" in el.attrib.get("class", "").split()]
        assert f"n{k}" in active


def test_frames_share_one_layout() -> None:
    """Every frame has the same node positions, so stepping does not make the picture jump."""
    trace, _, _ = case_trace("z_ones")
    positions = []
    for data in frames(trace):
        g = groups(svg_root(data.decode("utf-8")))
        positions.append(
            {k: [(t.attrib["x"], t.attrib["y"]) for t in el.iter(f"{SVG}text")] for k, el in g.items() if k[0] == "n"}
        )
    assert all(p == positions[0] for p in positions)


def test_nan_gradient_in_svg() -> None:
    x = torch.tensor([0.0, 4.0], requires_grad=True)
    t = tracer.trace(x.sqrt().sum())
    assert torch.isinf(x.grad).any()
    root = svg_root(t.svg())
    shown = " ".join(texts(root))
    assert "inf" in shown and "NaN or Inf" in shown


def test_big_graph_stays_linear() -> None:
    """A long chain renders, and statistics replace the values of large tensors."""
    x = torch.randn(200, requires_grad=True)
    h = x
    for _ in range(60):
        h = torch.tanh(h) * 1.01
    t = tracer.trace(h.sum())
    root = svg_root(t.svg())
    assert sum(1 for k in groups(root) if k.startswith("n") and k[1:].isdigit()) == len(t.nodes)
    assert any("‖·‖" in s for s in texts(root))


def test_a_picture_above_a_thousand_nodes_is_placed_with_a_bounded_effort() -> None:
    """Above BIG_PICTURE drawn nodes the DOT asks dot to cut its across-rank placement short (nslimit), which
    kept a 4,103-node drawing from taking 24 s; the laid-out SVG still has every node. Smaller pictures keep
    dot's full placement, so their layout (and the golden DOT files) are as before."""
    from tracer.render.dot import BIG_PICTURE

    def chain(length: int) -> tracer.Trace:
        x = torch.ones(3, requires_grad=True)
        h = x
        for _ in range(length):
            h = h * 1.001
        return tracer.trace(h.sum())

    big, small = chain(BIG_PICTURE), chain(50)
    assert len(big.nodes) > BIG_PICTURE >= len(small.nodes)
    assert "nslimit=0.05" in big.to_dot(max_nodes=4 * BIG_PICTURE)
    assert "nslimit" not in small.to_dot()
    root = svg_root(big.svg(max_nodes=4 * BIG_PICTURE))
    assert sum(1 for k in groups(root) if k.startswith("n") and k[1:].isdigit()) == len(big.nodes)


def test_tensor_info_without_values_shows_statistics() -> None:
    trace, _, _ = case_trace("many_points_ones_like")
    assert isinstance(trace.seeds[0].v, TensorInfo)
    g = groups(svg_root(trace.svg(max_elements=3)))
    assert "[5] float32" in texts(g["seed0"])
