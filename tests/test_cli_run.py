"""`gradtrace run SCRIPT.py`: runs the script as python would, records every pass, writes them (CliRunner)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

import tracer
from tests.cases import CASES
from tests.cli_helpers import ROOT, invoke, our_frames, run_subprocess, write_script

TUTORIAL_SCRIPT = ROOT / "tests" / "scripts" / "tutorial_cases.py"

ARGV_ECHO = """
import sys
import torch
print("argv", sys.argv[1:])
x = torch.tensor([1.0], requires_grad=True)
(x * 2).sum().backward()
"""

TWO_PASSES = """
    import sys
    import torch

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (x ** 2).sum().backward()
    y = x * 3
    y.backward(torch.ones_like(y))
    print("grad", x.grad.tolist())
    if sys.argv[1:] == ["fail"]:
        def deeper():
            return 1 / 0
        deeper()
    if sys.argv[1:2] == ["exit"]:
        sys.exit(int(sys.argv[2]))
"""


LEAVES_A_MARK = TWO_PASSES + "    open(__file__ + '.ran', 'w').close()  # shows that the script ran\n"


def load_outputs(folder: Path) -> list[tracer.Trace]:
    """Every trace JSON in the folder, read back with tracer.load, in pass order."""
    return sorted((tracer.load(p) for p in folder.glob("*.json") if not p.name.startswith(".")), key=lambda t: t.index)


def manifest(folder: Path, name: str = ".gradtrace-manifest.json") -> dict[str, str]:
    files: dict[str, str] = json.loads((folder / name).read_text())["files"]
    return files


# --------------------------------------------------------------------------- runs like python


def test_the_script_sees_what_python_gives_it(tmp_path: Path) -> None:
    (tmp_path / "helper_mod.py").write_text("VALUE = 42\n")
    script = write_script(
        tmp_path,
        "probe.py",
        """
        import json, os, sys
        import torch
        import helper_mod  # a module next to the script: its folder is first on sys.path

        x = torch.ones(2, requires_grad=True)
        x.sum().backward()
        print(json.dumps({
            "argv": sys.argv, "name": __name__, "file": __file__, "path0": sys.path[0],
            "cwd": os.getcwd(), "helper": helper_mod.VALUE, "main_is_me": sys.modules["__main__"].__dict__ is globals(),
            "spec": __spec__,
        }))
        """,
    )
    argv = ["--lr", "0.1", "-o", "inner", "positional"]
    reference = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    expected = json.loads(reference.stdout)
    # "-o inner" is also one of gradtrace's options: after `--` it is the script's
    result = invoke("run", "-q", "-f", "json", "-o", tmp_path / "out", script, "--", *argv)
    assert result.exit_code == 0, result.output
    seen = json.loads(result.stdout.splitlines()[0])
    expected["cwd"] = seen["cwd"]  # the test process runs elsewhere; the script must not be moved there
    assert seen == expected
    assert seen["argv"] == [str(script), *argv]
    assert seen["main_is_me"] is True


def test_exit_code_of_the_script_is_ours(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", script, "exit", "3")
    assert result.exit_code == 3
    assert len(load_outputs(tmp_path / "out")) == 2
    assert "two.py exited with code 3; the passes recorded before that are written" in result.stderr
    message = write_script(
        tmp_path,
        "message.py",
        "import torch, sys\ntorch.ones(1, requires_grad=True).sum().backward()\n"
        "sys.exit('bad config: lr must be > 0')\n",
    )
    result = invoke("run", "-q", "-f", "json", "-o", tmp_path / "out2", message)
    assert result.exit_code == 1
    assert result.stderr.startswith("bad config: lr must be > 0\n")


def test_every_tutorial_case_gives_torchs_own_gradients(tmp_path: Path) -> None:
    result = invoke("run", "-q", "-f", "json", "--passes", "all", "-o", tmp_path / "out", TUTORIAL_SCRIPT)
    assert result.exit_code == 0, result.stderr
    traces = load_outputs(tmp_path / "out")
    assert [t.index for t in traces] == list(range(1, len(CASES) + 1))
    for case, trace in zip(CASES, traces, strict=True):
        leaves = case.leaves()
        y = case.forward(leaves)
        y.backward(case.seed(y))  # torch's own, without gradtrace
        assert set(trace.leaves) == set(leaves), case.id
        assert trace.label == "tutorial_cases.py"
        for name, leaf in leaves.items():
            recorded = trace.leaves[name].grad
            assert recorded is not None, (case.id, name)
            assert torch.equal(recorded.as_tensor(), leaf.grad), (case.id, name, recorded, leaf.grad)
            expected = case.expected(leaves).get(name)
            if expected is not None:
                torch.testing.assert_close(recorded.as_tensor(), expected.to(leaf.grad.dtype), msg=case.id)


@pytest.mark.parametrize("tutorial", ["000", "001", "002", "003", "004"])
def test_each_tutorial_alone(tmp_path: Path, tutorial: str) -> None:
    cases = [c for c in CASES if c.tutorial == tutorial]
    result = invoke("run", "-f", "json", "--passes", "all", "-o", tmp_path / "out", TUTORIAL_SCRIPT, tutorial)
    assert result.exit_code == 0, result.stderr
    traces = load_outputs(tmp_path / "out")
    assert len(traces) == len(cases)
    assert f"{len(cases)} passes of tutorial_cases.py" in result.stdout


# --------------------------------------------------------------------------- what is written


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("href", "src") and value:
                (self.external if "://" in value or value.startswith("//") else self.links).append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_files_names_manifest_and_index(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-f", "json,dot", "-o", tmp_path / "out", script)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    names = {"two.pass1.json", "two.pass2.json", "two.pass1.dot", "two.pass2.dot", "index.html"}
    names |= {"two.timeline.svg", "two.timeline.csv"}  # the overview of every pass
    assert {p.name for p in out.iterdir()} == names | {".gradtrace-manifest.json"}
    assert manifest(out) == dict.fromkeys(sorted(names), "two.py")
    page = _Links()
    page.feed((out / "index.html").read_text())
    # the overview's picture three times: shown, linking to itself, and its link beside the CSV's
    assert sorted(page.links) == sorted([*(names - {"index.html"}), "two.timeline.svg", "two.timeline.svg"])
    assert page.external == []
    assert "two.py" in page.text and "two.py:5" in page.text and "two.py:7" in page.text
    assert str(tmp_path) not in (out / "index.html").read_text()  # no absolute paths: the folder can move
    assert "2 passes of two.py" in result.stdout and "index.html" in result.stdout


def test_default_folder_is_next_to_the_script(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-q", "-f", "json", script)
    assert result.exit_code == 0, result.stderr
    assert len(load_outputs(tmp_path / "two_gradtrace")) == 2


def test_pass_selection(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-f", "json", "--pass", "2", "-o", tmp_path / "a", script)
    assert result.exit_code == 0
    assert [t.index for t in load_outputs(tmp_path / "a")] == [2]
    result = invoke("run", "-f", "json", "--pass", "1-", "--pass", "7", "-o", tmp_path / "b", script)
    assert result.exit_code == 0
    assert [t.index for t in load_outputs(tmp_path / "b")] == [1, 2]
    assert "no pass 7: there were 2 backward passes" in result.stderr
    result = invoke("run", "-f", "json", "--pass", "5-6", "-o", tmp_path / "c", script)
    assert result.exit_code == 1
    assert "Error: no pass 5-6: there were 2 backward passes (choose with --pass 1-2)" in result.stderr
    result = invoke("run", "--pass", "two", script)
    assert result.exit_code == 2
    assert "invalid pass: 'two'" in result.stderr


def test_never_overwrites_a_file_that_is_not_ours(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", LEAVES_A_MARK)
    out = tmp_path / "out"
    out.mkdir()
    (out / "two.pass1.json").write_text("my own notes")
    result = invoke("run", "-f", "json", "-o", out, script)
    assert result.exit_code == 1
    assert "two.pass1.json' already exists and gradtrace did not write it; pass --force to replace" in result.stderr
    assert (out / "two.pass1.json").read_text() == "my own notes"
    assert not (tmp_path / "two.py.ran").exists()  # refused before running the script
    (out / "index.html").write_text("<p>mine</p>")
    (out / "two.pass1.json").unlink()
    assert invoke("run", "-f", "json", "-o", out, script).exit_code == 1
    assert (out / "index.html").read_text() == "<p>mine</p>"
    result = invoke("run", "-q", "-f", "json", "--force", "-o", out, script)
    assert result.exit_code == 0
    assert len(load_outputs(out)) == 2 and "two.pass1.json" in manifest(out)


def test_our_own_files_are_replaced_and_stale_ones_removed(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    out = tmp_path / "out"
    assert invoke("run", "-q", "-f", "json,dot", "-o", out, script).exit_code == 0
    (out / "unrelated.txt").write_text("kept")
    result = invoke("run", "-f", "json", "--pass", "1", "-o", out, script)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".gradtrace-manifest.json",
        "index.html",
        "two.pass1.json",
        "two.timeline.csv",
        "two.timeline.svg",
        "unrelated.txt",
    ]
    assert "removed 3 files of the previous run" in result.stdout
    assert manifest(out) == dict.fromkeys(
        ["index.html", "two.pass1.json", "two.timeline.csv", "two.timeline.svg"], "two.py"
    )


def test_ranks_write_their_own_files(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    out = tmp_path / "out"
    for rank in ("0", "1"):
        result = invoke("run", "-q", "-f", "json", "-o", out, script, env={"RANK": rank, "LOCAL_RANK": rank})
        assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        ".gradtrace-manifest.rank0.json",
        ".gradtrace-manifest.rank1.json",
        "index.rank0.html",
        "index.rank1.html",
        "two.rank0.pass1.json",
        "two.rank0.pass2.json",
        "two.rank0.timeline.csv",
        "two.rank0.timeline.svg",
        "two.rank1.pass1.json",
        "two.rank1.pass2.json",
        "two.rank1.timeline.csv",
        "two.rank1.timeline.svg",
    ]
    assert "rank 1" in (out / "index.rank1.html").read_text()


def test_recorder_options_reach_the_recorder(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke(
        "run",
        "-q",
        "-f",
        "json",
        "--capture",
        "stats",
        "--max-values",
        "0",
        "--jacobian-limit",
        "0",
        "-o",
        tmp_path / "out",
        script,
    )
    assert result.exit_code == 0, result.stderr
    trace = load_outputs(tmp_path / "out")[0]
    assert (trace.options.capture, trace.options.max_values, trace.options.jacobian_limit) == ("stats", 0, 0)
    assert all(s.jacobian is None for s in trace.steps)
    step = trace.steps[0]
    assert step.v[0] is not None and step.v[0].values is None and step.v[0].stats is not None
    result = invoke("run", "--capture", "most", script)
    assert result.exit_code == 2 and "'most' is not one of 'auto', 'stats', 'full'" in result.stderr


HIDDEN_MODEL = """
import torch


class Trainer:
    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)


trainer = Trainer()


def step():
    loss = trainer.model(torch.ones(1, 2)).sum()
    loss.backward()


step()
trainer = Trainer()  # rebound between passes: --names follows the variable, not the first object
step()
"""


def test_names_reach_inside_objects_and_follow_rebinding(tmp_path: Path) -> None:
    """A model inside an object is out of reach of the automatic names; --names trainer.model names it."""
    script = write_script(tmp_path, "hidden.py", HIDDEN_MODEL)
    result = invoke("run", "-q", "-f", "json", "-o", tmp_path / "auto", script)
    assert result.exit_code == 0, result.stderr
    assert sorted(load_outputs(tmp_path / "auto")[0].leaves) == ["leaf0", "leaf1"]

    result = invoke("run", "-q", "-f", "json", "--names", "trainer.model", "-o", tmp_path / "named", script)
    assert result.exit_code == 0, result.stderr
    traces = load_outputs(tmp_path / "named")
    assert len(traces) == 2
    for t in traces:
        assert sorted(t.leaves) == ["trainer.model.bias", "trainer.model.weight"]
        assert t.leaves["trainer.model.bias"].grad.values == (1.0,)  # type: ignore[union-attr]
    assert result.stderr == ""

    result = invoke("run", "-f", "json", "--names", "trainer.modle", "-o", tmp_path / "typo", script)
    assert result.exit_code == 0
    assert "gradtrace: --names trainer.modle: no tensor or nn.Module of that name when a pass started" in (
        result.stderr
    )
    result = invoke("run", "--names", "trainer..model", script)
    assert (result.exit_code, len(result.stderr.splitlines())) == (2, 1)
    assert "--names 'trainer..model' is not a variable name or a dotted path" in result.stderr


# --------------------------------------------------------------------------- reports


def test_json_report_is_the_only_thing_on_stdout(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "--json", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert "grad [5.0, 7.0]" in result.stderr  # the script's own prints moved aside
    assert report["command"] == "run" and report["exit_code"] == 0 and report["recorded"] == 2
    assert [p["files"] for p in report["passes"]] == [["two.pass1.json"], ["two.pass2.json"]]
    assert [p["steps"] for p in report["passes"]] == [3, 2]
    assert report["passes"][0]["leaves"] == ["x"] and report["index"] == "index.html"


def test_quiet_prints_nothing_of_ours(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-q", "-f", "json", "-o", tmp_path / "out", script, "--", "-o", "x")
    assert result.exit_code == 0
    assert result.stdout == "grad [5.0, 7.0]\n"
    assert result.stderr == ""


def test_our_options_may_follow_the_script_as_in_the_design(tmp_path: Path) -> None:
    """`gradtrace run SCRIPT.py [ARGS]... -o OUTDIR --format ...`: ours are recognised after the script too."""
    script = write_script(tmp_path, "argv.py", ARGV_ECHO)
    result = invoke("run", script, "--epochs", "3", "-o", tmp_path / "out", "--format", "json", "-q", "data.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "argv ['--epochs', '3', 'data.csv']\n"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json") if not p.name.startswith(".")) == [
        "argv.pass1.json"
    ]


def test_after_a_double_dash_everything_is_the_scripts(tmp_path: Path) -> None:
    script = write_script(tmp_path, "argv.py", ARGV_ECHO)
    result = invoke("run", "-q", "-f", "json", "-o", tmp_path / "out", script, "--", "-o", "model.pt", "--format", "x")
    assert result.exit_code == 0, result.output
    assert result.stdout == "argv ['-o', 'model.pt', '--format', 'x']\n"


# --------------------------------------------------------------------------- failures


def test_a_failing_script_shows_its_own_traceback_and_keeps_the_passes(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", script, "fail")
    assert result.exit_code == 1
    err = result.stderr
    assert err.startswith("Traceback (most recent call last):\n")
    assert f'File "{script}", line 12, in <module>' in err
    assert f'File "{script}", line 11, in deeper' in err
    assert "ZeroDivisionError: division by zero" in err
    assert our_frames(err) == []
    assert "two.py raised ZeroDivisionError; the passes recorded before that are written" in err
    assert len(load_outputs(tmp_path / "out")) == 2


def test_a_pass_that_fails_is_written_incomplete(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "custom.py",
        """
        import torch

        class Broken(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                raise ValueError("my backward is broken")

        x = torch.tensor([1.0, 2.0], requires_grad=True)
        (x * 2).sum().backward()
        Broken.apply(x).sum().backward()
        """,
    )
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 1
    assert 'line 10, in backward\n    raise ValueError("my backward is broken")' in result.stderr
    assert our_frames(result.stderr) == []
    first, second = load_outputs(tmp_path / "out")
    assert first.complete and not second.complete
    assert second.error == "ValueError: my backward is broken"
    assert "incomplete" in (tmp_path / "out" / "index.html").read_text()


def test_a_known_torch_error_carries_the_explanation(tmp_path: Path) -> None:
    script = write_script(
        tmp_path, "vector.py", "import torch\nx = torch.ones(3, requires_grad=True)\ny = x * 2\ny.backward()\n"
    )
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 1
    assert "RuntimeError: grad can be implicitly created only for scalar outputs" in result.stderr
    assert "gradtrace: The output has shape [3], so backward needs a seed v of that same shape" in result.stderr
    assert "y.backward(gradient=torch.ones_like(y))" in result.stderr
    assert "ran without a backward pass before it stopped" in result.stderr


def test_interrupted_script_keeps_its_passes(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "ctrl_c.py",
        "import torch\ntorch.ones(1, requires_grad=True).sum().backward()\nraise KeyboardInterrupt\n",
    )
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 130
    assert "KeyboardInterrupt" in result.stderr
    assert len(load_outputs(tmp_path / "out")) == 1


def test_a_script_without_backward(tmp_path: Path) -> None:
    script = write_script(tmp_path, "forward_only.py", "import torch\nprint(torch.ones(2) * 2)\n")
    result = invoke("run", "-o", tmp_path / "out", script)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: forward_only.py ran without a backward pass: nothing to record.")
    assert "Tensor.backward(), torch.autograd.backward() and torch.autograd.grad()" in result.stderr
    assert not (tmp_path / "out").exists()
    exits = write_script(tmp_path, "exits.py", "import sys\nsys.exit(4)\n")
    assert invoke("run", exits).exit_code == 4


def test_a_syntax_error_is_the_users(tmp_path: Path) -> None:
    script = write_script(tmp_path, "broken.py", "import torch\nx = (1,\n")
    result = invoke("run", script)
    assert result.exit_code == 1
    assert f'File "{script}", line 2' in result.stderr and "SyntaxError" in result.stderr
    assert our_frames(result.stderr) == [] and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.py", "Error: no such file: '{path}' (check the path and the current folder)"),
        ("notes.txt", "Error: cannot run '{path}': gradtrace runs a Python script (.py) or a notebook (.ipynb)"),
        ("folder.py", "Error: '{path}' is a folder; give the path of a .py script or an .ipynb notebook"),
    ],
)
def test_bad_sources(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    if name == "notes.txt":
        path.write_text("x")
    if name == "folder.py":
        path.mkdir()
    result = invoke("run", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(message.format(path=path))
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_an_output_folder_that_cannot_be_written(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", LEAVES_A_MARK)
    (tmp_path / "a_file").write_text("x")
    result = invoke("run", "-o", tmp_path / "a_file" / "out", script)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot write to '{tmp_path / 'a_file' / 'out'}': '{tmp_path / 'a_file'}' is a file, not a folder; "
        "choose another folder with -o\n"
    )
    assert not (tmp_path / "two.py.ran").exists()


def test_unknown_format(tmp_path: Path) -> None:
    result = invoke("run", "-f", "svg,xyz", tmp_path / "x.py")
    assert result.exit_code == 2
    assert "unknown format: 'xyz' (must be one of ['svg', 'json', 'html', 'dot', 'png', 'pdf'])" in result.stderr


# --------------------------------------------------------------------------- pictures


@pytest.mark.graphviz
def test_default_formats_are_svg_and_json_drawn_from_the_same_trace(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-o", tmp_path / "out", "--direction", "LR", "--precision", "3", script)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    for trace in load_outputs(out):
        svg_text = (out / f"two.pass{trace.index}.svg").read_text()
        assert svg_text == trace.svg(direction="LR", precision=3)  # the JSON and the picture are the same pass
        root = ET.fromstring(svg_text)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    page = _Links()
    page.feed((out / "index.html").read_text())
    # each SVG three times: its link, and the preview picture linking to it; the overview's the same, and its CSV
    pictures = ["two.pass1.svg", "two.pass2.svg", "two.timeline.svg"] * 3
    assert sorted(page.links) == sorted(["two.pass1.json", "two.pass2.json", "two.timeline.csv", *pictures])


@pytest.mark.graphviz
def test_steps_draw_every_step(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    result = invoke("run", "-f", "svg,html,json", "--steps", "--pass", "1", "-o", tmp_path / "out", script)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    (trace,) = load_outputs(out)
    frames = sorted(p.name for p in out.glob("two.pass1-step*.svg"))
    assert frames == [f"two.pass1-step{k:02d}.svg" for k in range(1, len(trace.steps) + 1)]
    assert [(out / f).read_text() for f in frames] == [trace.svg(step=k) for k in range(1, len(trace.steps) + 1)]
    assert (out / "two.pass1.html").read_text().count("<svg") == len(trace.steps)
    assert f"+ {len(trace.steps)} step pictures" in result.stdout
    index = (out / "index.html").read_text()
    assert all(f'href="{f}"' in index for f in frames)


def test_without_graphviz_json_and_dot_are_still_written(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", TWO_PASSES)
    empty = tmp_path / "no_programs"
    empty.mkdir()
    done = run_subprocess("run", "-o", tmp_path / "out", script, cwd=tmp_path, env={"PATH": str(empty)})
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1
    assert errors[0].startswith("Error: Graphviz's `dot` program is needed to draw SVG and was not found on PATH.")
    assert f"`gradtrace render {tmp_path / 'out' / 'two.pass1.json'} -o two.pass1.svg`" in errors[0]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        ".gradtrace-manifest.json",
        "index.html",
        "two.pass1.dot",
        "two.pass1.json",
        "two.pass2.dot",
        "two.pass2.json",
        "two.timeline.csv",  # the overview is gradtrace's own SVG: no Graphviz needed
        "two.timeline.svg",
    ]
    assert "Graphviz" in (tmp_path / "out" / "index.html").read_text()


def test_a_script_that_changes_folder_still_writes_where_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_script(tmp_path, "moves.py", f"import os\nos.chdir({str(elsewhere)!r})\n" + textwrap.dedent(TWO_PASSES))
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "-q", "-f", "json", "-o", "out", "moves.py")
    assert result.exit_code == 0, result.stderr
    assert len(load_outputs(tmp_path / "out")) == 2
    assert not (elsewhere / "out").exists()
    assert Path.cwd() == tmp_path


def test_json_report_of_a_failure(tmp_path: Path) -> None:
    result = invoke("run", "--json", tmp_path / "missing.py")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "command": "run",
        "exit_code": 1,
        "error": f"no such file: '{tmp_path / 'missing.py'}' (check the path and the current folder)",
    }
    script = write_script(tmp_path, "forward.py", "x = 1\n")
    result = invoke("run", "--json", script)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"].startswith("forward.py ran without a backward pass")


def test_a_script_with_its_own_cli_module(tmp_path: Path) -> None:
    (tmp_path / "cli.py").write_text("GREETING = 'the script folder cli.py'\n")
    script = write_script(tmp_path, "uses_cli.py", "import cli\nprint(cli.GREETING)\n" + textwrap.dedent(TWO_PASSES))
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("the script folder cli.py\n")
    assert len(load_outputs(tmp_path / "out")) == 2
    import cli.main  # ours again afterwards

    assert hasattr(cli.main, "cli")
