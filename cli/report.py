"""What the command line prints: human lines, notices, errors and progress, or one JSON document, or nothing.

Three modes: text (default: results on stdout, notices and progress on stderr), quiet (-q: only errors) and
json (--json: stdout holds exactly one JSON document; notices go into it instead of stderr). Every line printed
for people goes through tracer's visible(): a user's name with an ANSI escape, a control character or a lone
surrogate (a file name that was not UTF-8) shows as its escape instead of acting on the terminal; the JSON keeps
the exact strings (lone surrogates as \\u escapes, so it is valid UTF-8).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

import click

Mode = Literal["text", "quiet", "json"]
T = TypeVar("T")


class Reporter:
    """Prints for one command in the chosen mode, and collects what the JSON document will hold."""

    def __init__(self, *, quiet: bool = False, as_json: bool = False) -> None:
        self.mode: Mode = "json" if as_json else ("quiet" if quiet else "text")
        self.notices: list[str] = []
        self.errors: list[str] = []

    def line(self, text: str = "") -> None:
        """A result line for people (text mode only)."""
        if self.mode == "text":
            click.echo(shown(text))

    def notice(self, text: str) -> None:
        """Something worth knowing that is not a failure, e.g. a skipped notebook magic."""
        self.notices.append(text)
        if self.mode == "text":
            click.echo(f"gradtrace: {shown(text)}", err=True)

    def warning(self, text: str) -> None:
        """Something gradtrace could not do that does not make the command fail (e.g. a pass it could not
        record): shown also with -q; in the JSON document among the notices."""
        self.notices.append(text)
        if self.mode != "json":
            click.echo(f"gradtrace: warning: {shown(text)}", err=True)

    def error(self, text: str) -> None:
        """A failure that does not stop the command (the exit code says it failed); always shown."""
        self.errors.append(text)
        click.echo(f"Error: {shown(text)}", err=True)

    def progress(self, items: Iterable[T], label: str, length: int) -> Iterator[T]:
        """Iterate with a progress bar on stderr for long work (`length` items) in text mode on a terminal."""
        if self.mode != "text" or length < 2 or not sys.stderr.isatty():
            yield from items
            return
        with click.progressbar(items, length=length, label=label, file=sys.stderr, show_pos=True) as bar:
            yield from bar

    def emit(self, document: dict[str, Any]) -> None:
        """The JSON document (json mode only), with the notices and errors collected on the way."""
        if self.mode == "json":
            document = {**document, "notices": self.notices, "errors": self.errors}
            click.echo(json_text(document))

    def failed(self, message: str, exit_code: int) -> None:
        """In json mode, the document for a command that failed (the `Error:` line goes to stderr as usual)."""
        if self.mode == "json":
            ctx = click.get_current_context(silent=True)
            command = ctx.info_name if ctx is not None else None
            click.echo(json_text({"command": command, "exit_code": exit_code, "error": message}))

    @contextlib.contextmanager
    def user_output(self) -> Iterator[None]:
        """Around the user's code: in json mode its prints go to stderr, so stdout stays one JSON document."""
        if self.mode != "json":
            yield
            return
        sys.stdout.flush()
        with contextlib.redirect_stdout(sys.stderr):
            yield
        sys.stderr.flush()


def shown(text: str, *, layout: bool = True) -> str:
    """Text for the terminal, made visible by tracer's visible() (the one definition pictures use too).

    Most lines need nothing: those skip importing tracer (and torch with it), so `--help` and early errors stay
    instant. Every character visible() escapes is one str.isprintable() refuses, so the check is exact."""
    plain = text.replace("\n", "").replace("\t", "") if layout else text
    if plain.isprintable():
        return text
    from tracer.model.visible_text import visible

    return visible(text, layout=layout)


def json_text(document: dict[str, Any]) -> str:
    """The JSON document as UTF-8-safe text: other characters as themselves, a lone surrogate (only possible
    inside a string) as its \\u escape, so a reader gets back the exact string."""
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False, default=str)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def table(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    """A plain aligned text table (the column widths fit the widest cell); each cell on one line, made visible."""
    grid = [list(header), *([shown(str(c), layout=False) for c in row] for row in rows)]
    widths = [max(len(r[k]) for r in grid) for k in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
