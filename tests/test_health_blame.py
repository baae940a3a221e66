"""Health blames the node where a problem starts, and says so only as far as the recorded numbers prove it.

Issue 16, item 4: in the default capture a large intermediate gradient is known from a 1,024-element sample, so
a NaN/Inf the sample missed first shows where an exact reading (a leaf's .grad) sees it, later than where it
started; and a vᵀJ = v·J check whose v holds Inf says nothing about the node (Inf·0 in v·J is NaN).
"""

from __future__ import annotations

import pytest
import torch

import tracer
from tests.fuzzing import TALLY
from tracer.analyse.health import check_cannot_judge

N = 100_000
BAD = 12_345  # a position the default sample does not read


def _one_inf_twice_used(capture: str | None) -> tuple[tracer.Trace, torch.Tensor]:
    """y = sum(x·w) + sum(2x), w holding one Inf: step 5 (x·w) starts it; both products reach x's
    AccumulateGrad, whose v is the sum of two 100,000-element gradients."""
    x = torch.zeros(N, requires_grad=True)
    w = torch.ones(N)
    w[BAD] = float("inf")
    kw = {} if capture is None else {"capture": capture}
    return tracer.trace((x * w).sum() + (x * 2).sum(), **kw), x


def _nonfinite_node_flags(trace: tracer.Trace) -> list[tracer.analyse.health.Flag]:
    return [f for f in tracer.health(trace).flags if f.kind == "nonfinite" and f.leaf is None]


def test_an_inf_the_sample_missed_is_not_called_an_overflow_of_finite_parts() -> None:
    trace, _ = _one_inf_twice_used(None)
    parts = [s.vjp[0] for s in trace.steps if s.name == "MulBackward0"]
    assert all(p is not None and p.stats is not None and not p.stats.exact and p.stats.inf == 0 for p in parts), (
        "this test needs the samples to miss the Inf"
    )
    (flag,) = _nonfinite_node_flags(trace)
    assert trace.node(flag.node).name == "AccumulateGrad"  # type: ignore[arg-type]
    assert "overflowed" not in flag.message  # no confident claim the numbers do not prove
    assert flag.estimated and "≈" in flag.message
    assert "first step that shows NaN/Inf" in flag.message and "capture='stats'" in flag.message
    # where it may start: both senders are named
    assert "step 3 MulBackward0" in flag.message and "step 5 MulBackward0" in flag.message
    TALLY["health flags checked against the exact reading (capture='stats')"] += 1


def test_the_exact_reading_names_the_step_that_starts_it() -> None:
    exact, x = _one_inf_twice_used("stats")
    (flag,) = _nonfinite_node_flags(exact)
    assert exact.node(flag.node).name == "MulBackward0" and not flag.estimated  # type: ignore[arg-type]
    assert "the problem starts here" in flag.message
    assert torch.isinf(x.grad[BAD])  # type: ignore[index]


def test_an_overflow_of_parts_known_finite_is_still_called_one() -> None:
    """The parts were exact (small tensors): their sum overflowing is a fact, said plainly, without ≈."""
    x = torch.tensor([1.0], requires_grad=True)
    a = x * 1
    trace = tracer.trace((a * 3e38).sum() + (a * 3e38).sum())
    (flag,) = _nonfinite_node_flags(trace)
    assert "overflowed" in flag.message and not flag.estimated and "≈" not in flag.message


def _log_of_zero() -> tracer.Trace:
    x = torch.tensor([1.0, 0.0, 2.0], requires_grad=True)
    return tracer.trace(((x * 3).log()).sum())


def test_a_check_whose_v_holds_inf_is_not_a_wrong_backward() -> None:
    """((x·3).log()).sum() at x = [1, 0, 2]: LogBackward0 turns a finite v into Inf (flagged); MulBackward0 then
    receives v = [1/3, Inf, 1/6], and v·J = Inf·0 = NaN off the diagonal: its check cannot judge it."""
    trace = _log_of_zero()
    h = tracer.health(trace)
    mul = next(s for s in trace.steps if s.name == "MulBackward0")
    assert mul.check is not None and not mul.check.ok  # what the recorder says (NaN error)
    assert check_cannot_judge(mul)
    assert not any(f.kind == "wrong-backward" for f in h.flags), str(h)
    (info,) = [f for f in h.flags if f.node == mul.id]
    assert info.severity == "info" and "not checked: v holds Inf/NaN" in info.message
    nonfinite = [f for f in h.flags if f.kind == "nonfinite" and f.leaf is None]
    assert [trace.node(f.node).name for f in nonfinite] == ["LogBackward0"]  # type: ignore[arg-type]


@pytest.mark.graphviz
def test_the_picture_does_not_accuse_the_node_either() -> None:
    trace = _log_of_zero()
    dot = trace.to_dot()
    assert "⚠ vᵀJ ≠ v·J" not in dot and "FAILED" not in dot
    assert "not checked: v holds Inf/NaN" in dot  # the tooltip says why


def test_a_wrong_backward_is_still_caught_when_v_is_finite() -> None:
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            (x,) = ctx.saved_tensors
            return torch.where(x > 1.5, torch.nan, 2 * g * x)  # NaN where 2·g·x is finite

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace(Wrong.apply(x).sum())
    step = next(s for s in trace.steps if s.check is not None and not s.check.ok)
    assert not check_cannot_judge(step)
    assert any(f.kind == "wrong-backward" and f.node == step.id for f in tracer.health(trace).flags)
