"""Where a gradient for a tensor enters the autograd graph: its grad_fn, or a leaf's AccumulateGrad node."""

from __future__ import annotations

from typing import Any

import torch


def gradient_edge(t: Any) -> tuple[Any, int] | None:
    """(node, output_nr) where a gradient for `t` enters the graph: its grad_fn, or a leaf's AccumulateGrad."""
    if hasattr(t, "node") and hasattr(t, "output_nr") and not isinstance(t, torch.Tensor):
        return t.node, int(t.output_nr)  # a GradientEdge
    if not isinstance(t, torch.Tensor) or not t.requires_grad:
        return None
    if t.grad_fn is not None:
        return t.grad_fn, t.output_nr
    get_edge = getattr(torch.autograd.graph, "get_gradient_edge", None)
    if get_edge is not None:
        edge = get_edge(t)
        # None for a tensor autograd reaches through no node here (a torch.func wrapper whose level has exited)
        return None if edge.node is None else (edge.node, int(edge.output_nr))
    with torch.enable_grad():  # pragma: no cover - torch < 2.2: reach the AccumulateGrad node through a view
        return t.view_as(t).grad_fn.next_functions[0][0], 0  # type: ignore[union-attr]
