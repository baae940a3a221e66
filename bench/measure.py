"""Timing and memory measurement: interleaved runs, medians, wall and CPU time, peak RSS of a run."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset the process's peak RSS (Linux: writing 5 to clear_refs); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)  # peak RSS during the timed part

    def median(self, what: str = "wall") -> float:
        values = getattr(self, what)
        return statistics.median(values) if values else float("nan")


def run_interleaved(
    modes: dict[str, tuple[Callable[[], object], Callable[[object], object]]], repeats: int, warmup: int = 1
) -> dict[str, Samples]:
    """modes: name -> (prepare, timed). Each round runs every mode once, in rotating order, so drift and
    other load on the machine hit all modes alike. Only `timed(prepare())` is measured."""
    names = list(modes)
    samples = {name: Samples() for name in names}
    for round_number in range(warmup + repeats):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            prepare, timed = modes[name]
            state = prepare()
            gc.collect()
            can_peak = reset_peak()
            wall, cpu = time.perf_counter(), time.process_time()
            timed(state)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            peak = _status_kib("VmHWM") if can_peak else None
            del state
            if round_number >= warmup:
                samples[name].wall.append(wall)
                samples[name].cpu.append(cpu)
                if peak is not None:
                    samples[name].peak_mib.append(peak / 1024)
    return samples
