"""Notebooks executed in a real Jupyter kernel (nbclient + ipykernel): the display data a frontend receives.

The committed example notebook is re-executed and its text outputs compared with the committed ones; after an
intended change, rewrite it with its new outputs:

    GRADTRACE_UPDATE_NOTEBOOK=1 pytest tests/test_notebook_kernel.py -k gallery
"""

from __future__ import annotations

import copy
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.notebook_helpers import data_of, errors, execute, new_notebook, outputs, stream_text, svg_roots
from tests.render_helpers import check_html, groups, texts

pytestmark = [pytest.mark.kernel, pytest.mark.graphviz, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
GALLERY_NOTEBOOK = ROOT / "gallery" / "notebook.ipynb"
UPDATE = os.environ.get("GRADTRACE_UPDATE_NOTEBOOK") == "1"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    nb = new_notebook(
        "%load_ext tracer\nimport sys\nimport torch\nimport tracer\nprint(sys.executable)",
        # y = [Σx, Σx²] with v = [1, 0.5]: x.grad = 1 + 0.5·2x = [2, 3, 4]
        "x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)\n"
        "y = torch.stack([x.sum(), (x**2).sum()])\n"
        "tracer.trace(y, gradient=torch.tensor([1.0, 0.5]))",
        "print(x.grad.tolist(), (1 + x).tolist())",
        "t = _\nt.show(steps=True)",
        "t.show(steps=True)",
        "%%gradtrace rec\n"
        "w = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)\n"
        "z = 2 * w + 3 * w[3]\n"
        "z.backward(torch.tensor([1.0, 0.0, 0.0, 0.0]), retain_graph=True)\n"
        "z.backward(torch.tensor([0.0, 1.0, 0.0, 0.0]))",
        "print(len(rec.traces), w.grad.tolist())",
        "M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])\n"
        "tracer.jacobian(lambda x: torch.mm(x, M), torch.tensor([[10.0, 5.0]]))",
    )
    return execute(nb, tmp_path_factory.mktemp("kernel"))


def test_the_kernel_is_this_interpreter(executed: Any) -> None:
    assert not errors(executed.cells[0])
    assert stream_text(executed.cells[0]) == sys.executable + "\n"


def test_the_picture_arrives_as_svg_with_v_and_vjp(executed: Any) -> None:
    cell = executed.cells[1]
    assert not errors(cell)
    (result,) = [o for o in outputs(cell) if o["output_type"] == "execute_result"]
    assert set(result["data"]) == {"image/svg+xml", "text/plain"}
    assert result["data"]["text/plain"].startswith("pass #1: backward of y[2] — 5 steps, 1 leaf, complete")
    (root,) = svg_roots(cell)  # parses as XML
    g = groups(root)
    assert "[1, 0.5]" in texts(g["seed0"])  # the seed v
    assert "step 1" in texts(g["n1"]) and "StackBackward0" in texts(g["n1"])
    assert texts(g["e1_0"]) == ["1"] and texts(g["e1_1"]) == ["0.5"]  # vᵀJ of the stack: v's parts, sent on
    printed = stream_text(executed.cells[2]).split("] [")
    grad = printed[0].strip("[] \n")
    assert grad == "2.0, 3.0, 4.0" and printed[1].strip("[] \n") == grad  # torch's x.grad = 1 + x here
    leaf = " ".join(texts(g["n5"]))
    assert "AccumulateGrad" in leaf and leaf.count("[2, 3, 4]") == 2  # added by the pass, and .grad after


def test_the_stepper_arrives_as_html_with_its_own_ids(executed: Any) -> None:
    first = data_of(executed.cells[3], "text/html")
    second = data_of(executed.cells[4], "text/html")
    assert len(first) == len(second) == 1
    for html in (first[0], second[0]):
        assert html.startswith('<div class="gt-stepper"') and 'data-steps="5"' in html
        assert len(re.findall(r'<figure class="gt-frame"', html)) == 5
        assert "<script>" in html and "ArrowRight" in html
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    page = check_html(first[0] + second[0])  # the same trace shown twice on one page
    assert len(page.ids) == len(set(page.ids))


def test_the_magic_shows_both_passes(executed: Any) -> None:
    cell = executed.cells[5]
    assert not errors(cell)
    (html,) = data_of(cell, "text/html")
    check_html(html)
    assert re.findall(r">(pass #\d): backward of z\[4\]", html) == ["pass #1", "pass #2"]
    pictures = re.findall(r"<svg\b.*?</svg>", html, re.DOTALL)
    assert len(pictures) == 2
    second = " ".join(texts(ET.fromstring(pictures[1])))
    assert "[2, 0, 0, 3]" in second and "[2, 2, 0, 6]" in second  # .grad before → after: accumulated
    assert stream_text(executed.cells[6]) == "2 [2.0, 2.0, 0.0, 6.0]\n"


def test_the_jacobian_arrives_as_a_table(executed: Any) -> None:
    (html,) = data_of(executed.cells[7], "text/html")
    cells = re.findall(r"<td [^>]*>([^<]*)</td>", html)
    assert cells == ["1", "3", "2", "4"]  # J = Mᵀ, row by row
    assert "method: " in html and "check: equals torch.autograd.functional.jacobian" in html


def _text_outputs(nb: Any) -> list[list[tuple[str, str]]]:
    """Per code cell, the outputs a reader reads as text; pictures are left out (their layout is Graphviz's)."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        items = []
        for out in outputs(cell):
            if out["output_type"] == "stream":
                items.append((out["name"], out["text"]))
            elif out["output_type"] == "error":
                items.append(("error", f"{out['ename']}: {out['evalue']}"))
            else:
                for mime, value in sorted(out["data"].items()):
                    if mime != "image/svg+xml" and "<svg" not in value:
                        items.append((mime, value))
                    elif mime == "text/html":  # the steppers' ids come from the DOT text: no layout in them
                        items.append(("stepper ids", " ".join(re.findall(r'class="gt-stepper" id="([^"]+)"', value))))
        found.append(items)
    return found


def test_gallery_notebook_is_committed_with_its_current_outputs(tmp_path: Path) -> None:
    committed = nbformat.read(GALLERY_NOTEBOOK, as_version=4)
    fresh = execute(copy.deepcopy(committed), tmp_path)
    if UPDATE:
        nbformat.write(fresh, GALLERY_NOTEBOOK)
        committed = nbformat.read(GALLERY_NOTEBOOK, as_version=4)
    assert _text_outputs(fresh) == _text_outputs(committed), (
        "gallery/notebook.ipynb's outputs are stale: run GRADTRACE_UPDATE_NOTEBOOK=1 pytest "
        "tests/test_notebook_kernel.py -k gallery and review the diff"
    )
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(outputs(c) for c in code[1:]), "every code cell after the imports is committed with its output"
    assert not any(errors(c) for c in code)
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    mimes = {m for c in code for o in outputs(c) for m in o.get("data", {})}
    assert {"image/svg+xml", "text/html", "text/plain"} <= mimes
    for cell in code:
        for root in svg_roots(cell):
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "execution" not in cell.metadata, "no timestamps"
    text = GALLERY_NOTEBOOK.read_text(encoding="utf-8")
    for path in {str(ROOT), str(tmp_path), str(Path.home()), "/tmp/"}:
        assert path not in text, f"an absolute path ({path}) in the committed notebook"
    assert committed.metadata.kernelspec.name == "python3"
