"""What the picture needs to explain J: a small node's saved forward arguments, and a small leaf's own values."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch

import tracer
from tracer.record.saved_arguments import saved_arguments


def test_pow_shows_its_base_and_exponent() -> None:
    x = torch.linspace(-2, 2, 5, requires_grad=True)
    trace = tracer.trace(x**2, torch.ones(5))
    assert trace.steps[0].op == "pow(self=[-2, -1, 0, 1, 2], exponent=2)"
    assert trace.leaves["x"].value is not None and trace.leaves["x"].value.values == (-2.0, -1.0, 0.0, 1.0, 2.0)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda x: torch.mm(torch.tensor([[1.0, 2.0]]), x.view(2, 1)), "mm(self=[[1, 2]])"),
        (lambda x: x[1:3], "slice(dim=0, end=3, start=1, step=1)"),
        (lambda x: torch.stack([x, x], dim=1), "stack(dim=1)"),
        (lambda x: x * 2.5, "mul(other=2.5)"),
        (lambda x: x.sum(dim=0, keepdim=True), "sum(dim=(0,), keepdim=True)"),
        (
            lambda x: torch.nn.functional.linear(x.view(1, 2), torch.ones(3, 2), torch.zeros(3)),
            "addmm(mat2=[[1, 1, 1], [1, 1, 1]])",
        ),
        (lambda x: x.view(2, 1), "view"),  # it saved only sizes: nothing to tell
        (lambda x: x.softmax(-1), "softmax(dim=-1, result=[0.1192, 0.8808])"),  # torch hands -1 over as 2**64 - 1
        (lambda x: x.mean(), "mean"),  # it saved only the element count
    ],
    ids=["mm", "slice", "stack", "mul-scalar", "sum-dim", "linear", "view", "softmax-negative-dim", "mean"],
)
def test_saved_arguments_name_the_forward_call(build, expected: str) -> None:  # type: ignore[no-untyped-def]
    x = torch.tensor([3.0, 5.0], requires_grad=True)
    y = build(x)
    trace = tracer.trace(y, torch.ones_like(y))
    assert trace.steps[0].op == expected


def test_large_saved_tensors_are_named_by_shape_and_large_nodes_not_at_all() -> None:
    x = torch.ones(9, requires_grad=True)
    trace = tracer.trace((x * torch.arange(9.0)).sum())
    assert trace.steps[1].op == "mul(other=tensor[9])"  # 9 > MAX_ELEMENTS values: the shape only
    big = torch.ones(100, requires_grad=True)
    trace = tracer.trace((big**2).sum())
    assert trace.steps[1].op == "pow"  # above jacobian_limit: no local Jacobian, no saved arguments
    assert trace.leaves["big"].value is None  # above max_values: statistics of the gradient only


def test_custom_functions_keep_their_name() -> None:
    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            (x,) = ctx.saved_tensors
            return 3 * x**2 * g

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace(Cube.apply(x).sum())
    assert trace.steps[1].op == "Cube.apply"


def test_freed_saved_tensors_are_left_out_without_error() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x**2).sum()
    node = y.grad_fn.next_functions[0][0]
    assert saved_arguments(node) == "self=[1, 2], exponent=2"
    y.backward()  # frees the saved x
    assert saved_arguments(node) == "exponent=2"


def test_leaf_value_is_a_snapshot_and_survives_json() -> None:
    w = torch.tensor([1.0, -1.0], requires_grad=True)
    trace = tracer.trace((w * w).sum())
    with torch.no_grad():
        w -= 0.5 * w.grad  # an optimizer step after the pass
    leaf = trace.leaves["w"]
    assert leaf.value is not None and leaf.value.values == (1.0, -1.0)
    assert tracer.load(trace.to_json()) == trace


def test_leaf_value_and_saved_arguments_are_drawn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x = torch.linspace(-2, 2, 5, requires_grad=True)
    trace = tracer.trace(x**2, torch.ones(5))
    root = ET.fromstring(trace.svg())
    ns = {"s": "http://www.w3.org/2000/svg"}
    texts = {
        g.get("id"): " ".join(t.text or "" for t in g.iter("{http://www.w3.org/2000/svg}text"))
        for g in root.iterfind(".//s:g[@class]", ns)
    }
    pow_node, leaf_node = texts["n1"], texts[f"n{trace.leaves['x'].node}"]
    assert "forward: pow(self=[-2, -1, 0, 1, 2], exponent=2)" in pow_node.replace("\xa0", " ")
    assert "value" in leaf_node and "[-2, -1, 0, 1, 2]" in leaf_node
    titles = "".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title"))
    assert "value:" in titles


def test_a_long_call_is_cut_in_the_label_and_whole_in_the_tooltip() -> None:
    x = torch.linspace(0.1, 0.8, 8, requires_grad=True)
    trace = tracer.trace(torch.atan2(x, x + 1).sum())
    op = trace.steps[1].op
    assert op.startswith("atan2(self=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], other=[1.1, 1.2,") and len(op) > 72
    text = trace.to_dot()
    assert f"forward: {op}" in text  # the tooltip
    assert f"forward: {op[:60]}" in text and "…" in text
    assert f">forward: {op}<" not in text  # the label keeps 72 characters
