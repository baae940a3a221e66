"""Run a real-world script plainly and under `gradtrace run`, and compare what the user sees.

Each script in scripts/ saves the gradients it produced to the file named by GRADTRACE_REALWORLD_GRADS (see
scripts/realworld_io.py). `compare(script, folder)` runs it twice at the same time, in fresh processes:

    python SCRIPT.py                      (plain)
    gradtrace run SCRIPT.py -o OUTDIR     (traced; the console script next to sys.executable)

and keeps the exit code, stdout, stderr, the saved gradients and the files gradtrace wrote. `gradtrace run`
prints its own pass table after the script's output on stdout (its notices go to stderr); `script_stdout`
cuts that table off so the script's own output can be compared exactly.

From a shell, `python -m tests.realworld.harness [SCRIPT ...]` prints the comparison and the files gradtrace
wrote for each script (all of them without arguments).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parent / "scripts"
GRADTRACE = Path(sys.executable).with_name("gradtrace")
GRADS_ENV = "GRADTRACE_REALWORLD_GRADS"
TIMEOUT = 300.0  # seconds per run; a cold torch.compile alone can take half a minute on a busy machine

# the header of the pass table `gradtrace run` prints on stdout once the script has ended
REPORT_HEADER = re.compile(r"^pass +label +kind +steps +leaves +started at", re.MULTILINE)
PASS_FILE = re.compile(r"\.pass(\d+)\.")

Grads = Mapping[str, torch.Tensor | None]


# what each script ends with when run plainly (all others: 0)
EXPECTED_EXIT = {"os_exit": 5}

# comparisons made in this process, by script (the pytest session's summary lists them)
RUNS: dict[str, Comparison] = {}


def script_names() -> list[str]:
    """The scripts to compare: every .py in scripts/ but the shared helper."""
    return sorted(p.stem for p in SCRIPTS.glob("*.py") if p.stem != "realworld_io")


@dataclass(frozen=True)
class Run:
    """One run of a script, plain or traced."""

    exit_code: int | None  # None: killed after TIMEOUT
    stdout: str
    stderr: str
    grads: Grads | None  # None: the script saved no gradients file
    seconds: float
    files: tuple[str, ...] = ()  # traced runs: what gradtrace wrote into its output folder

    @property
    def pass_numbers(self) -> list[int]:
        """The passes gradtrace wrote a file for."""
        return sorted({int(m.group(1)) for f in self.files if (m := PASS_FILE.search(f))})


@dataclass(frozen=True)
class Comparison:
    script: str
    plain: Run
    traced: Run
    differences: dict[str, str] = field(default_factory=dict)  # check -> what differs; empty when all agree


def script_stdout(traced_stdout: str) -> str:
    """The script's own output: traced stdout without the pass table gradtrace prints after it."""
    headers = list(REPORT_HEADER.finditer(traced_stdout))
    return traced_stdout[: headers[-1].start()] if headers else traced_stdout


def _environment(grads_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", GRADS_ENV}}
    env[GRADS_ENV] = str(grads_file)
    return env


def _start(command: list[str], cwd: Path, grads_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=_environment(grads_file),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a timeout kills the script's own children (workers, spawned processes) too
    )


def _finish(process: subprocess.Popen[str], started: float) -> tuple[int | None, str, str, float]:
    try:
        out, err = process.communicate(timeout=max(1.0, TIMEOUT - (time.monotonic() - started)))
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        out, err = process.communicate()
        code = None
        err += f"\n[harness: killed after {TIMEOUT:.0f} s]"
    return code, out, err, time.monotonic() - started


def _load(grads_file: Path) -> Grads | None:
    if not grads_file.exists():
        return None
    loaded: dict[str, torch.Tensor | None] = torch.load(grads_file, weights_only=True)
    return loaded


def run_both(script: str, folder: Path) -> tuple[Run, Run]:
    """Run SCRIPT plainly and under `gradtrace run` side by side; both work in `folder`."""
    path = SCRIPTS / f"{script}.py"
    outdir = folder / "gradtrace_out"
    plain_grads, traced_grads = folder / "plain.grads.pt", folder / "traced.grads.pt"
    for work in ("plain", "traced"):
        (folder / work).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    plain = _start([sys.executable, str(path)], folder / "plain", plain_grads)
    traced = _start([str(GRADTRACE), "run", str(path), "-o", str(outdir)], folder / "traced", traced_grads)
    p_code, p_out, p_err, p_seconds = _finish(plain, started)
    t_code, t_out, t_err, t_seconds = _finish(traced, started)
    files = tuple(sorted(p.name for p in outdir.iterdir())) if outdir.is_dir() else ()
    return (
        Run(p_code, p_out, p_err, _load(plain_grads), p_seconds),
        Run(t_code, t_out, t_err, _load(traced_grads), t_seconds, files),
    )


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes (so NaN equals the same NaN and -0.0 differs from 0.0)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def tensor_difference(a: torch.Tensor, b: torch.Tensor) -> str | None:
    """None when a and b are the same tensor bit for bit (dtype, layout, shape, values); else what differs."""
    if (a.dtype, a.layout, tuple(a.shape)) != (b.dtype, b.layout, tuple(b.shape)):
        return f"plain {a.dtype}/{a.layout}/{tuple(a.shape)} vs traced {b.dtype}/{b.layout}/{tuple(b.shape)}"
    if a.is_sparse:
        a, b = a.coalesce(), b.coalesce()
        if not torch.equal(a.indices(), b.indices()):
            return f"sparse indices differ: plain {a.indices().tolist()} vs traced {b.indices().tolist()}"
        a, b = a.values(), b.values()
    if torch.equal(_bits(a), _bits(b)):
        return None
    differing = (a != b) | (a.isnan() != b.isnan())
    worst = (a - b).abs().max().item() if a.is_floating_point() or a.is_complex() else None
    return f"{int(differing.sum())} of {a.numel()} elements differ (max |diff| {worst}); plain {a} vs traced {b}"


def _kind(t: torch.Tensor | None) -> str:
    return "None" if t is None else "a tensor"


def grads_difference(plain: Grads | None, traced: Grads | None) -> str | None:
    if plain is None or traced is None:
        return None if plain is traced else f"gradients file missing: plain {plain is None}, traced {traced is None}"
    if set(plain) != set(traced):
        return f"different names: plain {sorted(plain)} vs traced {sorted(traced)}"
    found = []
    for name in plain:
        a, b = plain[name], traced[name]
        if a is None or b is None:
            if a is not b:
                found.append(f"{name}: plain {_kind(a)}, traced {_kind(b)}")
            continue
        if (what := tensor_difference(a, b)) is not None:
            found.append(f"{name}: {what}")
    return "; ".join(found) or None


def compare(script: str, folder: Path) -> Comparison:
    plain, traced = run_both(script, folder)
    differences: dict[str, str] = {}
    if plain.exit_code != traced.exit_code:
        differences["exit code"] = f"plain {plain.exit_code}, traced {traced.exit_code}"
    if (own := script_stdout(traced.stdout)) != plain.stdout:
        differences["stdout"] = f"plain {plain.stdout!r}\ntraced {own!r}"
    if (what := grads_difference(plain.grads, traced.grads)) is not None:
        differences["grads"] = what
    if not traced.pass_numbers:
        differences["passes written"] = f"gradtrace wrote no pass files (its folder holds {list(traced.files)})"
    return Comparison(script, plain, traced, differences)


def describe(c: Comparison) -> str:
    """A few lines for people: the outcome of both runs, what gradtrace wrote, what differs."""
    passes = c.traced.pass_numbers
    lines = [
        f"{c.script}: plain exit {c.plain.exit_code} ({c.plain.seconds:.1f} s), "
        f"traced exit {c.traced.exit_code} ({c.traced.seconds:.1f} s); "
        f"gradtrace wrote {len(passes)} pass(es), {len(c.traced.files)} file(s)"
        + (f": {', '.join(c.traced.files[:6])}{' …' if len(c.traced.files) > 6 else ''}" if c.traced.files else ""),
    ]
    lines += [f"  DIFFERS {check}: {what}" for check, what in c.differences.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = argv or script_names()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            comparison = compare(name, Path(tmp) / name)
            print(describe(comparison), flush=True)
            if comparison.differences:
                print("  traced stderr (tail):\n    " + "\n    ".join(comparison.traced.stderr.splitlines()[-12:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
