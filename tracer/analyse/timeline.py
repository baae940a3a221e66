"""Gradient flow over time: per-leaf and per-module gradient norms and update ratios across passes, from digests.

A module's norm in a pass is the norm of all its leaves' gradients together, sqrt(Σ ‖g_leaf‖²); its update ratio
is ‖Δw‖ / ‖w‖ over the same leaves, where the digests know the parameter's value (the step the optimizer took
between the previous digested pass and this one). A cell is marked NaN / Inf when a gradient held one, vanishing
when it is below `vanishing` times the largest norm of its kind (module or leaf) in that pass (the gradient does
not reach it), exploding when it is above `exploding` times its own median over the run (it grew far beyond its
usual size). Under torch.distributed every rank's passes are kept apart: one series per name and rank, and a
rank's cell is marked diverged when its gradient — each rank's own, before DDP averages them — is NaN/Inf while
another rank's is finite, or differs from the median of the ranks by more than a factor `diverging`: one rank's
data, seed or model copy has gone its own way.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from ..model.digest import LeafDigest, PassDigest
from ..model.timeline_records import CellMark, Series, SeriesKind, Timeline
from .health import DEFAULT_EXPLODING, DEFAULT_VANISHING

DEFAULT_DIVERGING = 10.0  # a rank whose norm is 10× above or below the ranks' median is marked diverged

TIMELINE_FORMAT = "gradtrace.timeline"
TIMELINE_VERSION = 1
ROOT_MODULE = "(model)"  # the series of parameters that belong to the model itself, not to a submodule


def timeline(
    digests: Iterable[PassDigest],
    *,
    vanishing: float = DEFAULT_VANISHING,
    exploding: float = DEFAULT_EXPLODING,
    diverging: float = DEFAULT_DIVERGING,
) -> Timeline:
    """The Timeline of these passes' digests (Recorder.digests; several ranks' digests may be mixed)."""
    for name, value in (("vanishing", vanishing), ("exploding", exploding), ("diverging", diverging)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    found = list(digests)
    passes = tuple(sorted({d.index for d in found}))
    ranks = tuple(sorted({d.rank for d in found}, key=lambda r: -1 if r is None else r))
    column = {index: k for k, index in enumerate(passes)}
    by_rank: dict[int | None, list[PassDigest | None]] = {r: [None] * len(passes) for r in ranks}
    for d in found:
        by_rank[d.rank][column[d.index]] = d  # a repeated (index, rank): the later digest wins
    labels: list[str | None] = [None] * len(passes)
    kept = [False] * len(passes)
    flags: list[set[str]] = [set() for _ in passes]
    for rank in ranks:
        for k, seen in enumerate(by_rank[rank]):
            if seen is None:
                continue
            labels[k] = labels[k] if labels[k] is not None else seen.label
            kept[k] = kept[k] or seen.kept
            flags[k].update(seen.flags)
    leaves: list[Series] = []
    modules: list[Series] = []
    for rank in ranks:
        columns = by_rank[rank]
        leaf_names, module_leaves = _names(columns)
        leaves += _marked([_leaf_series(name, rank, columns) for name in leaf_names], vanishing, exploding)
        modules += _marked(
            [_module_series(module, names, rank, columns) for module, names in module_leaves.items()],
            vanishing,
            exploding,
        )
    if len(ranks) > 1:
        leaves, modules = _diverged(leaves, diverging), _diverged(modules, diverging)
    order = ("nan", "inf", "vanishing", "exploding")  # the digests' own order (model/digest.py HEALTH_KINDS)
    return Timeline(
        passes=passes,
        ranks=ranks if ranks else (None,),
        labels=tuple(labels),
        kept=tuple(kept),
        flags=tuple(tuple(f for f in order if f in fs) + tuple(sorted(fs - set(order))) for fs in flags),
        leaves=tuple(leaves),
        modules=tuple(modules),
        vanishing=float(vanishing),
        exploding=float(exploding),
        diverging=float(diverging),
    )


def module_of(leaf: LeafDigest) -> str:
    """The module a leaf's gradient is counted in: the digest's owning module, else the leaf's name up to its last
    dot (model.0.weight -> model.0), else the leaf itself (a plain tensor `w` is a row of its own)."""
    if leaf.module is not None:
        return leaf.module or ROOT_MODULE
    parent, dot, _ = leaf.name.rpartition(".")
    return parent if dot and parent else leaf.name


def _names(columns: Sequence[PassDigest | None]) -> tuple[list[str], dict[str, list[str]]]:
    """Leaf names in order of first appearance, and the leaves of each module (modules in the same order)."""
    leaf_names: dict[str, None] = {}
    modules: dict[str, dict[str, None]] = {}
    for d in columns:
        if d is None:
            continue
        for leaf in d.leaves:
            leaf_names.setdefault(leaf.name, None)
            modules.setdefault(module_of(leaf), {}).setdefault(leaf.name, None)
    return list(leaf_names), {m: list(names) for m, names in modules.items()}


def _cell(leaves: Sequence[LeafDigest]) -> tuple[float | None, float | None, tuple[CellMark, ...]]:
    """(gradient norm, update ratio, NaN/Inf marks) of these leaves together in one pass."""
    with_grad = [leaf for leaf in leaves if leaf.grad_norm is not None]
    nan = any(leaf.nan > 0 or (leaf.grad_norm is not None and math.isnan(leaf.grad_norm)) for leaf in leaves)
    inf = any(leaf.inf > 0 or (leaf.grad_norm is not None and math.isinf(leaf.grad_norm)) for leaf in leaves)
    norm: float | None
    if not with_grad:
        norm = None
    elif nan:
        norm = math.nan
    elif inf:
        norm = math.inf
    else:
        norm = math.sqrt(math.fsum(leaf.grad_norm**2 for leaf in with_grad if leaf.grad_norm is not None))
        if len(with_grad) == 1:  # a leaf's own norm exactly as digested (no square root of its square)
            norm = with_grad[0].grad_norm
    known = [leaf for leaf in leaves if leaf.update_norm is not None and leaf.value_norm is not None]
    ratio = None
    if known:
        size = math.sqrt(math.fsum(leaf.value_norm**2 for leaf in known if leaf.value_norm is not None))
        step = math.sqrt(math.fsum(leaf.update_norm**2 for leaf in known if leaf.update_norm is not None))
        if len(known) == 1:
            size, step = known[0].value_norm or 0.0, known[0].update_norm or 0.0
        ratio = step / size if size > 0 and math.isfinite(size) else None
    marks: list[CellMark] = []
    if nan:
        marks.append("nan")
    if inf:
        marks.append("inf")
    return norm, ratio, tuple(marks)


def _series(
    name: str, kind: SeriesKind, rank: int | None, leaves: list[str], columns: Sequence[PassDigest | None]
) -> Series:
    norms: list[float | None] = []
    ratios: list[float | None] = []
    marks: list[tuple[CellMark, ...]] = []
    wanted = set(leaves)
    for d in columns:
        found = [] if d is None else [leaf for leaf in d.leaves if leaf.name in wanted]
        norm, ratio, mark = _cell(found) if found else (None, None, ())
        norms.append(norm)
        ratios.append(ratio)
        marks.append(mark)
    return Series(
        name=name,
        kind=kind,
        rank=rank,
        leaves=tuple(leaves),
        grad_norm=tuple(norms),
        update_ratio=tuple(ratios),
        marks=tuple(marks),
    )


def _leaf_series(name: str, rank: int | None, columns: Sequence[PassDigest | None]) -> Series:
    return _series(name, "leaf", rank, [name], columns)


def _module_series(module: str, leaves: list[str], rank: int | None, columns: Sequence[PassDigest | None]) -> Series:
    return _series(module, "module", rank, leaves, columns)


def _marked(series: list[Series], vanishing: float, exploding: float) -> list[Series]:
    """Add the vanishing and exploding marks: against the largest norm of the same pass, against the own median."""
    if not series:
        return series
    width = len(series[0].grad_norm)
    largest = [
        max((n for s in series if (n := s.grad_norm[k]) is not None and math.isfinite(n)), default=None)
        for k in range(width)
    ]
    out = []
    for s in series:
        usual = [n for n in s.grad_norm if n is not None and math.isfinite(n) and n > 0]
        median = statistics.median(usual) if usual else None
        marks = []
        for k, (norm, mark) in enumerate(zip(s.grad_norm, s.marks, strict=True)):
            extra: tuple[CellMark, ...] = ()
            top = largest[k]
            if norm is not None and math.isfinite(norm):
                if top is not None and top > 0 and norm < vanishing * top:
                    extra += ("vanishing",)
                if median is not None and norm > exploding * median:
                    extra += ("exploding",)
            marks.append(mark + extra)
        out.append(replace(s, marks=tuple(marks)))
    return out


def _diverged(series: list[Series], diverging: float) -> list[Series]:
    """Mark, per name and pass, the ranks whose norm stands apart from the other ranks' (see the module doc)."""
    by_name: dict[str, list[Series]] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)
    extra: dict[tuple[str, int | None], list[bool]] = {}
    for name, group in by_name.items():
        for s in group:
            extra[(name, s.rank)] = [False] * len(s.grad_norm)
        if len(group) < 2:
            continue
        for k in range(len(group[0].grad_norm)):
            present = [(s, n) for s in group if (n := s.grad_norm[k]) is not None]
            finite = [n for _, n in present if math.isfinite(n)]
            if len(present) < 2:
                continue
            middle = statistics.median(finite) if finite else None
            for s, n in present:
                if not math.isfinite(n):
                    apart = bool(finite)  # NaN/Inf here, finite on another rank
                elif middle is None:
                    apart = False
                elif n == 0 or middle == 0:
                    apart = (n == 0) != (middle == 0)  # no gradient at all here, or only here
                else:
                    apart = max(n / middle, middle / n) > diverging
                extra[(name, s.rank)][k] = apart
    out = []
    for s in series:
        flags = extra[(s.name, s.rank)]
        marks = tuple(m + (("diverged",) if flag else ()) for m, flag in zip(s.marks, flags, strict=True))
        out.append(replace(s, marks=marks))
    return out


# --------------------------------------------------------------------------- the numbers as CSV and JSON

CSV_COLUMNS = ("pass", "rank", "label", "kind", "name", "grad_norm", "update_ratio", "marks")


def number_text(x: float | None) -> str:
    """A float as its shortest exact text (repr: reads back as the same float), 'nan'/'inf', '' for None."""
    if x is None:
        return ""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


def to_csv(line: Timeline) -> str:
    """Long ("tidy") CSV: one row per pass, rank and module or leaf — what pandas.read_csv and spreadsheets take."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    series = [*line.modules, *line.leaves]
    for k, index in enumerate(line.passes):
        for s in series:
            if s.grad_norm[k] is None and s.update_ratio[k] is None and not s.marks[k]:
                continue  # not in that pass (or on that rank)
            writer.writerow(
                (
                    index,
                    "" if s.rank is None else s.rank,
                    line.labels[k] or "",
                    s.kind,
                    s.name,
                    number_text(s.grad_norm[k]),
                    number_text(s.update_ratio[k]),
                    " ".join(s.marks[k]),
                )
            )
    return out.getvalue()


def _plain_number(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return number_text(x)


def _plain_series(s: Series) -> dict[str, Any]:
    return {
        "name": s.name,
        "kind": s.kind,
        "rank": s.rank,
        "leaves": list(s.leaves),
        "grad_norm": [_plain_number(x) for x in s.grad_norm],
        "update_ratio": [_plain_number(x) for x in s.update_ratio],
        "marks": [list(m) for m in s.marks],
    }


def to_json(line: Timeline, *, indent: int | None = 1) -> str:
    """The timeline as versioned JSON: columns (passes) and one object per series; NaN/Inf as "nan"/"inf"."""
    document = {
        "format": TIMELINE_FORMAT,
        "version": TIMELINE_VERSION,
        "passes": list(line.passes),
        "ranks": list(line.ranks),
        "labels": list(line.labels),
        "kept": list(line.kept),
        "flags": [list(f) for f in line.flags],
        "vanishing": line.vanishing,
        "exploding": line.exploding,
        "diverging": line.diverging,
        "modules": [_plain_series(s) for s in line.modules],
        "leaves": [_plain_series(s) for s in line.leaves],
    }
    return json.dumps(document, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
