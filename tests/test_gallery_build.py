"""The gallery builder on small galleries of its own: what it writes, what it refuses, what it removes."""

from __future__ import annotations

import html
import json
import re
import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tracer.gallery.builder import MANIFEST, GalleryError, build, find_gallery, stale
from tracer.gallery.entries import discover, run

pytestmark = pytest.mark.graphviz

TOPIC = "# Small <cases>\n\nA topic for the tests, with `code`.\n"
SQUARE = '''
"""Squares at two points <b>

`y = x**2` with v = ones gives 2x: (2, 4).
"""

import torch

import tracer

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = x**2
tracer.trace(y, gradient=torch.ones_like(y), retain_graph=True)
tracer.trace(y, gradient=torch.tensor([1.0, 0.0]))  # the same graph again
assert x.grad.tolist() == [4.0, 4.0]
'''
FAILING = '''
"""A failing entry

It checks a wrong number.
"""

import torch

x = torch.tensor(2.0, requires_grad=True)
(x * x).backward()
assert x.grad.item() == 5.0, "wrong on purpose"
'''
ERROR = '''
"""An error shown

A vector output without a seed.
"""

import torch

import tracer

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = 2 * x
try:
    tracer.trace(y)
except RuntimeError as exc:
    error = exc
tracer.trace(y, gradient=torch.ones_like(y))
'''


def node_groups(svg: bytes) -> int:
    """How many Graphviz node groups (<g class="node ...">) an SVG holds."""
    groups = ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g")
    return sum(1 for g in groups if "node" in g.get("class", "").split())


def make_gallery(root: Path, scripts: dict[str, str]) -> Path:
    folder = root / "gallery"
    topic = folder / "cases" / "01-small"
    topic.mkdir(parents=True)
    (topic / "README.md").write_text(TOPIC, encoding="utf-8")
    for name, text in scripts.items():
        (topic / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return folder


def test_build_writes_pictures_pages_and_manifest(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE, "02-error.py": ERROR})
    result = build(folder)
    assert [e.id for e in result.entries] == ["01-small/01-square", "01-small/02-error"]
    files = set(result.files)
    # Two passes over one graph: two pictures, one step page (the second pass links to it).
    assert {"out/01-small/01-square/pass1.svg", "out/01-small/01-square/pass2.svg"} <= files
    assert "out/01-small/01-square/pass1.html" in files and "out/01-small/01-square/pass2.html" not in files
    assert {"index.html", "README.md"} <= files
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["files"] == sorted(result.files)
    for name in result.files:
        if name.endswith(".svg"):
            assert node_groups((folder / name).read_bytes()) >= 3  # seed, steps, leaf
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "Squares at two points &lt;b&gt;" in page and "<b>\n" not in page  # the title is escaped
    assert "<code>y = x**2</code>" in page  # backticks become code
    assert 'href="cases/01-small/01-square.py"' in page
    assert 'href="out/01-small/01-square/pass1.html">step through pass 1' in page
    assert "only for scalar outputs" in page and "gradtrace: The output has shape [2]" in page
    for link in re.findall(r'(?:href|src)="([^"#]+)"', page):
        assert (folder / html.unescape(link)).exists(), link


def test_build_is_deterministic_and_replaces_only_its_own_files(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE, "02-error.py": ERROR})
    build(folder)
    first = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    build(folder)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == first
    assert stale(folder) == []
    # An entry that goes away takes its files and folder with it.
    (folder / "cases" / "01-small" / "02-error.py").unlink()
    result = build(folder)
    assert "out/01-small/02-error/pass1.svg" in result.removed
    assert not (folder / "out" / "01-small" / "02-error").exists()


def test_a_foreign_file_in_the_way_stops_the_build(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE})
    (folder / "index.html").write_text("mine", encoding="utf-8")
    with pytest.raises(GalleryError, match=r"index\.html' already exists and the gallery builder did not write"):
        build(folder)
    assert (folder / "index.html").read_text(encoding="utf-8") == "mine"
    assert not (folder / "out").exists()
    build(folder, force=True)
    assert (folder / "index.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_failing_script_writes_nothing_and_names_its_line(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE, "02-failing.py": FAILING})
    with pytest.raises(GalleryError) as caught:
        build(folder)
    message = str(caught.value)
    assert "gallery entry 01-small/02-failing failed" in message
    assert "02-failing.py, line 10: assert x.grad.item() == 5.0" in message and "wrong on purpose" in message
    assert "runpy" not in message
    assert not (folder / "index.html").exists() and not (folder / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("import torch\n", "has no docstring"),
        ('"""Only a title"""\nimport torch\n', "no explanation"),
        ('"""Title\n\nText.\n"""\nimport torch\n', "made no backward pass"),
        ('"""Title\n\nText.\n"""\nDRAWING = {"theme": "pink"}\n', "made no backward pass"),
        ("def (:\n", "not valid Python"),
    ],
)
def test_bad_scripts_get_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    folder = make_gallery(tmp_path, {"01-bad.py": text})
    with pytest.raises(GalleryError, match=message):
        for script in discover(folder):
            run(script)


def test_bad_drawing_options_are_named(tmp_path: Path) -> None:
    bad = SQUARE + 'DRAWING = {"theme": "pink"}\n'
    folder = make_gallery(tmp_path, {"01-square.py": bad})
    with pytest.raises(GalleryError, match=r"01-small/01-square: DRAWING: .*theme.*pink"):
        run(discover(folder)[0])


def test_where_the_gallery_is(tmp_path: Path) -> None:
    assert (find_gallery() / "cases").is_dir()  # the repository's, found next to the package
    with pytest.raises(GalleryError, match="has no cases/ folder"):
        find_gallery(tmp_path)
    topic = tmp_path / "g" / "cases" / "01-t"
    topic.mkdir(parents=True)
    with pytest.raises(GalleryError, match=r"has no README\.md"):
        discover(tmp_path / "g")


def test_stale_finds_changed_missing_and_left_over_files(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE})
    build(folder)
    (folder / "out/01-small/01-square/pass2.dot").write_text("digraph {}", encoding="utf-8")
    (folder / "out/01-small/01-square/pass1.svg").unlink()
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"].append("out/01-small/gone/pass1.svg")
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    problems = stale(folder)
    changed = "out/01-small/01-square/pass2.dot differs from what the scripts give now (text differs near"
    assert any(p.startswith(changed) for p in problems), problems
    assert "out/01-small/01-square/pass1.svg is missing" in problems
    assert any("gone/pass1.svg is left over" in p for p in problems)


def test_an_outdir_elsewhere_links_back_to_the_scripts_and_the_notebook(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE})
    (folder / "notebook.ipynb").write_text("{}", encoding="utf-8")
    out = tmp_path / "site"
    build(folder, out)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="../gallery/cases/01-small/01-square.py"' in page
    assert 'href="../gallery/notebook.ipynb"' in page
    assert "](../gallery/notebook.ipynb)" in (out / "README.md").read_text(encoding="utf-8")
    assert not (folder / "index.html").exists()
    shutil.rmtree(out)


LESSON_AND_CHECKS = '''
"""A lesson, then its checks

`y = x**2` at 3 gives 6, as a tutorial printed it.
"""

import torch

import tracer

x = torch.tensor(3.0, requires_grad=True)
tracer.trace(x**2)

# --- checks: against the closed form
TUTORIAL = {"004 In [10] (2nd)": {"pass": 1, "x": "6.", "note": "one cell"}}
assert x.grad.item() == 6.0
'''


def test_the_lesson_comes_first_and_the_checks_are_folded_away(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-lesson.py": LESSON_AND_CHECKS})
    script = discover(folder)[0]
    assert script.code.rstrip().endswith("tracer.trace(x**2)") and "assert" not in script.code
    assert script.checks.startswith("TUTORIAL =") and "# --- checks" not in script.checks
    entry = run(script)
    assert [(c.cell, c.passes, dict(c.printed), c.note) for c in entry.tutorial] == [
        ("004 In [10] (2nd)", (1,), {"x": "6."}, "one cell")
    ]
    build(folder)
    page = (folder / "index.html").read_text(encoding="utf-8")
    lesson, checks = page.index("tracer.trace"), page.index('<details class="checks">')
    assert lesson < checks and "TUTORIAL" in page[checks:] and "open" not in page[checks : checks + 30]
    assert "tutorial cells 004 In [10] (2nd)" in page
    readme = (folder / "README.md").read_text(encoding="utf-8")
    row = "| 004 In [10] (2nd) | [01-small/01-lesson](index.html#e-01-small--01-lesson) | 1 | `x`: 6. | one cell |"
    assert row in readme.splitlines()


@pytest.mark.parametrize(
    ("tutorial", "message"),
    [
        ('["000 In [3]"]', "must be a dict"),
        ('{"In [3]": {"pass": 1}}', "names the cell 'In \\[3\\]'"),
        ('{"000 In [3]": {"x": "4"}}', "not a dict with a 'pass'"),
        ('{"000 In [3]": {"pass": 2}}', "the pass 2, but the entry made 1"),
        ('{"000 In [3]": {"pass": 1, "x": 4.0}}', "not text"),
    ],
)
def test_a_bad_tutorial_declaration_is_named(tmp_path: Path, tutorial: str, message: str) -> None:
    text = LESSON_AND_CHECKS.replace(
        'TUTORIAL = {"004 In [10] (2nd)": {"pass": 1, "x": "6.", "note": "one cell"}}', f"TUTORIAL = {tutorial}"
    )
    folder = make_gallery(tmp_path, {"01-lesson.py": text})
    with pytest.raises(GalleryError, match=f"01-small/01-lesson: TUTORIAL .*{message}"):
        run(discover(folder)[0])
