"""Steps the commands share: our errors as one line, the drawing options checked, the source recorded, passes chosen."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import RECORDER_OPTIONS, picked
from .outputs import display_name
from .passes import PassRange, missing, wanted
from .report import Reporter, plural, shown

if TYPE_CHECKING:
    import tracer

    from .recording import Recording


WHERE_TRACES_COME_FROM = "a trace file is the .json that `gradtrace run SCRIPT.py` or Trace.save('t.json') writes"


class OneLineUsageError(click.ClickException):
    """A mistake in what was asked (a file of the wrong kind), shown as one `Error: ...` line with the fix and
    a usage error's exit code, 2 — click's UsageError would add its usage block."""

    exit_code = 2


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
        message = str(exc)
        if isinstance(exc, tracer.TraceFormatError) and "not a gradtrace trace" in message:
            message += f"; {WHERE_TRACES_COME_FROM}"
        reporter.failed(message, 1)
        raise click.ClickException(shown(message)) from None
    except FileNotFoundError as exc:
        message = f"{exc.args[-1] if exc.args else exc} (check the path)"
        reporter.failed(message, 1)
        raise click.ClickException(shown(message)) from None
    except OSError as exc:  # the file system refused something of ours: say what, and what to do
        what = repr(display_name(os.fsdecode(exc.filename))) if exc.filename is not None else "a file"
        message = (
            f"cannot write {what}: {exc.strerror or exc}; choose another output folder with -o (a shorter or "
            "writable one), or rename the script"
        )
        reporter.failed(message, 1)
        raise click.ClickException(shown(message)) from None


def check_drawing(drawing: dict[str, Any]) -> None:
    """Let the renderer check the drawing options before any work (it names the value and the allowed set)."""
    from tracer.render.options import parse_options

    try:
        parse_options(drawing)
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None


def record(
    source: Path,
    args: tuple[str, ...],
    options: dict[str, Any],
    reporter: Reporter,
    *,
    on_pass: Callable[[tracer.Trace], None] | None = None,
    on_os_exit: Callable[[int], None] | None = None,
    keep: str | None = None,
    on_open: Callable[[tracer.Recorder], None] | None = None,
) -> Recording:
    """Run the script or notebook inside tracer.record(); show its traceback (ours removed) when it raised.
    `on_pass` and `on_os_exit` as for recording.record_source; `keep`: record(keep=...), the passes kept whole;
    `on_open(recorder)` as the block opens."""
    from .leaf_names import MainVariables, check_paths
    from .recording import record_source
    from .tracebacks import show_user_exception

    recorder = picked(options, RECORDER_OPTIONS)
    if keep is not None:
        recorder["keep"] = keep
    names = None
    if options.get("names"):
        try:
            names = MainVariables(check_paths(tuple(options["names"])))
        except ValueError as exc:
            raise OneLineUsageError(str(exc)) from None
        recorder["names"] = names
    with reporter.user_output(), skips_said_at_the_end():
        recording = record_source(
            source,
            list(args),
            recorder,
            notify=reporter.notice,
            on_pass=on_pass,
            on_os_exit=on_os_exit,
            on_open=on_open,
        )
    if recording.outcome.error is not None:
        show_user_exception(recording.outcome.error)
    if names is not None and recording.traces:
        for path in names.missing():
            reporter.notice(
                f"--names {path}: no tensor or nn.Module of that name when a pass started; "
                "those leaves kept their automatic names"
            )
    return recording


# How the recorder's warning about a pass it leaves unrecorded on purpose begins (tracer/record/recorder.py,
# _run_unrecorded); tests/test_cli_said_once.py fails if the two drift apart.
SKIPPED_WARNING_START = "gradtrace did not record a backward pass "


@contextmanager
def skips_said_at_the_end() -> Iterator[None]:
    """While the user's code runs, leave out the recorder's warning that a pass (torch.func's, another thread's)
    was not recorded on purpose: the command says it once itself, with the reason, when the run ends (see
    unrecorded()), so the user reads it once. Every other warning, ours included, shows as without the filter."""
    import warnings

    from tracer import GradtraceWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(SKIPPED_WARNING_START), category=GradtraceWarning)
        yield


def unrecorded(recording: Recording) -> str | None:
    """What ran but could not be recorded, in one paragraph; None when every pass that ran was recorded.

    Recorder.unrecorded gives one line per pass that failed to record ('KeyError: 5') and one line per kind of
    pass skipped on purpose, counted ('3 backward passes were not recorded, inside torch.func: ...').
    """
    if not recording.unrecorded:
        return None
    from tracer.record.skipped_passes import SKIPPED_PREFIX  # here: importing tracer imports torch (slow --help)

    parts, failed = [], 0
    for line, repeated in Counter(recording.unrecorded).most_common():
        counted = re.match(r"(\d+) backward pass", line)
        if counted:
            failed += int(counted.group(1)) * repeated
            parts.append(line)
        elif line.startswith(SKIPPED_PREFIX):  # says itself why, and that the pass ran as without gradtrace
            parts.append(
                f"{plural(repeated, 'backward pass', 'backward passes')} {'was' if repeated == 1 else 'were'} {line}"
            )
        else:
            failed += repeated
            parts.append(f"{plural(repeated, 'backward pass', 'backward passes')} could not be recorded ({line})")
    shown = "; ".join(parts[:5]) + (f"; and {plural(len(parts) - 5, 'other reason')}" if len(parts) > 5 else "")
    if not failed:
        return f"{recording.name}: {shown}"
    return (
        f"{recording.name}: {shown}; {'it' if failed == 1 else 'they'} ran as without gradtrace (the gradients are "
        "torch's), only the drawing is missing"
    )


def no_pass(ctx: click.Context, recording: Recording, reporter: Reporter) -> None:
    """No pass recorded. When passes ran but could not be recorded, say what and why: a warning, and the script's
    own exit code (0 when it succeeded). When none ran at all, say so and end with the script's code, or 1."""
    not_recorded = unrecorded(recording)
    if not_recorded is not None:
        code = recording.outcome.exit_code
        reporter.warning(f"{not_recorded}. Nothing to draw.")
        reporter.emit(
            {
                "command": ctx.info_name,
                "source": str(recording.source),
                "exit_code": code,
                "script_exit_code": code,
                "passes": [],
                "recorded": 0,
                "unrecorded": list(recording.unrecorded),
            }
        )
        ctx.exit(code)
    name = recording.name
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


def selected(
    traces: list[tracer.Trace], passes: tuple[tuple[PassRange, ...], ...], reporter: Reporter
) -> list[tracer.Trace]:
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
