"""Helpers for the command-line tests: invoke `gradtrace` in-process (CliRunner) or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner, Result

from cli.main import cli

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Run `gradtrace ARGS` in this process; exceptions from our code are not caught (a test must see them)."""
    runner = CliRunner()
    return runner.invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False, prog_name="gradtrace")


def run_subprocess(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cli ARGS` in a fresh interpreter with this worktree first on PYTHONPATH."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        if env is None or variable not in env:
            environment.pop(variable, None)
    return subprocess.run(
        [sys.executable, "-m", "cli", *[str(a) for a in args]],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def our_frames(stderr: str) -> list[str]:
    """Traceback lines that point into gradtrace's own packages (cli/ or tracer/)."""
    own = (str(ROOT / "cli") + os.sep, str(ROOT / "tracer") + os.sep)
    return [line for line in stderr.splitlines() if line.strip().startswith("File ") and any(o in line for o in own)]
