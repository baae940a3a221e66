"""Under `gradtrace run`, a pass gradtrace leaves unrecorded on purpose (another thread's, torch.func's) is said
once: by the command's summary line with its reason, not also by the recorder's GradtraceWarning (issue 16).
Real processes, so the warning would reach stderr exactly as a user sees it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.common import SKIPPED_WARNING_START
from tests.cli_helpers import ROOT, run_subprocess, write_script
from tests.fuzzing import TALLY
from tracer.record.skipped_passes import SKIPPED

# A thread started with the low-level _thread module is not one the recording block's thread started with
# threading.Thread.start, so its pass is left unrecorded ("thread") whatever else gradtrace learns to record.
BARE_THREAD = """
    import _thread
    import torch

    done = _thread.allocate_lock()
    done.acquire()
    x = torch.tensor([1.0, 2.0], requires_grad=True)


    def work():
        try:
            (x * 3).sum().backward()
        finally:
            done.release()


    _thread.start_new_thread(work, ())
    done.acquire()
    print("grad", x.grad.tolist())
"""
AND_A_RECORDED_PASS = (
    BARE_THREAD
    + """
    y = torch.tensor([1.0], requires_grad=True)
    (y * 2).sum().backward()
"""
)


@pytest.mark.parametrize("command", ["run", "analyze"])
@pytest.mark.parametrize("body", [BARE_THREAD, AND_A_RECORDED_PASS], ids=["only-skipped", "with-a-recorded-pass"])
def test_a_pass_in_another_thread_is_said_once(command: str, body: str, tmp_path: Path) -> None:
    script = write_script(tmp_path, "threads.py", body)
    options = ["-f", "dot", "-o", str(tmp_path / "out")] if command == "run" else []
    done = run_subprocess(command, *options, script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "grad [3.0, 3.0]" in done.stdout  # the user's program ran as without gradtrace
    which = SKIPPED["thread"][0]
    assert done.stderr.count(which) == 1, done.stderr
    assert "threads.py: 1 backward pass was not recorded, " + which in done.stderr
    assert "GradtraceWarning" not in done.stderr and SKIPPED_WARNING_START not in done.stderr
    TALLY[f"passes left unrecorded on purpose, said once by the command line ({command})"] += 1


def test_the_recorder_warning_the_command_leaves_out_is_the_recorders(tmp_path: Path) -> None:
    """Outside the command the same script warns once with the recorder's own words: the filter's text is theirs."""
    script = write_script(
        tmp_path,
        "plain.py",
        "import runpy, warnings, tracer\n"
        "with warnings.catch_warnings(record=True) as seen, tracer.record() as rec:\n"
        "    warnings.simplefilter('always')\n"
        "    runpy.run_path('threads.py')\n"
        "print([str(w.message) for w in seen if w.category is tracer.GradtraceWarning])\n"
        "print(rec.unrecorded)\n",
    )
    write_script(tmp_path, "threads.py", BARE_THREAD)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    messages = done.stdout.splitlines()[-2]
    assert messages.count(SKIPPED_WARNING_START) == 1 and SKIPPED["thread"][0] in messages, done.stdout


def test_a_torch_func_pass_is_said_at_most_once(tmp_path: Path) -> None:
    """vmap over grad: whether gradtrace records it or leaves it to torch, the user is told at most once."""
    body = """
        import torch
        from torch.func import grad, vmap

        print(vmap(grad(lambda x: (x ** 2).sum()))(torch.ones(2, 3)).tolist())
        y = torch.tensor([1.0], requires_grad=True)
        (y * 2).sum().backward()
    """
    script = write_script(tmp_path, "func.py", body)
    done = run_subprocess("run", "-f", "dot", "-o", tmp_path / "out", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]" in done.stdout
    assert done.stderr.count(SKIPPED["func"][0]) <= 1 and SKIPPED_WARNING_START not in done.stderr, done.stderr
