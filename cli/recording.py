"""Run a script or notebook inside `tracer.record()` and collect every backward pass it made."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tracer
from tracer.model.digest import PassDigest
from tracer.record.script_runner import Outcome, run_script

from .notebook_runner import OWN_PACKAGES, Cell, NotebookError, read_notebook, run_cells
from .outputs import display_name

RUNNABLE = (".py", ".ipynb")


class SourceError(Exception):
    """The script or notebook cannot be run at all (missing, wrong kind, not a notebook)."""


@dataclass(frozen=True)
class Recording:
    """What running the source gave: its passes, how it ended, and what was skipped on the way."""

    source: Path
    traces: list[tracer.Trace]
    outcome: Outcome
    notices: tuple[str, ...] = ()
    failed_cell: int | None = None  # notebooks: the cell that raised
    unrecorded: tuple[str, ...] = ()  # why passes that ran have no trace (Recorder.unrecorded), one line each
    digests: tuple[PassDigest, ...] = ()  # every recorded pass summarised (Recorder.digests), kept or not

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"

    @property
    def name(self) -> str:
        """The source's file name as printable text (a non-UTF-8 byte shown as an escape)."""
        return display_name(self.source.name)


OnPass = Callable[[tracer.Trace], None]


def check_source(path: Path) -> None:
    """Refuse, with the fix, what `python` (or Jupyter) could not run either."""
    if path.suffix not in RUNNABLE:
        raise SourceError(
            f"cannot run {str(path)!r}: gradtrace runs a Python script (.py) or a notebook (.ipynb); "
            "to draw a saved trace use `gradtrace render TRACE.json`"
        )
    if not path.exists():
        raise SourceError(f"no such file: {str(path)!r} (check the path and the current folder)")
    if path.is_dir():
        raise SourceError(f"{str(path)!r} is a folder; give the path of a .py script or an .ipynb notebook")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {str(path)!r}: permission denied (check the file's permissions)")


def record_source(
    path: Path,
    args: list[str],
    recorder_options: dict[str, Any],
    *,
    notify: Callable[[str], None] = print,
    on_pass: OnPass | None = None,
    on_os_exit: Callable[[int], None] | None = None,
    on_open: Callable[[tracer.Recorder], None] | None = None,
) -> Recording:
    """Run a .py script (as `python` would) or an .ipynb notebook (its code cells) and record its passes.

    `on_pass(trace)` is called with each pass as it ends (gradtrace run writes it then); `on_os_exit(code)` when
    the code ends the process with os._exit, the last moment to finish what was recorded. `recorder_options` may
    hold `keep`, the passes whose whole Trace is kept (record(keep=...)); every pass gets its digest. `on_open`
    gets the recorder as its block opens (gradtrace run reads the passes' digests as they end).
    """
    check_source(path)
    if path.suffix == ".ipynb":
        return _record_notebook(path, args, recorder_options, notify, on_pass, on_os_exit, on_open)
    with tracer.record(on_pass=on_pass, label=display_name(path.name), **recorder_options) as rec:
        if on_open is not None:
            on_open(rec)
        outcome = run_script(path, args, hidden=OWN_PACKAGES, on_os_exit=on_os_exit)
    return Recording(path, list(rec.traces), outcome, unrecorded=tuple(rec.unrecorded), digests=tuple(rec.digests))


def _record_notebook(
    path: Path,
    args: list[str],
    recorder_options: dict[str, Any],
    notify: Callable[[str], None],
    on_pass: OnPass | None,
    on_os_exit: Callable[[int], None] | None,
    on_open: Callable[[tracer.Recorder], None] | None = None,
) -> Recording:
    try:
        cells = read_notebook(path)
    except NotebookError as exc:
        raise SourceError(str(exc)) from None
    notices = tuple(f"{path.name} cell {c.number}, {note}" for c in cells for note in c.skipped)
    for notice in notices:
        notify(notice)
    with tracer.record(on_pass=on_pass, **recorder_options) as rec:
        if on_open is not None:
            on_open(rec)

        def label_passes(cell: Cell) -> None:
            rec.label = f"cell {cell.number}"  # the recorder labels each pass when it is delivered

        outcome, failed = run_cells(path, cells, args, before_cell=label_passes, on_os_exit=on_os_exit)
    sys.stdout.flush()
    failed_cell = None if failed is None else failed.number
    return Recording(path, list(rec.traces), outcome, notices, failed_cell, tuple(rec.unrecorded), tuple(rec.digests))
