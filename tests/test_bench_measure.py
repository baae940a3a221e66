"""The benchmark's arithmetic (bench/measure.py): paired ratios, fastest runs, rotating order. Not timed."""

from __future__ import annotations

import math

from bench.measure import Samples, run_interleaved


def test_ratios_pair_each_round_and_fastest_runs_compare_minimums() -> None:
    base = Samples(wall=[1.0, 2.0, 1.0], cpu=[1.0, 1.0, 1.0])
    mode = Samples(wall=[1.1, 2.4, 1.3], cpu=[2.0, 2.0, 2.0])
    assert math.isclose(mode.ratio_to(base), 1.2)  # rounds: 1.1, 1.2, 1.3 -> median 1.2 (medians apart: 1.3)
    assert math.isclose(mode.ratio_to(base, "cpu"), 2.0)
    assert (mode.best(), base.best()) == (1.1, 1.0)
    assert math.isnan(Samples().median()) and math.isnan(Samples().best())


def test_modes_run_interleaved_in_rotating_order_after_warmup() -> None:
    calls: list[str] = []
    modes = {name: (lambda name=name: name, calls.append) for name in ("a", "b", "c")}
    samples = run_interleaved(modes, repeats=2, warmup=1)  # type: ignore[arg-type]
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(s.wall) == 2 and len(s.cpu) == 2 for s in samples.values())
