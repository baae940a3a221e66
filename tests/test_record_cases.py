"""Every tutorial case: traced gradients equal torch's own bit for bit, the full Jacobian's vᵀJ, and the
tutorial's closed form; every step's vᵀJ equals v times its recorded local Jacobian."""

from __future__ import annotations

import pytest
import torch

import tracer
from tests.cases import CASES, Case
from tests.checks import assert_steps_consistent, vjp_by_full_jacobian


def _plain(case: Case) -> dict[str, torch.Tensor]:
    leaves = case.leaves()
    y = case.forward(leaves)
    y.backward(case.seed(y))
    return {n: x.grad for n, x in leaves.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    expected_bits = _plain(case)

    leaves = case.leaves()
    y = case.forward(leaves)
    seed = case.seed(y)
    trace = tracer.trace(y, seed, names=leaves)

    for name, x in leaves.items():
        assert x.grad is not None
        assert torch.equal(x.grad, expected_bits[name]), f"{name}: tracing changed the gradient"
        recorded = trace.leaves[name].grad
        assert recorded is not None and recorded.shape == tuple(x.shape)
        assert torch.equal(recorded.as_tensor(), x.grad), f"{name}: recorded gradient differs from .grad"
        assert trace.leaves[name].grad_total is not None
        assert torch.equal(trace.leaves[name].grad_total.as_tensor(), x.grad)

    by_jacobian = vjp_by_full_jacobian(case.forward, case.leaves(), seed)
    for name, x in leaves.items():
        assert torch.allclose(x.grad.double(), by_jacobian[name], rtol=1e-5, atol=1e-5), name

    for name, value in case.expected(leaves).items():
        assert torch.allclose(leaves[name].grad, value.to(leaves[name].grad.dtype), rtol=1e-4, atol=1e-4), name

    assert assert_steps_consistent(trace) >= 1
    assert trace.complete and trace.error is None
    assert [s.step for s in trace.steps] == list(range(1, len(trace.steps) + 1))
    (seed_record,) = trace.seeds
    assert seed_record.shape == tuple(y.shape)
    assert seed_record.v is not None
    used = torch.ones_like(y) if seed is None else seed
    assert torch.equal(seed_record.v.as_tensor(), used.to(seed_record.v.as_tensor().dtype))
    assert seed_record.implicit is (seed is None)
    assert seed_record.target == 1  # the output's grad_fn runs first


def test_fan_in_parts_and_sum() -> None:
    """One tensor used by several outputs: the leaf's AccumulateGrad receives the parts and their sum."""
    x = torch.tensor([[0.3432], [0.5206]], requires_grad=True)
    y = torch.zeros(3, 1)
    y[0] = x[0] ** 2
    y[1] = x[1] ** 3
    y[2] = x[1] ** 4
    trace = tracer.trace(y, torch.ones(3, 1))
    leaf = trace.leaves["x"]
    assert leaf.node is not None
    incoming = [grad for node, _, edge, grad in trace.edges() if edge.target == leaf.node]
    assert len(incoming) == 3  # x[0]**2, x[1]**3, x[1]**4 each send a part
    parts = torch.stack([g.as_tensor() for g in incoming])
    total = trace.node(leaf.node).v[0]
    assert total is not None
    assert torch.allclose(parts.sum(0), total.as_tensor())
    assert torch.equal(total.as_tensor(), x.grad)
    assert torch.allclose(x.grad[1], 3 * x[1].detach() ** 2 + 4 * x[1].detach() ** 3)


def test_copy_slices_is_recorded_by_name() -> None:
    x = torch.tensor([0.9004], requires_grad=True)
    y = torch.zeros(2, 1)
    y[0] = x**3
    y[1] = 2 * x**2
    trace = tracer.trace(y, torch.ones(2, 1))
    names = [s.name for s in trace.steps]
    assert names.count("CopySlices") == 2
    assert "AccumulateGrad" in names
    assert trace.steps[0].op.startswith("in-place write into a slice")


def test_jacobian_rows_with_one_hot_seeds_and_retain_graph() -> None:
    """002: the Jacobian of y = x @ M assembled row by row; the second pass accumulates without zero_()."""
    x = torch.tensor([[10.0, 5.0]], requires_grad=True)
    y = torch.mm(x, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    first = tracer.trace(y, torch.tensor([[1.0, 0.0]]), retain_graph=True)
    second = tracer.trace(y, torch.tensor([[0.0, 1.0]]), retain_graph=True)
    assert first.options.retain_graph and second.options.retain_graph
    assert first.leaves["x"].grad.values == (1.0, 3.0)
    assert second.leaves["x"].grad.values == (2.0, 4.0)
    assert second.leaves["x"].grad_before.values == (1.0, 3.0)  # not zeroed: accumulation shows
    assert second.leaves["x"].grad_total.values == (3.0, 7.0)
    assert x.grad.tolist() == [[3.0, 7.0]]
    mm = first.steps[0]
    assert mm.name == "MmBackward0"
    assert mm.jacobian is not None
    # the local Jacobian of x @ M with respect to x (rows: y's elements, columns: x's) is M transposed
    assert torch.equal(torch.tensor(mm.jacobian.matrix), torch.tensor([[1.0, 3.0], [2.0, 4.0]], dtype=torch.float64))


def test_autograd_backward_with_lists() -> None:
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x**2
    g = torch.tensor([-0.1348, -1.0923, -0.4743])
    trace = tracer.trace([y], [g])
    assert torch.allclose(x.grad, 2 * x.detach() * g)
    assert trace.seeds[0].v.values == tuple(g.tolist())


def test_several_outputs_get_a_seed_each() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    a, b = x * 3, x.sum()
    trace = tracer.trace([a, b], [torch.tensor([1.0, 10.0]), None])
    assert [s.name for s in trace.seeds] == ["a", "b"]
    assert trace.seeds[1].implicit is True and trace.seeds[0].implicit is False
    assert trace.seeds[1].v.values == (1.0,)
    assert x.grad.tolist() == [4.0, 31.0]


def test_float64_values_are_exact() -> None:
    x = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
    trace = tracer.trace((x**3).sum())
    assert trace.leaves["x"].grad.dtype == "float64"
    assert trace.leaves["x"].grad.values == tuple(x.grad.tolist())


def test_output_that_is_a_leaf() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace(x, torch.tensor([5.0, 6.0]))
    assert [s.name for s in trace.steps] == ["AccumulateGrad"]
    assert trace.seeds[0].target == 1
    assert trace.leaves["x"].grad.values == (5.0, 6.0)


def test_infinite_local_derivative_is_not_a_wrong_backward() -> None:
    """sqrt at 0: J holds inf (and 0/0 from a one-hot row), so that element cannot be checked; the rest is."""
    x = torch.tensor([0.0, 4.0], requires_grad=True)
    trace = tracer.trace(x.sqrt().sum())
    sqrt = next(s for s in trace.steps if s.name == "SqrtBackward0")
    assert sqrt.check is not None and sqrt.check.ok, sqrt.check
    assert sqrt.note is not None and "without 1 element(s) where J holds Inf or NaN" in sqrt.note
    assert trace.leaves["x"].grad.values == (float("inf"), 0.25)


def test_a_node_whose_whole_jacobian_is_infinite_is_not_checked() -> None:
    # J = [[inf, nan], [nan, inf]] (one-hot rows divide 0 by 0): v·J is NaN everywhere, torch sent [inf, inf]
    x = torch.tensor([0.0, 0.0], requires_grad=True)
    trace = tracer.trace(x.sqrt().sum())
    sqrt = next(s for s in trace.steps if s.name == "SqrtBackward0")
    assert sqrt.check is None and sqrt.note == "vᵀJ not checked: every column of J holds Inf or NaN"
