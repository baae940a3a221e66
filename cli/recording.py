"""Run a script or notebook inside `tracer.record()` and collect every backward pass it made."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tracer
from tracer.record.script_runner import Outcome, run_script

from .notebook_runner import OWN_PACKAGES, Cell, NotebookError, read_notebook, run_cells

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

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"


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
    path: Path, args: list[str], recorder_options: dict[str, Any], *, notify: Callable[[str], None] = print
) -> Recording:
    """Run a .py script (as `python` would) or an .ipynb notebook (its code cells) and record its passes."""
    check_source(path)
    if path.suffix == ".ipynb":
        return _record_notebook(path, args, recorder_options, notify)
    with tracer.record(label=path.name, **recorder_options) as rec:
        outcome = run_script(path, args, hidden=OWN_PACKAGES)
    return Recording(path, list(rec.traces), outcome)


def _record_notebook(
    path: Path, args: list[str], recorder_options: dict[str, Any], notify: Callable[[str], None]
) -> Recording:
    try:
        cells = read_notebook(path)
    except NotebookError as exc:
        raise SourceError(str(exc)) from None
    notices = tuple(f"{path.name} cell {c.number}, {note}" for c in cells for note in c.skipped)
    for notice in notices:
        notify(notice)
    with tracer.record(**recorder_options) as rec:

        def label_passes(cell: Cell) -> None:
            rec.label = f"cell {cell.number}"  # the recorder labels each pass when it is delivered

        outcome, failed = run_cells(path, cells, args, before_cell=label_passes)
    sys.stdout.flush()
    return Recording(path, list(rec.traces), outcome, notices, None if failed is None else failed.number)
