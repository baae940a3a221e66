"""Write a run's gradients to TensorBoard through torch.utils.tensorboard: norms as scalars, kept values as histograms.

Scalars come from every pass's digest: `grad_norm/<leaf>` (the leaf's gradient norm in that pass) and, where the
digest saw the parameter change, `update_ratio/<leaf>` (‖Δw‖ / ‖w‖); the step is the pass index. Histograms
(`grad/<leaf>`) need the gradient's values, which only a kept Trace holds, and only for the leaves whose values it
kept (at most max_values elements, or every value with capture="full"): a histogram is built from exactly those
values (NaN and Inf left out, and counted in a note). A leaf whose values were not kept gets no histogram, and the
export says so. Under torch.distributed each rank writes into a folder of its own, LOGDIR/rank<N>.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..model.digest import PassDigest
from ..model.errors import GradtraceError
from ..model.records import Trace

SCALAR_TAG = "grad_norm/{}"
RATIO_TAG = "update_ratio/{}"
HISTOGRAM_TAG = "grad/{}"


@dataclass(frozen=True, kw_only=True)
class TensorBoardExport:
    """What was written: where, how many scalars and histograms, and why some histograms are missing."""

    logdirs: tuple[Path, ...]  # one per rank (the logdir itself without torch.distributed)
    scalars: int
    histograms: int
    notes: tuple[str, ...]

    def __str__(self) -> str:
        where = ", ".join(str(p) for p in self.logdirs) or "(nothing)"
        return f"{self.scalars} scalars and {self.histograms} histograms in {where}" + "".join(
            f"; {note}" for note in self.notes
        )


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise GradtraceError(
            f"writing TensorBoard files needs the tensorboard package, which is not installed ({exc}); install it "
            "with pip install 'gradtrace[tensorboard]' (or pip install tensorboard)"
        ) from None
    return SummaryWriter


def write_tensorboard(
    logdir: str | Path, digests: Iterable[PassDigest], traces: Iterable[Trace] = (), *, histograms: bool = True
) -> TensorBoardExport:
    """Write the scalars of every digest and the histograms of every kept trace's leaves into `logdir`."""
    writer_class = _summary_writer()
    root = Path(logdir)
    by_rank: dict[int | None, list[PassDigest]] = {}
    for d in digests:
        by_rank.setdefault(d.rank, []).append(d)
    traces_by_rank: dict[int | None, list[Trace]] = {}
    for t in traces:
        traces_by_rank.setdefault(t.rank, []).append(t)
    ranks = sorted(set(by_rank) | set(traces_by_rank), key=lambda r: -1 if r is None else r)
    several = any(r is not None for r in ranks)
    scalars = hists = 0
    notes: list[str] = []
    folders = []
    for rank in ranks:
        folder = root / f"rank{rank}" if several and rank is not None else root
        folders.append(folder)
        writer = writer_class(log_dir=str(folder))
        try:
            scalars += _scalars(writer, by_rank.get(rank, []))
            if histograms:
                written, said = _histograms(writer, traces_by_rank.get(rank, []))
                hists += written
                notes += [n for n in said if n not in notes]
        finally:
            writer.close()
    if histograms and not hists and not notes:
        notes.append("no histograms: no pass was kept whole (histograms are built from a kept pass's values)")
    return TensorBoardExport(logdirs=tuple(folders), scalars=scalars, histograms=hists, notes=tuple(notes))


def _scalars(writer: Any, digests: list[PassDigest]) -> int:
    count = 0
    for d in sorted(digests, key=lambda d: d.index):
        for leaf in d.leaves:
            if leaf.grad_norm is not None:
                writer.add_scalar(SCALAR_TAG.format(leaf.name), leaf.grad_norm, global_step=d.index)
                count += 1
            if leaf.update_norm is not None and leaf.value_norm:
                writer.add_scalar(RATIO_TAG.format(leaf.name), leaf.update_norm / leaf.value_norm, global_step=d.index)
                count += 1
    return count


def _histograms(writer: Any, traces: list[Trace]) -> tuple[int, list[str]]:
    count = 0
    not_kept: dict[str, int] = {}  # leaf -> elements, for the note
    nonfinite: dict[str, int] = {}
    for t in sorted(traces, key=lambda t: t.index):
        for name, leaf in t.leaves.items():
            if leaf.grad is None:
                continue
            values = leaf.grad.flat()
            if values is None:
                not_kept[name] = leaf.grad.numel
                continue
            finite = values[np.isfinite(values)]
            if finite.size < values.size:
                nonfinite[name] = nonfinite.get(name, 0) + int(values.size - finite.size)
            if finite.size:
                writer.add_histogram(HISTOGRAM_TAG.format(name), finite, global_step=t.index)
                count += 1
    notes = []
    if not_kept:
        names = ", ".join(f"{n} ({size:,} elements)" for n, size in list(not_kept.items())[:5])
        more = f" and {len(not_kept) - 5} more" if len(not_kept) > 5 else ""
        limit = next((t.options.max_values for t in traces), 0)
        notes.append(
            f"no histogram for {names}{more}: only the statistics of their gradients were kept (values are kept "
            f"for at most max_values={limit} elements); record with capture='full' for histograms of every leaf"
        )
    if nonfinite:
        total = sum(nonfinite.values())
        notes.append(
            f"{total:,} NaN/Inf gradient value{'s' if total != 1 else ''} left out of the histograms of "
            f"{', '.join(list(nonfinite)[:5])} (the grad_norm scalars show them as NaN/Inf)"
        )
    return count, notes
