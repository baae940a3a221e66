"""Compare two traces of the same graph (two seeds, two training steps): what changed, per node and per leaf."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.errors import GradtraceError
from ..model.records import TensorInfo, Trace
from ..model.textfmt import num, table, tensor
from ..model.visible_text import visible
from .naming import seed_ref, step_label


class GraphMismatch(GradtraceError, ValueError):
    """The two traces are not passes over graphs of the same structure."""


@dataclass(frozen=True)
class Change:
    """One recorded tensor that differs between the two traces."""

    where: str  # 'seed y', 'step 3 MulBackward0 v[0]', 'step 3 MulBackward0 vjp[1]', 'leaf x grad'
    a: TensorInfo | None
    b: TensorInfo | None
    max_abs: float | None  # largest |b - a| when both kept their values; else None
    estimated: bool  # decided from statistics, some sampled
    node: int | None = None
    leaf: str | None = None

    @property
    def norm_ratio(self) -> float | None:
        """‖b‖ / ‖a‖ (None when either is missing or ‖a‖ is 0)."""
        na = self.a.norm if self.a is not None else None
        nb = self.b.norm if self.b is not None else None
        if na is None or nb is None or na == 0:
            return None
        return nb / na


@dataclass(frozen=True)
class TraceDiff:
    """Everything that changed from trace `a` to trace `b`; `compared` counts the tensors looked at."""

    changes: tuple[Change, ...]
    compared: int
    check_changes: tuple[str, ...]  # steps whose vjp check verdict changed
    rtol: float
    atol: float

    @property
    def identical(self) -> bool:
        return not self.changes and not self.check_changes

    def leaf_changes(self) -> list[Change]:
        return [c for c in self.changes if c.leaf is not None]

    def node_changes(self) -> list[Change]:
        return [c for c in self.changes if c.node is not None and c.leaf is None]

    def __str__(self) -> str:
        if self.identical:
            return f"no differences in {self.compared} recorded tensors (rtol {num(self.rtol)}, atol {num(self.atol)})"
        rows = [
            [
                c.where,
                tensor(c.a),
                tensor(c.b),
                num(c.max_abs) if c.max_abs is not None else ("≈" if c.estimated else "—"),
                num(c.norm_ratio),
            ]
            for c in self.changes
        ]
        text = f"{len(self.changes)} of {self.compared} recorded tensors changed\n"
        text += table(["where", "first", "second", "max |Δ|", "‖second‖/‖first‖"], rows)
        for line in self.check_changes:
            text += f"\n  check: {line}"
        return visible(text, layout=True)  # a name's control characters as escapes, never raw


def diff(a: Trace, b: Trace, *, rtol: float = 1e-6, atol: float = 0.0) -> TraceDiff:
    """Per seed, node (v and vᵀJ) and leaf (gradient and .grad after), what differs beyond atol + rtol·|b|.

    Raises GraphMismatch, naming the differences, when the traces are not of graphs with the same
    structure (nodes matched by id, which follows execution order)."""
    problems = structural_differences(a, b)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise GraphMismatch(
            f"the two traces are not of the same graph: {shown}. diff compares two passes over graphs of the "
            "same structure (the same model at two training steps, or one graph with two seeds); "
            "look at each trace on its own instead"
        )
    changes: list[Change] = []
    compared = 0

    def compare(where: str, x: TensorInfo | None, y: TensorInfo | None, node: int | None, leaf: str | None) -> None:
        nonlocal compared
        compared += 1
        found = _difference(x, y, rtol, atol)
        if found is not None:
            max_abs, estimated = found
            changes.append(Change(where, x, y, max_abs, estimated, node, leaf))

    for sa, sb in zip(a.seeds, b.seeds, strict=True):
        compare(seed_ref(sa), sa.v, sb.v, sa.target, None)
    checks = []
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        label = step_label(na)
        for k in range(max(len(na.v), len(nb.v))):
            compare(f"{label} v[{k}]", _at(na.v, k), _at(nb.v, k), na.id, None)
        for k in range(max(len(na.vjp), len(nb.vjp))):
            compare(f"{label} vjp[{k}]", _at(na.vjp, k), _at(nb.vjp, k), na.id, None)
        ok_a = None if na.check is None else na.check.ok
        ok_b = None if nb.check is None else nb.check.ok
        if ok_a != ok_b:
            checks.append(f"{label}: {_verdict(ok_a)} → {_verdict(ok_b)}")
    for name, la in a.leaves.items():
        lb = b.leaves[name]
        compare(f"leaf {name} grad", la.grad, lb.grad, la.node, name)
        compare(f"leaf {name} .grad after", la.grad_total, lb.grad_total, la.node, name)
    return TraceDiff(tuple(changes), compared, tuple(checks), rtol, atol)


def _verdict(ok: bool | None) -> str:
    return {True: "vjp = v·J", False: "vjp ≠ v·J", None: "not checked"}[ok]


def _at(infos: tuple[TensorInfo | None, ...], k: int) -> TensorInfo | None:
    return infos[k] if k < len(infos) else None


def structural_differences(a: Trace, b: Trace) -> list[str]:
    """Why two traces are not of the same graph, in words (empty when they are)."""
    out = []
    if len(a.seeds) != len(b.seeds):
        out.append(f"{len(a.seeds)} seed(s) in the first, {len(b.seeds)} in the second")
    for sa, sb in zip(a.seeds, b.seeds, strict=False):
        if (sa.shape, sa.target, sa.input_nr) != (sb.shape, sb.target, sb.input_nr):
            out.append(f"seed {sa.index} has shape {list(sa.shape)} in the first and {list(sb.shape)} in the second")
    if len(a.nodes) != len(b.nodes):
        out.append(f"{len(a.nodes)} nodes in the first, {len(b.nodes)} in the second")
    for na, nb in zip(a.nodes, b.nodes, strict=False):
        if na.name != nb.name:
            out.append(f"node {na.id} is {na.name} in the first and {nb.name} in the second")
        elif na.edges != nb.edges:
            out.append(f"node {na.id} {na.name} sends to other nodes in the two traces")
        elif na.executed != nb.executed:
            out.append(f"node {na.id} {na.name} ran in {'the first' if na.executed else 'the second'} only")
    if set(a.leaves) != set(b.leaves):
        only_a = sorted(set(a.leaves) - set(b.leaves))
        only_b = sorted(set(b.leaves) - set(a.leaves))
        out.append(f"leaves only in the first: {only_a}, only in the second: {only_b}")
    for name in sorted(set(a.leaves) & set(b.leaves)):
        if a.leaves[name].shape != b.leaves[name].shape:
            out.append(f"leaf {name} has shape {list(a.leaves[name].shape)} and {list(b.leaves[name].shape)}")
    return out


def _difference(
    x: TensorInfo | None, y: TensorInfo | None, rtol: float, atol: float
) -> tuple[float | None, bool] | None:
    """None when equal within tolerance; else (max |y - x| when values were kept, whether stats were estimated)."""
    if x is None and y is None:
        return None
    if x is None or y is None:
        return None, False
    xv, yv = x.flat(), y.flat()
    if xv is not None and yv is not None and xv.shape == yv.shape:
        gap = np.abs(yv - xv)
        gap[(xv == yv) | (np.isnan(xv) & np.isnan(yv))] = 0.0  # equal, or NaN on both sides
        changed = bool(np.any(~(gap <= atol + rtol * np.abs(yv))))
        worst = float(np.nan if np.isnan(gap).any() else gap.max()) if gap.size else 0.0
        return (worst, False) if changed else None
    sx, sy = x.stats, y.stats
    if sx is None or sy is None:
        return None if sx is sy else (None, False)
    estimated = not (sx.exact and sy.exact)
    for p, q in ((sx.norm, sy.norm), (sx.mean, sy.mean), (sx.min, sy.min), (sx.max, sy.max)):
        if p == q or (math.isnan(p) and math.isnan(q)):
            continue
        if not abs(q - p) <= atol + rtol * abs(q):
            return None, estimated
    if (sx.nan, sx.inf) != (sy.nan, sy.inf):
        return None, estimated
    return None
