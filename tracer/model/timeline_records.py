"""The timeline of a run: gradient norms and update ratios per leaf and per module across passes, as plain records.

Built from the passes' digests by tracer/analyse/timeline.py; drawn by tracer/render/timeline_chart.py and written
as SVG, CSV or JSON through the seam (model/seam.py), so a Timeline shows itself in a notebook like a Trace does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .seam import upstairs

SeriesKind = Literal["leaf", "module"]
CellMark = Literal["nan", "inf", "vanishing", "exploding", "diverged"]


@dataclass(frozen=True, kw_only=True)
class Series:
    """One leaf or module (of one rank) across the passes: one entry per column of the Timeline.

    `grad_norm[k]` is None when it got no gradient in the k-th pass (or the pass did not digest it); NaN/Inf in
    the gradient show as float('nan') / float('inf'). `update_ratio[k]` is ‖Δw‖ / ‖w‖, the step the optimizer took
    between the previous digested pass and this one, over the parameter's size (None where unknown). `marks[k]`
    lists what was wrong in that pass (NaN, Inf, vanishing, exploding; diverged: this rank apart from the others).
    """

    name: str
    kind: SeriesKind
    rank: int | None
    leaves: tuple[str, ...]  # the leaves it sums (a leaf series: itself)
    grad_norm: tuple[float | None, ...]
    update_ratio: tuple[float | None, ...]
    marks: tuple[tuple[CellMark, ...], ...]

    @property
    def title(self) -> str:
        """The name as a row of the chart and a column of the CSV: with its rank when there are several."""
        return self.name if self.rank is None else f"{self.name} [rank {self.rank}]"


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """Gradient flow over time: one column per digested pass, one Series per leaf and per module."""

    passes: tuple[int, ...]  # the pass index of each column (Trace.index / PassDigest.index), ascending
    ranks: tuple[int | None, ...]  # the ranks that recorded passes, ascending; (None,) without torch.distributed
    labels: tuple[str | None, ...]  # each column's pass label (the first rank's)
    kept: tuple[bool, ...]  # whether a full Trace of the column's pass was kept (and can be drawn), on any rank
    flags: tuple[tuple[str, ...], ...]  # the digests' health flags of each column's pass, over every rank
    leaves: tuple[Series, ...]
    modules: tuple[Series, ...]
    vanishing: float  # a module below this share of the pass's largest module norm is marked vanishing
    exploding: float  # a module above this multiple of its own median norm over the run is marked exploding
    diverging: float  # a rank whose norm is this factor away from the ranks' median is marked diverged

    def __len__(self) -> int:
        return len(self.passes)

    def __repr__(self) -> str:
        flagged = sum(1 for f in self.flags if f)
        return (
            f"<tracer.Timeline: {len(self.passes)} pass{'es' if len(self.passes) != 1 else ''}, "
            f"{len(self.modules)} module{'s' if len(self.modules) != 1 else ''}, "
            f"{len(self.leaves)} lea{'ves' if len(self.leaves) != 1 else 'f'}, {flagged} flagged>"
        )

    @property
    def steps(self) -> tuple[int, ...]:
        """The pass index of each column (the x axis of the chart): an alias of `passes`."""
        return self.passes

    def series(self, name: str, *, rank: int | None = None) -> Series:
        """The module or leaf series of this name (modules first), of `rank` when ranks were recorded."""
        for s in (*self.modules, *self.leaves):
            if s.name == name and (rank is None or s.rank == rank):
                return s
        names = sorted({s.name for s in (*self.modules, *self.leaves)})
        raise KeyError(f"no module or leaf {name!r} in this timeline (it has {names[:10]})")

    def column(self, index: int) -> int:
        """The column of pass `index`."""
        try:
            return self.passes.index(index)
        except ValueError:
            have = f"passes {self.passes[0]}..{self.passes[-1]}" if self.passes else "no passes"
            raise KeyError(f"pass {index} is not in this timeline (it has {have})") from None

    def svg(self, **options: Any) -> str:
        """The chart: a heatmap of module gradient norms (modules × passes, log colour) and lines for a few."""
        return upstairs().timeline_svg(self, **options)

    def to_csv(self) -> str:
        """One row per pass (and rank), the gradient norm and update ratio of every module and leaf as columns."""
        return upstairs().timeline_csv(self)

    def to_json(self, *, indent: int | None = 1) -> str:
        """The numbers as JSON (NaN and Inf as the strings "nan", "inf"; None as null)."""
        return upstairs().timeline_json(self, indent=indent)

    def save(self, path: str | Path, **options: Any) -> Path:
        """Write the chart (.svg) or the numbers (.csv, .json), picked by the file's suffix."""
        return upstairs().timeline_save(self, path, **options)  # type: ignore[no-any-return]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"image/svg+xml": self.svg(), "text/plain": repr(self)}
