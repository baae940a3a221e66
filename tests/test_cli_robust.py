"""`gradtrace run` when things go wrong: the script dies (os._exit, SIGKILL), passes run that cannot be recorded,
the script's name is not plain text or is very long, the output folder turns against us midway. What was recorded
is kept, what happened is said once in plain words, and the exit code is the script's own (issue 16)."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

import tracer
from cli.outputs import STEM_MAX, display_name, file_stem
from tests.cli_helpers import invoke, our_frames, run_subprocess, write_script
from tests.fuzzing import TALLY
from tracer.render.output_files import Manifest, temporary

recorder_module = importlib.import_module("tracer.record.recorder")  # `tracer.record` is also the function

THREE_PASSES = """
    import os, signal, sys
    import torch

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    for step in range(3):
        (x ** 2 * (step + 1)).sum().backward()
    print("three passes done", flush=True)
"""


def pass_files(folder: Path, suffix: str = ".json") -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(suffix) and not p.name.startswith("."))


def listed(folder: Path, name: str = ".gradtrace-manifest.json") -> dict[str, str]:
    """What the folder's manifest lists, its journal included (as gradtrace reads it)."""
    return Manifest(folder / name, "gradtrace.outputs").read()


def counted(what: str) -> None:
    TALLY[f"scripts that died or hid passes, run under gradtrace ({what})"] += 1


# --------------------------------------------------------------------------- each pass written as it ends


def test_each_pass_is_on_disk_when_its_backward_returns(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = write_script(
        tmp_path,
        "looks.py",
        f"""
        import os
        import torch

        x = torch.tensor([1.0, 2.0], requires_grad=True)
        for step in range(3):
            (x * (step + 1)).sum().backward()
            print(sorted(f for f in os.listdir({str(out)!r}) if f.endswith(".json") and f[0] != "."))
        """,
    )
    result = invoke("run", "--passes", "all", "-f", "json,dot", "-o", out, script)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "['looks.pass1.json']",
        "['looks.pass1.json', 'looks.pass2.json']",
        "['looks.pass1.json', 'looks.pass2.json', 'looks.pass3.json']",
    ]
    assert pass_files(out, ".dot") == ["looks.pass1.dot", "looks.pass2.dot", "looks.pass3.dot"]
    assert not (out / ".gradtrace-manifest.json.journal").exists()  # folded into the manifest at the end
    overview = {"looks.timeline.svg", "looks.timeline.csv"}
    assert set(listed(out)) == {"index.html", *pass_files(out), *pass_files(out, ".dot"), *overview}
    assert (out / "index.html").read_text().count('<td class="num">') == 6  # pass number and steps, per pass
    counted("written as each pass ends")


def test_a_script_that_calls_os_exit_keeps_every_pass(tmp_path: Path) -> None:
    script = write_script(tmp_path, "job.py", THREE_PASSES + "    os._exit(5)\n")
    out = tmp_path / "out"
    done = run_subprocess("run", "--passes", "all", "-f", "json,dot", "-o", out, script, cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    assert done.stdout == "three passes done\n"
    assert pass_files(out) == ["job.pass1.json", "job.pass2.json", "job.pass3.json"]
    assert pass_files(out, ".dot") == ["job.pass1.dot", "job.pass2.dot", "job.pass3.dot"]
    assert [tracer.load(out / f).index for f in pass_files(out)] == [1, 2, 3]
    assert set(listed(out)) == {"index.html", *pass_files(out), *pass_files(out, ".dot")}
    assert not (out / ".gradtrace-manifest.json.journal").exists()
    page = (out / "index.html").read_text()
    assert "3 backward passes recorded" in page and page.rstrip().endswith("</html>")
    assert "job.py ended the process with os._exit(5); the 3 passes recorded before are written" in done.stderr
    machine = run_subprocess("run", "--passes", "all", "--json", "-f", "json", "-o", out, script, cwd=tmp_path)
    assert machine.returncode == 5
    document = json.loads(machine.stdout)  # stdout is still one JSON document (the script's print is on stderr)
    assert (document["exit_code"], document["os_exit"], len(document["passes"])) == (5, True, 3)
    counted("os._exit")


def test_a_killed_script_keeps_the_record_of_every_finished_pass(tmp_path: Path) -> None:
    script = write_script(
        tmp_path, "killed.py", THREE_PASSES + "    if sys.argv[1:] == ['kill']:\n        os.kill(os.getpid(), 9)\n"
    )
    out = tmp_path / "out"
    done = run_subprocess("run", "--passes", "all", "-f", "json,dot", "-o", out, script, "kill", cwd=tmp_path)
    assert done.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), done.stderr
    # the record of every pass that ended is there, owned by gradtrace (listed in the manifest's journal)
    assert pass_files(out) == ["killed.pass1.json", "killed.pass2.json", "killed.pass3.json"]
    assert all(tracer.load(out / f).complete for f in pass_files(out))
    assert {"index.html", *pass_files(out)} <= set(listed(out))
    assert "<table>" in (out / "index.html").read_text()  # the page so far: it shows the rows written
    # a file being written when the process was killed is only ever half there as its hidden temporary file
    assert {p.name[2:] for p in out.iterdir() if p.name.startswith(".~")} <= set(listed(out))
    # the next run takes the folder over without --force: every file in it is ours
    again = run_subprocess("run", "--passes", "all", "-q", "-f", "json", "-o", out, script, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    overview = ["killed.timeline.csv", "killed.timeline.svg"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".gradtrace-manifest.json",
        "index.html",
        *pass_files(out),
        *overview,
    ]
    assert pass_files(out) == ["killed.pass1.json", "killed.pass2.json", "killed.pass3.json"]
    counted("SIGKILL")


def test_the_manifest_journal_costs_one_line_per_file_and_survives_a_torn_line(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / ".m.json", "test.format")
    manifest.write({"a.svg": "s.py"})
    manifest.append({"b.svg": "s.py", "c.svg": "s.py"})
    with open(manifest.journal, "a", encoding="utf-8") as journal:
        journal.write('["d.svg", "s.p')  # a run killed while writing this line
    assert manifest.read() == {"a.svg": "s.py", "b.svg": "s.py", "c.svg": "s.py"}
    assert len(manifest.journal.read_text().splitlines()) == 3
    manifest.write(manifest.read())
    assert not manifest.journal.exists()
    assert manifest.read() == {"a.svg": "s.py", "b.svg": "s.py", "c.svg": "s.py"}
    manifest.append({"../escape.svg": "s.py"})  # a journal is checked like the manifest
    assert "../escape.svg" not in manifest.read()


def test_a_file_in_the_way_midway_stops_the_writing_not_the_script(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = write_script(
        tmp_path,
        "crowded.py",
        f"""
        import torch

        x = torch.tensor([1.0, 2.0], requires_grad=True)
        x.sum().backward()
        with open({str(out / "crowded.pass2.json")!r}, "w") as mine:
            mine.write("the script's own file")
        (x * 2).sum().backward()
        print("the script went on", x.grad.tolist())
        """,
    )
    result = invoke("run", "-f", "json", "-o", out, script)
    assert result.exit_code == 1
    assert result.stdout == "the script went on [3.0, 3.0]\n"
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        f"Error: '{out / 'crowded.pass2.json'}' already exists and gradtrace did not write it; pass --force to "
        "replace, or choose another folder with -o"
    ]
    assert "Traceback" not in result.stderr
    assert (out / "crowded.pass2.json").read_text() == "the script's own file"
    assert tracer.load(out / "crowded.pass1.json").index == 1  # what was written before is kept, and ours
    assert "crowded.pass1.json" in listed(out) and "crowded.pass2.json" not in listed(out)
    counted("a file in the way midway")


# --------------------------------------------------------------------------- passes that ran but were not recorded


def _failing_builds(monkeypatch: pytest.MonkeyPatch, which: set[int] | None = None) -> None:
    """Make building the Trace of the passes numbered in `which` (1-based, in order; None: all) fail, as a bug of
    ours would."""
    real = recorder_module.build_trace
    calls = {"n": 0}

    def build(seen: Any) -> tracer.Trace:
        calls["n"] += 1
        if which is None or calls["n"] in which:
            raise RuntimeError("cannot read this kind of tensor")
        return real(seen)

    monkeypatch.setattr(recorder_module, "build_trace", build)


@pytest.mark.filterwarnings("ignore::tracer.GradtraceWarning")
def test_passes_that_ran_but_were_not_recorded_are_no_false_no_backward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_builds(monkeypatch)
    script = write_script(tmp_path, "hidden.py", THREE_PASSES)
    result = invoke("run", "--passes", "all", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 0, result.stderr  # the script succeeded: our failure to record is a warning
    assert "ran without a backward pass" not in result.stderr
    assert (
        "gradtrace: warning: hidden.py: 3 backward passes could not be recorded (RuntimeError: cannot read this kind "
        "of tensor); they ran as without gradtrace (the gradients are torch's), only the drawing is missing. Nothing "
        "to draw." in result.stderr
    )
    assert not (tmp_path / "out").exists()
    quiet = invoke("run", "--passes", "all", "-q", "-f", "json", "-o", tmp_path / "out", script)
    assert "gradtrace: warning: hidden.py: 3 backward passes could not" in quiet.stderr  # shown with -q too
    document = json.loads(invoke("run", "--passes", "all", "--json", "-o", tmp_path / "out", script).stdout)
    assert document["exit_code"] == 0 and document["passes"] == []
    assert document["unrecorded"] == ["RuntimeError: cannot read this kind of tensor"] * 3
    failing = write_script(tmp_path, "fails.py", THREE_PASSES + "    sys.exit(3)\n")
    assert (
        invoke("run", "--passes", "all", "-q", "-o", tmp_path / "out", failing).exit_code == 3
    )  # the script's own code counts
    counted("passes not recorded")


@pytest.mark.filterwarnings("ignore::tracer.GradtraceWarning")
def test_some_passes_not_recorded_the_others_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_builds(monkeypatch, {2})
    script = write_script(tmp_path, "partly.py", THREE_PASSES)
    result = invoke("run", "--passes", "all", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 0, result.stderr
    assert pass_files(tmp_path / "out") == ["partly.pass1.json", "partly.pass3.json"]
    assert "partly.py: 1 backward pass could not be recorded (RuntimeError: " in result.stderr
    assert "2 passes of partly.py" in result.stdout
    counted("some passes not recorded")


# --------------------------------------------------------------------------- script names that are not plain text


def test_file_stem_is_the_name_when_it_can_be_and_valid_short_and_unique_otherwise() -> None:
    assert file_stem(Path("train.py")) == "train"
    assert file_stem(Path("données d'entraînement.py")) == "données d'entraînement"
    bad, other = file_stem(Path(os.fsdecode(b"bad\xffname.py"))), file_stem(Path(os.fsdecode(b"bad\xfename.py")))
    assert bad.startswith("bad_name-") and other.startswith("bad_name-") and bad != other
    assert bad == file_stem(Path(os.fsdecode(b"bad\xffname.py")))  # the same on every run
    assert file_stem(Path("tab\there.py")).startswith("tab_here-")
    long = file_stem(Path("a" * 245 + ".py"))
    assert long.startswith("a" * 100) and len(long.encode()) <= STEM_MAX
    assert file_stem(Path("a" * 245 + ".py")) != file_stem(Path("a" * 244 + ".py"))
    wide = file_stem(Path("é" * 200 + ".py"))
    assert len(wide.encode()) <= STEM_MAX and wide.startswith("é" * 50)
    assert display_name(os.fsdecode(b"bad\xffname.py")) == "bad\\xffname.py"
    assert display_name("esc\x1b[31m.py") == "esc\\x1b[31m.py"
    assert len(temporary(Path("b" * 254 + ".svg")).name) < 255


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses file names that are not UTF-8")
def test_a_script_named_with_a_byte_that_is_not_utf8(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.py")  # Latin-1 é, as an old archive might hold it
    script = write_script(tmp_path, name, THREE_PASSES)
    done = run_subprocess("run", "--passes", "all", "-f", "json,dot,html", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and our_frames(done.stderr) == []
    out = tmp_path / f"{file_stem(script)}_gradtrace"
    assert out.is_dir() and file_stem(script).startswith("caf_-")
    assert len(pass_files(out)) == 3 and len(pass_files(out, ".html")) == 4  # 3 pass pages and the index
    assert all(f.encode("utf-8") for f in os.listdir(out))  # every name we wrote is valid UTF-8
    assert "caf\\xe9.py" in (out / "index.html").read_text(encoding="utf-8")
    assert "3 passes of caf\\xe9.py" in done.stdout
    counted("script name not UTF-8")


def test_a_script_with_a_245_character_name(tmp_path: Path) -> None:
    script = write_script(tmp_path, "x" * 242 + ".py", THREE_PASSES)
    assert len(script.name) == 245
    done = run_subprocess("run", "--passes", "all", "-f", "json,dot,html", "--steps", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = tmp_path / f"{file_stem(script)}_gradtrace"
    assert len(pass_files(out)) == 3
    assert max(len(f.encode()) for f in os.listdir(out)) < 200
    counted("script name of 245 characters")


def test_an_output_name_the_file_system_refuses_is_one_paragraph(tmp_path: Path) -> None:
    script = write_script(tmp_path, "two.py", THREE_PASSES)
    out = tmp_path / ("o" * 300)
    done = run_subprocess("run", "-f", "json", "-o", out, script, cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "File name too long" in errors[0] and "-o" in errors[0], done.stderr
    counted("an output folder the file system refuses")


def test_a_torch_func_pass_is_reported_once_in_plain_words(tmp_path: Path) -> None:
    """A pass gradtrace leaves unrecorded by design (torch.func under vmap) is said once, with its reason, and not
    as a failure to record; the script's own exit code stands."""
    script = tmp_path / "func.py"
    script.write_text(
        "import torch\nfrom torch.func import grad, vmap\n"
        "print(vmap(grad(lambda x: (x ** 2).sum()))(torch.tensor([[1.0, 2.0]])))\n",
        encoding="utf-8",
    )
    result = invoke("run", "-f", "json", "-o", tmp_path / "out", script)
    assert result.exit_code == 0, result.output
    assert "func.py: 1 backward pass was not recorded, inside a torch.func transform" in result.stderr
    assert "could not be recorded" not in result.stderr and "only the drawing is missing" not in result.stderr
