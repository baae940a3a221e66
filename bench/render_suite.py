"""Rendering cost: gradtrace's annotated SVG vs torchviz's make_dot(...).pipe("svg") on the same graph."""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import tracer

from .models import SCALING_LAYERS, batch, count_nodes, loss, small_stack, transformer


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def render_suite(quick: bool = False) -> dict[str, Any]:
    repeats = 1 if quick else 3
    layers = 6 if quick else 24
    model, x = transformer(layers=layers), batch()
    model.zero_grad(set_to_none=True)
    y = loss(model, x)
    nodes = count_nodes(y)
    torchviz_seconds: float | str
    try:
        from torchviz import make_dot

        params = dict(model.named_parameters())
        torchviz_seconds = _median_seconds(lambda: make_dot(y, params=params).pipe(format="svg"), repeats)
    except ImportError:
        torchviz_seconds = "skipped: torchviz is not installed (pip install torchviz)"
    with tracer.record(model=model) as rec:
        torch.autograd.backward(loss(model, x))
    trace = rec.traces[0]
    full = _median_seconds(lambda: trace.svg(max_nodes=10_000), repeats)
    modules = _median_seconds(lambda: trace.svg(view="modules"), repeats)
    result: dict[str, Any] = {
        "layers": layers,
        "nodes": nodes,
        "gradtrace_full_svg_s": full,
        "gradtrace_module_view_svg_s": modules,
        "torchviz_make_dot_svg_s": torchviz_seconds,
    }
    print(f"\nrendering a {layers}-layer model's backward graph ({nodes} nodes) to SVG, median of {repeats}")
    if isinstance(torchviz_seconds, float):
        print(f"  torchviz make_dot(...).pipe('svg')        {torchviz_seconds:8.2f} s (names and shapes only)")
        result["full_vs_torchviz"] = full / torchviz_seconds
    else:
        print(f"  torchviz: {torchviz_seconds}")
    print(f"  gradtrace full graph, every v and vᵀJ     {full:8.2f} s")
    print(f"  gradtrace module view                     {modules:8.2f} s")
    result["scaling"] = _render_scaling(repeats=1)
    sizes = ", ".join(f"{r['nodes']} nodes {r['seconds']:.2f} s" for r in result["scaling"])
    print(f"  scaling (full graph, one run each):  {sizes}")
    return result


def _render_scaling(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for layers in SCALING_LAYERS:
        model, x = small_stack(layers)
        trace = tracer.trace(loss(model, x))
        seconds = _median_seconds(functools.partial(trace.svg, max_nodes=10_000), repeats)
        rows.append({"layers": layers, "nodes": len(trace.nodes), "seconds": seconds})
        del model, x
        torch.set_grad_enabled(True)
    return rows


def explorer_suite() -> dict[str, Any]:
    """The explorer page (Trace.save('x.html')) of the 12-layer reference model: its size and build time."""
    import tempfile
    from pathlib import Path

    model, x = transformer(), batch()
    with tracer.record(modules=True) as rec:
        torch.autograd.backward(loss(model, x))
    trace = rec.traces[0]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "explorer.html"
        started = time.perf_counter()
        trace.save(path)
        seconds = time.perf_counter() - started
        size = path.stat().st_size
    result = {"nodes": len(trace.nodes), "steps": len(trace.steps), "seconds": seconds, "bytes": size}
    print(
        f"\nexplorer page (t.save('x.html')) of the {len(trace.nodes)}-node reference model: "
        f"{size / 2**20:.1f} MB in {seconds:.1f} s (targets: <= 10 MB, <= 10 s)"
    )
    return result
