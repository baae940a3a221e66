"""The Python examples in README.md and docs/*.md run: every ```python block, each file's blocks in order.

A file's blocks share one namespace (a later block may use what an earlier one made), run in a fresh temporary
working directory (files the examples save land there) with `tracer` and `torch` already imported. A block is
skipped only when the line just before its fence is the marker `<!-- not run -->`: for the few that need a
notebook (IPython magics) or a long run. Tracebacks point at the markdown file and its line numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import tracer

ROOT = Path(__file__).resolve().parent.parent
NOT_RUN = "<!-- not run -->"
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", flags=re.S | re.M)

pytestmark = pytest.mark.graphviz  # the examples draw SVG, PNG and HTML


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # line number of the first line of code in the markdown file
    code: str
    skipped: bool


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        if match[1] != "python":
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start(2)) + 1
        blocks.append(Block(path, line, match[2], skipped=before == NOT_RUN))
    return blocks


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


WITH_EXAMPLES = [p for p in documents() if any(not b.skipped for b in python_blocks(p))]


def test_the_extraction_sees_the_examples() -> None:
    """A guard on the parser itself: the README has runnable blocks, and markers are rare."""
    readme = python_blocks(ROOT / "README.md")
    assert readme and not readme[0].skipped
    blocks = [b for p in documents() for b in python_blocks(p)]
    assert sum(b.skipped for b in blocks) <= max(3, len(blocks) // 5), "mark only notebook-only or long blocks"


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=_name)
def test_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__", "tracer": tracer, "torch": torch}
    for block in python_blocks(path):
        if block.skipped:
            continue
        # Padded with blank lines so that a traceback names the markdown file and the line in it.
        code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            pytest.fail(f"the example at {_name(path)}:{block.line} raised {type(error).__name__}: {error}")
