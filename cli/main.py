"""The `gradtrace` command: a click group whose commands parse, call the tracer library, write and report.

Adding a command is one function decorated with `@cli.command()`; the option groups in options.py are shared.
Heavy imports (tracer, and with it torch) happen inside the commands, so `gradtrace --help` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import (
    RECORDER_OPTIONS,
    drawing_from,
    drawing_options,
    format_option,
    pass_option,
    picked,
    recorder_options,
    report_options,
)
from .passes import PassRange, missing, wanted
from .report import Reporter, plural, table

if TYPE_CHECKING:
    import tracer

    from .recording import Recording

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
# `gradtrace run [OPTIONS] SCRIPT ARGS...`: everything after SCRIPT belongs to the script, as with `python`.
SCRIPT_CONTEXT = {**CONTEXT, "allow_interspersed_args": False}
OWN_OPTIONS = ("-o", "--outdir", "-f", "--format", "--pass", "--steps", "--force", "-q", "--quiet", "--json")


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import torch

    import tracer

    click.echo(f"gradtrace {tracer.__version__} (torch {torch.__version__}, Python {sys.version.split()[0]})")
    ctx.exit()


@click.group(context_settings=CONTEXT)
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version, help="Show the version."
)
def cli() -> None:
    """gradtrace: see PyTorch's backward pass.

    Records every gradient that flows through the autograd graph (the v arriving at each node, its local
    Jacobian J, the vᵀJ it sends on, what lands in each .grad) and draws it. Start with `gradtrace run`.
    """


@contextmanager
def clear_errors(reporter: Reporter) -> Iterator[None]:
    """Our own failures (bad input, unwritable folder, foreign trace) become one `Error: ...` line, exit 1.

    With --json, stdout also gets a JSON document saying what failed, so a machine reading it is never left
    with nothing.
    """
    import tracer

    from .outputs import OutputError
    from .recording import SourceError

    try:
        yield
    except click.ClickException as exc:
        reporter.failed(exc.format_message(), exc.exit_code)
        raise
    except (SourceError, OutputError, tracer.GradtraceError) as exc:
        reporter.failed(str(exc), 1)
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        message = f"{exc.args[-1] if exc.args else exc} (check the path)"
        reporter.failed(message, 1)
        raise click.ClickException(message) from None


def _check_drawing(drawing: dict[str, Any]) -> None:
    """Let the renderer check the drawing options before any work (it names the value and the allowed set)."""
    from tracer.render_options import parse_options

    try:
        parse_options(drawing)
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None


def _warn_own_options(args: tuple[str, ...], script: Path, reporter: Reporter) -> None:
    """Options after SCRIPT go to the script (as with python); say so when one of them looks like ours."""
    ours = [a for a in args if a.split("=", 1)[0] in OWN_OPTIONS]
    if ours:
        reporter.notice(
            f"{', '.join(ours)} after {script.name} went to the script, as with `python {script.name} ...`; "
            "gradtrace's own options go before the script: gradtrace run [OPTIONS] SCRIPT [ARGS]..."
        )


def _record(source: Path, args: tuple[str, ...], options: dict[str, Any], reporter: Reporter) -> Recording:
    """Run the script or notebook inside tracer.record(); show its traceback (ours removed) when it raised."""
    from .recording import record_source
    from .tracebacks import show_user_exception

    _warn_own_options(args, source, reporter)
    with reporter.user_output():
        recording = record_source(source, list(args), picked(options, RECORDER_OPTIONS), notify=reporter.notice)
    if recording.outcome.error is not None:
        show_user_exception(recording.outcome.error)
    return recording


def _no_pass(ctx: click.Context, recording: Recording, reporter: Reporter) -> None:
    """No backward pass at all: say so and end with the script's own exit code, or 1."""
    name = recording.source.name
    stopped = " before it stopped" if recording.outcome.exit_code else ""
    kind = "notebook" if recording.is_notebook else "script"
    main_block = "" if recording.is_notebook else " (and that its `if __name__ == '__main__':` block runs)"
    message = (
        f"{name} ran without a backward pass{stopped}: nothing to record. gradtrace records every "
        "Tensor.backward(), torch.autograd.backward() and torch.autograd.grad() call; check that the "
        f"{kind} reaches one{main_block}"
    )
    code = recording.outcome.exit_code or 1
    reporter.error(message)
    reporter.failed(message, code)
    ctx.exit(code)


def _selected(traces: list[tracer.Trace], passes: tuple[tuple[PassRange, ...], ...], reporter: Reporter) -> list[Any]:
    selection = tuple(r for group in passes for r in group)
    chosen = [t for t in traces if wanted(t.index, selection)]
    highest = max((t.index for t in traces), default=0)
    absent = missing(selection, highest)
    made = f"there {'was' if highest == 1 else 'were'} {plural(highest, 'backward pass', 'backward passes')}"
    if not chosen:
        raise click.ClickException(
            f"no pass {', '.join(absent) or 'selected'}: {made} (choose with --pass 1-{highest})"
        )
    if absent:
        reporter.notice(f"no pass {', '.join(absent)}: {made}")
    return chosen


def _pass_rows(traces: list[tracer.Trace], files: dict[int, tuple[str, ...]] | None = None) -> str:
    from .index_page import short_source, split_frames

    rows = []
    for t in traces:
        state = "" if t.complete else " (incomplete)"
        row = [str(t.index), t.label or "", t.kind + state, str(len(t.steps)), ", ".join(t.leaves) or "–"]
        row.append(short_source(t.source) if t.source else "–")
        if files is not None:
            own, frames = split_frames(files.get(t.index, ()))
            row.append(" ".join(own) + (f" + {plural(len(frames), 'step picture')}" if frames else "") or "–")
        rows.append(row)
    header = ["pass", "label", "kind", "steps", "leaves", "started at"] + (["files"] if files is not None else [])
    return table(rows, header)


def _describe(trace: tracer.Trace) -> dict[str, Any]:
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


@cli.command(context_settings=SCRIPT_CONTEXT)
@click.argument("source", metavar="SCRIPT.py|NOTEBOOK.ipynb", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "-o",
    "--outdir",
    type=click.Path(path_type=Path),
    help="Folder for the outputs. [default: SCRIPT_gradtrace/ next to the script]",
)
@format_option
@pass_option
@click.option(
    "--steps",
    is_flag=True,
    help="Also draw each vector-Jacobian step as its own picture (svg, png, pdf, dot); the .html page always steps.",
)
@click.option("--force", is_flag=True, help="Replace existing files that gradtrace did not write.")
@recorder_options
@drawing_options
@report_options
@click.pass_context
def run(
    ctx: click.Context,
    /,
    source: Path,
    args: tuple[str, ...],
    outdir: Path | None,
    formats: tuple[str, ...],
    passes: tuple[tuple[PassRange, ...], ...],
    steps: bool,
    force: bool,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Run a script (or a notebook's code cells) and draw every backward pass it makes.

    The script runs exactly as `python SCRIPT.py ARGS` would (same sys.argv, __name__ == "__main__", its folder
    first on sys.path, its exit code). A notebook's code cells run in order in one namespace; IPython magics and
    shell lines are skipped. One file per pass and format goes into OUTDIR, with an index.html linking them.
    Everything after SCRIPT is passed to it; gradtrace's options go before SCRIPT.

    Under torch.distributed (e.g. torchrun) every rank writes its own files, with the rank in their names.
    """
    from .outputs import OutputFolder, default_outdir, parse_formats
    from .publish import Plan, publish
    from .ranks import current_rank
    from .recording import check_source

    reporter = Reporter(quiet=quiet, as_json=as_json)
    try:
        chosen_formats = parse_formats(formats)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--format'") from None
    drawing = drawing_from(options)
    _check_drawing(drawing)
    with clear_errors(reporter):
        check_source(source)
        folder = OutputFolder(outdir or default_outdir(source), source.name, rank=current_rank(), force=force)
        folder.check_before_run(source.stem)
        recording = _record(source, args, options, reporter)
        if not recording.traces:
            _no_pass(ctx, recording, reporter)
        traces = _selected(recording.traces, passes, reporter)
        folder.rank = current_rank()  # the script may have joined a process group
        plan = Plan(source.stem, chosen_formats, drawing, steps=steps, rank=folder.rank)
        title = source.name + ("" if folder.rank is None else f" (rank {folder.rank})")
        published = publish(traces, folder, plan, reporter, title=title)
    outcome = recording.outcome
    if outcome.error is not None or outcome.exit_code:
        what = f"raised {type(outcome.error).__name__}" if outcome.error else f"exited with code {outcome.exit_code}"
        where = f" cell {recording.failed_cell}" if recording.failed_cell else ""
        reporter.notice(f"{source.name}{where} {what}; the passes recorded before that are written")
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
    reporter.line(_pass_rows(traces, files))
    reporter.line(
        f"\n{plural(len(traces), 'pass', 'passes')} of {source.name} in {folder.folder}/  "
        f"open {folder.folder / (published.index or '')}"
    )
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
            "passes": [{**_describe(e.trace), "files": list(e.files)} for e in published.entries],
            "recorded": len(recording.traces),
            "index": published.index,
            "removed": published.stale,
        }
    )
    ctx.exit(code)


@cli.command()
@click.argument("trace_file", metavar="TRACE.json", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The file to write; its suffix picks the format (.svg .png .pdf .dot .html .json). [default: TRACE.svg]",
)
@click.option("--steps", is_flag=True, help="Also draw each step on its own (frames; the HTML page steps through).")
@click.option("--step", type=click.IntRange(min=1), metavar="K", help="Draw the graph as it is at step K.")
@click.option("--force", is_flag=True, help="Replace an existing file that gradtrace did not write.")
@drawing_options
@report_options
def render(
    trace_file: Path,
    output: Path | None,
    steps: bool,
    step: int | None,
    force: bool,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Draw a saved trace (written by `gradtrace run` or Trace.save) again, with other drawing options."""
    import tracer

    from .outputs import FORMATS, OutputFolder
    from .publish import FRAME_FORMATS, frame_names

    reporter = Reporter(quiet=quiet, as_json=as_json)
    drawing = drawing_from(options)
    if step is not None:
        drawing["step"] = step
    _check_drawing(drawing)
    target = output or trace_file.with_suffix(".svg")
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise click.BadParameter(
            f"unknown output format: {target.suffix or '(no suffix)'!r} (must be one of {['.' + f for f in FORMATS]})",
            param_hint="'-o'",
        )
    with clear_errors(reporter):
        trace = tracer.load(trace_file)
        folder = OutputFolder(target.parent, trace_file.name, force=force)
        frames = frame_names(target.name, trace) if steps and fmt in FRAME_FORMATS else []
        folder.begin([target.name, *frames])
        try:
            folder.save_trace(target.name, trace, drawing)
            if frames:
                folder.save_frames(target.name, trace, drawing)
        except ValueError as exc:  # an option that does not fit this trace, e.g. --step beyond its steps
            if isinstance(exc, tracer.GradtraceError):
                raise
            raise click.UsageError(str(exc)) from None
        finally:
            folder.finish(replace_run=False)
    names = [target.name, *frames]
    reporter.line(f"wrote {', '.join(str(target.parent / n) for n in names)}")
    reporter.emit({"command": "render", "source": str(trace_file), "files": [str(target.parent / n) for n in names]})


@cli.command(context_settings=SCRIPT_CONTEXT)
@click.argument("source", metavar="TRACE.json|SCRIPT.py|NOTEBOOK.ipynb", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_option
@recorder_options
@report_options
@click.pass_context
def analyze(
    ctx: click.Context,
    /,
    source: Path,
    args: tuple[str, ...],
    passes: tuple[tuple[PassRange, ...], ...],
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Print the summary and health report of a saved trace, or of every backward pass of a script.

    A script or notebook runs as with `gradtrace run` (arguments after it go to it); nothing is written.
    """
    import tracer

    from .recording import RUNNABLE, check_source

    reporter = Reporter(quiet=quiet, as_json=as_json)
    code = 0
    with clear_errors(reporter):
        if source.suffix.lower() == ".json":
            traces = [tracer.load(source)]
        elif source.suffix.lower() in RUNNABLE:
            check_source(source)
            recording = _record(source, args, options, reporter)
            if not recording.traces:
                _no_pass(ctx, recording, reporter)
            code = recording.outcome.exit_code
            traces = recording.traces
        else:
            raise click.ClickException(
                f"cannot analyze {str(source)!r}: give a saved trace (.json), a Python script (.py) or a notebook "
                "(.ipynb)"
            )
        traces = _selected(traces, passes, reporter)
    reporter.line("\n\n".join(trace.summary() for trace in traces).rstrip("\n"))
    reporter.emit(
        {
            "command": "analyze",
            "source": str(source),
            "exit_code": code,
            "passes": [{**_describe(t), "summary": tracer.summary_data(t)} for t in traces],
        }
    )
    ctx.exit(code)


def main() -> None:
    """The console script `gradtrace`."""
    cli(prog_name="gradtrace")
