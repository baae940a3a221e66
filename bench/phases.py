"""Where a recorded pass's added time goes: each phase timed inside the pass, beside the plain pass it adds to.

The end-to-end ratio moves by several percent from run to run on a shared machine; the phases are timed
directly and move far less, so they say what recording costs and where. This wraps gradtrace's internals
(PassRecorder's phases, the engine call inside a recorded pass, the native hooks' own clock) for the
benchmark only: nothing here is used when recording.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

import tracer
from tracer.record import pass_recorder, recorder

PHASES = ("install", "hooks", "engine beyond the hooks", "end of pass", "rest")


class _Clock:
    """The current pass's phase times, in seconds."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.times[name] = self.times.get(name, 0.0) + seconds


def _timed(clock: _Clock, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            clock.add(name, time.perf_counter() - started)

    return wrapper


class _TimedEngine:
    """torch's engine as _run_recorded sees it, with its run_backward timed (the hooks run inside it)."""

    def __init__(self, engine: Any, clock: _Clock) -> None:
        self._engine = engine
        self._clock = clock

    def run_backward(self, *args: Any, **kwargs: Any) -> Any:
        return _timed(self._clock, "engine", self._engine.run_backward)(*args, **kwargs)


@contextmanager
def _instrumented(clock: _Clock) -> Iterator[None]:
    cls = pass_recorder.PassRecorder
    originals = {name: getattr(cls, name) for name in ("install", "remove", "harvest", "release")}
    run_recorded = recorder._run_recorded

    def remove(self: Any) -> None:
        if self.native is not None and self.hooks is not None and not self.hooks.collected:
            clock.add("hooks", self.native.hook_seconds())
        originals["remove"](self)

    cls.install = _timed(clock, "install", originals["install"])  # type: ignore[method-assign]
    cls.remove = _timed(clock, "end of pass", remove)  # type: ignore[method-assign]
    cls.harvest = _timed(clock, "end of pass", originals["harvest"])  # type: ignore[method-assign]
    cls.release = _timed(clock, "end of pass", originals["release"])  # type: ignore[method-assign]
    recorder._run_recorded = lambda engine, args, kwargs: run_recorded(_TimedEngine(engine, clock), args, kwargs)
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(cls, name, function)
        recorder._run_recorded = run_recorded


def phase_account(fresh_loss: Callable[[], torch.Tensor], rounds: int) -> dict[str, Any]:
    """Median milliseconds per phase of a recorded pass (default capture, trace not read), interleaved with
    plain passes. "engine beyond the hooks" is the engine's time in the recorded pass minus the plain pass and
    the hooks: what the hooks' presence and their memory traffic cost the engine's own work. "rest" is the
    record() block and naming the pass's tensors."""
    clock = _Clock()
    per_phase: dict[str, list[float]] = {name: [] for name in (*PHASES, "plain", "added")}
    for round_number in range(rounds + 1):
        timed: dict[str, float] = {}
        for mode in ("plain", "recorded") if round_number % 2 else ("recorded", "plain"):
            y = fresh_loss()
            gc.collect()
            clock.times = {}
            with _instrumented(clock):
                started = time.perf_counter()
                if mode == "plain":
                    torch.autograd.backward(y)
                else:
                    with tracer.record():
                        torch.autograd.backward(y)
                timed[mode] = time.perf_counter() - started
            del y
            if mode == "recorded":
                times = dict(clock.times)
        if round_number == 0:
            continue  # warm-up
        plain, total = timed["plain"], timed["recorded"]
        accounted = times.get("engine", 0.0) + times.get("install", 0.0) + times.get("end of pass", 0.0)
        per_phase["plain"].append(plain)
        per_phase["added"].append(total - plain)
        per_phase["install"].append(times.get("install", 0.0))
        per_phase["hooks"].append(times.get("hooks", 0.0))
        per_phase["engine beyond the hooks"].append(times.get("engine", 0.0) - plain - times.get("hooks", 0.0))
        per_phase["end of pass"].append(times.get("end of pass", 0.0))
        per_phase["rest"].append(total - accounted)
    medians = {name: statistics.median(values) * 1000 for name, values in per_phase.items()}
    return {
        "plain_ms": medians.pop("plain"),
        "added_ms": medians.pop("added"),
        "phases_ms": medians,
    }
