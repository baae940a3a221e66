"""What each capture keeps: samples (marked) by default, exact statistics on request, every value in full."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import tracer
from tracer.record.tensors import SAMPLE_SIZE, TensorTable


def _wide_pass(capture: str) -> tuple[tracer.Trace, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    w = torch.randn(256, 128, requires_grad=True)
    x = torch.randn(64, 256)
    h = x @ w  # 64 x 128: a large intermediate gradient flows into MmBackward0
    h.retain_grad()
    y = torch.tanh(h).sum()
    trace = tracer.trace(y, capture=capture)  # type: ignore[arg-type]
    assert h.grad is not None
    return trace, h.grad.reshape(-1), w


def _step(trace: tracer.Trace, name: str) -> tracer.Step:
    return next(s for s in trace.steps if s.name == name)


def test_default_capture_samples_large_intermediates_and_says_so() -> None:
    trace, grad_h, w = _wide_pass("auto")
    v = _step(trace, "MmBackward0").v[0]
    assert v is not None and v.values is None and v.array is None  # nothing large is kept
    assert v.stats is not None and not v.stats.exact and v.stats.sampled == SAMPLE_SIZE
    assert not v.stats.norm_exact
    exact_norm = float(torch.linalg.vector_norm(grad_h.double()))
    # an estimate: tensors.py documents the measured error (median 2%, worst 11% on transformer gradients)
    assert math.isclose(v.stats.norm, exact_norm, rel_tol=0.15)
    assert v.stats.min >= float(grad_h.min()) and v.stats.max <= float(grad_h.max())
    # the leaf's gradient carries an exact norm
    leaf = trace.leaves["w"]
    assert leaf.grad_total is not None and leaf.grad_total.stats is not None
    assert leaf.grad_total.stats.norm_exact
    assert math.isclose(leaf.grad_total.stats.norm, float(torch.linalg.vector_norm(w.grad.double())), rel_tol=1e-6)
    assert leaf.grad is not None and leaf.grad.stats is not None and leaf.grad.stats.norm_exact


def test_stats_capture_is_exact_everywhere() -> None:
    trace, grad_h, _ = _wide_pass("stats")
    v = _step(trace, "MmBackward0").v[0]
    assert v is not None and v.stats is not None and v.stats.exact and v.values is None
    assert math.isclose(v.stats.norm, float(torch.linalg.vector_norm(grad_h.double())), rel_tol=1e-5)
    assert math.isclose(v.stats.mean, float(grad_h.double().mean()), rel_tol=1e-4)
    assert v.stats.min == pytest.approx(float(grad_h.min()))
    assert v.stats.max == pytest.approx(float(grad_h.max()))


def test_full_capture_keeps_every_value_and_round_trips() -> None:
    trace, grad_h, w = _wide_pass("full")
    v = _step(trace, "MmBackward0").v[0]
    assert v is not None and v.array is not None
    assert np.array_equal(v.array.reshape(-1), grad_h.numpy())
    assert np.array_equal(trace.leaves["w"].grad_total.array, w.grad.numpy())
    back = tracer.load(trace.to_json())
    assert np.array_equal(_step(back, "MmBackward0").v[0].array, v.array)
    assert back.to_json() == trace.to_json()


def test_samples_cover_the_whole_tensor() -> None:
    """A gradient that is zero except at its very end is still seen (first and last runs are sampled)."""
    t = torch.zeros(100_000)
    t[-1] = 5.0
    table = TensorTable("auto", 64)
    handle = table.add(t)
    info = table.finish()[handle]
    assert info.stats is not None and info.stats.max == 5.0 and info.stats.sampled == SAMPLE_SIZE


def test_medium_tensors_are_read_whole() -> None:
    """Between max_values and the sample size a tensor is read entirely: exact statistics, no values."""
    t = torch.arange(500.0)
    table = TensorTable("auto", 64)
    handle = table.add(t)
    info = table.finish()[handle]
    assert info.values is None and info.stats is not None and info.stats.exact
    assert info.stats.mean == pytest.approx(249.5) and info.stats.zeros == pytest.approx(1 / 500)


def test_in_place_change_is_not_hidden_by_reuse() -> None:
    """A tensor recorded once and then changed in place is recorded again, not reused."""
    t = torch.ones(10)
    table = TensorTable("auto", 64)
    first = table.add(t)
    t.mul_(3)
    second = table.add(t)
    infos = table.finish()
    assert first != second
    assert infos[first].values == (1.0,) * 10 and infos[second].values == (3.0,) * 10


@pytest.mark.slow
def test_default_capture_stays_small_on_a_ten_million_element_gradient() -> None:
    x = torch.zeros(10_000_000, requires_grad=True)
    trace = tracer.trace((x * 2).sum())
    text = trace.to_json()
    assert len(text) < 20_000  # statistics only: no tensor of this size is kept anywhere
    mul = _step(trace, "MulBackward0")
    assert mul.vjp[0] is not None and mul.vjp[0].values is None and mul.vjp[0].array is None
    assert trace.leaves["x"].grad_total.stats.norm == pytest.approx(2 * math.sqrt(10_000_000))
    assert json.loads(text)["trace"]["leaves"]["x"]["grad_total"]["values"] is None


def test_a_sum_that_cancels_is_recorded_as_exactly_zero() -> None:
    """Rounding noise of a cancelling sum depends on the order of additions: it is recorded as 0, not 1e-17."""
    values = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    assert float(values.sum()) != 0.0  # float64 leaves noise here
    table = TensorTable("auto", 64)
    handle = table.add(values)
    info = table.finish()[handle]
    assert info.stats is not None and info.stats.mean == 0.0
    table = TensorTable("auto", 64)
    handle = table.add(torch.tensor([1.0, 2.0, -3.0, 1e-3], dtype=torch.float64))
    assert table.finish()[handle].stats.mean == pytest.approx(2.5e-4)  # a real mean is kept
