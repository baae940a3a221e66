"""Diff of two traces of one graph: two seeds, two training steps; a clear error for different graphs."""

from __future__ import annotations

import pytest
import torch

import tracer
from tests.cases import CONST_M
from tests.models import mlp


def test_two_one_hot_seeds_of_tutorial_002() -> None:
    x = torch.tensor([[10.0, 5.0]], requires_grad=True)
    y = torch.mm(x, CONST_M)
    first = tracer.trace(y, torch.tensor([[1.0, 0.0]]), retain_graph=True)
    g1 = x.grad.clone()
    x.grad = None
    second = tracer.trace(y, torch.tensor([[0.0, 1.0]]))
    g2 = x.grad.clone()
    d = tracer.diff(first, second)
    assert not d.identical
    where = [c.where for c in d.changes]
    assert where[0] == "seed y"
    grad_change = next(c for c in d.leaf_changes() if c.where == "leaf x grad")
    assert grad_change.max_abs == pytest.approx(float((g2 - g1).abs().max()))  # |(2, 4) - (1, 3)| = 1
    assert torch.equal(grad_change.a.as_tensor(), g1) and torch.equal(grad_change.b.as_tensor(), g2)  # type: ignore[union-attr]
    assert grad_change.norm_ratio == pytest.approx(float(g2.norm() / g1.norm()))
    assert {c.node for c in d.node_changes()} == {1, 2}  # MmBackward0's v and vjp, and x's AccumulateGrad
    assert d.check_changes == ()


def test_same_trace_and_its_json_are_identical() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace((x * x).sum())
    d = tracer.diff(trace, tracer.load(trace.to_json()))
    assert d.identical and d.compared > 0
    assert str(d).startswith(f"no differences in {d.compared} recorded tensors")


def test_two_training_steps_of_an_mlp() -> None:
    model, inputs, target = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    traces, grads = [], []
    for _ in range(2):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), target)
        traces.append(tracer.trace(loss, names={"mlp": model}))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        opt.step()
    d = tracer.diff(*traces)
    leaf_grads = {c.leaf: c for c in d.leaf_changes() if c.where.endswith(" grad")}
    assert set(leaf_grads) == {f"mlp.{n}" for n, _ in model.named_parameters()}
    for name, change in leaf_grads.items():
        before, after = grads[0][name[4:]], grads[1][name[4:]]
        assert change.norm_ratio == pytest.approx(float(after.norm() / before.norm()), rel=1e-6)
        if change.max_abs is not None:  # small tensors keep their values: exact differences
            assert change.max_abs == pytest.approx(float((after - before).abs().max()), rel=1e-6)
    assert all(c.where != "seed loss" for c in d.changes)  # both seeds are 1


def test_tolerance_controls_what_counts_as_changed() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    a = tracer.trace((x * 3).sum())
    x.grad = None
    b = tracer.trace((x * 3.00001).sum())
    assert not tracer.diff(a, b).identical
    assert tracer.diff(a, b, rtol=1e-4).identical


def test_different_graphs_are_refused_with_the_reason() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    a = tracer.trace((x * x).sum())
    b = tracer.trace((x + x).sum())
    with pytest.raises(
        tracer.GraphMismatch, match=r"node 2 is MulBackward0 in the first and AddBackward0 in the second"
    ):
        tracer.diff(a, b)
    c = tracer.trace((x * x * x).sum())
    with pytest.raises(tracer.GraphMismatch, match=r"3 nodes in the first, 4 in the second"):
        tracer.diff(a, c)


def test_check_verdict_changes_are_reported() -> None:
    from dataclasses import replace

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    a = tracer.trace((x * x).sum())
    broken = replace(a.nodes[1], check=replace(a.nodes[1].check, ok=False))  # type: ignore[arg-type]
    b = replace(a, nodes=(a.nodes[0], broken, *a.nodes[2:]))
    d = tracer.diff(a, b)
    assert d.check_changes == ("step 2 MulBackward0: vjp = v·J → vjp ≠ v·J",)
    assert not d.identical


def test_str_is_a_table() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    a = tracer.trace(y, torch.tensor([1.0, 0.0]), retain_graph=True)
    b = tracer.trace(y, torch.tensor([0.0, 1.0]))
    text = str(tracer.diff(a, b))
    assert text.splitlines()[0].endswith("recorded tensors changed")
    assert "leaf x grad" in text and "[2, 0]" in text and "[0, 2]" in text


def test_two_training_steps_of_a_transformer_layer() -> None:
    from tests.models import transformer

    layer, src, weights = transformer()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    traces, grads = [], []
    for _ in range(2):
        opt.zero_grad()
        traces.append(tracer.trace((layer(src) * weights).sum(), names={"layer": layer}))
        grads.append({f"layer.{n}": p.grad.clone() for n, p in layer.named_parameters()})
        opt.step()
    d = tracer.diff(*traces)
    changed = {c.leaf: c for c in d.leaf_changes() if c.where.endswith(" grad")}
    # d loss / d norm2.bias = Σ over tokens of the weights: the same at every step, so not a change
    assert set(changed) == set(grads[0]) - {"layer.norm2.bias"}
    assert torch.equal(grads[0]["layer.norm2.bias"], weights.sum((0, 1)))
    assert torch.equal(grads[1]["layer.norm2.bias"], grads[0]["layer.norm2.bias"])
    for name, change in changed.items():
        assert change.norm_ratio == pytest.approx(float(grads[1][name].norm() / grads[0][name].norm()), rel=1e-5)
