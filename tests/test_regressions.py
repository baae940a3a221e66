"""Recorder and loader bugs the robustness tests found, each pinned by its smallest example."""

from __future__ import annotations

import pytest
import torch

import tracer
from tests.checks import assert_steps_consistent


def test_a_gradient_changed_in_place_after_it_was_recorded_is_recorded_again() -> None:
    """Found by test_property_graphs: the engine adds the parts of a fan-in in place into the first part, and
    a 0-d prod's backward passes that very tensor object on, so reusing the first record by object identity
    recorded the part (0.5) instead of the sum (1.0) as the prod's vᵀJ and as x's gradient."""
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    p = x.prod()
    t = tracer.trace(p * p)
    assert x.grad is not None and x.grad.item() == 1.0
    leaf = t.leaves["x"].grad
    assert leaf is not None and leaf.values == (1.0,)
    prod = next(s for s in t.steps if s.name == "ProdBackward0")
    assert prod.vjp[0] is not None and prod.vjp[0].values == (1.0,)
    assert assert_steps_consistent(t) == 2


def test_full_capture_keeps_the_value_a_tensor_had_when_recorded() -> None:
    """The same fan-in with capture='full' and max_values=0, where the record holds the tensor itself: the
    engine then sums out of place, and the parts keep the values they had (a guard, passes before the fix)."""
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    q = x * 3
    p = q.prod()
    t = tracer.trace(p * p, capture="full", max_values=0)
    mul_parts = next(s for s in t.steps if s.name == "MulBackward0").vjp
    assert [i.tolist() for i in mul_parts if i is not None] == [1.5, 1.5]  # v=1 times the other factor 1.5
    prod = next(s for s in t.steps if s.name == "ProdBackward0")
    assert prod.vjp[0] is not None and prod.vjp[0].tolist() == 3.0
    assert x.grad is not None and x.grad.item() == 9.0


def test_a_node_whose_incoming_gradient_is_not_contiguous_gets_its_jacobian() -> None:
    """Found by test_property_graphs (GRADTRACE_FUZZ=long) and in every nn.Linear: the one-hot vectors were
    made with zeros_like(v), which copies a transposed v's strides, and writing through .view(-1) failed, so
    TBackward0 / TransposeBackward0 had no Jacobian ('view size is not compatible ...')."""
    lin = torch.nn.Linear(3, 2)
    x = torch.ones(4, 3)
    t = tracer.trace(lin(x).pow(2).sum(), names=lin)
    transpose = next(s for s in t.steps if s.name == "TBackward0")
    assert transpose.note is None and transpose.jacobian is not None
    assert transpose.jacobian.size == (6, 6)
    assert assert_steps_consistent(t) == 4  # sum, pow, addmm, t

    m = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    t = tracer.trace(m.transpose(0, 1).abs().sum())
    assert assert_steps_consistent(t) == 3


def test_integer_values_load_back_as_integers() -> None:
    """Found by test_coexist: an integer seed's values (1, 1) loaded back as floats (1.0, 1.0), because the
    loader tried `float` first for a value that may be float, int or bool: the JSON changed on a round trip."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    t = tracer.trace(x * 2, torch.tensor([1, 3]))
    text = t.to_json()
    back = tracer.load(text)
    assert back.to_json() == text
    assert back.seeds[0].v is not None and back.seeds[0].v.values == (1, 3)
    assert [type(v) for v in back.seeds[0].v.values] == [int, int]


def test_the_norm_of_large_finite_gradients_does_not_overflow() -> None:
    """Found while fuzzing the renderer with large norms: squares overflow a float32 long before its elements
    do (|x| > 1.8e19), so a gradient of finite 1e20s was recorded with norm inf (and drawn as non-finite)."""
    x = torch.full((100,), 1e20, requires_grad=True)
    for capture in ("auto", "stats", "full"):
        x.grad = None
        t = tracer.trace((x * x.detach()).sum(), capture=capture)  # type: ignore[arg-type]
        for info in (t.leaves["x"].grad, t.steps[1].vjp[0]):
            assert info is not None and info.stats is not None
            assert info.stats.inf == 0 and info.stats.nan == 0
            assert info.stats.norm == pytest.approx(1e21, rel=1e-6), (capture, info.stats)
    big = torch.full((100,), 1e200, dtype=torch.float64, requires_grad=True)  # float64 squares overflow too
    t = tracer.trace((big * big.detach()).sum(), capture="stats")
    grad = t.leaves["big"].grad
    assert grad is not None and grad.stats is not None and grad.stats.norm == pytest.approx(1e201, rel=1e-9)


def test_a_fan_in_of_plus_and_minus_infinity_is_summarised() -> None:
    """Found by test_hostile (odd traces must summarise), then with a real pass: sqrt'(0) is +inf in one branch
    and -inf in the other, the engine's sum is NaN, and the accumulation check's math.fsum raised ValueError
    ('-inf + inf in fsum'), so trace.summary() failed."""
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    t = tracer.trace((x.sqrt() - x.sqrt()).sum())
    assert x.grad is not None and x.grad.isnan()[0]
    assert "accumulation" in t.summary()
