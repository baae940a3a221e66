"""`gradtrace run NOTEBOOK.ipynb`: code cells run in order in one namespace, passes labelled by cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import torch

import tracer
from tests.cli_helpers import invoke, our_frames


def write_notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    """A notebook file made by nbformat (what Jupyter writes); cells are (kind, source)."""
    notebook = nbformat.v4.new_notebook()
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    notebook.cells = [make[kind](source) for kind, source in cells]
    nbformat.write(notebook, path)
    return path


LESSON = [
    ("markdown", "# Vector-Jacobian products"),
    ("code", "%matplotlib inline\nimport torch\nx = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)"),
    ("code", "!pip list\ny = x ** 2\ny.backward(torch.ones_like(y))\nx.grad"),
    ("markdown", "Now clear and try a one-hot seed."),
    ("code", "%%time\nthis would not even parse"),
    ("code", "x.grad = None\nz = torch.stack([x.sum(), (x ** 2).sum()])\nz.backward(torch.tensor([0.0, 1.0]))"),
    ("code", "with open('side_effect.txt', 'w') as f:\n    f.write('written in the notebook folder')"),
]


def load_all(folder: Path) -> list[tracer.Trace]:
    return sorted((tracer.load(p) for p in folder.glob("*.json") if not p.name.startswith(".")), key=lambda t: t.index)


def test_cells_run_in_order_and_passes_are_labelled_by_cell(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "lesson.ipynb", LESSON)
    result = invoke("run", "-f", "json", notebook)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "lesson_gradtrace"
    first, second = load_all(out)
    assert (first.label, second.label) == ("cell 3", "cell 6")
    assert first.source == f"{notebook} [cell 3]:3"
    assert sorted(p.name for p in out.glob("lesson*.json")) == ["lesson.pass1.cell3.json", "lesson.pass2.cell6.json"]
    # gradients equal torch's own
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x**2
    y.backward(torch.ones_like(y))
    assert torch.equal(first.leaves["x"].grad.as_tensor(), x.grad)
    x.grad = None
    torch.stack([x.sum(), (x**2).sum()]).backward(torch.tensor([0.0, 1.0]))
    assert torch.equal(second.leaves["x"].grad.as_tensor(), x.grad)
    # IPython-only lines were skipped, each with a notice naming the cell and line
    assert "lesson.ipynb cell 2, line 1: skipped IPython magic '%matplotlib inline'" in result.stderr
    assert "lesson.ipynb cell 3, line 1: skipped IPython shell command '!pip list'" in result.stderr
    assert "lesson.ipynb cell 5, skipped the whole cell: IPython cell magic '%%time'" in result.stderr
    # the working folder during the run is the notebook's own, as in Jupyter
    assert (tmp_path / "side_effect.txt").read_text() == "written in the notebook folder"
    assert "cell 3" in (out / "index.html").read_text()


def test_a_failing_cell_points_at_the_cell_and_line(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "oops.ipynb",
        [
            ("code", "import torch\nw = torch.ones(2, requires_grad=True)\nw.sum().backward()"),
            ("markdown", "then"),
            ("code", "def scale(t):\n    return t * undefined_factor\n"),
            ("code", "# a comment\nscale(w)"),
            ("code", "print('never runs')"),
        ],
    )
    result = invoke("run", "-f", "json", notebook)
    assert result.exit_code == 1
    err = result.stderr
    assert f'File "{notebook} [cell 4]", line 2, in <module>\n    scale(w)' in err
    assert f'File "{notebook} [cell 3]", line 2, in scale\n    return t * undefined_factor' in err
    assert "NameError: name 'undefined_factor' is not defined" in err
    assert "never runs" not in result.stdout
    assert our_frames(err) == []
    assert "oops.ipynb cell 4 raised NameError; the passes recorded before that are written" in err
    assert len(load_all(tmp_path / "oops_gradtrace")) == 1


def test_a_syntax_error_in_a_cell(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "syntax.ipynb", [("code", "import torch\nx = (1,\n")])
    result = invoke("run", notebook)
    assert result.exit_code == 1
    assert f'File "{notebook} [cell 1]", line 2' in result.stderr
    assert "SyntaxError" in result.stderr


def test_a_notebook_that_is_not_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [{"cell_type": "code", "source": "x = 1"')
    result = invoke("run", path)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {path} is not valid JSON (Expecting ',' delimiter at line 1, column 51); open it in Jupyter and "
        "save it again, or export it as a .py script and run that\n"
    )


def test_a_json_file_that_is_not_a_notebook(tmp_path: Path) -> None:
    path = tmp_path / "data.ipynb"
    path.write_text(json.dumps({"format": "gradtrace.trace"}))
    result = invoke("run", path)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path} is JSON but not a notebook: it has no 'cells' list\n"


def test_a_notebook_without_backward(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "plain.ipynb", [("code", "a = 1 + 1")])
    result = invoke("run", notebook)
    assert result.exit_code == 1
    assert "Error: plain.ipynb ran without a backward pass: nothing to record." in result.stderr
    assert "check that the notebook reaches one\n" in result.stderr


def test_arguments_and_display_like_jupyter(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "args.ipynb",
        [
            ("code", "import sys, torch\nprint('argv', sys.argv[1:])\nprint('file' in dir())"),
            ("code", "t = torch.ones(1, requires_grad=True)\nt.sum().backward()\ndisplay(t.grad)"),
            ("code", "import asyncio\nawait asyncio.sleep(0)\nprint('awaited')"),
        ],
    )
    result = invoke("run", "-f", "json", notebook, "--seed", "3")
    assert result.exit_code == 0, result.stderr
    assert "argv ['--seed', '3']\nFalse\ntensor([1.])\nawaited\n" in result.stdout


def test_analyze_a_notebook(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "lesson.ipynb", LESSON)
    result = invoke("analyze", "--json", notebook)
    assert result.exit_code == 0, result.stderr
    passes = json.loads(result.stdout)["passes"]
    assert [(p["index"], p["label"]) for p in passes] == [(1, "cell 3"), (2, "cell 6")]
    assert not (tmp_path / "lesson_gradtrace").exists()


def test_gradtrace_magic_cells_run_and_bind_their_recorder(tmp_path: Path) -> None:
    """`%%gradtrace acc` in Jupyter runs the cell inside record() and keeps the Recorder as `acc`."""
    cells = [
        "import torch\nx = torch.tensor([1.0, 2.0], requires_grad=True)",
        "%%gradtrace --capture stats acc\n(x * 3).sum().backward()\n(x * 4).sum().backward()",
        "print('passes', len(acc.traces), acc.traces[1].options.capture)",
    ]
    notebook = tmp_path / "magic.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                    for c in cells
                ],
            }
        )
    )
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", notebook)
    assert result.exit_code == 0, result.output
    assert "passes 2 stats" in result.stdout
    written = sorted(p.name for p in (tmp_path / "out").glob("magic.pass*.json"))
    assert written == ["magic.pass1.cell2.json", "magic.pass2.cell2.json"]
