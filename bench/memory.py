"""Peak memory of one forward+backward per mode, each in a fresh interpreter (the only clean measure on CPU).

Within one process the allocator keeps freed memory, so a run's peak depends on what ran before it; a fresh
process per measurement gives each mode the same start. Reported: the process's peak RSS (VmHWM) after one
warm-up step and one measured step.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_PROGRAM = """
import json, sys, torch, tracer
from bench.models import batch, loss, transformer
torch.set_num_threads(2)
mode = sys.argv[1]
model, x = transformer(), batch()

def step():
    model.zero_grad(set_to_none=True)
    if mode == "module view":
        with tracer.record(model=model):
            loss(model, x).backward()
        return None
    y = loss(model, x)
    return y.backward() if mode == "plain" else tracer.trace(y, capture=mode)

step()
kept = step()  # the trace stays alive while the peak is read: it is part of what recording costs
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(json.dumps({"peak_mib": int(line.split()[1]) / 1024}))
"""

MODES = ("plain", "auto", "stats", "full", "module view")


def peak_memory(repeats: int = 3) -> dict[str, Any]:
    """Median peak RSS per mode, and what each adds over the plain step, in % of it."""
    root = Path(__file__).resolve().parent.parent

    def measure(mode: str) -> float:
        done = subprocess.run(
            [sys.executable, "-c", _PROGRAM, mode], cwd=root, capture_output=True, text=True, check=True
        )
        return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"])

    # Two interpreters at a time: each one's peak is its own, whatever runs beside it, and most of each run is
    # importing torch and building the model, which this halves.
    runs = [mode for _ in range(repeats) for mode in MODES]
    peaks: dict[str, list[float]] = {mode: [] for mode in MODES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for mode, peak in zip(runs, pool.map(measure, runs), strict=True):
            peaks[mode].append(peak)
    plain = statistics.median(peaks["plain"])
    return {
        mode: {"peak_rss_mib": statistics.median(v), "added_pct": 100 * (statistics.median(v) - plain) / plain}
        for mode, v in peaks.items()
    }
