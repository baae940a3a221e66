"""The module view: collapse by nn.Module at several depths with every norm checked against torch, repeated
blocks, focus=, the automatic switch above max_nodes, the refusal message, and the DOT/SVG it draws."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import tracer
from tests.module_models import Recorded, encoder, nested
from tests.render_helpers import SVG, groups, title
from tracer.analyse import module_view
from tracer.analyse.flow_norm import FlowNorm, combine, slot_norm
from tracer.analyse.focus import resolve
from tracer.analyse.graph import node_key, seed_key
from tracer.analyse.module_tree import ModuleTree, natural_key
from tracer.model import Stats, Step, TensorInfo, Trace
from tracer.model.errors import DrawingOptionError

REL = 1e-9  # float64 models, exact statistics: the view's norms equal torch's to rounding


@pytest.fixture(scope="module")
def small() -> Recorded:
    return nested()


@pytest.fixture(scope="module")
def enc() -> Recorded:
    return encoder(layers=3)


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def boxes(view: module_view.ModuleView) -> dict[str, module_view.Box]:
    out = {b.path: b for b in view.boxes}
    for r in view.runs:
        out.update({b.path: b for b in r.blocks})
    return out


# -- the tree the view is built on


def test_tree_depths_classes_and_default_depth(small: Recorded, enc: Recorded) -> None:
    tree = ModuleTree(small.trace)
    assert tree.roots == ["model"]
    assert [tree.depth(p) for p in ("model", "model.1", "model.1.inner")] == [0, 1, 2]
    assert tree.classes["model.1"] == "Block" and tree.classes["model.1.inner"] == "Linear"
    assert tree.default_depth() == 1  # no repeated blocks: the model's children
    deep = ModuleTree(enc.trace)
    assert deep.default_depth() == 2  # model.layers.0..2, three TransformerEncoderLayers
    assert deep.deepest == 4  # model.layers.i.self_attn.out_proj (used by its parent, so without nodes)
    assert [r.name for r in deep.runs(["model.layers.0", "model.layers.1", "model.layers.2"])] == ["model.layers.0–2"]
    assert sorted(["layers.10", "layers.2", "layers.1"], key=natural_key) == ["layers.1", "layers.2", "layers.10"]


def test_identity_child_leaves_the_parents_op_tagged() -> None:
    """A child returning its input unchanged (eval Dropout, Identity) must not hide the parent's node."""

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.drop(torch.relu(self.lin(x)))

    model = M().eval()
    with tracer.record(model=model) as rec:
        model(torch.randn(3, 2)).sum().backward()
    assert [s.module for s in rec.traces[0].steps if s.name == "ReluBackward0"] == ["model"]


# -- collapse at several depths, norms against torch


def test_depth_0_is_the_whole_model(small: Recorded) -> None:
    view = module_view.build(small.trace, depth=0)
    (box,) = view.boxes
    assert box.path == "model" and box.cls == "Sequential" and not view.runs
    tagged = [n.id for n in small.trace.nodes if n.module is not None]
    assert sorted(box.members) == sorted(tagged)
    b = small.boundaries["model"]
    assert close(box.entering.norm, float(b.into.norm()))
    assert b.out is not None and close(box.leaving.norm, float(b.out.norm()))
    total = math.sqrt(sum(float(g.norm()) ** 2 for g in small.grads.values()))
    assert close(box.params_norm.norm, total)
    # the loss, the input scaling and x's leaf are outside the model: ordinary nodes
    outside = {small.trace.node(i).name for i in view.nodes}
    assert outside == {"SumBackward0", "PowBackward0", "MulBackward0", "AccumulateGrad"}


@pytest.mark.parametrize("depth", [1, 2])
def test_depths_1_and_2_match_torch_at_every_boundary(small: Recorded, depth: int) -> None:
    view = module_view.build(small.trace, depth=depth)
    found = boxes(view)
    expected = {1: {"model.0", "model.1", "model.2"}, 2: {"model.0", "model.1.inner", "model.2"}}[depth]
    assert set(found) == expected
    for path, box in found.items():
        b = small.boundaries[path]
        assert close(box.entering.norm, float(b.into.norm())), path
        assert b.out is not None and close(box.leaving.norm, float(b.out.norm())), path
        params = {p.name: p.norm for p in box.params}
        assert set(params) == {k for k in small.grads if k.startswith(path + ".")} - (
            {"model.1.scale"} if depth == 2 else set()
        )
        for name, norm in params.items():
            assert close(norm, float(small.grads[name].norm())), name
        assert close(box.params_norm.norm, math.sqrt(sum(float(small.grads[n].norm()) ** 2 for n in params)))
        assert not box.entering.approx and not box.entering.bound
    if depth == 2:
        # Block's own operations (tanh, * scale) and its own parameter stay nodes inside Block's cluster
        own = {small.trace.node(i).name for i in view.nodes if small.trace.node(i).module == "model.1"}
        assert own == {"TanhBackward0", "MulBackward0", "AccumulateGrad"}
        assert dict(view.clusters) == {"model": None, "model.1": "model"}
        assert view.home["m1"] == "model"  # model.0's box sits in the model's cluster


def test_transformer_layers_and_their_linears_match_torch(enc: Recorded) -> None:
    for depth in (2, 3):
        found = boxes(module_view.build(enc.trace, depth=depth))
        checked = [p for p in found if p in enc.boundaries]
        assert len(checked) == (3 if depth == 2 else 6)
        for path in checked:
            b = enc.boundaries[path]
            box = found[path]
            assert close(box.entering.norm, float(b.into.norm())), path
            assert b.out is not None and close(box.leaving.norm, float(b.out.norm())), path
            mine = [n for n in enc.grads if n.startswith(path + ".")]
            assert close(box.params_norm.norm, math.sqrt(sum(float(enc.grads[n].norm()) ** 2 for n in mine)))


def test_deepest_depth_boxes_every_module_with_nodes(enc: Recorded) -> None:
    tree = ModuleTree(enc.trace)
    view = module_view.build(enc.trace, depth=99)
    assert view.depth == tree.deepest == 4
    found = boxes(view)
    with_nodes = {n.module for n in enc.trace.nodes if n.module is not None}
    # every module with nodes and no child with nodes is a box; a layer's own ops (residual adds, relu) are nodes
    layers = {f"model.layers.{i}" for i in range(3)}
    assert set(found) == with_nodes - layers
    own = {enc.trace.node(i).module for i in view.nodes} - {None}
    assert own == layers
    assert not view.runs  # depth 3 has no numbered siblings


def test_flows_equal_the_recorded_edges_summed_per_slot() -> None:
    """Each edge between drawn things against the trace's raw gradients (capture='full' keeps every value)."""
    rec = encoder(layers=3, capture="full")
    trace = rec.trace
    view = module_view.build(trace, depth=3)
    item: dict[int, str] = {i: node_key(i) for i in view.nodes}
    for b in view.boxes:
        item.update({i: b.key for i in b.members})
    for f in view.flows:
        slots: dict[tuple[int, int], np.ndarray] = {}
        for n in trace.nodes:
            if item.get(n.id) != f.source:
                continue
            for k, e in enumerate(n.edges):
                if e.target is not None and item.get(e.target) == f.target:
                    values = n.vjp[k].flat() if n.vjp[k] is not None else None
                    assert values is not None
                    slots[(e.target, e.input_nr)] = slots.get((e.target, e.input_nr), 0) + values
        if f.source.startswith("seed"):
            continue
        expected = math.sqrt(sum(float(np.linalg.norm(v)) ** 2 for v in slots.values()))
        assert close(f.norm.norm, expected), (f.source, f.target)
        assert f.norm.edges >= len(slots)


def test_a_parameter_without_gradient_is_listed_in_its_box() -> None:
    rec = nested(unused=True)
    assert rec.trace.leaves["model.1.spare"].node is None
    box = boxes(module_view.build(rec.trace, depth=1))["model.1"]
    spare = next(p for p in box.params if p.name == "model.1.spare")
    assert spare.norm is None and spare.reason
    assert "model.1.spare" not in {leaf.name for leaf in module_view.build(rec.trace, depth=1).unreached}
    assert "spare  None" not in rec.trace.to_dot(view="modules", depth=1)  # listed in the tooltip, not hidden
    assert "model.1.spare [2]: no gradient" in rec.trace.to_dot(view="modules", depth=1)


def test_a_grad_pass_lists_its_inputs_as_parameters() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    with tracer.record(model=model) as rec:
        (gw,) = torch.autograd.grad(model(x).pow(2).sum(), [model[2].weight])
    box = boxes(module_view.build(rec.traces[0], depth=1))["model.2"]
    weight = next(p for p in box.params if p.name == "model.2.weight")
    assert weight.kind == "input" and close(weight.norm, float(gw.norm()))
    assert close(box.params_norm.norm, float(gw.norm()))  # the bias was not asked for: no gradient
    assert box.not_run > 0


# -- repeated blocks


def test_repeated_layers_are_one_box_with_a_row_per_block(enc: Recorded) -> None:
    view = module_view.build(enc.trace)
    assert not view.boxes
    (run,) = view.runs
    assert run.run.name == "model.layers.0–2" and run.run.cls == "TransformerEncoderLayer"
    assert [b.path for b in run.blocks] == ["model.layers.2", "model.layers.1", "model.layers.0"]  # backward order
    expanded = boxes(module_view.build(enc.trace, repeats="expand"))
    assert set(expanded) == {b.path for b in run.blocks}
    for b in run.blocks:
        assert b.entering == expanded[b.path].entering and b.leaving == expanded[b.path].leaving
    assert close(run.entering.norm, float(enc.boundaries["model.layers.2"].into.norm()))
    assert close(run.leaving.norm, float(enc.boundaries["model.layers.0"].out.norm()))  # type: ignore[union-attr]
    assert close(run.params_norm.norm, math.sqrt(sum(float(g.norm()) ** 2 for g in enc.grads.values())))
    text = enc.trace.to_dot(view="modules")
    assert "model.layers.0–2" in text and "3 ×" in text
    assert len(re.findall(r"^\s+r\d+ \[", text, re.M)) == 1 and not re.search(r"^\s+m\d+ \[", text, re.M)


def test_two_blocks_are_not_a_run() -> None:
    view = module_view.build(encoder(layers=2).trace)
    assert view.depth == 2  # still the depth of the (two) repeated blocks
    assert not view.runs and {b.path for b in view.boxes} == {"model.layers.0", "model.layers.1"}


# -- focus


def _feeding(trace: Trace, targets: set[int]) -> set[int]:
    """Independently of networkx: grow the set by every node with an edge into it until nothing changes."""
    found = set(targets)
    changed = True
    while changed:
        changed = False
        for n in trace.nodes:
            if n.id not in found and any(e.target in found for e in n.edges):
                found.add(n.id)
                changed = True
    return found


def _declared(text: str) -> set[str]:
    return set(re.findall(r"^\s+(\w+) \[id=", text, re.M))


def _edges(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^\s+(\w+) -> (\w+) \[", text, re.M))


def test_focus_on_a_leaf_draws_exactly_the_paths_to_it() -> None:
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 4.0], requires_grad=True)
    c = torch.tensor([5.0, 6.0], requires_grad=True)
    t = tracer.trace((a * b + c).sum())
    text = t.to_dot(focus="a")
    names = {t.node(int(k[1:])).name for k in _declared(text) if k.startswith("n")}
    assert names == {"SumBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad"}
    leaves = {t.node(int(k[1:])).leaf for k in _declared(text) if k.startswith("n")} - {None}
    assert leaves == {"a"}
    assert _declared(text) - {"legend"} == {"seed0"} | {node_key(i) for i in _feeding(t, {t.leaves["a"].node})}
    assert not any(k.startswith("const") for k in _declared(text))
    assert "focus: leaf a" in text


def test_focus_on_a_module_draws_exactly_the_paths_to_it(small: Recorded) -> None:
    t = small.trace
    targets = {n.id for n in t.nodes if n.module is not None and n.module.startswith("model.1")}
    expected = _feeding(t, targets)
    assert resolve(t, "model.1").shown == frozenset(expected)
    text = t.to_dot(view="full", focus="model.1")
    assert _declared(text) - {"legend"} == {seed_key(0)} | {node_key(i) for i in expected}
    drawn = {node_key(i) for i in expected} | {"seed0"}
    assert {(a, b) for a, b in _edges(text)} == {
        (node_key(n.id), node_key(e.target))
        for n in t.nodes
        if n.id in expected
        for e in n.edges
        if e.target in expected
    } | {("seed0", node_key(t.seeds[0].target))}
    assert all(a in drawn and b in drawn for a, b in _edges(text))
    # model.0 (before Block in the forward) and model.2's parameters do not feed Block
    assert not any(t.node(i).module == "model.0" for i in expected)
    assert t.leaves["model.2.weight"].node not in expected and t.leaves["model.1.inner.weight"].node in expected


def test_focus_on_a_module_in_the_module_view_opens_it(enc: Recorded) -> None:
    view = module_view.build(enc.trace, focus=resolve(enc.trace, "model.layers.1"))
    assert not view.runs  # only layer 2 feeds layer 1: one block is no run
    paths = set(boxes(view))
    assert "model.layers.1.self_attn" in paths and "model.layers.1.linear1" in paths
    assert not any(p.startswith("model.layers.0") for p in paths)  # layer 0 does not feed layer 1
    assert "model.layers.2" in paths  # the layer feeding it stays one box
    assert ("model.layers.1", "model.layers") in view.clusters


def test_focus_on_a_leaf_in_the_module_view_ends_at_the_leaf(enc: Recorded) -> None:
    name = "model.layers.1.linear1.weight"
    view = module_view.build(enc.trace, focus=resolve(enc.trace, name))
    leaf_node = enc.trace.leaves[name].node
    assert leaf_node in view.nodes  # the leaf itself is drawn, in its opened module
    assert view.home[node_key(leaf_node)] == "model.layers.1.linear1"  # type: ignore[arg-type]
    assert "model.layers.2" in boxes(view) and not any(p.startswith("model.layers.0") for p in boxes(view))


def test_unknown_focus_names_the_value_and_close_matches(enc: Recorded) -> None:
    with pytest.raises(DrawingOptionError, match=r"unknown focus: 'model.layer.1' .*close matches: \['model.layers.1'"):
        enc.trace.to_dot(focus="model.layer.1")
    with pytest.raises(ValueError, match=r"close matches: \['model.layers.0.linear1.weight'"):
        enc.trace.svg(focus="model.layers.0.linear1.weigth")
    t = tracer.trace((torch.tensor([1.0], requires_grad=True) * 2).sum())
    with pytest.raises(ValueError, match=r"unknown focus: 'zz'.*record\(model=model\)"):
        t.to_dot(focus="zz")
    with pytest.raises(ValueError, match="focus must be the name of a leaf"):
        t.to_dot(focus="")


# -- readable at any size


def test_auto_switches_to_the_module_view_above_the_limit(enc: Recorded) -> None:
    count = len(enc.trace.nodes)
    small_limit = count // 4
    assert "module view" not in enc.trace.to_dot()  # under the limit: every node
    auto = enc.trace.to_dot(max_nodes=small_limit)
    assert auto == enc.trace.to_dot(view="modules", max_nodes=small_limit)
    root = ET.fromstring(enc.trace.svg(max_nodes=small_limit))
    assert "r1" in groups(root)
    with pytest.raises(tracer.DrawingTooLargeError, match="view='modules' draws one box per module"):
        enc.trace.svg(view="full", max_nodes=small_limit)


def test_refusal_without_module_tags_says_how_to_get_the_module_view() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    t = tracer.trace(model(torch.randn(2, 3)).sum(), names=model)
    count = len(_declared(t.to_dot()) - {"legend"})
    with pytest.raises(tracer.DrawingTooLargeError) as info:
        t.svg(max_nodes=5)
    message = str(info.value)
    assert f"this pass has {count} nodes to draw, more than max_nodes=5" in message
    assert "`with tracer.record(modules=True): loss = model(x).sum(); loss.backward()`" in message
    assert "focus='NAME'" in message and f"max_nodes={count}" in message and "--view modules" in message
    with pytest.raises(DrawingOptionError, match=r"view='modules' needs module tags.*tracer.record\(modules=True\)"):
        t.to_dot(view="modules")


def test_a_module_view_still_too_large_says_to_go_shallower(enc: Recorded) -> None:
    with pytest.raises(tracer.DrawingTooLargeError, match=r"module view at depth 3 .*depth=2"):
        enc.trace.svg(view="modules", depth=3, max_nodes=10)


def test_step_frames_exist_for_the_full_graph_only(small: Recorded) -> None:
    with pytest.raises(DrawingOptionError, match="module view has no steps"):
        tracer.render.frames.frames(small.trace, "dot", view="modules")
    focused = tracer.render.frames.frames(small.trace, "dot", focus="model.2.bias")
    assert len(focused) == len(small.trace.steps)
    assert _declared(focused[0].decode()) - {"legend"} == {"seed0"} | {
        node_key(i) for i in resolve(small.trace, "model.2.bias").shown
    }


# -- norms where parts add up (flow_norm)


def _info(values: list[float] | None, norm: float, sampled: bool = False) -> TensorInfo:
    stats = Stats(
        norm=norm,
        min=0.0,
        max=0.0,
        mean=0.0,
        zeros=0.0,
        nan=0,
        inf=0,
        sampled=8 if sampled else None,
        norm_exact=not sampled,
    )
    return TensorInfo(shape=(2,), dtype="float32", stats=stats, values=None if values is None else tuple(values))


def test_slot_norms_use_the_received_sum_exact_sums_or_a_marked_bound() -> None:
    received = _info([4.0, 0.0], 4.0)
    step = Step(id=1, name="AddBackward0", op="add", executed=True, v=(received,))
    a, b = _info([3.0, 0.0], 3.0), _info([1.0, 0.0], 1.0)
    assert slot_norm(step, 0, [a, b], 2) == FlowNorm(4.0, 2)  # every part crosses: the node's v is their sum
    assert slot_norm(step, 0, [a, b], 3).norm == 4.0  # some parts: summed from their values
    big_a, big_b = _info(None, 3.0, sampled=True), _info(None, 1.0)
    bound = slot_norm(step, 0, [big_a, big_b], 3)
    assert bound == FlowNorm(4.0, 2, approx=True, bound=True) and bound.text(4) == "≤4"
    assert slot_norm(step, 0, [None], 1) == FlowNorm(None, 1) and FlowNorm(None, 1).text(4) == "None"
    assert combine([FlowNorm(3.0, 1), FlowNorm(4.0, 2, approx=True)]) == FlowNorm(5.0, 3, approx=True)
    assert math.isnan(combine([FlowNorm(math.nan, 1), FlowNorm(math.inf, 1)]).norm)  # type: ignore[arg-type]
    assert combine([]).text(4) == "—"


# -- the drawing


def test_module_dot_is_deterministic_and_survives_json(enc: Recorded) -> None:
    first = enc.trace.to_dot(view="modules")
    assert first == enc.trace.to_dot(view="modules")
    assert tracer.load(enc.trace.to_json()).to_dot(view="modules") == first


@pytest.mark.graphviz
def test_module_svg_parses_with_tooltips_and_edges(enc: Recorded) -> None:
    root = ET.fromstring(enc.trace.svg(view="modules", depth=3, focus="model.layers.1"))
    found = groups(root)
    view = module_view.build(enc.trace, depth=3, focus=resolve(enc.trace, "model.layers.1"))
    for b in view.boxes:
        assert b.key in found
        assert title(found[b.key]).startswith(f"module {b.path} (")
    for f in view.flows:
        assert f.key in found and "‖·‖" in title(found[f.key])
    linear = next(b for b in view.boxes if b.path == "model.layers.1.linear1")
    assert "grad in" in "".join(found[linear.key].itertext())
    opened = [g for g in root.iter(f"{SVG}g") if g.attrib.get("class") == "cluster"]
    assert any("model.layers.1 · TransformerEncoderLayer · opened" in "".join(g.itertext()) for g in opened)


@pytest.mark.graphviz
def test_profile_beside_the_graph_is_one_svg_document(enc: Recorded) -> None:
    text = enc.trace.svg(view="modules", profile=True)
    root = ET.fromstring(text.split("?>", 1)[1])
    inner = [e for e in root if e.tag == f"{SVG}svg"]
    assert len(inner) == 2
    graph, chart = inner
    assert float(chart.attrib["x"]) > float(graph.attrib["width"])
    assert "r1" in groups(graph)
    assert "arriving at each backward step" in "".join(chart.itertext())
