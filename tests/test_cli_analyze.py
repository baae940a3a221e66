"""`gradtrace analyze`: the library's summary and health report of a saved trace or of a script's passes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import tracer
from tests.cli_helpers import invoke, our_frames, write_script

SCRIPT = """
    import torch

    class Wrong(torch.autograd.Function):  # a custom backward that returns twice the true gradient
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 4 * x * g

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (x ** 2).sum().backward()
    Wrong.apply(x).sum().backward()
"""


def test_a_saved_trace(tmp_path: Path) -> None:
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    trace = tracer.trace((x * x).sum())
    path = tmp_path / "t.json"
    path.write_text(trace.to_json())
    loaded = tracer.load(path)
    result = invoke("analyze", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == loaded.summary()
    result = invoke("analyze", "--json", path)
    report = json.loads(result.stdout)
    assert report["command"] == "analyze" and report["exit_code"] == 0
    (entry,) = report["passes"]
    assert entry["summary"] == json.loads(json.dumps(tracer.summary_data(loaded)))
    assert entry["steps"] == len(loaded.steps) and entry["leaves"] == ["x"]


def test_every_pass_of_a_script_and_nothing_written(tmp_path: Path) -> None:
    script = write_script(tmp_path, "wrong.py", SCRIPT)
    before = sorted(tmp_path.iterdir())
    result = invoke("analyze", script)
    assert result.exit_code == 0, result.stderr
    assert sorted(tmp_path.iterdir()) == before
    assert result.stdout.count("pass #") == 2
    assert "wrong backward" in result.stdout.lower() or "wrong-backward" in result.stdout
    result = invoke("analyze", "--json", script)
    passes = json.loads(result.stdout)["passes"]
    assert [p["index"] for p in passes] == [1, 2]
    flags = [f["kind"] for f in passes[1]["summary"]["health"]["flags"]]
    assert flags and all(f == "wrong-backward" for f in flags), flags
    assert passes[0]["summary"]["health"]["flags"] == []
    result = invoke("analyze", "--json", "--pass", "2", script)
    assert [p["index"] for p in json.loads(result.stdout)["passes"]] == [2]


def test_a_failing_script_is_analysed_up_to_the_failure(tmp_path: Path) -> None:
    script = write_script(tmp_path, "fails.py", SCRIPT + "    raise SystemError('after two passes')\n")
    result = invoke("analyze", script)
    assert result.exit_code == 1
    assert "SystemError: after two passes" in result.stderr and our_frames(result.stderr) == []
    assert result.stdout.count("pass #") == 2


def test_bad_input(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    result = invoke("analyze", notes)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot analyze '{notes}': give a saved trace (.json), a Python script (.py) or a notebook (.ipynb)\n"
    )
    result = invoke("analyze", tmp_path / "gone.json")
    assert result.exit_code == 1 and result.stderr.startswith("Error: no trace file at")
    script = write_script(tmp_path, "forward.py", "import torch\ntorch.ones(1) + 1\n")
    result = invoke("analyze", script)
    assert result.exit_code == 1 and "forward.py ran without a backward pass" in result.stderr
