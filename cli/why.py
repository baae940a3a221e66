"""`gradtrace why SCRIPT.py --leaf NAME`: run a script with the forward recorded and say why NAME's gradient is
None or zero, or, without --leaf, why its backward raised; the answer's picture with -o."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import clear_errors
from .options import report_options
from .report import Reporter

WHY_FORMATS = (".svg", ".png", ".pdf", ".dot")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "ignore_unknown_options": True})
@click.argument("source", metavar="SCRIPT.py", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--leaf",
    metavar="NAME",
    help="The tensor to ask about, as the script's globals name it (w, model.fc.weight). "
    "[default: explain the backward error the script ended with]",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also draw the answer's path into this file; the suffix picks the format (.svg .png .pdf .dot).",
)
@report_options
def why(source: Path, args: tuple[str, ...], leaf: str | None, output: Path | None, quiet: bool, as_json: bool) -> None:
    """Say why a tensor's gradient is None or zero, or why backward raised, with the line that caused it.

    The script runs as `python SCRIPT.py ARGS` would, with its forward recorded (tracer.record(forward=True));
    then NAME is looked up among its globals. Without --leaf, the backward error the script ended with
    (an in-place change, a second backward, an output without a grad_fn) is explained.
    """
    from tracer.display.why_call import why_in_script
    from tracer.display.why_view import WhyView

    from .notebook_runner import OWN_PACKAGES
    from .recording import check_source

    reporter = Reporter(quiet=quiet, as_json=as_json)
    if output is not None and output.suffix.lower() not in WHY_FORMATS:
        raise click.BadParameter(
            f"unknown format: {output.suffix or '(no suffix)'!r} (must be one of {list(WHY_FORMATS)})",
            param_hint="'-o'",
        )
    with clear_errors(reporter):
        check_source(source)
        if source.suffix.lower() != ".py":
            raise click.ClickException(
                f"gradtrace why runs a Python script (.py); in a notebook, ask in a cell: tracer.why(w, rec) "
                f"after `with tracer.record(forward=True) as rec:` (got {source.name})"
            )
        with reporter.user_output():
            answer, outcome = why_in_script(source, args, leaf=leaf, hidden=OWN_PACKAGES)
        files = [str(WhyView(answer).save(output))] if output is not None else []
    if outcome.error is not None and answer.error is None:
        reporter.notice(
            f"{source.name} ended with {type(outcome.error).__name__}: {outcome.error}; the answer is about what "
            "ran before it"
        )
    if answer.error is not None:
        reporter.line(f"backward raised {answer.error.split('. ')[0]}.")
    reporter.line(answer.text)
    for path in files:
        reporter.line(f"wrote {path}")
    reporter.emit(_document(source, leaf, answer, files))


def _document(source: Path, leaf: str | None, answer: Any, files: list[str]) -> dict[str, Any]:
    return {
        "command": "why",
        "source": str(source),
        "leaf": leaf,
        "target": answer.target,
        "cause": answer.cause.value,
        "file": answer.file,
        "line": answer.line,
        "code": answer.code,
        "node": answer.node,
        "share": answer.share,
        "explanation": answer.explanation,
        "also": list(answer.also),
        "error": answer.error,
        "path": [
            {"node": s.node, "op": s.op, "kind": s.kind, "file": s.file, "line": s.line, "note": s.note}
            for s in answer.path
        ],
        "files": files,
    }
