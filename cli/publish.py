"""Write recorded passes into an output folder: every format per pass, per-step frames, and the index page."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tracer

from .index_page import PassEntry, index_html, index_row, live_index_head
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
    overview: list[str] = field(default_factory=list)  # the timeline of every pass (SCRIPT.timeline.svg, .csv)

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


def _write_index(folder: OutputFolder, plan: Plan, result: Published, title: str) -> None:
    note = None
    if result.graphviz_missing is not None:
        note = "Graphviz's dot was not found: pictures were not drawn; the .json and .dot files were written."
    result.index = index_name(plan.rank)
    folder.write_text(result.index, index_html(title, result.entries, note=note, overview=result.overview))


class PassWriter:
    """Writes each pass's files as the pass ends, while the script goes on (`gradtrace run`).

    Called by the recorder with each finished pass, in the thread that ran it. There, the pass's names are
    claimed in the manifest's journal and its .json (the record itself, which `gradtrace render` draws again) is
    written at once; its pictures are drawn by a few worker threads meanwhile (mostly waiting for Graphviz), and
    its row is appended to the index page when they are done, in pass order. So a script that dies — os._exit,
    SIGKILL, out of memory — keeps the record of every pass that ended, and all but the last few pictures;
    `finish()` waits for the pictures and writes the whole index and the manifest. The cost per pass does not
    grow with the number of passes before it.

    A failure to write never reaches the script: the first OutputError stops the writing and is raised by
    `finish()`; a pass that cannot be drawn (too large for Graphviz, --step beyond its steps) is listed in
    `Published.failures`.
    """

    def __init__(
        self, folder: OutputFolder, make_plan: Callable[[], Plan], wanted: Callable[[int], bool], name: str
    ) -> None:
        self.folder = folder
        self.make_plan = make_plan  # called at the first pass: the script may have joined a process group by then
        self.wanted = wanted
        self.title = name  # the page's title: the source's name, and the rank under torch.distributed
        self.plan: Plan | None = None
        self.result = Published()
        self.error: Exception | None = None  # what stopped the writing
        self._pid = os.getpid()  # a forked child's copy of this writer writes nothing: its passes are not ours
        self._lock = threading.RLock()  # a future already done calls back at once, under the lock
        self._pool: ThreadPoolExecutor | None = None
        self._queued: list[tuple[tracer.Trace, list[str], Future[list[str]]]] = []
        self._listed = 0  # how many of _queued have their row in the live index
        self._drawn: set[int] = set()  # the passes started (their index)
        self._finished = False

    def __call__(self, trace: tracer.Trace) -> None:
        if os.getpid() != self._pid or not self.wanted(trace.index):
            return
        self.add(trace)

    def add(self, trace: tracer.Trace) -> None:
        """Write this pass, whatever `wanted` says (run draws the last pass this way once the script has ended);
        a pass written already is not written again."""
        with self._lock:
            if self.error is not None or self._finished or trace.index in self._drawn:
                return
            self._drawn.add(trace.index)
            try:
                self._start_pass(trace)
            except Exception as exc:  # never into the user's code: finish() reports it
                self.error = exc

    def _begin(self) -> Plan:
        """At the first pass (or at the end, when no pass was drawn): the plan, the manifest and the live index."""
        if self.plan is None:
            self.plan = self.make_plan()
            self.folder.rank = self.plan.rank
            if self.plan.rank is not None:
                self.title += f" (rank {self.plan.rank})"
            self.folder.begin_stream()
            self.folder.claim([index_name(self.plan.rank)])
            self.folder.write_text(index_name(self.plan.rank), live_index_head(self.title), record=False)
            self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="gradtrace-writer")
        return self.plan

    def _start_pass(self, trace: tracer.Trace) -> None:
        plan = self._begin()
        assert self._pool is not None
        self.folder.claim(plan.names(trace))
        now: list[str] = []
        if "json" in plan.formats:
            now.append(
                _save(self.folder, f"{pass_stem(plan.source_stem, trace, plan.rank)}.json", trace, {}, self.result)
            )
        future = self._pool.submit(_write_pass, trace, self.folder, plan, self.result, skip=("json",))
        self._queued.append((trace, [n for n in now if n], future))
        future.add_done_callback(lambda _: self._list_done())

    def _list_done(self) -> None:
        """Append the rows of the passes whose files are all written, in pass order, to the live index."""
        with self._lock:
            rows = []
            while self._listed < len(self._queued) and self._queued[self._listed][2].done():
                trace, now, future = self._queued[self._listed]
                files = now + (future.result() if future.exception() is None else [])
                rows.append(index_row(PassEntry(trace, tuple(files))))
                self._listed += 1
            if rows and not self._finished and self.plan is not None:
                path = self.folder.folder / index_name(self.plan.rank)
                try:
                    with open(path, "a", encoding="utf-8", errors="backslashreplace") as page:
                        page.write("".join(rows))
                except OSError:
                    pass  # the live page is a convenience; finish() writes the whole page or reports why not

    def finish(self, reporter: Reporter, overview: Callable[[Plan], list[str]] | None = None) -> Published:
        """Wait for the pictures, then write the overview of every pass (`overview(plan)` writes it and gives the
        names), the whole index page and the manifest (also after an error)."""
        with self._lock:
            if self._finished:  # finished already (at os._exit)
                return self.result
            if overview is not None and self.error is None and os.getpid() == self._pid:
                try:
                    self._begin()
                except Exception as failure:
                    self.error = failure
            self._finished = True
            queued = list(self._queued)
        if self._pool is not None:
            for _, _, future in reporter.progress(queued, f"drawing {len(queued)} passes", len(queued)):
                wait([future])
            self._pool.shutdown(wait=True)
        for trace, now, future in sorted(queued, key=lambda q: q[0].index):  # threads may end passes out of order
            exc = future.exception()
            if exc is not None and self.error is None:
                self.error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
            files = now + (future.result() if exc is None else [])
            self.result.entries.append(PassEntry(trace, tuple(files)))
        if self.plan is not None:
            try:
                if overview is not None and self.error is None:
                    self.result.overview = overview(self.plan)
                _write_index(self.folder, self.plan, self.result, self.title)
            finally:
                self.result.stale = self.folder.finish(replace_run=self.error is None)
        if self.error is not None:
            raise self.error
        return self.result


def _write_pass(
    trace: tracer.Trace, folder: OutputFolder, plan: Plan, result: Published, *, skip: tuple[str, ...] = ()
) -> list[str]:
    stem = pass_stem(plan.source_stem, trace, plan.rank)
    written = []
    for fmt in plan.formats:
        if fmt in skip:
            continue
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
                folder.claim([f"{stem}.{fmt}"])
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
