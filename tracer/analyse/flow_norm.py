"""The norm of the gradient flowing across a boundary, from the recorded numbers only: per target slot, then combined.

Several next edges into one slot are summed by the engine, and the norm of a sum is not a function of the
parts' norms. So per slot: when every part of it crosses the boundary, the receiving node's recorded v for that
slot *is* the sum; one part is its own norm; several parts with their values kept are summed exactly; otherwise
the triangle inequality gives an upper bound (marked ≤). Slots are distinct tensors: combined, they are one
vector whose norm is the root of the sum of squares (as torch.nn.utils.clip_grad_norm_ combines parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..model.format import APPROX, number
from ..model.records import Step, TensorInfo


@dataclass(frozen=True)
class FlowNorm:
    """A gradient norm shown in the module view, with how it was obtained."""

    norm: float | None  # None: no gradient crossed (only None parts, or nothing at all)
    edges: int = 0  # recorded next edges (and seeds) it combines
    approx: bool = False  # rests on a norm estimated from a sample (capture='auto', large tensors)
    bound: bool = False  # an upper bound: parts summed into one slot whose values were not kept

    def text(self, precision: int) -> str:
        if self.norm is None:
            return "None" if self.edges else "—"  # a None gradient, or nothing crossing at all
        mark = "≤" if self.bound else (APPROX if self.approx else "")
        return f"{mark}{number(self.norm, precision)}"

    @property
    def finite(self) -> bool:
        return self.norm is None or math.isfinite(self.norm)


def info_norm(info: TensorInfo | None) -> float | None:
    """A recorded tensor's norm; 0 for an empty tensor (which has no statistics)."""
    if info is None:
        return None
    if info.stats is None:
        return 0.0 if info.numel == 0 else None
    return info.stats.norm


def _estimated(info: TensorInfo) -> bool:
    s = info.stats
    return s is not None and s.sampled is not None and not s.norm_exact


def of_info(info: TensorInfo | None, edges: int = 1) -> FlowNorm:
    norm = info_norm(info)
    if norm is None:
        return FlowNorm(None, edges)
    assert info is not None
    return FlowNorm(norm, edges, approx=_estimated(info))


def slot_norm(target: Step, slot: int, parts: Sequence[TensorInfo | None], all_parts: int) -> FlowNorm:
    """The norm of what `parts` (some or all of the `all_parts` gradients summed into the slot) add up to."""
    present = [g for g in parts if g is not None]
    if not present:
        return FlowNorm(None, len(parts))
    received = target.v[slot] if target.executed and slot < len(target.v) else None
    if len(parts) == all_parts and received is not None and info_norm(received) is not None:
        return of_info(received, len(parts))
    if len(present) == 1:
        return of_info(present[0], len(parts))
    arrays = [a for a in (g.flat() for g in present) if a is not None]
    if len(arrays) == len(present) and len({a.shape for a in arrays}) == 1:  # every value kept: sum them
        return FlowNorm(float(np.linalg.norm(np.sum(arrays, axis=0))), len(parts))
    norms = [info_norm(g) for g in present]
    bound = sum(n for n in norms if n is not None)
    return FlowNorm(bound, len(parts), approx=any(_estimated(g) for g in present), bound=True)


def combine(norms: Iterable[FlowNorm]) -> FlowNorm:
    """Several slots (distinct tensors) as one vector: √Σ‖gᵢ‖²; NaN or Inf anywhere stays visible."""
    items = list(norms)
    edges = sum(f.edges for f in items)
    present = [f for f in items if f.norm is not None]
    if not present:
        return FlowNorm(None, edges)
    values = [f.norm for f in present if f.norm is not None]
    if any(math.isnan(v) for v in values):
        total = math.nan
    elif any(math.isinf(v) for v in values):
        total = math.inf
    else:
        total = math.sqrt(math.fsum(v * v for v in values))
    return FlowNorm(total, edges, approx=any(f.approx for f in present), bound=any(f.bound for f in present))
