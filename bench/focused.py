"""`python -m bench --only capture|chain [--device cuda]`: one section in paired rounds, on the CPU or a GPU.

capture: the reference transformer's backward, plain and recorded in each capture (trace read), on `device`.
chain: a chain of 20,000 ops on 8-element tensors, the case where the local Jacobians of thousands of small nodes
once dominated (jacobian_budget.py): plain backward, `tracer.trace()` in the default capture, recorded without
reading, and `jacobian_limit=0` (no local Jacobians at all).
On a GPU every timed run ends with torch.cuda.synchronize(), so the kernels it queued are inside its time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import tracer

from .measure import Samples, run_interleaved
from .models import batch, count_nodes, loss, transformer

CHAIN_OPS = 20_000
CHAIN_SIZE = 8


def no_gpu_message(device: str) -> str | None:
    """Why `device` cannot be measured here, or None."""
    if device == "cuda" and not torch.cuda.is_available():
        return (
            "--device cuda: this machine has no CUDA GPU (torch.cuda.is_available() is False; torch "
            f"{torch.__version__}). Run `python -m bench --device cuda` on a machine with one, with a CUDA build of "
            "torch; without --device the benchmark measures the CPU."
        )
    return None


def _synced(device: str, timed: Callable[[Any], object]) -> Callable[[Any], object]:
    if device != "cuda":
        return timed

    def run(state: Any) -> None:
        timed(state)
        torch.cuda.synchronize()

    return run


def _modes(device: str, modes: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    return {name: (prepare, _synced(device, timed)) for name, (prepare, timed) in modes.items()}


def _rows(samples: dict[str, Samples], baseline: str) -> dict[str, dict[str, float]]:
    base = samples[baseline]
    return {
        name: {"wall_ms": s.median() * 1000, "ratio": s.ratio_to(base), "best_ratio": s.best() / base.best()}
        for name, s in samples.items()
    }


def capture_suite(repeats: int, device: str) -> dict[str, Any]:
    """Plain backward against each capture with the Trace read, on `device`."""
    model, x = transformer().to(device), batch().to(device)

    def fresh_loss() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        y = loss(model, x)
        if device == "cuda":
            torch.cuda.synchronize()  # the forward's kernels are not the backward's time
        return y

    def traced(capture: Any) -> Callable[[torch.Tensor], object]:
        return lambda y: tracer.trace(y, capture=capture)

    modes = {
        "plain backward": (fresh_loss, lambda y: torch.autograd.backward(y)),
        "trace(), capture='auto'": (fresh_loss, traced("auto")),
        "trace(), capture='stats'": (fresh_loss, traced("stats")),
        "trace(), capture='full'": (fresh_loss, traced("full")),
    }
    samples = run_interleaved(_modes(device, modes), repeats)
    return {"device": device, "nodes": count_nodes(fresh_loss()), "rows": _rows(samples, "plain backward")}


def _chain(x: torch.Tensor) -> torch.Tensor:
    h = x
    for i in range(CHAIN_OPS):
        h = h.sin() if i % 2 else h * 1.0001
    return h.sum()


def chain_suite(repeats: int, device: str) -> dict[str, Any]:
    """The 20,000-op chain: plain, traced (default capture and budget), recorded unread, and without Jacobians."""
    x = torch.randn(CHAIN_SIZE, device=device, requires_grad=True)

    def fresh() -> torch.Tensor:
        x.grad = None
        return _chain(x)

    def recorded(y: torch.Tensor) -> None:
        with tracer.record():
            torch.autograd.backward(y)

    modes = {
        "plain backward": (fresh, lambda y: torch.autograd.backward(y)),
        "trace() (default capture)": (fresh, lambda y: tracer.trace(y)),
        "record(), trace not read": (fresh, recorded),
        "trace(), jacobian_limit=0": (fresh, lambda y: tracer.trace(y, jacobian_limit=0)),
    }
    samples = run_interleaved(_modes(device, modes), repeats)
    return {"device": device, "ops": CHAIN_OPS, "elements": CHAIN_SIZE, "rows": _rows(samples, "plain backward")}


def print_section(title: str, result: dict[str, Any]) -> None:
    print(f"\n{title} (device {result['device']}; ratios: medians of paired rounds, and fastest runs')")
    print(f"  {'':32s} {'wall ms':>9s} {'ratio':>7s} {'fastest':>8s}")
    for name, r in result["rows"].items():
        print(f"  {name:32s} {r['wall_ms']:9.1f} {r['ratio']:6.2f}x {r['best_ratio']:7.2f}x")


SECTIONS = {"capture": capture_suite, "chain": chain_suite}
TITLES = {
    "capture": "captures on the reference transformer (tracer.trace(), the Trace built)",
    "chain": f"a chain of {CHAIN_OPS:,} ops on {CHAIN_SIZE}-element tensors",
}
