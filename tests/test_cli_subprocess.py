"""The command line as people run it: a fresh `python -m cli` process, real exit codes, real stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tracer
from tests.cases import CASES
from tests.cli_helpers import ROOT, our_frames, run_subprocess, write_script

TUTORIAL_SCRIPT = ROOT / "tests" / "scripts" / "tutorial_cases.py"


def test_importing_tracer_does_not_import_click() -> None:
    code = "import sys, tracer; assert 'click' not in sys.modules, 'tracer imported click'; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_help_does_not_import_torch() -> None:
    code = "import sys; from cli.main import cli; assert 'torch' not in sys.modules; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr


def test_every_tutorial_case_in_a_real_process(tmp_path: Path) -> None:
    done = run_subprocess("run", "-f", "json", "--passes", "all", "-o", tmp_path / "out", TUTORIAL_SCRIPT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    traces = sorted(
        (tracer.load(p) for p in (tmp_path / "out").glob("tutorial_cases.pass*.json")), key=lambda t: t.index
    )
    assert len(traces) == len(CASES) == 55
    printed = dict(
        line.split(" ", 1) for line in done.stdout.splitlines() if line.split(" ", 1)[0] in {c.id for c in CASES}
    )
    for case, trace in zip(CASES, traces, strict=True):
        leaves = case.leaves()
        y = case.forward(leaves)
        y.backward(case.seed(y))
        for name, leaf in leaves.items():
            assert torch.equal(trace.leaves[name].grad.as_tensor(), leaf.grad), case.id
        assert case.id in printed  # the script's own output is untouched
    assert f"{len(CASES)} passes of tutorial_cases.py" in done.stdout


def test_exit_codes_and_the_users_traceback(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "train.py",
        """
        import sys
        import torch

        def step(w):
            loss = (w * 2).sum()
            loss.backward()
            if sys.argv[1] == "raise":
                raise RuntimeError("diverged at step 1")

        w = torch.ones(3, requires_grad=True)
        if sys.argv[1] == "exit":
            step(w)
            sys.exit(7)
        step(w)
        """,
    )
    done = run_subprocess("run", "-f", "json", script, "exit", cwd=tmp_path)
    assert done.returncode == 7
    done = run_subprocess("run", "-f", "json", script, "raise", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):\n")
    assert f'File "{script}", line 14, in <module>\n    step(w)' in done.stderr
    assert f'File "{script}", line 8, in step\n    raise RuntimeError("diverged at step 1")' in done.stderr
    assert our_frames(done.stderr) == []
    assert "runpy" not in done.stderr and "click" not in done.stderr
    assert len(list((tmp_path / "train_gradtrace").glob("train.pass*.json"))) == 1
    done = run_subprocess("run", "-f", "json", script, "fine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_bad_input_is_one_error_line(tmp_path: Path) -> None:
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"name": "not a trace"}))
    cases = [
        (["run", tmp_path / "nope.py"], f"Error: no such file: '{tmp_path / 'nope.py'}'"),
        (["run", foreign], f"Error: cannot run '{foreign}': gradtrace runs a Python script (.py) or a notebook"),
        (["analyze", foreign], "Error: "),
        (["render", tmp_path / "nope.json"], f"Error: no trace file at '{tmp_path / 'nope.json'}'"),
    ]
    for args, start in cases:
        done = run_subprocess(*args, cwd=tmp_path)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith(start), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_version_and_help() -> None:
    done = run_subprocess("--version")
    assert done.returncode == 0
    assert done.stdout.startswith(f"gradtrace {tracer.__version__} (torch {torch.__version__}")
    done = run_subprocess("--help")
    assert done.returncode == 0 and "Usage: gradtrace [OPTIONS] COMMAND [ARGS]..." in done.stdout


@pytest.mark.slow
def test_under_torchrun_each_rank_writes_its_own_files(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "ddp.py",
        """
        import torch
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo")
        torch.manual_seed(0)
        model = DistributedDataParallel(torch.nn.Linear(3, 1))
        x = torch.full((2, 3), float(dist.get_rank() + 1))
        model(x).sum().backward()
        dist.destroy_process_group()
        """,
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "cli",
            "run",
            "-q",
            "-f",
            "json",
            "-o",
            str(tmp_path / "out"),
            str(script),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        ".gradtrace-manifest.rank0.json",
        ".gradtrace-manifest.rank1.json",
        "ddp.rank0.pass1.json",
        "ddp.rank0.timeline.csv",
        "ddp.rank0.timeline.svg",
        "ddp.rank1.pass1.json",
        "ddp.rank1.timeline.csv",
        "ddp.rank1.timeline.svg",
        "index.rank0.html",
        "index.rank1.html",
    ]
    for rank in (0, 1):
        trace = tracer.load(out / f"ddp.rank{rank}.pass1.json")
        weight = trace.leaves["model.module.weight"]
        assert weight.grad_total is not None and weight.grad_total.values == (3.0, 3.0, 3.0)  # DDP's average of 2 and 4
        assert trace.rank == rank  # the trace itself says which rank recorded it
