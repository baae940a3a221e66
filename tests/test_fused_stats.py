"""Exact statistics in one pass over memory (native_hooks.cpp's fused_stats, tracer/record/fused_stats.py) equal
torch's own reductions: norm, min, max, mean, zeros, NaN and Inf, on every dtype capture="stats" meets."""

from __future__ import annotations

import math

import pytest
import torch

import tracer
from tracer.record.fused_stats import fused_stats
from tracer.record.native import loader
from tracer.record.tensors import exact_stats, reduced_stats

needs_kernel = pytest.mark.skipif(loader.load() is None, reason="the native recorder is not built")

NAN, INF = float("nan"), float("inf")


def _reference(t: torch.Tensor) -> list[float]:
    """What torch's reductions say, on the values in float64 (so the reference's own rounding is negligible)."""
    x = t.double()
    peak = float(x.abs().max())
    # scaled by the largest magnitude when that is finite, so squares beyond float64 do not make the norm inf
    scaled = peak * float(torch.linalg.vector_norm(x / peak)) if 0 < peak < INF else float(torch.linalg.vector_norm(x))
    return [
        scaled,
        float(x.min()),
        float(x.max()),
        float(x.sum()),
        float(torch.count_nonzero(x)),
        float(torch.isnan(x).sum()),
        float(torch.isinf(x).sum()),
    ]


def _assert_matches(row: torch.Tensor, t: torch.Tensor) -> None:
    got, want = row.tolist(), _reference(t)
    finite = t.double().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    # The documented bound (fused_stats.py): 16-term sums in the tensor's float type (float64's own for float64,
    # else float32), added in float64. So the sum is within 32 float ulps of the magnitudes' sum, the norm within
    # 32 ulps of itself; plus float64's own rounding of n additions.
    eps = 2.0**-52 if t.dtype == torch.float64 else 2.0**-23
    bounds = {
        "sum": 32 * eps * float(finite.abs().sum()) + t.numel() * 2.0**-52 * float(finite.abs().sum()),
        "norm": 32 * eps * float(torch.linalg.vector_norm(finite)) + 1e-300,
    }
    for k, name in enumerate(("norm", "min", "max", "sum", "nonzero", "nan", "inf")):
        a, b = got[k], want[k]
        if math.isnan(b) or math.isinf(b):
            assert (math.isnan(a) and math.isnan(b)) or a == b, (name, a, b)
        elif name in bounds:
            assert abs(a - b) <= bounds[name], (name, a, b, bounds[name])
        else:
            assert a == b, (name, a, b)


def _cases() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    big = torch.randn(200_003, generator=g)  # several chunks of the kernel and a ragged tail
    with_odd = torch.randn(1000, generator=g)
    with_odd[[3, 500]] = NAN
    with_odd[[7, 999]] = INF
    with_odd[11] = -INF
    only_inf = torch.randn(4097, generator=g)
    only_inf[4096] = -INF
    ints = torch.randint(-3, 4, (3001,), generator=g).float()  # integer-valued floats, many exact zeros
    return {
        "float32": big,
        "float32 with NaN and Inf": with_odd,
        "float32 with -Inf only": only_inf,
        "integer-valued": ints,
        "float64": big.double() * 1e-3,
        "float16": (torch.randn(5003, generator=g) * 100).half(),
        "bfloat16": (torch.randn(5003, generator=g) * 1e4).bfloat16(),
        "float16 with NaN": torch.tensor([1.0, NAN, -2.0, 0.0] * 300).half(),
        "transposed": torch.randn(257, 129, generator=g).t(),
        "expanded": torch.randn(1, 300, generator=g).expand(50, 300),
        "zeros": torch.zeros(10_000),
        "negative zeros": -torch.zeros(100),
        "float64 whose squares overflow": torch.tensor([1e200, -3e200, 2e199] * 10, dtype=torch.float64),
    }


@needs_kernel
@pytest.mark.parametrize("case", list(_cases()))
def test_kernel_equals_torch_reductions(case: str) -> None:
    t = _cases()[case]
    row = fused_stats(t)
    if not t.is_contiguous():
        # a transposed or expanded gradient is left to torch's reductions (no contiguous copy: peak memory)
        assert row is None
        row = exact_stats(t if t.dtype == torch.float64 else t.double())
    assert row is not None
    _assert_matches(row, t)


@pytest.mark.parametrize("case", list(_cases()))
def test_torch_fallback_equals_the_reference(case: str) -> None:
    """The path without the native kernel (GRADTRACE_NATIVE=0, no compiler) is held to the same numbers; in the
    tensor's own dtype for float32 and below, so to that dtype's rounding."""
    t = _cases()[case]
    x = t if t.dtype == torch.float64 else t.double()
    _assert_matches(reduced_stats(x), t)


@needs_kernel
def test_kernel_agrees_with_torch_in_the_tensors_own_dtype() -> None:
    """Against torch's float32 reductions (which accumulate in float32): within float32 rounding of n additions."""
    t = torch.randn(300_000, generator=torch.Generator().manual_seed(3))
    row = fused_stats(t)
    assert row is not None
    norm, low, high, total = row.tolist()[:4]
    eps = torch.finfo(torch.float32).eps
    assert abs(norm - float(torch.linalg.vector_norm(t))) <= 300_000 * eps * norm
    assert abs(total - float(t.sum())) <= 300_000 * eps * float(t.abs().sum())
    assert (low, high) == (float(t.min()), float(t.max()))


def test_integer_tensors_go_through_float64() -> None:
    t = torch.arange(-500, 501, dtype=torch.int64)
    _assert_matches(exact_stats(t), t)


def test_what_the_kernel_does_not_read_falls_back() -> None:
    assert fused_stats(torch.empty(0)) is None
    assert fused_stats(torch.arange(10)) is None  # integers: exact_stats widens them first
    assert fused_stats(torch.randn(4, dtype=torch.complex64)) is None


def test_stats_capture_records_torchs_numbers(hooks: str) -> None:
    """capture='stats' with either recorder: every large gradient's Stats equal torch's reductions of it."""
    torch.manual_seed(0)
    w = torch.randn(300, 200, requires_grad=True)
    x = torch.randn(200, 40)
    h = (w @ x).relu()
    h.retain_grad()
    loss = (h * torch.randn(300, 40)).sum()
    trace = tracer.trace(loss, capture="stats")
    for name, grad in (("w", w.grad), ("h", h.grad)):
        assert grad is not None
        info = trace.leaves[name].grad
        assert info is not None and info.stats is not None and info.stats.exact
        s, n = info.stats, grad.numel()
        want = _reference(grad)
        assert math.isclose(s.norm, want[0], rel_tol=1e-6)
        assert (s.min, s.max) == (want[1], want[2])
        assert math.isclose(s.mean, want[3] / n, rel_tol=1e-6, abs_tol=1e-9)
        assert s.zeros == 1 - want[4] / n and (s.nan, s.inf) == (0, 0)
