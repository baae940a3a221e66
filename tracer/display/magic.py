"""The `%%gradtrace` cell magic (`%load_ext tracer`): run a cell inside tracer.record() and display its passes.

The only module that imports IPython; `tracer.load_ipython_extension` imports it when the extension is loaded.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import display

from ..model.errors import GradtraceError
from ..model.records import CAPTURES, Options
from ..model.textfmt import plural
from ..record.recorder import Recorder, record
from ..render.escape import page_text
from .notebook import pass_title

show: Any = display  # IPython's display() is untyped; one typed name for it here

USAGE = "%%gradtrace [--steps] [--capture auto|stats|full] [NAME]"


class CellError(GradtraceError):
    """The cell under %%gradtrace raised; its traceback is already shown, so this one shows one line."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for an exception's own traceback text
        return [f"{type(self).__name__}: {self}"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit the kernel's process
        raise UsageError(f"%%gradtrace: {message} (usage: {USAGE})")


def parse(line: str) -> argparse.Namespace:
    """The magic's line: --steps, --capture, and an optional variable name for the Recorder."""
    parser = _Parser(prog="%%gradtrace", add_help=False)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--capture", choices=CAPTURES, default=Options().capture)
    args = parser.parse_args(shlex.split(line))
    if args.name is not None and not args.name.isidentifier():
        raise UsageError(f"%%gradtrace: NAME must be a Python variable name, got {args.name!r} (usage: {USAGE})")
    return args


@magics_class
class GradtraceMagics(Magics):
    """Holds the %%gradtrace cell magic."""

    @cell_magic
    def gradtrace(self, line: str, cell: str) -> None:
        """Run the cell inside tracer.record() and display every backward pass it ran.

        %%gradtrace [--steps] [--capture auto|stats|full] [NAME]

        Without --steps the passes are shown as pictures, one per pass, each titled with its number and
        outputs; with --steps each is a stepper (previous/next, slider, arrow keys). --capture is record()'s
        capture. NAME keeps the Recorder (NAME.traces) for later cells. When the cell raises, the passes
        recorded up to then are still shown, and the cell still fails.
        """
        args = parse(line)
        shell = self.shell
        assert shell is not None  # a registered magic always has its shell
        rec = record(capture=args.capture)
        with rec:
            result = shell.run_cell(cell)  # type: ignore[no-untyped-call]  # IPython leaves it untyped
        if args.name:
            shell.user_ns[args.name] = rec
        failure = result.error_before_exec or result.error_in_exec
        if failure is None or rec.traces:
            show_passes(rec, steps=args.steps)
        if failure is not None:
            recorded = (
                f"%%gradtrace showed the {plural(len(rec.traces), 'pass', 'passes')} recorded before that"
                if rec.traces
                else "no backward pass ran before that"
            )
            raise CellError(f"the cell raised {type(failure).__name__} (traceback above); {recorded}")


class _Title:
    """A pass's title line above its stepper."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {
            "text/html": f'<p style="font-weight:bold;margin:0.5em 0">{page_text(self.text)}</p>',
            "text/plain": self.text,
        }


def show_passes(rec: Recorder, *, steps: bool) -> None:
    """Display a Recorder: all passes as pictures, or each as a stepper under its title."""
    if not steps or not rec.traces:
        show(rec)
        return
    for trace in rec.traces:
        show(_Title(pass_title(trace)))
        show(trace.show(steps=True))


def load_ipython_extension(ipython: Any) -> None:
    """Register the %%gradtrace magic with this IPython shell."""
    ipython.register_magics(GradtraceMagics)
