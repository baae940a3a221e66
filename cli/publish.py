"""Write recorded passes into an output folder: every format per pass, per-step frames, and the index page."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tracer

from .index_page import PassEntry, index_html
from .outputs import NEEDS_GRAPHVIZ, OutputFolder, index_name, pass_stem
from .report import Reporter

WORKERS = min(4, os.cpu_count() or 1)
FRAME_FORMATS = ("svg", "png", "pdf", "dot")  # --steps draws one picture per step in these (.html always steps)


@dataclass
class Published:
    """What was written: one entry per pass, the index page, earlier files removed, and what failed."""

    entries: list[PassEntry] = field(default_factory=list)
    index: str | None = None
    stale: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    graphviz_missing: tracer.GraphvizMissingError | None = None

    @property
    def files(self) -> list[str]:
        return [f for e in self.entries for f in e.files]


@dataclass(frozen=True)
class Plan:
    """What to write for each pass."""

    source_stem: str
    formats: tuple[str, ...]
    drawing: dict[str, Any]
    steps: bool = False
    rank: int | None = None

    def names(self, trace: tracer.Trace) -> list[str]:
        stem = pass_stem(self.source_stem, trace, self.rank)
        names = [f"{stem}.{fmt}" for fmt in self.formats]
        if self.steps:
            names += [n for fmt in self.formats if fmt in FRAME_FORMATS for n in frame_names(f"{stem}.{fmt}", trace)]
        return names


def frame_names(name: str, trace: tracer.Trace) -> list[str]:
    """The renderer's names for the per-step frames of `name`: pass1.svg -> pass1-step01.svg, ..."""
    from tracer.render.frames import frame_paths

    return [p.name for p in frame_paths(Path(name), len(trace.steps))] if trace.steps else []


def publish(
    traces: Sequence[tracer.Trace], folder: OutputFolder, plan: Plan, reporter: Reporter, *, title: str
) -> Published:
    """Write every pass in every format, then the index page and the manifest; never a foreign file."""
    result = Published()
    planned = [n for t in traces for n in plan.names(t)] + [index_name(plan.rank)]
    folder.begin(planned)
    # Drawing is mostly waiting for Graphviz's dot processes: draw several passes at once, keep their order.
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        written = pool.map(lambda t: _write_pass(t, folder, plan, result), traces)
        for trace, files in zip(
            traces, reporter.progress(written, f"writing {len(traces)} passes", len(traces)), strict=True
        ):
            result.entries.append(PassEntry(trace, tuple(files)))
    note = None
    if result.graphviz_missing is not None:
        note = "Graphviz's dot was not found: pictures were not drawn; the .json and .dot files were written."
    result.index = index_name(plan.rank)
    folder.write_text(result.index, index_html(title, result.entries, note=note))
    result.stale = folder.finish(replace_run=True)
    return result


def _write_pass(trace: tracer.Trace, folder: OutputFolder, plan: Plan, result: Published) -> list[str]:
    stem = pass_stem(plan.source_stem, trace, plan.rank)
    written = []
    for fmt in plan.formats:
        if fmt in NEEDS_GRAPHVIZ and result.graphviz_missing is not None:
            continue
        written.append(_save(folder, f"{stem}.{fmt}", trace, plan.drawing, result))
        if plan.steps and fmt in FRAME_FORMATS and trace.steps and written[-1]:
            written += _save_frames(folder, f"{stem}.{fmt}", trace, plan.drawing, result)
    if result.graphviz_missing is not None:
        # Without Graphviz every pass is still written as JSON (`gradtrace render` draws it later) and DOT
        # (`dot -Tsvg` draws it once Graphviz is installed).
        for fmt in ("json", "dot"):
            if fmt not in plan.formats:
                folder.check_free([f"{stem}.{fmt}"])
                written.append(_save(folder, f"{stem}.{fmt}", trace, plan.drawing, result))
    return [w for w in written if w]


def _save_frames(
    folder: OutputFolder, name: str, trace: tracer.Trace, drawing: dict[str, Any], result: Published
) -> list[str]:
    """The per-step frames; a missing Graphviz or too many steps is noted in `result` instead of raised."""
    try:
        return folder.save_frames(name, trace, drawing)
    except tracer.GraphvizMissingError as exc:
        result.graphviz_missing = exc
    except tracer.GradtraceError as exc:  # more steps than max_frames
        result.failures.append(f"pass {trace.index}: step frames of {name}: {exc}")
    return []


def _save(folder: OutputFolder, name: str, trace: tracer.Trace, options: dict[str, Any], result: Published) -> str:
    """Write one file; a missing Graphviz or a renderer refusal is noted in `result` instead of raised."""
    try:
        folder.save_trace(name, trace, options)
    except tracer.GraphvizMissingError as exc:
        result.graphviz_missing = exc
        return ""
    except (tracer.GradtraceError, ValueError) as exc:  # e.g. the graph is larger than the renderer lays out,
        result.failures.append(f"pass {trace.index}: {name}: {exc}")  # or --step is beyond this pass's steps
        return ""
    return name
