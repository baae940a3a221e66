"""The command line's small parsers: --pass selections, --format lists, notebook cells, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.notebook_runner import NotebookError, python_code, read_notebook
from cli.outputs import DEFAULT_FORMATS, parse_formats
from cli.passes import PassRange, missing, parse_passes, wanted
from tracer.record.script_runner import exit_code_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", (PassRange(3, 3),)),
        ("2-5", (PassRange(2, 5),)),
        ("4-", (PassRange(4, None),)),
        ("1, 3,6-", (PassRange(1, 1), PassRange(3, 3), PassRange(6, None))),
        (" 2 - 2 ", (PassRange(2, 2),)),
    ],
)
def test_pass_selections(text: str, expected: tuple[PassRange, ...]) -> None:
    assert parse_passes(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "invalid pass: 'x'"),
        ("0", "numbered from 1"),
        ("5-2", "must not come after"),
        ("-3", "invalid pass: '-3'"),
        ("1,,2", "invalid pass: ''"),
    ],
)
def test_bad_pass_selections_name_the_value(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_passes(text)


def test_wanted_and_missing() -> None:
    selection = parse_passes("2,4-5,9")
    assert [i for i in range(1, 8) if wanted(i, selection)] == [2, 4, 5]
    assert all(wanted(i, ()) for i in range(1, 5))
    assert missing(selection, 5) == ["9"]
    assert missing(parse_passes("6-"), 5) == ["6-"]


def test_formats() -> None:
    assert parse_formats([]) == DEFAULT_FORMATS == ("svg", "json")
    assert parse_formats(["svg,json", "dot", "JSON", ".png"]) == ("svg", "json", "dot", "png")
    with pytest.raises(ValueError, match=r"unknown format: 'xyz' \(must be one of \['svg', 'json', 'html'"):
        parse_formats(["svg,xyz"])


def test_magics_are_blanked_keeping_line_numbers() -> None:
    text = "%matplotlib inline\nimport torch\n  !ls -l\nfiles = !ls\nt = %timeit -o f()\nx?\n?x\nprint(1)"
    code, notices = python_code(text)
    assert code == "pass\nimport torch\n  pass\npass\npass\npass\npass\nprint(1)"
    assert len(notices) == 6
    assert notices[0] == "line 1: skipped IPython magic '%matplotlib inline'"
    assert "line 3: skipped IPython shell command '!ls -l'" in notices
    assert "line 6: skipped IPython help 'x?'" in notices


def test_cell_magic_skips_the_cell() -> None:
    code, notices = python_code("\n%%time\nx = 1")
    assert code is None
    assert notices == ("skipped the whole cell: IPython cell magic '%%time'",)


def test_percent_continuing_an_expression_is_python() -> None:
    text = 's = ("%d items"\n     % 3)\nt = """\n!not a shell line\n"""\nu = 7 \\\n  % 4'
    assert python_code(text) == (text, ())


def test_notebook_formats_and_errors(tmp_path: Path) -> None:
    v3 = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": ["x = 1\n", "y = 2"]}]}]}
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(v3))
    cells = read_notebook(path)
    assert [(c.number, c.code) for c in cells] == [(1, "x = 1\ny = 2")]

    path.write_text('{"cells": [')
    with pytest.raises(NotebookError, match=r"is not valid JSON \(Expecting value at line 1, column 12\)"):
        read_notebook(path)
    path.write_text('{"metadata": {}}')
    with pytest.raises(NotebookError, match="has no 'cells' list"):
        read_notebook(path)
    path.write_text("[1, 2]")
    with pytest.raises(NotebookError, match="JSON but not a notebook"):
        read_notebook(path)
    path.write_bytes(b'{"cells": []}\xff')
    with pytest.raises(NotebookError, match="not UTF-8"):
        read_notebook(path)


@pytest.mark.parametrize(("code", "expected"), [(None, 0), (0, 0), (3, 3), (256, 0), (-1, 255), (True, 1)])
def test_exit_codes_like_python(code: object, expected: int) -> None:
    assert exit_code_of(code) == expected


def test_exit_with_a_message_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code_of("bad config") == 1
    assert capsys.readouterr().err == "bad config\n"
