"""Accumulation points: the parts summed at a fan-in or into .grad, checked against torch and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tracer
from tests.cases import CASES, Case
from tests.models import record_mlp, record_transformer


def _values(info: tracer.TensorInfo | None) -> torch.Tensor:
    assert info is not None
    return info.as_tensor().double()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_case_adds_up(case: Case) -> None:
    leaves = case.leaves()
    y = case.forward(leaves)
    trace = tracer.trace(y, case.seed(y), names=leaves)
    for point in tracer.accumulation_points(trace):
        assert point.ok is True, str(point)
        assert point.checked_by == "values"
        assert len(point.parts) >= 2


def test_cumulative_grad_of_tutorial_000() -> None:
    """y[0] = x[0]**2, y[1] = x[1]**3, y[2] = x[1]**4: x's AccumulateGrad sums three parts."""
    x = torch.tensor([[0.3432], [0.5206]], requires_grad=True)
    y = torch.zeros(3, 1)
    y[0] = x[0] ** 2
    y[1] = x[1] ** 3
    y[2] = x[1] ** 4
    trace = tracer.trace(y, torch.ones(3, 1))
    (point,) = tracer.accumulation_points(trace)
    assert point.kind == "fan-in" and point.leaf == "x" and point.name == "AccumulateGrad"
    x0, x1 = x.detach().double()[:, 0]
    by_hand = {
        "step 3 SelectBackward0, edge 0": [0.0, 4 * x1**3],  # x[1]**4, the last write, runs first
        "step 6 SelectBackward0, edge 0": [0.0, 3 * x1**2],
        "step 9 SelectBackward0, edge 0": [2 * x0, 0.0],
    }
    assert [p.label for p in point.parts] == list(by_hand)
    for part in point.parts:
        expected = torch.tensor(by_hand[part.label], dtype=torch.float64).reshape(2, 1)
        assert torch.allclose(_values(part.grad), expected, rtol=1e-6)
    assert torch.equal(point.total.as_tensor(), x.grad)  # type: ignore[union-attr]
    assert point.computed is not None
    assert torch.allclose(torch.tensor(point.computed, dtype=torch.float64), x.grad.double().reshape(-1), rtol=1e-6)


def test_x_times_x_parts_are_the_two_factors() -> None:
    x = torch.arange(4.0, requires_grad=True)
    trace = tracer.trace(x * x, torch.ones(4))
    (point,) = tracer.accumulation_points(trace)
    assert [p.edge for p in point.parts] == [0, 1]
    for part in point.parts:
        assert torch.equal(part.grad.as_tensor(), x.detach())  # type: ignore[union-attr]
    assert torch.equal(point.total.as_tensor(), 2 * x.detach())  # type: ignore[union-attr]


def test_grad_accumulates_across_passes() -> None:
    """Tutorial 002: without zeroing, the second pass adds to .grad — a '.grad' accumulation point."""
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    z = 2 * x + 3 * x[0, 3]
    z.backward(torch.tensor([[1.0, 0, 0, 0]]), retain_graph=True)
    before = x.grad.clone()
    trace = tracer.trace(z, torch.tensor([[0.0, 1, 0, 0]]))
    points = tracer.accumulation_points(trace)
    assert [p.kind for p in points] == ["fan-in", ".grad"]
    fan_in, into_grad = points
    assert len(fan_in.parts) == 2  # 2*x and 3*x[0,3] both reach x
    assert torch.equal(fan_in.total.as_tensor(), torch.tensor([[0.0, 2, 0, 3]]))  # type: ignore[union-attr]
    assert [p.label for p in into_grad.parts] == [".grad before the pass", "this pass"]
    assert torch.equal(into_grad.parts[0].grad.as_tensor(), before)  # type: ignore[union-attr]
    assert torch.equal(into_grad.total.as_tensor(), x.grad)  # type: ignore[union-attr]
    assert torch.equal(x.grad, torch.tensor([[2.0, 2, 0, 6]]))
    assert into_grad.ok is True


def test_two_seeds_into_one_output_are_parts() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    trace = tracer.trace([y, y], [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 10.0])])
    (point,) = tracer.accumulation_points(trace)
    assert [p.label for p in point.parts] == ["seed y", "seed y"]
    assert [p.seed for p in point.parts] == [0, 1]
    assert torch.equal(point.total.as_tensor(), torch.tensor([1.0, 10.0]))  # type: ignore[union-attr]
    assert torch.equal(x.grad, torch.tensor([3.0, 30.0]))


def test_grad_pass_sums_into_the_returned_gradient() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as rec:
        (g,) = torch.autograd.grad((x * x).sum(), [x])
    (point,) = tracer.accumulation_points(rec.traces[0])
    assert point.leaf == "x" and point.ok is True
    assert torch.equal(point.total.as_tensor(), g)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("capture", "checked_by", "ok"), [("auto", None, None), ("stats", "means", True), ("full", "values", True)]
)
def test_large_tensors_check_what_was_kept(capture: str, checked_by: str | None, ok: bool | None) -> None:
    x = torch.randn(40, 50, requires_grad=True)  # 2,000 elements: sampled in the default capture
    a = x * 1.5
    trace = tracer.trace((a.sin() + a.cos()).sum(), capture=capture)  # type: ignore[arg-type]
    point = next(p for p in tracer.accumulation_points(trace) if p.name == "MulBackward0")
    assert point.checked_by == checked_by and point.ok is ok
    if ok is None:
        assert "capture='stats'" in (point.note or "")
    expected = (a.detach().cos() - a.detach().sin()).double()
    total = point.total
    assert total is not None and total.stats is not None
    # capture="full" keeps every value but summarises like the default capture (sampled norms)
    assert total.stats.norm == pytest.approx(float(expected.norm()), rel=1e-5 if capture == "stats" else 0.1)
    if capture == "full":
        assert np.allclose(total.flat(), expected.reshape(-1).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("capture", ["stats", "full"])
def test_transformer_residuals_add_up(capture: str) -> None:
    r = record_transformer(capture=capture)
    points = tracer.accumulation_points(r.trace)
    names = [p.name for p in points]
    # norm1's output feeds the feed-forward block and the residual; q, k, v come from one projection
    assert "NativeLayerNormBackward0" in names and "CloneBackward0" in names
    assert all(p.ok is True for p in points), [str(p) for p in points]
    qkv = next(p for p in points if p.name == "CloneBackward0")
    assert len(qkv.parts) == 3


def test_mlp_has_no_fan_in_and_a_second_pass_accumulates() -> None:
    r = record_mlp()
    assert tracer.accumulation_points(r.trace) == []
    from tests.models import mlp

    model, x, target = mlp()
    torch.nn.functional.mse_loss(model(x), target).backward()
    trace = tracer.trace(torch.nn.functional.mse_loss(model(x), target), names={"mlp": model})
    points = tracer.accumulation_points(trace)
    assert {p.leaf for p in points} == {f"mlp.{n}" for n, _ in model.named_parameters()}
    assert all(p.kind == ".grad" and p.ok is not False for p in points)
    for p in points:
        assert p.total is not None and p.total.norm == pytest.approx(float(r.grads[p.leaf].norm() * 2), rel=1e-6)  # type: ignore[index]


def test_str_shows_parts_and_verdict() -> None:
    x = torch.arange(4.0, requires_grad=True)
    (point,) = tracer.accumulation_points(tracer.trace(x * x, torch.ones(4)))
    text = str(point)
    assert text.startswith("fan-in at node 2 AccumulateGrad (x): 2 parts, sum [0, 2, 4, 6] — parts add up")
    assert "step 1 MulBackward0, edge 1  [0, 1, 2, 3]" in text
