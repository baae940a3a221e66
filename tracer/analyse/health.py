"""Gradient health: norms along the backward order and per leaf, and flags for what usually goes wrong.

Flags, each pinned to where the problem starts rather than everywhere it spreads to:
- 'nonfinite' (error): the first node whose vᵀJ holds NaN/Inf although its v did not (or a sum of finite
  parts that overflowed), a non-finite seed, and every leaf whose gradient is non-finite. When that v (or a
  part of that sum) was only sampled, the flag says NaN/Inf was first seen there and where it may have
  started ('≈'): a sample that shows no NaN/Inf is no proof that there was none.
- 'wrong-backward' (error): a step whose vjp disagrees with v·J (Step.check.ok is False); for custom
  Functions J can come from the forward itself (method 'numeric'). Not when v holds NaN/Inf and the error is
  NaN: Inf·0 in v·J is NaN, so the check could not judge the node.
- 'unverified' (info): a custom Function whose backward could only be checked against itself; a step whose
  check could not judge it because its v holds NaN/Inf.
- 'vanishing' / 'exploding' (warning): ‖v‖ at a node divided by the seed's norm — the gain of the paths
  from the seed to it — falls below `vanishing` or rises above `exploding`, flagged at the node where it
  crosses (no node sending to it had crossed) and at every leaf beyond the threshold.
- 'zero': a leaf whose gradient is all zero (warning); a node that sends an all-zero gradient along an
  edge although its own v was not zero (info: a one-hot seed picking another branch, a dead ReLU, × 0).
- 'none': a leaf that got no gradient, an edge an executed node sent None along (warning, or info when the
  pass's inputs= pruned it on purpose).
In the default capture, large intermediate gradients carry statistics estimated from a 1,024-element
sample (Stats.exact False): flags that rest on them say so ('≈'); leaf gradients are always exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..model.records import NoteKind, Stats, Step, TensorInfo, Trace
from ..model.seam import upstairs
from ..model.textfmt import num, plural
from ..model.visible_text import visible
from .graph import Inflow, inflows
from .naming import seed_label, step_label
from .structure import cut_edges

Severity = Literal["error", "warning", "info"]
FlagKind = Literal["nonfinite", "wrong-backward", "unverified", "vanishing", "exploding", "zero", "none"]

DEFAULT_VANISHING = 1e-6  # ‖v‖ / ‖seed‖ below this: vanishing
DEFAULT_EXPLODING = 1e6  # ‖v‖ / ‖seed‖ above this: exploding
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Flag:
    """One finding: what, how bad, where (a node id and/or a leaf name), and the number behind it."""

    kind: FlagKind
    severity: Severity
    message: str
    node: int | None = None
    leaf: str | None = None
    value: float | None = None
    estimated: bool = False  # rests on sampled statistics

    @property
    def where(self) -> str:
        if self.leaf is not None:
            return f"leaf {self.leaf}"
        if self.node is not None:
            return f"node {self.node}"
        return "seed"


@dataclass(frozen=True)
class NormPoint:
    """The gradient at one executed step: ‖v‖ arriving (all forward outputs) and ‖vᵀJ‖ sent (all edges)."""

    step: int
    name: str
    norm: float | None  # None: nothing arrived
    sent: float | None
    estimated: bool
    leaf: str | None = None


@dataclass(frozen=True)
class Health:
    """Flags, the norm profile in execution order, and per-leaf gradient norms."""

    flags: tuple[Flag, ...]
    profile: tuple[NormPoint, ...]
    leaf_norms: tuple[tuple[str, float | None], ...]
    seed_norm: float | None
    vanishing: float
    exploding: float

    @property
    def ok(self) -> bool:
        """No errors and no warnings (info flags are facts, not problems)."""
        return not any(f.severity in ("error", "warning") for f in self.flags)

    def by_severity(self, severity: Severity) -> list[Flag]:
        return [f for f in self.flags if f.severity == severity]

    def chart(self, **options: object) -> str:
        """The gradient-norm profile as SVG text (see tracer.norm_profile_svg)."""
        return upstairs().chart(self, **options)

    def __str__(self) -> str:
        if not self.flags:
            return "health: no problems found"
        present = [s for s in SEVERITIES if self.by_severity(s)]
        counts = ", ".join(plural(len(self.by_severity(s)), s, "info" if s == "info" else None) for s in present)
        lines = [f"health: {counts}"]
        for f in self.flags:  # a name with control characters or a lone surrogate is shown as escapes
            lines.append(f"  {f.severity:<7}  {f.kind:<14}  {visible(f.where):<12}  {visible(f.message)}")
        return "\n".join(lines)


def health(trace: Trace, *, vanishing: float = DEFAULT_VANISHING, exploding: float = DEFAULT_EXPLODING) -> Health:
    """Flags and norms of one pass; `vanishing` and `exploding` bound ‖v‖ / ‖seed‖ (defaults 1e-6 and 1e6)."""
    if not (isinstance(vanishing, float | int) and 0 < vanishing < 1):
        raise ValueError(f"vanishing must be a ratio between 0 and 1, got {vanishing!r} (default {DEFAULT_VANISHING})")
    if not (isinstance(exploding, float | int) and exploding > 1):
        raise ValueError(f"exploding must be a ratio above 1, got {exploding!r} (default {DEFAULT_EXPLODING})")
    seed_norm = _combined([s.v for s in trace.seeds])[0]
    flags: list[Flag] = []
    flags += _seed_flags(trace)
    flags += _check_flags(trace)
    flags += _nonfinite_flags(trace)
    flags += _gain_flags(trace, seed_norm, float(vanishing), float(exploding))
    flags += _zero_flags(trace)
    flags += _none_flags(trace)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    flags.sort(key=lambda f: (order[f.severity], f.leaf is not None, f.node or 0, f.leaf or "", f.kind))
    profile = tuple(_point(n.id, n.name, n.v, n.vjp, n.leaf) for n in trace.steps)
    leaf_norms = tuple((leaf.name, leaf.grad.norm if leaf.grad is not None else None) for leaf in trace.leaves.values())
    return Health(tuple(flags), profile, leaf_norms, seed_norm, float(vanishing), float(exploding))


def _point(
    step: int, name: str, v: tuple[TensorInfo | None, ...], vjp: tuple[TensorInfo | None, ...], leaf: str | None
) -> NormPoint:
    norm, rough = _combined(v)
    sent, rough_sent = _combined(vjp)
    return NormPoint(step, name, norm, sent, rough or rough_sent, leaf)


def _combined(infos: tuple[TensorInfo | None, ...] | list[TensorInfo | None]) -> tuple[float | None, bool]:
    """The norm of several tensors taken together (None when there are none), and whether it is estimated."""
    stats = [i.stats for i in infos if i is not None and i.stats is not None]
    present = [i for i in infos if i is not None]
    if not present:
        return None, False
    return math.sqrt(math.fsum(s.norm * s.norm for s in stats)), any(not (s.exact or s.norm_exact) for s in stats)


def _stats(info: TensorInfo | None) -> Stats | None:
    return None if info is None else info.stats


def _nonfinite(info: TensorInfo | None) -> bool:
    s = _stats(info)
    return s is not None and not s.finite


def _all_zero(info: TensorInfo | None) -> bool:
    s = _stats(info)
    return s is not None and s.norm == 0 and s.finite


def _approx(info: TensorInfo | None) -> bool:
    s = _stats(info)
    return s is not None and not s.exact


def _mark(estimated: bool) -> str:
    return " (≈ from a sample)" if estimated else ""


def _label(trace: Trace, node_id: int) -> str:
    return step_label(trace.node(node_id))


def _seed_flags(trace: Trace) -> list[Flag]:
    flags = []
    for s in trace.seeds:
        name = seed_label(s)
        if _nonfinite(s.v):
            flags.append(Flag("nonfinite", "error", f"the seed of {name} holds NaN or Inf", node=s.target))
        elif _all_zero(s.v):
            flags.append(Flag("zero", "warning", f"the seed of {name} is all zero: every gradient from it is zero"))
    return flags


def check_cannot_judge(step: Step) -> bool:
    """A failed vᵀJ = v·J check that says nothing about the node: its v holds NaN/Inf (or was only sampled and may
    hide them) and the error is not finite. Inf·0 in v·J is NaN (an Inf in v meets every zero of J), so v·J has
    no value to compare the node's vᵀJ with; a finite error means the comparison held and the verdict stands."""
    c = step.check
    return (
        c is not None
        and not c.ok
        and not math.isfinite(c.max_error)
        and any(_nonfinite(v) or _may_hide_nonfinite(v) for v in step.v)
    )


def _check_flags(trace: Trace) -> list[Flag]:
    flags = []
    for n in trace.steps:
        if check_cannot_judge(n):
            flags.append(
                Flag(
                    "unverified",
                    "info",
                    f"{_label(trace, n.id)}: vᵀJ = v·J not checked: v holds Inf/NaN, and Inf·0 in v·J is NaN",
                    node=n.id,
                )
            )
        elif n.check is not None and not n.check.ok:
            how = "central differences of the forward" if n.check.method == "numeric" else "one-hot calls of the node"
            flags.append(
                Flag(
                    "wrong-backward",
                    "error",
                    f"{_label(trace, n.id)} sent a vᵀJ that differs from v·J by {num(n.check.max_error)} "
                    f"(tolerance {num(n.check.tolerance)}; J from {how}): its backward is wrong",
                    node=n.id,
                    value=n.check.max_error,
                )
            )
        elif n.note_kind is NoteKind.NO_REFERENCE:
            flags.append(
                Flag("unverified", "info", f"{_label(trace, n.id)}: {n.note}; checked only against itself", node=n.id)
            )
    return flags


def _nonfinite_flags(trace: Trace) -> list[Flag]:
    flags = []
    arriving = inflows(trace)
    for n in trace.steps:
        bad_in = [k for k, v in enumerate(n.v) if _nonfinite(v)]
        bad_out = [k for k, g in enumerate(n.vjp) if _nonfinite(g)]
        if bad_out and not bad_in:
            parts = ", ".join(f"edge {k}: {_count(n.vjp[k])}" for k in bad_out)
            # A sampled v with no NaN in its sample is no proof that v was finite: then this is only where
            # NaN/Inf was first seen, and the flag must not claim more.
            unsure = any(_may_hide_nonfinite(v) for v in n.v)
            where = (
                ": what arrived here was only sampled, so it may have started earlier; trace with "
                "capture='stats' to find the step where it starts"
                if unsure
                else ": the problem starts here"
            )
            verb = "is the first step that shows NaN/Inf" if unsure else "turned a finite v into NaN/Inf"
            flags.append(
                Flag(
                    "nonfinite",
                    "error",
                    f"{_label(trace, n.id)} {verb} ({parts}){_mark(unsure)}{where}",
                    node=n.id,
                    estimated=unsure,
                )
            )
        for k in bad_in:
            parts_in = arriving.get((n.id, k), [])
            if not parts_in or any(_nonfinite(p.grad) for p in parts_in):
                continue  # it arrived non-finite: flagged where it started
            sampled = [p for p in parts_in if _may_hide_nonfinite(p.grad)]
            if not sampled:  # every part is known finite: their sum overflowed here
                flags.append(
                    Flag(
                        "nonfinite",
                        "error",
                        f"{_label(trace, n.id)}: the sum of {len(parts_in)} finite gradients overflowed "
                        f"({_count(n.v[k])})",
                        node=n.id,
                    )
                )
                continue
            # Parts known only from samples: a NaN/Inf the samples missed may have been sent by any of them (or
            # started before them). This is where it was first seen, no proof that the sum overflowed.
            senders = list(dict.fromkeys(_sender(trace, p) for p in sampled))
            slot = f"v[{k}]" if len(n.v) > 1 else "v"
            flags.append(
                Flag(
                    "nonfinite",
                    "error",
                    f"{_label(trace, n.id)} is the first step that shows NaN/Inf ({slot}: {_count(n.v[k])})"
                    f"{_mark(True)}: {plural(len(sampled), 'gradient')} sent to it "
                    f"{'was' if len(sampled) == 1 else 'were'} only sampled, so it may start at "
                    f"{' or '.join(senders)}, or earlier; trace with capture='stats' to find the step where it "
                    "starts",
                    node=n.id,
                    estimated=True,
                )
            )
    for leaf in trace.leaves.values():
        if _nonfinite(leaf.grad):
            flags.append(
                Flag(
                    "nonfinite",
                    "error",
                    f"{leaf.name}'s gradient has {_count(leaf.grad)}",
                    node=leaf.node,
                    leaf=leaf.name,
                )
            )
    return flags


def _sender(trace: Trace, part: Inflow) -> str:
    return _label(trace, part.source) if part.source is not None else part.label(trace)


def _may_hide_nonfinite(info: TensorInfo | None) -> bool:
    """Statistics from a sample, without an exact norm: a NaN/Inf the sample missed would not show."""
    s = _stats(info)
    return s is not None and s.finite and not s.exact and not s.norm_exact


def _count(info: TensorInfo | None) -> str:
    s = _stats(info)
    if s is None:
        return "no statistics"
    if s.nan == 0 and s.inf == 0:
        return f"a norm of {num(s.norm)}"
    if s.exact:
        return f"{s.nan} NaN, {s.inf} Inf"
    counted = f"{s.nan} NaN, {s.inf} Inf in a {s.sampled:,}-element sample"
    return f"a norm of {num(s.norm)}; {counted}" if s.norm_exact else counted


def _gain_flags(trace: Trace, seed_norm: float | None, vanishing: float, exploding: float) -> list[Flag]:
    if seed_norm is None or seed_norm == 0 or not math.isfinite(seed_norm):
        return []
    senders: dict[int, list[int]] = {}
    for n, _, e, _ in trace.edges():
        if e.target is not None and n.executed:
            senders.setdefault(e.target, []).append(n.id)
    ratio: dict[int, float] = {}
    rough: dict[int, bool] = {}
    for n in trace.steps:
        norm, estimated = _combined(n.v)
        if norm is not None and math.isfinite(norm) and norm > 0:
            ratio[n.id] = norm / seed_norm
            rough[n.id] = estimated

    def side(r: float | None) -> int:
        if r is None:
            return 0
        return -1 if r < vanishing else (1 if r > exploding else 0)

    flags = []
    for n in trace.steps:
        r = ratio.get(n.id)
        s = side(r)
        if s == 0 or n.leaf is not None:  # leaves are flagged below, with their exact gradients
            continue
        if any(side(ratio.get(p)) == s for p in senders.get(n.id, [])):
            continue  # it crossed earlier on this path
        assert r is not None
        before = [ratio[p] for p in senders.get(n.id, []) if p in ratio]
        came = f" (from {num(max(before) if s < 0 else min(before))} at the node before)" if before else ""
        kind: FlagKind = "vanishing" if s < 0 else "exploding"
        bound = vanishing if s < 0 else exploding
        flags.append(
            Flag(
                kind,
                "warning",
                f"{_label(trace, n.id)}: ‖v‖ is {num(r)} × the seed's norm{came}, "
                f"{'below' if s < 0 else 'above'} the {kind} threshold {num(bound)}{_mark(rough[n.id])}",
                node=n.id,
                value=r,
                estimated=rough[n.id],
            )
        )
    for leaf in trace.leaves.values():
        norm = leaf.grad.norm if leaf.grad is not None else None
        if norm is None or norm == 0 or not math.isfinite(norm):
            continue
        r = norm / seed_norm
        s = side(r)
        if s:
            kind = "vanishing" if s < 0 else "exploding"
            flags.append(
                Flag(
                    kind,
                    "warning",
                    f"{leaf.name}'s gradient norm is {num(r)} × the seed's ({kind} threshold "
                    f"{num(vanishing if s < 0 else exploding)})",
                    node=leaf.node,
                    leaf=leaf.name,
                    value=r,
                )
            )
    return flags


def _zero_flags(trace: Trace) -> list[Flag]:
    flags = []
    for n in trace.steps:
        norm, _ = _combined(n.v)
        if norm is None or norm == 0 or not math.isfinite(norm):
            continue
        for k, (e, g) in enumerate(zip(n.edges, n.vjp, strict=False)):
            if e.target is not None and _all_zero(g):
                flags.append(
                    Flag(
                        "zero",
                        "info",
                        f"{_label(trace, n.id)} sends an all-zero gradient along edge {k} to "
                        f"{_label(trace, e.target)}{_mark(_approx(g))}",
                        node=n.id,
                        value=0.0,
                        estimated=_approx(g),
                    )
                )
    for leaf in trace.leaves.values():
        if _all_zero(leaf.grad):
            flags.append(Flag("zero", "warning", f"{leaf.name}'s gradient is all zero", node=leaf.node, leaf=leaf.name))
    return flags


def _none_flags(trace: Trace) -> list[Flag]:
    pruned = trace.options.inputs is not None or trace.kind == "grad"
    flags = []
    for leaf in trace.leaves.values():
        if leaf.grad is None:
            flags.append(
                Flag(
                    "none",
                    "info" if pruned else "warning",
                    f"{leaf.name} got no gradient: {leaf.reason or 'no reason was recorded'}",
                    node=leaf.node,
                    leaf=leaf.name,
                )
            )
    executed = {n.id for n in trace.steps}
    for cut in cut_edges(trace):
        if cut.kind != "none":
            continue
        target = trace.node(cut.node).edges[cut.edge].target
        on_purpose = pruned and target not in executed
        flags.append(
            Flag(
                "none",
                "info" if on_purpose else "warning",
                f"{_label(trace, cut.node)} sent None along edge {cut.edge}: {cut.reason}",
                node=cut.node,
            )
        )
    return flags
