"""Run one resource-bounds scenario in a fresh process and print what it measured as JSON (tests/test_bounds.py).

A fresh process, because peak memory (ru_maxrss) only ever grows: measured inside pytest it would include
every earlier test. `python -m tests.bounds_worker big|deep`.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

import torch

import tracer

BIG = 10**8
DEEP = 20_000


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _infos(trace: tracer.Trace) -> list[tracer.TensorInfo]:
    found = [i for s in trace.nodes for i in (*s.v, *s.vjp) if i is not None]
    found += [s.v for s in trace.seeds if s.v is not None]
    for leaf in trace.leaves.values():
        found += [i for i in (leaf.grad, leaf.grad_before, leaf.grad_total) if i is not None]
    return found


def big() -> dict[str, Any]:
    """A 1e8-element gradient (381 MiB as float32) in the default capture."""
    x = torch.randn(BIG, generator=torch.Generator().manual_seed(0)).requires_grad_()
    (x * 2).sin().sum().backward()
    plain = x.grad  # kept for the bit comparison: the two measured passes below both run with it alive
    x.grad = None
    (x * 2).sin().sum().backward()
    untraced_peak = peak_mib()
    x.grad = None
    trace = tracer.trace((x * 2).sin().sum())
    traced_peak = peak_mib()
    assert plain is not None and x.grad is not None
    leaf = trace.leaves["x"].grad
    assert leaf is not None and leaf.stats is not None
    return {
        "same_bits": bool(torch.equal(plain, x.grad)),
        "extra_peak_mib": traced_peak - untraced_peak,
        "tensor_mib": x.numel() * x.element_size() / 2**20,
        "json_bytes": len(trace.to_json().encode()),
        "values_kept_of_big_tensors": sum(1 for i in _infos(trace) if i.numel > 64 and i.values is not None),
        "leaf_norm_exact": leaf.stats.norm_exact,
        "leaf_norm": leaf.stats.norm,
        "leaf_norm_torch": float(torch.linalg.vector_norm(x.grad)),  # torch's own, in the gradient's float32
        "leaf_norm_error": abs(leaf.stats.norm - float(torch.linalg.vector_norm(x.grad.double()))) / leaf.stats.norm,
        "leaf_min_max_torch": [leaf.stats.min, leaf.stats.max, float(x.grad.min()), float(x.grad.max())],
        "estimates": [
            (i.stats.sampled, i.stats.norm_exact) for s in trace.steps for i in s.vjp if i is not None and i.stats
        ]
        + [(leaf.stats.sampled, leaf.stats.norm_exact)],
    }


def _chain(x: torch.Tensor) -> torch.Tensor:
    h = x
    for i in range(DEEP):
        h = h.sin() if i % 2 else h * 1.0001
    return h.sum()


def deep() -> dict[str, Any]:
    """A chain of 20,000 backward nodes, recorded, summarised, and offered to the renderer."""
    x = torch.tensor([0.5, -0.25], requires_grad=True)
    _chain(x).backward()
    plain, x.grad = x.grad, None
    y = _chain(x)
    before = peak_mib()
    trace = tracer.trace(y)
    del y
    summary = trace.summary()
    graph = trace.graph
    after = peak_mib()
    refusal = ""
    try:
        trace.svg()
    except tracer.GradtraceError as exc:
        refusal = f"{type(exc).__name__}: {exc}"
    assert plain is not None and x.grad is not None
    return {
        "same_bits": bool(torch.equal(plain, x.grad)),
        "nodes": len(trace.nodes),
        "steps": len(trace.steps),
        "graph_nodes": graph.number_of_nodes(),
        "extra_peak_mib": after - before,
        "summary": summary,
        "refusal": refusal,
        "complete": trace.complete,
    }


if __name__ == "__main__":
    scenario = {"big": big, "deep": deep}[sys.argv[1]]
    print(json.dumps(scenario()))
