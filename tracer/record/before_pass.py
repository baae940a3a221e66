"""What a pass starts from, copied into the tensor table before the engine runs: seeds, .grad, small leaves."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch

from .backward_call import BackwardCall
from .gradient_edges import gradient_edge
from .names import NameBook
from .native.table import NativeTable
from .pass_graph import PassGraph
from .tensors import TensorTable


class Retained(NamedTuple):
    """A non-leaf with retain_grad() whose node is in the pass: where its gradient arrives, and its .grad before."""

    name: str
    tensor: torch.Tensor
    node: int
    slot: int
    before: int | None


@dataclasses.dataclass
class BeforePass:
    """Table handles (None: no tensor) of what was there before the pass, and the tensors the end of the pass
    reads again (retained, inputs=; dropped by release)."""

    seed_handles: list[int | None] = dataclasses.field(default_factory=list)
    grad_before: dict[int, int | None] = dataclasses.field(default_factory=dict)  # AccumulateGrad node -> .grad
    leaf_values: dict[int, int | None] = dataclasses.field(default_factory=dict)  # ... -> its small leaf's values
    retained: list[Retained] = dataclasses.field(default_factory=list)
    input_nodes: list[tuple[Any, tuple[int, int] | None]] = dataclasses.field(default_factory=list)  # inputs=

    def release(self) -> None:
        self.retained = []
        self.input_nodes = []


def snapshot(
    graph: PassGraph, call: BackwardCall, names: NameBook, table: TensorTable | NativeTable, max_values: int
) -> BeforePass:
    """Copy the seeds, each leaf's .grad and small leaves' values, and find where retained tensors and
    inputs= sit in the graph."""
    add = table.add
    before = BeforePass(
        seed_handles=[add(g, copy=True, exact=True) if isinstance(g, torch.Tensor) else None for g in call.grads]
    )
    for i, variable in graph.leaf_vars.items():
        grad = variable.grad
        before.grad_before[i] = None if grad is None else add(grad, copy=True)
        # A small leaf's own values let the picture explain J (x = [1, 2] beside J = 2x); a copy, since an
        # optimizer may change it before the trace is read.
        if variable.numel() <= max_values:
            before.leaf_values[i] = add(variable.detach(), copy=True, exact=True)
    if names.retained or call.inputs:
        _place_retained_and_inputs(before, graph, call, names, table)
    return before


def _place_retained_and_inputs(
    before: BeforePass, graph: PassGraph, call: BackwardCall, names: NameBook, table: TensorTable | NativeTable
) -> None:
    index = graph.index()
    for name, t in names.retained:
        edge = gradient_edge(t)
        if edge is not None and edge[0] in index:
            before.retained.append(
                Retained(name=name, tensor=t, node=index[edge[0]], slot=edge[1], before=table.add(t.grad, copy=True))
            )
    # A leaf among the inputs is found by its AccumulateGrad node in the walk: asking torch for its edge makes a
    # view, which for a torch.func wrapper (outside its transform's dispatch, or after its level ended) has none.
    leaf_nodes = {id(variable): i for i, variable in graph.leaf_vars.items()}
    for t in call.inputs:
        leaf = leaf_nodes.get(id(t))
        if leaf is not None:
            before.input_nodes.append((t, (leaf, 0)))
            continue
        edge = gradient_edge(t)
        at = (index[edge[0]], edge[1]) if edge is not None and edge[0] in index else None
        before.input_nodes.append((t, at))
