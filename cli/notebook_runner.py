"""Execute a Jupyter notebook's code cells in order in one namespace, as "Run All" would, without IPython.

The .ipynb JSON is read here (nbformat 4, and the older 3). IPython-only syntax — cell magics (`%%time`),
line magics (`%matplotlib inline`), shell lines (`!pip install ...`) and help (`x?`) — is skipped with a notice;
the line is blanked rather than removed, so line numbers in tracebacks still match the notebook. gradtrace's
own `%%gradtrace [NAME]` cells run as Jupyter runs them: inside tracer.record(), NAME holding the Recorder. Each
cell is compiled under its own name, registered in linecache, so a traceback points at the cell and line.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import linecache
import os
import re
import shlex
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracer.record.script_runner import Outcome, ended_by, main_module, running_as_main

# Our package's name is a common one: a script or notebook with its own cli.py must import that, not us.
OWN_PACKAGES = ("cli",)


class NotebookError(Exception):
    """The file is not a notebook gradtrace can read."""


@dataclass(frozen=True)
class Cell:
    """One code cell: its position among all cells (1-based, as a person counts them) and its code."""

    number: int
    text: str  # what the notebook holds
    code: str | None  # what runs: IPython-only lines blanked; None when the whole cell is IPython-only
    skipped: tuple[str, ...] = ()  # one notice per skipped line or cell
    recorder: RecorderCell | None = None  # a %%gradtrace cell: run inside its own tracer.record()


@dataclass(frozen=True)
class RecorderCell:
    """What a `%%gradtrace [--steps] [--capture C] [NAME]` line asks: record the cell, keep the Recorder as NAME."""

    name: str | None
    capture: str


def gradtrace_magic(line: str) -> RecorderCell | None:
    """Parse a `%%gradtrace` line as tracer's cell magic does (tracer/display/magic.py, which needs IPython); None when
    the line is not one, or not a well-formed one (that cell is then skipped like any other cell magic)."""
    words = shlex.split(line.strip()[2:])
    if not words or words[0] != "gradtrace":
        return None
    name, capture, rest = None, "auto", words[1:]
    while rest:
        word = rest.pop(0)
        if word == "--steps":
            continue  # how the passes are displayed: nothing to display here, the run writes them
        if word == "--capture" and rest and rest[0] in ("auto", "stats", "full"):
            capture = rest.pop(0)
        elif word.startswith("--capture=") and word.split("=", 1)[1] in ("auto", "stats", "full"):
            capture = word.split("=", 1)[1]
        elif name is None and word.isidentifier():
            name = word
        else:
            return None
    return RecorderCell(name, capture)


def cell_filename(path: Path, number: int) -> str:
    """The name a cell's code is compiled under: tracebacks show it as the file."""
    return f"{path} [cell {number}]"


_IPYTHON_LINE = re.compile(r"^\s*(?:[\w.\[\], ]+=\s*)?([%!])")  # %magic, !shell, files = !ls, t = %timeit f()
_HELP = re.compile(r"^\s*(\?\??[\w.]+|[\w.]+\?\??)\s*$")  # ?obj, obj?, obj??


def _starts_statement(before: list[str]) -> bool:
    """Whether a line after `before` begins a new statement (not inside brackets, a string or a continuation)."""
    text = "\n".join(before) + "\n"
    try:
        for _ in tokenize.generate_tokens(io.StringIO(text).readline):
            pass
    except (tokenize.TokenError, SyntaxError):  # EOF inside a bracket or string; bad indentation
        return False
    return True


def python_code(text: str) -> tuple[str | None, tuple[str, ...]]:
    """The cell's text with IPython-only lines blanked (keeping line numbers), and a notice for each."""
    lines = text.split("\n")
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("%%"):
        if gradtrace_magic(first) is not None:  # blank the magic line; the body is ordinary Python
            k = lines.index(first)
            lines[k] = ""
            return python_code("\n".join(lines))
        return None, (f"skipped the whole cell: IPython cell magic {first.strip()!r}",)
    notices = []
    for k, line in enumerate(lines):
        ipython = _IPYTHON_LINE.match(line)
        if ipython is not None:
            what = "shell command" if ipython.group(1) == "!" else "magic"
        elif _HELP.match(line):
            what = "help"
        else:
            continue
        if not _starts_statement(lines[:k]):  # e.g. a line `% x)` continuing a string formatting expression
            continue
        notices.append(f"line {k + 1}: skipped IPython {what} {line.strip()!r}")
        indent = line[: len(line) - len(line.lstrip())]
        lines[k] = f"{indent}pass"  # keeps an indented block valid and every later line where it was
    return "\n".join(lines), tuple(notices)


def _cell_text(cell: dict[str, Any], key: str) -> str:
    source = cell.get(key, "")
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    if isinstance(source, str):
        return source
    raise NotebookError(f"a cell's {key!r} is {type(source).__name__}, not text")


def read_notebook(path: Path) -> list[Cell]:
    """The notebook's code cells; NotebookError says what is wrong with a file that is not a notebook."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NotebookError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "open it in Jupyter and save it again, or export it as a .py script and run that"
        ) from None
    if not isinstance(data, dict):
        raise NotebookError(f"{path} is JSON but not a notebook (expected an object with 'cells')")
    if isinstance(data.get("cells"), list):  # nbformat 4
        raw, key = data["cells"], "source"
    elif isinstance(data.get("worksheets"), list):  # nbformat 3: cells inside worksheets, code under 'input'
        raw = [c for sheet in data["worksheets"] if isinstance(sheet, dict) for c in sheet.get("cells", [])]
        key = "input"
    else:
        raise NotebookError(f"{path} is JSON but not a notebook: it has no 'cells' list")
    cells = []
    for number, cell in enumerate(raw, start=1):
        if not isinstance(cell, dict):
            raise NotebookError(f"{path}: cell {number} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        text = _cell_text(cell, "input" if key == "input" and "input" in cell else "source")
        code, skipped = python_code(text)
        first = next((line for line in text.split("\n") if line.strip()), "")
        magic = gradtrace_magic(first) if first.lstrip().startswith("%%") else None
        cells.append(Cell(number, text, code, skipped, magic))
    return cells


def _register(filename: str, text: str) -> None:
    """Let tracebacks show the cell's lines: linecache keeps entries without a modification time."""
    lines = [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]
    linecache.cache[filename] = (len(text), None, lines or ["\n"], filename)  # like a file: every line ends in \n


def display(*objects: Any, **_options: Any) -> None:
    """Stands in for IPython's display(): notebooks call it without importing it; outside Jupyter it prints."""
    for obj in objects:
        print(repr(obj))


def run_cells(
    path: Path,
    cells: Sequence[Cell],
    args: Sequence[str],
    *,
    before_cell: Callable[[Cell], None] | None = None,
    on_os_exit: Callable[[int], None] | None = None,
) -> tuple[Outcome, Cell | None]:
    """Run the cells in order in one `__main__` namespace; stop at the first failure, like "Run All".

    The working folder is the notebook's own during the run, as in Jupyter. Returns how it ended and the cell
    that ended it (None when every cell ran).
    """
    folder = os.path.dirname(os.path.abspath(path))
    module = main_module(str(path))
    del module.__file__  # a notebook has no __file__
    module.__dict__["display"] = display
    with running_as_main(module, [str(path), *args], folder, hidden=OWN_PACKAGES, on_os_exit=on_os_exit):
        os.chdir(folder)  # running_as_main changes it back
        for cell in cells:
            if cell.code is None:
                continue
            if before_cell is not None:
                before_cell(cell)
            filename = cell_filename(path, cell.number)
            _register(filename, cell.text)
            try:
                if cell.recorder is None:
                    _run_cell(cell.code, filename, module.__dict__)
                else:
                    _run_recorded_cell(cell.code, filename, module.__dict__, cell.recorder)
            except BaseException as exc:
                outcome = ended_by(exc)
                if outcome.exit_code != 0 or outcome.error is not None:
                    return outcome, cell
    return Outcome(0), None


def _run_recorded_cell(code: str, filename: str, namespace: dict[str, Any], magic: RecorderCell) -> None:
    """What `%%gradtrace` does in Jupyter: the cell runs inside its own record() (the run's record() still
    sees every pass), and NAME holds that Recorder afterwards, also when the cell raised."""
    import tracer

    rec = tracer.record(capture=magic.capture)  # type: ignore[arg-type]
    try:
        with rec:
            _run_cell(code, filename, namespace)
    finally:
        if magic.name:
            namespace[magic.name] = rec


def _run_cell(code: str, filename: str, namespace: dict[str, Any]) -> None:
    # Jupyter allows `await` at the top level of a cell: compile with that flag and drive the coroutine.
    compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    if compiled.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(compiled, namespace))
    else:
        exec(compiled, namespace)
