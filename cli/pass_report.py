"""What the commands print about passes: the table for people and the JSON description for machines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .index_page import short_source, split_frames
from .report import Reporter, plural, table

if TYPE_CHECKING:
    import tracer

    from .outputs import OutputFolder
    from .publish import Published
    from .recording import Recording


def pass_rows(traces: list[tracer.Trace], files: dict[int, tuple[str, ...]] | None = None) -> str:
    """One row per pass: number, label, kind, steps, leaves, where it started, and (when given) its files."""
    rows = []
    for t in traces:
        state = "" if t.complete else " (incomplete)"
        row = [str(t.index), t.label or "", t.kind + state, str(len(t.steps)), leaf_list(list(t.leaves))]
        row.append(short_source(t.source) if t.source else "–")
        if files is not None:
            own, frames = split_frames(files.get(t.index, ()))
            row.append(" ".join(own) + (f" + {plural(len(frames), 'step picture')}" if frames else "") or "–")
        rows.append(row)
    header = ["pass", "label", "kind", "steps", "leaves", "started at"] + (["files"] if files is not None else [])
    return table(rows, header)


def describe(trace: tracer.Trace) -> dict[str, Any]:
    """The pass in a few JSON-ready fields (the full data is the trace JSON; the analysis is summary_data)."""
    return {
        "index": trace.index,
        "label": trace.label,
        "kind": trace.kind,
        "complete": trace.complete,
        "error": trace.error,
        "source": trace.source,
        "steps": len(trace.steps),
        "leaves": list(trace.leaves),
    }


def report_run(
    reporter: Reporter,
    recording: Recording,
    published: Published,
    folder: OutputFolder,
    *,
    lines: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> int:
    """Tell how the run went (the script's end, what could not be drawn, the passes and files, then `lines`: what
    was drawn and summarised, TensorBoard); `extra` joins the JSON document. The exit code."""
    source = recording.source
    traces = [e.trace for e in published.entries]
    outcome = recording.outcome
    if outcome.error is not None or outcome.exit_code:
        what = f"raised {type(outcome.error).__name__}" if outcome.error else f"exited with code {outcome.exit_code}"
        where = f" cell {recording.failed_cell}" if recording.failed_cell else ""
        reporter.notice(f"{recording.name}{where} {what}; the passes recorded before that are written")
    from .common import unrecorded

    not_recorded = unrecorded(recording)
    if not_recorded is not None:
        reporter.warning(not_recorded)
    for failure in published.failures:
        reporter.error(failure)
    if published.graphviz_missing is not None:
        example = next((f for f in published.files if f.endswith(".json")), "PASS.json")
        reporter.error(
            f"{published.graphviz_missing} The passes were written as .json and .dot instead; once Graphviz is "
            f"installed, run gradtrace again, or draw one with `gradtrace render {folder.folder / example} "
            f"-o {Path(example).with_suffix('.svg').name}`."
        )
    files = {e.trace.index: e.files for e in published.entries}
    reporter.line(pass_rows(traces, files))
    reporter.line(
        f"\n{plural(len(traces), 'pass', 'passes')} of {recording.name} in {folder.folder}/  "
        f"open {folder.folder / (published.index or '')}"
    )
    for text in lines:
        reporter.line(text)
    if published.stale:
        reporter.line(f"removed {plural(len(published.stale), 'file')} of the previous run that this run did not write")
    code = outcome.exit_code or (1 if published.failures or published.graphviz_missing else 0)
    reporter.emit(
        {
            "command": "run",
            "source": str(source),
            "outdir": str(folder.folder),
            "rank": folder.rank,
            "exit_code": code,
            "script_exit_code": outcome.exit_code,
            "script_error": None if outcome.error is None else f"{type(outcome.error).__name__}: {outcome.error}",
            "failed_cell": recording.failed_cell,
            "passes": [{**describe(e.trace), "files": list(e.files)} for e in published.entries],
            "recorded": len(recording.traces),
            "unrecorded": list(recording.unrecorded),
            "index": published.index,
            "removed": published.stale,
            **(extra or {}),
        }
    )
    return code


def leaf_list(names: list[str], shown: int = 4) -> str:
    """The leaves' names for a table cell: a model's dozens of parameters would make it thousands wide."""
    if not names:
        return "–"
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f", … (+{more} more)" if more > 0 else "")
