"""The per-pass budget of local Jacobians (tracer/record/jacobian_budget.py): which steps get J during the pass,
the note on the others, and J computed when first read while the graph is kept, equal to torch's own Jacobian."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian as torch_jacobian

import tracer
from tracer.model.records import NoteKind
from tracer.record import jacobian_budget

BUDGET = 5  # small, so that a chain of a few dozen ops runs past it


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(jacobian_budget, "JACOBIAN_BUDGET", BUDGET)
    return BUDGET


def _chain(x: torch.Tensor, ops: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """sin and *1.5 in turn: every node small; also the input of each op (for torch's own Jacobian)."""
    inputs, h = [], x
    for i in range(ops):
        inputs.append(h.detach().clone())
        h = h.sin() if i % 2 else h * 1.5
    return h.sum(), inputs


def _op(i: int) -> object:
    return torch.sin if i % 2 else (lambda t: t * 1.5)


def _expected(inputs: list[torch.Tensor], step_index: int) -> torch.Tensor:
    """torch.autograd.functional.jacobian of the op a chain step came from (steps run from the output back:
    step 1 is the sum, step 2 the last op)."""
    k = len(inputs) - (step_index - 1)
    return torch_jacobian(_op(k), inputs[k].double())  # type: ignore[no-untyped-call]


def _matrix(step: tracer.Step) -> torch.Tensor:
    assert step.jacobian is not None
    return torch.tensor(step.jacobian.matrix, dtype=torch.float64)


def test_first_steps_get_their_jacobian_and_the_rest_a_budget_note(hooks: str, small_budget: int) -> None:
    x = torch.randn(4, requires_grad=True)
    y, _ = _chain(x, 12)
    trace = tracer.trace(y)
    small = [s for s in trace.steps if s.name != "AccumulateGrad"]
    assert len(small) == 13  # the sum and 12 ops
    assert [s.jacobian is not None for s in small] == [True] * small_budget + [False] * (13 - small_budget)
    for s in small[small_budget:]:
        assert s.note_kind is NoteKind.BUDGET and s.check is None
        assert s.note is not None and f"budget of {small_budget} local Jacobians" in s.note
        assert "retain_graph=True" in s.note  # how to get the others
    for s in small[:small_budget]:
        assert s.note_kind is not NoteKind.BUDGET and s.check is not None and s.check.ok
    leaf = next(s for s in trace.steps if s.name == "AccumulateGrad")
    assert leaf.note_kind is None  # a leaf never has a local Jacobian: no budget note either


def test_budgeted_jacobians_equal_torch_and_the_same_steps_get_them_each_time(hooks: str, small_budget: int) -> None:
    x = torch.randn(3, requires_grad=True)
    y, inputs = _chain(x, 10)
    first = tracer.trace(y)
    for s in first.steps[1:small_budget]:  # step 1 is the sum
        assert torch.allclose(_matrix(s), _expected(inputs, s.id), atol=1e-6)
    y, _ = _chain(x, 10)
    second = tracer.trace(y)
    assert [s.jacobian is not None for s in first.nodes] == [s.jacobian is not None for s in second.nodes]


def test_jacobian_past_the_budget_is_computed_when_read_if_the_graph_was_kept(hooks: str, small_budget: int) -> None:
    x = torch.randn(3, requires_grad=True)
    y, inputs = _chain(x, 10)
    trace = tracer.trace(y, retain_graph=True)
    later = [s for s in trace.steps if s.note_kind is NoteKind.BUDGET]
    assert len(later) == 11 - small_budget
    step = later[-1]
    assert step.note is not None and "computed when step.jacobian is first read" in step.note
    assert torch.allclose(_matrix(step), _expected(inputs, step.id), atol=1e-6)  # computed now
    assert step.check is not None and step.check.ok  # v·J against the vᵀJ the pass recorded
    assert step.note is None and step.note_kind is None  # no longer "not computed"
    assert later[0].jacobian is not None  # each step computes its own


def test_budget_leaves_the_gradients_alone(hooks: str, small_budget: int) -> None:
    x = torch.randn(5, requires_grad=True)
    _chain(x, 20)[0].backward()
    plain, x.grad = x.grad, None
    tracer.trace(_chain(x, 20)[0])
    assert plain is not None and x.grad is not None and torch.equal(plain, x.grad)


def test_picture_says_the_jacobian_was_not_computed(small_budget: int) -> None:
    x = torch.randn(2, requires_grad=True)
    y, _ = _chain(x, 8)
    dot = tracer.trace(y).to_dot()
    assert "J not computed" in dot


def test_default_budget_covers_the_steps_a_stepper_page_draws() -> None:
    """The default: 200 nodes nearest the output, the most steps the step-by-step page draws."""
    x = torch.randn(2, requires_grad=True)
    y, _ = _chain(x, 240)
    trace = tracer.trace(y)
    computed = [s.id for s in trace.steps if s.jacobian is not None]
    assert computed == list(range(1, jacobian_budget.JACOBIAN_BUDGET + 1))
    assert sum(s.note_kind is NoteKind.BUDGET for s in trace.steps) == 241 - jacobian_budget.JACOBIAN_BUDGET
