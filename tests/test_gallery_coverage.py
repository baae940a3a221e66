"""The gallery covers the tutorials: every code cell of the five seeds that runs a backward pass is in the README's
coverage table, and every entry's gradients are the ones the tutorial printed.

The cells are found here, from the tutorials' text (not from the table): a cell starts at its `In [N]:` label, and
it runs a backward pass when a line of its code (not a comment, not prose) calls `.backward(` (`y.backward`,
`torch.autograd.backward`) or `torch.autograd.grad(`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT
from tests.gallery_helpers import GALLERY, entries
from tracer.gallery.entries import CELL

SEEDS = Path(os.environ.get("GRADTRACE_SEEDS", ROOT.parent / "shared" / "seeds"))
LABEL = re.compile(r"^In \[(\d+)\]:\s*$")
# A call, not a printed signature (`torch.Tensor.backward(self, gradient=None, ...)` is a cell's output).
RUNS_BACKWARD = re.compile(r"(?:\.backward|autograd\.grad)\((?!self\b)")
ROW = re.compile(r"^\| (?P<cell>\d{3} In \[\d+\](?: \(\d+(?:st|nd|rd|th)\))?) \| \[(?P<entry>[^\]]+)\]")
NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?")


def _ordinal(n: int) -> str:
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n if n < 20 else n % 10, 'th') }"


def tutorial_cells(path: Path) -> dict[str, bool]:
    """Every `In [N]` cell of one tutorial, named like the table names it, -> whether it runs a backward pass."""
    prefix = path.name[:3]
    blocks: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = LABEL.match(line)
        if m:
            blocks.append((m[1], []))
        elif blocks:
            blocks[-1][1].append(line)
    counts = Counter(label for label, _ in blocks)
    seen: Counter[str] = Counter()
    cells = {}
    for label, lines in blocks:
        seen[label] += 1
        name = f"{prefix} In [{label}]" + (f" ({_ordinal(seen[label])})" if counts[label] > 1 else "")
        cells[name] = any(RUNS_BACKWARD.search(line) for line in _code_lines(lines))
    return cells


def _code_lines(lines: list[str]) -> list[str]:
    """The lines that can be code: not a comment, not prose with `inline code`, not inside a ``` block of prose."""
    code, fenced = [], False
    for line in lines:
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith("#") or "`" in line:
            continue
        code.append(line.split("  #")[0])
    return code


def table() -> dict[str, set[str]]:
    """The README's coverage table: cell -> the entries listed for it."""
    rows: dict[str, set[str]] = {}
    for line in (GALLERY / "README.md").read_text(encoding="utf-8").splitlines():
        if m := ROW.match(line):
            rows.setdefault(m["cell"], set()).add(m["entry"])
    return rows


@pytest.fixture(scope="module")
def seeds() -> dict[str, dict[str, bool]]:
    files = sorted(SEEDS.glob("[0-9][0-9][0-9]_*.txt"))
    if len(files) != 5:
        pytest.skip(f"the five tutorials are not in {SEEDS} (set GRADTRACE_SEEDS to their folder)")
    return {f.name[:3]: tutorial_cells(f) for f in files}


def test_the_parser_finds_the_cells_it_should(seeds: dict[str, dict[str, bool]]) -> None:
    # A few cells whose nature is known, so that a parser finding nothing cannot pass the coverage test below.
    runs = {cell for cells in seeds.values() for cell, backward in cells.items() if backward}
    assert {
        "000 In [3]",
        "001 In [221]",
        "002 In [48]",
        "003 In [79]",
        "004 In [10] (1st)",
        "004 In [13] (2nd)",
    } <= runs
    assert "001 In [167]" not in runs  # its backward is commented out
    assert "004 In [45]" not in runs and "003 In [10]" not in runs  # a docstring print, a plain x.sum()
    assert len(runs) == 56  # the five tutorials as they are: a parser that changes its mind is caught


def test_every_cell_that_runs_backward_is_in_the_coverage_table(seeds: dict[str, dict[str, bool]]) -> None:
    listed = table()
    runs = sorted(cell for cells in seeds.values() for cell, backward in cells.items() if backward)
    missing = [cell for cell in runs if cell not in listed]
    assert not missing, f"tutorial cells that run backward and have no entry in gallery/README.md: {missing}"
    # And the table names only cells that exist, with entries that exist.
    every = {cell for cells in seeds.values() for cell in cells}
    assert set(listed) <= every, sorted(set(listed) - every)
    assert set().union(*listed.values()) <= set(entries()), "the table links an entry that does not exist"


def _numbers(text: str) -> list[tuple[float, int]]:
    """The numbers of a printed tensor with their decimals: '[ 31.4000, 314.0000]' -> [(31.4, 4), (314.0, 4)]."""
    return [(float(n), len(n.partition(".")[2].partition("e")[0])) for n in NUMBER.findall(text)]


def test_every_entry_gives_the_gradients_its_tutorial_printed() -> None:
    # What each pass left in .grad (recorded by gradtrace, the same as torch's own, which the scripts check) against
    # the tutorial's printed numbers, to the digits it printed. Random inputs: the entry uses values recovered from
    # the printed results, so this holds for them too.
    compared = 0
    for entry in entries().values():
        for cell in entry.tutorial:
            assert CELL.fullmatch(cell.cell)
            for leaf, text in cell.printed.items():
                got: list[float] = []
                for index in cell.passes:
                    info = entry.passes[index - 1].trace.leaves[leaf]
                    grad = info.grad_total if info.grad_total is not None else info.grad
                    assert grad is not None and grad.values is not None, (entry.id, cell.cell, leaf)
                    got += grad.values
                printed = _numbers(text)
                assert len(got) == len(printed), (entry.id, cell.cell, got, text)
                for value, (number, decimals) in zip(got, printed, strict=True):
                    # Printed to `decimals` places: half a unit of the last digit, and a little for float32.
                    tolerance = 0.5 * 10.0**-decimals + 1e-6 * abs(number) if decimals else 0.0
                    assert abs(value - number) <= tolerance, (entry.id, cell.cell, leaf, value, number)
                compared += 1
    assert compared >= 40
