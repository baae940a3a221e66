"""Each pass's digest: its leaves' gradient norms, extremes and NaN/Inf, their values' norms and updates, its flags.

Read at the end of the pass (PassFacts, while the graph and the tensors are alive), then made a PassDigest by
each record() block the pass belongs to (Digester: the update of a parameter is measured against the value it had
at that block's previous pass). The gradient numbers are the ones the pass's Trace shows (exact norms and
NaN/Inf counts of leaf gradients; max |g| and the share of zeros of a gradient larger than 1,024 elements from its
sample). A parameter's value and update norms come from a fixed sample of its values: the whole parameter up to
1,024 elements, else the 1,024 elements at the positions the gradients are sampled at (the norm scaled to the
whole), so a long run keeps 8 KiB per parameter, never a copy of the model, and reads none of the rest.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, NamedTuple

import numpy as np
import torch

from ..model.digest import EXPLODING, HEALTH_KINDS, VANISHING, LeafDigest, PassDigest
from .pass_seen import PassSeen, Ref, StepV
from .tensors import SAMPLE_SIZE, readable, sample_index

GradNumbers = tuple[float, float, float, int, int]  # norm, max |g|, share of zeros, NaN count, Inf count


class LeafFacts(NamedTuple):
    """One leaf at the end of one pass: its gradient's numbers and its value's sample."""

    name: str
    module: str | None
    shape: tuple[int, ...]
    grad: GradNumbers | None
    value_norm: float | None
    sample: np.ndarray[Any, Any] | None  # float64 sample of the value (the same positions every pass)
    numel: int
    tensor: weakref.ReferenceType[torch.Tensor] | None  # the parameter, to tell it from another of the same name
    version: int  # its in-place version counter: unchanged means not updated since


class PassFacts(NamedTuple):
    leaves: tuple[LeafFacts, ...]
    seed: GradNumbers | None  # the seeds' combined numbers (norm over all of them)
    rank: int | None


def pass_facts(seen: PassSeen, leaf_vars: dict[int, torch.Tensor], v_handle: Any, native: Any = None) -> PassFacts:
    """Read at the end of the pass, before the table is compacted. `v_handle(node, slot)`: the table handle of the
    gradient that arrived at a node's input slot; `native`: the native pass, which reads value samples faster."""
    table = seen.table
    by_name = {name: i for i, name in seen.leaf_names.items()}
    handles: list[int | None] = [_handle(spec.grad, v_handle) for spec in seen.leaves]
    seed_handles = [s.v for s in seen.seeds if s.v is not None]
    wanted = [h for h in (*handles, *seed_handles) if h is not None]
    numbers = dict(zip(wanted, table.digest(wanted), strict=True)) if wanted else {}
    variables = [leaf_vars.get(by_name[spec.name]) if spec.name in by_name else None for spec in seen.leaves]
    samples = _value_samples(variables, native)
    with np.errstate(over="ignore", invalid="ignore"):  # once per pass, not per leaf: it costs ~10 µs to enter
        leaves = _leaf_facts(seen, by_name, handles, numbers, variables, samples)
    return PassFacts(tuple(leaves), _combined([numbers.get(h) for h in seed_handles]), seen.rank)


def _leaf_facts(
    seen: PassSeen,
    by_name: dict[str, int],
    handles: list[int | None],
    numbers: dict[int, GradNumbers | None],
    variables: list[torch.Tensor | None],
    samples: list[np.ndarray[Any, Any] | None],
) -> list[LeafFacts]:
    leaves = []
    for spec, handle, var, sample in zip(seen.leaves, handles, variables, samples, strict=True):
        node = by_name.get(spec.name)
        module = seen.modules.get(node) if node is not None else None
        numel = math.prod(spec.fields["shape"])
        value_norm = None
        if sample is not None and sample.size:
            value_norm = _scaled_norm(sample, numel)
        leaves.append(
            LeafFacts(
                name=spec.name,
                module=module[0] if module else None,
                shape=tuple(spec.fields["shape"]),
                grad=None if handle is None else numbers.get(handle),
                value_norm=value_norm,
                sample=sample,
                numel=numel,
                tensor=None if var is None else weakref.ref(var),
                version=_version(var),
            )
        )
    return leaves


def _scaled_norm(sample: np.ndarray[Any, Any], numel: int) -> float:
    """The 2-norm of a tensor of `numel` elements estimated from its sample (exact when it is the whole tensor);
    values whose squares overflow are scaled by the largest magnitude first. Called under
    np.errstate(over="ignore", invalid="ignore"), entered once per pass by the callers."""
    scale = 1.0 if numel == sample.size else math.sqrt(numel / sample.size)
    squares = float(np.dot(sample, sample))
    if math.isinf(squares) and np.isfinite(sample).all():
        peak = float(np.abs(sample).max())
        return peak * math.sqrt(float(np.dot(sample / peak, sample / peak))) * scale
    return math.sqrt(squares) * scale


def _handle(ref: Ref, v_handle: Any) -> int | None:
    if isinstance(ref, StepV):
        found: int | None = v_handle(ref.node, ref.slot)
        return found
    return ref


def _combined(parts: list[GradNumbers | None]) -> GradNumbers | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    norm = math.sqrt(math.fsum(p[0] * p[0] for p in present))
    return norm, max(p[1] for p in present), 0.0, sum(p[3] for p in present), sum(p[4] for p in present)


def _value_samples(variables: list[torch.Tensor | None], native: Any) -> list[np.ndarray[Any, Any] | None]:
    """Each parameter's value sample as float64, read in one copy to the CPU (by the native pass when there is
    one: a gather of 1,024 elements per parameter, no tensor made per parameter)."""
    usable = [var if _samplable(var) else None for var in variables]
    present = [var for var in usable if var is not None]
    if not present:
        return [None] * len(usable)
    with torch.no_grad():
        if native is not None:
            joined = native.value_samples(present).numpy()
        else:
            joined = torch.cat([_sample_of(var) for var in present]).cpu().numpy()
    out: list[np.ndarray[Any, Any] | None] = []
    offset = 0
    for var in usable:
        if var is None:
            out.append(None)
            continue
        length = min(var.numel(), SAMPLE_SIZE)
        out.append(joined[offset : offset + length])
        offset += length
    return out


def _samplable(var: torch.Tensor | None) -> bool:
    return (
        var is not None
        and readable(var)
        and var.is_floating_point()
        and not var.is_meta
        and var.device.type in ("cpu", "cuda")
    )


def _sample_of(var: torch.Tensor) -> torch.Tensor:
    t = var.detach()
    numel = t.numel()
    if numel <= SAMPLE_SIZE:
        return t.reshape(-1).to("cpu", torch.float64)
    return torch.take(t, sample_index(numel, None if t.is_cpu else t.device)).to("cpu", torch.float64)


def _version(var: torch.Tensor | None) -> int:
    if var is None:
        return -1
    try:
        return int(var._version)
    except RuntimeError:  # inference tensors have no version counter
        return -1


class Digester:
    """One record() block's digests: remembers each parameter's value sample at its previous pass, for updates."""

    def __init__(self) -> None:
        # leaf name -> (the parameter, its version, its sample) at the previous pass that digested it
        self._previous: dict[str, tuple[weakref.ReferenceType[torch.Tensor] | None, int, np.ndarray[Any, Any]]] = {}

    def digest(self, facts: PassFacts, *, index: int, label: str | None) -> PassDigest:
        with np.errstate(over="ignore", invalid="ignore"):  # Inf - Inf in an update: NaN, a finding
            leaves = tuple(self._leaf(f) for f in facts.leaves)
        return PassDigest(
            index=index, label=label, rank=facts.rank, leaves=leaves, flags=_flags(leaves, facts.seed), kept=False
        )

    def _leaf(self, f: LeafFacts) -> LeafDigest:
        update = None
        if f.sample is not None:
            before = self._previous.get(f.name)
            if before is not None and before[2].shape == f.sample.shape and _same(before[0], f.tensor):
                # not changed in place since (version unchanged): no update, a frozen parameter
                update = 0.0 if before[1] == f.version >= 0 else _scaled_norm(f.sample - before[2], f.numel)
            self._previous[f.name] = (f.tensor, f.version, f.sample)
        g = f.grad
        return LeafDigest(
            name=f.name,
            module=f.module,
            shape=f.shape,
            grad_norm=None if g is None else g[0],
            grad_max_abs=None if g is None else g[1],
            zeros=0.0 if g is None else g[2],
            nan=0 if g is None else g[3],
            inf=0 if g is None else g[4],
            value_norm=f.value_norm,
            update_norm=update,
        )


def _same(a: weakref.ReferenceType[torch.Tensor] | None, b: weakref.ReferenceType[torch.Tensor] | None) -> bool:
    """The same parameter object as before (a name reused for another tensor has no update to measure)."""
    return a is not None and b is not None and a() is not None and a() is b()


def _flags(leaves: tuple[LeafDigest, ...], seed: GradNumbers | None) -> tuple[str, ...]:
    """The health kinds of the pass, as tracer.health finds them on its leaves: NaN/Inf in a leaf's gradient or
    the seed; a leaf's gradient norm over the seed's norm below VANISHING or above EXPLODING."""
    found = set()
    if seed is not None:
        found |= {"nan"} if seed[3] else set()
        found |= {"inf"} if seed[4] else set()
    seed_norm = seed[0] if seed is not None else None
    for d in leaves:
        if d.nan:
            found.add("nan")
        if d.inf:
            found.add("inf")
        norm = d.grad_norm
        if seed_norm and math.isfinite(seed_norm) and norm and math.isfinite(norm):
            ratio = norm / seed_norm
            if ratio < VANISHING:
                found.add("vanishing")
            elif ratio > EXPLODING:
                found.add("exploding")
    return tuple(k for k in HEALTH_KINDS if k in found)
