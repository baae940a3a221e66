"""A why answer as users meet it: printed text, `.svg()` / `.save()`, and its notebook display."""

from __future__ import annotations

import contextlib
import html
from pathlib import Path
from typing import Any

from ..model.errors import GradtraceError
from ..model.why_records import Cause, PathStep, WhyAnswer
from ..render.html_page import without_prologue
from ..render.output_files import write_atomic
from ..render.why_picture import FORMATS, why_dot, why_picture


class WhyView:
    """What `tracer.why` returns: the answer record (`.answer`) with its cause, line and text at hand."""

    def __init__(self, answer: WhyAnswer) -> None:
        self.answer = answer

    @property
    def cause(self) -> Cause:
        return self.answer.cause

    @property
    def line(self) -> int | None:
        return self.answer.line

    @property
    def file(self) -> str | None:
        return self.answer.file

    @property
    def path(self) -> tuple[PathStep, ...]:
        return self.answer.path

    @property
    def target(self) -> str:
        return self.answer.target

    @property
    def explanation(self) -> str:
        return self.answer.explanation

    @property
    def code(self) -> str | None:
        return self.answer.code

    @property
    def node(self) -> str | None:
        return self.answer.node

    @property
    def share(self) -> float | None:
        return self.answer.share

    @property
    def also(self) -> tuple[str, ...]:
        return self.answer.also

    @property
    def error(self) -> str | None:
        return self.answer.error

    @property
    def text(self) -> str:
        return self.answer.text

    def __str__(self) -> str:
        return self.answer.text

    def __repr__(self) -> str:
        return f"<why {self.answer.target}: {self.answer.cause.value} at {self.answer.where}>"

    def to_dot(self, *, theme: str = "light") -> str:
        return why_dot(self.answer, theme=theme)

    def svg(self, *, theme: str = "light") -> str:
        """The answer's path as SVG text (needs Graphviz's `dot`)."""
        return why_picture(self.answer, "svg", theme=theme).decode("utf-8")

    def save(self, path: Any, *, theme: str = "light") -> Path:
        """Write the picture; the suffix picks the format (.svg .png .pdf .dot)."""
        target = Path(path)
        fmt = target.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(
                f"unknown format: {target.suffix or '(no suffix)'!r} (must be one of {['.' + f for f in FORMATS]})"
            )
        write_atomic(target, why_picture(self.answer, fmt, theme=theme))
        return target

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        page = f"<pre>{html.escape(self.answer.text)}</pre>"
        with contextlib.suppress(GradtraceError):  # no Graphviz: the text still answers
            page += without_prologue(self.svg())
        return {"text/plain": self.answer.text, "text/html": page}
