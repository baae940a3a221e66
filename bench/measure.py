"""Timing: interleaved runs of several modes, medians of wall and CPU time (memory is in memory.py)."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # process CPU time: steadier than wall time on a busy machine

    def median(self, what: str = "wall") -> float:
        values = getattr(self, what)
        return statistics.median(values) if values else float("nan")

    def best(self, what: str = "wall") -> float:
        values = getattr(self, what)
        return min(values) if values else float("nan")

    def ratio_to(self, base: Samples, what: str = "wall") -> float:
        """Median over rounds of this mode's time / the base mode's time in the same round: a slow round (the
        machine busy, the allocator in a bad state) slows both and cancels out, which medians taken apart do
        not do."""
        pairs = [m / b for m, b in zip(getattr(self, what), getattr(base, what), strict=True) if b > 0]
        return statistics.median(pairs) if pairs else float("nan")


def run_interleaved(
    modes: dict[str, tuple[Callable[[], Any], Callable[[Any], object]]], repeats: int, warmup: int = 1
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
            gc.collect()  # every mode starts from the same collector state
            wall, cpu = time.perf_counter(), time.process_time()
            timed(state)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            del state
            if round_number >= warmup:
                samples[name].wall.append(wall)
                samples[name].cpu.append(cpu)
    return samples
