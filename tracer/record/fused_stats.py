"""Exact statistics of a tensor in one pass over its memory (the native kernel), or None where it does not apply.

capture="stats" asks for the norm, min, max, mean, share of zeros and NaN/Inf counts of every gradient. Five
torch reductions read each gradient five times; the native recorder's `fused_stats` (native_hooks.cpp) reads it
once (vectorised, on torch's intra-op threads). Where the kernel is not built (or turned off with
GRADTRACE_NATIVE=0), or the tensor is not a dense CPU float16/bfloat16/float32/float64 one, tensors.py falls back
to torch's reductions.

How close the two are: min, max, the zero count and the NaN/Inf counts are equal. The norm and the sum add
16-term sums (in float32 for float16/bfloat16/float32, in float64 for float64) in float64, so each is within 32
rounding errors of that float type of its exact value (for the sum: of the sum of magnitudes), about 4e-6
relative for float32, tighter than torch's own float32 reductions over large tensors; a block holding NaN, Inf or
float32 squares beyond 3.4e38 is summed again element by element in float64 (tests/test_fused_stats.py holds
these bounds against torch's reductions).
"""

from __future__ import annotations

from typing import Any

import torch

from .native.loader import load

_DENSE_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_kernel: list[Any] = []  # the native function, looked up once (an empty list: not yet)


def _fused() -> Any:
    if not _kernel:
        module = load()
        _kernel.append(getattr(module, "fused_stats", None) if module is not None else None)
    return _kernel[0]


def fused_stats(x: torch.Tensor) -> torch.Tensor | None:
    """(norm, min, max, sum, nonzero, nan, inf) as a float64 row read in one pass, or None (use torch's)."""
    kernel = _fused()
    if kernel is None or not x.is_cpu or x.layout != torch.strided or x.dtype not in _DENSE_FLOATS:
        return None
    row: torch.Tensor = kernel(x)  # a non-contiguous tensor is copied once, then read once
    return row if row.numel() else None
