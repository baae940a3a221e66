"""`gradtrace why SCRIPT.py --leaf NAME`: the answer with its line, the error explained without --leaf, the picture
with -o, JSON, and one clear error for a name that is not in the script or not a tensor."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.cli_helpers import invoke, write_script

DETACHED = """
import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
features = model[0](torch.randn(5, 3)).detach()
loss = model[2](torch.relu(features)).pow(2).mean()
loss.backward()
print("trained")
"""

TWICE = """
import torch

w = torch.randn(3, requires_grad=True)
loss = (w.exp() * 2).sum()
loss.backward()
loss.backward()
"""


def test_why_names_the_cause_and_line_of_a_missing_gradient(tmp_path: Path) -> None:
    script = write_script(tmp_path, "train.py", DETACHED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("why", script, "--leaf", "model.0.weight")
    assert result.exit_code == 0, result.output
    assert "trained" in result.stdout  # the script ran as python would run it
    assert "model.0.weight.grad is None" in result.stdout
    assert "`.detach()`" in result.stdout and f"{script}:5" in result.stdout
    assert "5 | features = model[0](torch.randn(5, 3)).detach()" in result.stdout


def test_why_without_leaf_explains_the_error_the_script_ended_with(tmp_path: Path) -> None:
    script = write_script(tmp_path, "twice.py", TWICE)
    result = invoke("why", script, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["command"] == "why" and document["cause"] == "second-backward"
    assert document["line"] == 5 and document["file"] == str(script)
    assert "backward through the graph a second time" in document["error"]
    assert [step["kind"] for step in document["path"]] == ["cut", "output"]


@pytest.mark.graphviz
def test_why_draws_the_answer(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    script = write_script(tmp_path, "train.py", DETACHED)
    picture = tmp_path / "why.svg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("why", script, "--leaf", "model.0.weight", "-o", picture)
    assert result.exit_code == 0, result.output
    svg = ET.fromstring(picture.read_text(encoding="utf-8"))
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "cut: .detach()" in texts and "train.py:5" in texts and "model.0.weight" in texts
    assert f"wrote {picture}" in result.stdout


def test_why_for_a_name_not_in_the_script_is_one_clear_error(tmp_path: Path) -> None:
    script = write_script(tmp_path, "twice.py", TWICE.replace("loss.backward()\nloss.backward()", "loss.backward()"))
    result = invoke("why", script, "--leaf", "model.fc.weight")
    assert result.exit_code == 1
    assert "there is no variable 'model' in twice.py's globals" in result.stderr
    assert "Traceback" not in result.stderr


def test_why_for_a_name_that_is_not_a_tensor_is_one_clear_error(tmp_path: Path) -> None:
    script = write_script(tmp_path, "plain.py", "import torch\nsteps = 3\n")
    result = invoke("why", script, "--leaf", "steps")
    assert result.exit_code == 1
    assert "'steps' in plain.py's globals is an int, not a tensor" in result.stderr


def test_why_without_leaf_and_without_an_error_says_what_to_give(tmp_path: Path) -> None:
    script = write_script(
        tmp_path, "fine.py", "import torch\nw = torch.ones(2, requires_grad=True)\n(w * 2).sum().backward()\n"
    )
    result = invoke("why", script)
    assert result.exit_code == 1
    assert "ran without a backward error: give --leaf NAME" in result.stderr


def test_why_refuses_an_unknown_picture_format(tmp_path: Path) -> None:
    script = write_script(tmp_path, "fine.py", "import torch\n")
    result = invoke("why", script, "--leaf", "w", "-o", tmp_path / "why.gif")
    assert result.exit_code == 2
    assert "unknown format: '.gif'" in result.stderr


README_PICTURE = Path(__file__).resolve().parent.parent / "docs" / "pictures" / "why-detach.svg"


@pytest.mark.graphviz
def test_the_readme_picture_is_what_gradtrace_why_draws(tmp_path: Path) -> None:
    """docs/pictures/why-detach.svg (README, "Debug a missing gradient") is `gradtrace why train.py --leaf
    model.0.weight -o ...` on DETACHED; GRADTRACE_UPDATE_GOLDEN=1 rewrites it. Compared as the picture's texts."""
    import os
    import xml.etree.ElementTree as ET

    script = write_script(tmp_path, "train.py", DETACHED)
    fresh = tmp_path / "why.svg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert invoke("why", script, "--leaf", "model.0.weight", "-o", fresh).exit_code == 0
    if os.environ.get("GRADTRACE_UPDATE_GOLDEN"):
        README_PICTURE.parent.mkdir(exist_ok=True)
        README_PICTURE.write_bytes(fresh.read_bytes())

    def texts(path: Path) -> list[str | None]:
        return [t.text for t in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text")]

    assert texts(README_PICTURE) == texts(fresh)


def test_why_says_when_the_script_ended_with_another_error(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "broken.py",
        """
        import torch
        w = torch.randn(2, requires_grad=True)
        v = torch.randn(2)
        (v * 2).sum()
        raise KeyError("cfg")
        """,
    )
    result = invoke("why", script, "--leaf", "w")
    assert result.exit_code == 0, result.output
    assert "broken.py ended with KeyError: 'cfg'" in result.stderr  # said, and the question still answered
    assert "w.grad is None because no backward pass ran" in result.stdout
