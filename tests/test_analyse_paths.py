"""Paths from the seeds to a leaf, and the chain-rule decomposition: Σ over paths of v·J₁·J₂·… = the gradient."""

from __future__ import annotations

import pytest
import torch

import tracer
from tests.cases import CASES, Case
from tests.models import mlp, record_transformer
from tracer.analyse.paths import UnknownLeaf


def _trace(case: Case) -> tuple[tracer.Trace, dict[str, torch.Tensor]]:
    leaves = case.leaves()
    y = case.forward(leaves)
    return tracer.trace(y, case.seed(y), names=leaves), leaves


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decomposition_sums_to_the_gradient(case: Case) -> None:
    trace, leaves = _trace(case)
    for name, x in leaves.items():
        d = tracer.decompose(trace, name)
        assert d.ok, str(d)
        assert d.checked_by == "values"
        assert d.max_error <= 1e-6 * max(1.0, float(x.grad.abs().max()))
        # independent: torch's own gradient
        total = torch.tensor(d.total, dtype=torch.float64).reshape(x.shape)
        assert torch.allclose(total, x.grad.double(), rtol=1e-6, atol=1e-6)
        assert len(d.terms) == tracer.count_paths(trace, name) == len(tracer.paths(trace, name))


@pytest.mark.parametrize(
    ("case_id", "count"),
    [
        ("x_times_x_ones", 2),  # x * x: each factor is a path
        ("item_assign_vector_to_vector", 3),  # three writes
        ("z_ones", 2),  # 2*x and 3*x[0,3]
        ("x2_plus_x4", 2),
        ("weighted_squares", 2),  # x * x * w
        ("scalar_default", 1),
        ("detach", 1),  # u = (x*x).detach() contributes no path
    ],
)
def test_path_counts_by_hand(case_id: str, count: int) -> None:
    trace, _ = _trace(next(c for c in CASES if c.id == case_id))
    leaf = next(iter(trace.leaves))
    assert tracer.count_paths(trace, leaf) == count
    assert len(tracer.paths(trace, leaf)) == count


def test_terms_of_z_by_hand() -> None:
    """z = 2x + 3·x[0,3] with seed ones: the direct path gives 2 everywhere, the indexed one 3·4 = 12 at [0,3]."""
    trace, _ = _trace(next(c for c in CASES if c.id == "z_ones"))
    d = tracer.decompose(trace, "x")
    contributions = sorted(d.terms, key=lambda t: len(t.path.hops))
    assert contributions[0].contribution == (2.0, 2.0, 2.0, 2.0)
    assert contributions[1].contribution == (0.0, 0.0, 0.0, 12.0)
    assert d.total == (2.0, 2.0, 2.0, 14.0)
    assert "seed y → 1 AddBackward0 (edge 0) → 5 MulBackward0 (edge 0) → 6 AccumulateGrad" in d.descriptions


def test_path_hops_follow_slots_and_edges() -> None:
    x = torch.arange(4.0, requires_grad=True)
    trace = tracer.trace(x * x, torch.ones(4))
    first, second = tracer.paths(trace, "x")
    assert [(h.node, h.slot, h.edge) for h in first.hops] == [(1, 0, 0), (2, 0, None)]
    assert [(h.node, h.slot, h.edge) for h in second.hops] == [(1, 0, 1), (2, 0, None)]
    assert first.describe(trace) == "seed output0 → 1 MulBackward0 (edge 0) → 2 AccumulateGrad"


def test_a_retained_second_output_is_reached_through_its_slot() -> None:
    """unbind has two forward outputs; b is output 1: paths end at slot 1 of UnbindBackward0."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a, b = x.unbind()
    b.retain_grad()
    y = (a * 2).sum() + (b * b * 3).sum()
    trace = tracer.trace(y)
    leaf = trace.leaves["b"]
    assert leaf.kind == "retained" and leaf.input_nr == 1
    assert tracer.count_paths(trace, "b") == 2
    for path in tracer.paths(trace, "b"):
        assert (path.hops[-1].node, path.hops[-1].slot) == (leaf.node, 1)
    d = tracer.decompose(trace, "b")
    assert d.ok and torch.allclose(torch.tensor(d.total), b.grad)
    dx = tracer.decompose(trace, "x")
    assert dx.ok and torch.allclose(torch.tensor(dx.total).reshape(2, 2), x.grad)


def test_several_seeds() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y1, y2 = x**2, x * 5
    trace = tracer.trace([y1, y2], [torch.tensor([1.0, 1.0]), torch.tensor([0.0, 2.0])])
    d = tracer.decompose(trace, "x")
    assert sorted(t.path.seed for t in d.terms) == [0, 1]
    assert d.ok and torch.allclose(torch.tensor(d.total), x.grad)
    assert torch.equal(x.grad, torch.tensor([2.0, 14.0]))


def test_too_many_paths_says_how_many() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(12):
        y = y + y  # two edges to the same node: the number of paths doubles each time
    trace = tracer.trace(y)
    assert tracer.count_paths(trace, "x") == 4096
    with pytest.raises(tracer.TooManyPaths, match=r"4096 paths lead from the seed to 'x', more than max_paths=1000"):
        tracer.paths(trace, "x")
    assert len(tracer.paths(trace, "x", max_paths=4096)) == 4096
    d = tracer.decompose(trace, "x", max_paths=5000)
    assert d.ok and d.total == (4096.0,)


def test_deep_chain_does_not_recurse() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    trace = tracer.trace(y, jacobian_limit=0)
    assert tracer.count_paths(trace, "x") == 1
    assert len(tracer.paths(trace, "x")[0].hops) == 3001


def test_mlp_decomposes_exactly() -> None:
    model, inputs, target = mlp()
    loss = torch.nn.functional.mse_loss(model(inputs), target)
    trace = tracer.trace(loss, names={"mlp": model})
    for name, p in model.named_parameters():
        d = tracer.decompose(trace, f"mlp.{name}")
        assert d.ok, str(d)
        assert torch.allclose(torch.tensor(d.total, dtype=torch.float64), p.grad.double().reshape(-1), atol=1e-6)
    assert tracer.count_paths(trace, "mlp.0.weight") == 1


def test_transformer_counts_paths_and_explains_missing_jacobians() -> None:
    r = record_transformer()
    counts = {name: tracer.count_paths(r.trace, name) for name in r.trace.leaves}
    assert counts["layer.norm2.bias"] == 1
    # in_proj feeds q, k and v, each reaching the attention through two routes of the residual stream
    assert counts["layer.self_attn.in_proj_weight"] > counts["layer.self_attn.out_proj.weight"] >= 2
    with pytest.raises(tracer.DecompositionUnavailable, match=r"has no recorded Jacobian: .*jacobian_limit=64"):
        tracer.decompose(r.trace, "layer.self_attn.in_proj_bias")


def test_transformer_layer_decomposes_exactly_with_a_larger_jacobian_limit() -> None:
    """Every parameter of a transformer encoder layer: the sum over all its paths of v times the local Jacobians
    equals torch's gradient to 1e-6 (two tokens, so every node's J fits in jacobian_limit=4096)."""
    r = record_transformer(sequence=2, jacobian_limit=4096)
    assert len(r.trace.leaves) == 12
    for name, grad in r.grads.items():
        d = tracer.decompose(r.trace, name)
        assert d.ok, str(d)
        total = torch.tensor(d.total, dtype=torch.float64)
        assert torch.allclose(total, grad.double().reshape(-1), rtol=0, atol=1e-6), name
    assert tracer.count_paths(r.trace, "layer.self_attn.in_proj_weight") > 2


def test_errors_name_the_fix() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace((x * 2).sum())
    with pytest.raises(UnknownLeaf, match=r"no leaf 'nope' in this trace \(its leaves are \['x'\]\)"):
        tracer.paths(trace, "nope")
    big = torch.randn(100, requires_grad=True)
    trace = tracer.trace((big * 2).sum(), max_values=8)
    with pytest.raises(tracer.DecompositionUnavailable, match="jacobian_limit"):
        tracer.decompose(trace, "big")


def test_str_lists_each_path() -> None:
    x = torch.arange(4.0, requires_grad=True)
    text = str(tracer.decompose(tracer.trace(x * x, torch.ones(4)), "x"))
    assert text.startswith("gradient of x as a sum over 2 path(s):")
    assert "sum [0, 2, 4, 6] equals the recorded [0, 2, 4, 6]" in text
