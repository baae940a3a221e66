"""`gradtrace render TRACE.json -o OUT`: the same files Trace.save writes, with the same drawing options."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

import tracer
from tests.cli_helpers import invoke, run_subprocess
from tracer.render.frames import frames

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def saved(tmp_path: Path) -> tuple[tracer.Trace, Path]:
    """A recorded pass of a small matrix-valued case, saved as JSON the way `gradtrace run` writes it."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = torch.tensor([0.5, -1.0], requires_grad=True)
    y = (x * w).sum(dim=1) ** 2
    trace = tracer.trace(y, gradient=torch.tensor([1.0, 0.0]), names={"x": x, "w": w})
    path = tmp_path / "pass1.json"
    path.write_text(trace.to_json())
    return tracer.load(path), path


def test_dot_is_the_libraries_dot_with_the_options(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    trace, path = saved
    result = invoke(
        "render",
        path,
        "-o",
        tmp_path / "g.dot",
        "--direction",
        "lr",
        "--precision",
        "3",
        "--theme",
        "dark",
        "--no-jacobian",
        "--no-legend",
        "--max-elements",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    expected = trace.to_dot(direction="LR", precision=3, theme="dark", jacobian=False, legend=False, max_elements=2)
    assert (tmp_path / "g.dot").read_text() == expected
    assert expected != trace.to_dot()  # the options changed the drawing
    assert result.stdout == f"wrote {tmp_path / 'g.dot'}\n"


def test_detail_and_step_are_the_librarys(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    trace, path = saved
    result = invoke("render", path, "-o", tmp_path / "g.dot", "--detail", "compact", "--step", "2")
    assert result.exit_code == 0, result.stderr
    expected = trace.to_dot(detail="compact", step=2)
    assert (tmp_path / "g.dot").read_text() == expected
    assert expected != trace.to_dot(step=2)


def test_json_round_trip(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    trace, path = saved
    assert invoke("render", path, "-o", tmp_path / "copy.json").exit_code == 0
    assert tracer.load(tmp_path / "copy.json") == trace


@pytest.mark.graphviz
def test_svg_png_pdf_html(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    trace, path = saved
    result = invoke("render", "-q", path)  # default output: the trace's name with .svg
    assert result.exit_code == 0 and result.stdout == ""
    svg_text = (tmp_path / "pass1.svg").read_text()
    assert svg_text == trace.svg()
    root = ET.fromstring(svg_text)
    assert root.tag == f"{SVG}svg"
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "x" in texts and "w" in texts and "PowBackward0" in texts
    assert invoke("render", path, "-o", tmp_path / "g.png").exit_code == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert invoke("render", path, "-o", tmp_path / "g.pdf").exit_code == 0
    assert (tmp_path / "g.pdf").read_bytes()[:5] == b"%PDF-"
    assert invoke("render", path, "-o", tmp_path / "g.html", "--theme", "dark").exit_code == 0
    page = (tmp_path / "g.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page.replace("http://www.w3.org", "")
    assert page.count("<svg") == len(trace.steps)  # one frame per step, inline


@pytest.mark.graphviz
def test_one_step_and_every_step(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    trace, path = saved
    assert invoke("render", path, "-o", tmp_path / "s2.svg", "--step", "2").exit_code == 0
    assert (tmp_path / "s2.svg").read_text() == trace.svg(step=2)
    result = invoke("render", path, "-o", tmp_path / "all.svg", "--steps")
    assert result.exit_code == 0, result.stderr
    count = len(trace.steps)
    names = [f"all-step{k:02d}.svg" for k in range(1, count + 1)]
    assert sorted(p.name for p in tmp_path.glob("all*.svg")) == sorted(["all.svg", *names])
    assert [(tmp_path / n).read_bytes() for n in names] == frames(trace, "svg")
    result = invoke("render", path, "-o", tmp_path / "s9.svg", "--step", str(count + 1))
    assert result.exit_code == 2
    assert f"step must be between 1 and {count} (the steps this pass ran), got {count + 1}" in result.stderr


def test_bad_input(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    _, path = saved
    result = invoke("render", tmp_path / "missing.json")
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: no trace file at '{tmp_path / 'missing.json'}' (check the path)\n",
    )
    result = invoke("render", path, "-o", tmp_path / "g.txt")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: unknown output format: '.txt' (must be one of ['.svg', '.json', '.html', '.dot', '.png', '.pdf']): "
        "give -o a file name that ends in one of them, e.g. -o g.svg\n",
    )
    for script in ("train.py", "lesson.ipynb"):
        (tmp_path / script).write_text("")
        result = invoke("render", tmp_path / script)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
        assert result.stderr.endswith(
            f"render draws a saved trace (.json). To record and draw it, run: gradtrace run {tmp_path / script}\n"
        )
    foreign = tmp_path / "package.json"
    foreign.write_text(json.dumps({"name": "left-pad", "version": "1.3.0"}))
    result = invoke("render", foreign)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {foreign}: not a gradtrace trace: expected a JSON object with "
        '"format": "gradtrace.trace", found None; '
        "a trace file is the .json that `gradtrace run SCRIPT.py` or Trace.save('t.json') writes\n"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "gradtrace.trace", "version": 1, "trace": {')
    result = invoke("render", broken, "-o", tmp_path / "b.dot")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {broken}: not a gradtrace trace: invalid JSON (")
    assert result.stderr.endswith("Trace.save('t.json') writes\n") and len(result.stderr.splitlines()) == 1
    result = invoke("render", path, "--direction", "diagonal")
    assert result.exit_code == 2 and "'diagonal' is not one of 'TB', 'LR'" in result.stderr


def test_existing_files(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    trace, path = saved
    mine = tmp_path / "picture.dot"
    mine.write_text("digraph { a -> b }")
    result = invoke("render", path, "-o", mine)
    assert result.exit_code == 1
    assert f"'{mine}' already exists and gradtrace did not write it; pass --force to replace" in result.stderr
    assert mine.read_text() == "digraph { a -> b }"
    assert invoke("render", path, "-o", mine, "--force").exit_code == 0
    assert mine.read_text() == trace.to_dot()
    # once written by gradtrace it is ours: drawing it again needs no --force
    assert invoke("render", path, "-o", mine, "--direction", "LR").exit_code == 0
    assert mine.read_text() == trace.to_dot(direction="LR")
    assert invoke("render", path, "-o", tmp_path / "other.dot").exit_code == 0
    assert mine.exists()  # render never removes earlier outputs


def test_without_graphviz(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    trace, path = saved
    empty = tmp_path / "no_programs"
    empty.mkdir()
    done = run_subprocess("render", path, "-o", tmp_path / "g.svg", env={"PATH": str(empty)})
    assert done.returncode == 1
    assert done.stderr.startswith("Error: Graphviz's `dot` program is needed to draw SVG and was not found on PATH.")
    assert "sudo apt-get install graphviz" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "g.svg").exists()
    done = run_subprocess("render", path, "-o", tmp_path / "g.dot", env={"PATH": str(empty)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "g.dot").read_text() == trace.to_dot()


def test_steps_need_a_picture_format(saved: tuple[tracer.Trace, Path], tmp_path: Path) -> None:
    _, path = saved
    result = invoke("render", path, "-o", tmp_path / "again.json", "--steps")
    assert result.exit_code == 2
    assert "--steps draws one picture per step; a .json file holds the whole trace" in result.stderr
    result = invoke("render", path, "-o", tmp_path / "frames.dot", "--steps")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("frames*.dot"))[0] == "frames-step01.dot"
