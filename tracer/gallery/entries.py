"""The gallery's entries: find the example scripts, read their titles and explanations, run each inside record().

A gallery folder holds `cases/TOPIC/ENTRY.py`: one folder per topic (its README.md gives the topic's title and
introduction), one script per entry. A script's docstring is its title (first line) and explanation (the rest);
its code runs as `python ENTRY.py` would, and every backward pass it makes is recorded. Two optional names in the
script's namespace speak to the gallery: `error`, an exception the script caught on purpose (shown with its notes
beside the pictures), and `DRAWING`, a dict of drawing options for its pictures (e.g. `{"detail": "compact"}`).

A script is its lesson first and its checks after: the lines from `# --- checks` on (asserts against the closed
form, the tutorial's printed numbers and torch's own gradients) are shown apart, folded away, so a reader sees the
few lines that matter first. The checks may name the tutorial cells the entry reproduces in `TUTORIAL`:
`{"000 In [9]": {"pass": 1, "x": "455.1819"}}` (cell -> the pass reproducing it, and each leaf's .grad as the
tutorial printed it; "pass": None for a call that fails today, "note": a few words on how the entry differs).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..model.errors import GradtraceError
from ..model.records import Step, Trace
from ..record.recorder import Recorder
from ..record.script_runner import run_script
from ..record.user_traceback import strip_exception
from ..render.options import parse_options


class GalleryError(GradtraceError):
    """The gallery cannot be built: no scripts where expected, a script without a title, or a failing entry."""


@dataclass(frozen=True)
class Topic:
    """A folder of entries: `01-scalar-to-scalar`, titled by the first heading of its README.md."""

    slug: str
    title: str
    intro: str


@dataclass(frozen=True)
class Script:
    """One example script, read but not yet run."""

    topic: Topic
    path: Path
    slug: str  # the file name without .py: '01-default-seed'
    title: str
    explanation: tuple[str, ...]  # paragraphs
    code: str  # the lesson: the script after its docstring, up to its checks
    checks: str = ""  # the lines from CHECKS_MARK on, without the mark; "" when the script has none

    @property
    def id(self) -> str:
        return f"{self.topic.slug}/{self.slug}"


CHECKS_MARK = "# --- checks"  # a line starting with this opens a script's checks

# A tutorial cell: the tutorial's number (the start of its file name), its `In [N]` label, and which of the cells
# with that label when the label repeats: '004 In [10] (2nd)'.
CELL = re.compile(r"(?P<tutorial>\d{3}) In \[(?P<label>\d+)\](?: \((?P<occurrence>\d+)(?:st|nd|rd|th)\))?")


@dataclass(frozen=True)
class TutorialCell:
    """A tutorial cell an entry reproduces: which pass does it, and the gradients the tutorial printed."""

    cell: str  # '000 In [9]'
    passes: tuple[int, ...]  # the entry's passes (1-based, in the order the script made them); () for none
    printed: Mapping[str, str]  # leaf name -> its .grad as the tutorial printed it after that pass
    note: str

    @property
    def key(self) -> tuple[str, int, int]:
        """(tutorial, label, occurrence): the order of the coverage table."""
        m = CELL.fullmatch(self.cell)
        assert m is not None  # checked when read
        return m["tutorial"], int(m["label"]), int(m["occurrence"] or 1)


@dataclass(frozen=True)
class ShownError:
    """An exception a script caught on purpose, as the gallery shows it."""

    type: str
    message: str
    notes: tuple[str, ...]
    line: int | None  # the script line that raised it
    code: str | None  # that line's text


@dataclass(frozen=True)
class Pass:
    """One recorded backward pass of an entry, with the script line that started it."""

    trace: Trace
    line: int | None
    code: str | None


@dataclass(frozen=True)
class Entry:
    """A script after running it: its passes, the error it showed (if any), how to draw it."""

    script: Script
    passes: tuple[Pass, ...]
    error: ShownError | None
    drawing: Mapping[str, Any]
    tutorial: tuple[TutorialCell, ...] = ()

    @property
    def id(self) -> str:
        return self.script.id


# --------------------------------------------------------------------------- reading


def discover(folder: Path) -> list[Script]:
    """Every script under `folder/cases/`, topics and entries in file-name order."""
    cases = folder / "cases"
    if not cases.is_dir():
        raise GalleryError(
            f"{str(folder)!r} is not a gallery folder: it has no cases/ folder with the example scripts "
            "(cases/TOPIC/ENTRY.py)"
        )
    scripts = []
    for topic_dir in sorted(p for p in cases.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        topic = _topic(topic_dir)
        for path in sorted(topic_dir.glob("*.py")):
            scripts.append(read_script(topic, path))
    if not scripts:
        raise GalleryError(f"no example scripts in {str(cases)!r}: expected cases/TOPIC/ENTRY.py files")
    return scripts


def _topic(folder: Path) -> Topic:
    readme = folder / "README.md"
    if not readme.is_file():
        raise GalleryError(f"the topic folder {str(folder)!r} has no README.md (a '# Title' line and a paragraph)")
    lines = readme.read_text(encoding="utf-8").strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise GalleryError(f"{str(readme)!r} must start with the topic's title as a '# Title' line")
    intro = " ".join(line.strip() for line in lines[1:] if line.strip())
    return Topic(slug=folder.name, title=lines[0][2:].strip(), intro=intro)


def read_script(topic: Topic, path: Path) -> Script:
    """Title, explanation and code of one script (its docstring must hold the first two)."""
    text = path.read_text(encoding="utf-8")
    try:
        module = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise GalleryError(f"{str(path)!r} is not valid Python: {exc.msg} (line {exc.lineno})") from None
    docstring = ast.get_docstring(module, clean=True)
    first = module.body[0] if module.body else None
    if not docstring or first is None:
        raise GalleryError(
            f"{str(path)!r} has no docstring: a gallery script starts with one, its first line the title and "
            "the paragraphs after it the explanation"
        )
    title, _, rest = docstring.partition("\n")
    paragraphs = tuple(" ".join(p.split()) for p in rest.strip().split("\n\n") if p.strip())
    if not paragraphs:
        raise GalleryError(f"{str(path)!r}: the docstring has a title but no explanation after it")
    body = text.splitlines()[first.end_lineno or 1 :]
    mark = next((k for k, line in enumerate(body) if line.lstrip().startswith(CHECKS_MARK)), len(body))
    lesson, checks = "\n".join(body[:mark]).strip("\n"), "\n".join(body[mark + 1 :]).strip("\n")
    return Script(
        topic, path, path.stem, title.strip(), paragraphs, lesson + "\n", checks=checks + "\n" if checks else ""
    )


# --------------------------------------------------------------------------- running


def run(script: Script) -> Entry:
    """Run the script as `python SCRIPT` would, inside tracer.record(); GalleryError when it fails."""
    recorder = Recorder()
    with torch_state_kept(), recorder:
        outcome = run_script(script.path, [])
    if isinstance(outcome.error, KeyboardInterrupt):
        raise outcome.error
    if outcome.error is not None:
        raise GalleryError(f"gallery entry {script.id} failed:\n{_script_traceback(outcome.error)}")
    if outcome.exit_code != 0:
        raise GalleryError(f"gallery entry {script.id} failed: it called sys.exit({outcome.exit_code})")
    namespace = outcome.namespace
    lines = script.path.read_text(encoding="utf-8").splitlines()
    passes = tuple(_pass(trace, script.path, lines) for trace in recorder.traces)
    if not passes:
        raise GalleryError(f"gallery entry {script.id} made no backward pass: there is nothing to draw")
    for p in passes:
        failed = [s for s in p.trace.steps if s.check is not None and not s.check.ok]
        if failed:
            raise GalleryError(
                f"gallery entry {script.id}: pass {p.trace.index} has a vᵀJ that differs from v·J at step "
                f"{failed[0].id} ({failed[0].name}); a picture of it would mislead"
            )
    drawing = namespace.get("DRAWING", {})
    if not isinstance(drawing, dict):
        raise GalleryError(f"gallery entry {script.id}: DRAWING must be a dict of drawing options, got {drawing!r}")
    try:
        parse_options(drawing)
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"gallery entry {script.id}: DRAWING: {exc}") from None
    error = namespace.get("error")
    shown = _shown_error(error, script.path, lines) if isinstance(error, BaseException) else None
    cells = _tutorial_cells(script, namespace.get("TUTORIAL", {}), len(passes))
    return Entry(script, passes, shown, dict(drawing), cells)


def _tutorial_cells(script: Script, declared: object, passes: int) -> tuple[TutorialCell, ...]:
    """The script's TUTORIAL, checked: cells named like '000 In [9]', passes that exist, printed text per leaf."""

    def bad(why: str) -> GalleryError:
        return GalleryError(
            f"gallery entry {script.id}: TUTORIAL {why}; write it as "
            '{"000 In [9]": {"pass": 1, "x": "455.1819"}} (cell -> the pass and each .grad the tutorial printed)'
        )

    if not isinstance(declared, dict):
        raise bad(f"must be a dict, got {declared!r}")
    cells = []
    for cell, spec in declared.items():
        if not isinstance(cell, str) or not CELL.fullmatch(cell):
            raise bad(f"names the cell {cell!r}, not like '000 In [9]' or '004 In [10] (2nd)'")
        if not isinstance(spec, dict) or "pass" not in spec:
            raise bad(f"gives {cell!r} {spec!r}, not a dict with a 'pass'")
        which = spec["pass"]
        numbers = () if which is None else (which,) if isinstance(which, int) else tuple(which)
        if not all(isinstance(n, int) and 1 <= n <= passes for n in numbers):
            raise bad(f"gives {cell!r} the pass {which!r}, but the entry made {passes}")
        printed = {k: v for k, v in spec.items() if k not in ("pass", "note")}
        if not all(isinstance(v, str) for v in printed.values()) or not isinstance(spec.get("note", ""), str):
            raise bad(f"gives {cell!r} a printed gradient or note that is not text")
        cells.append(TutorialCell(cell, numbers, printed, spec.get("note", "")))
    return tuple(cells)


@contextmanager
def torch_state_kept() -> Iterator[None]:
    """Around one script: torch's RNG, default dtype and grad mode restored afterwards, so one entry cannot change
    the numbers of the next (argv, sys.path and the rest are run_script's)."""
    rng = torch.random.get_rng_state()
    dtype = torch.get_default_dtype()
    grad_enabled = torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.random.set_rng_state(rng)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad_enabled)


def _script_traceback(exc: BaseException) -> str:
    """The exception as the script's author sees it: gradtrace's frames taken out, one line per frame."""
    strip_exception(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [f"  {os.path.basename(f.filename)}, line {f.lineno}: {(f.line or '').strip()}" for f in frames]
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return "\n".join([*lines, f"  {message}"])


def _same_file(filename: str, path: Path) -> bool:
    try:
        return os.path.samefile(filename, path)
    except OSError:
        return False


def _line(source: str | None, path: Path, lines: list[str]) -> tuple[int | None, str | None]:
    if source is None:
        return None, None
    where, _, number = source.rpartition(":")
    if not number.isdigit() or not _same_file(where, path) or not 1 <= int(number) <= len(lines):
        return None, None
    return int(number), lines[int(number) - 1].strip()


def _pass(trace: Trace, path: Path, lines: list[str]) -> Pass:
    line, code = _line(trace.source, path, lines)
    return Pass(_relative(trace), line, code)


def _relative(trace: Trace) -> Trace:
    """The trace with every source as 'file.py:12': the gallery's files never carry absolute paths."""
    nodes = tuple(_step_relative(n) for n in trace.nodes)
    return dataclasses.replace(trace, source=_short(trace.source), nodes=nodes)


def _step_relative(step: Step) -> Step:
    return step if step.source is None else dataclasses.replace(step, source=_short(step.source))


def _short(source: str | None) -> str | None:
    if source is None:
        return None
    where, sep, number = source.rpartition(":")
    return f"{os.path.basename(where)}:{number}" if sep else os.path.basename(source)


def _shown_error(error: BaseException, path: Path, lines: list[str]) -> ShownError:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _same_file(f.filename, path)]
    line = frames[-1].lineno if frames else None
    code = lines[line - 1].strip() if line is not None and 1 <= line <= len(lines) else None
    notes = tuple(str(n) for n in getattr(error, "__notes__", ()))
    return ShownError(type(error).__name__, str(error), notes, line, code)
