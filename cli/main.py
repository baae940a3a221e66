"""The `gradtrace` command: a click group whose commands parse, call the tracer library, write and report.

Adding a command is one function decorated with `@cli.command()`; the option groups in options.py are shared.
Heavy imports (tracer, and with it torch) happen inside the commands, so `gradtrace --help` is instant.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import OneLineUsageError, check_drawing, clear_errors, no_pass, record, selected, unrecorded
from .options import drawing_from, drawing_options, format_option, pass_option, recorder_options, report_options
from .overview import DEFAULT_PASSES, PassSelectionType
from .passes import PassRange
from .report import Reporter, plural, table
from .why import why

if TYPE_CHECKING:
    from tracer.model.pass_selection import PassSelection

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
# `gradtrace run SCRIPT [ARGS]... -o OUTDIR`: gradtrace's options may stand before or after SCRIPT; anything else,
# and everything after `--`, is the script's (`gradtrace run train.py -o out -- -o model.pt`).
SCRIPT_CONTEXT = {**CONTEXT, "ignore_unknown_options": True}


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
    "--passes",
    "keep",
    type=PassSelectionType(),
    default=None,
    help="Which passes to draw: a comma list of first, last, flagged (of passes with NaN/Inf, vanishing or exploding "
    "gradients, the first with each flag; first-flagged keeps only those whole), every:N, pass numbers (7) and "
    "ranges (3-7), all or none; every pass is "
    f"summarised in the overview (SCRIPT.timeline.svg, .csv) either way. [default: {DEFAULT_PASSES}; all with --pass]",
)
@click.option(
    "--tensorboard",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Also write TensorBoard event files into DIR: every pass's gradient norms as scalars (grad_norm/LEAF), "
    "and histograms of the drawn passes' gradient values where they were kept. Needs gradtrace[tensorboard].",
)
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
    keep: PassSelection | None,
    tensorboard: Path | None,
    steps: bool,
    force: bool,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Run a script (or a notebook's code cells) and draw its backward passes.

    The script runs exactly as `python SCRIPT.py ARGS` would (same sys.argv, __name__ == "__main__", its folder
    first on sys.path, its exit code). A notebook's code cells run in order in one namespace; IPython magics and
    shell lines are skipped. One file per drawn pass and format goes into OUTDIR, with an index.html linking them;
    --passes chooses which passes are drawn (by default the first, the last and the first with each health flag);
    every pass is summarised in the overview, SCRIPT.timeline.svg (gradient norms per module over passes) and .csv.
    gradtrace's options may come before or after SCRIPT; every other argument is passed to the script, and so is
    everything after `--` (for script options that share a name with gradtrace's: `... -o out -- -o model.pt`).

    Under torch.distributed (e.g. torchrun) every rank writes its own files, with the rank in their names.
    """
    import tracer
    from tracer.model.pass_selection import parse_pass_selection

    from .outputs import OutputFolder, default_outdir, display_name, file_stem, parse_formats
    from .overview import DrawChoice, described, drawn_line, overview_names, write_overview
    from .pass_report import report_run
    from .passes import wanted
    from .publish import PassWriter, Plan
    from .ranks import current_rank
    from .recording import check_source

    reporter = Reporter(quiet=quiet, as_json=as_json)
    try:
        chosen_formats = parse_formats(formats)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--format'") from None
    drawing = drawing_from(options)
    check_drawing(drawing)
    with clear_errors(reporter):
        check_source(source)
        name, stem = display_name(source.name), file_stem(source)
        # absolute: passes are written while the script runs, and it may change the working folder
        target = Path(os.path.abspath(outdir or default_outdir(source)))
        folder = OutputFolder(target, name, rank=current_rank(), force=force)
        folder.check_before_run(stem)
        selection = tuple(r for group in passes for r in group)
        # --pass alone keeps its old meaning (draw these passes): every pass is kept, --pass picks among them
        chosen = keep or parse_pass_selection("all" if selection else DEFAULT_PASSES)
        draw = DrawChoice(chosen, lambda index: wanted(index, selection))
        # each pass is written as it ends; the rank is read then (the script may have joined a process group)
        writer = PassWriter(
            folder,
            lambda: Plan(stem, chosen_formats, drawing, steps=steps, rank=current_rank()),
            draw,
            name,
        )

        def finish_at_os_exit(code: int) -> None:
            """The script ends the process at once: finish the files, say so (no pass table: no time for it)."""
            try:
                done = writer.finish(reporter)
                reporter.notice(
                    f"{name} ended the process with os._exit({code}); the "
                    f"{plural(len(done.entries), 'pass', 'passes')} recorded before are written in {folder.folder}/"
                )
            except Exception as exc:
                reporter.error(f"{exc} (the files written before are kept in {folder.folder}/)")
            with contextlib.redirect_stdout(sys.__stdout__ or sys.stdout):  # --json sent the script's to stderr
                reporter.emit(
                    {
                        "command": "run",
                        "source": str(source),
                        "outdir": str(folder.folder),
                        "exit_code": code,
                        "script_exit_code": code,
                        "os_exit": True,
                        "passes": [{"index": e.trace.index, "files": list(e.files)} for e in writer.result.entries],
                    }
                )
            sys.stdout.flush()
            sys.stderr.flush()

        recording = record(
            source,
            args,
            options,
            reporter,
            on_pass=writer,
            on_os_exit=finish_at_os_exit,
            keep=chosen.spec,
            on_open=draw.opened,
        )
        if not recording.traces and (not recording.digests or recording.unrecorded):
            no_pass(ctx, recording, reporter)  # none ran, or none could be recorded (digests alone: drawn below)
        if recording.traces and selection:
            selected(recording.traces, passes, reporter)  # says which of the --pass choices named no pass
        digests = recording.digests
        final = draw.last(digests, recording.traces)
        if final is not None:
            writer.add(final)

        def overview(plan: Plan) -> list[str]:
            if not digests:
                return []
            return write_overview(folder, overview_names(stem, plan.rank), tracer.timeline(digests), name)

        published = writer.finish(reporter, overview)
        total = len(digests) or len(recording.traces)
        drawn = [e.trace.index for e in published.entries]
        flagged_not_drawn = set(draw.flagged_skipped)
        if chosen.first_flagged:  # the recorder kept only the first of each flag: the others are in the digests
            flagged_not_drawn |= {d.index for d in digests if d.flags and draw.wanted(d.index)}
        skipped = len(flagged_not_drawn - set(drawn))
        lines = [drawn_line(described(chosen, selection), drawn, total, published.overview, skipped)]
        extra: dict[str, Any] = {"selection": chosen.spec, "digested": len(digests), "overview": published.overview}
        if tensorboard is not None:
            from tracer.record.tensorboard_export import write_tensorboard

            written = write_tensorboard(tensorboard, digests, recording.traces)
            lines.append(f"TensorBoard: {written} (tensorboard --logdir {tensorboard})")
            extra["tensorboard"] = {
                "logdirs": [str(p) for p in written.logdirs],
                "scalars": written.scalars,
                "histograms": written.histograms,
                "notes": list(written.notes),
            }
    code = report_run(reporter, recording, published, folder, lines=tuple(lines), extra=extra)
    ctx.exit(code)


@cli.command()
@click.argument("trace_file", metavar="TRACE.json", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The file to write; its suffix picks the format (.svg .png .pdf .dot .html .json). [default: TRACE.svg]",
)
@click.option(
    "--steps",
    is_flag=True,
    help="Also draw each step as its own picture (OUT-step01.svg, ...; svg, png, pdf, dot); .html always steps.",
)
@click.option("--force", is_flag=True, help="Replace an existing file that gradtrace did not write.")
@drawing_options
@report_options
def render(
    trace_file: Path,
    output: Path | None,
    steps: bool,
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
    check_drawing(drawing)
    target = output or trace_file.with_suffix(".svg")
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise OneLineUsageError(
            f"unknown output format: {target.suffix or '(no suffix)'!r} (must be one of {['.' + f for f in FORMATS]}): "
            f"give -o a file name that ends in one of them, e.g. -o {target.with_suffix('.svg').name}"
        )
    if trace_file.suffix.lower() in (".py", ".ipynb"):
        raise OneLineUsageError(
            f"{trace_file} is a {'notebook' if trace_file.suffix.lower() == '.ipynb' else 'script'}; render draws "
            f"a saved trace (.json). To record and draw it, run: gradtrace run {trace_file}"
        )
    if steps and fmt == "json":
        raise click.UsageError("--steps draws one picture per step; a .json file holds the whole trace")
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

    A script or notebook runs as with `gradtrace run` (arguments that are not gradtrace's, and everything after
    `--`, go to it); nothing is written.
    """
    import tracer

    from .pass_report import describe
    from .recording import RUNNABLE, check_source

    reporter = Reporter(quiet=quiet, as_json=as_json)
    code = 0
    with clear_errors(reporter):
        if source.suffix.lower() == ".json":
            traces = [tracer.load(source)]
        elif source.suffix.lower() in RUNNABLE:
            check_source(source)
            recording = record(source, args, options, reporter)
            if not recording.traces:
                no_pass(ctx, recording, reporter)
            not_recorded = unrecorded(recording)  # said here once: record() keeps the recorder's warning out
            if not_recorded is not None:
                reporter.warning(not_recorded)
            code = recording.outcome.exit_code
            traces = recording.traces
        else:
            raise click.ClickException(
                f"cannot analyze {str(source)!r}: give a saved trace (.json), a Python script (.py) or a notebook "
                "(.ipynb)"
            )
        traces = selected(traces, passes, reporter)
    reporter.line("\n\n".join(trace.summary() for trace in traces).rstrip("\n"))
    reporter.emit(
        {
            "command": "analyze",
            "source": str(source),
            "exit_code": code,
            "passes": [{**describe(t), "summary": tracer.summary_data(t)} for t in traces],
        }
    )
    ctx.exit(code)


@cli.command()
@click.option(
    "-o",
    "--outdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write the gallery into. [default: the gallery folder itself]",
)
@click.option(
    "--source",
    type=click.Path(path_type=Path, file_okay=False),
    help="The gallery folder, holding cases/TOPIC/ENTRY.py. [default: gallery/ of the repository gradtrace is "
    "installed from, else ./gallery]",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing: exit with 1 when the written DOT files or pages no longer match the scripts.",
)
@click.option(
    "--force", is_flag=True, help="Replace files in the output folder that the gallery builder did not write."
)
@report_options
def gallery(outdir: Path | None, source: Path | None, check: bool, force: bool, quiet: bool, as_json: bool) -> None:
    """Run every example script of the gallery inside tracer.record() and draw it.

    Writes one SVG, DOT file and step-by-step page per backward pass, an index.html showing every entry (title,
    explanation, script, pictures) that works offline, and a README.md for repository browsers. A script whose
    checks fail stops the build before anything is written.
    """
    import time

    import tracer.gallery.builder as builder

    reporter = Reporter(quiet=quiet, as_json=as_json)
    started = time.perf_counter()
    with clear_errors(reporter):
        folder = builder.find_gallery(source)
        target = outdir or folder
        if check:
            problems = builder.stale(folder, target)
            if problems:
                raise click.ClickException(
                    f"the gallery in {str(target)!r} is stale: "
                    + "; ".join(problems[:5])
                    + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                    + ". Run `./dev gallery` (or `gradtrace gallery`) to rebuild it."
                )
            reporter.line(f"the gallery in {target} matches its scripts")
            reporter.emit({"command": "gallery", "check": True, "folder": str(target), "stale": []})
            return
        work = builder.Build(folder, target, force=force)
        for _ in reporter.progress(work.steps(), "building the gallery", work.total):
            pass
    result = work.result
    assert result is not None
    seconds = time.perf_counter() - started
    topics: dict[str, list[Any]] = {}
    for entry in result.entries:
        topics.setdefault(entry.script.topic.title, []).append(entry)
    rows = [(title, str(len(es)), str(sum(len(e.passes) for e in es))) for title, es in topics.items()]
    reporter.line(table(rows, ["topic", "entries", "passes"]))
    reporter.line(
        f"wrote {target / 'index.html'}: {plural(len(result.entries), 'entry', 'entries')}, "
        f"{plural(result.passes, 'pass', 'passes')}, {len(result.files)} files ({result.size / 1e6:.1f} MB) "
        f"in {seconds:.1f} s"
    )
    reporter.emit(
        {
            "command": "gallery",
            "folder": str(target),
            "entries": [{"id": e.id, "title": e.script.title, "passes": len(e.passes)} for e in result.entries],
            "files": list(result.files),
            "removed": list(result.removed),
            "bytes": result.size,
            "seconds": round(seconds, 2),
        }
    )


cli.add_command(why)


def main() -> None:
    """The console script `gradtrace`."""
    cli(prog_name="gradtrace")
