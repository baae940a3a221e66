"""Per-pass digests: the few numbers per leaf that a long run keeps for every pass, also when its Trace is not kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HealthKind = Literal["nan", "inf", "vanishing", "exploding"]
HEALTH_KINDS: tuple[str, ...] = ("nan", "inf", "vanishing", "exploding")
# A leaf's gradient norm over the seed's below / above these flags the pass: tracer.health's default thresholds
# (tracer/analyse/health.py; tests keep the two equal).
VANISHING = 1e-6
EXPLODING = 1e6


@dataclass(frozen=True, kw_only=True, slots=True)
class LeafDigest:
    """One leaf's gradient in one pass, summarised: norms, extremes, zeros, non-finite counts, and its update."""

    name: str  # the leaf's name as in the Trace (e.g. "model.fc.weight")
    module: str | None  # owning module path when known ("fc"), else None
    shape: tuple[int, ...]
    grad_norm: float | None  # L2 norm of the gradient that reached the leaf in this pass (None: no gradient)
    grad_max_abs: float | None
    zeros: float  # share of exact zeros in the gradient, 0..1
    nan: int
    inf: int
    value_norm: float | None  # L2 norm of the parameter's value when the pass ran (None when unknown)
    update_norm: float | None  # L2 norm of (value now - value at the previous digested pass) (None: first / unknown)


@dataclass(frozen=True, kw_only=True, slots=True)
class PassDigest:
    """One backward pass of a record() block, summarised leaf by leaf: what the timeline of a long run is made of."""

    index: int  # the pass's index in the block (same numbering as Trace.index / rec.traces)
    label: str | None
    rank: int | None  # torch.distributed rank when initialised, else None
    leaves: tuple[LeafDigest, ...]
    flags: tuple[str, ...]  # health kinds seen in this pass: subset of HEALTH_KINDS, in that order
    kept: bool  # whether the full Trace of this pass was kept

    def leaf(self, name: str) -> LeafDigest:
        """The digest of the leaf with this name (as in the Trace's leaves)."""
        for d in self.leaves:
            if d.name == name:
                return d
        raise KeyError(f"no leaf {name!r} in pass {self.index} (leaves: {[d.name for d in self.leaves][:8]})")
